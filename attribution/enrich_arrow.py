"""`attribution enrich`'s answers as Arrow columns, straight from the packed records.

The stores (:mod:`attribution.sinks`: Parquet, ClickHouse) take Arrow tables.
Going through one answer dict per record cost more than everything else in
the run; here every column is made from the numpy columns of
:class:`attribution.enrich_wire.AnswerBatch` in C: AS numbers and flags as
they are, names (routers, provenances, overrides) by ``take`` from their small
dictionaries, and a route's fields (prefix, AS path, communities, the AS
behind the neighbor) built once for each distinct route of the batch and
spread by ``take``. The values are those of the answer dicts, column by
column (tests/attribution/test_enrich_stores.py compares whole tables).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from attribution.answers import FLAG_NAMES, PROVENANCE_NAMES
from attribution.enrich_records import FlowBatch
from attribution.enrich_wire import AnswerBatch, RouteDictionary, csv_path
from attribution.reports.records import via_as
from attribution.v1 import attribution_pb2 as pb

_PROVENANCE = pa.array([PROVENANCE_NAMES.get(i, "none") for i in range(256)], pa.string())
_PATH = pa.list_(pa.uint32())
_STRS = pa.list_(pa.string())
_DST_ONLY = ("communities", "large_communities", "local_pref", "med", "next_hop")


def _names(names: list[str], index: np.ndarray) -> pa.Array:
    """``names[index]``, null where index < 0."""
    if not names:
        return pa.nulls(len(index), pa.string())
    idx = pa.array(index, pa.int32(), mask=index < 0)
    return pa.array(names, pa.string()).take(idx)


_SETS = (pb.AsPathSegment.AS_SET, pb.AsPathSegment.AS_CONFED_SET)
_NO_ROUTE = (None, [], -1, [], [], None, None, None, [])


def _route_row(r: pb.Route) -> tuple:
    """(prefix, AS path flat, via AS or -1, communities, large communities,
    local pref, MED, next hop, AS path as flow JSON shows it) of a route, as
    the answer dicts show them."""
    path: list = []
    flat: list[int] = []
    for seg in r.as_path:
        asns = list(seg.asns)
        flat.extend(asns)
        if seg.type in _SETS:
            path.append(asns)
        else:
            path.extend(asns)
    return (
        r.prefix,
        flat,
        via_as(path, -1),
        list(r.communities),
        list(r.large_communities),
        r.local_pref if r.has_local_pref else None,
        r.med if r.has_med else None,
        r.next_hop or None,
        path,
    )


class _RouteTable:
    """A stream's routes as Arrow columns, row ``k + 1`` route ``k`` (row 0: no
    route), grown as records first name new routes: each route is turned into
    its fields once per stream, and a batch's route columns are one ``take``
    each, in C, whatever the number of distinct routes in it."""

    def __init__(self, text: bool) -> None:
        self.text = text  # the AS path as CSV text (else a list of AS numbers)
        self.made = 0  # routes in the table
        first = self._arrays([_NO_ROUTE])
        self.via: np.ndarray = first.pop()  # the AS behind the neighbor, -1: none
        self.chunks: list[list[pa.Array]] = [first]
        self._joined: list[pa.ChunkedArray] | None = None

    def _arrays(self, rows: list[tuple]) -> list[pa.Array]:
        cols = list(zip(*rows, strict=True))
        return [
            pa.array(cols[0], pa.string()),
            pa.array([csv_path(p) for p in cols[8]], pa.string())
            if self.text
            else pa.array(cols[1], _PATH),
            pa.array(cols[3], _STRS),
            pa.array(cols[4], _STRS),
            pa.array(cols[5], pa.uint32()),
            pa.array(cols[6], pa.uint32()),
            pa.array(cols[7], pa.string()),
            np.asarray(cols[2], dtype=np.int64),
        ]

    @staticmethod
    def _merge(chunks: list[list[pa.Array]]) -> list[pa.Array]:
        return [pa.concat_arrays(list(c)) for c in zip(*chunks, strict=True)]

    def columns(self, routes: RouteDictionary, upto: int) -> list[pa.ChunkedArray]:
        """The table's columns, with at least routes ``0 .. upto - 1`` in them."""
        if upto > self.made:
            rows = [_route_row(routes.routes[k]) for k in range(self.made, upto)]
            got = self._arrays(rows)
            self.via = np.concatenate([self.via, got.pop()])
            self.chunks.append(got)
            self.made = upto
            self._joined = None
            if len(self.chunks) > 16:  # few chunks: merged like a binary counter,
                # so a route is copied O(log routes) times over a stream
                tail = self._merge(self.chunks[1:])
                self.chunks = (
                    [self._merge([self.chunks[0], tail])]
                    if len(tail[0]) >= len(self.chunks[0][0])
                    else [self.chunks[0], tail]
                )
        if self._joined is None:
            self._joined = [pa.chunked_array(list(c)) for c in zip(*self.chunks, strict=True)]
        return self._joined


