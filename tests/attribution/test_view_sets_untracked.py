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

import dataclasses
import gc

import pytest

from attribution import viewbuild
from attribution.compiledview import view_signature
from attribution.fastpath import ChangedRanges, CompiledViews
from attribution.viewbuild import build_view
from attribution.viewpatch import patch_view
from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.events import RoutesAnnounced, SessionState
from ribd.rib import Rib
from ribd.table import PathSet
from tests.attribution.test_bulk_many_exporters import world

compiled = pytest.importorskip("attribution._viewbuild")
V4, R1 = "ipv4 unicast", "192.0.2.1"


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


def _patched_world() -> tuple[Rib, object]:
    """A router's view built, then a new attribute set announced: the patch
    appends a set to the view's list."""
    rib = Rib()
    rib.apply(SessionState(R1, "up"))
    a = make_attributes(((AS_SEQUENCE, (65001, 64501)),), next_hop="192.0.2.254")
    rib.apply(RoutesAnnounced(R1, V4, ("10.0.0.0/8", "10.1.0.0/16"), None, a))
    view = build_view(rib, R1, V4)
    assert view is not None
    b = make_attributes(((AS_SEQUENCE, (65002, 64502)),), next_hop="192.0.2.254")
    rib.apply(RoutesAnnounced(R1, V4, ("10.1.2.0/24",), None, b))
    return rib, view


def test_a_patched_view_keeps_its_attribute_sets_untracked() -> None:
    rib, view = _patched_world()
    assert not gc.is_tracked(view.attribute_sets)
    patched = patch_view(rib, view, ChangedRanges, view_signature)
    assert patched is not None
    assert len(patched.attribute_sets) == len(view.attribute_sets) + 1
    assert not gc.is_tracked(patched.attribute_sets)


def test_a_patched_view_over_a_tracked_list_stays_tracked() -> None:
    """The old list's items are trusted only when the old list was untracked."""
    rib, view = _patched_world()
    view = dataclasses.replace(view, attribute_sets=list(view.attribute_sets))
    view.attribute_sets.append([0])  # a tracked object among the old items
    patched = patch_view(rib, view, ChangedRanges, view_signature)
    assert patched is not None and gc.is_tracked(patched.attribute_sets)


def test_untracking_a_set_list_reads_only_past_the_known_part() -> None:
    tracked = [0]
    assert compiled.untrack_set_list([1, 2, tracked], 2) is False
    sets = [1, 2, tracked]
    assert compiled.untrack_set_list(sets, 3) is True and not gc.is_tracked(sets)
    with pytest.raises(ValueError, match=r"known 4 not in 0\.\.3"):
        compiled.untrack_set_list([1, 2, 3], 4)
