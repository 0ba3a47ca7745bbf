"""The compiled ``announce_wide`` (ribd/_wide.pyx) leaves the RIB exactly as the
Python one (``ribd.entries.announce_wide``, the reference) does: the same event
streams applied to two RIBs, one through each, give the same whole state after
every step (every prefix's entry with its row's sharing and interning, the
intern dict's contents in order, path sets, every router's counters, the change
logs), over random sequences at 16-40 routers."""

from __future__ import annotations

import random

import pytest

import ribd.entries
import ribd.rib
from ribd.attributes import PathAttributes
from ribd.entries import OVERLAY_SLOTS, Overlay, row_of
from ribd.events import EndOfRib, RoutesAnnounced, RoutesWithdrawn, SessionState
from ribd.rib import Rib
from tests.ribd.test_wide_entries import V4, V6, Clock, Model, _entries, _neighbor

_wide = pytest.importorskip("ribd._wide", reason="ribd/_wide.pyx not built")
PY = ribd.entries.announce_wide
C = _wide.announce_wide


def _script(seed: int, routers: int) -> list[tuple]:
    """Steps: ("events", [...]), ("merge",), ("maintain",), ("tick", s)."""
    m = Model(seed, routers)
    rnd = m.rnd
    steps: list[tuple] = []
    fresh = iter(range(10**6))

    def new_prefix() -> tuple[str, str]:
        x = next(fresh)
        if rnd.random() < 0.8:
            return V4, f"10.{200 + x // 256}.{x % 256}.0/24"
        return V6, f"2001:db8:f{x:03x}::/48"

    def table(k: int) -> list:
        """Router k's UPDATEs, some with a prefix twice, some with new prefixes."""
        events = m.table(k)
        for i, ev in enumerate(events):
            r = rnd.random()
            if r < 0.08:  # a prefix twice in one UPDATE
                events[i] = RoutesAnnounced(
                    ev.neighbor, ev.family, (*ev.prefixes, ev.prefixes[0]), None, ev.attributes
                )
            elif r < 0.14:  # prefixes new to the store beside held ones
                extra = [p for f, p in (new_prefix() for _ in range(3)) if f == ev.family]
                events[i] = RoutesAnnounced(
                    ev.neighbor, ev.family, (*ev.prefixes, *extra), None, ev.attributes
                )
        return events

    k = 0
    while k < routers:  # loads in batches, merged into the arrays between some
        for _ in range(rnd.randrange(1, 6)):
            if k < routers:
                steps.append(("events", [SessionState(_neighbor(k), "up"), *table(k)]))
                k += 1
        steps.append(rnd.choice((("merge",), ("maintain",), ("events", []))))
    for _round in range(10):
        k = rnd.randrange(routers)
        n = _neighbor(k)
        what = rnd.choice(("withdraw", "addpath", "restart", "reload", "reload", "purge"))
        if what == "withdraw":
            by_family: dict[str, list[str]] = {}
            for family, prefix in m.some(12):
                by_family.setdefault(family, []).append(prefix)
            steps.append(
                ("events", [RoutesWithdrawn(n, f, tuple(p), None) for f, p in by_family.items()])
            )
            steps.append(("events", table(rnd.randrange(routers))))  # some come back
        elif what == "addpath":
            events = []
            for family, prefix in m.some(8):
                ids = (rnd.randrange(0, 4),)
                kind = rnd.randrange(4)
                g = rnd.randrange(len(m.groups))
                events.append(RoutesAnnounced(n, family, (prefix,), ids, m.sets[k, g, kind]))
                if rnd.random() < 0.4:
                    events.append(RoutesWithdrawn(n, family, (prefix,), ids))
            steps.append(("events", events))
            steps.append(("events", table(k)))  # path id 0 over the ADD-PATH sets
        elif what == "restart":  # stale generation kept, part of the table again, End-of-RIB
            steps.append(("events", [SessionState(n, "down", reason="test")]))
            if rnd.random() < 0.5:
                steps.append(("merge",))
            events = table(k)
            steps.append(("events", [SessionState(n, "up"), *events[: len(events) // 2]]))
            steps.append(("events", events[len(events) // 2 :]))
            steps.append(("events", [EndOfRib(n, V4), EndOfRib(n, V6)]))
        elif what == "reload":  # the router's table again (other diversions: own values)
            steps.append(("events", table(k)))
        else:  # stale hold over: the router's routes go
            steps.append(("events", [SessionState(n, "down", reason="test")]))
            steps.append(("tick", 1000.0))
        steps.append(rnd.choice((("merge",), ("maintain",), ("events", []))))
    return steps


def _state(rib: Rib) -> list:
    """The RIB's whole state, objects shared by the two RIBs (attribute sets: the
    events') by identity, the RIB's own (rows, path sets) by value and by the
    order they are first met (so two prefixes sharing a row show it)."""
    seen: dict[int, int] = {}

    def num(o: object) -> int:
        return seen.setdefault(id(o), len(seen))

    def val(v: object) -> object:
        if v is None:
            return None
        if type(v) is PathAttributes:
            return ("A", id(v))
        return ("P", num(v), tuple((p, id(a)) for p, a in v))  # type: ignore[attr-defined]

    def row(t: tuple) -> tuple:
        return (num(t), tuple(val(v) for v in t))

    def ent(e: object, interned: dict) -> object:
        if e is None:
            return None
        if type(e) is Overlay:
            over = tuple(x if i % 2 == 0 else val(x) for i, x in enumerate(e.over))
            return ("O", row(e.row), interned.get(e.row) is e.row, over)
        return ("T", row(e), interned.get(e) is e)  # type: ignore[arg-type]

    out: list = []
    for family in sorted(rib.tables):
        t = rib.tables[family]
        s = t.store
        interned = t._entries
        out.append((family, s.keys.tobytes(), s.holes))
        out.append([ent(e, interned) for e in s.values.tolist()])
        out.append([(k, ent(e, interned)) for k, e in s.delta.items()])
        out.append([row(e) for e in interned])  # the intern dict, in its order
        out.append((t.writes, t.changes_start, list(t.changes), t._next_slot))
        out.append(sorted(t.slot_seq.items()))
    out.append(sorted(val(p) for p in rib._pathsets))  # type: ignore[type-var]
    for neighbor in sorted(rib.routers):
        r = rib.routers[neighbor]
        for family in sorted(r.families):
            fs = r.families[family]
            counters = (fs.prefixes, fs.paths, fs.stale_prefixes, fs.writes)
            out.append((neighbor, family, fs.slot, fs.stale_slot, *counters))
    return out


def _run_step(rib, clock, step, apply) -> None:
    """One step of a stream on one RIB: its events through ``apply``, a merge,
    time passing; maintenance run to the end after a tick or a "maintain"."""
    if step[0] == "events":
        for ev in step[1]:
            apply(ev)
    elif step[0] == "merge":
        rib.compact()
    elif step[0] == "tick":
        clock.now += step[1]
    if step[0] in ("maintain", "tick"):
        while rib.maintenance():
            pass


def _compare(steps: list[tuple], first, second) -> dict:
    """Apply ``steps`` to two RIBs, ``first`` / ``second`` as ``announce_wide``;
    assert equal states after every step. Returns what the stream exercised."""
    clocks = Clock(), Clock()
    ribs = [Rib(stale_hold_time=300.0, clock=c) for c in clocks]
    used = {"wide": 0, "arrays": 0, "delta": 0}

    def counting(impl):
        def call(rib, table, fs, prefixes, ids, found, attrs):
            used["wide"] += 1
            if type(found) is list:
                used["arrays"] += sum(1 for at in found if at >= 0)
                used["delta"] += sum(1 for at in found if at < 0)
            return impl(rib, table, fs, prefixes, ids, found, attrs)

        return call

    impls = (counting(first), lambda *a: second(*a))
    for i, step in enumerate(steps):
        for rib, clock, impl in zip(ribs, clocks, impls, strict=True):
            ribd.rib.announce_wide = impl
            _run_step(rib, clock, step, rib.apply)
        assert _state(ribs[0]) == _state(ribs[1]), f"step {i} ({step[0]}) differs"
    used["overlays"] = sum(
        type(e) is Overlay
        for t in ribs[0].tables.values()
        for e in [*t.store.values.tolist(), *t.store.delta.values()]
    )
    return used


@pytest.fixture
def counted(monkeypatch):
    """Counts of the Python reference's rare parts (on the first RIB's side)."""
    counts = {"rejoin": 0, "with_values": 0}
    rejoin, with_values = ribd.entries._rejoin, ribd.entries.with_values

    def counting_rejoin(*a):
        counts["rejoin"] += 1
        return rejoin(*a)

    def counting_with_values(*a):
        counts["with_values"] += 1
        return with_values(*a)

    monkeypatch.setattr(ribd.entries, "_rejoin", counting_rejoin)
    monkeypatch.setattr(ribd.entries, "with_values", counting_with_values)
    monkeypatch.setattr(ribd.rib, "announce_wide", ribd.rib.announce_wide)  # restored after
    return counts


def test_overlay_fields_are_read_at_their_offsets():
    """The compiled code reads Overlay.row and .over at their slots (else getattr)."""
    assert _wide.FIELDS_AT_OFFSETS


@pytest.mark.parametrize("seed", range(6))
def test_compiled_announce_wide_leaves_the_state_the_python_one_does(seed, counted):
    routers = OVERLAY_SLOTS + (seed * 5) % 25  # 16 .. 40
    steps = _script(seed, routers)
    used = _compare(steps, PY, C)
    assert used["wide"] > 0 and used["arrays"] > 0 and used["delta"] > 0
    assert used["overlays"] > 0
    assert counted["rejoin"] > 0  # prefixes put back onto the main row
    assert counted["with_values"] > 0  # ADD-PATH values


def test_the_comparison_sees_a_difference(counted):
    """The check can fail: the reference against itself with a changed limit on
    a prefix's own values (OVERLAY_MAX 8 -> 1 for one side) differs."""
    routers = OVERLAY_SLOTS + 6
    steps = _script(11, routers)

    def narrower(*a):
        saved = ribd.entries.OVERLAY_MAX
        ribd.entries.OVERLAY_MAX = 1
        try:
            return PY(*a)
        finally:
            ribd.entries.OVERLAY_MAX = saved

    with pytest.raises(AssertionError, match="differs"):
        _compare(steps, PY, narrower)


def test_a_large_update_with_many_rows():
    """An UPDATE whose prefixes are on more rows than the compiled row table
    scans (it then keeps them in a dict) and longer than its stack arrays."""
    rnd = random.Random(5)
    routers = OVERLAY_SLOTS + 2
    m = Model(3, routers)
    prefixes = [p for members in m.groups for f, p in members if f == V4]
    steps: list[tuple] = []
    for k in range(routers):
        events = [SessionState(_neighbor(k), "up")]
        for p in prefixes:  # each prefix its own set: many rows
            g = rnd.randrange(len(m.groups))
            events.append(RoutesAnnounced(_neighbor(k), V4, (p,), None, m.sets[k, g, 0]))
        steps.append(("events", events))
        steps.append(("merge",))
    big = tuple(prefixes * 2)  # > 64 prefixes, every one twice
    for k, g in ((0, 0), (routers - 1, 1)):
        steps.append(("events", [RoutesAnnounced(_neighbor(k), V4, big, None, m.sets[k, g, 1])]))
    assert len(prefixes) > 16 and len(big) > 64
    _compare(steps, PY, C)


def _compare_direct(steps: list[tuple]) -> int:
    """Apply ``steps`` through ``apply_many`` to two RIBs: the first with every
    compiled loop (wide tables written by ``ribd._wide.wide_parts`` straight from
    the keys, narrow ones searched by ``ribd._announce`` itself), the second with
    the Python references (``entries.announce_wide``, the Python general loop);
    assert equal states after every step. Returns the UPDATEs the direct call took."""
    clocks = Clock(), Clock()
    ribs = [Rib(stale_hold_time=300.0, clock=c) for c in clocks]
    sides = ((C, ribd.rib.COMPILED_LOOP), (PY, None))
    before = _wide.direct_updates()
    for i, step in enumerate(steps):
        for rib, clock, (wide, loop) in zip(ribs, clocks, sides, strict=True):
            ribd.rib.announce_wide, ribd.rib.ANNOUNCE_LOOP = wide, loop
            _run_step(rib, clock, step, lambda ev, rib=rib: rib.apply_many([ev]))
        assert _state(ribs[0]) == _state(ribs[1]), f"step {i} ({step[0]}) differs"
    return _wide.direct_updates() - before


@pytest.fixture
def restored(monkeypatch):
    """ribd.rib's loops as they were, after the test."""
    monkeypatch.setattr(ribd.rib, "announce_wide", ribd.rib.announce_wide)
    monkeypatch.setattr(ribd.rib, "ANNOUNCE_LOOP", ribd.rib.ANNOUNCE_LOOP)


@pytest.mark.skipif(ribd.rib.COMPILED_LOOP is None, reason="ribd/_announce.pyx not built")
@pytest.mark.parametrize("seed", range(4))
def test_the_direct_call_leaves_the_state_the_python_references_do(seed, restored):
    """``apply_many`` hands a wide table's UPDATE to ``ribd._wide.wide_parts``
    (its keys searched in C, the new prefixes and the tally by the general loop)
    without ``Rib._announce``; ADD-PATH UPDATEs take ``Rib._announce``, which
    calls it too. The state equals the Python references' after every step."""
    routers = OVERLAY_SLOTS + (seed * 7) % 20  # 16 .. 35
    direct = _compare_direct(_script(100 + seed, routers))
    assert direct > 0


@pytest.mark.skipif(ribd.rib.COMPILED_LOOP is None, reason="ribd/_announce.pyx not built")
def test_the_direct_call_with_a_large_update(restored):
    """Longer than its stack arrays (the places searched go to the heap), every
    prefix twice (the second finds the first's write), some new to the store."""
    rnd = random.Random(8)
    routers = OVERLAY_SLOTS + 3
    m = Model(4, routers)
    prefixes = [p for members in m.groups for f, p in members if f == V4]
    steps: list[tuple] = []
    for k in range(routers):
        events = [SessionState(_neighbor(k), "up")]
        for p in prefixes:
            g = rnd.randrange(len(m.groups))
            events.append(RoutesAnnounced(_neighbor(k), V4, (p,), None, m.sets[k, g, 0]))
        steps.append(("events", events))
        steps.append(("merge",))
    new = tuple(f"10.250.{i}.0/24" for i in range(5))
    big = tuple(prefixes * 2) + new
    for k, g in ((0, 0), (routers - 1, 1), (2, 2)):
        steps.append(("events", [RoutesAnnounced(_neighbor(k), V4, big, None, m.sets[k, g, 1])]))
    assert len(big) > 64
    assert _compare_direct(steps) >= 3


def test_moved_rows_are_hashed_in_their_building_walk():
    """On 64-bit CPython 3.8-3.12 the compiled code computes a moved row's hash
    and its old row's in the walk that builds it (CPython's tuple hash, checked
    against ``hash`` at import); the streams above then compare the intern dicts
    it leaves (a wrong hash would keep dying rows or intern a row twice)."""
    import sys

    if sys.implementation.name == "cpython" and (3, 8) <= sys.version_info[:2] < (3, 13):
        assert _wide.HASH_KNOWN


@pytest.mark.skipif(ribd.rib.COMPILED_LOOP is None, reason="ribd/_announce.pyx not built")
def test_moved_rows_are_out_of_the_cyclic_gc(monkeypatch):
    """A row the compiled wide path moves holds None and attribute sets (not of
    a GC type) only: nothing a cycle could pass through, so it is untracked by
    the cyclic GC when it is made, as a narrow row is (``ribd._announce``).
    CPython untracks such a tuple only in the first collection that finds it,
    after walking its 16-64 items (BENCHMARKS.md, stop 33, late2). Each row new
    in the store after a wide UPDATE is checked at once, the collector off.
    A row holding an ADD-PATH set (a tuple subclass, tracked) stays tracked."""
    import gc

    # The compiled loops (a test before may have left a reference in place).
    monkeypatch.setattr(ribd.rib, "announce_wide", ribd.rib.COMPILED_WIDE)
    monkeypatch.setattr(ribd.rib, "ANNOUNCE_LOOP", ribd.rib.COMPILED_LOOP)
    routers = OVERLAY_SLOTS + 3
    m = Model(21, routers)
    rib = Rib()
    p = m.groups[0][0]
    seen: set[int] = set()
    plain, with_set = [], []
    enabled = gc.isenabled()
    gc.disable()
    try:
        for k in range(routers):
            events = [SessionState(_neighbor(k), "up"), *m.table(k)]
            if k == 0:  # router 1 sends one prefix with two paths: an ADD-PATH set
                events += [
                    RoutesAnnounced(_neighbor(0), p[0], (p[1],), (i,), m.sets[0, 0, i])
                    for i in (1, 2)
                ]
            for ev in events:
                before = _wide.direct_updates()
                rib.apply_many([ev])
                if _wide.direct_updates() == before:
                    continue
                for row in map(row_of, filter(None, _entries(rib))):
                    if type(row) is tuple and len(row) >= OVERLAY_SLOTS and id(row) not in seen:
                        seen.add(id(row))
                        has_set = any(type(v) is ribd.table.PathSet for v in row)
                        (with_set if has_set else plain).append((row, gc.is_tracked(row)))
            rib.compact()
    finally:
        if enabled:
            gc.enable()
    assert len(plain) > 100 and with_set
    assert not [row for row, tracked in plain if tracked]
    assert all(tracked for _, tracked in with_set)
