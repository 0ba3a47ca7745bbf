"""`attribution enrich`'s CSV rows assembled in C (attribution._enrich_csv).

pyarrow.csv wrote each batch from an Arrow table of its 37 columns (the flow
columns, the answer columns by ``take`` from the stream's route table): the
table and the writer cost ~1 µs a record, more than the service's whole
answer. Here the same bytes are written straight from the flow columns the
compiled reader made (attribution._enrich_columns) and the packed answers,
with the pieces that repeat made once: a route's prefix and AS path once per
stream, routers and exporters once per batch, the override, flags and error
columns once per distinct (override, flags) pair. The pyarrow path
(:func:`attribution.enrich_arrow.csv_table`) stays the reference, and runs
for whatever this does not take (a batch the compiled reader did not take
whole, no compiled modules); tests/attribution/test_enrich_csv.py compares
the two byte for byte.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable
from typing import Any

import numpy as np

from attribution.answers import FLAG_NAMES, PROVENANCE_NAMES
from attribution.enrich_records import FlowBatch
from attribution.enrich_wire import AnswerBatch, RouteDictionary, compiled_layout_ok, csv_path

try:  # built where a C compiler was at install time
    from attribution import _enrich_csv as CSV_COMPILED
except ImportError:
    CSV_COMPILED = None  # type: ignore[assignment]
if os.environ.get("ATTRIBUTION_ENRICH_READER") == "python":  # all Python, to compare
    CSV_COMPILED = None  # type: ignore[assignment]
if CSV_COMPILED is not None and not compiled_layout_ok(CSV_COMPILED):
    CSV_COMPILED = None  # type: ignore[assignment]  # the pyarrow path until the .pxi follows

# The columns the assembler writes, in its order; the tail (override, flags,
# errors) follows them as the writer's columns name it. Copies on purpose, not
# enrich_decode.ROUTE_COLUMNS: they are what _enrich_csv.pyx writes, and
# ``supports`` compares the writer's columns with them, so a column added to
# the answer sends CSV to the pyarrow path until the assembler follows.
FLOW_LAYOUT = (
    "time",
    "exporter",
    "src_addr",
    "dst_addr",
    "in_if",
    "out_if",
    "src_mac",
    "next_hop",
    "bytes",
    "packets",
    "sampling_rate",
)
ANSWER_LAYOUT = (
    "router",
    "src_origin_as",
    "src_peer_as",
    "dst_origin_as",
    "dst_peer_as",
    "src_origin_provenance",
    "src_peer_provenance",
    "dst_origin_provenance",
    "dst_peer_provenance",
    "src_prefix",
    "dst_prefix",
    "src_as_path",
    "dst_as_path",
)
_FLAG_BITS = {name: bit for bit, name in FLAG_NAMES.items()}


def quoted(text: str) -> bytes:
    """A text value as pyarrow.csv writes it: in ``"``, each ``"`` doubled."""
    return b'"' + text.encode().replace(b'"', b'""') + b'"'


_PROVENANCE = [quoted(PROVENANCE_NAMES.get(i, "none")) for i in range(256)]


def supports(flow_columns: tuple, answer_columns: tuple) -> bool:
    """Whether the assembler writes these columns (else the pyarrow path)."""
    tail = answer_columns[len(ANSWER_LAYOUT) :]
    known = {"override", "error_code", "error", *_FLAG_BITS}
    return (
        CSV_COMPILED is not None
        and flow_columns == FLOW_LAYOUT
        and answer_columns[: len(ANSWER_LAYOUT)] == ANSWER_LAYOUT
        and all(name in known for name in tail)
    )


class _RoutePieces:
    """A stream's routes as CSV pieces, route k at row k + 1 (row 0: no
    route): its prefix (empty for none) and its AS path (``"65001
    {65002,65003}"``), made once per stream, as
    :class:`attribution.enrich_arrow._RouteTable` makes the values
    pyarrow.csv writes. One table: the pieces' bytes in ``text``, row j's
    prefix at ``offsets[2j]:offsets[2j + 1]``, its path up to ``offsets[2j +
    2]``. Why not a bytes object a piece: the assembler read each one's
    header, a cache miss a piece over thousands of routes (four a record)."""

    def __init__(self) -> None:
        self.text = bytearray()
        self.offsets = array("q", [0])
        self._add(b"", quoted(csv_path([])))

    def _add(self, prefix: bytes, path: bytes) -> None:
        self.text += prefix
        self.offsets.append(len(self.text))
        self.text += path
        self.offsets.append(len(self.text))

    def __len__(self) -> int:
        return (len(self.offsets) - 1) // 2

    def upto(self, routes: RouteDictionary, rows: int) -> None:
        from attribution.enrich_arrow import _route_row

        for k in range(len(self) - 1, rows - 1):
            row = _route_row(routes.routes[k])
            self._add(b"" if row[0] is None else quoted(row[0]), quoted(csv_path(row[8])))


def _tail(
    columns: tuple, overrides: list[str], override: int, flags: int, error: tuple | None = None
) -> bytes:
    """The columns after the AS paths (``columns``' names) and the newline."""
    out = []
    for name in columns:
        if name == "override":
            out.append(quoted(overrides[override]) if override >= 0 else b"")
        elif name == "error_code":
            out.append(b"" if error is None else quoted(error[0]))
        elif name == "error":
            out.append(b"" if error is None else quoted(error[1]))
        else:
            out.append(b"true" if flags & _FLAG_BITS[name] else b"false")
    return b",".join(out) + b"\n"


def csv_lines(
    flows: FlowBatch, answers: AnswerBatch, answer_columns: tuple, cell: Callable[[Any], Any]
) -> bytearray | None:
    """The batch's CSV rows (no header), or None where the assembler does not
    take the batch (the compiled reader did not take it whole): then the
    pyarrow path writes it. ``cell``: a time value's text, as the pyarrow
    path's."""
    if CSV_COMPILED is None or not len(flows):
        return None
    from attribution.enrich_arrow import COLUMNS, _text, compiled_flows

    got = compiled_flows(flows, csv=True)
    if got is None:
        return None
    if "time_text" in got:
        when = got["time_text"]
    else:
        when = COLUMNS.strings([_text(v, cell) for v in got["times"]])
    rec = np.ascontiguousarray(answers.records)
    routes = answers.routes
    pieces = routes.extra.get("csv_pieces")
    if pieces is None:
        pieces = routes.extra["csv_pieces"] = _RoutePieces()
    top = int(max(rec["src_route"].max(), rec["dst_route"].max()))
    if top >= len(routes):  # a bad reply: refused before any table grows to it
        raise IndexError(f"route {top} is not in the dictionary ({len(routes)} routes)")
    pieces.upto(routes, top + 2)
    rest = answer_columns[len(ANSWER_LAYOUT) :]
    overrides = answers.overrides
    tails: dict[tuple[int, int], bytes] = {}

    def tail(override: int, flags: int) -> bytes:
        made = tails.get((override, flags))
        if made is None:
            made = tails[(override, flags)] = _tail(rest, overrides, override, flags)
        return made

    errors = {
        i: _tail(rest, overrides, int(rec["override"][i]), int(rec["flags"][i]), error)
        for i, error in answers.errors.items()
    }
    return CSV_COMPILED.csv_lines(
        got,
        when,
        [quoted(name) for name in COLUMNS.FORMATS],
        [quoted(e) for e in got["exporters"]],
        rec.view(np.uint8),
        [b"", *(quoted(r) for r in answers.routers)],
        pieces.text,
        pieces.offsets,
        _PROVENANCE,
        tail,
        errors,
    )


__all__ = ["CSV_COMPILED", "csv_lines", "quoted", "supports"]
