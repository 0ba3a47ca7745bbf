"""The bulk path's view lookups: every key of a batch to its route and answer id.

Split out of ``attribution.batch`` (which drives a batch and stores its
answers): here the keys of a batch's groups are searched in their routers'
compiled views, one search per interval axis, and each key's leaf (route
number) and answer id are read, from the family's packed columns when the
views are packed (``viewpack.pack``). The answer rows themselves are read
once per batch side, from the batch's one table (``BatchTables``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from attribution.viewanswers import FIELDS, AnswerTable
from attribution.viewpack import Pack

if TYPE_CHECKING:
    from attribution.batch import Group
    from attribution.compiledview import CompiledView


def lookup_views(
    groups: list[Group], k32: np.ndarray | None, k64: np.ndarray | None, size: int
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray] | None]:
    """(leaf, answer id, answer table) of every key, in the group layout,
    from each group's compiled view (leaf -1: none): ids index the
    columns of the batch's one table (``AnswerTable.columns``; the
    tables of the batch's views one after the other, ``BatchTables``),
    read once per batch by ``_scatter``.

    IPv4 keys are sorted within their group first (with their position
    in the low 32 bits, one ``sort`` of 64-bit words): numpy's
    ``searchsorted`` walks sorted keys far faster (cache locality, a
    narrowing range), 2x on a 1 M-interval view; the columns are read in
    that order too and put back in place once per batch. Exporters whose
    flows one router answers (its own, fallbacks to it) are looked up
    together: one call per view.
    """
    leaf = np.full(size, -1, dtype=np.int32)
    aid = np.zeros(size, dtype=np.uint32)
    viewed = [g for g in groups if g.usable is not None and len(g.usable[0])]
    if not viewed:
        return leaf, aid, None
    tables = BatchTables()
    # Exporters that fall back to one router share its view: their keys
    # are looked up together, one call per view, not one per exporter.
    by_view: dict[int, list[Group]] = {}
    for g in viewed:
        by_view.setdefault(id(g.usable[0]), []).append(g)  # type: ignore[index]
    alone = [gs[0] for gs in by_view.values() if len(gs) == 1]
    shared = [gs for gs in by_view.values() if len(gs) > 1]
    # Routers with the same prefixes share one interval axis (``starts``,
    # viewbuild.build_view): the keys of all their views are searched in
    # one call, a batch spread over 64 routers pays one binary search
    # per key in one array, not 64 calls over 64 cold slices of it.
    by_axis: dict[int, list[Group]] = {}
    for g in alone:
        by_axis.setdefault(id(g.usable[0].starts), []).append(g)  # type: ignore[index]
    alone = [gs[0] for gs in by_axis.values() if len(gs) == 1]
    axes = [gs for gs in by_axis.values() if len(gs) > 1]
    perm = None
    if k32 is not None and any(g.v4 for g in alone):  # else no slot moves
        comp = k32.astype(np.uint64)
        comp <<= np.uint64(32)
        comp |= np.arange(size, dtype=np.uint64)
        for g in alone:
            if g.v4:
                comp[2 * g.start : 2 * g.stop].sort()
        k32 = (comp >> np.uint64(32)).astype(np.uint32)
        perm = (comp & np.uint64(0xFFFFFFFF)).astype(np.intp)  # sorted slot -> position

    def answers(view: CompiledView, lk: np.ndarray, at: slice | np.ndarray) -> None:
        tables.put(view.answers, view.answer.take(lk, mode="wrap"), aid, at)

    def look(view: CompiledView, keys: np.ndarray, at: slice | np.ndarray) -> None:
        found = view.starts.searchsorted(keys, side="right")
        found -= 1
        # -1 (no route) wraps to the last route: ``_scatter`` masks it out
        if isinstance(at, slice):  # straight into the columns
            lk = view.leaf.take(found, out=leaf[at], mode="wrap")
        else:
            lk = leaf[at] = view.leaf.take(found, mode="wrap")
        answers(view, lk, at)

    def slots(gs: list[Group]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
        """The key slots of groups ``gs`` and their keys, IPv4 keys sorted;
        the slots in group order (None: all of ``0..size``, the usual case of
        a batch on one axis) and the groups' slot counts."""
        first = np.fromiter((2 * g.start for g in gs), dtype=np.int64, count=len(gs))
        sizes = np.fromiter((2 * (g.stop - g.start) for g in gs), dtype=np.int64, count=len(gs))
        spans: np.ndarray | None = None
        if (
            first[0] == 0
            and int(sizes.sum()) == size
            and (first[1:] == first[:-1] + sizes[:-1]).all()
        ):
            at = np.arange(size, dtype=np.int64)  # the groups fill the batch in order
            keys32 = k32
        else:  # the groups' slot ranges one after the other: [2 start, 2 stop) each
            at = spans = np.arange(int(sizes.sum()), dtype=np.int64)
            at += np.repeat(first - (np.cumsum(sizes) - sizes), sizes)
            keys32 = k32[at] if k32 is not None else None
        if not gs[0].v4:
            return at, k64[at], spans, sizes  # type: ignore[index]
        c = keys32.astype(np.uint64)  # type: ignore[union-attr]
        c <<= np.uint64(32)
        c |= at.astype(np.uint64)
        c.sort()
        keys = (c >> np.uint64(32)).astype(np.uint32)
        return (c & np.uint64(0xFFFFFFFF)).astype(np.intp), keys, spans, sizes

    for g in alone:
        seg = slice(2 * g.start, 2 * g.stop)
        look(g.usable[0], (k32 if g.v4 else k64)[seg], seg)  # type: ignore[index]
    for gs in shared:  # their slots were not sorted: slot = position
        at, keys, _, _ = slots(gs)
        look(gs[0].usable[0], keys, at)  # type: ignore[index]
    for gs in axes:  # their slots were not sorted either
        views = [g.usable[0] for g in gs]  # type: ignore[index]
        at, keys, spans, sizes = slots(gs)
        found = views[0].starts.searchsorted(keys, side="right")
        found -= 1
        packed = views[0].pack
        if packed is not None and all(v.pack is packed for v in views):
            lk, ids = _read_packed(packed, views, at, found, size, spans, sizes)
            leaf[at] = lk
            tables.put(packed.answers, ids, aid, at)
            continue
        # Then each router's own columns, read group by group (contiguous
        # slots); a column all of them share is read once for all.
        segs = [slice(2 * g.start, 2 * g.stop) for g in gs]
        if all(v.leaf is views[0].leaf for v in views):
            lk = leaf[at] = views[0].leaf.take(found, mode="wrap")
        else:
            spot = np.zeros(size, dtype=np.intp)
            spot[at] = found
            for v, seg in zip(views, segs, strict=True):
                v.leaf.take(spot[seg], out=leaf[seg], mode="wrap")
            lk = leaf[at]
        first = views[0]
        if all(v.answer is first.answer and v.answers is first.answers for v in views):
            answers(first, lk, at)
            continue
        for v, seg in zip(views, segs, strict=True):
            answers(v, leaf[seg], seg)
    table = tables.columns()
    if perm is None:
        return leaf, aid, table
    placed = []
    for column in (leaf, aid):  # sorted slots -> positions (IPv6 slots were not moved)
        c = np.empty_like(column)
        c[perm] = column
        placed.append(c)
    return placed[0], placed[1], table


