"""BGP path attributes, stored once per distinct set.

A full table has ~0.15 distinct attribute sets per prefix, and routers of one
network mostly carry the same ones, so every prefix of every router points at
a shared, immutable ``PathAttributes``. The AS-number answers (origin, peer)
are derived once here, at interning time, never per flow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from hashlib import blake2b

import orjson

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


class PathAttributes:
    """One distinct attribute set; treat as immutable. Identity is equality:
    instances are interned, so hashing and comparison use ``id``.

    A plain slotted class rather than a frozen dataclass: one is built per
    distinct set at ingest (~90k for a full table) and the frozen-dataclass
    ``__init__`` was a measurable share of ingest time.
    """

    __slots__ = (
        "aggregator",
        "as_path",
        "atomic_aggregate",
        "cluster_list",
        "communities",
        "empty_path",
        "extended_communities",
        "large_communities",
        "local_pref",
        "med",
        "next_hop",
        "origin",
        "origin_as",
        "origin_as_highest",
        "origin_from_set",
        "originator_id",
        "peer_as",
    )

    as_path: tuple[Segment, ...]
    origin: str
    next_hop: str
    local_pref: int | None
    med: int | None
    communities: tuple[int, ...]  # (A << 16) | B
    large_communities: tuple[tuple[int, int, int], ...]
    extended_communities: tuple[str, ...]
    originator_id: str
    cluster_list: tuple[str, ...]
    atomic_aggregate: bool
    aggregator: str
    # Derived once (AS numbers for attribution):
    peer_as: int  # first AS of the path, 0 for an empty path
    origin_as: int  # last AS; for a trailing AS_SET, the AS before it
    origin_as_highest: int  # pmacct's choice for a trailing AS_SET: its highest member
    origin_from_set: bool  # origin_as came from AS_SET handling
    empty_path: bool

    def __repr__(self) -> str:
        return (
            f"PathAttributes(as_path={self.as_path!r}, next_hop={self.next_hop!r}, "
            f"origin_as={self.origin_as}, peer_as={self.peer_as})"
        )

    def flat_path(self) -> list[int | list[int]]:
        """The path as the JSON contract shows it: ints, an AS_SET as a nested list."""
        out: list[int | list[int]] = []
        for kind, asns in self.as_path:
            if kind in (AS_SET, AS_CONFED_SET):
                out.append(list(asns))
            else:
                out.extend(asns)
        return out

    def community_strings(self) -> list[str]:
        return [f"{c >> 16}:{c & 0xFFFF}" for c in self.communities]

    def large_community_strings(self) -> list[str]:
        return [f"{a}:{b}:{c}" for a, b, c in self.large_communities]


def derive_as_numbers(as_path: Iterable[Segment]) -> tuple[int, int, int, bool, bool]:
    """Return (peer_as, origin_as, origin_as_highest, origin_from_set, empty_path).

    Confederation segments are skipped: they describe our own confederation,
    not who we exchange traffic with. Prepending never changes the answer since
    only the first and last AS are read.
    """
    if len(as_path) == 1 and as_path[0][0] == AS_SEQUENCE and as_path[0][1]:  # common case
        asns = as_path[0][1]
        return asns[0], asns[-1], asns[-1], False, False
    segments = [(k, a) for k, a in as_path if k in (AS_SEQUENCE, AS_SET) and a]
    if not segments:
        return 0, 0, 0, False, True
    first_kind, first_asns = segments[0]
    # A path that starts with a set has no single neighbor AS; its smallest
    # member is a stable, explainable pick.
    peer_as = first_asns[0] if first_kind == AS_SEQUENCE else min(first_asns)
    last_kind, last_asns = segments[-1]
    if last_kind == AS_SEQUENCE:
        origin = last_asns[-1]
        return peer_as, origin, origin, False, False
    highest = max(last_asns)
    if len(set(last_asns)) == 1:
        return peer_as, last_asns[0], last_asns[0], False, False
    # Multi-member AS_SET at the end: the AS just before it aggregated the
    # routes and is the one the traffic reaches.
    before = [a for k, asns in segments[:-1] for a in asns if k == AS_SEQUENCE]
    origin = before[-1] if before else highest
    return peer_as, origin, highest, True, False


def attribute_key(row: Sequence) -> bytes:
    """The interning key of an attribute set given as its fields in make_attributes'
    order (the snapshot's attribute row): a 160-bit BLAKE2b of their JSON.

    A digest of the validated fields, not of ExaBGP's text, so that the parser
    and a loaded snapshot find each other's sets. Cryptographic rather than
    ``hash()`` of a tuple: AS numbers and communities come from the network,
    and colliding Python hashes are easy to craft.
    """
    return blake2b(orjson.dumps(row), digest_size=20).digest()


class AttributeInterner:
    """Maps a canonical key (``attribute_key``) to the one shared PathAttributes for it."""

    __slots__ = ("_by_key",)

    def __init__(self) -> None:
        self._by_key: dict[object, PathAttributes] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, key: object) -> PathAttributes | None:
        return self._by_key.get(key)

    def add(self, key: object, attrs: PathAttributes) -> PathAttributes:
        return self._by_key.setdefault(key, attrs)

    def intern(self, row: tuple) -> PathAttributes:
        """The shared set for ``row`` (validated fields in make_attributes' order)."""
        key = attribute_key(row)
        attrs = self._by_key.get(key)
        if attrs is None:
            attrs = self._by_key[key] = make_attributes(*row)
        return attrs

    def collect_unused(self, in_use: set[int]) -> int:
        """Drop sets no route refers to any more (ids in ``in_use`` are kept)."""
        dead = [k for k, a in self._by_key.items() if id(a) not in in_use]
        for k in dead:
            del self._by_key[k]
        return len(dead)


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
    attrs = PathAttributes()
    attrs.as_path = as_path
    attrs.origin = origin
    attrs.next_hop = next_hop
    attrs.local_pref = local_pref
    attrs.med = med
    attrs.communities = communities
    attrs.large_communities = large_communities
    attrs.extended_communities = extended_communities
    attrs.originator_id = originator_id
    attrs.cluster_list = cluster_list
    attrs.atomic_aggregate = atomic_aggregate
    attrs.aggregator = aggregator
    (
        attrs.peer_as,
        attrs.origin_as,
        attrs.origin_as_highest,
        attrs.origin_from_set,
        attrs.empty_path,
    ) = derive_as_numbers(as_path)
    return attrs
