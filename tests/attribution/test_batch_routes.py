"""``batch_routes.ViewRoutes`` (view routes numbered in numpy) makes the same
route dictionary as ``answers.BatchRoutes`` (every route through its key).

Random many-router worlds (``test_bulk_many_exporters``: fallback chains,
ADD-PATH, a stale router without a view, default routes, IPv6 longer than
/64), batches spread over every exporter with and without next hops:
fresh views, churn not compiled yet (changed prefixes: exact lookups whose
routes are often routes a view answers too, in the same batch, before and
after them), and views patched and renumbered after churn. Every batch's
records (route indexes included), errors and dictionary (router, prefix,
path id, stale, attribute set) equal those of ``BatchRoutes`` on the
grouped path, whether the batch is grouped or answered flat.
"""

from __future__ import annotations

import pytest

from attribution import batch_flat
from attribution.answers import BatchRoutes
from attribution.batch_routes import ViewRoutes
from attribution.resolver import Resolver
from tests.attribution.test_batch_flat import _columns
from tests.attribution.test_bulk_many_exporters import _churn, _more_churn, flows, world


def _compiled(rib, config) -> Resolver:
    """A resolver with every router's views built."""
    resolver = Resolver(rib, config, build_views_inline=False)
    with rib.lock:
        resolver.views.want_missing(list(rib.routers))
    resolver.views.refresh()
    return resolver


def _two_views(monkeypatch, budget: int) -> tuple:
    """The two largest views of ``world(3)``, under a fresh route budget of
    ``budget`` routes (set back after the test)."""
    from attribution import routecache

    monkeypatch.setattr(routecache, "ROUTE_CACHE_BUDGET", budget)
    monkeypatch.setattr(routecache, "BUDGET", routecache._Budget())
    rib, config, _, _ = world(3)
    a, b = sorted(_compiled(rib, config).views.current(), key=len)[-2:]
    return a, b


def _resolve(resolver: Resolver, records: list[dict], routes, hops: bool) -> tuple:
    exporters, ex, src, dst, next_hop = _columns(records)
    res = resolver.resolve_columns(
        exporters, ex, src, dst, routes=routes, next_hop=next_hop if hops else None
    )
    dictionary = [(name, m.prefix, m.path_id, m.stale, id(m.attributes)) for name, m in res.routes]
    return res.records.tobytes(), list(res.routers), sorted(res.errors), dictionary


def _check(resolver: Resolver, records: list[dict]) -> int:
    """Both dictionaries alike, with and without next hops, on the grouped
    path and on the flat one (``batch_flat``, batches without next hops:
    ``ViewRoutes`` numbered in one pass there, ``BatchRoutes`` through its
    ``from_view`` calls); routes named."""
    named = 0
    saved = batch_flat.ENABLED
    try:
        for hops in (False, True):
            batch_flat.ENABLED = False
            want = _resolve(resolver, records, BatchRoutes(), hops)
            for flat in (False, True):
                batch_flat.ENABLED = flat
                got = _resolve(resolver, records, ViewRoutes(), hops)
                assert got == want, (hops, flat)
                assert _resolve(resolver, records, BatchRoutes(), hops) == want, (hops, flat)
            named += len(want[3])
    finally:
        batch_flat.ENABLED = saved
    return named


@pytest.mark.parametrize("seed", range(4))
def test_view_routes_number_as_batch_routes(seed):
    rib, config, v4, v6 = world(seed, same_prefixes=seed == 2)
    resolver = _compiled(rib, config)
    views = resolver.views
    records = [f for f in flows(seed, v4, v6, 1500) if f["exporter"] != "not an address"]
    assert _check(resolver, records) > 100
    # Churn not compiled: routers 0, 3, 5 have changed prefixes (exact lookups).
    _churn(rib, v4, seed)
    assert _check(resolver, records) > 100
    # Then patched and renumbered (holes, one shared leaf), churned again.
    for round_ in range(2):
        _more_churn(rib, v4, v6, seed * 10 + round_)
        with rib.lock:
            views._wanted.update((v.neighbor, v.family) for v in views.current())
        views.refresh()
        assert _check(resolver, records) > 100
        _churn(rib, v4, seed + round_ + 1)
        assert _check(resolver, records) > 100


