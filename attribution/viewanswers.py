"""What a compiled view answers, as one small table of distinct answer rows.

A view used to hold five answer columns per route (origin AS, peer AS,
their pmacct "highest" forms, provenance, from-AS_SET, stale): after churn
every patched view had its own copy of each, 23-30 B per (router, prefix),
and a batch spread over 64 routers read each column from a pool 64 times a
router's routes (148 MB per AS column on full tables), one cache miss per
key and column. Routers of one network give few distinct answers (origin
ASes times a handful of peer ASes), so a view now holds one id per route
(``CompiledView.answer``, 2 bytes while the table has at most 65,536 rows)
into an ``AnswerTable``, and the views of a family share one table
(``viewpack.pack``): a key costs one read in the per-router pool and one in
a table that stays in cache.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

try:  # the rows matched in C (setup.py builds it where a C compiler is): same ids
    from attribution._viewbuild import match_rows as _compiled_match_rows
except ImportError:
    _compiled_match_rows = None

ROW = np.dtype(
    [
        ("origin_as", "<u4"),
        ("origin_as_highest", "<u4"),
        ("peer_as", "<u4"),
        ("peer_as_highest", "<u4"),
        ("provenance", "u1"),
        ("stale", "?"),
        ("from_set", "?"),
    ]
)
FIELDS: tuple[str, ...] = ROW.names  # type: ignore[assignment]


def id_dtype(rows: int) -> type:
    """The narrowest id type for a table of ``rows`` rows."""
    return np.uint16 if rows <= 1 << 16 else np.uint32


class AnswerTable:
    """Distinct answer rows (``ROW``), read-only; ``parent``: the table whose
    rows this one starts with (a patch appends rows), so that merging the
    family's tables sorts only what was appended (``merge``)."""

    __slots__ = ("_index", "columns", "parent", "rows")

    def __init__(self, rows: np.ndarray, parent: AnswerTable | None = None) -> None:
        rows.flags.writeable = False
        self.rows = rows
        self.parent = parent
        self._index: dict[tuple, int] | None = None
        # Each field contiguous: a batch reads them with ``take`` (the
        # structured rows' strides made that slower).
        self.columns = {name: np.ascontiguousarray(rows[name]) for name in FIELDS}

    def __len__(self) -> int:
        return len(self.rows)

    def index(self) -> dict[tuple, int]:
        """Row (as a tuple of Python numbers) -> id, made once per table."""
        if self._index is None:
            self._index = {row: i for i, row in enumerate(self.rows.tolist())}
        return self._index

    def ids_of(self, rows: list[tuple]) -> tuple[AnswerTable, list[int]]:
        """The ids of ``rows`` (tuples in ``ROW`` order) in this table, or in
        a new one with the missing rows appended (this one is read meanwhile)."""
        index = self.index()
        added: dict[tuple, int] = {}
        ids = []
        for row in rows:
            i = index.get(row)
            if i is None:
                i = added.setdefault(row, len(self.rows) + len(added))
            ids.append(i)
        if not added:
            return self, ids
        new = np.concatenate([self.rows, np.array(list(added), dtype=ROW)])
        return AnswerTable(new, parent=self), ids


def empty() -> AnswerTable:
    return AnswerTable(np.zeros(0, dtype=ROW))


