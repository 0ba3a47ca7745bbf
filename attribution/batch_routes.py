"""A batch's route dictionary with its view routes numbered in numpy.

``answers.BatchRoutes`` numbers every route through ``from_match``: per
distinct route of each (router, side) group, a ``RouteMatch`` made or
fetched, a key tuple of four fields, a dict probe and an append. A batch
spread over 64 routers names ~2.2x the routes of one router's batch (the
same prefix through 64 routers is 64 routes): with routes asked, at 64
routers on 10% tables that loop was ~70% of the batch (4.8 us per route:
0.34-0.40 M flows/CPU-s spread against 0.70-0.99 M for router 1, issue 11).

Here the routes a view answers are numbered per view in numpy: each
(router, view) keeps the sorted route numbers it has handed out and their
dictionary indexes, a call numbers only the leaves new to it (one
``searchsorted``), and Python is paid once per new route for its entry.
The dictionary is the same list in the same order: a view's routes are
distinct (prefix, path id, stale) keys within one router, so numbering by
(router, view, route number) dedups as the keys did. Exact lookups
(``from_match``) still dedup by key against the view routes: the first
one keys every route numbered so far, and from then on the batch numbers
as ``BatchRoutes`` does (exact lookups are the rare case: changed
prefixes, next hops, no view).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from attribution.answers import BatchRoutes

if TYPE_CHECKING:
    from attribution.answers import RouteDictionary
    from attribution.compiledview import CompiledView
    from ribd.rib import RouteMatch


class ViewRoutes(BatchRoutes):
    """``BatchRoutes`` with view routes numbered per view (module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        # (name, id(view)) -> (view, route numbers handed out, sorted; their
        # indexes). The view is held so that its id is not reused meanwhile.
        self._numbered: dict[tuple[str, int], tuple[CompiledView, np.ndarray, np.ndarray]] = {}
        self._keyed = False  # every route is in _index (an exact route was numbered)

    def from_view(self, name: str, view: CompiledView, leaves: np.ndarray) -> np.ndarray:
        if self._keyed:
            return super().from_view(name, view, leaves)
        key = (name, id(view))
        held = self._numbered.get(key)
        start = len(self.routes)
        if held is None:
            have = np.unique(leaves)  # new routes in route order, as BatchRoutes
            ids = np.arange(start, start + len(have), dtype=np.int32)
            new = have
        else:
            have, ids = held[1], held[2]
            at = have.searchsorted(leaves)
            at[at == len(have)] = 0
            known = have[at] == leaves
            if known.all():
                return ids[at]
            new = np.unique(leaves[~known])
            both = np.concatenate([have, new])
            order = np.argsort(both, kind="stable")
            have = both[order]
            ids = np.concatenate([ids, np.arange(start, start + len(new), dtype=np.int32)])[order]
        self._numbered[key] = (view, have, ids)
        self.routes += view.pairs(name, new.astype(np.int32, copy=False)).tolist()
        return ids[have.searchsorted(leaves)]

    def from_views(
        self,
        names: list[str],
        views: list[CompiledView],
        r: np.ndarray,
        own: np.ndarray,
        call: np.ndarray,
        bits: int,
    ) -> np.ndarray:
        """``number_views`` on a dictionary that has numbered nothing yet,
        in numpy: each key's (view, route) numbered at its first call,
        new routes of a call in route order, as ``from_view`` call after
        call would number them; Python is paid per route for its pair."""
        start = len(self.routes)
        s = r.astype(np.int64) << np.int64(32)
        s |= own
        s <<= np.int64(bits)
        s |= call
        by = np.argsort(s)  # (an argsort, not a sort and a search back: 0.6 ms, not 1.9)
        s = s.take(by)
        u = s >> np.int64(bits)
        new = np.empty(len(u), dtype=bool)
        new[0] = True
        np.not_equal(u[1:], u[:-1], out=new[1:])
        first = np.flatnonzero(new)
        uniq = u.take(first)  # distinct (view, route), sorted
        cfirst = s.take(first) & np.int64((1 << bits) - 1)  # the call that names it first
        route = (uniq & np.int64(0xFFFFFFFF)).astype(np.int32)
        order = np.argsort((cfirst << np.int64(32)) | route)  # dictionary order
        rank = np.empty(len(uniq), dtype=np.int32)
        rank[order] = np.arange(start, start + len(uniq), dtype=np.int32)
        of = (uniq >> np.int64(32)).astype(np.intp)
        runs = np.flatnonzero(np.concatenate([[True], of[1:] != of[:-1]])).tolist()
        made = []
        for a, b in zip(runs, [*runs[1:], len(uniq)], strict=True):
            j = int(of[a])
            view = views[j]
            have = route[a:b]
            made.append(view.pairs(names[j], have))
            self._numbered[(names[j], id(view))] = (view, have, rank[a:b])
        self.routes += np.concatenate(made).take(order).tolist()
        out = np.empty(len(by), dtype=np.int32)
        out[by] = rank.take(np.cumsum(new) - 1)
        return out

    def from_match(self, name: str, m: RouteMatch) -> int:
        if not self._keyed:
            self._keyed = True
            index = self._index
            for i, (n, r) in enumerate(self.routes):  # view routes so far: distinct keys
                index.setdefault((n, r.prefix, r.path_id, r.stale), i)
        return super().from_match(name, m)


def number_views(
    routes: RouteDictionary,
    names: list[str],
    views: list[CompiledView],
    r: np.ndarray,
    own: np.ndarray,
    call: np.ndarray,
) -> np.ndarray:
    """The dictionary index of each key (-1: ``own`` < 0, no route) whose
    route ``own`` view ``views[r]`` (router ``names[r]``) answers with, as
    the grouped path numbers them: ``from_view`` once per (group, side),
    in the order of ``call`` (``batch_flat``). A ``ViewRoutes`` that has
    numbered nothing yet (a batch's own) does it in one pass of numpy
    (``ViewRoutes.from_views``); any other dictionary gets the calls."""
    out = np.full(len(own), -1, dtype=np.int32)
    valid = np.flatnonzero(own >= 0)
    if not len(valid):
        return out
    r, own, call = r[valid], own[valid], call[valid]
    bits = max(int(call.max()).bit_length(), 1)
    if (
        type(routes) is ViewRoutes
        and not routes._keyed
        and not routes._numbered
        and len(views).bit_length() + 32 + bits <= 62
    ):
        out[valid] = routes.from_views(names, views, r, own.astype(np.int64), call, bits)
        return out
    order = np.argsort(call, kind="stable")
    c = call[order]
    cuts = np.flatnonzero(c[1:] != c[:-1]) + 1
    for seg in np.split(order, cuts):
        j = int(r[seg[0]])
        out[valid[seg]] = routes.from_view(names[j], views[j], own[seg])
    return out
