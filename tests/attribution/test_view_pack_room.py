"""A family's packed columns grow in place when a view joins (``viewpack.PoolBuffer``).

A late router's view used to re-pack the whole family: every router's column
copied into a fresh array of ~64 x the table, most of its cost page faults on
new memory. Now a pack appends the columns that are new after the part of the
previous pack's buffer in use, and leaves the rest where it is. What must
hold: the appended pool answers as a fresh one would; memory an earlier pack's
views read is never written; two packs from one buffer never claim the same
room; a buffer with too many dead columns, too little room or another dtype
is replaced by a fresh one.
"""

from __future__ import annotations

import random

import numpy as np

from attribution.viewpack import POOL_DEAD, POOL_ROOM, PoolBuffer, _pooled
from tests.attribution.test_bulk_many_exporters import ROUTERS, V4, neighbor, world
from tests.attribution.test_view_answers import _check_views
from tests.attribution.test_view_late_build import _answers, _keys, _refreshed


def _parts(rng: np.random.Generator, sizes: list[int], dtype=np.int32) -> list[np.ndarray]:
    return [rng.integers(0, 1000, size=n).astype(dtype) for n in sizes]


def _laid_out(pool: np.ndarray, at: dict[int, int], parts: list[np.ndarray]) -> None:
    for a in parts:
        assert np.array_equal(pool[at[id(a)] : at[id(a)] + len(a)], a)


def test_a_fresh_pool_holds_the_parts_in_order_with_room_after_them() -> None:
    parts = _parts(np.random.default_rng(1), [100, 40, 60])
    pool, at, room = _pooled(parts, None)
    assert np.array_equal(pool, np.concatenate(parts))
    assert not pool.flags.writeable
    assert room.used == 200 and len(room.buf) == 200 + 200 // POOL_ROOM
    _laid_out(pool, at, parts)


def test_a_new_part_is_appended_and_the_pool_an_earlier_reader_holds_is_unchanged() -> None:
    rng = np.random.default_rng(2)
    parts = _parts(rng, [400, 400, 400])
    old_pool, old_at, room = _pooled(parts, None)
    held = old_pool.copy()
    # The views of the old pack: slices of it, as pack() leaves them.
    slices = [old_pool[old_at[id(a)] : old_at[id(a)] + len(a)] for a in parts]
    new = _parts(rng, [100])[0]
    pool, at, again = _pooled([*slices, new], room)
    assert again is room and np.shares_memory(pool, old_pool)
    assert [at[id(s)] for s in slices] == [old_at[id(a)] for a in parts]  # left in place
    assert at[id(new)] == 1200 and room.used == 1300
    _laid_out(pool, at, [*slices, new])
    assert np.array_equal(old_pool, held)  # nothing below ``used`` written


def test_two_packs_from_one_buffer_append_one_after_the_other() -> None:
    """A pack made from views that do not hold an earlier pack's new column
    (it was replaced meanwhile) appends after it: a reader of either reads its own."""
    rng = np.random.default_rng(3)
    parts = _parts(rng, [300, 300, 300, 300])
    pool0, at0, room = _pooled(parts, None)
    slices = [pool0[at0[id(a)] : at0[id(a)] + len(a)] for a in parts]
    x, y = _parts(rng, [20, 30])
    pool_x, at_x, _ = _pooled([*slices, x], room)
    kept_x = pool_x.copy()
    pool_y, at_y, _ = _pooled([*slices, y], room)
    assert at_y[id(y)] == at_x[id(x)] + len(x)
    assert np.array_equal(pool_x, kept_x)
    _laid_out(pool_y, at_y, [*slices, y])


def test_a_buffer_mostly_dead_or_full_or_of_another_dtype_is_replaced() -> None:
    rng = np.random.default_rng(4)
    parts = _parts(rng, [100] * 8)
    pool, at, room = _pooled(parts, None)
    slices = [pool[at[id(a)] : at[id(a)] + len(a)] for a in parts]
    # Two of eight columns dead: a quarter of the buffer, over 1 / POOL_DEAD.
    assert (6 * 100 + 10) // POOL_DEAD < 2 * 100
    survivors = [*slices[2:], _parts(rng, [10])[0]]
    fresh, fat, other = _pooled(survivors, room)
    assert other is not room and not np.shares_memory(fresh, pool)
    _laid_out(fresh, fat, survivors)
    # More than the room left.
    big = _parts(rng, [len(room.buf)])[0]
    fresh, fat, other = _pooled([*slices, big], room)
    assert other is not room
    _laid_out(fresh, fat, [*slices, big])
    # A new column of a wider dtype: one pool of the common dtype.
    wide = _parts(rng, [5], dtype=np.int64)[0]
    fresh, fat, other = _pooled([*slices, wide], room)
    assert other is not room and fresh.dtype == np.int64
    _laid_out(fresh, fat, [*slices, wide])


def test_only_a_contiguous_slice_in_use_counts_as_in_place() -> None:
    buf = np.arange(100, dtype=np.int32)
    room = PoolBuffer(buf, 60)
    assert room.offset_of(buf[10:20]) == 10
    assert room.offset_of(buf[10:20:2]) is None  # strided
    assert room.offset_of(buf[55:65]) is None  # past the part in use
    assert room.offset_of(buf[10:20].astype(np.int64)) is None  # a copy
    assert room.offset_of(buf[10:20].view(np.uint32)) is None  # another dtype


def test_a_late_routers_view_is_appended_to_the_familys_pools_and_answers_as_all_at_once() -> None:
    """Routers with the same prefixes (one interval axis, as full tables have):
    the late router's view joins the family's pack by an append, and every
    view answers through the packed pools as the RIB and a refresh of all do."""
    rib, _config, v4, v6 = world(1, same_prefixes=True)
    late = neighbor(ROUTERS - 1)
    together = _refreshed(rib, list(rib.routers), [])
    views = _refreshed(rib, [n for n in rib.routers if n != late], [])
    before = {v.family: v.pack for v in views.current()}
    assert before[V4] is not None and "answer" in before[V4].buffers
    held = {name: p.pools[name].copy() for name, p in ((n, before[V4]) for n in before[V4].buffers)}
    with rib.lock:
        views.want_missing([late])
    assert views.refresh() >= 1
    old = before[V4]
    new = next(v.pack for v in views.current() if v.family == V4)
    for name, room in old.buffers.items():
        assert new.buffers[name] is room  # appended, not packed again
        assert np.shares_memory(new.pools[name], old.pools[name])
        assert np.array_equal(old.pools[name], held[name])  # an old batch reads on
    rng = random.Random(1)
    assert _check_views(rib, views, v4, v6, rng) > 100
    keys = _keys(rib, V4, rng)
    mine = {v.neighbor: v for v in views.current() if v.family == V4}
    theirs = {v.neighbor: v for v in together.current() if v.family == V4}
    assert set(mine) == set(theirs) and late in mine
    for n in mine:
        assert _answers(mine[n], keys) == _answers(theirs[n], keys), n
