"""A loading router's view that flows ask for is rebuilt mid-load only as its
table grows (``fastpath.LOADING_VIEW_GROWTH``), not at every end of the wait
for loads.

Flows during a load ask for every loading router's view; the maintenance
builds what they asked for each time ``VIEWS_WAIT_MAX`` of waiting ends. At
64 routers with 20 k flows/s, 63 views were built ~3 times over one load: the
maintenance took 43-46 CPU-s where the load's feed took 59 (BENCHMARKS.md, stop
44). With the growth rule the builds of a load cost at most about twice its
final one; flows in prefixes changed since the view are answered exactly.
Churn (a table that does not grow by more than REBUILD_AFTER_CHANGES) is
patched as before.
"""

from __future__ import annotations

import numpy as np
import pytest

from attribution import fastpath
from attribution.fastpath import CompiledViews
from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.events import IPV4_UNICAST, EndOfRib, RoutesAnnounced, SessionState
from ribd.rib import Rib

ROUTERS = ["127.0.9.1", "127.0.9.2"]


def _announce(rib: Rib, neighbor: str, k: int, first: int, count: int) -> None:
    """Router k's prefixes 10.k.first.0/24 .. 10.k.(first + count - 1).0/24."""
    attrs = make_attributes(((AS_SEQUENCE, (64512 + k, 65001)),), next_hop=neighbor)
    prefixes = tuple(f"10.{k}.{i}.0/24" for i in range(first, first + count))
    rib.apply(RoutesAnnounced(neighbor, IPV4_UNICAST, prefixes, None, attrs))


def _flows_ask(rib: Rib, views: CompiledViews) -> None:
    """A batch over every router asks for their views (as ``usable_many`` does)."""
    with rib.lock:
        views.usable_many([(n, IPV4_UNICAST) for n in ROUTERS])


@pytest.fixture
def loading():
    """Both routers up and half-way through 40 prefixes each, no End-of-RIB;
    a view behind by more than a few changes is due."""
    rib = Rib()
    views = CompiledViews(rib)
    for k, n in enumerate(ROUTERS):
        rib.apply(SessionState(n, "up"))
        _announce(rib, n, k, 0, 20)
    return rib, views


@pytest.fixture(autouse=True)
def few_changes(monkeypatch):
    monkeypatch.setattr(fastpath, "REBUILD_AFTER_CHANGES", 4)


def test_a_loading_routers_view_asked_for_is_built_once_then_waits_for_its_table_to_double(
    loading,
):
    rib, views = loading
    _flows_ask(rib, views)
    assert views.refresh() == 2  # no view yet: built, as before
    for k, n in enumerate(ROUTERS):
        _announce(rib, n, k, 20, 19)  # 39 prefixes: under twice 20
    _flows_ask(rib, views)
    builds = views.builds
    assert views.refresh() == 0
    assert views.builds == builds
    for k, n in enumerate(ROUTERS):
        _announce(rib, n, k, 39, 1)  # 40: twice the table its view was built from
    assert views.refresh() == 2  # the asks kept from the refresh before


def test_a_loading_routers_view_waiting_for_growth_still_answers_its_new_routes(loading):
    rib, views = loading
    _flows_ask(rib, views)
    views.refresh()
    _announce(rib, ROUTERS[0], 0, 20, 10)
    _flows_ask(rib, views)
    assert views.refresh() == 0
    with rib.lock:
        got = views.usable(ROUTERS[0], IPV4_UNICAST)
    assert got is not None
    _, changed = got
    # 10.0.25.0/24 came after the view: it lies in the changed ranges, which
    # the bulk path answers exactly from the RIB; 10.0.5.0/24 does not.
    keys = np.array([(10 << 24) | (25 << 8) | 1, (10 << 24) | (5 << 8) | 1], dtype=np.uint32)
    assert changed.mask(keys).tolist() == [True, False]


def test_a_view_older_than_the_loading_limit_is_rebuilt_without_growth(loading, monkeypatch):
    rib, views = loading
    _flows_ask(rib, views)
    views.refresh()
    _announce(rib, ROUTERS[0], 0, 20, 5)
    monkeypatch.setattr(fastpath, "LOADING_VIEW_MAX_AGE", 0.0)
    _flows_ask(rib, views)
    assert views.refresh() == 1  # router 1's: router 2 changed nothing (made current)


def test_end_of_rib_builds_the_view_whatever_the_growth(loading):
    rib, views = loading
    _flows_ask(rib, views)
    views.refresh()
    _announce(rib, ROUTERS[0], 0, 20, 5)
    rib.apply(EndOfRib(ROUTERS[0], IPV4_UNICAST))
    _flows_ask(rib, views)
    assert views.refresh() == 1
    view = next(v for v in views.current() if v.neighbor == ROUTERS[0])
    table = rib.tables[IPV4_UNICAST]
    with rib.lock:
        r = rib.routers[ROUTERS[0]]
        assert fastpath.as_is(view, r, r.families[IPV4_UNICAST], table, table.change_seq)


def test_churn_on_a_loading_router_is_brought_into_its_view_as_before(loading):
    """Routes changed, no prefix added: not a load, so nothing waits."""
    rib, views = loading
    _flows_ask(rib, views)
    views.refresh()
    attrs = make_attributes(((AS_SEQUENCE, (64999, 65001)),), next_hop=ROUTERS[0])
    prefixes = tuple(f"10.0.{i}.0/24" for i in range(10))
    rib.apply(RoutesAnnounced(ROUTERS[0], IPV4_UNICAST, prefixes, None, attrs))
    _flows_ask(rib, views)
    assert views.refresh() == 1
    with rib.lock:
        _, changed = views.usable(ROUTERS[0], IPV4_UNICAST)
    assert not len(changed.starts)  # current: no address left to the exact path
