"""The route objects compiled views keep for reuse, bounded for the whole
process.

A batch that asks for routes gets ``RouteMatch`` objects (and ``(router
name, route)`` pairs for its route dictionary), made from a view's columns
on demand (``CompiledView.routes`` / ``pairs``). Making them was most of
what such a batch cost, so each view keeps the ones it made: a
``RouteCache``. Each costs ~276 bytes a route (the object, its prefix text,
the dict slot, the pair; measured with tracemalloc on the real table), and
one view keeps at most ``compiledview.MADE_ROUTES`` (65,536: ~18 MB). With
one cache per view that was per router: 64 routers asking for routes of many
prefixes would have held ~1.2 GB per family, ~30 bytes per (router, prefix)
of the full table, more than the whole RIB.

So the caches share one budget, ``ROUTE_CACHE_BUDGET`` routes for the
process (``[service] route_cache_routes``, ``set_budget``; by default
~72 MB, ~2 B per (router, prefix) at 64 full routers; the
``bench.bulk_routers`` working set with routes at 64 routers is ~132k routes
at a fifth of the table, ~151k at half: it fits). Once it is full, new
routes are still made for the batch that asks, but not kept (``admits`` is
False): the routes kept stay, and a working set larger than the budget costs
in proportion to what is missing (a cache refused more than it holds starts
again: ``RouteCache.admits``). Emptying caches to make room did not: with
batches spread over 64 routers whose routes were a little more than the
budget, emptying the least recently used caches to half the budget cut the
with-routes rate 3.5x (1.26 -> 0.36 M flows/CPU-s at a fifth of the table,
``bench.bulk_routers``), each batch remaking what the last one dropped.
Room comes back as views go (a patch or a rebuild replaces a view and its
cache; the budget knows caches weakly, so a dropped one leaves uncounted)
and from caches not read for ``IDLE_SECONDS`` (a router whose flows
stopped), emptied at the next recount while the budget is full. That is a
few seconds, not a minute: while the budget is full a router whose flows
start (or grow) keeps no new routes until such room appears, and at a
131,072 budget, half the table, flows moved from 64 routers to one ran at
0.49 against 1.98 M flows/CPU-s with routes until it did. Batches spread
over every router read every cache each batch, so no cache they use is
ever idle that long; a router whose batches come further apart than that
while the budget is full remakes its few routes, at its own small rate.

Watched in production through ``attribution_route_cache_*`` (held, budget,
refused, emptied; ``attribution.metrics_scrape``).

Emptying another thread's cache is safe: readers take ``made.get(i) or
make(i)`` (a route is remade, never wrong), and ``named`` is replaced whole,
never changed in place.
"""

from __future__ import annotations

import threading
import time
import weakref

import numpy as np

DEFAULT_BUDGET = 262_144  # [service] route_cache_routes' default (~72 MB)
ROUTE_CACHE_BUDGET = DEFAULT_BUDGET  # routes kept by all views together (``set_budget``)
IDLE_SECONDS = 5.0  # a cache not read for this long is emptied when room is needed
RECOUNT_SECONDS = 1.0  # while full, how often the caches are recounted


class RouteCache(dict):
    """One view's routes made so far, route number -> ``RouteMatch``; views
    copied from it (a move onto another axis, a repack) share it, since
    they number the same routes alike. ``named``: (router name, route
    numbers sorted, their (name, route) pairs), what ``CompiledView.pairs``
    returns; None until a batch asks."""

    __slots__ = ("__weakref__", "named", "refused", "used")

    def __init__(self) -> None:
        super().__init__()
        self.named: tuple[str, np.ndarray, np.ndarray] | None = None
        self.used = 0.0  # time.monotonic() at its last read (``touch``)
        self.refused = 0  # routes it could not keep since it last started

    def admits(self, count: int, size: int, cap: int) -> bool:
        """Whether ``count`` new routes may join a structure of this cache
        now holding ``size`` (of at most ``cap``: a view's own limit) under
        the process's budget. A cache refused more routes than it holds
        serves its batches badly (what it kept is not what they ask):
        it starts again, at most once per that many misses, so a
        working set larger than the room costs at most about twice its
        misses, never every route of every batch."""
        if size + count <= cap and BUDGET.admits():
            return True
        self.refused += count
        BUDGET.refused += count
        if self.refused > self.held():
            BUDGET.release(self.held())
            self.empty()
            return count <= cap and BUDGET.admits()
        return False

    def touch(self) -> None:
        """Mark this cache read now (every batch that reads it, hits or not)."""
        self.used = time.monotonic()

    def held(self) -> int:
        """Routes this cache holds (the pairs hold the same routes)."""
        named = self.named
        return max(len(self), 0 if named is None else len(named[1]))

    def empty(self) -> None:
        self.named = None
        self.refused = 0
        self.clear()


class _Budget:
    """Counts the routes kept since the last recount; past the budget,
    recounts them all, empties idle caches, and stops admitting new routes
    while the rest still fill it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # by id: a dict (subclass) has no hash; an entry goes with its cache
        self._caches: weakref.WeakValueDictionary[int, RouteCache] = weakref.WeakValueDictionary()
        # Routes held at the last recount, plus those kept since: an upper
        # bound (``pairs`` counts routes its ``routes`` call counted too; a
        # recount sets it right), so the budget is never passed unnoticed.
        self._held = 0
        self._recounted = 0.0
        self.full = False
        self.emptied = 0  # idle caches emptied so far (stats, tests)
        self.refused = 0  # routes made but not kept for want of room (stats, tests)

    def admits(self) -> bool:
        """Whether new routes may be kept now (a recount at most once a
        ``RECOUNT_SECONDS`` while full, so room made by views that went is
        found)."""
        if not self.full:
            return True
        if time.monotonic() - self._recounted >= RECOUNT_SECONDS:
            with self._lock:
                self._recount()
        return not self.full

    def added(self, cache: RouteCache, count: int) -> None:
        """``cache`` kept ``count`` new routes."""
        with self._lock:
            self._caches[id(cache)] = cache
            self._held += count
            if self._held >= ROUTE_CACHE_BUDGET:
                self._recount()

    def release(self, count: int) -> None:
        """A cache emptied itself of ``count`` routes."""
        with self._lock:
            self._held = max(0, self._held - count)
            self.full = self._held >= ROUTE_CACHE_BUDGET

    def _recount(self) -> None:
        now = time.monotonic()
        caches = list(self._caches.values())
        held = 0
        for c in caches:
            if c.held() and now - c.used >= IDLE_SECONDS:
                c.empty()
                self.emptied += 1
            held += c.held()
        self._held, self._recounted = held, now
        self.full = held >= ROUTE_CACHE_BUDGET

    def held(self) -> int:
        """Routes all caches hold now (a recount)."""
        with self._lock:
            return sum(c.held() for c in self._caches.values())


BUDGET = _Budget()


def set_budget(routes: int) -> None:
    """Make ``routes`` the process's budget (``[service] route_cache_routes``,
    at start and at every reload). A lower one takes effect at once: a
    recount marks the budget full, so nothing new is kept and idle caches
    go; caches read meanwhile shrink as views are replaced or start again.
    The same one (a reload that changed other things) changes nothing."""
    global ROUTE_CACHE_BUDGET
    with BUDGET._lock:
        if routes != ROUTE_CACHE_BUDGET:
            ROUTE_CACHE_BUDGET = routes
            BUDGET._recount()
