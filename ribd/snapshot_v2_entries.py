"""Format 2 snapshots: the prefixes' keys checked and the entries rebuilt as ingest keeps them.

Split out of ``ribd.snapshot_v2_load`` (which validates a file and builds the
attribute sets, then the RIB): the per-family part that works on the
prefixes and on the matrix of per-router set codes, also used by format 1's
loader (``wide_entries_of``). No I/O.
"""

from __future__ import annotations

from itertools import chain
from typing import TYPE_CHECKING

import numpy as np

from ribd.entries import OVERLAY_MAX, Overlay
from ribd.entry_rows import shared_rows
from ribd.events import IPV4_UNICAST
from ribd.prefixes import BadPrefix, normalise_prefix
from ribd.snapshot_format import SnapshotError
from ribd.store import PrefixStore

if TYPE_CHECKING:
    from ribd.rib import FamilyTable


def _check_keys(family: str, raw: np.ndarray) -> None:
    """Prefix store keys: packed network + (length + 1), host bits clear, sorted and
    distinct. The first bad key is named by ``normalise_prefix``'s own message."""
    n = len(raw)
    if not n:
        return
    bits = 32 if family == IPV4_UNICAST else 128
    lengths = raw[:, -1].astype(np.int64) - 1
    bad = np.flatnonzero((lengths < 0) | (lengths > bits))
    if len(bad):
        i = int(bad[0])
        raise SnapshotError(f"{family}: prefix #{i} has a bad length byte {int(raw[i, -1])}")
    if bits == 32:
        net = raw[:, :4].copy().view(">u4").reshape(n).astype(np.uint64)
        host = net & ((np.uint64(1) << (32 - lengths).astype(np.uint64)) - np.uint64(1))
        dirty = host != 0
    else:
        halves = raw[:, :16].copy().view(">u8").reshape(n, 2)
        dirty = np.zeros(n, dtype=bool)
        for half, width in ((0, 64), (1, 128)):
            shift = np.clip(width - lengths, 0, 64)  # host bits in this half
            full = shift == 64
            mask = (np.uint64(1) << np.minimum(shift, 63).astype(np.uint64)) - np.uint64(1)
            mask[full] = np.uint64(0xFFFFFFFFFFFFFFFF)
            dirty |= (halves[:, half] & mask) != 0
    store = PrefixStore(bits)
    keys = raw.view(f"S{raw.shape[1]}").reshape(n)
    if dirty.any():
        prefix = store.text(bytes(raw[int(np.argmax(dirty))]))
        try:
            normalise_prefix(prefix, 4 if bits == 32 else 6)
        except BadPrefix as exc:
            raise SnapshotError(f"{family}: {exc}") from None
        raise SnapshotError(f"{family}: prefix {prefix} has host bits set")
    order = keys[1:] > keys[:-1]
    if not order.all():
        i = int(np.argmin(order))
        prefix = store.text(bytes(raw[i + 1]))
        if keys[i + 1] == keys[i]:
            raise SnapshotError(f"{family}: prefix {prefix} appears twice")
        raise SnapshotError(f"{family}: prefix {prefix} is out of order")


def _tuples(codes: np.ndarray, present: np.ndarray, table: np.ndarray) -> list[tuple]:
    """Each line of ``codes`` as the tuple of ``table``'s objects, trailing Nones dropped."""
    n_routers = codes.shape[1]
    rows = table[codes].tolist()
    lengths = (n_routers - np.argmax(present[:, ::-1], axis=1)).tolist()
    return [
        tuple(r) if k == n_routers else tuple(r[:k]) for r, k in zip(rows, lengths, strict=True)
    ]


def wide_entries_of(entries: list[list], n_routers: int, table: FamilyTable) -> list[object]:
    """Format 1's entries (each a list of values per router, trailing Nones
    dropped) as ``_wide_entries`` makes format 2's, interned in ``table``: a
    matrix of codes (one per distinct value object, in C loops), then the
    same rows and Overlays."""
    objects: list[object] = [None]
    code: dict[int, int] = {id(None): -1}
    for values in entries:
        for v in values:
            if id(v) not in code:
                code[id(v)] = len(objects) - 1
                objects.append(v)
    padded = chain.from_iterable(values + [None] * (n_routers - len(values)) for values in entries)
    matrix = np.fromiter(
        map(code.__getitem__, map(id, padded)), dtype=np.int32, count=len(entries) * n_routers
    ).reshape(len(entries), n_routers)
    table_objects = np.empty(len(objects), dtype=object)
    table_objects[:] = objects
    return list(map(_interned_in(table), _wide_entries(matrix, 1, table_objects)))


def _interned_in(table: FamilyTable):
    """A function interning a wide entry (``_wide_entries``') in ``table``: a
    tuple as itself, an Overlay by its row (a new Overlay when an equal row
    was held already)."""
    setdefault = table._entries.setdefault

    def interned(e: object) -> object:
        if type(e) is Overlay:
            row = setdefault(e.row, e.row)
            return e if row is e.row else Overlay(row, e.over)
        return setdefault(e, e)  # type: ignore[arg-type]

    return interned


def _wide_entries(matrix: np.ndarray, offset: int, table: np.ndarray) -> list[object]:
    """The entries of a snapshot of OVERLAY_SLOTS routers or more, as ingest keeps
    them (``ribd.entries``): the rows the entries of a set share
    (``ribd.entry_rows``), each entry one of them, an Overlay of one, or a
    tuple of its own. Loaded whole, every entry was a tuple as wide as the
    routers until its set was written again. ``offset``: a cell's index in
    ``table`` is its value plus this."""
    found = shared_rows(matrix, OVERLAY_MAX)
    codes = matrix.astype(np.int64) + offset
    entries: list[object] = [None] * len(matrix)
    plain = np.flatnonzero(found.row_of < 0)
    for e, t in zip(plain.tolist(), _tuples(codes[plain], matrix[plain] != -1, table), strict=True):
        entries[e] = t
    row_codes = found.codes.astype(np.int64) + offset
    rows = _tuples(row_codes, found.codes != -1, table) if len(row_codes) else []
    on = np.flatnonzero(found.row_of >= 0)
    line = found.row_of[on].tolist()
    for e, k in zip(on.tolist(), line, strict=True):
        entries[e] = rows[k]
    if len(found.own_entry):
        owners = found.own_entry
        starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
        ends = np.r_[starts[1:], len(owners)]
        flat = np.empty(2 * len(owners), dtype=object)
        flat[0::2] = found.own_column.tolist()
        flat[1::2] = table[codes[owners, found.own_column]]
        cells = flat.tolist()
        for e, a, b in zip(owners[starts].tolist(), starts.tolist(), ends.tolist(), strict=True):
            entries[e] = Overlay(entries[e], tuple(cells[2 * a : 2 * b]))  # type: ignore[arg-type]
    return entries


__all__ = ["_check_keys", "_interned_in", "_tuples", "_wide_entries", "wide_entries_of"]