def _read_packed(
    packed: Pack,
    views: list[CompiledView],
    at: np.ndarray,
    found: np.ndarray,
    size: int,
    spans: np.ndarray | None,
    sizes: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The leaf and answer id of keys ``at`` (interval ``found`` on the
    groups' shared axis) from the family's packed columns
    (``viewpack.pack``): one take per column for all routers, each
    key's index shifted by its router's offset, instead of a take per
    router and column. ``spans``/``sizes``: the groups' slots (``slots``)."""
    rows = np.fromiter((v.pack_row for v in views), dtype=np.intp, count=len(views))

    def read(name: str, index: np.ndarray) -> np.ndarray:
        pool = packed.pools[name]
        offsets = packed.offsets[name]
        if pool.strides != (0,) and offsets.any():
            # Each slot's router offset, then each key's (``at``: sorted keys).
            per_slot = np.repeat(offsets[rows], sizes)
            if spans is not None:
                placed = np.zeros(size, dtype=np.int64)
                placed[spans] = per_slot
                per_slot = placed
            index = index + per_slot[at]
        return _take(pool, index)

    lk = read("leaf", found)
    return lk, read("answer", lk)


class BatchTables:
    """The answer tables of a batch's views, as one: each table's ids offset
    by the rows of the tables before it (mostly one table: a family's views
    share theirs, ``viewpack.pack``). Joined tables are kept for the next
    batches (``_JOINED``): they are small, and batches mostly see the same."""

    __slots__ = ("offsets", "tables")

    def __init__(self) -> None:
        self.tables: list[AnswerTable] = []
        self.offsets: dict[int, int] = {}

    def put(
        self, table: AnswerTable, ids: np.ndarray, aid: np.ndarray, at: slice | np.ndarray
    ) -> None:
        """``ids`` of rows of ``table`` into ``aid`` at ``at``."""
        off = self.offsets.get(id(table))
        if off is None:
            off = self.offsets[id(table)] = sum(len(t) for t in self.tables)
            self.tables.append(table)
        if off:
            ids = ids.astype(np.uint32)
            ids += np.uint32(off)
        aid[at] = ids

    def columns(self) -> dict[str, np.ndarray] | None:
        if not self.tables:
            return None
        if len(self.tables) == 1:
            return self.tables[0].columns
        key = tuple(id(t) for t in self.tables)
        hit = _JOINED.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], self.tables, strict=True)):
            return hit[1]
        joined = {name: np.concatenate([t.columns[name] for t in self.tables]) for name in FIELDS}
        if len(_JOINED) >= 8:
            _JOINED.clear()
        _JOINED[key] = (tuple(self.tables), joined)
        return joined


_JOINED: dict[tuple[int, ...], tuple[tuple[AnswerTable, ...], dict[str, np.ndarray]]] = {}


def _take(source: np.ndarray, index: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``source.take(index, mode="wrap")`` (-1, no route, wraps: masked later),
    into ``out`` if given. A column of one value (``viewpack.squeeze``: a
    broadcast, stride 0) is filled instead: numpy's take first copies a
    non-contiguous source whole, ~70 us per batch for a full table's stale
    flags."""
    if source.strides == (0,) and len(source):
        if out is None:
            return np.full(len(index), source[0], dtype=source.dtype)
        out.fill(source[0])
        return out
    return source.take(index, out=out, mode="wrap")
