"""The attribute interner: one shared core per path for all routers, one small set per router.

Split out of ``ribd.attributes`` (the types and rules of attribute sets):
this is how they are stored once and shared. ``ribd.attributes``
re-exports ``AttributeInterner``. By job: the intern path (here), the keys
(``ribd.interner_keys``), snapshot loading (``ribd.interner_load``) and
collection (``ribd.interner_collect``).
"""

from __future__ import annotations

import contextlib
from array import array
from collections.abc import Sequence
from itertools import islice

from ribd import interner_index
from ribd.attributes import (
    AS_SEQUENCE,
    PathAttributes,
    PathCore,
    RouterPart,
    attribute_row,
    derive_as_numbers,
)
from ribd.interner_collect import InternerCollect
from ribd.interner_index import INDEX_PAST, POS_MASK
from ribd.interner_keys import (
    _EMPTY,
    LARGE_SLOTS,
    SHARE_SLOTS,
    _core_fields,
    _digest,
    _hashable,
    _own_fields,
    core_key,
    core_part,
    core_row,
    row_part,
)
from ribd.interner_load import InternerLoad


def share_numbers(ints: list, as_path: tuple) -> tuple:
    """``as_path`` (a decoder's new path) with its AS numbers taken through the
    interner's cache ``ints`` (``AttributeInterner._ints``) as ``_make_core``
    takes them, written as it writes them: the interner then keeps the path as
    it is (``_numbers_shared``) instead of building it again. The raw decoders
    call this on an AS path they decode (``ribd._rawdecode`` has it in C)."""
    mask = SHARE_SLOTS - 1
    segments = []
    for kind, numbers in as_path:
        out = []
        for n in numbers:
            seen = ints[n & mask]
            if seen != n:
                ints[n & mask] = seen = n
            out.append(seen)
        segments.append((kind, tuple(out)))
    return tuple(segments)


def _numbers_shared(ints: list, as_path: object) -> bool:
    """True when ``as_path`` is a tuple of (kind, tuple of ints) segments whose
    every number is the very object in its slot of ``ints``."""
    if type(as_path) is not tuple:
        return False
    mask = SHARE_SLOTS - 1
    for segment in as_path:
        if type(segment) is not tuple or len(segment) != 2 or type(segment[1]) is not tuple:
            return False
        for n in segment[1]:
            if type(n) is not int or ints[n & mask] is not n:
                return False
    return True


_compiled_intern = _compiled_bind = None
with contextlib.suppress(ImportError):  # the compiled twin, where setup.py built it
    from ribd._intern import bind as _compiled_bind
    from ribd._intern import intern as _compiled_intern
COMPILED = _compiled_intern is not None

__all__ = [
    "LARGE_SLOTS",
    "SCAN_VARIANTS",
    "SHARE_SLOTS",
    "AttributeInterner",
    "core_key",
    "core_part",
    "core_row",
    "row_part",
]

# A core's sets are found in its list (one set per router that carries it;
# scanned, or past INDEX_PAST sets through its index): past this many, by a
# digest of the whole row instead, so that a peer sending endless variants of
# one path cannot make each lookup longer (nor an index past its 511 positions).
# Read at each use (tests lower it).
SCAN_VARIANTS = 256


