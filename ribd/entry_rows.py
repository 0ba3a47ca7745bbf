"""Shared rows found in a matrix of entries (a snapshot's), for wide entries. No I/O.

A format 2 snapshot holds each distinct entry as a row of set codes, one
column per router (``ribd.snapshot_v2``). With 16 routers or more the RIB
keeps an entry as a row shared by the prefixes of a set plus a prefix's own
few values (``ribd.entries.Overlay``); a snapshot stores the logical entries
only, and at 64 routers almost every prefix's entry differs somewhere, so
loaded one tuple each they were as wide as the routers (568 bytes at 64)
until each prefix's set was written again. Here the rows are found again,
vectorised over the codes (no Python per entry):

* entries are grouped by the code in a key column (the prefixes of one base
  set mostly have one set per router);
* a group's row is, per column, the code most of its entries hold among a
  few candidates (its first and second entries' codes: with each router
  sending ~5% of single prefixes elsewhere, one of them is the majority in
  almost every cell); any choice is correct, a worse one costs bytes only;
* an entry joins its group's row when the group has two entries or more and
  it differs in at most ``most`` columns; the rest try the next key column,
  then stay plain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NONE = -1  # the code of "no route in that column"
KEY_COLUMNS = 2  # passes, each keyed by another column (the most present first)


@dataclass
class Rows:
    """``codes``: one shared row per line (G x routers); ``row_of``: per entry, its
    row's line, -1 for an entry kept whole; ``own_entry``, ``own_column``: the
    (entry, column) cells where an entry on a row differs from it, by entry
    then column."""

    codes: np.ndarray
    row_of: np.ndarray
    own_entry: np.ndarray
    own_column: np.ndarray


def shared_rows(matrix: np.ndarray, most: int) -> Rows:
    """The rows ``matrix``'s entries (one per line, codes per column, NONE for
    none) share, each entry on at most one, differing from it in ``most``
    columns or fewer."""
    n_entries, n_columns = matrix.shape
    row_of = np.full(n_entries, -1, dtype=np.int64)
    rows: list[np.ndarray] = []
    n_rows = 0
    present = (matrix != NONE).sum(axis=0)
    for key in np.argsort(-present, kind="stable")[:KEY_COLUMNS].tolist():
        todo = np.flatnonzero((row_of < 0) & (matrix[:, key] != NONE))
        if len(todo) < 2:
            break
        # every entry with a code in the key column votes (the rows are the
        # same for most groups whichever column keys them)
        voters = np.flatnonzero(matrix[:, key] != NONE)
        order = voters[np.argsort(matrix[voters, key], kind="stable")]
        keys = matrix[order, key]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        sizes = np.diff(np.r_[starts, len(order)])
        group = np.repeat(np.arange(len(starts)), sizes)
        sorted_codes = matrix[order]
        first = sorted_codes[starts]
        second = sorted_codes[np.minimum(starts + 1, len(order) - 1)]
        second = np.where((sizes > 1)[:, None], second, first)
        votes_first = np.add.reduceat(sorted_codes == first[group], starts, axis=0, dtype=np.int32)
        votes_second = np.add.reduceat(
            sorted_codes == second[group], starts, axis=0, dtype=np.int32
        )
        mode = np.where(votes_second > votes_first, second, first)
        differ = (sorted_codes != mode[group]).sum(axis=1)
        ok = (differ <= most) & (sizes[group] > 1) & (row_of[order] < 0)
        if not ok.any():
            continue
        used, line = np.unique(group[ok], return_inverse=True)
        row_of[order[ok]] = n_rows + line
        rows.append(mode[used])
        n_rows += len(used)
    codes = np.concatenate(rows) if rows else np.zeros((0, n_columns), dtype=matrix.dtype)
    on = np.flatnonzero(row_of >= 0)
    cells = matrix[on] != codes[row_of[on]]
    e, c = np.nonzero(cells)
    return Rows(codes, row_of, on[e], c)
