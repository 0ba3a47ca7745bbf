"""``ribd._apply.apply_many`` (compiled) against ``Rib.apply_many``'s Python
reference (``ribd.rib.PY_APPLY_MANY``): the same event streams through two RIBs
must leave the same store, counters, change log, slot sequence numbers and
interned entries, and raise the same errors on hostile events."""

from __future__ import annotations

import random

import pytest

import ribd.rib
import ribd.table
from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.events import (
    IPV4_UNICAST,
    IPV6_UNICAST,
    EndOfRib,
    RoutesAnnounced,
    RoutesWithdrawn,
    SessionState,
    UpdateTime,
)
from ribd.rib import PY_APPLY_MANY, Rib
from tests.ribd.test_announce_shared import Clock

pytestmark = pytest.mark.skipif(not ribd.rib.APPLY_COMPILED, reason="ribd._apply is not built")

V4, V6 = IPV4_UNICAST, IPV6_UNICAST
ROUTERS = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]
STRANGER = "198.51.100.9"  # not a configured router


# (That ribd._apply is built wherever a C compiler is, CI fails otherwise:
# tests/test_compiled_modules.py; a check here would be skipped with the module.)


def _state(rib: Rib) -> dict:
    out: dict = {
        "counters": {
            (n, f): (fs.slot, fs.stale_slot, fs.prefixes, fs.paths, fs.writes, fs.stale_prefixes)
            for n, r in rib.routers.items()
            for f, fs in r.families.items()
        },
        "last_update": {n: r.last_update for n, r in rib.routers.items()},
        "rib": (rib.shared_writes, rib.unknown_neighbor_events, rib.treated_as_withdraw),
    }
    for family, table in rib.tables.items():
        # One key type per store: the delta and change log hold ints (IPv6 too, since stop 35).
        kind = int if table.store.int_keys else str
        assert {type(k) for k in table.store.delta.keys()} <= {kind}, family  # noqa: SIM118 (a list)
        assert {type(k) for k in table.changes} <= {kind}, family
        out[family] = {
            "items": sorted(table.store.items()),
            "delta": list(table.store.delta.items()),  # in insertion order
            "writes": table.writes,
            "changes": (table.changes_start, list(table.changes)),
            "slot_seq": dict(table.slot_seq),
            "interned": sorted(table._entries, key=repr),
            "next_slot": table._next_slot,
        }
    return out


def _attrs() -> list:
    return [
        make_attributes(((AS_SEQUENCE, (65000 + i, 1000 + i)),), next_hop="192.0.2.254")
        for i in range(6)
    ]


