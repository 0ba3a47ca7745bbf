"""A router's prefix limit per family (ribd.prefix_limit): new prefixes past it
are refused and counted, held ones still updated, withdrawals make room.

Reproduces what nothing bounded before: one peer announcing ever more prefixes
grew the store without end. Every way an UPDATE reaches the RIB is checked
against one model of the rule (a set of held prefixes per router and family):
the compiled ``apply_many`` and its short paths, the Python reference with the
Python loops, the feed's fused path from raw BGP bytes and the feed's parsed
path; narrow entries (4 routers) and wide ones (20 routers); stale slots after
a restart; ADD-PATH path ids.
"""

from __future__ import annotations

import logging
import random
import socket

import pytest

import ribd.prefix_limit
import ribd.rib
from bench.fuzz_raw import (
    basic_attributes,
    mp_reach,
    mp_unreach,
    packets_line,
    prefix,
    session_lines,
    update,
)
from ribd import feed
from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.entries import value_at
from ribd.events import IPV4_UNICAST, IPV6_UNICAST, RoutesAnnounced, RoutesWithdrawn, SessionState
from ribd.feed import FeedServer
from ribd.prefix_limit import PrefixLimits
from ribd.rib import PY_APPLY_MANY, Rib
from tests.ribd.test_announce_shared import Clock

V4, V6 = IPV4_UNICAST, IPV6_UNICAST
POOL4 = [f"10.{i // 256}.{i % 256}.0/24" for i in range(160)]
POOL6 = [f"2001:db8:{i:x}::/48" for i in range(1, 61)]
LIMITS = {V4: 40, V6: 15}


def _attrs(i: int):
    return make_attributes(((AS_SEQUENCE, (65000 + i, 1000 + i)),), next_hop="192.0.2.254")


def held(rib: Rib, neighbor: str, family: str) -> set[str]:
    """The prefixes ``neighbor`` holds in its current slot, from the store itself."""
    table = rib.tables[family]
    slot = rib.routers[neighbor].families[family].slot
    return {
        table.store.text_of(k) if not isinstance(k, str) else k
        for k, entry in table.store.items()
        if value_at(entry, slot) is not None
    }


class Model:
    """The rule, on sets: a prefix is held while it has a path (ADD-PATH: one per
    path id; a withdrawal removes one); held prefixes are updated, new ones
    taken while the family holds fewer than its limit."""

    def __init__(self, limits: dict[str, int]) -> None:
        self.limits = limits
        self.paths: dict[tuple[str, str], dict[str, set[int]]] = {}
        self.refused: dict[tuple[str, str], int] = {}

    def held(self, neighbor: str, family: str) -> set[str]:
        return {p for p, ids in self.paths.get((neighbor, family), {}).items() if ids}

    def announce(self, neighbor: str, family: str, prefixes: list[str], ids: list | None) -> None:
        paths = self.paths.setdefault((neighbor, family), {})
        for p, i in zip(prefixes, ids or [0] * len(prefixes), strict=True):
            if not paths.get(p) and len(self.held(neighbor, family)) >= self.limits[family]:
                self.refused[(neighbor, family)] = self.refused.get((neighbor, family), 0) + 1
                continue
            paths.setdefault(p, set()).add(i)

    def withdraw(self, neighbor: str, family: str, prefixes: list[str], ids: list | None) -> None:
        paths = self.paths.setdefault((neighbor, family), {})
        for p, i in zip(prefixes, ids or [0] * len(prefixes), strict=True):
            paths.get(p, set()).discard(i)

    def restart(self, neighbor: str) -> None:
        """A session restart: the routes kept stale, the current slot empty."""
        for (n, _f), paths in self.paths.items():
            if n == neighbor:
                paths.clear()


def _stream(seed: int, routers: list[str], steps: int, add_path: bool) -> list[tuple]:
    """(kind, neighbor, family, prefixes, path ids or None, attribute index)."""
    rng = random.Random(seed)
    out: list[tuple] = []
    for _ in range(steps):
        roll = rng.random()
        neighbor = rng.choice(routers)
        family = V6 if rng.random() < 0.3 else V4
        pool = POOL6 if family == V6 else POOL4
        start = rng.randrange(len(pool))
        group = pool[start : start + rng.randint(1, 12)]
        if roll < 0.55:  # routers in turn send one group (a load's shape)
            for r in rng.sample(routers, rng.randint(1, min(4, len(routers)))):
                out.append(("announce", r, family, group, None, rng.randrange(4)))
        elif roll < 0.62:  # a prefix twice, partly held
            out.append(
                ("announce", neighbor, family, [*group, group[0], *rng.sample(pool, 3)], None, 1)
            )
        elif roll < 0.68 and add_path:  # ADD-PATH ids: a new prefix under two ids counts once
            ids = [rng.choice((1, 2, 3)) for _ in group]
            out.append(("announce", neighbor, family, group, ids, rng.randrange(4)))
        elif roll < 0.85:
            ids = [rng.choice((0, 1, 2, 3)) for _ in group] if add_path else None
            out.append(("withdraw", neighbor, family, group, ids, 0))
        elif roll < 0.87:
            out.append(("restart", neighbor, family, [], None, 0))
        elif roll < 0.89:
            out.append(("merge", neighbor, family, [], None, 0))
    return out


