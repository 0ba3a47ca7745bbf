"""Compiled views across a warm start's refresh: routers restored from a snapshot
come back over BGP and re-send their tables over the stale copies.

Each re-sent route changes its prefix's answer (stale to fresh), so a view
built mid-refresh is built again after End-of-RIB: a router re-sending its
table is loading as far as views go (``fastpath.refreshing``), and answers
stay those of the exact path throughout.
"""

from __future__ import annotations

import random
import socket

import pytest

from attribution.resolver import Resolver, pack_address
from ribd.events import EndOfRib, RoutesAnnounced, RoutesWithdrawn, SessionState
from ribd.maintenance import VIEWS_WAIT_MAX
from ribd.rib import Rib
from ribd.snapshot import load_snapshot, write_snapshot
from tests.attribution.helpers import EDGE1, EDGE2, EDGE3, attrs, build_world

V4, V6 = "ipv4 unicast", "ipv6 unicast"
HOLD = 600.0
ROUTERS = (EDGE1, EDGE2, EDGE3)
FIELDS = ("src_origin_as", "src_peer_as", "dst_origin_as", "dst_peer_as", "flags")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def prefix_of(rng: random.Random, v4: bool) -> str:
    if v4:
        length = rng.choice([8, 12, 16, 20, 24])
        net = (10 << 24 | rng.getrandbits(24)) & ~((1 << (32 - length)) - 1) & 0xFFFFFFFF
        return f"{socket.inet_ntoa(net.to_bytes(4, 'big'))}/{length}"
    length = rng.choice([32, 40, 48, 56, 64])
    net = (0x20010DB8 << 96 | rng.getrandbits(96)) & ~((1 << (128 - length)) - 1)
    return f"{socket.inet_ntop(socket.AF_INET6, net.to_bytes(16, 'big'))}/{length}"


def address_of(rng: random.Random, v4: bool) -> str:
    if v4:
        return socket.inet_ntoa((10 << 24 | rng.getrandbits(24)).to_bytes(4, "big"))
    return socket.inet_ntop(
        socket.AF_INET6, (0x20010DB8 << 96 | rng.getrandbits(96)).to_bytes(16, "big")
    )


def restored(tmp_path, seed: int = 7):
    """Three routers' tables (edge1 with 300 more routes a family) written to a
    snapshot and loaded into a fresh RIB, as ``attribution serve`` restores it:
    every route stale, every session down. Returns (rib, config, clock, table):
    ``table``, edge1's routes by family, for its refresh to re-send."""
    rng = random.Random(seed)
    rib, config = build_world()
    table: dict[str, dict[str, object]] = {V4: {}, V6: {}}
    for family in (V4, V6):
        for _ in range(300):
            prefix = prefix_of(rng, family == V4)
            path = (65001, rng.randrange(1, 70000))
            rib.apply(RoutesAnnounced(EDGE1, family, (prefix,), None, attrs(path)))
    for family in (V4, V6):
        for r in rib.routes(EDGE1, family):
            table[family][r.prefix] = r.attributes
    rib.apply(EndOfRib(EDGE1, V6))
    path = tmp_path / "rib.snapshot"
    write_snapshot(rib, path)
    clock = Clock()
    fresh = Rib(router_names={r.neighbor: r.name for r in config.routers}, clock=clock)
    fresh.stale_hold_time = HOLD
    load_snapshot(fresh, path, hold_time=HOLD)
    return fresh, config, clock, table


def maintain(rib: Rib, resolver: Resolver) -> int:
    """One pass of the service's maintenance loop (``Service._maintain``):
    RIB upkeep, the views wanted, built unless a table streams in."""
    while rib.maintenance():
        pass
    with rib.lock:
        resolver.views.want_missing(ROUTERS)
        if rib.views_may_wait():
            return 0
    return resolver.views.refresh()


def assert_answers_exact(resolver: Resolver, exact: Resolver, rng: random.Random) -> None:
    """The bulk answers (views where usable) equal the exact path's, stale flags included."""
    for v4 in (True, False):
        addrs = [address_of(rng, v4) for _ in range(1500)]
        src = b"".join(pack_address(a) for a in addrs)
        dst = b"".join(pack_address(a) for a in reversed(addrs))
        a = resolver.resolve_columns(["127.0.1.1"], [0] * len(addrs), src, dst)
        b = exact.resolve_columns(["127.0.1.1"], [0] * len(addrs), src, dst)
        for field in FIELDS:
            assert list(getattr(a, field)) == list(getattr(b, field)), field
        assert a.provenance == b.provenance
        assert [a.routes[i][1].prefix for i in a.dst_route] == [
            b.routes[i][1].prefix for i in b.dst_route
        ]
        assert [a.routes[i][1].stale for i in a.dst_route] == [
            b.routes[i][1].stale for i in b.dst_route
        ]


def views_of_restored_routers(rib: Rib, resolver: Resolver) -> int:
    """Build the views lookups ask for after the warm start (every restored family)."""
    for neighbor in ROUTERS:
        for family, fs in rib.routers[neighbor].families.items():
            if fs.prefixes:
                resolver.views.usable(neighbor, family)
    return resolver.views.refresh()


