"""A batch spread over many exporters answers every flow as if it came alone.

The bulk path groups a batch by (exporter, family) once and answers each
group from its router's compiled view; these tests pin that the grouping
changes no answer: random worlds of several routers (fallback chains, a
global fallback, an unconfigured exporter, ADD-PATH with next hops, stale
routes, default routes, empty paths, AS_SETs, long IPv6 prefixes, prefixes
changed after the views were built, overrides, broken records), each flow
compared with the one-flow path and with the same flow resolved alone.
"""

from __future__ import annotations

import ipaddress
import random
import sys
import threading

import numpy as np
import pytest

from attribution.config import parse_config
from attribution.convert import columns_to_answers, flow_answer_json, resolution_to_columns
from attribution.resolver import Resolver
from ribd.attributes import AS_SEQUENCE, AS_SET, make_attributes
from ribd.events import EndOfRib, RoutesAnnounced, RoutesWithdrawn, SessionState
from ribd.rib import Rib

V4, V6 = "ipv4 unicast", "ipv6 unicast"
ROUTERS = 7


def neighbor(k: int) -> str:
    return f"127.0.2.{k + 1}"


def exporter(k: int) -> str:
    return f"127.0.3.{k + 1}"


def config_text(highest: bool = False) -> str:
    parts = [
        '[service]\nlocal_as = 64500\nrouter_id = "127.0.0.1"\ngrpc_listen = "127.0.0.1:0"\n'
        'fallback = ["r6"]\n' + ('as_set_policy = "highest"\n' if highest else "")
    ]
    for k in range(ROUTERS):
        fallback = '\nfallback = ["r5"]' if k in (1, 2) else ""
        parts.append(
            f'[[routers]]\nname = "r{k}"\nneighbor = "{neighbor(k)}"\n'
            f'exporters = ["{exporter(k)}"]{fallback}\n'
        )
    parts.append(
        f'[[overrides]]\nname = "pni"\nexporter = "{exporter(0)}"\nin_if = 30\npeer_as = 65020\n'
    )
    parts.append(
        f'[[overrides]]\nname = "ix"\nexporter = "{exporter(3)}"\nin_if = 20\n'
        'src_mac = "02:00:00:00:00:0a"\npeer_as = 65010\n'
    )
    return "\n".join(parts)


def _attrs(rng: random.Random, hop: str):
    kind = rng.random()
    if kind < 0.08:
        path = ()  # empty: local
    elif kind < 0.18:
        path = ((AS_SEQUENCE, (65001, rng.randint(65002, 65100))), (AS_SET, (65201, 65202)))
    else:
        path = ((AS_SEQUENCE, tuple(rng.randint(1, 4_200_000_000) for _ in range(3))),)
    return make_attributes(path, next_hop=hop, local_pref=rng.choice((100, 200)))


def _prefixes(rng: random.Random) -> tuple[list[str], list[str]]:
    v4 = {"0.0.0.0/0"} if rng.random() < 0.5 else set()
    while len(v4) < 60:
        length = rng.choice((8, 12, 16, 20, 24, 24, 28))
        net = ipaddress.ip_network(
            (rng.choice((10, 172, 192)) << 24 | rng.getrandbits(24), length), strict=False
        )
        v4.add(str(net))
    v6 = set()
    while len(v6) < 20:
        length = rng.choice((32, 48, 56, 64, 96, 112))
        base = 0x2001_0DB8 << 96 | rng.getrandbits(96) & ((1 << 96) - 1) >> rng.choice((0, 16, 32))
        v6.add(str(ipaddress.ip_network((base, length), strict=False)))
    return sorted(v4), sorted(v6)


