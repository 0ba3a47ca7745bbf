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