def test_a_batch_numbers_view_routes_once_per_router_and_route():
    """The dst and src sides of a group, and exporters that fall back to one
    router, share their routes' entries: each (router, prefix, path id,
    stale) is named once."""
    rib, config, v4, v6 = world(0)
    resolver = _compiled(rib, config)
    records = [f for f in flows(0, v4, v6, 1500) if f["exporter"] != "not an address"]
    for flat in (False, True):
        saved, batch_flat.ENABLED = batch_flat.ENABLED, flat
        try:
            dictionary = _resolve(resolver, records, ViewRoutes(), False)[3]
        finally:
            batch_flat.ENABLED = saved
        keys = [d[:4] for d in dictionary]
        assert len(keys) == len(set(keys)) > 100


def test_a_views_kept_pairs_are_its_routes_under_each_name(monkeypatch):
    """``CompiledView.pairs`` keeps (name, route) pairs across calls: each
    call's pairs are the view's routes under the name asked, through the
    cache's restart past ``MADE_ROUTES``, a renamed router, and a view made
    from it with other routes and a new ``made`` (as a patch makes one: the
    pairs it inherits are not its routes)."""
    import dataclasses
    import random

    import numpy as np

    from attribution import compiledview
    from attribution.routecache import RouteCache

    rib, config, _, _ = world(1)
    resolver = _compiled(rib, config)
    view = max(resolver.views.current(), key=len)
    assert len(view) >= 60 and len(view.attribute_sets) > 1
    monkeypatch.setattr(compiledview, "MADE_ROUTES", 40)
    rng = random.Random(3)

    def route(m) -> tuple:
        return m.prefix, m.path_id, m.stale, m.attributes

    for k in range(60):
        if k == 45:  # other attribute sets for every route, the pairs kept
            shifted = (view.attribute_index + 1) % len(view.attribute_sets)
            view = dataclasses.replace(view, attribute_index=shifted, made=RouteCache())
        name = "r" if k < 30 else "renamed"
        leaves = sorted(rng.sample(range(len(view)), rng.randint(1, 25)))
        got = view.pairs(name, np.array(leaves, dtype=np.int32)).tolist()
        assert len(view.made.named[1]) <= 40  # (route() below may empty the cache)
        want = [(name, route(view.route(i))) for i in leaves]
        assert [(n, route(m)) for n, m in got] == want, k


def test_all_views_route_caches_stay_within_one_budget(monkeypatch):
    """Every view keeps the routes it made for reuse; together they hold at
    most ``ROUTE_CACHE_BUDGET`` (past it new routes are made but not kept),
    so routers asking for routes of many prefixes cannot grow the process
    by ~18 MB a view. The answers stay the exact lookups' (the dictionaries
    of the grouped and flat paths alike, as above) while routes are refused
    and caches start again under them."""
    from attribution import routecache

    rib, config, v4, v6 = world(1)
    resolver = _compiled(rib, config)
    budget = 150
    monkeypatch.setattr(routecache, "ROUTE_CACHE_BUDGET", budget)
    monkeypatch.setattr(routecache, "BUDGET", routecache._Budget())
    records = [f for f in flows(1, v4, v6, 1500) if f["exporter"] != "not an address"]
    for start in range(0, len(records), 300):
        assert _check(resolver, records[start : start + 300]) > 20
        held = routecache.BUDGET.held()
        # at most the budget, plus what the last call added past a recount
        assert held <= budget + 300, held
    assert routecache.BUDGET.refused > 0
    views = resolver.views.current()
    assert sum(v.made.held() for v in {id(v.made): v for v in views}.values()) <= budget + 300


def test_a_dropped_views_routes_leave_the_budget(monkeypatch):
    """The budget knows caches weakly: a view replaced and dropped (a patch)
    takes its routes with it and is not counted or kept alive."""
    import gc

    import numpy as np

    from attribution import routecache
    from attribution.compiledview import CompiledView

    monkeypatch.setattr(routecache, "BUDGET", routecache._Budget())
    rib, config, _, _ = world(2)
    resolver = _compiled(rib, config)
    view = max(resolver.views.current(), key=len)
    copy = CompiledView(
        **{
            f: getattr(view, f)
            for f in (
                "neighbor",
                "family",
                "signature",
                "seq",
                "built_at",
                "starts",
                "leaf",
                "nets",
                "nets_low",
                "lengths",
                "path_ids",
                "attribute_index",
                "attribute_sets",
                "answer",
                "answers",
                "long_v6",
                "changed",
            )
        }
    )
    copy.pairs("r", np.arange(min(30, len(copy)), dtype=np.int32))
    assert routecache.BUDGET.held() >= 30
    del copy
    gc.collect()
    assert routecache.BUDGET.held() == 0