def world(
    seed: int, same_prefixes: bool = False, highest: bool = False
) -> tuple[Rib, object, list[str], list[str]]:
    rng = random.Random(seed)
    config = parse_config(config_text(highest), "test.toml")
    rib = Rib(router_names={r.neighbor: r.name for r in config.routers})
    v4, v6 = _prefixes(rng)
    rib.stale_hold_by_neighbor[neighbor(4)] = 600
    for k in range(ROUTERS):
        n = neighbor(k)
        rib.apply(SessionState(n, "up"))
        if k == 2:
            continue  # no routes: its flows go to its fallback r5
        for family, prefixes in ((V4, v4), (V6, v6 if k not in (1, 6) else [])):
            for p in prefixes:
                if rng.random() < 0.3 and not same_prefixes:
                    continue
                hop = (
                    f"127.0.4.{rng.randint(1, 9)}"
                    if family == V4
                    else f"2001:db8::{rng.randint(1, 9)}"
                )
                if k == 3 and rng.random() < 0.5:  # ADD-PATH: several paths by next hop
                    for path_id in (1, 2, 3):
                        hop = f"127.0.4.{path_id}" if family == V4 else f"2001:db8::{path_id}"
                        rib.apply(RoutesAnnounced(n, family, (p,), (path_id,), _attrs(rng, hop)))
                else:
                    rib.apply(RoutesAnnounced(n, family, (p,), None, _attrs(rng, hop)))
            rib.apply(EndOfRib(n, family))
    rib.apply(SessionState(neighbor(4), "down", reason="test"))  # its routes are stale now
    return rib, config, v4, v6


def _address(rng: random.Random, prefixes: list[str], v4: bool) -> str:
    if rng.random() < 0.15:  # anywhere: often no route
        return str(
            ipaddress.IPv4Address(rng.getrandbits(32))
            if v4
            else ipaddress.IPv6Address(rng.getrandbits(128))
        )
    net = ipaddress.ip_network(rng.choice(prefixes))
    return str(net[rng.randrange(min(net.num_addresses, 1 << 30))])


def flows(seed: int, v4p: list[str], v6p: list[str], n: int) -> list[dict]:
    rng = random.Random(seed + 1000)
    exporters = [exporter(k) for k in range(ROUTERS)] + ["127.0.9.9", neighbor(5)]
    out = []
    for _ in range(n):
        v4 = rng.random() < 0.7
        prefixes = v4p if v4 else v6p
        f = {
            "exporter": rng.choice(exporters),
            "src_addr": _address(rng, prefixes, v4),
            "dst_addr": _address(rng, prefixes, v4),
        }
        r = rng.random()
        if r < 0.3:
            f["next_hop"] = (
                f"127.0.4.{rng.randint(1, 4)}" if v4 else f"2001:db8::{rng.randint(1, 4)}"
            )
        if rng.random() < 0.2:
            f["in_if"] = rng.choice((20, 30, 40))
            if rng.random() < 0.5:
                f["src_mac"] = rng.choice(("02:00:00:00:00:0a", "02:00:00:00:00:0b"))
        if rng.random() < 0.03:
            f["dst_addr"] = "127.0.0.1" if not v4 else "::1"  # family mismatch
        if rng.random() < 0.02:
            f["exporter"] = "not an address"
        out.append(f)
    return out


def _answers(resolver: Resolver, config, records: list[dict]) -> list[dict]:
    res = resolver.resolve_dicts(records)
    cols, errors = resolution_to_columns(res, config.local_as)
    return list(columns_to_answers(cols, errors))


CHURNED = (0, 3, 5)  # the routers ``_churn`` changes


def _churn(rib: Rib, v4: list[str], seed: int) -> None:
    """Changes after the views were built: answered by the exact path."""
    rng = random.Random(seed + 7)
    for k in CHURNED:
        n = neighbor(k)
        for p in rng.sample(v4, 8):
            rib.apply(RoutesAnnounced(n, V4, (p,), None, _attrs(rng, "127.0.4.77")))
        rib.apply(RoutesWithdrawn(n, V4, tuple(rng.sample(v4, 4)), None))


