"""The compiled wide announce (ribd/_wide.pyx) reads and writes a router's
``FamilyState`` and the family's ``PrefixStore`` at their slots' offsets
(ribd/_slots.pxd) when they are of exactly those types, and through
getattr / setattr otherwise; either way the RIB ends as the Python reference
leaves it, and the counters it writes hold their values' references as a
setattr would."""

from __future__ import annotations

import sys

import pytest

import ribd.attributes
import ribd.rib
import ribd.table
from ribd.entries import OVERLAY_SLOTS, Overlay
from ribd.events import RoutesAnnounced, SessionState
from ribd.rib import Rib
from ribd.store import PrefixStore
from ribd.table import FamilyState
from tests.ribd.test_wide_compiled import _compare_direct, _script
from tests.ribd.test_wide_entries import V4, Model, _neighbor

_wide = pytest.importorskip("ribd._wide", reason="ribd/_wide.pyx not built")
needs_loop = pytest.mark.skipif(
    ribd.rib.COMPILED_LOOP is None, reason="ribd/_announce.pyx not built"
)


class OtherState(FamilyState):
    """Not exactly a FamilyState: the compiled code must take getattr / setattr."""

    __slots__ = ()


class OtherStore(PrefixStore):
    __slots__ = ()


@pytest.fixture
def restored(monkeypatch):
    """The compiled loops in place (a test before may have left a reference),
    ribd.rib's loops as they were after the test."""
    monkeypatch.setattr(ribd.rib, "announce_wide", ribd.rib.COMPILED_WIDE)
    monkeypatch.setattr(ribd.rib, "ANNOUNCE_LOOP", ribd.rib.COMPILED_LOOP)
    return monkeypatch


def test_state_fields_are_read_at_their_offsets():
    """FamilyState's and PrefixStore's fields the wide announce uses are slots
    whose offsets the compiled code found (else every read is a getattr)."""
    assert _wide.STATE_AT_OFFSETS


@needs_loop
@pytest.mark.parametrize("seed", range(2))
def test_other_types_take_getattr_and_leave_the_reference_state(seed, restored):
    """A FamilyState and a PrefixStore of a subclass (another layout could hold
    other slots at those offsets): the compiled code reads them through getattr
    and leaves the state the Python references do, over random streams with
    restarts (stale slots), ADD-PATH and merges."""
    restored.setattr(ribd.rib, "FamilyState", OtherState)
    restored.setattr(ribd.table, "PrefixStore", OtherStore)
    routers = OVERLAY_SLOTS + 3 + 5 * seed
    assert _compare_direct(_script(300 + seed, routers)) > 0


@needs_loop
def test_counters_written_at_offsets_hold_one_reference(restored):
    """The counters the compiled code writes at their offsets (``prefixes``,
    ``paths``, ``stale_prefixes``, ``writes``) take their new value's reference
    and drop the old one's, as setattr does: no leak, no early free."""
    routers = OVERLAY_SLOTS + 1
    m = Model(7, routers)
    rib = Rib(stale_hold_time=300.0)
    for k in range(routers):
        rib.apply_many([SessionState(_neighbor(k), "up"), *m.table(k)])
        rib.compact()
    last = _neighbor(routers - 1)
    rib.apply_many([SessionState(last, "down")])
    rib.apply_many([SessionState(last, "up")])  # a fresh slot, the old one stale
    fs = rib.routers[last].families[V4]
    assert type(fs) is FamilyState and fs.stale_slot is not None
    big = 10**12  # (ints made at run time: not shared with anything else)
    fs.prefixes, fs.paths, fs.stale_prefixes, fs.writes = (big + i for i in range(4))
    old = [fs.prefixes, fs.paths, fs.stale_prefixes, fs.writes]
    before = [sys.getrefcount(o) for o in old]
    before_direct = _wide.direct_updates()
    ev = next(e for e in m.table(routers - 1) if e.family == V4)
    rib.apply_many([ev])
    assert _wide.direct_updates() == before_direct + 1
    n = len(set(ev.prefixes))
    assert fs.prefixes == big + n and fs.paths == big + 1 + n
    assert fs.stale_prefixes == big + 2 - n and fs.writes == big + 3 + len(ev.prefixes)
    # Each old value: its slot's reference dropped (one fewer), no other change.
    after = [sys.getrefcount(o) for o in old]
    assert after == [b - 1 for b in before]
    # Each new value: its slot's reference and getrefcount's argument only
    # (counted outside ``assert``: pytest's rewriting holds its operands).
    new = [
        sys.getrefcount(fs.prefixes),
        sys.getrefcount(fs.paths),
        sys.getrefcount(fs.stale_prefixes),
        sys.getrefcount(fs.writes),
    ]
    assert new == [2, 2, 2, 2]