def test_a_full_budget_keeps_what_it_holds_and_restarts_a_cache_that_misses(monkeypatch):
    """With the budget full, a route asked for again is still the one kept
    (no emptying to make room: batches a little larger than the room then
    remade every route, 3.5x slower); a cache that was refused more routes
    than it holds starts again with the routes now asked; a cache not read
    for ``IDLE_SECONDS`` is emptied at the next recount."""
    import numpy as np

    from attribution import routecache

    a, b = _two_views(monkeypatch, 20)
    assert len(a) >= 60 and a.made is not b.made
    kept = a.routes(list(range(20)))
    assert routecache.BUDGET.full and len(a.made) == 20
    assert a.routes(list(range(20, 30))) and len(a.made) == 20  # refused, not kept
    assert [m is k for m, k in zip(a.routes(list(range(20))), kept, strict=True)] == [True] * 20
    assert b.routes([0, 1]) and len(b.made) == 0  # another view: no room either
    a.routes(list(range(30, 45)))  # refused 10 + 15 > 20 held: starts again with these
    assert sorted(a.made) == list(range(30, 45)) and routecache.BUDGET.held() == 15
    assert b.route(5) is b.made[5]  # room again
    pairs = a.pairs("r", np.arange(30, 35, dtype=np.int32))
    assert [p[1] for p in pairs] == [a.made[i] for i in range(30, 35)]
    monkeypatch.setattr(routecache, "IDLE_SECONDS", 0.0)
    monkeypatch.setattr(routecache, "RECOUNT_SECONDS", 0.0)
    routecache.BUDGET.added(b.made, 20)  # past the budget: a recount
    assert routecache.BUDGET.held() == 0 and routecache.BUDGET.emptied == 2


def test_a_router_whose_flows_start_gets_room_from_caches_idle_a_few_seconds(monkeypatch):
    """With the budget full of the routes of routers whose flows stopped
    (flows moved from many routers to one), the router now read gets room
    once those caches have been unread for ``IDLE_SECONDS`` (a few seconds),
    not after a minute of routes made and not kept (0.49 against 1.98 M
    flows/CPU-s with routes at half the table); caches read within that
    time keep their routes, so batches spread over every router, which read
    every cache each batch, never empty one another."""
    import time

    from attribution import routecache

    monkeypatch.setattr(routecache, "RECOUNT_SECONDS", 0.0)
    a, b = _two_views(monkeypatch, 20)
    a.routes(list(range(20)))
    assert routecache.BUDGET.full
    b.routes([0, 1])
    assert len(b.made) == 0  # a was read just now: it keeps its routes
    a.made.used = time.monotonic() - 10.0  # a's router sent nothing for 10 s
    b.routes([0, 1])
    assert sorted(b.made) == [0, 1] and len(a.made) == 0
    assert routecache.BUDGET.emptied == 1 and routecache.BUDGET.held() == 2


def test_the_route_budget_is_the_configs_and_a_reload_lowers_it_at_once(monkeypatch):
    """``[service] route_cache_routes`` sets the budget (0 keeps no route);
    out of range it is refused naming the key; a reload changes it live
    (listed among the changes), and a lower budget stops keeping routes at
    once, idle caches emptied."""
    import time

    import pytest

    from attribution import routecache
    from attribution.config import ConfigError, parse_config
    from attribution.reload_changes import describe_changes, restart_needed

    base = '[service]\nlocal_as = 64500\nrouter_id = "127.0.0.1"\n'
    assert parse_config(base).route_cache_routes == routecache.DEFAULT_BUDGET == 262_144
    small = parse_config(base + "route_cache_routes = 30\n")
    assert small.route_cache_routes == 30
    for bad in ("-1", "16777217", '"many"'):
        with pytest.raises(ConfigError, match="route_cache_routes"):
            parse_config(base + f"route_cache_routes = {bad}\n")
    assert describe_changes(parse_config(base), small) == ["route_cache_routes 262144 -> 30"]
    assert restart_needed(parse_config(base), small) == []

    a, b = _two_views(monkeypatch, routecache.ROUTE_CACHE_BUDGET)
    routecache.set_budget(small.route_cache_routes)
    a.routes(list(range(20)))
    assert len(a.made) == 20 and not routecache.BUDGET.full
    a.made.used = time.monotonic() - 10.0  # a's router idle
    routecache.set_budget(30)  # a reload that left it as it was: nothing recounted
    assert len(a.made) == 20 and routecache.BUDGET.emptied == 0
    routecache.set_budget(10)  # a reload lowering it
    assert routecache.BUDGET.held() == 0 and routecache.BUDGET.emptied == 1
    routecache.set_budget(0)
    b.routes([0, 1])
    assert len(b.made) == 0 and routecache.BUDGET.full  # made for the batch, not kept
