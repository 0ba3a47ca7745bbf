"""Wide entries stay rows shared by a set's prefixes (``ribd.entries``) after a
session restart, a second feed gap and a snapshot load: their bytes are those
of a fresh load, not a tuple as wide as the routers per prefix, and their
answers are those of whole tuples."""

from __future__ import annotations

import random
import sys

import numpy as np
import pytest

import ribd.entries
import ribd.rib
import ribd.snapshot_v1
import ribd.snapshot_v2_load
import ribd.table
from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.entries import OVERLAY_MAX, OVERLAY_SLOTS, Overlay, row_of
from ribd.entry_rows import shared_rows
from ribd.events import EndOfRib, RoutesAnnounced, SessionState
from ribd.rib import Rib
from ribd.snapshot import load_snapshot, write_snapshot
from tests.ribd.test_snapshot import routes
from tests.ribd.test_wide_entries import Clock, _answers, _entries, _neighbor

V4 = "ipv4 unicast"
ROUTERS = OVERLAY_SLOTS + 4


class Tables:
    """Routers' tables of 30 sets of 20 prefixes: each router sends 30% of sets
    another way and 5% of single prefixes another way again (as bench.realistic);
    one fixed table per router, so a table sent again is the same."""

    def __init__(self, seed: int, routers: int = ROUTERS) -> None:
        rnd = random.Random(seed)
        groups = [[f"10.{g}.{i}.0/24" for i in range(20)] for g in range(30)]
        self.tables = []
        for k in range(routers):
            chosen: dict[tuple[int, int], list[str]] = {}
            for g, members in enumerate(groups):
                kind = 1 if rnd.random() < 0.3 else 0
                for p in members:
                    own = 2 if rnd.random() < 0.05 else kind
                    chosen.setdefault((g, own), []).append(p)
            events = [
                RoutesAnnounced(
                    _neighbor(k),
                    V4,
                    tuple(ps),
                    None,
                    make_attributes(
                        ((AS_SEQUENCE, (64500 + kind, 65000 + g)),),
                        next_hop=f"198.51.{k}.{kind + 1}",
                        local_pref=100,
                    ),
                )
                for (g, kind), ps in chosen.items()
            ]
            rnd.shuffle(events)
            self.tables.append(events)


def _loaded(tables: Tables) -> Rib:
    rib = Rib(stale_hold_time=300.0, clock=Clock())
    for k, events in enumerate(tables.tables):
        for ev in [SessionState(_neighbor(k), "up"), *events]:
            rib.apply(ev)
    _settle(rib)
    return rib


def _settle(rib: Rib) -> None:
    while rib.maintenance():
        pass


def _bytes(rib: Rib) -> int:
    """Bytes of the entries: distinct rows (and whole tuples), Overlays and their values."""
    rows: dict[int, tuple] = {}
    size = 0
    for e in _entries(rib):
        if e is None:
            continue
        if type(e) is Overlay:
            size += sys.getsizeof(e) + sys.getsizeof(e.over)
        row = row_of(e)
        rows[id(row)] = row
    return size + sum(map(sys.getsizeof, rows.values()))


def _interned_are_live(rib: Rib) -> bool:
    live = {id(row_of(e)) for e in _entries(rib) if e is not None}
    return all(id(k) in live for t in rib.tables.values() for k in t._entries)


def _restart(rib: Rib, tables: Tables, k: int) -> None:
    n = _neighbor(k)
    for ev in [SessionState(n, "down", reason="test"), SessionState(n, "up"), *tables.tables[k]]:
        rib.apply(ev)
    rib.apply(EndOfRib(n, V4))
    _settle(rib)


def _whole_tuples(monkeypatch) -> None:
    for module in (ribd.entries, ribd.rib, ribd.table, ribd.snapshot_v1, ribd.snapshot_v2_load):
        monkeypatch.setattr(module, "OVERLAY_SLOTS", 10**9)