def _events(rng: random.Random, steps: int) -> list:
    pool = [f"10.{i // 256}.{i % 256}.0/24" for i in range(3000)]
    pool6 = [f"2001:db8:{i:x}::/48" for i in range(300)]
    attrs = _attrs()
    out: list = [SessionState(r, "up") for r in ROUTERS]
    restarts = 0  # each takes a new slot: stay below wide entries' 16 (ribd.entries)
    for step in range(steps):
        roll = rng.random()
        router = rng.choice(ROUTERS)
        start = rng.randrange(len(pool))
        # new str objects each time, as the decoder makes them
        group = tuple("".join(p) for p in pool[start : start + rng.randint(0, 12)])
        a = rng.choice(attrs)
        if roll < 0.45:
            # Routers in turn send one group (a table load's shape).
            for r in rng.sample(ROUTERS, rng.randint(1, 4)):
                out.append([UpdateTime(r, rng.random()), RoutesAnnounced(r, V4, group, None, a)])
        elif roll < 0.6:
            out.append([RoutesAnnounced(router, V4, group, None, a)])
        elif roll < 0.65:
            twice = (*group, group[0]) if group else group
            out.append([RoutesAnnounced(router, V4, twice, None, a)])
        elif roll < 0.7:  # partly held
            extra = tuple(rng.sample(pool, 3))
            out.append([RoutesAnnounced(router, V4, group + extra, None, a)])
        elif roll < 0.77:
            out.append([RoutesWithdrawn(router, V4, group, None)])
        elif roll < 0.8:
            out.append([RoutesWithdrawn(router, V4, group, None, reason="bad attributes: x")])
        elif roll < 0.84:
            ids = tuple(rng.choice((0, 1, 2)) for _ in group)
            out.append([RoutesAnnounced(router, V4, group, ids, a)])
        elif roll < 0.88:
            g6 = tuple(rng.sample(pool6, rng.randint(1, 5)))
            out.append([RoutesAnnounced(router, V6, g6, None, a)])
        elif roll < 0.9:
            out.append([UpdateTime(STRANGER, 1.0), RoutesAnnounced(STRANGER, V4, group, None, a)])
        elif roll < 0.92:
            # (late: a table load's short paths run only before the first merge)
            out.append("merge" if step > steps * 2 // 3 else [EndOfRib(router, V6)])
        elif roll < 0.93:
            out.append([EndOfRib(router, V4)])
        elif roll < 0.94:  # hostile: a family no table has
            out.append([RoutesAnnounced(router, "ipv9 unicast", group, None, a)])
        elif roll < 0.95:  # hostile: prefixes that are not a sequence
            out.append([RoutesAnnounced(router, V4, 5, None, a)])  # type: ignore[arg-type]
        elif restarts < 8:
            restarts += 1
            out.append([SessionState(router, "down", reason="test")])  # kept stale
            out.append([SessionState(router, "up")])
    return out


def _apply_both(ribs: list[Rib], step: object) -> None:
    errors = []
    for k, rib in enumerate(ribs):
        try:
            if step == "merge":
                for table in rib.tables.values():
                    rib._merge(table)
            elif k == 0:
                PY_APPLY_MANY(rib, step)
            else:
                rib.apply_many(step)
            errors.append(None)
        except Exception as exc:  # hostile events: the same error from both
            errors.append((type(exc), str(exc)))
    assert errors[0] == errors[1], step
    assert not ribs[0].lock.locked() and not ribs[1].lock.locked()


@pytest.mark.parametrize("variant", ["default", "shared at 4", "short change log", "neighbors"])
@pytest.mark.parametrize("seed", range(5))
def test_compiled_apply_leaves_what_the_reference_leaves(seed, variant, monkeypatch) -> None:
    if variant == "shared at 4":
        monkeypatch.setattr(ribd.rib, "SHARED_AT_LEAST", 4)
    if variant == "short change log":
        monkeypatch.setattr(ribd.table, "MAX_CHANGE_LOG", 300)
    rng = random.Random(seed)
    steps = _events(rng, 1200)
    ribs = [Rib(clock=Clock(), stale_hold_time=600.0) for _ in range(2)]
    if variant == "neighbors":
        for rib in ribs:
            rib.neighbors = frozenset(ROUTERS)
    for i, step in enumerate(steps):
        _apply_both(ribs, step)
        if i % 40 == 0 or i == len(steps) - 1:
            assert _state(ribs[0]) == _state(ribs[1]), f"after step {i}: {step}"
    assert ribs[1].shared_writes >= 50  # the shared short path ran, or this proves little
    assert ribs[1].tables[V4]._next_slot < 16  # (no wide entries: not this path)


def test_a_load_is_taken_in_c_but_add_path_and_empty_updates_are_left() -> None:
    """Every UPDATE of the delta without path ids is written from C: the two short
    paths (all new, all one shared entry) and, since stop 57, the rest (partly
    held, held by several entries, the router's own path there, new first then
    one held, a prefix twice), leaving what the Python reference leaves. ADD-PATH
    and an UPDATE without prefixes are left to ``Rib._announce``, nothing written."""
    from ribd._apply import announce_load

    rib, ref = Rib(clock=Clock()), Rib(clock=Clock())
    a, b = _attrs()[:2]
    old = tuple(f"10.0.{i}.0/24" for i in range(6))
    for r in ROUTERS[:2]:
        rib.apply(SessionState(r, "up"))
        ref.apply(SessionState(r, "up"))

    def taken(ev: RoutesAnnounced) -> bool:
        PY_APPLY_MANY(ref, [ev])
        with rib.lock:
            return announce_load(rib, ev)

    assert taken(RoutesAnnounced(ROUTERS[0], V4, old, None, a))  # all new
    assert taken(RoutesAnnounced(ROUTERS[1], V4, old, None, b))  # all shared
    assert rib.shared_writes == 6
    more = (*old[:2], "10.9.0.0/24")
    assert taken(RoutesAnnounced(ROUTERS[0], V4, more, None, b))  # partly held
    assert taken(RoutesAnnounced(ROUTERS[0], V4, old, None, b))  # its own path there
    assert taken(RoutesAnnounced(ROUTERS[1], V4, old[:4], None, a))  # several entries
    for odd in (("10.7.0.0/23", "10.7.2.0/25", old[0]), ("10.7.0.0/23", "10.7.0.0/23")):
        assert taken(RoutesAnnounced(ROUTERS[0], V4, odd, None, b))  # new first, then held or twice
    assert _state(rib) == _state(ref)
    before = _state(rib)
    with rib.lock:
        assert not announce_load(rib, RoutesAnnounced(ROUTERS[0], V4, old, (1,) * 6, b))
        assert not announce_load(rib, RoutesAnnounced(ROUTERS[0], V4, (), None, b))
    assert _state(rib) == before  # nothing written when not taken
    assert rib.tables[V4].store.delta.lengths() == [25, 24, 23]
    rib._merge(rib.tables[V4])
    with rib.lock:  # prefixes in the arrays: the general loop's, compiled where built
        late = RoutesAnnounced(ROUTERS[0], V4, ("10.8.0.0/24",), None, b)
        assert announce_load(rib, late) is (ribd.rib.ANNOUNCE_LOOP is not None)
    for prefix in old:
        assert [m.attributes for m in rib.exact(ROUTERS[0], V4, prefix)] == [b]
    for prefix in old[:4]:
        assert [m.attributes for m in rib.exact(ROUTERS[1], V4, prefix)] == [a]


def test_the_replaced_entry_leaves_the_intern_dict() -> None:
    rib = Rib(clock=Clock())
    a, b = _attrs()[:2]
    old = ("10.0.0.0/24", "10.0.1.0/24")
    rib.apply_many([RoutesAnnounced(ROUTERS[0], V4, old, None, a)])
    table = rib.tables[V4]
    assert list(table._entries) == [(a,)]
    rib.apply_many([RoutesAnnounced(ROUTERS[1], V4, old, None, b)])
    assert list(table._entries) == [(a, b)]  # (a,) went: no prefix holds it
    # still held by another prefix: kept
    rib.apply_many([RoutesAnnounced(ROUTERS[0], V4, ("10.0.2.0/24", "10.0.3.0/24"), None, a)])
    rib.apply_many([RoutesAnnounced(ROUTERS[1], V4, ("10.0.2.0/24",), None, b)])
    assert set(table._entries) == {(a, b), (a,)}


def test_the_real_table_as_two_routers_loads_the_same() -> None:
    from bench.common import FULL_TABLE, data_available

    if data_available(FULL_TABLE):
        pytest.skip("the real table is not in ../shared/data")
    from bench.ingest import raw_lines
    from ribd.parser import ExabgpParser

    lines, peers = raw_lines(2)
    lines = lines[:24_004] + lines[-2:]  # the first 12,000 UPDATEs of each router
    ribs = [Rib(), Rib()]
    parsers = [ExabgpParser(rib.interner) for rib in ribs]
    for line in lines:
        for k, rib in enumerate(ribs):
            events = parsers[k].parse(line)
            if k == 0:
                PY_APPLY_MANY(rib, events)
            else:
                rib.apply_many(events)
    # Each RIB has its own interner, whose sets compare by identity: compare texts.
    assert repr(_state(ribs[0])).replace(" ", "") == repr(_state(ribs[1])).replace(" ", "")
    assert ribs[1].shared_writes > 1000
    assert all(ribs[1].routers[p].families[V4].prefixes > 1000 for p in peers)
