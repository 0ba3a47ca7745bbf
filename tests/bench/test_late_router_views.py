"""``bench.late_router --views``: the views a router's End-of-RIB makes the service
build, timed after its feed, for a first router and for one loaded after it."""

from __future__ import annotations

import pytest

from attribution.fastpath import CompiledViews
from bench.late_router import _build_views
from ribd.events import EndOfRib, RoutesAnnounced, SessionState
from ribd.rib import Rib
from tests.attribution.helpers import EDGE1, EDGE2, attrs

V4 = "ipv4 unicast"


def announce(rib: Rib, neighbor: str, first_as: int, end: bool) -> None:
    rib.apply(SessionState(neighbor, "up"))
    for i in range(50):
        rib.apply(
            RoutesAnnounced(neighbor, V4, (f"10.{i}.0.0/16",), None, attrs((first_as, 65100 + i)))
        )
    if end:
        rib.apply(EndOfRib(neighbor, V4))


def test_each_complete_router_gets_its_view_built_and_a_cpu_figure() -> None:
    rib = Rib()
    views = CompiledViews(rib)
    announce(rib, EDGE1, 65001, end=True)
    assert _build_views(rib, views) >= 0.0
    announce(rib, EDGE2, 65002, end=True)  # the late router, over a shared store
    assert _build_views(rib, views) >= 0.0
    assert {n for n, _ in views._views} == {EDGE1, EDGE2}
    assert views.builds == 2


def test_a_router_without_end_of_rib_is_refused_not_timed_as_a_build() -> None:
    rib = Rib()
    views = CompiledViews(rib)
    announce(rib, EDGE1, 65001, end=False)
    with pytest.raises(SystemExit, match="not complete"):
        _build_views(rib, views)


def test_build_stages_time_each_stage_and_put_every_function_back() -> None:
    """``--stages``: a build's stages timed through wrappers that are gone after
    it (the modules' functions, the RIB's and the views' own methods again)."""
    from attribution import fastpath, viewbuild
    from bench.late_router import BuildStages

    rib = Rib()
    views = CompiledViews(rib)
    announce(rib, EDGE1, 65001, end=True)
    before = (viewbuild.read_family, viewbuild.slot_routes, fastpath.pack, fastpath.build_view)
    with BuildStages(rib, views) as timer:
        total = _build_views(rib, views, timer)
        assert viewbuild.slot_routes is not before[1]  # wrapped while entered
    assert (viewbuild.read_family, viewbuild.slot_routes, fastpath.pack) == before[:3]
    assert fastpath.build_view is before[3]
    assert "merge_now" not in vars(rib) and "_one_axis" not in vars(views)
    assert {"read_family", "slot_routes", "build_view", "answers"} <= set(timer.spent)
    assert all(c >= 0.0 for c in timer.spent.values())
    assert sum(timer.spent.values()) <= total + 0.01
