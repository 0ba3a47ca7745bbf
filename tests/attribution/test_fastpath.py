"""Compiled lookup views: same answers as pytricia, never older than the RIB."""

from __future__ import annotations

import random
import socket

import numpy as np
import pytest

from attribution.fastpath import ChangedRanges, CompiledViews
from attribution.resolver import Resolver, pack_address
from attribution.viewbuild import build_view, flatten
from ribd.events import RoutesAnnounced, RoutesWithdrawn, SessionState
from tests.attribution.helpers import EDGE1, attrs, build_world


def dst_origin(resolver, dst, src="172.16.0.1"):
    res = resolver.resolve_columns(["127.0.1.1"], [0], pack_address(src), pack_address(dst))
    return int(res.dst_origin_as[0])


def test_flatten_nested_ranges_into_disjoint_intervals():
    # /8 containing a /16 containing a /24, and a sibling /16.
    # On a 10-bit axis: a /2 [0, 256), a /6 [0, 16), an /8 [4, 8), a /5 [32, 64).
    starts = np.array([0, 0, 4, 32], dtype=np.uint64)
    lasts = np.array([255, 15, 7, 63], dtype=np.uint64)
    lengths = np.array([2, 6, 8, 5], dtype=np.uint8)
    bounds, leafs = flatten(starts, lasts, lengths, 10)
    assert list(zip(bounds.tolist(), leafs.tolist(), strict=True)) == [
        (0, 1),
        (4, 2),
        (8, 1),
        (16, 0),
        (32, 3),
        (64, 0),
        (256, -1),
    ]


def test_changed_ranges_mark_addresses_inside_changed_prefixes():
    keys = np.array(
        [int.from_bytes(socket.inet_aton(a), "big") for a in ("10.0.0.1", "10.1.0.1", "11.0.0.1")],
        dtype=np.uint32,
    )
    changed = ChangedRanges.empty(True).extend(["10.1.0.0/16", "10.1.2.0/24"], 2)
    assert changed.mask(keys).tolist() == [False, True, False]


def test_a_change_after_the_build_is_answered_at_once():
    rib, config = build_world()
    resolver = Resolver(rib, config, build_views_inline=False)
    resolver.views.usable(EDGE1, "ipv4 unicast")
    assert resolver.views.refresh() == 1
    assert dst_origin(resolver, "10.2.3.4") == 65002
    # A more specific appears: the view is now older than the RIB for it.
    rib.apply(RoutesAnnounced(EDGE1, "ipv4 unicast", ("10.2.0.0/16",), None, attrs((65001, 65099))))
    assert dst_origin(resolver, "10.2.3.4") == 65099
    rib.apply(RoutesWithdrawn(EDGE1, "ipv4 unicast", ("10.0.0.0/8", "10.2.0.0/16"), None))
    assert dst_origin(resolver, "10.2.3.4") == 0  # only the default remains
    assert resolver.views.builds == 1  # answered without a rebuild


def test_a_session_loss_invalidates_the_view_at_once():
    rib, config = build_world()
    resolver = Resolver(rib, config, build_views_inline=False)
    resolver.views.usable(EDGE1, "ipv4 unicast")
    resolver.views.refresh()
    rib.apply(SessionState(EDGE1, "down", reason="test"))
    res = resolver.resolve_columns(
        ["127.0.1.1"], [0], pack_address("172.16.0.1"), pack_address("10.2.3.4")
    )
    assert res.routers == ["edge3"]  # fallback, not the purged router's old view


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_compiled_answers_equal_pytricia_answers_on_random_tables(seed):
    rng = random.Random(seed)
    rib, config = build_world()
    for _ in range(300):
        length = rng.choice([8, 12, 16, 20, 24, 28, 32])
        net = rng.getrandbits(32) & ~((1 << (32 - length)) - 1)
        prefix = f"{socket.inet_ntoa(net.to_bytes(4, 'big'))}/{length}"
        path = tuple(rng.randrange(1, 70000) for _ in range(rng.randrange(0, 4)))
        rib.apply(RoutesAnnounced(EDGE1, "ipv4 unicast", (prefix,), None, attrs(path)))
    for _ in range(300):
        length = rng.choice([32, 40, 48, 56, 64, 96, 128])
        net = (0x20010DB8 << 96 | rng.getrandbits(96)) & ~((1 << (128 - length)) - 1)
        prefix = f"{socket.inet_ntop(socket.AF_INET6, net.to_bytes(16, 'big'))}/{length}"
        rib.apply(
            RoutesAnnounced(
                EDGE1, "ipv6 unicast", (prefix,), None, attrs((rng.randrange(1, 70000),))
            )
        )
    fast = Resolver(rib, config, build_views_inline=True)
    exact = Resolver(rib, config, build_views_inline=False)
    v4 = [socket.inet_ntoa(rng.getrandbits(32).to_bytes(4, "big")) for _ in range(2000)]
    v6 = [
        socket.inet_ntop(
            socket.AF_INET6, (0x20010DB8 << 96 | rng.getrandbits(96)).to_bytes(16, "big")
        )
        for _ in range(2000)
    ]
    for addrs in (v4, v6):
        src = b"".join(pack_address(a) for a in addrs)
        dst = b"".join(pack_address(a) for a in reversed(addrs))
        a = fast.resolve_columns(["127.0.1.1"], [0] * len(addrs), src, dst)
        b = exact.resolve_columns(["127.0.1.1"], [0] * len(addrs), src, dst)
        for field in ("src_origin_as", "src_peer_as", "dst_origin_as", "dst_peer_as", "flags"):
            assert list(getattr(a, field)) == list(getattr(b, field)), field
        assert a.provenance == b.provenance
        assert [a.routes[i][1].prefix for i in a.dst_route] == [
            b.routes[i][1].prefix for i in b.dst_route
        ]
    assert fast.views.builds == 2 and exact.views.builds == 0


