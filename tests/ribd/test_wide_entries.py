"""Wide entries (a shared row plus a prefix's own values, ``ribd.entries``) answer
exactly as whole tuples do: the same event streams applied with overlays on
and off give the same lookups, exact matches and route dumps."""

from __future__ import annotations

import ipaddress
import random

import numpy as np
import pytest

import ribd.entries
import ribd.rib
import ribd.table
from attribution.viewbuild import build_view
from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.entries import OVERLAY_SLOTS, Overlay
from ribd.events import EndOfRib, RoutesAnnounced, RoutesWithdrawn, SessionState
from ribd.rib import Rib
from ribd.snapshot import load_snapshot, write_snapshot
from tests.ribd.test_snapshot import routes

V4 = "ipv4 unicast"
V6 = "ipv6 unicast"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _neighbor(k: int) -> str:
    return f"192.0.2.{k + 1}"


class Model:
    """Groups of prefixes (base attribute sets), routers with their own sets per
    group, some groups and single prefixes sent another way, as bench.realistic."""

    def __init__(self, seed: int, routers: int) -> None:
        rnd = random.Random(seed)
        self.rnd = rnd
        self.routers = routers
        self.groups: list[list[tuple[str, str]]] = []  # (family, prefix)
        n = 0
        for _g in range(40):
            size = rnd.choice((1, 1, 2, 3, 5, 8, 13))
            members = []
            for _ in range(size):
                if rnd.random() < 0.8:
                    members.append((V4, f"10.{n // 256}.{n % 256}.0/24"))
                else:
                    members.append((V6, f"2001:db8:{n:x}::/48"))
                n += 1
            self.groups.append(members)
        # Covering prefixes, so longest-match walks through more than one.
        self.groups.append([(V4, "10.0.0.0/8"), (V6, "2001:db8::/32")])
        self.sets = {
            (k, g, kind): make_attributes(
                ((AS_SEQUENCE, (64500 + kind, 65000 + g)),),
                next_hop=f"198.51.{k}.{kind + 1}",
                local_pref=100 + kind,
            )
            for k in range(routers)
            for g in range(len(self.groups))
            for kind in range(4)
        }

    def table(self, k: int) -> list[RoutesAnnounced]:
        """Router k's UPDATEs: per (family, set), its prefixes in chunks, shuffled."""
        rnd = self.rnd
        out: dict[tuple, list[str]] = {}
        for g, members in enumerate(self.groups):
            kind = rnd.randrange(1, 4) if rnd.random() < 0.25 else 0
            for family, prefix in members:
                own = rnd.randrange(1, 4) if rnd.random() < 0.1 else kind
                out.setdefault((family, g, own), []).append(prefix)
        events = []
        for (family, g, kind), prefixes in out.items():
            for i in range(0, len(prefixes), 4):
                events.append(
                    RoutesAnnounced(
                        _neighbor(k),
                        family,
                        tuple(prefixes[i : i + 4]),
                        None,
                        self.sets[k, g, kind],
                    )
                )
        rnd.shuffle(events)
        return events

    def some(self, count: int) -> list[tuple[str, str]]:
        every = [p for members in self.groups for p in members]
        return self.rnd.sample(every, min(count, len(every)))


