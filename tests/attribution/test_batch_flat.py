"""A batch answered without groups (``attribution.batch_flat``) answers as
the grouped path and as exact lookups, and is taken only where it may be.

Random many-router worlds (``test_bulk_many_exporters``: fallback chains, a
global fallback, ADD-PATH, a stale router, default routes, empty paths,
AS_SETs, IPv6 longer than /64), batches of each kind (IPv4, IPv6, both, from
one exporter or spread, with broken records), AS only and with routes,
fresh views, views patched after churn (renumbered: holes), and churn not
compiled yet: every batch's records, routers and errors equal the grouped
path's (the flat path turned off; with routes, the route dictionary too,
in the same order) and a resolver's without views (exact lookups; each
flow's routes the same). Batches that need the grouped path (next hops,
override rules, an exporter with no router, changed prefixes) are
checked to take it.
"""

from __future__ import annotations

import ipaddress
import random

import numpy as np
import pytest

from attribution import batch_flat
from attribution.addresses import pack_address
from attribution.answers import RECORD_DTYPE, BatchRoutes
from attribution.resolver import Resolver
from attribution.wire import RouteEncoder, WireRoutes
from tests.attribution.test_bulk_many_exporters import (
    ROUTERS,
    V4,
    V6,
    _churn,
    _more_churn,
    exporter,
    flows,
    neighbor,
    world,
)


@pytest.fixture
def taken(monkeypatch) -> list[bool]:
    """What each answer_flat call returned (True: the batch took the flat path)."""
    calls: list[bool] = []
    original = batch_flat.answer_flat

    def recording(*args, **kwargs):
        calls.append(original(*args, **kwargs))
        return calls[-1]

    monkeypatch.setattr(batch_flat, "answer_flat", recording)
    return calls


def _columns(records: list[dict]) -> tuple:
    """resolve_columns' arguments for ``records`` (exporter texts as given)."""
    exporters: list[str] = []
    index: dict[str, int] = {}
    ex, src, dst, hops = [], [], [], []
    for r in records:
        ex.append(index.setdefault(r["exporter"], len(index)))
        if len(index) > len(exporters):
            exporters.append(r["exporter"])
        src.append(pack_address(r["src_addr"]))
        dst.append(pack_address(r["dst_addr"]))
        hops.append(pack_address(r["next_hop"]) if "next_hop" in r else b"\x00" * 16)
    return exporters, ex, b"".join(src), b"".join(dst), b"".join(hops)


def _resolve(resolver: Resolver, records: list[dict], flat: bool, **kw) -> tuple:
    """(records, routers, errors), and with ``with_routes=True`` the route
    dictionary (router, prefix, path id, stale, attribute set) too."""
    exporters, ex, src, dst, hops = _columns(records)
    if kw.pop("with_hops", False):
        kw["next_hop"] = hops
    kw.setdefault("with_routes", False)
    saved = batch_flat.ENABLED
    batch_flat.ENABLED = flat
    try:
        res = resolver.resolve_columns(exporters, ex, src, dst, **kw)
    finally:
        batch_flat.ENABLED = saved
    out = (res.records.tobytes(), list(res.routers), sorted(res.errors))
    if not kw["with_routes"]:
        return out
    return (
        *out,
        [(name, m.prefix, m.path_id, m.stale, id(m.attributes)) for name, m in res.routes],
    )


def _per_flow(answer: tuple) -> tuple:
    """A with-routes answer with each flow's route indexes replaced by the
    routes themselves: exact lookups number a batch's routes in another
    order than views do, the routes each flow gets are the same."""
    raw, routers, errors, dictionary = answer
    records = np.frombuffer(raw, dtype=RECORD_DTYPE).copy()
    routes = [
        tuple(dictionary[i] if i >= 0 else None for i in records[side].tolist())
        for side in ("src_route", "dst_route")
    ]
    records["src_route"] = records["dst_route"] = 0
    return records.tobytes(), routers, errors, routes