@pytest.mark.parametrize("v4", [True, False])
def test_changed_ranges_extended_bit_by_bit_mask_exactly_the_changed_prefixes(v4):
    rng = random.Random(5)
    bits = 32 if v4 else 128
    prefixes = []
    for _ in range(400):
        length = rng.choice([8, 12, 16, 20, 24, 32] if v4 else [16, 32, 48, 64])
        net = rng.getrandbits(bits) & ~((1 << (bits - length)) - 1) & ((1 << bits) - 1)
        if v4:
            text = socket.inet_ntoa(net.to_bytes(4, "big"))
        else:
            text = socket.inet_ntop(socket.AF_INET6, net.to_bytes(16, "big"))
        prefixes.append(f"{text}/{length}")
    ranges = ChangedRanges.empty(v4)
    for i in range(0, len(prefixes), 37):  # as changes trickle in
        ranges = ranges.extend(prefixes[i : i + 37], i + 37)
    keys = [rng.getrandbits(32 if v4 else 64) for _ in range(3000)]

    def inside(key, prefix):
        text, length = prefix.split("/")
        if v4:
            net = int.from_bytes(socket.inet_aton(text), "big")
            return key >> (32 - int(length)) == net >> (32 - int(length))
        net = int.from_bytes(socket.inet_pton(socket.AF_INET6, text)[:8], "big")
        shift = 64 - min(int(length), 64)
        return key >> shift == net >> shift

    # Keys at the edges of every changed prefix too.
    for p in prefixes[:100]:
        text, length = p.split("/")
        if v4:
            net = int.from_bytes(socket.inet_aton(text), "big")
            keys += [net, net + (1 << (32 - int(length))) - 1, net - 1 if net else 0]
        else:
            net = int.from_bytes(socket.inet_pton(socket.AF_INET6, text)[:8], "big")
            keys += [net, net + (1 << (64 - int(length))) - 1]
    arr = np.array(keys, dtype=np.uint32 if v4 else np.uint64)
    expected = [any(inside(k, p) for p in prefixes) for k in keys]
    assert ranges.mask(arr).tolist() == expected


@pytest.mark.parametrize("family", ["ipv4 unicast", "ipv6 unicast"])
def test_view_routes_made_on_demand_are_the_ribs_routes(family):
    rng = random.Random(11)
    rib, _ = build_world()
    for _ in range(200):
        if family == "ipv4 unicast":
            length = rng.choice([8, 16, 23, 24, 32])
            net = rng.getrandbits(32) & ~((1 << (32 - length)) - 1)
            prefix = f"{socket.inet_ntoa(net.to_bytes(4, 'big'))}/{length}"
        else:
            length = rng.choice([19, 32, 48, 64])
            net = (0x20010DB8 << 96 | rng.getrandbits(96)) & ~((1 << (128 - length)) - 1)
            prefix = f"{socket.inet_ntop(socket.AF_INET6, net.to_bytes(16, 'big'))}/{length}"
        rib.apply(RoutesAnnounced(EDGE1, family, (prefix,), None, attrs((rng.randrange(1, 9),))))
    view = build_view(rib, EDGE1, family)
    made = {view.route(i).prefix: view.route(i) for i in range(len(view))}
    keys = [k for k in rib.tables[family].store.prefixes() if rib.exact(EDGE1, family, k)]
    assert set(made) == set(keys)
    for prefix, m in made.items():
        (expected,) = rib.exact(EDGE1, family, prefix)
        assert (m.attributes, m.length, m.path_id, m.stale) == (
            expected.attributes,
            expected.length,
            expected.path_id,
            expected.stale,
        )


def test_converged_routers_get_their_views_before_any_flow_asks():
    rib, _ = build_world()  # every router has sent End-of-RIB for IPv4
    views = CompiledViews(rib)
    with rib.lock:
        views.want_missing([EDGE1, "127.0.0.99"])  # an unknown neighbor is ignored
    assert views.refresh() == 1  # edge1's IPv4 (its IPv6 never converged)
    with rib.lock:
        views.want_missing([EDGE1])
    assert views.refresh() == 0  # up to date: nothing to build
    rib.apply(SessionState(EDGE1, "down", reason="test"))
    with rib.lock:
        views.want_missing([EDGE1])
    assert views.refresh() == 0  # routes purged: nothing usable to compile