@needs_loop
def test_a_slot_left_unset_raises(restored):
    """A FamilyState whose slot was deleted: AttributeError, as getattr gives."""
    routers = OVERLAY_SLOTS + 1
    m = Model(9, routers)
    rib = Rib()
    for k in range(routers):
        rib.apply_many([SessionState(_neighbor(k), "up"), *m.table(k)])
        rib.compact()
    last = _neighbor(routers - 1)
    fs = rib.routers[last].families[V4]
    del fs.stale_slot
    ev = next(e for e in m.table(routers - 1) if e.family == V4)
    with pytest.raises(AttributeError):
        rib.apply_many([RoutesAnnounced(last, V4, ev.prefixes, None, ev.attributes)])


@needs_loop
def test_an_overlay_a_reader_holds_is_not_changed_in_place(restored):
    """An Overlay only the store holds is updated in place by the compiled wide
    announce (not made anew and freed); one that anything else holds (a view's
    read, the snapshot's pinned entries) is replaced as before, the held object
    left as it was. Router 1's table sent again after a session restart: every
    prefix moves off its stale copy, so every Overlay is written."""
    routers = OVERLAY_SLOTS + 4
    m = Model(13, routers)
    rib = Rib(stale_hold_time=300.0)
    for k in range(routers):
        rib.apply_many([SessionState(_neighbor(k), "up"), *m.table(k)])
        rib.compact()
    store = rib.tables[V4].store
    overlays = [(at, e) for at, e in enumerate(store.values.tolist()) if type(e) is Overlay]
    assert len(overlays) >= 10
    held = overlays[::2]  # a reader's references to every other one
    seen = [(e.row, e.over) for _, e in held]
    overlays = None
    first = _neighbor(0)
    rib.apply_many([SessionState(first, "down")])
    rib.apply_many([SessionState(first, "up")])
    before = _wide.reused_overlays()
    rib.apply_many([ev for ev in m.table(0) if ev.family == V4])
    assert _wide.reused_overlays() > before  # the others: in place
    values = store.values.tolist()
    for (at, e), (row, over) in zip(held, seen, strict=True):
        assert e.row is row and e.over is over  # not changed under its holder
        assert values[at] is not e  # the store's entry is a new one


class OtherTable(ribd.table.FamilyTable):
    """Not exactly a FamilyTable, and its ``store`` a property: the instance's
    dict holds a decoy under that name, which only getattr knows to skip."""

    def __init__(self, family: str) -> None:
        super().__init__(family)
        self.__dict__["store"] = None  # the decoy (the property wins for getattr)

    @property  # type: ignore[override]
    def store(self) -> PrefixStore:
        return self.__dict__["_store"]

    @store.setter
    def store(self, value: PrefixStore) -> None:
        self.__dict__["_store"] = value


def test_announce_parts_reads_at_offsets():
    """``ribd._apply.announce_parts`` (every raw UPDATE of a late router) reads a
    router's families, a store's keys, the table's and the RIB's fields at their
    offsets. Fails before stop 35 (late3: every one was a getattr) and, for the
    table's and the RIB's, before stop 57 (read in their instance dicts)."""
    apply = pytest.importorskip("ribd._apply")
    assert apply.offsets_in_use()


@needs_loop
@pytest.mark.parametrize("seed", range(2))
def test_other_table_types_take_getattr_and_leave_the_reference_state(seed, restored):
    """A FamilyTable of a subclass whose ``store`` is a property (a decoy in its
    dict): the compiled code reads its fields through getattr and leaves the
    state the Python references do, over random streams with restarts (stale
    slots), ADD-PATH and merges."""
    restored.setattr(ribd.rib, "FamilyTable", OtherTable)
    routers = OVERLAY_SLOTS + 3 + 5 * seed
    assert _compare_direct(_script(310 + seed, routers)) > 0


class _OwnHash(ribd.attributes.PathAttributes):
    """A subclass hashing otherwise: not the fast type (exact type check)."""

    def __hash__(self) -> int:
        return 12345


class _NoHash:
    __hash__ = None  # type: ignore[assignment]


def test_attribute_sets_in_rows_hash_as_hash_does():
    """The moved rows' walk hashes an attribute set as its pointer without a
    call (``FAST_ITEMS``: checked at import; fails before, stop 37, movewide:
    every item through PyObject_Hash and msgspec's Struct_hash). Rows of sets,
    None, a subclass with a hash of its own, ints (-1 hashes to -2), texts,
    ADD-PATH path sets and nested tuples hash as ``hash`` does; an unhashable
    item raises TypeError."""
    import random

    from ribd.attributes import PathAttributes

    assert _wide.FAST_ITEMS
    rng = random.Random(3)
    sets = [PathAttributes(None, None) for _ in range(50)]
    odd = [
        _OwnHash(None, None),
        -1,
        -2,
        0,
        2**61 - 1,
        "a",
        (1, None),
        ribd.table.PathSet(((0, sets[0]),)),
    ]
    pool = sets + odd + [None] * 20
    rows = [tuple(rng.choice(pool) for _ in range(rng.randrange(0, 70))) for _ in range(500)]
    rows += [tuple(sets[:16]), (None,) * 16 + (sets[1],), ()]
    for row in rows:
        assert _wide.row_hash(row) == hash(row)
    with pytest.raises(TypeError):
        _wide.row_hash((sets[0], _NoHash()))
