"""``ribd._announce.announce_loop`` (``Rib._announce``'s general loop compiled)
against the Python loop it replaces (``ribd.rib.ANNOUNCE_LOOP = None``): the same
event streams through two RIBs must leave the same store, counters, change log,
slot sequence numbers and interned entries (the "replaced entry leaves the intern
dict" rule included), and raise the same errors.

The streams are what the compiled loop is for: routers whose tables arrive after
other routers' tables were merged into the store's arrays, re-announcements with
equal and other attributes, withdrawals (holes in the arrays), ADD-PATH, a
prefix twice in an UPDATE, and restarts whose stale slots are cleared as the
routes come back."""

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
from ribd.rib import Rib
from tests.ribd.test_announce_shared import Clock
from tests.ribd.test_apply_compiled import _state

COMPILED = ribd.rib.ANNOUNCE_LOOP
if COMPILED is not None:
    from ribd._announce import prefixes_taken
pytestmark = pytest.mark.skipif(COMPILED is None, reason="ribd._announce is not built")

V4, V6 = IPV4_UNICAST, IPV6_UNICAST
ROUTERS = [f"192.0.2.{i}" for i in range(1, 7)]


def _attrs() -> list:
    return [
        make_attributes(((AS_SEQUENCE, (65000 + i % 3, 1000 + i)),), next_hop=f"192.0.2.{200 + i}")
        for i in range(5)
    ]


def _steps(rng: random.Random, count: int) -> list:
    pool = [f"10.{i // 256}.{i % 256}.0/24" for i in range(1500)]
    pool6 = [f"2001:db8:{i:x}::/48" for i in range(200)]
    attrs = _attrs()
    out: list = [[SessionState(r, "up")] for r in ROUTERS]

    def group(size: int) -> tuple:
        start = rng.randrange(len(pool) - size)
        return tuple("".join(p) for p in pool[start : start + size])  # new str objects

    # The first routers' tables into the empty store (some UPDATEs partly held,
    # which leaves prefixes to the general loop with the new path's entry made).
    first = rng.randint(1, 3)
    for start in range(0, 900, 6):
        for r in ROUTERS[:first]:
            size = rng.randint(1, 8)
            g = tuple(pool[start : start + size])
            if rng.random() < 0.1:
                g = (*g, *group(2))
            out.append([UpdateTime(r, 1.0), RoutesAnnounced(r, V4, g, None, rng.choice(attrs))])
    out.append("merge")
    restarts = 0  # each takes a new slot: stay below wide entries' 16 (ribd.entries)
    for _ in range(count):
        roll = rng.random()
        router = rng.choice(ROUTERS)
        a = rng.choice(attrs)
        g = group(rng.randint(0, 10))
        if roll < 0.35:  # a later router's table: held prefixes, now and then new ones
            if rng.random() < 0.2:
                g = (*g, f"10.200.{rng.randrange(256)}.0/24")
            out.append([UpdateTime(router, 2.0), RoutesAnnounced(router, V4, g, None, a)])
        elif roll < 0.45:  # several routers send one group in turn
            for r in rng.sample(ROUTERS, rng.randint(2, 5)):
                out.append([RoutesAnnounced(r, V4, g, None, rng.choice(attrs[:2]))])
        elif roll < 0.5:
            twice = (*g, g[0], *g[:2]) if g else g
            out.append([RoutesAnnounced(router, V4, twice, None, a)])
        elif roll < 0.6:
            out.append([RoutesWithdrawn(router, V4, g, None)])
        elif roll < 0.67:
            ids = tuple(rng.choice((0, 0, 1, 2)) for _ in g)
            out.append([RoutesAnnounced(router, V4, g, ids, a)])
        elif roll < 0.72:
            g6 = tuple(rng.sample(pool6, rng.randint(1, 6)))
            out.append([RoutesAnnounced(router, V6, g6, None, a)])
        elif roll < 0.77:
            out.append("merge")
        elif roll < 0.8:
            out.append([EndOfRib(router, V4)])  # clears the router's stale slot
        elif roll < 0.81:  # hostile: prefixes that are not a sequence
            out.append([RoutesAnnounced(router, V4, 5, None, a)])  # type: ignore[arg-type]
        elif roll < 0.83 and restarts < 8:
            restarts += 1  # kept stale; its routes come back in the announcements after
            out.append([SessionState(router, "down", reason="test")])
            out.append([SessionState(router, "up")])
        else:  # a restarted router's refresh: a long run of its held prefixes
            for _ in range(rng.randint(1, 6)):
                out.append([RoutesAnnounced(router, V4, group(rng.randint(1, 8)), None, a)])
    return out


