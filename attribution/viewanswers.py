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

import numpy as np

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
    of each of its ids. Tables that extend one base (patches since the last
    merge) cost a dictionary lookup per appended row; others are merged by
    one sort of all their rows."""
    if len(tables) == 1:
        return tables[0], [np.arange(len(tables[0]), dtype=np.intp)]
    base = next((t for t in tables if t.parent is None), None)
    if base is not None and all(t is base or t.parent is base for t in tables):
        tails = [t.rows[len(base) :].tolist() for t in tables]
        added: dict[tuple, int] = {}
        index = base.index()
        remaps = []
        for tail in tails:
            ids = [index.get(row, -1) for row in tail]
            for k, row in enumerate(tail):
                if ids[k] < 0:
                    ids[k] = added.setdefault(row, len(base) + len(added))
            head = np.arange(len(base), dtype=np.intp)
            remaps.append(np.concatenate([head, np.array(ids, dtype=np.intp)]))
        if not added:
            return base, remaps
        rows = np.concatenate([base.rows, np.array(list(added), dtype=ROW)])
        return AnswerTable(rows), remaps
    ids, distinct = intern(np.concatenate([t.rows for t in tables]))
    remaps, at = [], 0
    for t in tables:
        remaps.append(ids[at : at + len(t)])
        at += len(t)
    return AnswerTable(distinct), remaps


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