def resend(rib: Rib, clock: Clock, table: dict, share: float, rng: random.Random) -> None:
    """edge1 re-sends ``share`` of its table (some with new paths), a second apart."""
    for family, routes in table.items():
        for prefix, attributes in list(routes.items())[: int(len(routes) * share)]:
            if rng.random() < 0.1:
                attributes = attrs((65001, rng.randrange(1, 70000)))
            rib.apply(RoutesAnnounced(EDGE1, family, (prefix,), None, attributes))
            clock.now += 0.01


def test_a_refresh_builds_no_view_before_its_end_of_rib(tmp_path):
    rib, config, clock, table = restored(tmp_path)
    resolver = Resolver(rib, config, build_views_inline=False)
    restored_views = views_of_restored_routers(rib, resolver)
    assert restored_views == 4  # edge1's two families, edge2's and edge3's IPv4
    rng = random.Random(1)
    for neighbor in ROUTERS:
        rib.apply(SessionState(neighbor, "up"))
    for neighbor in (EDGE2, EDGE3):  # re-sent before edge1 starts
        rib.apply(RoutesAnnounced(neighbor, V4, ("10.0.0.0/8",), None, attrs((65100, 65101))))
        rib.apply(EndOfRib(neighbor, V4))
    # edge1 re-sends for longer than the views' longest wait for a load.
    steps = 4
    for step in range(steps):
        resend(
            rib, clock, {f: dict(list(t.items())[step::steps]) for f, t in table.items()}, 1.0, rng
        )
        clock.now += VIEWS_WAIT_MAX / 2
        maintain(rib, resolver)
    assert resolver.views.builds == restored_views + 2  # edge2's and edge3's, re-sent whole
    for family in (V4, V6):
        rib.apply(EndOfRib(EDGE1, family))
    clock.now += 60
    maintain(rib, resolver)
    assert resolver.views.builds == restored_views + 4  # then edge1's two, once each


@pytest.mark.parametrize("seed", [3, 4])
def test_answers_during_a_refresh_equal_the_exact_paths(tmp_path, seed):
    rib, config, clock, table = restored(tmp_path, seed)
    resolver = Resolver(rib, config, build_views_inline=False)
    exact = Resolver(rib, config, build_views_inline=False)  # never builds a view
    rng = random.Random(seed)
    views_of_restored_routers(rib, resolver)
    assert_answers_exact(resolver, exact, rng)  # every answer stale
    for neighbor in ROUTERS:
        rib.apply(SessionState(neighbor, "up"))
    assert_answers_exact(resolver, exact, rng)
    for share in (0.2, 0.5):  # edge1 re-sends its table, part by part
        resend(rib, clock, table, share, rng)
        assert_answers_exact(resolver, exact, rng)
        clock.now += VIEWS_WAIT_MAX
        maintain(rib, resolver)
        assert_answers_exact(resolver, exact, rng)
    # A route withdrawn, one new: both answered exactly mid-refresh.
    gone = next(iter(table[V4]))
    rib.apply(RoutesWithdrawn(EDGE1, V4, (gone,), None))
    rib.apply(RoutesAnnounced(EDGE1, V4, ("10.200.0.0/16",), None, attrs((65001, 65999))))
    assert_answers_exact(resolver, exact, rng)
    resend(rib, clock, table, 1.0, rng)
    for neighbor in ROUTERS:
        for family in rib.routers[neighbor].families:
            rib.apply(EndOfRib(neighbor, family))
    assert_answers_exact(resolver, exact, rng)  # swept, before the views are rebuilt
    clock.now += 60
    maintain(rib, resolver)
    assert_answers_exact(resolver, exact, rng)
    for family in (V4, V6):
        assert resolver.views.usable(EDGE1, family) is not None


def test_lookups_during_a_long_refresh_get_views_after_the_wait_for_loads(tmp_path):
    """A router re-sending its table is loading as far as views go: the
    maintenance does not build its view of its own accord, but one lookups
    ask for is built once the wait for loads (``VIEWS_WAIT_MAX``) is over."""
    rib, config, clock, table = restored(tmp_path)
    resolver = Resolver(rib, config, build_views_inline=False)
    exact = Resolver(rib, config, build_views_inline=False)
    rng = random.Random(5)
    for neighbor in ROUTERS:
        rib.apply(SessionState(neighbor, "up"))
    resend(rib, clock, table, 0.3, rng)
    maintain(rib, resolver)
    assert resolver.views.builds == 0  # nobody asked
    assert_answers_exact(resolver, exact, rng)  # edge1's lookups ask for its views
    maintain(rib, resolver)
    assert resolver.views.builds == 0  # a table streams in: the views wait
    clock.now += VIEWS_WAIT_MAX
    resend(rib, clock, table, 0.6, rng)  # still streaming
    maintain(rib, resolver)
    assert resolver.views.builds == 2  # edge1's two families, as for a load
    assert resolver.views.usable(EDGE1, V4) is not None
    assert_answers_exact(resolver, exact, rng)
