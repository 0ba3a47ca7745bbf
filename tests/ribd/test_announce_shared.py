"""``Rib._announce_shared`` (one new entry written for all of an UPDATE's prefixes
that share one) against the general per-prefix loop it short-cuts: the same
random event streams through two RIBs, one with the short cut switched off,
must leave the same store, counters, change log and interned entries."""

from __future__ import annotations

import random

import pytest

import ribd.rib
from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.events import IPV4_UNICAST, RoutesAnnounced, RoutesWithdrawn, SessionState
from ribd.rib import Rib

V4 = IPV4_UNICAST
ROUTERS = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _state(rib: Rib) -> dict:
    table = rib.tables[V4]
    counters = {
        (n, f): (fs.slot, fs.stale_slot, fs.prefixes, fs.paths, fs.writes, fs.stale_prefixes)
        for n, r in rib.routers.items()
        for f, fs in r.families.items()
    }
    return {
        "items": sorted(table.store.items()),
        "counters": counters,
        "writes": table.writes,
        "changes": list(table.changes),
        "interned": set(table._entries),
    }


def _events(rng: random.Random, steps: int) -> list:
    pool = [f"10.{i // 256}.{i % 256}.0/24" for i in range(4000)]
    attrs = [
        make_attributes(((AS_SEQUENCE, (65000 + i, 1000 + i)),), next_hop="192.0.2.254")
        for i in range(6)
    ]
    out: list = [SessionState(r, "up") for r in ROUTERS]
    restarts = 0  # each takes a new slot: stay below wide entries' 16 (ribd.entries)
    for _ in range(steps):
        roll = rng.random()
        router = rng.choice(ROUTERS)
        start = rng.randrange(len(pool))
        group = tuple(pool[start : start + rng.randint(1, 12)])
        if roll < 0.5:
            # Some routers in turn send one group (a table load's shape): after
            # the first, the group's prefixes mostly share one entry.
            for r in rng.sample(ROUTERS, rng.randint(2, 4)):
                out.append(RoutesAnnounced(r, V4, group, None, rng.choice(attrs)))
        elif roll < 0.75:
            out.append(RoutesAnnounced(router, V4, group, None, rng.choice(attrs)))
        elif roll < 0.8:
            out.append(RoutesAnnounced(router, V4, (*group, group[0]), None, rng.choice(attrs)))
        elif roll < 0.9:
            out.append(RoutesWithdrawn(router, V4, group, None))
        elif roll < 0.94:
            ids = tuple(rng.choice((0, 1, 2)) for _ in group)
            out.append(RoutesAnnounced(router, V4, group, ids, rng.choice(attrs)))
        elif roll < 0.95:
            out.append("merge")
        elif restarts < 8:
            restarts += 1
            out.append(SessionState(router, "down", reason="test"))  # kept stale
            out.append(SessionState(router, "up"))
    return out


@pytest.mark.parametrize("at_least", [ribd.rib.SHARED_AT_LEAST, 4])
@pytest.mark.parametrize("seed", range(6))
def test_shared_writes_leave_what_the_per_prefix_loop_leaves(seed, at_least, monkeypatch) -> None:
    rng = random.Random(seed)
    events = _events(rng, 1500)
    ribs = [Rib(clock=Clock(), stale_hold_time=600.0) for _ in range(2)]
    for i, ev in enumerate(events):
        for k, rib in enumerate(ribs):
            # The reference: the short cut off (no UPDATE is that long).
            monkeypatch.setattr(ribd.rib, "SHARED_AT_LEAST", 10**9 if k == 0 else at_least)
            if ev == "merge":
                rib._merge(rib.tables[V4])
            else:
                rib.apply(ev)
        if i % 50 == 0 or i == len(events) - 1:
            assert _state(ribs[0]) == _state(ribs[1]), f"after event {i}: {ev}"
    assert ribs[0].shared_writes == 0
    assert ribs[1].shared_writes >= 50  # the short cut was taken, or this proves nothing
    assert ribs[1].tables[V4]._next_slot < 16  # (no wide entries: not this path)


def test_a_group_in_the_delta_is_written_at_once_and_not_after_a_merge(monkeypatch) -> None:
    monkeypatch.setattr(ribd.rib, "SHARED_AT_LEAST", 4)  # (the default takes even one)
    rib = Rib(clock=Clock())
    a, b = (make_attributes(((AS_SEQUENCE, (65001, n)),), next_hop="192.0.2.254") for n in (1, 2))
    old = tuple(f"10.0.{i}.0/24" for i in range(6))
    for r in ROUTERS[:2]:
        rib.apply(SessionState(r, "up"))
    rib.apply(RoutesAnnounced(ROUTERS[0], V4, old, None, a))
    rib.apply(RoutesAnnounced(ROUTERS[1], V4, old[:3], None, b))  # below SHARED_AT_LEAST
    rib.apply(RoutesAnnounced(ROUTERS[1], V4, old[3:] + old[3:4], None, b))  # one twice
    assert rib.shared_writes == 0
    rib.apply(RoutesWithdrawn(ROUTERS[1], V4, old, None))
    rib.apply(RoutesAnnounced(ROUTERS[1], V4, old[:4], None, b))
    assert rib.shared_writes == 4
    rib._merge(rib.tables[V4])
    rib.apply(RoutesAnnounced(ROUTERS[1], V4, old, None, a))  # in the arrays: the loop's
    assert rib.shared_writes == 4
    for prefix in old:
        assert [m.attributes for m in rib.exact(ROUTERS[1], V4, prefix)] == [a]
    fs = rib.routers[ROUTERS[1]].families[V4]
    assert (fs.prefixes, fs.paths) == (6, 6)


def test_an_update_of_one_prefix_takes_the_short_cut() -> None:
    """SHARED_AT_LEAST is 1: most UPDATEs of a real table carry 1-3 prefixes, and
    the compiled short cut costs less than the general loop even for one."""
    rib = Rib(clock=Clock())
    a, b = (make_attributes(((AS_SEQUENCE, (65001, n)),), next_hop="192.0.2.254") for n in (1, 2))
    for r in ROUTERS[:2]:
        rib.apply(SessionState(r, "up"))
    rib.apply(RoutesAnnounced(ROUTERS[0], V4, ("10.0.0.0/24",), None, a))
    rib.apply(RoutesAnnounced(ROUTERS[1], V4, ("10.0.0.0/24",), None, b))
    assert rib.shared_writes == 1
    assert [m.attributes for m in rib.exact(ROUTERS[1], V4, "10.0.0.0/24")] == [b]
    assert [m.attributes for m in rib.exact(ROUTERS[0], V4, "10.0.0.0/24")] == [a]
    fs = rib.routers[ROUTERS[1]].families[V4]
    assert (fs.prefixes, fs.paths) == (1, 1)
