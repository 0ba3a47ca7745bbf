"""When the RIB's upkeep runs during a table load: garbage collection and compiled views.

A first load only adds routes, so a garbage collection then frees nothing;
views compiled for one router while another's table streams in are work
done twice (and hold the feed up). These pin what starts them.
"""

from __future__ import annotations

from ribd.attributes import attribute_row
from ribd.events import EndOfRib
from ribd.maintenance import GC_CHURN, VIEWS_WAIT_MAX
from ribd.rib import Rib
from ribd.table import MERGE_QUIET
from tests.ribd.test_rib import R1, R2, V4, Clock, announce, down, drain, path, up, withdraw


def _pfx(i: int) -> str:
    return f"10.{i // 256 % 256}.{i % 256}.0/24"


def _load(rib: Rib, router: str, n: int, first_as: int = 1000, start: int = 0) -> None:
    """``n`` routes, each with an attribute set of its own, as a table load brings them."""
    for i in range(start, start + n):
        attrs = rib.interner.intern(attribute_row(path(1, first_as + i)))
        announce(rib, router, [_pfx(i)], attrs)


def _collections_during(rib: Rib, router: str, n: int, first_as: int = 1000) -> int:
    """Load ``n`` routes in steps with maintenance rounds between; how many collections ran."""
    started = 0
    for at in range(0, n, 500):
        _load(rib, router, 500, first_as, at)
        rib.maintenance()
        started += rib._collection is not None
        drain(rib)
    return started


def test_a_first_table_load_starts_no_garbage_collection():
    """Before, a collection started each time the interner grew by half: ~10
    during a first load, each walking every set and freeing nothing."""
    rib = Rib()
    up(rib, R1)
    assert _collections_during(rib, R1, 8000) == 0
    assert len(rib.interner) == 8000


def test_a_second_router_loading_the_same_prefixes_starts_no_garbage_collection():
    rib = Rib()
    up(rib, R1)
    up(rib, R2)
    _load(rib, R1, 4000)
    drain(rib)
    assert _collections_during(rib, R2, 4000, first_as=50_000) == 0


def test_routes_replaced_after_growth_are_collected():
    rib = Rib()
    up(rib, R1)
    _load(rib, R1, 4000)
    drain(rib)
    keep = rib.interner.intern(attribute_row(path(1, 2)))
    announce(rib, R1, [_pfx(i) for i in range(4000)], keep)  # every set replaced
    del keep
    drain(rib)
    assert len(rib.interner) == 1