@pytest.mark.parametrize("seed", range(6))
def test_a_batch_over_many_exporters_answers_each_flow_as_alone(seed):
    rib, config, v4, v6 = world(seed)
    resolver = Resolver(rib, config, build_views_inline=False)
    with rib.lock:
        resolver.views.want_missing(list(rib.routers))
    assert resolver.views.refresh() > 0
    if seed % 2:
        _churn(rib, v4, seed)
    records = flows(seed, v4, v6, 600)
    batch = _answers(resolver, config, records)
    exact = _answers(Resolver(rib, config, build_views_inline=False), config, records)
    assert batch == exact  # compiled views (and changed ranges) == exact lookups
    for i, record in enumerate(records):
        alone = _answers(resolver, config, [record])[0]
        one = flow_answer_json(resolver.resolve_one(record), config.local_as)
        assert batch[i] == alone, (i, record)
        if "error_code" not in alone or alone["error_code"] != "bad_exporter":
            assert {k: v for k, v in batch[i].items() if k != "error"} == {
                k: v for k, v in one.items() if k != "error"
            }, (i, record)


@pytest.mark.parametrize("seed", range(3))
def test_routers_sharing_one_interval_axis_are_searched_together_and_answer_as_alone(seed):
    """Routers with the same prefixes share their views' interval axis (and
    more columns where equal): a spread batch searches it once for all of
    them, then reads each router's own columns."""
    rib, config, v4, v6 = world(seed, same_prefixes=True)
    resolver = Resolver(rib, config, build_views_inline=False)
    with rib.lock:
        resolver.views.want_missing(list(rib.routers))
    resolver.views.refresh()
    axes = [id(v.starts) for v in resolver.views.current() if v.family == V4]
    assert len(axes) - len(set(axes)) >= 3  # several routers on one axis
    records = flows(seed, v4, v6, 800)
    batch = _answers(resolver, config, records)
    exact = _answers(Resolver(rib, config, build_views_inline=False), config, records)
    assert batch == exact
    for i, record in enumerate(records[:200]):
        assert batch[i] == _answers(resolver, config, [record])[0], (i, record)


def _more_churn(rib: Rib, v4: list[str], v6: list[str], seed: int) -> None:
    """Changes of every kind for most routers: new more-specifics (new
    interval bounds), new IPv6 prefixes longer than /64, withdrawals, other
    paths for existing prefixes."""
    rng = random.Random(seed + 11)
    for k in (0, 1, 3, 4, 5, 6):
        n = neighbor(k)
        for p in rng.sample(v4, 6):
            rib.apply(RoutesAnnounced(n, V4, (p,), None, _attrs(rng, "127.0.4.77")))
        for p in rng.sample(v4, 3):
            net = ipaddress.ip_network(p)
            if net.prefixlen <= 28:
                sub = next(net.subnets(new_prefix=min(net.prefixlen + rng.randint(1, 4), 32)))
                rib.apply(RoutesAnnounced(n, V4, (str(sub),), None, _attrs(rng, "127.0.4.78")))
        rib.apply(RoutesWithdrawn(n, V4, tuple(rng.sample(v4, 3)), None))
        if v6 and k not in (1, 6):
            net = ipaddress.ip_network(rng.choice(v6))
            long = ipaddress.ip_network((int(net.network_address), 120), strict=False)
            rib.apply(RoutesAnnounced(n, V6, (str(long),), None, _attrs(rng, "2001:db8::77")))