def _event(step: tuple):
    kind, neighbor, family, prefixes, ids, a = step
    if kind == "announce":
        return [
            RoutesAnnounced(
                neighbor, family, tuple(prefixes), None if ids is None else tuple(ids), _attrs(a)
            )
        ]
    return [RoutesWithdrawn(neighbor, family, tuple(prefixes), None if ids is None else tuple(ids))]


def _feed_line(step: tuple) -> bytes:
    kind, neighbor, family, prefixes, ids, a = step
    pids = ids if ids is not None else [None] * len(prefixes)
    nlri = b"".join(prefix(p, i) for p, i in zip(prefixes, pids, strict=True))
    if family == V4:
        if kind == "announce":
            body = update(attributes=basic_attributes([65000 + a, 1000 + a]), nlri=nlri)
        else:
            body = update(withdrawn=nlri)
    elif kind == "announce":
        hop = socket.inet_pton(socket.AF_INET6, "2001:db8:ffff::1")
        body = update(
            attributes=basic_attributes([65000 + a, 1000 + a], next_hop="") + mp_reach(2, hop, nlri)
        )
    else:
        body = update(attributes=mp_unreach(2, nlri))
    return packets_line(body, peer=neighbor)


def _check(rib: Rib, model: Model, routers: list[str], where: str) -> None:
    for r in routers:
        for family in (V4, V6):
            fs = rib.routers[r].families[family]
            want = model.held(r, family)
            assert held(rib, r, family) == want, f"{where}: {r} {family}"
            assert fs.prefixes == len(want), f"{where}: {r} {family}"
            assert fs.prefixes_refused == model.refused.get((r, family), 0), (
                f"{where}: {r} {family}"
            )
    assert rib.prefixes_refused == sum(model.refused.values())


def _apply(rib: Rib, step: tuple, how: str, server: FeedServer | None, conn: object) -> None:
    kind, neighbor = step[0], step[1]
    if kind == "restart":
        rib.apply(SessionState(neighbor, "down", reason="test"))
        rib.apply(SessionState(neighbor, "up"))
    elif kind == "merge":
        for table in rib.tables.values():
            rib._merge(table)
    elif how == "compiled":
        rib.apply_many(_event(step))
    elif how == "python":
        PY_APPLY_MANY(rib, _event(step))
    else:
        line = _feed_line(step)
        if how == "fused":
            feed._compiled_lines(server, conn, [line])
        else:
            FeedServer._lines(server, conn, [line])


@pytest.mark.parametrize("routers", [4, 20], ids=["narrow", "wide"])
@pytest.mark.parametrize("how", ["compiled", "python", "fused", "parsed"])
@pytest.mark.parametrize("seed", range(3))
def test_every_path_refuses_what_the_model_refuses(seed, how, routers, monkeypatch) -> None:
    if how == "python":
        monkeypatch.setattr(ribd.rib, "ANNOUNCE_LOOP", None)
    if how == "fused" and (feed._compiled_lines is None or not ribd.rib.APPLY_COMPILED):
        pytest.skip("the fused feed path is not built")
    names = [f"127.0.{k // 200}.{k % 200 + 2}" for k in range(routers)]
    rib = Rib(clock=Clock(), stale_hold_time=600.0)
    rib.set_prefix_limits(PrefixLimits(default=LIMITS))
    server = conn = None
    if how in ("fused", "parsed"):
        server = FeedServer("/tmp/unused-test-prefix-limit.sock", rib)
        server.fused_load = how == "fused"
        a, b = socket.socketpair()
        a.close()
        b.close()
        conn = feed._Connection(a)
        opens = [ln for r in names for ln in session_lines(r)]  # (the fused path: no ADD-PATH)
        FeedServer._lines(server, conn, opens)
    for r in names:
        rib.apply(SessionState(r, "up"))
    model = Model(LIMITS)
    steps = _stream(seed, names, 700, add_path=how in ("compiled", "python"))
    for i, step in enumerate(steps):
        _apply(rib, step, how, server, conn)
        kind, neighbor, family, prefixes, ids = step[:5]
        if kind == "announce":
            model.announce(neighbor, family, prefixes, ids)
        elif kind == "withdraw":
            model.withdraw(neighbor, family, prefixes, ids)
        elif kind == "restart":
            model.restart(neighbor)
        if i % 50 == 0:
            _check(rib, model, names, f"step {i} ({how})")
    _check(rib, model, names, f"end ({how})")
    assert sum(model.refused.values()) > 100  # the limit was reached often, or this proves little
    if routers == 20:
        assert rib.tables[V4]._next_slot >= 16  # wide entries
    if how == "fused":
        assert server.stats()["fused_lines"] > 100


def _rib(limit: int = 5) -> Rib:
    rib = Rib()
    rib.set_prefix_limits(PrefixLimits(default={V4: limit, V6: limit}))
    return rib