def test_withdrawals_after_growth_are_collected():
    rib = Rib()
    up(rib, R1)
    _load(rib, R1, 4000)
    drain(rib)
    withdraw(rib, R1, [_pfx(i) for i in range(GC_CHURN // 2 + 1)])  # counts twice
    drain(rib)
    assert len(rib.interner) == 4000 - (GC_CHURN // 2 + 1)


def test_a_purged_router_is_collected():
    rib = Rib()  # no stale hold: a session down purges the router's routes
    up(rib, R1)
    _load(rib, R1, 4000)
    down(rib, R1)
    drain(rib)
    assert len(rib.interner) == 0


def test_sets_interned_for_routes_that_never_landed_are_collected():
    """Lines of a neighbor that is no router are parsed (their sets interned)
    before the feed refuses them: no route write, but garbage all the same."""
    rib = Rib()
    rib.neighbors = frozenset({R1})
    up(rib, R1)
    for i in range(4000):
        attrs = rib.interner.intern(attribute_row(path(1, 1000 + i)))
        announce(rib, R2, [_pfx(i)], attrs)  # refused: unknown neighbor
    del attrs
    drain(rib)
    assert rib.unknown_neighbor_events == 4000
    assert len(rib.interner) == 0


def _converge(rib: Rib, router: str) -> None:
    rib.apply(EndOfRib(router, V4))


def test_views_wait_while_another_router_s_table_streams_in():
    clock = Clock()
    rib = Rib(clock=clock)
    up(rib, R1)
    up(rib, R2)
    _load(rib, R1, 100)
    _converge(rib, R1)
    assert not rib.views_may_wait()  # nothing else loading
    _load(rib, R2, 100, start=100)
    assert rib.views_may_wait()  # R2 is streaming in
    clock.now += MERGE_QUIET / 2
    _load(rib, R2, 100, start=200)
    assert rib.views_may_wait()
    clock.now += MERGE_QUIET  # R2 quiet (no End-of-RIB yet): no reason to wait
    assert not rib.views_may_wait()
    _load(rib, R2, 10, start=300)
    assert rib.views_may_wait()
    _converge(rib, R2)
    assert not rib.views_may_wait()


def test_views_wait_at_most_views_wait_max_for_an_endless_load():
    clock = Clock()
    rib = Rib(clock=clock)
    up(rib, R1)
    waited = []
    for step in range(int(2.5 * VIEWS_WAIT_MAX)):
        _load(rib, R1, 1, start=step)
        waited.append(rib.views_may_wait())
        clock.now += 1.0
    # Builds go ahead once per VIEWS_WAIT_MAX, then wait again.
    assert waited.count(False) == 2
    assert waited[0] and all(waited[: int(VIEWS_WAIT_MAX)])


def test_views_do_not_wait_for_a_session_that_is_down():
    clock = Clock()
    rib = Rib(clock=clock, stale_hold_time=300.0)
    up(rib, R1)
    _load(rib, R1, 100)
    down(rib, R1)  # kept stale, not converged, but nothing streams in
    assert not rib.views_may_wait()


def _stream(rib: Rib, clock: Clock, routers: list[str], seconds: float, per_second: int) -> None:
    """Routes of each router, ``per_second`` a second for ``seconds``, with a
    maintenance round each second, as the service runs it."""
    at = 0
    for _ in range(int(seconds)):
        for router in routers:
            _load(rib, router, per_second, start=at)
        at += per_second
        clock.now += 1.0
        drain(rib)


def test_a_load_longer_than_merge_every_is_merged_once_it_ends():
    """Before, a load lasting longer than MERGE_EVERY (two today-sized tables at
    once) met a merge half way: overtaken by the load's writes, retried, then
    run under the lock while the feed waited."""
    from ribd.table import MERGE_EVERY

    clock = Clock()
    rib = Rib(clock=clock)
    up(rib, R1)
    up(rib, R2)
    store = rib.tables[V4].store
    _stream(rib, clock, [R1, R2], MERGE_EVERY * 1.5, 40)
    assert not len(store.keys) and store.has_delta()  # not merged while streaming
    _converge(rib, R1)
    _converge(rib, R2)
    clock.now += MERGE_QUIET
    drain(rib)
    assert len(store.keys) == int(MERGE_EVERY * 1.5) * 40 and not store.has_delta()


def test_a_store_is_still_merged_at_max_delta_while_a_table_streams_in(monkeypatch):
    import ribd.table

    monkeypatch.setattr(ribd.table, "MAX_DELTA", 1000)
    monkeypatch.setattr(ribd.table, "COUNT_DELTA_EVERY", 100)
    clock = Clock()
    rib = Rib(clock=clock)
    up(rib, R1)
    store = rib.tables[V4].store
    _stream(rib, clock, [R1], 40, 50)  # 2000 prefixes
    assert len(store.keys) >= 1000


def test_a_store_under_churn_is_still_merged_every_merge_every():
    """Converged routers' endless writes: MERGE_EVERY still bounds the delta."""
    from ribd.table import MERGE_EVERY

    clock = Clock()
    rib = Rib(clock=clock)
    up(rib, R1)
    _load(rib, R1, 10)
    _converge(rib, R1)
    drain(rib)
    store = rib.tables[V4].store
    clock.now += MERGE_QUIET
    drain(rib)
    merged = len(store.keys)
    _stream(rib, clock, [R1], MERGE_EVERY + 5, 3)  # new prefixes every second, converged
    assert len(store.keys) > merged