def _keys(rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """Three integer words per row that order and compare rows as wholes."""
    u64 = np.uint64
    a = rows["origin_as"].astype(u64) << u64(32) | rows["peer_as"]
    b = rows["origin_as_highest"].astype(u64) << u64(32) | rows["peer_as_highest"]
    c = (
        rows["provenance"].astype(u64)
        | rows["stale"].astype(u64) << u64(8)
        | rows["from_set"].astype(u64) << u64(9)
    )
    return a, b, c


def intern(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(id of each row, the distinct rows sorted): ``rows[i] == distinct[ids[i]]``."""
    if not len(rows):
        return np.zeros(0, dtype=np.intp), rows[:0].copy()
    a, b, c = _keys(rows)
    order = np.lexsort((c, b, a))
    a, b, c = a[order], b[order], c[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1]) | (c[1:] != c[:-1])
    ids = np.empty(len(rows), dtype=np.intp)
    ids[order] = np.cumsum(first) - 1
    # ``take``: fancy indexing of the packed (19-byte) rows took ~30x longer
    # (12 ms for a full table's ~90 k distinct answers, stop 33, refresh2).
    return ids, np.take(rows, order[first])


def merge(tables: list[AnswerTable]) -> tuple[AnswerTable, list[np.ndarray]]:
    """One table for ``tables`` (distinct objects), and for each, the new id
    of each of its ids. The first table is the base: its ids stay what they
    are (rows new to it are appended), so the views holding it keep their
    ``answer`` arrays (callers put the table most views hold first:
    ``most_held``). Tables that extend the base (patches since the last
    merge) cost a dictionary lookup per appended row; others (a view built
    since) are matched to the base by one sort of their rows and the base's.

    A late router's view merged with the family's table by one sort into
    new sorted ids, and every other view's ``answer`` was then remapped and
    copied: ~30 ms of router 17's build, growing with the routers
    (BENCHMARKS.md, stop 41, lone41)."""
    base = tables[0]
    if len(tables) == 1:
        return base, [np.arange(len(base), dtype=np.intp)]
    added: dict[tuple, int] = {}
    remaps: list[np.ndarray | None] = []
    head = np.arange(len(base), dtype=np.intp)
    for t in tables:
        if t is base:
            remaps.append(head)
        elif t.parent is base:
            tail = t.rows[len(base) :].tolist()
            index = base.index()
            ids = [index.get(row, -1) for row in tail]
            for k, row in enumerate(tail):
                if ids[k] < 0:
                    ids[k] = added.setdefault(row, len(base) + len(added))
            remaps.append(np.concatenate([head, np.array(ids, dtype=np.intp)]))
        else:
            remaps.append(None)  # below: matched by a sort
    rows = base.rows
    if added:
        rows = np.concatenate([rows, np.array(list(added), dtype=ROW)])
    others = [t for t, r in zip(tables, remaps, strict=True) if r is None]
    if others:
        rows, matched = match_rows(rows, [t.rows for t in others])
        found = iter(matched)
        remaps = [next(found) if r is None else r for r in remaps]
    if len(rows) == len(base):
        return base, remaps  # type: ignore[return-value]
    return AnswerTable(rows), remaps  # type: ignore[return-value]


_Held = TypeVar("_Held")


def most_held(tables: list[_Held]) -> list[_Held]:
    """The distinct objects of ``tables`` (one per view: answer tables, packs),
    the one most views hold first (``merge`` keeps its ids, ``pack`` appends
    to its buffers), then by first appearance."""
    held: dict[int, int] = {}
    by_id: dict[int, _Held] = {}
    for t in tables:
        held[id(t)] = held.get(id(t), 0) + 1
        by_id.setdefault(id(t), t)
    return [by_id[i] for i in sorted(held, key=lambda i: -held[i])]


def match_rows(base: np.ndarray, others: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """``base`` (distinct rows) with the rows of ``others`` it lacks appended
    in first-seen order, and each of ``others``' rows' ids in the result.

    In C (a hash table of ``others``' rows, ``base`` read once in order) when
    ``others`` are the smaller side: a late router's table against the
    family's. Otherwise (every router's fresh table after a restart: the
    others ~15x the base) a table of theirs outgrew the cache, ~2x slower
    than one sort of all rows (``py_match_rows``, the same result)."""
    rest = sum(len(rows) for rows in others)
    if _compiled_match_rows is None or rest > len(base):
        return py_match_rows(base, others)
    return c_match_rows(base, others)


def c_match_rows(base: np.ndarray, others: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """``match_rows`` in C (``attribution._viewbuild.match_rows``)."""
    added, ids = _compiled_match_rows(_bytes(base), _bytes(np.concatenate(others)), ROW.itemsize)
    ids = np.frombuffer(ids, dtype=np.int64).astype(np.intp, copy=False)
    remaps, at = [], 0
    for rows in others:
        remaps.append(ids[at : at + len(rows)])
        at += len(rows)
    if len(added):  # (as bytes: a concatenate of the packed rows was ~10x slower)
        base = np.concatenate([_bytes(base), np.frombuffer(added, dtype=np.uint8)]).view(ROW)
    return base, remaps


def _bytes(rows: np.ndarray) -> np.ndarray:
    """A table's rows as their bytes (``ROW`` is packed: 19 a row)."""
    return np.ascontiguousarray(rows, dtype=ROW).view(np.uint8)


def py_match_rows(
    base: np.ndarray, others: list[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """``match_rows`` by one sort of all rows: the reference for
    ``attribution._viewbuild.match_rows`` (the same result)."""
    ids, distinct = intern(np.concatenate([_bytes(rows) for rows in (base, *others)]).view(ROW))
    final = np.full(len(distinct), -1, dtype=np.intp)  # sorted id -> id in the result
    final[ids[: len(base)]] = np.arange(len(base), dtype=np.intp)
    rest = ids[len(base) :]
    missing = rest[final[rest] < 0]
    new, first = np.unique(missing, return_index=True)
    new = new[np.argsort(first)]  # in first-seen order
    final[new] = len(base) + np.arange(len(new), dtype=np.intp)
    remaps, at = [], len(base)
    for rows in others:
        remaps.append(final[ids[at : at + len(rows)]])
        at += len(rows)
    if len(new):
        base = np.concatenate([base, np.take(distinct, new)])
    return base, remaps


def answer_rows(
    index: np.ndarray, default: np.ndarray, stale: np.ndarray, columns: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, AnswerTable]:
    """Per route the id of its answer row, and the table of distinct rows.

    A route's answer depends on its attribute set, whether it is the default
    route and whether it is stale: rows are made once per such combination
    (about one per set), then made distinct."""
    combo = index.astype(np.int64) * 4 + default * 2 + stale
    _, first, inverse = np.unique(combo, return_index=True, return_inverse=True)
    rows = np.zeros(len(first), dtype=ROW)
    origin, highest, peer, peer_highest, prov, from_set = columns
    for name, column in zip(
        ROW.names, (origin, highest, peer, peer_highest, prov, stale, from_set), strict=True
    ):
        rows[name] = column[first]
    ids, distinct = intern(rows)
    return ids[inverse].astype(id_dtype(len(distinct))), AnswerTable(distinct)