def _batches(seed: int, v4: list[str], v6: list[str]) -> dict[str, list[dict]]:
    """AS-only batches of each kind the flat path takes (no next hops, no
    in_if, exporters of routers with routes of the flows' family)."""
    rng = random.Random(seed)
    plain = []
    for f in flows(seed, v4, v6, 2500):
        f = {k: v for k, v in f.items() if k in ("exporter", "src_addr", "dst_addr")}
        if f["exporter"] == "not an address":
            continue
        plain.append(f)
    # r4's session is down (its routes stale, no End-of-RIB since): it has
    # no view, so its flows take the grouped path's exact lookups; IPv6
    # flows of r1 and r6 go to no router (no IPv6 routes, r6 is the global
    # fallback): the grouped path answers those too.
    configured = {exporter(k) for k in range(ROUTERS)} - {exporter(4)}
    v6_ok = configured - {exporter(1), exporter(6)}

    def is_v4(f: dict) -> bool:
        return "." in f["src_addr"] and "." in f["dst_addr"]

    # Addresses whose upper 64 bits are those of a prefix longer than /64
    # need the exact path (the views answer by the upper half).
    long = {
        int(ipaddress.ip_network(p).network_address) >> 64
        for p in v6
        if int(p.rpartition("/")[2]) > 64
    }

    def is_v6(f: dict) -> bool:
        if ":" not in f["src_addr"] or ":" not in f["dst_addr"]:
            return False
        upper = (int(ipaddress.ip_address(f[k])) >> 64 for k in ("src_addr", "dst_addr"))
        return not any(u in long for u in upper)

    ipv4 = [f for f in plain if f["exporter"] in configured and is_v4(f)]
    ipv6 = [f for f in plain if f["exporter"] in v6_ok and is_v6(f)]
    both = [f for f in plain if (f in ipv4 or f in ipv6)]
    broken = [dict(f) for f in rng.sample(both, 200)]
    for f in broken[::7]:
        f["dst_addr"] = "::1" if "." in f["src_addr"] else "127.0.0.1"  # family mismatch
    return {
        "ipv4 spread": ipv4,
        "ipv6 spread": ipv6,
        "both families": both,
        "one exporter": [f for f in ipv4 if f["exporter"] == exporter(0)],
        "fallback exporters": [f for f in ipv4 if f["exporter"] in (exporter(1), exporter(2))],
        "with broken records": broken,
    }


def _check(resolver: Resolver, rib, config, batches: dict, taken: list[bool], expect: bool | None):
    """AS only and with routes: each batch as the grouped path answers it
    (with routes: the same dictionary in the same order) and as exact
    lookups (the same route for each flow)."""
    exact = Resolver(rib, config, build_views_inline=False)  # no views: exact lookups
    for name, records in batches.items():
        taken.clear()
        flat = _resolve(resolver, records, True)
        assert expect is None or taken == [expect], name
        assert flat == _resolve(resolver, records, False), name
        assert flat == _resolve(exact, records, False), name
        taken.clear()
        flat = _resolve(resolver, records, True, with_routes=True)
        assert expect is None or taken == [expect], name
        assert len(flat[3]) > 10, name
        assert flat == _resolve(resolver, records, False, with_routes=True), name
        assert _per_flow(flat) == _per_flow(_resolve(exact, records, False, with_routes=True))
        _check_dictionaries(resolver, records, taken, expect, name)


