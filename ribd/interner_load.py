"""The attribute interner's snapshot loading: cores and sets built elsewhere, held in bulk.

A mixin of ``ribd.interner.AttributeInterner`` (its state is there): a
snapshot load (``ribd.snapshot_v2_load``) builds the cores and sets itself,
vectorised, and hands them over here in a few calls rather than interning
each row.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from itertools import compress, starmap

from ribd.attributes import PathAttributes, PathCore, attribute_row
from ribd.interner_keys import LARGE_SLOTS, SHARE_SLOTS, _core_fields, _digest


class InternerLoad:
    """Snapshot loading for ``AttributeInterner`` (which holds the state)."""

    __slots__ = ()

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
        from ribd import interner  # (read at each load: tests lower SCAN_VARIANTS)

        scan = interner.SCAN_VARIANTS
        for i in late:
            held, attrs = helds[i], sets[i]
            if len(held) <= scan:
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
        self,
        paths: list,
        communities: list,
        strings: list[str],
        policies: Sequence = (),
        owns: Sequence = (),
    ) -> None:
        """Offer values of loaded sets (AS paths, community lists, addresses,
        policies, router parts ...) for sharing with the sets built after, as if
        ``_make`` had seen them."""
        cache = self._owns
        for o in owns:
            cache[hash(o) % LARGE_SLOTS] = o
        cache = self._policies
        for p in policies:
            cache[hash(p) % SHARE_SLOTS] = p
        cache = self._paths
        tags = self._path_tags
        for p in paths:
            h = hash(p)
            cache[h % LARGE_SLOTS] = p
            tags[h % LARGE_SLOTS] = h
        cache = self._communities
        for c in communities:
            if c:
                cache[hash(c) % LARGE_SLOTS] = c
        texts = self._texts
        for s in strings:
            texts.setdefault(s, s)