def _script(seed: int, routers: int) -> list[tuple]:
    """A reproducible list of steps: ("events", [...]), ("tick", s), ("check",)."""
    m = Model(seed, routers)
    rnd = m.rnd
    steps: list[tuple] = []
    for k in range(routers):
        steps.append(("events", [SessionState(_neighbor(k), "up"), *m.table(k)]))
    steps.append(("check",))
    for _round in range(6):
        k = rnd.randrange(routers)
        n = _neighbor(k)
        what = rnd.choice(("withdraw", "addpath", "restart", "reload", "purge"))
        if what == "withdraw":
            by_family: dict[str, list[str]] = {}
            for family, prefix in m.some(12):
                by_family.setdefault(family, []).append(prefix)
            steps.append(
                ("events", [RoutesWithdrawn(n, f, tuple(p), None) for f, p in by_family.items()])
            )
        elif what == "addpath":
            events = []
            for family, prefix in m.some(6):
                ids = (rnd.randrange(1, 4),)
                kind = rnd.randrange(4)
                g = rnd.randrange(len(m.groups))
                events.append(RoutesAnnounced(n, family, (prefix,), ids, m.sets[k, g, kind]))
                if rnd.random() < 0.5:
                    events.append(RoutesWithdrawn(n, family, (prefix,), ids))
            steps.append(("events", events))
        elif what == "restart":  # stale generation kept, part of the table again, End-of-RIB
            steps.append(("events", [SessionState(n, "down", reason="test")]))
            steps.append(("check",))
            table = m.table(k)
            steps.append(("events", [SessionState(n, "up"), *table[: len(table) // 2]]))
            steps.append(("check",))
            steps.append(("events", [EndOfRib(n, V4), EndOfRib(n, V6)]))
        elif what == "reload":  # the same router's table again (other diversions)
            steps.append(("events", m.table(k)))
        else:  # stale hold over: the router's routes go
            steps.append(("events", [SessionState(n, "down", reason="test")]))
            steps.append(("tick", 1000.0))
        steps.append(("check",))
    return steps


def _answers(rib: Rib, routers: int) -> list:
    out = []
    addresses = [f"10.0.{i}.1" for i in range(0, 40, 3)] + ["10.200.0.1"]
    addresses6 = [f"2001:db8:{i:x}::1" for i in range(0, 40, 3)] + ["2001:db8:ffff::1"]
    for k in range(routers):
        n = _neighbor(k)
        for family, addrs in ((V4, addresses), (V6, addresses6)):
            view = build_view(rib, n, family) if family == V4 else None
            for a in addrs:
                m = rib.lookup(n, family, a)
                got = m and (m.prefix, m.length, id(m.attributes), m.path_id, m.stale)
                out.append(got)
                if view is not None:  # compiled views read entries through slot_value
                    i = int(view.lookup(np.array([int(ipaddress.IPv4Address(a))], np.uint32))[0])
                    v = view.route(i) if i >= 0 else None
                    assert (v and (v.prefix, v.length, id(v.attributes), v.path_id, v.stale)) == got
            got = sorted(
                (m.prefix, m.length, id(m.attributes), m.path_id, m.stale)
                for m in rib.routes(n, family)
            )
            out.append(got)
            for prefix, *_ in got:
                out.append(
                    [
                        (x.prefix, id(x.attributes), x.path_id, x.stale)
                        for x in rib.exact(n, family, prefix)
                    ]
                )
    return out


def _entries(rib: Rib) -> list:
    """Every prefix's entry, in the store's arrays and its delta."""
    out = []
    for table in rib.tables.values():
        store = table.store
        out += store.values.tolist()
        out += [store.delta.get(p) for p in store.delta.keys()]  # noqa: SIM118 (a list)
    return out


def _run(steps: list[tuple], routers: int) -> tuple[list, int]:
    clock = Clock()
    rib = Rib(stale_hold_time=300.0, clock=clock)
    answers = []
    overlays = 0
    for step in steps:
        if step[0] == "events":
            for ev in step[1]:
                rib.apply(ev)
        elif step[0] == "tick":
            clock.now += step[1]
        if step[0] in ("check", "tick"):
            while rib.maintenance():
                pass
            answers.append(_answers(rib, routers))
            overlays += sum(type(e) is Overlay for e in _entries(rib))
    return answers, overlays


@pytest.mark.parametrize("seed", range(8))
def test_wide_entries_answer_as_whole_tuples(seed, monkeypatch):
    routers = OVERLAY_SLOTS + 4 + seed % 3
    steps = _script(seed, routers)
    with_overlays, overlays = _run(steps, routers)
    for module in (ribd.entries, ribd.rib, ribd.table):
        monkeypatch.setattr(module, "OVERLAY_SLOTS", 10**9)
    whole, none = _run(steps, routers)
    assert none == 0
    assert overlays > 0  # the layout under test was used
    assert len(with_overlays) == len(whole)
    for i, (a, b) in enumerate(zip(with_overlays, whole, strict=True)):
        assert a == b, f"check {i} differs"


@pytest.mark.parametrize("version", [1, 2])
def test_a_rib_of_wide_entries_round_trips_through_a_snapshot(tmp_path, version):
    routers = OVERLAY_SLOTS + 3
    steps = [s for s in _script(3, routers) if s[0] == "events"][:routers]  # the loads
    rib = Rib(stale_hold_time=300.0, clock=Clock())
    for step in steps:
        for ev in step[1]:
            rib.apply(ev)
    while rib.maintenance():
        pass
    assert any(type(e) is Overlay for e in _entries(rib))
    path = tmp_path / "rib.snapshot"
    write_snapshot(rib, path, version=version)
    loaded = Rib(stale_hold_time=300.0, clock=Clock())
    load_snapshot(loaded, path, hold_time=300.0)
    assert routes(loaded) == routes(rib)
    # and the loaded RIB takes a router's table again as ingest does
    for step in steps[-2:]:
        for ev in step[1]:
            loaded.apply(ev)
            rib.apply(ev)
    assert routes(loaded) == routes(rib)


def _decoded(cap) -> dict:
    """A capture's routes per family, each prefix's codes read back as the
    objects they stand for (sets by identity, ADD-PATH sets as their pairs)."""

    def value(code: int):
        if code == -1:
            return None
        if code >= 0:
            return id(cap.sets[code])
        return tuple((pid, id(cap.sets[i])) for pid, i in cap.pathsets[-2 - code])

    return {
        family: [
            (key, tuple(value(int(c)) for c in cap.entries[row]))
            for key, row in zip(keys.tolist(), rows.tolist(), strict=True)
        ]
        for family, (keys, rows) in cap.families.items()
    }


@pytest.mark.parametrize("seed", range(6))
def test_a_capture_codes_each_wide_row_once_and_reads_the_routes_entry_by_entry_would(
    seed, monkeypatch
):
    """The snapshot's capture codes a wide entry's shared row once for all its
    prefixes (across chunks) and its own values on top: the same routes as
    reading every entry's values one by one (the path of layouts with a stale
    generation), ADD-PATH sets and churn included."""
    from ribd import snapshot_capture

    routers = OVERLAY_SLOTS + 2 + seed
    rib = Rib(stale_hold_time=300.0, clock=Clock())
    script = _script(seed, routers)
    loads = [s for s in script if s[0] == "events"][:routers]
    churn = [s for s in script if s[0] == "events"][routers:]
    for step in [*loads, *churn[: seed % 4]]:
        for ev in step[1]:
            rib.apply(ev)
    while rib.maintenance():
        pass
    assert any(type(e) is Overlay for e in _entries(rib))
    calls = []
    picked_rows = snapshot_capture._picked_rows
    monkeypatch.setattr(
        snapshot_capture, "_picked_rows", lambda *a: calls.append(1) or picked_rows(*a)
    )
    shared = snapshot_capture.capture(rib, chunk=5)  # rows met again in later chunks
    if calls:  # (a layout with a stale generation reads entries one by one anyway)
        monkeypatch.setattr(snapshot_capture, "_picker", lambda layout: None)
        by_entry = _decoded(snapshot_capture.capture(rib, chunk=5))
    else:
        by_entry = _decoded(shared)
    assert _decoded(shared) == by_entry
    assert shared.paths == sum(
        sum(1 if type(v) is int else len(v) for v in row if v is not None)
        for rows in by_entry.values()
        for _, row in rows
    )
