"""A view's list of attribute sets is kept out of the cyclic collector's walks.

Each view keeps the sets its routes point to (~110 k for a full table). While
that list was tracked, the first young collections after a build read every
set's header, one cache miss per set and view: 0.23 s after 63 views were
built at once, paid by the maintenance thread (BENCHMARKS.md, stop 46). The
sets are ``gc=False`` Structs, so no cycle can pass through the list, and the
compiled read leaves it untracked. A list that holds a tracked object stays
tracked.
"""

from __future__ import annotations

import gc

import pytest

from attribution import viewbuild
from attribution.fastpath import CompiledViews
from ribd.table import PathSet
from tests.attribution.test_bulk_many_exporters import world

compiled = pytest.importorskip("attribution._viewbuild")


def test_built_views_keep_their_attribute_sets_untracked() -> None:
    rib, _config, _v4, _v6 = world(2)
    views = CompiledViews(rib)
    with rib.lock:
        views.want_missing(list(rib.routers))
    assert views.refresh() > 3
    for view in views.current():
        assert view.attribute_sets, view.neighbor
        assert not any(gc.is_tracked(s) for s in view.attribute_sets)
        assert not gc.is_tracked(view.attribute_sets), (view.neighbor, view.family)


def test_a_set_list_holding_a_tracked_object_stays_tracked() -> None:
    rib, _config, _v4, _v6 = world(2)
    table = next(iter(rib.tables.values()))
    with rib.lock:
        entries = [e for _, e in table.store.items()][:50]
    _, _, _, plain = compiled.slot_routes(entries, 0, -1, False)
    assert plain and not gc.is_tracked(plain)
    odd = [0]  # a tracked object where a set would be (an ADD-PATH value's best path)
    _, _, _, sets = compiled.slot_routes([(PathSet(((1, odd),)),)], 0, -1, False)
    assert sets == [odd] and gc.is_tracked(sets)
    assert viewbuild.slot_routes([(PathSet(((1, odd),)),)], 0, None, False)[3] == [odd]
