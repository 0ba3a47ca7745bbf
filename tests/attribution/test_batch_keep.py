"""The flat path's plan kept across batches (``attribution.batch_keep``) is
reused only while nothing it read changed.

For each kind of change that can move a plan's answer (withdrawals, a
router's session going down with its routes kept stale or purged, a
session coming back, a feed gap, a view replaced or patched, a config
reload that maps an exporter elsewhere, a router appearing on the feed for
an unconfigured exporter, the stale hold expiring), on the many-router
worlds of ``test_bulk_many_exporters``: the batch before the change reuses
the plan, the batch after it does not, and its answer equals the grouped
path's and exact lookups'. Each test also plants the staleness (the kept
plan forced on after the change) and checks that the answer then differs:
the change matters, so the test would catch a kept plan that missed it.
Every field the reuse test compares is also flipped alone.
"""

from __future__ import annotations

import random

import pytest

from attribution import batch_keep
from attribution.config import parse_config
from attribution.resolver import Resolver
from ribd.events import RoutesAnnounced, RoutesWithdrawn, SessionState
from tests.attribution.test_batch_flat import _resolve
from tests.attribution.test_bulk_many_exporters import (
    ROUTERS,
    V4,
    V6,
    _attrs,
    config_text,
    exporter,
    flows,
    neighbor,
    world,
)

SEEDS = range(3)


def _setup(seed: int):
    rib, config, v4, v6 = world(seed)
    resolver = Resolver(rib, config, build_views_inline=False)
    with rib.lock:
        resolver.views.want_missing(list(rib.routers))
    resolver.views.refresh()
    # IPv4 flows of every configured exporter whose router has a view (r4's
    # session is down: no view), r2's through its fallback r5.
    usable = {exporter(k) for k in range(ROUTERS)} - {exporter(4)}
    records = [
        {k: f[k] for k in ("exporter", "src_addr", "dst_addr")}
        for f in flows(seed, v4, v6, 3000)
        if f["exporter"] in usable and "." in f["src_addr"] and "." in f["dst_addr"]
    ]
    return rib, config, v4, resolver, records


def _refresh(resolver: Resolver) -> None:
    """Every view brought up to date, as ``bench.bulk_routers`` does after churn."""
    with resolver.rib.lock:
        resolver.views._wanted.update(resolver.views._views)
        resolver.views._wanted.update((neighbor(0), f) for f in (V4, V6))
    resolver.views.refresh()


def _kept_twice(resolver: Resolver, records: list[dict]) -> tuple:
    """Two batches: the second reuses the first's plan."""
    first = _resolve(resolver, records, True)
    before = resolver.flat_plans_kept
    assert _resolve(resolver, records, True) == first
    assert resolver.flat_plans_kept == before + 1
    return first


def _after(
    resolver: Resolver, rib, config, records: list[dict], monkeypatch, differs: bool = True
) -> tuple:
    """The batch after a change: no plan reused, the grouped path's and
    exact lookups' answer; and with the stale plan forced on, another
    (``differs``; else the same)."""
    kept = resolver.flat_plan
    before = resolver.flat_plans_kept
    got = _resolve(resolver, records, True)
    assert resolver.flat_plans_kept == before  # refused
    assert got == _resolve(resolver, records, False)
    exact = Resolver(rib, config, build_views_inline=False)
    exact.routing = resolver.routing
    assert got == _resolve(exact, records, False)
    # Planted staleness: the plan of before the change, reused anyway.
    monkeypatch.setattr(batch_keep, "still", lambda *a: True)
    resolver.flat_plan = kept
    stale = _resolve(resolver, records, True)
    monkeypatch.undo()
    assert (stale != got) is differs
    return got