def _apply(rib: Rib, step: object, loop: object, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setattr(ribd.rib, "ANNOUNCE_LOOP", loop)
    try:
        if step == "merge":
            for table in rib.tables.values():
                rib._merge(table)
        else:
            rib.apply_many(step)
    except Exception as exc:  # hostile events: the same error from both
        return (type(exc), str(exc))
    return None


@pytest.mark.parametrize("variant", ["default", "short change log", "maintenance"])
@pytest.mark.parametrize("seed", range(6))
def test_compiled_loop_leaves_what_the_python_loop_leaves(seed, variant, monkeypatch) -> None:
    if variant == "short change log":  # the log forgotten part way through UPDATEs
        monkeypatch.setattr(ribd.table, "MAX_CHANGE_LOG", 200)
    rng = random.Random(seed)
    steps = _steps(rng, 1500)
    ribs = [Rib(clock=Clock(), stale_hold_time=600.0) for _ in range(2)]
    loops = [None, COMPILED]
    taken = prefixes_taken()
    for i, step in enumerate(steps):
        errors = [
            _apply(rib, step, loop, monkeypatch) for rib, loop in zip(ribs, loops, strict=True)
        ]
        assert errors[0] == errors[1], step
        if variant == "maintenance" and i % 97 == 0:  # stale expiry, sweeps, collections
            for rib in ribs:
                rib.clock.now += 700.0
                while rib.maintenance():
                    pass
        if i % 50 == 0 or i == len(steps) - 1:
            assert _state(ribs[0]) == _state(ribs[1]), f"after step {i}: {step}"
    table = ribs[1].tables[V4]
    assert table._next_slot < 16  # (no wide entries: not this path)
    # the compiled loop wrote, in the arrays
    assert len(table.store.keys) > 500 and prefixes_taken() - taken > 3000


def test_the_replaced_entry_leaves_the_intern_dict_in_the_arrays(monkeypatch) -> None:
    """A router after the merge: each prefix's entry is replaced, and the old
    one leaves the intern dict once no prefix holds it (compiled and Python alike)."""
    a, b, c = _attrs()[:3]
    held = ("10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24")
    for loop in (None, COMPILED):
        monkeypatch.setattr(ribd.rib, "ANNOUNCE_LOOP", loop)
        rib = Rib(clock=Clock())
        rib.apply_many([RoutesAnnounced(ROUTERS[0], V4, held, None, a)])
        rib._merge(rib.tables[V4])
        table = rib.tables[V4]
        assert len(table.store.keys) == 3 and not table.store.delta
        rib.apply_many([RoutesAnnounced(ROUTERS[1], V4, held[:2], None, b)])
        assert set(table._entries) == {(a,), (a, b)}  # (a,) still at 10.0.2.0/24
        rib.apply_many([RoutesAnnounced(ROUTERS[1], V4, held[2:], None, c)])
        assert set(table._entries) == {(a, b), (a, c)}
        rib.apply_many([RoutesAnnounced(ROUTERS[1], V4, held, None, c)])
        assert set(table._entries) == {(a, c)}
        fs = rib.routers[ROUTERS[1]].families[V4]
        assert (fs.prefixes, fs.paths, fs.writes, table.writes) == (3, 3, 6, 9)


def test_a_restart_refresh_clears_the_stale_copies(monkeypatch) -> None:
    a, b = _attrs()[:2]
    held = tuple(f"10.0.{i}.0/24" for i in range(6))
    for loop in (None, COMPILED):
        monkeypatch.setattr(ribd.rib, "ANNOUNCE_LOOP", loop)
        rib = Rib(clock=Clock(), stale_hold_time=600.0)
        rib.apply(SessionState(ROUTERS[0], "up"))
        rib.apply_many([RoutesAnnounced(ROUTERS[0], V4, held, None, a)])
        rib._merge(rib.tables[V4])
        rib.apply(SessionState(ROUTERS[0], "down", reason="test"))
        rib.apply(SessionState(ROUTERS[0], "up"))
        fs = rib.routers[ROUTERS[0]].families[V4]
        assert fs.stale_slot == 0 and fs.slot == 1 and fs.stale_prefixes == 6
        rib.apply_many([RoutesAnnounced(ROUTERS[0], V4, held[:4], None, b)])
        table = rib.tables[V4]
        assert fs.stale_prefixes == 2 and fs.prefixes == 4
        assert set(table._entries) == {(a,), (None, b)}  # (a,) at the two not refreshed
        assert [m.attributes for m in rib.exact(ROUTERS[0], V4, held[0])] == [b]


def test_the_loop_reads_at_offsets() -> None:
    """``general_loop`` reads a router's FamilyState, the FamilyTable and the store
    at their slots' offsets (as ribd._apply and ribd._wide do). Fails before
    (stop 37, movewide): ~20 getattr / setattr an UPDATE, and per prefix for a
    returning route; and before stop 57 for the table (read in its dict)."""
    import ribd._announce

    assert ribd._announce.offsets_in_use()


@pytest.mark.parametrize("seed", range(2))
def test_other_types_take_getattr_and_leave_what_the_python_loop_leaves(seed, monkeypatch) -> None:
    """A FamilyTable of a subclass whose ``store`` is a property (a decoy in its
    dict), a FamilyState and a PrefixStore of subclasses: the compiled loop reads
    them through getattr and leaves what the Python loop leaves, over the random
    streams with restarts, ADD-PATH, withdrawals and merges."""
    from tests.ribd.test_wide_fields import OtherState, OtherStore, OtherTable

    monkeypatch.setattr(ribd.rib, "FamilyTable", OtherTable)
    monkeypatch.setattr(ribd.rib, "FamilyState", OtherState)
    monkeypatch.setattr(ribd.table, "PrefixStore", OtherStore)
    test_compiled_loop_leaves_what_the_python_loop_leaves(
        10 + seed, "short change log", monkeypatch
    )
    rib = Rib()
    rib.apply_many([RoutesAnnounced(ROUTERS[0], V4, ("10.0.0.0/24",), None, _attrs()[0])])
    table = rib.tables[V4]
    assert type(table) is OtherTable and type(table.store) is OtherStore
    assert type(rib.routers[ROUTERS[0]].families[V4]) is OtherState
