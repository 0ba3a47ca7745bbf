"""The route objects compiled views keep for reuse, bounded for the whole process.

A batch that asks for routes gets ``RouteMatch`` objects (and ``(router
name, route)`` pairs for its route dictionary), made from a view's columns
on demand (``CompiledView.routes`` / ``pairs``). Making them was most of
what such a batch cost, so each view keeps the ones it made: a
``RouteCache``. Each costs ~276 bytes a route (the object, its prefix text,
the dict slot, the pair; measured with tracemalloc on the real table), and
one view keeps at most ``compiledview.MADE_ROUTES`` (65,536: ~18 MB). With
one cache per view that was per router: 64 routers asking for routes of
many prefixes would have held ~1.2 GB per family, ~30 bytes per (router,
prefix) of the full table, more than the whole RIB.

So the caches share one budget, ``ROUTE_CACHE_BUDGET`` routes for the
process (~36 MB): when the routes held pass it, the largest caches are
emptied until at most half the budget is held (they fill again from the
next batches; half, so that a recount is paid once per half a budget of
new routes, not on every call). Which caches exist is kept weakly: a view
dropped takes its cache with it, uncounted.

Emptying another thread's cache is safe: readers take ``made.get(i) or
make(i)`` (a route is remade, never wrong), and ``named`` is replaced
whole, never changed in place.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

ROUTE_CACHE_BUDGET = 131_072  # routes kept by all views together (~36 MB)


class RouteCache(dict):
    """One view's routes made so far, route number -> ``RouteMatch``; views
    copied from it (a move onto another axis, a repack) share it, since
    they number the same routes alike. ``named``: (router name, route
    numbers sorted, their (name, route) pairs), what ``CompiledView.pairs``
    returns; None until a batch asks."""

    __slots__ = ("__weakref__", "named")

    def __init__(self) -> None:
        super().__init__()
        self.named: tuple[str, np.ndarray, np.ndarray] | None = None

    def held(self) -> int:
        """Routes this cache holds (the pairs hold the same routes)."""
        named = self.named
        return max(len(self), 0 if named is None else len(named[1]))

    def empty(self) -> None:
        self.named = None
        self.clear()


class _Budget:
    """Counts the routes the caches were given since the last recount; past
    the budget, recounts them all and empties the largest."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # by id: a dict (subclass) has no hash; an entry goes with its cache
        self._caches: weakref.WeakValueDictionary[int, RouteCache] = weakref.WeakValueDictionary()
        self._added = 0  # routes added since the last recount (an upper bound)
        self._held = 0  # routes held at the last recount
        self.emptied = 0  # caches emptied so far (for tests and stats)

    def added(self, cache: RouteCache, count: int) -> None:
        """``cache`` was given ``count`` new routes."""
        with self._lock:
            self._caches[id(cache)] = cache
            self._added += count
            if self._held + self._added <= ROUTE_CACHE_BUDGET:
                return
            caches = sorted(self._caches.values(), key=RouteCache.held, reverse=True)
            held = sum(c.held() for c in caches)
            for c in caches:
                if held <= ROUTE_CACHE_BUDGET // 2:
                    break
                held -= c.held()
                c.empty()
                self.emptied += 1
            self._held, self._added = held, 0

    def held(self) -> int:
        """Routes all caches hold now (a recount)."""
        with self._lock:
            return sum(c.held() for c in self._caches.values())


BUDGET = _Budget()