@pytest.mark.parametrize("seed", SEEDS)
def test_withdrawals_refuse_the_kept_plan(seed, monkeypatch):
    rib, config, v4, resolver, records = _setup(seed)
    _kept_twice(resolver, records)
    rib.apply(RoutesWithdrawn(neighbor(0), V4, tuple(v4), None))
    _after(resolver, rib, config, records, monkeypatch)
    _refresh(resolver)  # the views patched: the flat path again, a new plan
    _kept_twice(resolver, records)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_router_going_down_refuses_the_kept_plan(seed, monkeypatch):
    rib, config, _, resolver, records = _setup(seed)
    _kept_twice(resolver, records)
    rib.stale_hold_by_neighbor[neighbor(0)] = 600
    rib.apply(SessionState(neighbor(0), "down", reason="test"))  # kept, stale
    _after(resolver, rib, config, records, monkeypatch)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_purged_router_refuses_the_kept_plan(seed, monkeypatch):
    rib, config, _, resolver, records = _setup(seed)
    _kept_twice(resolver, records)
    rib.stale_hold_by_neighbor[neighbor(0)] = 0
    rib.apply(SessionState(neighbor(0), "down", reason="test"))  # purged
    _after(resolver, rib, config, records, monkeypatch)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_session_back_and_a_feed_gap_refuse_the_kept_plan(seed, monkeypatch):
    rib, config, _, resolver, records = _setup(seed)
    rib.stale_hold_by_neighbor[neighbor(0)] = 600
    rib.apply(SessionState(neighbor(0), "down", reason="test"))
    _refresh(resolver)  # r0's view of its stale routes
    _kept_twice(resolver, records)
    rib.apply(SessionState(neighbor(0), "up"))  # its routes a stale generation now
    # (The same answers: stale routes either way; the slots moved, so the
    # view's signature, and the plan, are not the same.)
    _after(resolver, rib, config, records, monkeypatch, differs=False)
    _refresh(resolver)
    _kept_twice(resolver, records)
    with rib.lock:
        rib.mark_gap()  # every router's routes stale, awaiting a re-read
    _after(resolver, rib, config, records, monkeypatch)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_stale_hold_expiring_refuses_the_kept_plan(seed, monkeypatch):
    rib, config, _, resolver, records = _setup(seed)
    now = [1000.0]
    rib.clock = lambda: now[0]
    rib.stale_hold_by_neighbor[neighbor(0)] = 600
    rib.apply(SessionState(neighbor(0), "down", reason="test"))
    _refresh(resolver)
    _kept_twice(resolver, records)
    now[0] += 601
    rib.maintenance()  # the hold expired: r0 purged
    _after(resolver, rib, config, records, monkeypatch)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_view_replaced_refuses_the_kept_plan(seed):
    """A view written without any change of the RIB (planted: r0 given r1's
    view) moves the views' change number: the plan is refused. (Its
    answers would not differ: a plan reading the swapped view fails its
    signature check and takes the exact path; what the number keeps is a
    plan from holding a replaced view's arrays.)"""
    rib, config, _, resolver, records = _setup(seed)
    _kept_twice(resolver, records)
    held = resolver.views._views
    generation = held.generation
    resolver.views.refresh()  # nothing wanted: nothing written, the plan kept
    assert held.generation == generation
    _kept_twice(resolver, records)
    held[(neighbor(0), V4)] = held[(neighbor(1), V4)]
    before = resolver.flat_plans_kept
    got = _resolve(resolver, records, True)
    assert resolver.flat_plans_kept == before
    assert got == _resolve(resolver, records, False)
    assert got == _resolve(Resolver(rib, config, build_views_inline=False), records, False)
    for write in (
        lambda: held.pop((neighbor(1), V4)),
        lambda: held.update({}),
        lambda: held.setdefault((neighbor(1), V4), None),
        lambda: held.__delitem__((neighbor(1), V4)),
        held.clear,
    ):
        generation = held.generation
        write()
        assert held.generation > generation