@pytest.mark.parametrize("seed", range(3))
def test_a_restarted_session_s_table_goes_back_into_the_shared_rows(seed, monkeypatch):
    """Before: the returning routes' values (and the emptied stale copies) became
    every prefix's own values: 1.65x the bytes of a fresh load here."""
    tables = Tables(seed)
    fresh = _loaded(tables)
    rib = _loaded(tables)
    for k in (3, 11, 3):
        _restart(rib, tables, k)
    assert routes(rib) == routes(fresh)
    assert _bytes(rib) <= 1.05 * _bytes(fresh)
    assert _interned_are_live(rib)
    answers = _answers(rib, ROUTERS)
    _whole_tuples(monkeypatch)
    whole = _loaded(tables)
    for k in (3, 11, 3):
        _restart(whole, tables, k)
    assert _answers(whole, ROUTERS) == answers


def test_a_second_feed_gap_moves_rows_not_each_prefix(monkeypatch):
    """A gap before the re-read finished folds the routes sent since into the
    stale generation (``_fold_into_stale``): before, it rebuilt every entry as a
    whole tuple (no Overlay left)."""

    tables = Tables(7)

    def run() -> tuple[Rib, int, int]:
        rib = _loaded(tables)
        rib.mark_gap()
        for k in range(0, ROUTERS, 2):  # half the routers re-send their tables
            for ev in tables.tables[k]:
                rib.apply(ev)
        _settle(rib)
        before = _bytes(rib)
        rib.mark_gap()  # a second gap: the slots written since fold into the stale ones
        _settle(rib)
        return rib, before, _bytes(rib)

    rib, before, after = run()
    assert after <= 1.05 * before
    assert any(type(e) is Overlay for e in _entries(rib))
    assert _interned_are_live(rib)
    answers = _answers(rib, ROUTERS)
    _whole_tuples(monkeypatch)
    assert _answers(run()[0], ROUTERS) == answers


@pytest.mark.parametrize("version", [1, 2])
def test_a_snapshot_load_finds_the_shared_rows_again(tmp_path, monkeypatch, version):
    """Before: one tuple as wide as the routers per distinct entry, 1.6x the
    bytes (format 2 until 04:00 UTC on 2026-12-01, format 1 until 05:50)."""
    tables = Tables(3)
    rib = _loaded(tables)
    path = tmp_path / "rib.snapshot"
    write_snapshot(rib, path, version=version)
    loaded = Rib(stale_hold_time=300.0, clock=Clock())
    load_snapshot(loaded, path, hold_time=300.0)
    assert routes(loaded) == routes(rib)
    assert _bytes(loaded) <= 1.05 * _bytes(rib)
    assert sum(type(e) is Overlay for e in _entries(loaded)) > len(_entries(loaded)) // 2
    assert _interned_are_live(loaded)
    _answers(loaded, ROUTERS)  # compiled views answer as lookups do (asserted inside)
    # and it takes tables again as a fresh RIB does
    for k in (0, 5):
        _restart(loaded, tables, k)
        _restart(rib, tables, k)
    assert routes(loaded) == routes(rib)
    _whole_tuples(monkeypatch)
    whole = Rib(stale_hold_time=300.0, clock=Clock())
    load_snapshot(whole, path, hold_time=300.0)
    assert not any(type(e) is Overlay for e in _entries(whole))
    assert routes(whole) == routes(rib)


def test_shared_rows_puts_each_entry_on_a_row_it_differs_from_in_few_columns():
    rnd = np.random.default_rng(5)
    # 40 sets of 6 prefixes, each router with its own set per base set; 5% of
    # cells another set or none
    base = np.stack([rnd.permutation(1000)[:40] for _ in range(24)], axis=1)
    matrix = np.repeat(base, 6, axis=0)
    noise = rnd.random(matrix.shape) < 0.05
    matrix[noise] = rnd.integers(999, 1100, size=int(noise.sum()))
    matrix[matrix == 999] = -1
    matrix[::17, 0] = -1  # no route in the key column
    found = shared_rows(matrix, OVERLAY_MAX)
    on = found.row_of >= 0
    assert on.mean() > 0.9
    rebuilt = np.where(on[:, None], found.codes[np.maximum(found.row_of, 0)], matrix)
    rebuilt[found.own_entry, found.own_column] = matrix[found.own_entry, found.own_column]
    assert (rebuilt == matrix).all()
    counts = np.bincount(found.own_entry, minlength=len(matrix))
    assert counts.max() <= OVERLAY_MAX
    assert (counts[~on] == 0).all()
