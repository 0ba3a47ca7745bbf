"""A view built while its router's table streamed in is brought current once
the table is complete, whether or not flows ask for it.

Lookups mid-load ask for a router's view, and ``VIEWS_WAIT_MAX`` builds it
then; the rest of the table arrives after that build. Before this was pinned
down, ``want_missing`` asked only for views missing or of another slot
layout, so such a view stayed behind its own routes until some refresh swept
it: at 64 routers through sessions, the 64th router's End-of-RIB swept the 63
others' views, found each behind, and rebuilt all 63 (30-44 CPU-s, the
service's RSS 1.5 -> 3 GB; BENCHMARKS.md, stop 42). Loading routers' views
are no longer swept either: every route they send changes them, and their
End-of-RIB asks for them again.
"""

from __future__ import annotations

import pytest

from attribution import fastpath
from attribution.fastpath import CompiledViews
from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.events import IPV4_UNICAST, EndOfRib, RoutesAnnounced, SessionState
from ribd.rib import Rib

ROUTERS = [f"127.0.9.{k + 1}" for k in range(3)]


def _announce(rib: Rib, neighbor: str, k: int, prefixes: list[str]) -> None:
    attrs = make_attributes(((AS_SEQUENCE, (64512 + k, 65001)),), next_hop=f"127.0.9.{k + 1}")
    rib.apply(RoutesAnnounced(neighbor, IPV4_UNICAST, tuple(prefixes), None, attrs))


def _half(k: int, second: bool) -> list[str]:
    """Half of a router's table: 10.k.0-63.0/24, or 10.k.64-127.0/24."""
    base = 64 if second else 0
    return [f"10.{k}.{i}.0/24" for i in range(base, base + 64)]


def _refresh(views: CompiledViews, rib: Rib, neighbors: list[str]) -> int:
    """One maintenance round as ``attribution.service`` runs it (nothing streaming)."""
    with rib.lock:
        views.want_missing(neighbors)
    return views.refresh()


def _current(views: CompiledViews, rib: Rib, neighbor: str) -> bool:
    """Whether the router's view answers for its routes as they are now."""
    view = next(v for v in views.current() if v.neighbor == neighbor)
    table = rib.tables[IPV4_UNICAST]
    with rib.lock:
        r = rib.routers[neighbor]
        return fastpath.as_is(view, r, r.families[IPV4_UNICAST], table, table.change_seq) is True


@pytest.fixture
def few_changes(monkeypatch):
    """A view behind by more than a handful of changes is due (the daemon's
    limit, REBUILD_AFTER_CHANGES, is sized for full tables)."""
    monkeypatch.setattr(fastpath, "REBUILD_AFTER_CHANGES", 16)


def _mid_load(rib: Rib, views: CompiledViews) -> None:
    """Every router sends half its table; flows ask for every view (built
    at once, as VIEWS_WAIT_MAX's forced build does); the rest of each table
    and End-of-RIB follow, and no flow asks again."""
    for k, n in enumerate(ROUTERS[:2]):
        rib.apply(SessionState(n, "up"))
        _announce(rib, n, k, _half(k, False))
    with rib.lock:
        views.usable_many([(n, IPV4_UNICAST) for n in ROUTERS[:2]])  # the lookups' ask
    assert views.refresh() == 2
    for k, n in enumerate(ROUTERS[:2]):
        _announce(rib, n, k, _half(k, True))
        rib.apply(EndOfRib(n, IPV4_UNICAST))


def test_a_view_built_mid_load_is_made_current_after_end_of_rib_without_lookups(few_changes):
    rib = Rib()
    views = CompiledViews(rib)
    _mid_load(rib, views)
    assert not any(_current(views, rib, n) for n in ROUTERS[:2])
    assert _refresh(views, rib, ROUTERS[:2]) == 2
    assert all(_current(views, rib, n) for n in ROUTERS[:2])
    assert _refresh(views, rib, ROUTERS[:2]) == 0  # current: nothing more to do


def test_a_late_routers_end_of_rib_builds_its_view_alone(few_changes):
    rib = Rib()
    views = CompiledViews(rib)
    _mid_load(rib, views)
    _refresh(views, rib, ROUTERS[:2])
    late = ROUTERS[2]
    rib.apply(SessionState(late, "up"))
    _announce(rib, late, 2, _half(2, False) + _half(2, True))
    rib.apply(EndOfRib(late, IPV4_UNICAST))
    builds, patches, advanced = views.builds, views.patches, views.advanced
    assert _refresh(views, rib, ROUTERS) == 1  # the late router's own view
    assert (views.builds - builds, views.patches - patches) == (1, 0)
    assert views.advanced - advanced == 2  # the others: made current as they were
    assert all(_current(views, rib, n) for n in ROUTERS)


def test_a_loading_routers_view_is_not_rebuilt_by_another_routers_refresh(few_changes):
    """A refresh sweeps the family's views to advance them; a router still
    sending its table is left out (its End-of-RIB asks for its view)."""
    rib = Rib()
    views = CompiledViews(rib)
    _mid_load(rib, views)
    _refresh(views, rib, ROUTERS[:2])
    loading = ROUTERS[2]
    rib.apply(SessionState(loading, "up"))
    _announce(rib, loading, 2, _half(2, False))
    with rib.lock:
        views.usable_many([(loading, IPV4_UNICAST)])
    assert views.refresh() == 1  # built mid-load: lookups asked
    _announce(rib, loading, 2, _half(2, True))  # still loading, no End-of-RIB
    rib.apply(RoutesAnnounced(ROUTERS[0], IPV4_UNICAST, ("10.0.0.0/24",), None, _attrs_for(9)))
    builds = views.builds
    assert _refresh(views, rib, ROUTERS) == 1  # router 1's churn, patched
    assert views.builds - builds == 1 and not _current(views, rib, loading)
    rib.apply(EndOfRib(loading, IPV4_UNICAST))
    assert _refresh(views, rib, ROUTERS) == 1
    assert all(_current(views, rib, n) for n in ROUTERS)


def _attrs_for(k: int):
    return make_attributes(((AS_SEQUENCE, (64600 + k,)),), next_hop="127.0.9.200")