@pytest.mark.parametrize("seed", SEEDS)
def test_a_view_patched_after_churn_gets_a_new_plan(seed):
    rib, config, v4, resolver, records = _setup(seed)
    _kept_twice(resolver, records)
    rng = random.Random(seed)
    for p in rng.sample(v4, 10):
        rib.apply(RoutesAnnounced(neighbor(3), V4, (p,), None, _attrs(rng, "127.0.4.99")))
    assert resolver.flat_plan is not None
    _refresh(resolver)
    # The refresh wrote views: the plan went with them (it would hold the
    # replaced views' packed pools until the next batch).
    assert resolver.flat_plan is None
    before = resolver.flat_plans_kept
    got = _resolve(resolver, records, True)
    assert resolver.flat_plans_kept == before
    assert got == _resolve(Resolver(rib, config, build_views_inline=False), records, False)
    _kept_twice(resolver, records)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_config_reload_mapping_an_exporter_elsewhere_refuses_the_kept_plan(seed, monkeypatch):
    rib, config, _, resolver, records = _setup(seed)
    _kept_twice(resolver, records)
    text = config_text().replace(f'exporters = ["{exporter(0)}"]', 'exporters = ["127.0.9.7"]')
    text = text.replace(
        f'exporters = ["{exporter(1)}"]', f'exporters = ["{exporter(1)}", "{exporter(0)}"]'
    )
    resolver.reconfigure(parse_config(text, "test.toml"))
    _after(resolver, rib, config, records, monkeypatch)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_router_appearing_for_an_unconfigured_exporter_refuses_the_kept_plan(seed, monkeypatch):
    rib, config, v4, resolver, records = _setup(seed)
    stranger = "127.0.9.9"  # no [[routers]] entry: the global fallback r6 answers
    records = records + [{**r, "exporter": stranger} for r in records[:300]]
    _kept_twice(resolver, records)
    rib.apply(SessionState(stranger, "up"))  # a router of that address, no routes yet
    before = resolver.flat_plans_kept
    assert _resolve(resolver, records, True) == _resolve(resolver, records, False)
    assert resolver.flat_plans_kept == before  # the routers mapping grew: refused
    _kept_twice(resolver, records)
    rng = random.Random(seed)
    for p in v4:
        rib.apply(RoutesAnnounced(stranger, V4, (p,), None, _attrs(rng, "127.0.4.98")))
    with rib.lock:
        resolver.views.want_missing([stranger])
    resolver.views.refresh()
    before = resolver.flat_plans_kept
    got = _resolve(resolver, records, True)
    assert resolver.flat_plans_kept == before
    assert got == _resolve(Resolver(rib, config, build_views_inline=False), records, False)


@pytest.mark.parametrize(
    "field",
    ["slot", "stale_slot", "prefixes", "stale_until", "session", "slot_seq", "tables", "routers"],
)
def test_each_field_read_again_refuses_the_plan_alone(field):
    """Each field ``batch_keep.still`` compares, moved alone (and put back)."""
    rib, _config, _, resolver, records = _setup(0)
    _kept_twice(resolver, records)
    kept = resolver.flat_plan
    canon, present = list(kept.canon), list(kept.key[1])
    r, fs, seqs = kept.watch[0]
    table = rib.tables[V4]

    def still() -> bool:
        with rib.lock:
            return batch_keep.still(resolver, kept, canon, present, resolver.routing)

    assert still()
    if field in ("slot", "stale_slot", "prefixes"):
        old = getattr(fs, field)
        setattr(fs, field, (old or 0) + 1000)
        assert not still()
        setattr(fs, field, old)
    elif field in ("stale_until", "session"):
        old = getattr(r, field)
        setattr(r, field, 5.0 if field == "stale_until" else "down")
        assert not still()
        setattr(r, field, old)
    elif field == "slot_seq":
        old = seqs.get(fs.slot)
        seqs[fs.slot] = (old or 0) + 1
        assert not still()
        seqs[fs.slot] = old
    elif field == "tables":
        table.changes.append("10.0.0.0/8")  # a change logged: change_seq moves
        assert not still()
        table.changes.pop()
    else:
        rib.router("127.0.9.8")
        assert not still()
        return
    assert still()
    assert _resolve(resolver, records, True) == _resolve(resolver, records, False)
