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

from itertools import repeat
from typing import TYPE_CHECKING

import numpy as np

from attribution.answers import BatchRoutes

if TYPE_CHECKING:
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
        self.routes += zip(repeat(name), view.routes(new.tolist()))
        return ids[have.searchsorted(leaves)]

    def from_match(self, name: str, m: RouteMatch) -> int:
        if not self._keyed:
            self._keyed = True
            index = self._index
            for i, (n, r) in enumerate(self.routes):  # view routes so far: distinct keys
                index.setdefault((n, r.prefix, r.path_id, r.stale), i)
        return super().from_match(name, m)
