"""A view built while its router's table streamed in is brought current once
the table is complete, whether or not flows ask for it.

Lookups mid-load ask for a router's view, and ``VIEWS_WAIT_MAX`` builds it
then; the rest of the table arrives after that build. Before this was pinned
down, ``want_missing`` asked only for views missing or of another slot
layout, so such a view stayed behind its own routes until some refresh swept
it: at 64 routers through sessions, the 64th router's End-of-RIB swept the 63
others' views, found each behind, and rebuilt all 63 (30-44 CPU-s, the
service's RSS 1.5 -> 3 GB; BENCHMARKS.md, stop 42). Neither asked for nor
swept while its router still writes the family (``VIEW_SETTLE_SECONDS``):
"converged" is not enough, a router whose End-of-RIB is inferred is marked
so mid-load when its share of a busy ExaBGP is slow, and 63 such views were
rebuilt at every refresh of one load.
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


class Clock:
    """The RIB's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _world() -> tuple[Rib, CompiledViews, Clock]:
    clock = Clock()
    rib = Rib(clock=clock)
    return rib, CompiledViews(rib), clock


def _refresh(views: CompiledViews, rib: Rib, neighbors: list[str]) -> int:
    """Maintenance rounds as ``attribution.service`` runs them (nothing
    streaming), VIEW_SETTLE_SECONDS apart: the last one refreshes."""
    with rib.lock:
        views.want_missing(neighbors)
    rib.clock.now += fastpath.VIEW_SETTLE_SECONDS
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
    rib, views, _ = _world()
    _mid_load(rib, views)
    assert not any(_current(views, rib, n) for n in ROUTERS[:2])
    assert _refresh(views, rib, ROUTERS[:2]) == 2
    assert all(_current(views, rib, n) for n in ROUTERS[:2])
    assert _refresh(views, rib, ROUTERS[:2]) == 0  # current: nothing more to do


def test_a_late_routers_end_of_rib_builds_its_view_alone(few_changes):
    rib, views, _ = _world()
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
    rib, views, _ = _world()
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


def test_a_converged_router_still_sending_is_left_alone_until_it_settles(few_changes):
    """End-of-RIB inferred mid-load (or routes after it): its view is behind
    and the family's changes past the limit, but it is rebuilt only once the
    router has written nothing for VIEW_SETTLE_SECONDS, and another router's
    refresh does not sweep it meanwhile."""
    rib, views, clock = _world()
    _mid_load(rib, views)
    busy, other = ROUTERS[:2]
    builds = views.builds
    for i in range(4):  # a write every round: never settled
        _announce(rib, busy, 0, [f"10.200.{i}.0/24", f"10.201.{i}.0/24"])
        with rib.lock:
            views.want_missing(ROUTERS[:2])
        clock.now += fastpath.VIEW_SETTLE_SECONDS / 2
    assert views.refresh() == 1  # the other router's view, which settled
    assert views.builds - builds == 1
    assert _current(views, rib, other) and not _current(views, rib, busy)
    assert _refresh(views, rib, ROUTERS[:2]) == 1  # quiet now: brought current
    assert all(_current(views, rib, n) for n in ROUTERS[:2])


def test_a_router_converged_by_inference_gets_its_view_once_it_settles():
    """No End-of-RIB: convergence inferred from a slow spell
    (``Rib._infer_convergence``), which a router starved of ExaBGP's time
    shows mid-load. Its view waits until it has written nothing for
    VIEW_SETTLE_SECONDS; one that sent End-of-RIB gets its view at once."""
    rib, views, clock = _world()
    slow, eor = ROUTERS[:2]
    for k, n in enumerate((slow, eor)):
        rib.apply(SessionState(n, "up"))
        _announce(rib, n, k, _half(k, False))
    rib.apply(EndOfRib(eor, IPV4_UNICAST))
    with rib.lock:
        fs = rib.routers[slow].families[IPV4_UNICAST]
        fs.converged = fs.inferred = True  # as _infer_convergence leaves it
        views.want_missing([slow, eor])
    assert views.refresh() == 1 and [v.neighbor for v in views.current()] == [eor]
    clock.now += fastpath.VIEW_SETTLE_SECONDS / 2
    _announce(rib, slow, 0, _half(0, True))  # the rest of its table
    with rib.lock:
        views.want_missing([slow, eor])
    clock.now += fastpath.VIEW_SETTLE_SECONDS / 2
    with rib.lock:
        views.want_missing([slow, eor])
    assert views.refresh() == 0  # written within VIEW_SETTLE_SECONDS: still waiting
    assert _refresh(views, rib, [slow, eor]) == 1
    assert all(_current(views, rib, n) for n in (slow, eor))
    assert (views.builds, views.patches) == (2, 0)  # each view built once, whole


def test_a_router_gone_between_the_sweep_and_its_advance_is_skipped(few_changes, monkeypatch):
    """The sweep reads which routers are busy, then advances their views
    under the lock again: a router removed in between (a config reload) is
    left to the next refresh, not a KeyError that ends the refresh."""
    rib, views, _ = _world()
    _mid_load(rib, views)
    _refresh(views, rib, ROUTERS[:2])
    gone = ROUTERS[1]
    _announce(rib, gone, 1, ["10.250.0.0/24"])  # busy: written just now
    with rib.lock:
        views.want_missing(ROUTERS[:2])
        views.usable_many([(ROUTERS[0], IPV4_UNICAST)])
    views._wanted.add((ROUTERS[0], IPV4_UNICAST))
    busy = views._busy

    def then_removed(keys):
        out = busy(keys)
        with rib.lock:
            del rib.routers[gone]
        return out

    monkeypatch.setattr(views, "_busy", then_removed)
    views.refresh()  # no KeyError
    assert _current(views, rib, ROUTERS[0])