class AttributeInterner(InternerLoad, InternerCollect):
    """The one shared PathAttributes per distinct set, built on one shared
    PathCore per distinct core.

    ``_cores`` maps the ``hash()`` of a core's fields (``core_key``) to a
    list: the one ``PathCore`` all routers use, then the sets built on it,
    one per router that carries the path (next hop, local-pref, communities
    ... of its own), found by a scan comparing those few fields, or past
    ``INDEX_PAST`` sets through the list's index in ``_index`` (same key;
    ``ribd.interner_index``: O(1) whatever the number of routers). No key
    object per set: a digest key and its dict slot cost ~90 bytes a set,
    more than the set itself. Past SCAN_VARIANTS sets on one core, further
    ones are keyed in ``_overflow`` by a digest of their row.

    Why a ``hash()`` is safe here although AS numbers come from the network
    and tuple hashes of ints can be made to collide: the core under a hash
    is compared field by field with the one looked for (one C call), and a
    second core with the same hash is keyed by the BLAKE2b digest of its
    fields instead (``_digest``), its hash noted in ``_crowd`` so that its
    lookups go there. Colliding cores thus cost what every core cost
    before (a digest each), never a longer scan; distinct hashes are
    distinct int keys, which a dict probes in a bounded number of steps.
    Before, every UPDATE paid the digest (orjson + BLAKE2b, ~1.3 us).

    A new set also shares its values with earlier sets: AS numbers,
    communities, AS paths, cluster lists, originator ids ... equal to one seen
    before become that object (the same transit ASes, communities and route
    reflectors recur in most sets).

    Ints and tuples of ints go through direct-mapped caches, lists indexed by
    the value's hash, not dicts: those hashes are predictable (an int's is
    itself), so a dict of them could be flooded with colliding values, while a
    cache lookup is O(1) whatever the input; a colliding value merely evicts
    another. Strings and tuples of them go into a dict: string hashes are
    randomised per process. Aggregators (~80% distinct) are not shared: the
    lookups would cost more than they save.
    """

    __slots__ = (
        "_communities",
        "_cores",
        "_count",
        "_crowd",
        "_index",
        "_ints",
        "_memo_tag",
        "_overflow",
        "_owns",
        "_path_tags",
        "_paths",
        "_policies",
        "_texts",
        "_tuples",
    )

    def __init__(self) -> None:
        # hash (or, for a colliding core, digest) -> [core, its sets ...]
        self._cores: dict[int | bytes, list] = {}
        self._crowd: set[int] = set()  # hashes with a core under its digest
        self._index: dict[int | bytes, array] = {}  # a long list's index, by its key
        self._overflow: dict[bytes, PathAttributes] = {}
        self._count = 0  # sets held
        self._ints: list = [_EMPTY] * SHARE_SLOTS  # AS numbers, MED, LOCAL_PREF
        self._tuples: list = [_EMPTY] * SHARE_SLOTS  # large communities
        self._communities: list = [_EMPTY] * LARGE_SLOTS
        self._paths: list = [_EMPTY] * LARGE_SLOTS  # whole AS paths
        # The hash of each slot's path (0: none), read before the path: a new
        # path (most of a first table's) is told from the slot's at once,
        # without reading the held path's tuples, cold in memory by then.
        self._path_tags: array = array("q", bytes(8 * LARGE_SLOTS))
        self._policies: list = [_EMPTY] * SHARE_SLOTS  # (local_pref, originator, clusters)
        self._owns: list = [_EMPTY] * LARGE_SLOTS  # RouterPart: a set's own fields
        self._texts: dict = {}  # next hops, originator ids, cluster lists, ext. communities
        # This interner, to the compiled intern's memo of cores (ribd/_intern_corememo.pxi,
        # one for the process): its entries are taken only by the interner that made them.
        self._memo_tag = object()

    def __len__(self) -> int:
        """Distinct attribute sets (per-router sets: what routes point at)."""
        return self._count

    def cores(self) -> int:
        """Distinct shared cores (tests, stats)."""
        return len(self._cores)

    def find(self, row: Sequence) -> PathAttributes | None:
        """The set held for ``row`` (make_attributes' order), or None; builds nothing."""
        part = core_part(row)
        key, held = self._locate(hash(part), part)
        return None if held is None else self._find(key, held, row)

    def _locate(self, h: int, part: tuple) -> tuple[int | bytes, list | None]:
        """(the key of the core with fields ``part``, hash ``h``; what is held
        there or None): under its hash unless another core is held there or a
        colliding core was put under its digest (``_crowd``)."""
        held = self._cores.get(h)
        if held is not None:
            if _core_fields(held[0]) == part:
                return h, held
            self._crowd.add(h)
        elif h not in self._crowd:
            return h, None
        key = _digest(part)
        return key, self._cores.get(key)

    def _find(self, key: int | bytes, held: list, row: Sequence) -> PathAttributes | None:
        (_, _, hop, pref, _, comms, _, _, orig_id, clusters, _, _) = row
        own = RouterPart(hop, comms, (pref, orig_id, clusters))
        ix = self._indexed(key, held)
        if ix is not None:
            got = interner_index.get(ix, held, hash(own), own)
            if got is not None:
                return got
        else:
            for a in islice(held, 1, None):
                if a.own == own:
                    return a
        if len(held) > SCAN_VARIANTS:
            return self._overflow.get(_digest(tuple(row)))
        return None

    def add(self, attrs: PathAttributes) -> PathAttributes:
        """Adopt a set built elsewhere (a loaded snapshot's), unless an equal one is held.

        An adopted set's core and values are swapped in place for the shared
        ones: its routes already refer to it, and equal immutable values
        change nothing a reader can see.
        """
        row = attribute_row(attrs)
        part = core_part(row)
        key, held = self._locate(hash(part), part)
        if held is None:
            held = self._cores[key] = [self._make_core(part)]
        got = self._find(key, held, row)
        if got is not None:
            return got
        shared = self._make(held[0], *row_part(row))
        for name in PathAttributes.__struct_fields__:
            setattr(attrs, name, getattr(shared, name))
        self._hold(key, held, attrs, row)
        return attrs

    def adopt(self, other: AttributeInterner) -> None:
        """Adopt every set of ``other`` (a loaded snapshot's) not already held."""
        for attrs in other.sets():
            self.add(attrs)

    def sets(self) -> list[PathAttributes]:
        """Every set held now."""
        out = [a for held in list(self._cores.values()) for a in held[1:]]
        out.extend(list(self._overflow.values()))
        return out

    def py_intern(self, row: tuple) -> PathAttributes:
        """The shared set for ``row`` (validated fields in make_attributes' order).

        The reference: ``intern`` is ``ribd._intern.intern`` (the same steps
        compiled) where it was built, this method otherwise."""
        (path, origin, hop, pref, med, comms, large, ext, orig_id, clusters, atomic, aggr) = row
        # core_key and _locate, inlined: this runs once per UPDATE.
        part = (path, origin, med, large, ext, atomic, aggr)
        try:
            key: int | bytes = hash(part)
        except TypeError:  # decoded lists (the JSON path)
            part = _hashable(part)
            key = hash(part)
        cores = self._cores
        held = cores.get(key)
        if held is None:
            if key in self._crowd:
                key, held = self._locate(key, part)
        elif _core_fields(held[0]) != part:
            key, held = self._locate(key, part)
        own = RouterPart(hop, comms, (pref, orig_id, clusters))
        if held is None:
            if SCAN_VARIANTS >= 1:  # (tests lower it; never below 1 in use)
                # A new core and its first set in one list of two: no append
                # (a list grown by one append holds 8 slots, 48 bytes more than
                # the 2 of a core carried by one set), no index to look for (the
                # collection drops a core's index with its core): ``_hold``'s
                # steps for a new key.
                core = self._make_core(part)
                attrs = PathAttributes(core, self._share(own))
                cores[key] = [core, attrs]
                self._count += 1
                return attrs
            held = cores[key] = [self._make_core(part)]
        else:  # _find, inlined
            n = len(held)
            if INDEX_PAST + 1 < n <= POS_MASK + 1:  # interner_index.indexable
                ix = self._index.get(key)
                if ix is None or ix[0] != n:
                    ix = self._index[key] = interner_index.build(held)
                got = interner_index.get(ix, held, hash(own), own)
                if got is not None:
                    return got
            else:
                # An iterator, not indexes: the maintenance (another thread, under
                # the RIB's lock; parsing is not) may remove a set meanwhile.
                for a in islice(held, 1, None):
                    if a.own == own:  # one C compare of the three fields
                        return a
            if len(held) > SCAN_VARIANTS:
                got = self._overflow.get(_digest(row))
                if got is not None:
                    return got
        attrs = PathAttributes(held[0], self._share(own))
        self._hold(key, held, attrs, row)
        return attrs

    # The compiled twin where built, else the reference above.
    intern = _compiled_intern if _compiled_intern is not None else py_intern

    def _indexed(self, key: int | bytes, held: list) -> array | None:
        """The index of ``held`` (the list under ``key``), built or rebuilt if it
        does not cover the list as it is; None for a list scanned instead."""
        n = len(held)
        if not interner_index.indexable(n):
            return None
        ix = self._index.get(key)
        if ix is None or ix[0] != n:
            ix = self._index[key] = interner_index.build(held)
        return ix

    def _hold(self, key: int | bytes, held: list, attrs: PathAttributes, row: Sequence) -> None:
        if len(held) <= SCAN_VARIANTS:
            # A list, appended to. A tuple copied per new set (9abd700) held
            # ~1.3 B per (router, prefix) fewer live bytes at 64 routers, but
            # each copy left its old block free in a size class the cores had
            # grown out of (112-192 B: tuples of 9-19 sets): +2.4 B in free
            # blocks and +0.7 B in empty pools, +1.4 B of RSS in all
            # (sys._debugmallocstats, a twentieth of the real table).
            held.append(attrs)
            ix = self._index.get(key)
            if ix is not None and not interner_index.added(ix, held, attrs):
                # Built again now, larger, under the same key: a delete then
                # an insert would leave the dict a dummy entry each time.
                if interner_index.indexable(len(held)):
                    self._index[key] = interner_index.build(held)
                else:
                    del self._index[key]
        else:
            self._overflow[_digest(tuple(row))] = attrs
        self._count += 1

    def _make(
        self,
        core: PathCore,
        next_hop: str,
        local_pref: int | None,
        communities: tuple[int, ...],
        originator_id: str,
        cluster_list: tuple[str, ...],
    ) -> PathAttributes:
        """A router's set on ``core``, its values shared with earlier sets."""
        own = RouterPart(next_hop, communities, (local_pref, originator_id, cluster_list))
        return PathAttributes(core, self._share(own))

    def _share(self, own: RouterPart) -> RouterPart:
        """``own``, or an equal RouterPart held before (a direct-mapped cache:
        a router has a few thousand, its sets ~30 times as many); a new one
        shares its values (next hop, communities, policy) with earlier ones."""
        owns = self._owns
        at = hash(own) % LARGE_SLOTS
        seen = owns[at]
        if seen == own:
            return seen
        next_hop, communities, (local_pref, originator_id, cluster_list) = _own_fields(own)
        if local_pref is not None and local_pref > 256:  # smaller ints are shared by CPython
            ints = self._ints
            i = local_pref & (SHARE_SLOTS - 1)
            seen = ints[i]
            if seen != local_pref:
                ints[i] = seen = local_pref
            local_pref = seen
        if communities:
            cache = self._communities
            i = hash(communities) % LARGE_SLOTS  # % beats & on a 64-bit hash
            seen = cache[i]
            if seen == communities:
                communities = seen
            else:
                cache[i] = communities
        texts = self._texts
        next_hop = texts.setdefault(next_hop, next_hop)
        if originator_id:
            originator_id = texts.setdefault(originator_id, originator_id)
        if cluster_list:
            cluster_list = texts.setdefault(cluster_list, cluster_list)
        policy = (local_pref, originator_id, cluster_list)
        cache = self._policies
        i = hash(policy) % SHARE_SLOTS
        seen = cache[i]
        if seen == policy:
            policy = seen
        else:
            cache[i] = policy
        own = owns[at] = RouterPart(next_hop, communities, policy)
        return own

    def _make_core(self, row: tuple) -> PathCore:
        # Runs once per new core (~110k times per full table, then rarely: other
        # routers mostly carry cores seen before), in the ingest path:
        # everything is inlined, a call per value costs more than its lookup.
        (as_path, origin, med, large_communities, extended_communities, atomic_aggregate,
         aggregator) = row  # fmt: skip
        mask = SHARE_SLOTS - 1
        ints = self._ints
        if med is not None and med > 256:  # smaller ints are shared by CPython
            seen = ints[med & mask]
            if seen != med:
                ints[med & mask] = seen = med
            med = seen
        if large_communities:
            tuples = self._tuples
            i = hash(large_communities) % SHARE_SLOTS
            seen = tuples[i]
            if seen == large_communities:
                large_communities = seen
            else:
                tuples[i] = large_communities
        if extended_communities:
            texts = self._texts
            extended_communities = texts.setdefault(extended_communities, extended_communities)
        # Decoded segments may be lists: a tuple of tuples, then shared whole.
        # The raw decoders hand tuples of tuples already (hashable): no copy.
        try:
            h = hash(as_path) if type(as_path) is tuple else None
        except TypeError:
            h = None
        if h is None:
            as_path = tuple([(kind, tuple(numbers)) for kind, numbers in as_path])
            h = hash(as_path)
        at = h % LARGE_SLOTS
        paths = self._paths
        tags = self._path_tags
        seen = paths[at]
        if tags[at] == h and seen == as_path:  # (equal paths, equal hashes)
            as_path = seen
        else:
            tags[at] = h
            # A path the raw decoder built through ``ints`` (``share_numbers``) is
            # kept as it is: building it again would give an equal path of the
            # same number objects, writing no slot.
            if not _numbers_shared(ints, as_path):
                as_path = share_numbers(ints, as_path)
            paths[at] = as_path
        if len(as_path) == 1 and as_path[0][0] == AS_SEQUENCE and as_path[0][1]:
            asns = as_path[0][1]  # derive_as_numbers' common case
            derived: tuple = (asns[0], asns[-1], asns[-1], False, False, asns[0])
        else:
            derived = derive_as_numbers(as_path)
        return PathCore(
            as_path,
            origin,
            med,
            large_communities,
            extended_communities,
            atomic_aggregate,
            aggregator,
            *derived,
        )


if _compiled_bind is not None:
    # The compiled intern reads this class's slots at their offsets.
    _compiled_bind(AttributeInterner)
