"""A family's compiled views sharing memory: one interval axis, packed columns.

Split out of ``attribution.viewpatch`` (which brings one view up to date):
what the refresh does to all views of a family once they are current
(``one_axis``, then ``viewfamily.renumber``, then ``pack``), and the columns a
build or a patch shares with other views (``share_columns``, ``squeeze``).
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np

from attribution.viewanswers import AnswerTable, id_dtype, merge, most_held


def one_axis(views: list) -> list:
    """``views`` (one family's, every router's) moved onto one interval axis.

    The bulk path searches a batch's keys once in an axis all its routers'
    views share (``attribution.batch``), then reads each router's leaf.
    A patch gives its view an axis of its own (the changed prefixes' ends
    added, equal neighbours merged), so under churn the routers drifted off
    the shared axis until a full rebuild of all of them. Here every view's
    leaf is carried onto the union of the axes (a split interval keeps its
    answer), and bounds at which no router's answer changes are dropped
    again: the result is the coarsest axis that answers as each view did.
    Leaves that end up equal are one array. Returns the views, those that
    moved replaced by copies (the old ones stay valid for batches reading
    them); an empty or single-axis family comes back as it was.
    """
    axes = {id(v.starts): v.starts for v in views}
    if len(axes) < 2:
        return views
    # The axes are mostly the same bounds: each one's bounds new to the
    # first are found by a search (sorted input), and only those sorted in
    # (np.unique over 64 full axes sorted ~78 M bounds per refresh).
    first, *rest = axes.values()
    fresh = []
    for a in rest:
        at = np.minimum(first.searchsorted(a), len(first) - 1)
        fresh.append(a[first[at] != a])
    union = np.union1d(first, np.concatenate(fresh)) if fresh else first
    leaves: dict[tuple[int, int], np.ndarray] = {}  # (id(starts), id(leaf)) -> leaf on union
    for v in views:
        key = (id(v.starts), id(v.leaf))
        if key not in leaves:
            at = v.starts.searchsorted(union, side="right") - 1
            leaves[key] = v.leaf[at]
    keep = np.zeros(len(union), dtype=bool)
    keep[0] = True
    for leaf in leaves.values():
        keep[1:] |= leaf[1:] != leaf[:-1]
    starts = union[keep]
    starts.flags.writeable = False
    distinct: dict[bytes, list[np.ndarray]] = {}  # a sample of the leaf -> leaves with it
    for key, leaf in leaves.items():
        leaf = leaf[keep]
        sample = leaf[:: max(1, len(leaf) // 64)].tobytes()
        for seen in distinct.setdefault(sample, []):
            if np.array_equal(seen, leaf):
                leaf = seen
                break
        else:
            leaf.flags.writeable = False
            distinct[sample].append(leaf)
        leaves[key] = leaf
    return [
        dataclasses.replace(v, starts=starts, leaf=leaves[(id(v.starts), id(v.leaf))], pack=None)
        for v in views
    ]


# Columns the bulk path reads per key, packed per family (the answers
# through ``answer``, ids into the family's one ``AnswerTable``).
PACKED = ("leaf", "answer")


SHARED = ("nets", "nets_low", "lengths")


def _one_of_each(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """``arrays`` with equal ones replaced by one of them, the one most
    views already hold (its identity is what caches of unchanged views
    compare); constant broadcasts are left alone (they take no memory)."""
    held: dict[int, int] = {}
    by_id: dict[int, np.ndarray] = {}
    for a in arrays:
        held[id(a)] = held.get(id(a), 0) + 1
        by_id[id(a)] = a
    seen: dict[tuple, list[np.ndarray]] = {}
    canonical: dict[int, np.ndarray] = {}
    for i in sorted(held, key=held.__getitem__, reverse=True):
        a = by_id[i]
        if a.strides == (0,) or not len(a):
            canonical[i] = a
            continue
        key = (len(a), a.dtype.str, a[:: max(1, len(a) // 64)].tobytes())
        same = seen.setdefault(key, [])
        canonical[i] = next((b for b in same if np.array_equal(b, a)), a)
        if canonical[i] is a:
            same.append(a)
    return [canonical[id(a)] for a in arrays]


# A packed column's buffer is allocated this much larger than its first pool:
# room a later pack appends to (address space only until written: pages no
# one touched are not resident).
POOL_ROOM = 4  # a quarter more
# A pool whose buffer holds more than this share of columns no view reads
# any more (views replaced since) is packed again into a fresh buffer.
POOL_DEAD = 8  # an eighth


class PoolBuffer:
    """A packed column's memory, with room after the part in use.

    A router's view built after the others (a late router, a rebuilt one)
    used to re-pack the whole family: every router's column copied into a
    new array of ~64 x the table (~0.4 CPU-s of page faults on fresh memory
    in process, ~1 CPU-s of the maintenance's system time through sessions
    at the 64th router; BENCHMARKS.md, stop 46). Now only the new columns
    are written, after ``used``. Memory below ``used`` is never written
    again, so views of earlier packs read on unchanged while a pack
    appends; ``lock`` keeps two packs from claiming the same room.
    """

    __slots__ = ("buf", "lock", "used")

    def __init__(self, buf: np.ndarray, used: int) -> None:
        self.buf = buf
        self.used = used
        self.lock = threading.Lock()

    def offset_of(self, a: np.ndarray) -> int | None:
        """Where ``a`` lies in the part in use (a contiguous slice of it), else None."""
        buf = self.buf
        if a.dtype != buf.dtype or a.ndim != 1 or (len(a) > 1 and a.strides[0] != buf.itemsize):
            return None
        gap = a.__array_interface__["data"][0] - buf.__array_interface__["data"][0]
        if gap < 0 or gap % buf.itemsize:
            return None
        at = gap // buf.itemsize
        return at if at + len(a) <= self.used else None


class Pack:
    """One array per column for all views of a family (``pack``).

    ``pools[name]``: the column of every view, one after the other (a
    column all views share is that one array; a constant one a broadcast);
    ``offsets[name][row]``: where view ``row``'s column starts in it;
    ``answers``: the table every packed view's ``answer`` ids point into;
    ``buffers[name]``: the memory ``pools[name]`` is the start of, which the
    next pack may append to (``PoolBuffer``).
    """

    __slots__ = ("answers", "buffers", "offsets", "pools")

    def __init__(
        self,
        pools: dict[str, np.ndarray],
        offsets: dict[str, np.ndarray],
        answers: AnswerTable,
        buffers: dict[str, PoolBuffer] | None = None,
    ) -> None:
        self.pools = pools
        self.offsets = offsets
        self.answers = answers
        self.buffers = buffers if buffers is not None else {}


def pack(views: list, previous: dict[str, PoolBuffer] | None = None) -> list:
    """``views`` (one family's, on one axis) with their per-key columns packed;
    ``previous``: the buffers of the pack they had (``most_held_buffers`` of
    the views before ``one_axis`` and ``renumber``, which drop the pack),
    which columns already in them are left in and new ones are appended to
    (``PoolBuffer``); None: every column packed into a fresh buffer.

    A batch spread over 64 routers read each router's columns with a take
    of its own (6 per router: ~400 numpy calls per batch after churn, when
    every patched view has its own arrays). Packed, a column of every
    router is one array and a batch reads it with one take, each key's
    index shifted by its router's offset. Each view's column becomes its
    slice of the pool (no copy kept: the old arrays go with the old views).
    """
    if len(views) < 2 or len({id(v.starts) for v in views}) > 1:
        return views
    pools: dict[str, np.ndarray] = {}
    offsets: dict[str, np.ndarray] = {}
    columns: list[dict[str, np.ndarray]] = [{} for _ in views]
    # Columns not read per key, equal across routers (after a patch each
    # view has its own copies): one array again.
    for name in SHARED:
        arrays = _one_of_each([getattr(v, name) for v in views])
        for c, a, v in zip(columns, arrays, views, strict=True):
            if a is not getattr(v, name):
                c[name] = a
    answers, answer = _one_table(views)
    for c, a, t in zip(columns, answer, views, strict=True):
        c["answers"] = answers
        if a is not t.answer:
            c["answer"] = a
    zero = np.zeros(len(views), dtype=np.int64)
    buffers: dict[str, PoolBuffer] = {}
    previous = previous or {}
    for name in PACKED:
        arrays = _one_of_each(
            [c.get(name, getattr(v, name)) for c, v in zip(columns, views, strict=True)]
        )
        first = arrays[0]
        if all(a is first for a in arrays):
            pools[name], offsets[name] = first, zero
            continue
        if all(a.strides == (0,) and len(a) and a[0] == first[0] for a in arrays) and len(first):
            longest = max(len(a) for a in arrays)  # constant: read as one value
            pools[name], offsets[name] = np.broadcast_to(first[:1], (longest,)), zero
            continue
        parts = list({id(a): a for a in arrays}.values())
        pool, at, buffers[name] = _pooled(parts, previous.get(name))
        pools[name] = pool
        offsets[name] = np.fromiter((at[id(a)] for a in arrays), dtype=np.int64, count=len(arrays))
        for c, a, off in zip(columns, arrays, offsets[name].tolist(), strict=True):
            c[name] = pool[off : off + len(a)]
    packed = Pack(pools, offsets, answers, buffers)
    return [
        dataclasses.replace(v, pack=packed, pack_row=row, **columns[row])
        for row, v in enumerate(views)
    ]


def most_held_buffers(views: list) -> dict[str, PoolBuffer]:
    """The buffers of the pack most of ``views`` hold (none: {})."""
    packs = most_held([v.pack for v in views if v.pack is not None])
    return packs[0].buffers if packs else {}


def _pooled(
    parts: list[np.ndarray], room: PoolBuffer | None
) -> tuple[np.ndarray, dict[int, int], PoolBuffer]:
    """One read-only array holding ``parts``, where each part starts in it (by
    ``id``), and its buffer: ``room``'s, the parts it holds already left in
    place and the others appended, when they fit and its dead share stays
    under ``1 / POOL_DEAD``; else a fresh buffer with ``1 / POOL_ROOM`` to spare."""
    live = sum(len(a) for a in parts)
    if room is not None:
        at: dict[int, int] = {}
        new = []
        for a in parts:
            off = room.offset_of(a)
            if off is None:
                new.append(a)
            else:
                at[id(a)] = off
        need = sum(len(a) for a in new)
        if all(a.dtype == room.buf.dtype for a in new):
            with room.lock:
                end = room.used + need
                if end <= len(room.buf) and end - live <= live // POOL_DEAD:
                    for a in new:
                        room.buf[room.used : room.used + len(a)] = a
                        at[id(a)] = room.used
                        room.used += len(a)
                    pool = room.buf[: room.used]
                    pool.flags.writeable = False
                    return pool, at, room
    dtype = np.result_type(*parts)
    buf = np.empty(live + live // POOL_ROOM, dtype=dtype)
    at, used = {}, 0
    for a in parts:
        buf[used : used + len(a)] = a
        at[id(a)] = used
        used += len(a)
    pool = buf[:used]
    pool.flags.writeable = False
    return pool, at, PoolBuffer(buf, used)


def _one_table(views: list) -> tuple[AnswerTable, list[np.ndarray]]:
    """The family's one answer table for ``views`` and each view's ``answer``
    ids into it (the same array for views whose ids map alike)."""
    # The table most views hold first: ``merge`` keeps its ids, so their
    # ``answer`` arrays stay as they are (one new view: only its own remapped).
    tables = most_held([v.answers for v in views])
    table, remaps = merge(tables)
    remap_of = {id(t): r for t, r in zip(tables, remaps, strict=True)}
    # Whether a table's ids are kept (a table that starts the merged one's
    # rows), once per table: checked per view, it was ~0.03 CPU-s of the 64th
    # router's build (64 views, one table).
    kept = {i: bool(np.array_equal(r, np.arange(len(r)))) for i, r in remap_of.items()}
    dtype = id_dtype(len(table))
    out: dict[tuple[int, int], np.ndarray] = {}
    for v in views:
        key = (id(v.answers), id(v.answer))
        if key not in out:
            if v.answer.dtype == dtype and kept[key[0]]:
                out[key] = v.answer  # the same ids, in a table that starts with its rows
            else:
                out[key] = remap_of[key[0]].astype(dtype)[v.answer]
    return table, [out[(id(v.answers), id(v.answer))] for v in views]


def squeeze(column: np.ndarray) -> np.ndarray:
    """``column``, or, when every value is the same, a read-only broadcast of
    one value (no memory per route): path ids are 0 and stale flags all one
    value for most views."""
    if len(column) > 1 and (column[1:] == column[0]).all():
        return np.broadcast_to(column[:1].copy(), column.shape)  # a copy: not a view of it
    return column


def share_columns(columns: dict, others: list) -> dict:
    """``columns`` with each array that equals the same column of a view in
    ``others`` replaced by that view's array (read-only, so sharing is safe).

    Routers of one network mostly carry the same prefixes: their views then
    have the same intervals, the same route order and networks, and mostly
    the same AS numbers; only the attribute index (each router has its own
    sets) always differs. A view patched since its build has its own arrays
    again (patches concatenate).
    """
    out = dict(columns)
    for other in others:  # an equal answer table: one object (``pack`` merges less)
        if other.answers is not columns["answers"] and np.array_equal(
            other.answers.rows, columns["answers"].rows
        ):
            out["answers"] = other.answers
            break
    for name, column in columns.items():
        if type(column) is not np.ndarray:
            continue
        for other in others:
            theirs = getattr(other, name)
            if (
                theirs is not column
                and theirs.shape == column.shape
                and theirs.dtype == column.dtype
                and np.array_equal(theirs, column)
            ):
                out[name] = theirs
                break
    return out
