"""The attribute interner's collection: forgetting the sets, cores and shared values no one uses.

A mixin of ``ribd.interner.AttributeInterner`` (its state is there), run by
the RIB's maintenance while feed threads go on interning (they parse outside
the RIB's lock): everything here walks copies and checks reference counts at
the moment it removes, so a reader never waits on it and a set picked up
meanwhile at worst ends up unshared.
"""

from __future__ import annotations

import sys

from ribd.attributes import PathAttributes, PathCore, attribute_row
from ribd.interner_keys import _EMPTY, _core_fields, _digest

try:  # the compiled intern's memo of cores names lists held (ribd/_intern_corememo.pxi)
    from ribd._intern import core_memo_forget as _core_memo_forget
except ImportError:  # not built: no memo
    _core_memo_forget = None


class InternerCollect:
    """Collection for ``AttributeInterner`` (which holds the state)."""

    __slots__ = ()

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
                self._index.pop(key, None)
                if _core_memo_forget is not None:  # the list is no longer held
                    _core_memo_forget(held)
        return dropped

    def _key_of(self, core: PathCore) -> tuple[int | bytes, list | None]:
        """Where ``core``'s list is (``_locate``), found from its fields again."""
        part = _core_fields(core)
        return self._locate(hash(part), part)

    def _forget(self, attrs: PathAttributes) -> bool:
        """Remove ``attrs`` from where it is held; False if it is not held.
        Its list's index (``ribd.interner_index``) goes too: positions moved,
        and the next lookup builds it again from the list."""
        key, held = self._key_of(attrs.core)
        if held is not None and held[0] is attrs.core:
            for i in range(1, len(held)):
                if held[i] is attrs:
                    del held[i]
                    self._index.pop(key, None)
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
        # Router parts first (they hold policies, community lists and next
        # hops), then policies: they hold strings of ``_texts`` and ints of ``_ints``.
        caches = (self._policies, self._paths, self._communities, self._tuples, self._ints)
        for cache in (self._owns, caches[0]):
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
        caches += (self._owns,)
        cached = sum(v is not _EMPTY for cache in caches for v in cache)
        return cached + len(self._texts)
