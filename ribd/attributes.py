"""BGP path attributes, stored once per distinct set, in two parts.

A full table has ~0.19 distinct attribute sets per prefix. Routers of one
network carry the same paths, but each with its own next hop (and often its
own local-pref, communities, cluster list): so a set is a small per-router
``PathAttributes`` on a ``PathCore`` (AS path, origin, MED, derived AS
numbers ...) that every router carrying the path shares. Every prefix of
every router points at a shared, immutable set. The AS-number answers
(origin, peer) are derived once, when a core is built, never per flow.
The interner that builds and shares them is ``ribd.interner``.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter

import msgspec

# Segment types, numbered as on the wire (RFC 4271, RFC 5065).
AS_SET = 1
AS_SEQUENCE = 2
AS_CONFED_SEQUENCE = 3
AS_CONFED_SET = 4

SEGMENT_NAMES = {
    AS_SET: "as-set",
    AS_SEQUENCE: "as-sequence",
    AS_CONFED_SEQUENCE: "as-confed-sequence",
    AS_CONFED_SET: "as-confed-set",
}

Segment = tuple[int, tuple[int, ...]]

# How AS numbers were derived from the path (see README, "Semantics").
DERIVED_BGP = "bgp"
DERIVED_LOCAL = "local"  # empty AS path: originated inside our AS


# Field names of an attribute set's row (make_attributes' order): snapshots,
# the interner and the parser all use this order.
ATTRIBUTE_FIELDS = (
    "as_path",
    "origin",
    "next_hop",
    "local_pref",
    "med",
    "communities",
    "large_communities",
    "extended_communities",
    "originator_id",
    "cluster_list",
    "atomic_aggregate",
    "aggregator",
)
# The per-router part: what differs between routers that carry the same path
# (each has its own next hops, its own local-pref policy, its own route
# reflectors, and often communities of its own, such as a region tag).
# Everything else is the shared core.
ROUTER_FIELDS = ("next_hop", "local_pref", "communities", "originator_id", "cluster_list")
CORE_FIELDS = tuple(f for f in ATTRIBUTE_FIELDS if f not in ROUTER_FIELDS)
DERIVED_FIELDS = (
    "peer_as",
    "origin_as",
    "origin_as_highest",
    "origin_from_set",
    "empty_path",
    "peer_as_highest",
)


class PathCore(msgspec.Struct, gc=False, eq=False):
    """The part of an attribute set that every router carrying the path shares:
    the AS path, origin, MED, aggregator ... and the AS numbers derived from
    the path. One object for all routers (``AttributeInterner``); treat as
    immutable. Identity is equality, as for ``PathAttributes``.
    """

    as_path: tuple[Segment, ...]
    origin: str
    med: int | None
    large_communities: tuple[tuple[int, int, int], ...]
    extended_communities: tuple[str, ...]
    atomic_aggregate: bool
    aggregator: str
    # Derived once (AS numbers for attribution):
    peer_as: int  # first AS of the path, 0 for an empty path
    origin_as: int  # last AS; for a trailing AS_SET, the AS before it
    origin_as_highest: int  # pmacct's choice for a trailing AS_SET: its highest member
    origin_from_set: bool  # origin_as came from AS_SET handling
    empty_path: bool
    # pmacct's peer AS (as_set_policy "highest"): 0 for a path that starts with an
    # AS_SET (pmacct reads the first AS of the printed path, "{...}" is no number)
    peer_as_highest: int


def _policy(i: int):
    def get(self: PathAttributes) -> object:
        return self.own.policy[i]

    return get


def _from_core(name: str) -> property:
    return property(attrgetter(f"core.{name}"), doc=f"``core.{name}`` (shared by routers)")


class RouterPart(msgspec.Struct, gc=False, frozen=True, cache_hash=True):
    """What a router's set has of its own: next hop, communities and ``policy``
    (local-pref, originator id, cluster list). Few distinct ones per router
    (its next hops x its community lists x its policies: ~3,600 per router on
    the real table against ~109,000 sets), so one is shared by every set of
    the router that has the same (``AttributeInterner``), and by other
    routers' sets where they are equal. Compared and hashed by value (the
    interner's scan compares one of these instead of three fields).
    ``gc=False``: it holds a string and tuples of ints and strings only.
    ``cache_hash``: its hash is computed once (a hidden slot; 40 -> 48 bytes,
    the same pymalloc size class): a core's index hashes each set's part
    again at every rebuild, ~12k rebuilds a late router (stop 34, intern4).
    """

    next_hop: str
    communities: tuple[int, ...]  # (A << 16) | B
    policy: tuple  # (local_pref: int | None, originator_id: str, cluster_list: tuple[str, ...])


class PathAttributes(msgspec.Struct, gc=False, eq=False):
    """One distinct attribute set of one router; treat as immutable. Identity is
    equality: instances are interned, so hashing and comparison use ``id``.

    Two parts: ``core`` (a ``PathCore``), shared by every router that carries
    the same path with the same communities, and ``own`` (a ``RouterPart``:
    next hop, communities, local-pref, originator id, cluster list), shared
    by the router's sets that have the same. Routers of one network differ
    in those, so with the whole set in one object no set was ever shared
    between two routers, and each held its own copy of the path (~490 bytes
    a set, ~110,000 sets per full table and router). Every field reads
    through a property, so callers see one flat set as before.

    Two fields, not four: a Struct of 4 fields is 48 bytes, of 2, 32; the
    router parts it no longer holds are ~3% as many as the sets on the real
    table (a router has a few hundred next hops, a few thousand community
    lists, a few policies, ~109,000 sets). 16 bytes less per set: ~2.8 bytes
    per (router, prefix) at 64 routers.

    A msgspec Struct with ``gc=False``: the garbage collector never walks the
    sets (a slotted class cost ingest ~1.5% in GC passes), and each is 16
    bytes smaller. Safe because a set only holds its core and its router
    part, which hold ints, strings and tuples of them: no cycle.
    """

    core: PathCore
    own: RouterPart

    next_hop = property(attrgetter("own.next_hop"), doc="``own.next_hop``")
    communities = property(attrgetter("own.communities"), doc="``own.communities``")
    policy = property(
        attrgetter("own.policy"), doc="``own.policy``: (local_pref, originator, clusters)"
    )
    local_pref = property(_policy(0), doc="``policy[0]``: LOCAL_PREF or None")
    originator_id = property(_policy(1), doc="``policy[1]``: ORIGINATOR_ID or ''")
    cluster_list = property(_policy(2), doc="``policy[2]``: CLUSTER_LIST")

    as_path = _from_core("as_path")
    origin = _from_core("origin")
    med = _from_core("med")
    large_communities = _from_core("large_communities")
    extended_communities = _from_core("extended_communities")
    atomic_aggregate = _from_core("atomic_aggregate")
    aggregator = _from_core("aggregator")
    peer_as = _from_core("peer_as")
    origin_as = _from_core("origin_as")
    origin_as_highest = _from_core("origin_as_highest")
    origin_from_set = _from_core("origin_from_set")
    empty_path = _from_core("empty_path")
    peer_as_highest = _from_core("peer_as_highest")

    def __repr__(self) -> str:
        return (
            f"PathAttributes(as_path={self.as_path!r}, next_hop={self.next_hop!r}, "
            f"origin_as={self.origin_as}, peer_as={self.peer_as})"
        )

    def flat_path(self) -> list[int | list[int]]:
        """The path as the JSON contract shows it: ints, an AS_SET as a nested list."""
        out: list[int | list[int]] = []
        for kind, asns in self.core.as_path:
            if kind in (AS_SET, AS_CONFED_SET):
                out.append(list(asns))
            else:
                out.extend(asns)
        return out

    def community_strings(self) -> list[str]:
        return [f"{c >> 16}:{c & 0xFFFF}" for c in self.communities]

    def large_community_strings(self) -> list[str]:
        return [f"{a}:{b}:{c}" for a, b, c in self.core.large_communities]


def derive_as_numbers(as_path: Iterable[Segment]) -> tuple[int, int, int, bool, bool, int]:
    """Return (peer_as, origin_as, origin_as_highest, origin_from_set, empty_path,
    peer_as_highest).

    Confederation segments are skipped: they describe our own confederation,
    not who we exchange traffic with. Prepending never changes the answer since
    only the first and last AS are read.
    """
    if len(as_path) == 1 and as_path[0][0] == AS_SEQUENCE and as_path[0][1]:  # common case
        asns = as_path[0][1]
        return asns[0], asns[-1], asns[-1], False, False, asns[0]
    segments = [(k, a) for k, a in as_path if k in (AS_SEQUENCE, AS_SET) and a]
    if not segments:
        return 0, 0, 0, False, True, 0
    first_kind, first_asns = segments[0]
    # A path that starts with a set has no single neighbor AS; its smallest
    # member is a stable, explainable pick. pmacct says 0 (no number).
    peer_as = first_asns[0] if first_kind == AS_SEQUENCE else min(first_asns)
    peer_highest = peer_as if first_kind == AS_SEQUENCE else 0
    last_kind, last_asns = segments[-1]
    if last_kind == AS_SEQUENCE:
        origin = last_asns[-1]
        return peer_as, origin, origin, False, False, peer_highest
    highest = max(last_asns)
    if len(set(last_asns)) == 1:
        return peer_as, last_asns[0], last_asns[0], False, False, peer_highest
    # Multi-member AS_SET at the end: the AS just before it aggregated the
    # routes and is the one the traffic reaches.
    before = [a for k, asns in segments[:-1] for a in asns if k == AS_SEQUENCE]
    origin = before[-1] if before else highest
    return peer_as, origin, highest, True, False, peer_highest


def attribute_row(a: PathAttributes) -> tuple:
    """A set's fields in make_attributes' order: its row (snapshots, ``AttributeInterner.find``)."""
    c = a.core
    own = a.own
    (local_pref, originator_id, cluster_list) = own.policy
    return (
        c.as_path,
        c.origin,
        own.next_hop,
        local_pref,
        c.med,
        own.communities,
        c.large_communities,
        c.extended_communities,
        originator_id,
        cluster_list,
        c.atomic_aggregate,
        c.aggregator,
    )


def make_attributes(
    as_path: tuple[Segment, ...],
    origin: str = "igp",
    next_hop: str = "",
    local_pref: int | None = None,
    med: int | None = None,
    communities: tuple[int, ...] = (),
    large_communities: tuple[tuple[int, int, int], ...] = (),
    extended_communities: tuple[str, ...] = (),
    originator_id: str = "",
    cluster_list: tuple[str, ...] = (),
    atomic_aggregate: bool = False,
    aggregator: str = "",
) -> PathAttributes:
    """A set on its own, sharing nothing (tests; ingest uses the interner's ``intern``)."""
    core = PathCore(
        as_path,
        origin,
        med,
        large_communities,
        extended_communities,
        atomic_aggregate,
        aggregator,
        *derive_as_numbers(as_path),
    )
    own = RouterPart(next_hop, communities, (local_pref, originator_id, cluster_list))
    return PathAttributes(core, own)


# The interner lives in its own module (it imports the types above), and
# ``from ribd.attributes import AttributeInterner`` keeps working through a
# lazy attribute: an import here would make the two modules import each
# other, and ``import ribd.interner`` first would then fail half-initialised.
_FROM_INTERNER = frozenset(
    {"LARGE_SLOTS", "SCAN_VARIANTS", "SHARE_SLOTS", "AttributeInterner", "core_key", "core_row"}
)


def __getattr__(name: str) -> object:
    if name in _FROM_INTERNER:
        import ribd.interner

        return getattr(ribd.interner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AS_CONFED_SEQUENCE",
    "AS_CONFED_SET",
    "AS_SEQUENCE",
    "AS_SET",
    "ATTRIBUTE_FIELDS",
    "CORE_FIELDS",
    "DERIVED_BGP",
    "DERIVED_FIELDS",
    "DERIVED_LOCAL",
    "ROUTER_FIELDS",
    "SEGMENT_NAMES",
    "PathAttributes",
    "PathCore",
    "RouterPart",
    "Segment",
    "attribute_row",
    "derive_as_numbers",
    "make_attributes",
]