def test_new_prefixes_past_the_limit_are_refused_in_the_updates_order() -> None:
    rib = _rib()
    rib.apply_many(_event(("announce", "192.0.2.1", V4, POOL4[:8], None, 0)))
    assert held(rib, "192.0.2.1", V4) == set(POOL4[:5])
    fs = rib.routers["192.0.2.1"].families[V4]
    assert (fs.prefixes, fs.prefixes_refused, rib.prefixes_refused) == (5, 3, 3)
    assert rib.stats()["prefixes_refused"] == 3


def test_held_prefixes_are_still_updated_at_the_limit() -> None:
    rib = _rib()
    rib.apply_many(_event(("announce", "192.0.2.1", V4, POOL4[:5], None, 0)))
    rib.apply_many(_event(("announce", "192.0.2.1", V4, [POOL4[9], POOL4[2], POOL4[4]], None, 3)))
    (m,) = rib.exact("192.0.2.1", V4, POOL4[2])
    assert m.attributes.as_path == ((AS_SEQUENCE, (65003, 1003)),)
    assert rib.exact("192.0.2.1", V4, POOL4[9]) == []
    assert rib.routers["192.0.2.1"].families[V4].prefixes_refused == 1


def test_a_withdrawal_makes_room_and_add_path_ids_of_held_prefixes_pass() -> None:
    rib = _rib()
    rib.apply_many(_event(("announce", "192.0.2.1", V4, POOL4[:5], None, 0)))
    rib.apply_many(_event(("withdraw", "192.0.2.1", V4, POOL4[:2], None, 0)))
    rib.apply_many(_event(("announce", "192.0.2.1", V4, POOL4[10:13], [1, 1, 1], 1)))
    assert held(rib, "192.0.2.1", V4) == set(POOL4[2:5] + POOL4[10:12])
    rib.apply_many(_event(("announce", "192.0.2.1", V4, [POOL4[10]] * 3, [2, 3, 4], 2)))
    assert len(rib.exact("192.0.2.1", V4, POOL4[10])) == 4
    assert rib.routers["192.0.2.1"].families[V4].prefixes_refused == 1


def test_a_router_s_own_limit_overrides_the_default_and_families_count_apart() -> None:
    rib = Rib()
    rib.set_prefix_limits(PrefixLimits(default={V4: 3, V6: 2}, by_neighbor={"192.0.2.2": {V4: 6}}))
    for r in ("192.0.2.1", "192.0.2.2"):
        rib.apply_many(_event(("announce", r, V4, POOL4[:10], None, 0)))
        rib.apply_many(_event(("announce", r, V6, POOL6[:10], None, 0)))
    assert [len(held(rib, r, f)) for r in ("192.0.2.1", "192.0.2.2") for f in (V4, V6)] == [
        3,
        2,
        6,
        2,
    ]


def test_no_limit_unless_one_is_set() -> None:
    rib = Rib()
    rib.apply_many(_event(("announce", "192.0.2.1", V4, POOL4, None, 0)))
    assert len(held(rib, "192.0.2.1", V4)) == len(POOL4)
    assert rib.routers["192.0.2.1"].families[V4].max_prefixes == 0


def test_a_lowered_limit_removes_nothing_and_refuses_new_prefixes() -> None:
    rib = _rib(limit=10)
    rib.apply_many(_event(("announce", "192.0.2.1", V4, POOL4[:10], None, 0)))
    rib.set_prefix_limits(PrefixLimits(default={V4: 4}))
    assert rib.routers["192.0.2.1"].families[V4].max_prefixes == 4
    rib.apply_many(_event(("announce", "192.0.2.1", V4, POOL4[8:14], None, 1)))
    assert held(rib, "192.0.2.1", V4) == set(POOL4[:10])
    rib.apply_many(_event(("withdraw", "192.0.2.1", V4, POOL4[:7], None, 0)))
    rib.apply_many(_event(("announce", "192.0.2.1", V4, POOL4[20:25], None, 1)))
    assert held(rib, "192.0.2.1", V4) == set(POOL4[7:10] + POOL4[20:21])


def test_refused_prefixes_are_logged_once_then_every_so_many(caplog, monkeypatch) -> None:
    monkeypatch.setattr(ribd.prefix_limit, "REFUSED_LOG_EVERY", 4)
    rib = _rib(limit=2)
    rib.router_names = {"192.0.2.1": "edge1"}
    with caplog.at_level(logging.WARNING, logger="ribd.rib"):
        for i in range(7):  # 2 held, then 2 refused an UPDATE: 2, 4, 6, 8, 10, 12 refused
            rib.apply_many(_event(("announce", "192.0.2.1", V4, POOL4[2 * i : 2 * i + 2], None, 0)))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4  # the first (2), then past 4, 8 and 12
    assert lines[0] == (
        "router edge1 (192.0.2.1) is at its limit of 2 ipv4 unicast prefixes "
        "(max_prefixes_ipv4): new prefixes are refused until it withdraws some; 2 refused so far"
    )
    assert lines[-1].endswith("; 12 refused so far")
