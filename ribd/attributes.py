"""BGP path attributes, stored once per distinct set.

A full table has ~0.15 distinct attribute sets per prefix, and routers of one
network mostly carry the same ones, so every prefix of every router points at
a shared, immutable ``PathAttributes``. The AS-number answers (origin, peer)
are derived once here, at interning time, never per flow.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from hashlib import blake2b

import msgspec
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


class PathAttributes(msgspec.Struct, gc=False, eq=False):
    """One distinct attribute set; treat as immutable. Identity is equality:
    instances are interned, so hashing and comparison use ``id``.

    A msgspec Struct with ``gc=False``: the garbage collector never walks the
    ~90k sets of a full table (a slotted class cost ingest ~1.5% in GC
    passes), and each set is 16 bytes smaller. Safe because a set only holds
    ints, strings and tuples of them: it cannot be part of a cycle.
    """

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
    # pmacct's peer AS (as_set_policy "highest"): 0 for a path that starts with an
    # AS_SET (pmacct reads the first AS of the printed path, "{...}" is no number)
    peer_as_highest: int

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


def attribute_key(row: Sequence) -> bytes:
    """The interning key of an attribute set given as its fields in make_attributes'
    order (the snapshot's attribute row): 160 bits of a BLAKE2b of their JSON.

    A digest of the validated fields, not of ExaBGP's text, so that the parser
    and a loaded snapshot find each other's sets. Cryptographic rather than
    ``hash()`` of a tuple: AS numbers and communities come from the network,
    and colliding Python hashes are easy to craft. The full digest cut to 160
    bits rather than ``digest_size=20``: parsing that keyword costs more than
    hashing a row. Keys live in one process only (snapshots store rows).
    """
    return blake2b(orjson.dumps(row)).digest()[:20]


# Slots of each direct-mapped cache (a power of two). A full table has ~52k
# distinct AS numbers, but most of the sharing is of the frequent ones: 2^14
# slots share ~90% of what 2^16 do, and a small list stays in the CPU caches.
SHARE_SLOTS = 1 << 14
_EMPTY = -1  # an empty slot: equal to no value, and an int like the values


class AttributeInterner:
    """Maps a canonical key (``attribute_key``) to the one shared PathAttributes for it.

    A new set also shares its values with earlier sets: AS numbers,
    communities, cluster lists, originator ids ... equal to one seen before
    become that object, which halves the memory of a full table (the same
    transit ASes, communities and route reflectors recur in most sets).

    Ints and tuples of ints go through direct-mapped caches, lists indexed by
    the value's hash, not dicts: those hashes are predictable (an int's is
    itself), so a dict of them could be flooded with colliding values, while a
    cache lookup is O(1) whatever the input; a colliding value merely evicts
    another. Strings and tuples of them go into a dict: string hashes are
    randomised per process. Whole AS paths (~85% distinct in a table) and
    aggregators (~80%) are not shared: the lookups would cost more than they save.
    """

    __slots__ = ("_by_key", "_ints", "_texts", "_tuples")

    def __init__(self) -> None:
        self._by_key: dict[object, PathAttributes] = {}
        self._ints: list = [_EMPTY] * SHARE_SLOTS  # AS numbers, MED, LOCAL_PREF
        self._tuples: list = [_EMPTY] * SHARE_SLOTS  # (large) communities
        self._texts: dict = {}  # originator ids, cluster lists, extended communities

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, key: object) -> PathAttributes | None:
        return self._by_key.get(key)

    def add(self, key: object, attrs: PathAttributes) -> PathAttributes:
        """Adopt a set built elsewhere (a loaded snapshot's), unless ``key`` has one.

        An adopted set's values are swapped in place for the shared ones: its
        routes already refer to it, and equal immutable values change nothing
        a reader can see.
        """
        got = self._by_key.setdefault(key, attrs)
        if got is attrs:
            shared = self._make(attribute_row(attrs))
            for name in PathAttributes.__struct_fields__:
                setattr(attrs, name, getattr(shared, name))
        return got

    def intern(self, row: tuple) -> PathAttributes:
        """The shared set for ``row`` (validated fields in make_attributes' order)."""
        key = blake2b(orjson.dumps(row)).digest()[:20]  # attribute_key, inlined
        attrs = self._by_key.get(key)
        if attrs is None:
            attrs = self._by_key[key] = self._make(row)
        return attrs

    def _make(self, row: tuple) -> PathAttributes:
        # Runs once per new set (~90k times per full table), in the ingest
        # path: everything is inlined, a call per value costs more than its lookup.
        (
            as_path,
            origin,
            next_hop,
            local_pref,
            med,
            communities,
            large_communities,
            extended_communities,
            originator_id,
            cluster_list,
            atomic_aggregate,
            aggregator,
        ) = row
        mask = SHARE_SLOTS - 1
        ints = self._ints
        if med is not None and med > 256:  # smaller ints are shared by CPython
            seen = ints[med & mask]
            if seen != med:
                ints[med & mask] = seen = med
            med = seen
        if local_pref is not None and local_pref > 256:
            seen = ints[local_pref & mask]
            if seen != local_pref:
                ints[local_pref & mask] = seen = local_pref
            local_pref = seen
        if communities:
            tuples = self._tuples
            i = hash(communities) % SHARE_SLOTS  # % beats & on a 64-bit hash
            seen = tuples[i]
            if seen == communities:
                communities = seen
            else:
                tuples[i] = communities
        if large_communities:
            tuples = self._tuples
            i = hash(large_communities) % SHARE_SLOTS
            seen = tuples[i]
            if seen == large_communities:
                large_communities = seen
            else:
                tuples[i] = large_communities
        if originator_id or cluster_list or extended_communities:
            texts = self._texts
            if originator_id:
                originator_id = texts.setdefault(originator_id, originator_id)
            if cluster_list:
                cluster_list = texts.setdefault(cluster_list, cluster_list)
            if extended_communities:
                extended_communities = texts.setdefault(extended_communities, extended_communities)
        segments = []
        for kind, numbers in as_path:
            out = []
            for n in numbers:
                seen = ints[n & mask]
                if seen != n:
                    ints[n & mask] = seen = n
                out.append(seen)
            segments.append((kind, tuple(out)))
        as_path = tuple(segments)
        if len(segments) == 1 and kind == AS_SEQUENCE and out:  # derive_as_numbers' common case
            derived: tuple = (out[0], out[-1], out[-1], False, False, out[0])
        else:
            derived = derive_as_numbers(as_path)
        return PathAttributes(
            as_path,
            origin,
            next_hop,
            local_pref,
            med,
            communities,
            large_communities,
            extended_communities,
            originator_id,
            cluster_list,
            atomic_aggregate,
            aggregator,
            *derived,
        )

    def collect_unused(self, in_use: set[int]) -> int:
        """Drop sets no route refers to any more (ids in ``in_use`` are kept),
        then the shared values nothing else holds, so churn cannot grow them.

        Feed threads intern while this runs (they parse outside ``rib.lock``):
        dicts are walked through copies, and a value they pick up meanwhile
        at worst ends up in a set unshared.
        """
        by_key = self._by_key
        dead = [k for k, a in list(by_key.items()) if id(a) not in in_use]
        for k in dead:
            del by_key[k]
        self.collect_shared_values()
        return len(dead)

    def keys(self) -> list:
        """The keys of every set now (for ``drop_unreferenced``, in steps)."""
        return list(self._by_key)

    def drop_unreferenced(self, keys: list, start: int, stop: int) -> int:
        """Forget the sets of ``keys[start:stop]`` nothing else refers to (no
        route, view or parse in flight holds them); returns how many.

        Exact at the moment of each check, so a collection can run in steps
        between writes (``ribd.rib``); a feed thread picking a set up between
        the check and the removal at worst ends up with a set unshared.
        """
        by_key = self._by_key
        getrefcount = sys.getrefcount
        dropped = 0
        for i in range(start, stop):
            k = keys[i]
            a = by_key.get(k)
            # References: the dict's value, ``a`` and getrefcount's argument.
            if a is not None and getrefcount(a) <= 3:
                del by_key[k]
                dropped += 1
        return dropped

    def collect_shared_values(self) -> None:
        """Drop the shared values (see ``_make``) no set holds any more."""
        getrefcount = sys.getrefcount
        texts = self._texts
        keys = list(texts)
        # References: the dict's key and value, ``keys``, ``v``, getrefcount's argument.
        for v in [v for v in keys if getrefcount(v) <= 5]:
            del texts[v]
        del keys
        for cache in (self._tuples, self._ints):  # tuples first: they hold ints
            for i in range(SHARE_SLOTS):
                # References: the cache, ``v`` and getrefcount's argument.
                v = cache[i]
                if getrefcount(v) <= 3:
                    cache[i] = _EMPTY

    def shared_values(self) -> int:
        """How many values are held for sharing (tests, stats)."""
        cached = sum(v is not _EMPTY for cache in (self._ints, self._tuples) for v in cache)
        return cached + len(self._texts)


def attribute_row(a: PathAttributes) -> tuple:
    """A set's fields in make_attributes' order: its row (snapshots, ``attribute_key``)."""
    return (
        a.as_path,
        a.origin,
        a.next_hop,
        a.local_pref,
        a.med,
        a.communities,
        a.large_communities,
        a.extended_communities,
        a.originator_id,
        a.cluster_list,
        a.atomic_aggregate,
        a.aggregator,
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
    """A set on its own, sharing nothing (tests; ingest uses the interner's ``make``)."""
    return PathAttributes(
        as_path,
        origin,
        next_hop,
        local_pref,
        med,
        communities,
        large_communities,
        extended_communities,
        originator_id,
        cluster_list,
        atomic_aggregate,
        aggregator,
        *derive_as_numbers(as_path),
    )