_TABLE_COLUMNS = (
    "prefix",
    "as_path",
    "communities",
    "large_communities",
    "local_pref",
    "med",
    "next_hop",
)


def _route_columns(
    routes: RouteDictionary, route: np.ndarray, dst: bool, text: bool = False
) -> dict[str, Any]:
    """The route fields of one side, per record, by ``take`` from the stream's
    route table (:class:`_RouteTable`). ``text``: the AS path as CSV shows it
    (``65001 {65002,65003}``), not a list."""
    table = routes.extra.get(("arrow_table", text))
    if table is None:
        table = routes.extra[("arrow_table", text)] = _RouteTable(text)
    row = route.astype(np.int64, copy=False) + 1
    cols = table.columns(routes, int(row.max()) if len(row) else 0)
    take = pa.array(row)
    out: dict[str, Any] = {
        "prefix": cols[0].take(take).combine_chunks(),
        "as_path": cols[1].take(take).combine_chunks(),
        "via": table.via[row],
    }
    if dst:
        for k, name in enumerate(_TABLE_COLUMNS[2:], 2):
            out[name] = cols[k].take(take).combine_chunks()
    return out


def answer_arrays(answers: AnswerBatch, path_text: bool = False) -> dict[str, pa.Array]:
    """Every answer column of :data:`attribution.sinks.table.SCHEMA`, by name
    (``path_text``: the AS paths as CSV text)."""
    rec = answers.records
    n = len(rec)
    cols: dict[str, pa.Array] = {
        "router": _names(answers.routers, rec["router"]),
        "override": _names(answers.overrides, rec["override"]),
    }
    for name in ("src_origin_as", "src_peer_as", "dst_origin_as", "dst_peer_as"):
        cols[name] = pa.array(rec[name], pa.uint32())
    prov = rec["provenance"]
    for k, name in enumerate(("src_origin", "src_peer", "dst_origin", "dst_peer")):
        cols[f"{name}_provenance"] = _PROVENANCE.take(pa.array(prov[:, k]))
    for side in ("src", "dst"):
        got = _route_columns(answers.routes, rec[f"{side}_route"], side == "dst", path_text)
        cols[f"{side}_prefix"] = got["prefix"]
        cols[f"{side}_as_path"] = got["as_path"]
        via = got["via"]
        origin = rec[f"{side}_origin_as"]
        cols[f"{side}_via_as"] = pa.array(np.where(via < 0, origin, via).astype(np.uint32))
        if side == "dst":
            for name in _DST_ONLY:
                cols[f"dst_{name}"] = got[name]
    flags = rec["flags"]
    for bit, name in FLAG_NAMES.items():
        cols[name] = pa.array((flags & bit) != 0)
    code: list[str | None] = [None] * n
    message: list[str | None] = [None] * n
    for i, (c, m) in answers.errors.items():
        code[i], message[i] = c, m
    cols["error_code"] = pa.array(code, pa.string())
    cols["error"] = pa.array(message, pa.string())
    return cols


# --------------------------------------------------------------------------- CSV

_CSV_TYPES = (pa.int64(), pa.uint64(), pa.float64(), pa.string(), pa.null())


def _csv_flow(values: list, cell: Any, text: bool = False) -> pa.Array:
    """A flow column as its values are (numbers bare, text quoted); a column Arrow
    cannot type as one of those (mixed types, lists, booleans), or ``text``, as
    ``cell`` text."""
    if not text:
        try:
            arr = pa.array(values)
            if arr.type in _CSV_TYPES:
                return arr
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
            pass
    return pa.array([_text(v, cell) for v in values], pa.string())


def _text(v: Any, cell: Any) -> str | None:
    """``str(cell(v))``, None for None; strings and numbers (the usual times) directly."""
    t = type(v)
    if t is str:
        return v
    if t is float or t is int:
        return str(v)
    return None if v is None else str(cell(v))


def csv_table(
    flows: FlowBatch, answers: AnswerBatch, flow_columns: tuple, answer_columns: tuple, cell: Any
) -> pa.Table:
    """The CSV writer's columns as one Arrow table (pyarrow.csv writes it in C)."""
    arrays = [pa.array(flows.formats, pa.string())]
    # time is a number or a string by format: always text, so that a batch's mix
    # of formats does not change how it is written
    arrays.extend(_csv_flow(flows.column(name), cell, name == "time") for name in flow_columns)
    got = answer_arrays(answers, path_text=True)
    arrays.extend(got[name] for name in answer_columns)
    return pa.Table.from_arrays(arrays, names=["input_format", *flow_columns, *answer_columns])


__all__ = ["answer_arrays", "csv_table"]