def _check_dictionaries(
    resolver: Resolver, records: list[dict], taken: list[bool], expect: bool | None, name: str
) -> None:
    """Dictionaries other than a batch's own ``ViewRoutes`` get their
    ``from_view`` calls, in the grouped path's order: a ``BatchRoutes``,
    and a stream's ``WireRoutes`` (the gRPC service's) over two batches,
    the second naming the routes the first numbered and (mostly) new ones."""
    half = records[: len(records) // 2]
    got = {}
    for flat in (True, False):
        stream = WireRoutes(RouteEncoder(), 64500, resolver.routing.highest_as_set)
        taken.clear()
        answers = [_resolve(resolver, records, flat, with_routes=True, routes=BatchRoutes())]
        assert not flat or expect is None or taken == [expect], name
        for part in (half, records):
            answers.append(_resolve(resolver, part, flat, with_routes=True, routes=stream)[:3])
            answers.append(stream.take_new())
        got[flat] = answers
    assert got[True] == got[False], name
    assert got[True][2][1], name  # the first batch sent routes


@pytest.mark.parametrize("highest", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_flat_batches_answer_as_grouped_and_exact(seed, highest, taken):
    rib, config, v4, v6 = world(seed, same_prefixes=seed == 2, highest=highest)
    resolver = Resolver(rib, config, build_views_inline=False)
    views = resolver.views
    with rib.lock:
        views.want_missing(list(rib.routers))
    views.refresh()
    batches = _batches(seed, v4, v6)
    assert all(len(b) > 30 for b in batches.values())
    _check(resolver, rib, config, batches, taken, True)
    # After churn, views patched and renumbered (holes, one leaf): flat again.
    for round_ in range(2):
        _more_churn(rib, v4, v6, seed * 10 + round_)
        with rib.lock:
            views._wanted.update((v.neighbor, v.family) for v in views.current())
        views.refresh()
        assert views.patches
        # (the churn adds IPv6 prefixes longer than /64 under the flows'
        # prefixes: flows in them need exact lookups, so IPv6 batches may
        # be grouped now; they answer alike either way)
        ipv4 = {k: b for k, b in batches.items() if k.startswith(("ipv4", "one", "fallback"))}
        _check(resolver, rib, config, ipv4, taken, True)
        _check(resolver, rib, config, batches, taken, None)
    # Churn not compiled yet: routers with changed ranges need exact
    # lookups, so a batch of theirs is grouped; one of an unchanged router
    # is still flat.
    _churn(rib, v4, seed)  # routers 0, 3, 5
    _check(resolver, rib, config, {"churned": batches["one exporter"]}, taken, False)
    quiet = [f for f in batches["ipv4 spread"] if f["exporter"] == exporter(6)]
    _check(resolver, rib, config, {"unchanged router": quiet}, taken, True)


def test_batches_that_need_groups_take_the_grouped_path(taken):
    rib, config, v4, v6 = world(1)
    resolver = Resolver(rib, config, build_views_inline=False)
    with rib.lock:
        resolver.views.want_missing(list(rib.routers))
    resolver.views.refresh()
    records = _batches(1, v4, v6)["ipv4 spread"]
    exporters, ex, src, dst, _ = _columns(records)

    def grouped(tried: bool = True, **kw) -> None:
        taken.clear()
        resolver.resolve_columns(exporters, ex, src, dst, **kw)
        assert taken == ([False] if tried else []), kw

    hops = np.frombuffer(pack_address("127.0.4.1") * len(records), dtype="V16")
    grouped(with_routes=False, next_hop=hops.tobytes())
    grouped(False, with_routes=False, in_if=[20] * len(records))  # override rules: not tried
    # An exporter no router answers (its flows' error comes from the grouped
    # path), and one whose router has no view (r4: exact lookups).
    unknown = dict(records[0], exporter="127.0.9.9", src_addr="2001:db8::1", dst_addr="::2")
    # An address under a prefix longer than /64 of r0's: exact lookups.
    (r0,) = [v for v in resolver.views.current() if v.neighbor == neighbor(0) and v.family == V6]
    inside = str(ipaddress.IPv6Address(int(r0.long_v6[0]) << 64 | 1))
    in_long = dict(records[0], src_addr=inside, dst_addr=inside, exporter=exporter(0))
    for extra in (unknown, dict(records[0], exporter=exporter(4)), in_long):
        taken.clear()
        both = [*records, extra]
        flat = _resolve(resolver, both, True)
        assert taken == [False], extra
        assert flat == _resolve(resolver, both, False)


def test_a_resolver_that_builds_views_inline_builds_wanted_ones_first(taken):
    """With views wanted, the grouped path (which builds them) answers."""
    rib, config, v4, v6 = world(0)
    resolver = Resolver(rib, config)  # inline builds, as tools run it
    records = _batches(0, v4, v6)["ipv4 spread"]
    first = _resolve(resolver, records, True)
    assert taken == [False]  # no views yet: grouped, built them
    taken.clear()
    assert _resolve(resolver, records, True) == first
    assert taken == [True]
    assert {v.family for v in resolver.views.current()} >= {V4}
    assert V6  # (the IPv6 views come with IPv6 flows)
