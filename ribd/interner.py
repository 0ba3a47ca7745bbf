"""The attribute interner: one shared core per path for all routers, one small set per router.

Split out of ``ribd.attributes`` (the types and rules of attribute sets):
this is how they are stored once and shared, and how unused ones are
forgotten. ``ribd.attributes`` re-exports ``AttributeInterner``.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Sequence
from hashlib import blake2b
from itertools import compress, islice, starmap
from operator import attrgetter

import orjson

from ribd.attributes import (
    AS_SEQUENCE,
    CORE_FIELDS,
    PathAttributes,
    PathCore,
    attribute_row,
    derive_as_numbers,
)


def _digest(values: tuple) -> bytes:
    """160 bits of a BLAKE2b of the JSON of ``values``: the key of a core whose
    ``hash()`` another core already has, and of a set past SCAN_VARIANTS.

    Cryptographic rather than ``hash()`` of a tuple: AS numbers and
    communities come from the network, and colliding Python hashes are easy
    to craft. The full digest cut to 160 bits rather than ``digest_size=20``:
    parsing that keyword costs more than hashing a row. Digests live in one
    process only.
    """
    return blake2b(orjson.dumps(values)).digest()[:20]


# A core's fields in core_key's order, read in one C call.
_core_fields = attrgetter(*CORE_FIELDS)


def _hashable(part: tuple) -> tuple:
    """A core's fields with decoded lists made tuples (the JSON path may hand
    segments and communities as lists); equal values, so equal cores."""
    (path, origin, med, large, ext, atomic, aggr) = part
    path = tuple([(kind, tuple(numbers)) for kind, numbers in path])
    return (path, origin, med, tuple(map(tuple, large)), tuple(ext), atomic, aggr)


def core_part(row: Sequence) -> tuple:
    """The shared core's fields of a set given as its row (make_attributes'
    order), hashable, in ``CORE_FIELDS`` order."""
    (path, origin, _, _, med, _, large, ext, _, _, atomic, aggr) = row
    part = (path, origin, med, large, ext, atomic, aggr)
    try:
        hash(part)
    except TypeError:
        return _hashable(part)
    return part


def core_key(row: Sequence) -> int:
    """The ``hash()`` of a set's core part (``core_part``): where its core is
    first looked for (``AttributeInterner``)."""
    return hash(core_part(row))


# Slots of each direct-mapped cache (a power of two). A full table has ~52k
# distinct AS numbers, but most of the sharing is of the frequent ones: 2^14
# slots share ~90% of what 2^16 do, and a small list stays in the CPU caches.
SHARE_SLOTS = 1 << 14
# Whole AS paths and community lists: a table has ~100k distinct paths and
# tens of thousands of community lists, and the sets sharing one come from
# different routers, far apart in the feed.
LARGE_SLOTS = 1 << 16
# A core's sets are found by a scan of its list (one set per router that
# carries it): past this many, by a digest of the whole row instead, so that
# a peer sending endless variants of one path cannot make each scan longer.
SCAN_VARIANTS = 256
_EMPTY = -1  # an empty slot: equal to no value, and an int like the values


class AttributeInterner:
    """The one shared PathAttributes per distinct set, built on one shared
    PathCore per distinct core.

    ``_cores`` maps the ``hash()`` of a core's fields (``core_key``) to a
    list: the one ``PathCore`` all routers use, then the sets built on it,
    one per router that carries the path (next hop, local-pref, communities
    ... of its own), found by a scan comparing those few fields. No key
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
        "_ints",
        "_overflow",
        "_paths",
        "_policies",
        "_texts",
        "_tuples",
    )

    def __init__(self) -> None:
        # hash (or, for a colliding core, digest) -> [core, its sets ...]
        self._cores: dict[int | bytes, list] = {}
        self._crowd: set[int] = set()  # hashes with a core under its digest
        self._overflow: dict[bytes, PathAttributes] = {}
        self._count = 0  # sets held
        self._ints: list = [_EMPTY] * SHARE_SLOTS  # AS numbers, MED, LOCAL_PREF
        self._tuples: list = [_EMPTY] * SHARE_SLOTS  # large communities
        self._communities: list = [_EMPTY] * LARGE_SLOTS
        self._paths: list = [_EMPTY] * LARGE_SLOTS  # whole AS paths
        self._policies: list = [_EMPTY] * SHARE_SLOTS  # (local_pref, originator, clusters)
        self._texts: dict = {}  # next hops, originator ids, cluster lists, ext. communities

    def __len__(self) -> int:
        """Distinct attribute sets (per-router sets: what routes point at)."""
        return self._count

    def cores(self) -> int:
        """Distinct shared cores (tests, stats)."""
        return len(self._cores)

    def find(self, row: Sequence) -> PathAttributes | None:
        """The set held for ``row`` (make_attributes' order), or None; builds nothing."""
        part = core_part(row)
        held = self._locate(hash(part), part)[1]
        return None if held is None else self._find(held, row)

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

    def _find(self, held: list, row: Sequence) -> PathAttributes | None:
        (_, _, hop, pref, _, comms, _, _, orig_id, clusters, _, _) = row
        policy = (pref, orig_id, clusters)
        for a in islice(held, 1, None):
            if a.next_hop == hop and a.communities == comms and a.policy == policy:
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
        got = self._find(held, row)
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

    def intern(self, row: tuple) -> PathAttributes:
        """The shared set for ``row`` (validated fields in make_attributes' order)."""
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
        if held is None:
            held = cores[key] = [self._make_core(part)]
        else:  # _find, inlined
            policy = (pref, orig_id, clusters)
            # An iterator, not indexes: the maintenance (another thread, under
            # the RIB's lock; parsing is not) may remove a set meanwhile.
            for a in islice(held, 1, None):
                if a.next_hop == hop and a.communities == comms and a.policy == policy:
                    return a
            if len(held) > SCAN_VARIANTS:
                got = self._overflow.get(_digest(row))
                if got is not None:
                    return got
        attrs = self._make(held[0], hop, pref, comms, orig_id, clusters)
        self._hold(key, held, attrs, row)
        return attrs

    def load_core(self, h: int, core: PathCore) -> list:
        """Hold ``core``, built elsewhere (a snapshot's), whose fields hash to ``h``
        (``core_key``); returns its list, the one already held if an equal core
        was (a list while a load fills it: ``load_sets`` makes them tuples)."""
        cores = self._cores
        held = cores.get(h)
        if held is None and h not in self._crowd:
            held = cores[h] = [core]
            return held
        key, held = self._locate(h, _core_fields(core))
        if held is None:
            held = self._cores[key] = [core]
        return held

    def load_cores(self, hashes: list[int], cores: list[PathCore]) -> list[list]:
        """``load_core`` for each core (``hashes``: each one's ``core_key``), in one
        dict update when this interner holds nothing yet and no two hashes are
        equal (a snapshot load into its own interner: the common case)."""
        if not self._cores and not self._crowd:
            helds = [[c] for c in cores]
            self._cores.update(zip(hashes, helds, strict=True))
            if len(self._cores) == len(hashes):
                return helds
            self._cores.clear()  # two equal hashes: one at a time, compared
        return list(map(self.load_core, hashes, cores))

    def load_sets(self, helds: list[list], sets: list[PathAttributes], late: Sequence[int]) -> None:
        """Hold ``sets``, built elsewhere (a snapshot's), each on the core of its list
        in ``helds`` (``load_core``'s). No digest per set: a core's list takes its sets
        unkeyed, up to SCAN_VARIANTS; past that, by a digest of the row as ``intern``
        does, and a set equal to one held there is replaced in ``sets`` by it.

        ``late``: the indexes (ascending) of the sets past the SCAN_VARIANTS
        first of their core (the caller counts, vectorised: it knows its lists,
        fresh from ``load_core``); the others go in with one C loop."""
        if not len(late):
            deque(map(list.append, helds, sets), maxlen=0)
            self._count += len(sets)
        else:
            early = bytearray(b"\x01") * len(sets)
            for i in late:
                early[i] = 0
            deque(starmap(list.append, compress(zip(helds, sets, strict=True), early)), maxlen=0)
            self._count += len(sets) - len(late)
            self._load_sets(helds, sets, late)

    def _load_sets(
        self, helds: list[list], sets: list[PathAttributes], late: Sequence[int]
    ) -> None:
        for i in late:
            held, attrs = helds[i], sets[i]
            if len(held) <= SCAN_VARIANTS:
                held.append(attrs)
                self._count += 1
                continue
            key = _digest(attribute_row(attrs))
            got = self._overflow.get(key)
            if got is None:
                self._overflow[key] = attrs
                self._count += 1
            else:
                sets[i] = got

    def share_loaded(
        self, paths: list, communities: list, strings: list[str], policies: Sequence = ()
    ) -> None:
        """Offer values of loaded sets (AS paths, community lists, addresses,
        policies ...) for sharing with the sets built after, as if ``_make`` had
        seen them."""
        cache = self._policies
        for p in policies:
            cache[hash(p) % SHARE_SLOTS] = p
        cache = self._paths
        for p in paths:
            cache[hash(p) % LARGE_SLOTS] = p
        cache = self._communities
        for c in communities:
            if c:
                cache[hash(c) % LARGE_SLOTS] = c
        texts = self._texts
        for s in strings:
            texts.setdefault(s, s)

    def _hold(self, key: bytes, held: list, attrs: PathAttributes, row: Sequence) -> None:
        if len(held) <= SCAN_VARIANTS:
            # A list, appended to. A tuple copied per new set (9abd700) held
            # ~1.3 B per (router, prefix) fewer live bytes at 64 routers, but
            # each copy left its old block free in a size class the cores had
            # grown out of (112-192 B: tuples of 9-19 sets): +2.4 B in free
            # blocks and +0.7 B in empty pools, +1.4 B of RSS in all
            # (sys._debugmallocstats, a twentieth of the real table).
            held.append(attrs)
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
        return PathAttributes(core, next_hop, communities, policy)

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
            at = hash(as_path) % LARGE_SLOTS if type(as_path) is tuple else -1
        except TypeError:
            at = -1
        if at < 0:
            as_path = tuple([(kind, tuple(numbers)) for kind, numbers in as_path])
            at = hash(as_path) % LARGE_SLOTS
        paths = self._paths
        seen = paths[at]
        if seen == as_path:
            as_path = seen
        else:
            segments = []
            for kind, numbers in as_path:
                out = []
                for n in numbers:
                    seen = ints[n & mask]
                    if seen != n:
                        ints[n & mask] = seen = n
                    out.append(seen)
                segments.append((kind, tuple(out)))
            as_path = paths[at] = tuple(segments)
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

    def collect_unused(self, in_use: set[int]) -> int:
        """Drop sets no route refers to any more (ids in ``in_use`` are kept),
        then the cores and shared values nothing else holds, so churn cannot
        grow them.

        Feed threads intern while this runs (they parse outside ``rib.lock``):
        dicts are walked through copies, and a value they pick up meanwhile
        at worst ends up in a set unshared.
        """
        dead = [a for a in self.sets() if id(a) not in in_use]
        n = sum(map(self._forget, dead))
        del dead
        keys = self.keys()
        self.drop_unreferenced(keys, 0, len(keys))
        self.collect_shared_values()
        return n

    def keys(self) -> list:
        """Every set, then every core, now (for ``drop_unreferenced``, in steps):
        the sets first, so cores only they held go in the same pass."""
        out: list = self.sets()
        out.extend([held[0] for held in list(self._cores.values())])
        return out

    def drop_unreferenced(self, keys: list, start: int, stop: int) -> int:
        """Forget the sets and cores of ``keys[start:stop]`` (``keys()``) that
        nothing else refers to (no route, view or parse in flight holds them);
        returns how many sets were dropped.

        Exact at the moment of each check, so a collection can run in steps
        between writes (``ribd.rib``); a feed thread picking a set up between
        the check and the removal at worst ends up with a set unshared. Each
        dropped object's core digest is computed again to find its list.
        """
        getrefcount = sys.getrefcount
        dropped = 0
        for i in range(start, stop):
            obj = keys[i]
            keys[i] = None
            # References: its core's list (or the overflow dict), ``obj`` and
            # getrefcount's argument; a core also has one from each of its sets.
            if getrefcount(obj) > 3:
                continue
            if type(obj) is PathAttributes:
                if self._forget(obj):
                    dropped += 1
                continue
            key, held = self._key_of(obj)
            if held is not None and len(held) == 1 and held[0] is obj:
                del self._cores[key]
        return dropped

    def _key_of(self, core: PathCore) -> tuple[int | bytes, list | None]:
        """Where ``core``'s list is (``_locate``), found from its fields again."""
        part = _core_fields(core)
        return self._locate(hash(part), part)

    def _forget(self, attrs: PathAttributes) -> bool:
        """Remove ``attrs`` from where it is held; False if it is not held."""
        key, held = self._key_of(attrs.core)
        if held is not None and held[0] is attrs.core:
            for i in range(1, len(held)):
                if held[i] is attrs:
                    del held[i]
                    self._count -= 1
                    return True
        key = _digest(attribute_row(attrs))
        if self._overflow.get(key) is attrs:
            del self._overflow[key]
            self._count -= 1
            return True
        return False

    def collect_shared_values(self) -> None:
        """Drop the shared values (see ``_make``) no set holds any more; and the
        hashes of ``_crowd`` no core under a digest has any more (a peer sending
        colliding paths cannot grow it beyond what is held)."""
        crowded = [held[0] for key, held in list(self._cores.items()) if type(key) is bytes]
        self._crowd = {hash(_core_fields(c)) for c in crowded}
        del crowded
        getrefcount = sys.getrefcount
        # Policies first: they hold strings of ``_texts`` and ints of ``_ints``.
        caches = (self._policies, self._paths, self._communities, self._tuples, self._ints)
        cache = caches[0]
        for i in range(len(cache)):
            if getrefcount(cache[i]) <= 2:  # the cache and getrefcount's argument
                cache[i] = _EMPTY
        texts = self._texts
        keys = list(texts)
        # References: the dict's key and value, ``keys``, ``v``, getrefcount's argument.
        for v in [v for v in keys if getrefcount(v) <= 5]:
            del texts[v]
        del keys
        # Paths and tuples first (they hold ints), then ints.
        for cache in caches[1:]:
            for i in range(len(cache)):
                # References: the cache, ``v`` and getrefcount's argument.
                v = cache[i]
                if getrefcount(v) <= 3:
                    cache[i] = _EMPTY

    def shared_values(self) -> int:
        """How many values are held for sharing (tests, stats)."""
        caches = (self._ints, self._tuples, self._communities, self._paths, self._policies)
        cached = sum(v is not _EMPTY for cache in caches for v in cache)
        return cached + len(self._texts)


def core_row(c: PathCore) -> tuple:
    """A core's fields in ``core_key``'s order."""
    return _core_fields(c)


def row_part(row: Sequence) -> tuple:
    """The per-router fields of a row in ``AttributeInterner._make``'s order."""
    return (row[2], row[3], row[5], row[8], row[9])
