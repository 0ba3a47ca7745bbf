"""The rows an UPDATE moves in a wide table are not interned when made
(``ribd.entries.moved_row``); the maintenance interns the rows that stay
(``ribd.maintenance.Collection``'s rows phase), once the table is quiet."""

from __future__ import annotations

import pytest

import ribd.table
from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.entries import OVERLAY_SLOTS, intern_delta_rows, row_of
from ribd.events import RoutesAnnounced, SessionState
from ribd.rib import Rib
from ribd.table import MERGE_QUIET
from tests.ribd.test_entry_compaction import Tables
from tests.ribd.test_wide_entries import Clock, _answers, _entries, _neighbor

V4 = "ipv4 unicast"
ROUTERS = OVERLAY_SLOTS + 2


def _live_rows(rib: Rib) -> list[tuple]:
    return [row_of(e) for e in _entries(rib) if e is not None]


def _not_interned(rib: Rib) -> list[tuple]:
    interned = rib.tables[V4]._entries
    return [row for row in _live_rows(rib) if interned.get(row) is not row]


def _two_updates_of_one_set(rib: Rib, routers: int) -> None:
    """Each router sends 10.0.0.0/24 and 10.0.1.0/24 with one attribute set,
    in two UPDATEs (as a large set's chunks come): once the table is wide, each
    UPDATE moves its prefix's row on its own, so the two end on equal rows."""
    for k in range(routers):
        path = ((AS_SEQUENCE, (64500, 65000 + k)),)
        attrs = make_attributes(path, next_hop=f"198.51.100.{k + 1}")
        rib.apply(SessionState(_neighbor(k), "up"))
        for prefix in ("10.0.0.0/24", "10.0.1.0/24"):
            rib.apply(RoutesAnnounced(_neighbor(k), V4, (prefix,), None, attrs))


def _quiet(rib: Rib, clock: Clock) -> None:
    """The maintenance run to its end, time past MERGE_QUIET (no table streams in
    any more: the maintenance saw the writes stop), then the maintenance again."""
    while rib.maintenance():
        pass
    clock.now += MERGE_QUIET + 1
    while rib.maintenance():
        pass


def test_rows_moved_by_updates_are_not_interned_when_made() -> None:
    rib = Rib(clock=Clock())
    _two_updates_of_one_set(rib, ROUTERS)
    assert rib.tables[V4].wide
    rows = _live_rows(rib)
    assert len(rows) == 2 and rows[0] == rows[1] and rows[0] is not rows[1]
    assert _not_interned(rib) == rows


def test_a_collection_shares_equal_rows_and_interns_every_live_row() -> None:
    clock = Clock()
    rib = Rib(clock=clock)
    _two_updates_of_one_set(rib, ROUTERS)
    rib.compact()
    _quiet(rib, clock)  # (a full collection passes over tables streaming in)
    rib.collect_garbage()
    rows = _live_rows(rib)
    assert rows[0] is rows[1]
    assert _not_interned(rib) == []
    assert rib.tables[V4].distinct_entries == 1


def test_the_rows_of_the_store_s_delta_are_interned_too() -> None:
    rib = Rib(clock=Clock())
    _two_updates_of_one_set(rib, ROUTERS)
    table = rib.tables[V4]
    assert len(table.store.delta) == 2 and not len(table.store.keys)  # (not merged)
    assert intern_delta_rows(table._entries, table.store.delta) == 1
    rows = _live_rows(rib)
    assert rows[0] is rows[1] and _not_interned(rib) == []


def test_realistic_tables_answer_the_same_once_their_rows_are_interned() -> None:
    tables = Tables(7)
    clock = Clock()
    rib = Rib(stale_hold_time=300.0, clock=clock)
    for k, events in enumerate(tables.tables):
        for ev in [SessionState(_neighbor(k), "up"), *events]:
            rib.apply(ev)
    rib.compact()
    before = _answers(rib, len(tables.tables))
    assert _not_interned(rib)
    _quiet(rib, clock)
    rib.collect_garbage()
    assert _not_interned(rib) == []
    assert _answers(rib, len(tables.tables)) == before
    live = {id(r): r for r in _live_rows(rib)}
    assert rib.tables[V4].distinct_entries >= len(set(live.values()))


def test_rows_are_interned_once_the_table_is_quiet_not_while_it_streams_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ribd.table, "ROWS_INTERN_WRITES", 1)
    clock = Clock()
    rib = Rib(clock=clock)
    _two_updates_of_one_set(rib, ROUTERS)
    table = rib.tables[V4]
    assert table.rows_due()
    while rib.maintenance():  # the sessions' tables stream in: no pass yet
        pass
    assert _not_interned(rib)
    _quiet(rib, clock)
    assert _not_interned(rib) == []
    assert not table.rows_due()
    rows = _live_rows(rib)
    assert rows[0] is rows[1]


def test_rows_are_not_interned_again_before_a_store_s_worth_of_writes() -> None:
    clock = Clock()
    rib = Rib(clock=clock)
    _two_updates_of_one_set(rib, ROUTERS)
    table = rib.tables[V4]
    assert table.writes < ribd.table.ROWS_INTERN_WRITES
    assert not table.rows_due()
    _quiet(rib, clock)
    assert _not_interned(rib)  # (a full collection would intern them; none was due)


def test_an_interned_row_no_prefix_holds_any_more_leaves_the_intern_dict_at_once() -> None:
    clock = Clock()
    rib = Rib(clock=clock)
    _two_updates_of_one_set(rib, ROUTERS)
    _quiet(rib, clock)
    rib.collect_garbage()
    table = rib.tables[V4]
    assert table.distinct_entries == 1  # (no reference to it held here: it would keep it)
    # One UPDATE moves both prefixes off the interned row: it is dropped from the
    # intern dict by the feed itself, not left for the next collection.
    path = ((AS_SEQUENCE, (64500, 65100)),)
    attrs = make_attributes(path, next_hop="198.51.100.200")
    rib.apply(RoutesAnnounced(_neighbor(0), V4, ("10.0.0.0/24", "10.0.1.0/24"), None, attrs))
    assert table.distinct_entries == 0
    rows = _live_rows(rib)
    assert rows[0] is rows[1] and rows[0][0] is attrs