@pytest.mark.parametrize("highest", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_views_patched_after_churn_stay_on_one_axis_and_answer_as_alone(seed, highest):
    """A patch used to give its router's view an interval axis of its own
    until a full rebuild, so under churn a spread batch searched router by
    router again. The views are moved back onto one axis per family after
    each refresh, patched or not, and a batch still answers as exact
    lookups and as each flow alone (IPv6 longer than /64 included). The
    views' columns are packed per family (one take per column for every
    router of a batch); ``highest``: pmacct's AS_SET policy columns."""
    rib, config, v4, v6 = world(seed, same_prefixes=True, highest=highest)
    resolver = Resolver(rib, config, build_views_inline=False)
    views = resolver.views
    with rib.lock:
        views.want_missing(list(rib.routers))
    views.refresh()
    for round_ in range(3):
        _more_churn(rib, v4, v6, seed * 10 + round_)
        with rib.lock:
            views._wanted.update((v.neighbor, v.family) for v in views.current())
        patches = views.patches
        views.refresh()
        assert views.patches > patches  # patched, not rebuilt
        for family in (V4, V6):
            family_views = [v for v in views.current() if v.family == family]
            assert len(family_views) >= 3
            assert len({id(v.starts) for v in family_views}) == 1, (round_, family)
            assert all(len(v.leaf) == len(v.starts) for v in family_views)
            packed = family_views[0].pack
            assert packed is not None and all(v.pack is packed for v in family_views)
            for v in family_views:  # each view's columns: its slice of the pool
                for name, pool in packed.pools.items():
                    column = getattr(v, name)
                    if pool.strides != (0,) and packed.offsets[name].any():
                        off = int(packed.offsets[name][v.pack_row])
                        assert np.array_equal(pool[off : off + len(column)], column), name
        records = flows(seed + round_, v4, v6, 500)
        batch = _answers(resolver, config, records)
        exact = _answers(Resolver(rib, config, build_views_inline=False), config, records)
        assert batch == exact, round_
        for i, record in enumerate(records[:150]):
            assert batch[i] == _answers(resolver, config, [record])[0], (i, record)
        # Changes not compiled yet: the exact path answers inside them; the
        # views of the routers that changed, refreshed together, extend one
        # set of changed ranges; the others' views are current as they are.
        _churn(rib, v4, seed * 10 + round_)
        batch = _answers(resolver, config, records)
        assert batch == _answers(Resolver(rib, config, build_views_inline=False), config, records)
        churned = {neighbor(k) for k in CHURNED}
        v4_views = [v for v in views.current() if v.family == V4]
        assert len({id(v.changed) for v in v4_views if v.neighbor in churned}) == 1
        assert all(not len(v.changed.starts) for v in v4_views if v.neighbor not in churned)


@pytest.mark.parametrize("seed", range(2))
def test_views_refreshed_while_routers_churn_answer_as_exact_lookups_after(seed):
    """Refreshes (patches, views handed on as unchanged, renumbering) racing
    a thread that writes the RIB: once the writes stop and the views catch
    up, a batch answers as exact lookups do (a view handed on as unchanged
    while its router changed would not). The switch interval is shortened
    so the threads interleave inside refreshes."""
    rib, config, v4, v6 = world(seed, same_prefixes=True)
    resolver = Resolver(rib, config, build_views_inline=False)
    views = resolver.views
    with rib.lock:
        views.want_missing(list(rib.routers))
    views.refresh()
    records = flows(seed, v4, v6, 400)
    done = threading.Event()
    failed: list[BaseException] = []

    def write() -> None:
        try:
            for round_ in range(12):
                _more_churn(rib, v4, v6, seed * 100 + round_)
                _churn(rib, v4, seed * 100 + round_)
        except BaseException as exc:  # reported by the main thread
            failed.append(exc)
        finally:
            done.set()

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    writer = threading.Thread(target=write)
    try:
        writer.start()
        refreshes = 0
        while not done.is_set() or refreshes < 3:
            with rib.lock:
                views._wanted.update((v.neighbor, v.family) for v in views.current())
            views.refresh()
            refreshes += 1
            _answers(resolver, config, records)  # answered meanwhile: no error
    finally:
        writer.join()
        sys.setswitchinterval(switch)
    assert not failed
    with rib.lock:
        views._wanted.update((v.neighbor, v.family) for v in views.current())
    views.refresh()
    batch = _answers(resolver, config, records)
    assert batch == _answers(Resolver(rib, config, build_views_inline=False), config, records)
    for v in views.current():  # every view caught up: nothing left for the exact path
        assert not len(v.changed.starts), (v.neighbor, v.family)
