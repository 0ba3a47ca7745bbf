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

Arrays are made from buffers (numpy's, or those of attribution._enrich_columns),
never by ``pa.array`` on the compiled path: ``pa.array`` imports pandas the
first time it runs (~0.35 CPU-s of start-up, only to ask whether a value is a
pandas object). The flow columns of a batch the compiled reader took whole
come from its texts in C (:func:`compiled_flows`), not from rows.
"""

from __future__ import annotations

import time
from itertools import chain
from typing import Any

import numpy as np
import pyarrow as pa

from attribution.answers import FLAG_NAMES, PROVENANCE_NAMES
from attribution.enrich_records import FlowBatch
from attribution.enrich_wire import AnswerBatch, RouteDictionary, csv_path
from attribution.reports.records import via_as
from attribution.v1 import attribution_pb2 as pb

try:  # flow columns and string buffers in C (built where a C compiler was)
    from attribution import _enrich_columns as COLUMNS
except ImportError:
    COLUMNS = None  # type: ignore[assignment]

# --------------------------------------------------------------------------- arrays from buffers


_NUMPY = {
    pa.uint8(): np.uint8,
    pa.int32(): np.int32,
    pa.uint32(): np.uint32,
    pa.int64(): np.int64,
    pa.uint64(): np.uint64,
}


def _num(values: np.ndarray, typ: pa.DataType, valid: np.ndarray | None = None) -> pa.Array:
    """A numpy column as an Arrow array of ``typ`` (the same width), null where
    ``valid`` is False."""
    values = np.ascontiguousarray(values, dtype=_NUMPY[typ])
    n = len(values)
    if valid is None or valid.all():
        return pa.Array.from_buffers(typ, n, [None, pa.py_buffer(values)], null_count=0)
    bits = np.packbits(valid, bitorder="little")
    nulls = n - int(np.count_nonzero(valid))
    return pa.Array.from_buffers(
        typ, n, [pa.py_buffer(bits), pa.py_buffer(values)], null_count=nulls
    )


def _bools(values: np.ndarray) -> pa.Array:
    bits = np.packbits(np.ascontiguousarray(values, dtype=bool), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)], null_count=0)


def _from_text(buffers: tuple) -> pa.Array:
    """attribution._enrich_columns' string buffers (validity, offsets, data, nulls)."""
    valid, offsets, data, nulls = buffers
    n = len(offsets) // 4 - 1
    return pa.Array.from_buffers(
        pa.string(),
        n,
        [None if valid is None else pa.py_buffer(valid), pa.py_buffer(offsets), pa.py_buffer(data)],
        null_count=nulls,
    )


def _strings(values: list) -> pa.Array:
    """A list of str or None as an Arrow string array."""
    if COLUMNS is None:
        return pa.array(values, pa.string())
    return _from_text(COLUMNS.strings(values))


def _lists(lengths: list[int], child: pa.Array, typ: pa.DataType) -> pa.Array:
    """A list array of ``len(lengths)`` lists over ``child`` (no nulls)."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.Array.from_buffers(
        typ, len(lengths), [None, pa.py_buffer(offsets)], null_count=0, children=[child]
    )


_PROVENANCE = _strings([PROVENANCE_NAMES.get(i, "none") for i in range(256)])
# the same as a dictionary of the distinct names: a provenance byte's index in it
_PROVENANCE_NAMES = sorted(set(PROVENANCE_NAMES.values()) | {"none"})
_PROVENANCE_INDEX = np.array(
    [_PROVENANCE_NAMES.index(PROVENANCE_NAMES.get(i, "none")) for i in range(256)], np.int32
)
_PROVENANCE_DICT = _strings(_PROVENANCE_NAMES)
_PATH = pa.list_(pa.uint32())
_STRS = pa.list_(pa.string())
_DST_ONLY = ("communities", "large_communities", "local_pref", "med", "next_hop")


_LC = pa.dictionary(pa.int32(), pa.string())  # attribution.sinks.table.LC_DICTIONARY


def _names(names: list, index: np.ndarray, dictionary: bool = False) -> pa.Array:
    """``names[index]``, null where index < 0 (``dictionary``: as an Arrow
    dictionary of ``names``, no string copied a row)."""
    if not names:
        return pa.nulls(len(index), _LC if dictionary else pa.string())
    idx = _num(index, pa.int32(), index >= 0)
    if not dictionary:
        return _strings(names).take(idx)
    if len(set(names)) != len(names) or None in names:  # a dictionary's values are distinct
        return _strings(names).take(idx).dictionary_encode()
    return pa.DictionaryArray.from_arrays(idx, _strings(names))


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
        self._joined: list[pa.Array] | None = None

    def _arrays(self, rows: list[tuple]) -> list[pa.Array]:
        cols = list(zip(*rows, strict=True))
        if self.text:
            path = _strings([csv_path(p) for p in cols[8]])
        else:
            flat = np.fromiter(chain.from_iterable(cols[1]), dtype=np.uint32)
            path = _lists(list(map(len, cols[1])), _num(flat, pa.uint32()), _PATH)
        return [
            _strings(list(cols[0])),
            path,
            _lists(list(map(len, cols[3])), _strings(list(chain.from_iterable(cols[3]))), _STRS),
            _lists(list(map(len, cols[4])), _strings(list(chain.from_iterable(cols[4]))), _STRS),
            _optional_u32(cols[5]),
            _optional_u32(cols[6]),
            _strings(list(cols[7])),
            np.asarray(cols[2], dtype=np.int64),
        ]

    @staticmethod
    def _merge(chunks: list[list[pa.Array]]) -> list[pa.Array]:
        return [pa.concat_arrays(list(c)) for c in zip(*chunks, strict=True)]

    def columns(self, routes: RouteDictionary, upto: int) -> list[pa.Array]:
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
        if self._joined is None:  # one array a column: pyarrow's take over a chunked
            # array concatenates its chunks first, at every take (~1 ms a column of
            # 200 k routes); here that is done once, when routes were added
            self._joined = [pa.concat_arrays(list(c)) for c in zip(*self.chunks, strict=True)]
        return self._joined


def _optional_u32(values: tuple) -> pa.Array:
    """Integers 0 .. 2**32 - 1 or None (a route's local pref, MED) as uint32."""
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    got = np.fromiter((0 if v is None else v for v in values), dtype=np.uint32, count=len(values))
    return _num(got, pa.uint32(), valid)


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
    take = _num(row, pa.int64())
    out: dict[str, Any] = {
        "prefix": cols[0].take(take),
        "as_path": cols[1].take(take),
        "via": table.via[row],
    }
    if dst:
        for k, name in enumerate(_TABLE_COLUMNS[2:], 2):
            out[name] = cols[k].take(take)
    return out


def answer_arrays(
    answers: AnswerBatch, path_text: bool = False, dictionary: bool = False
) -> dict[str, pa.Array]:
    """Every answer column of :data:`attribution.sinks.table.SCHEMA`, by name
    (``path_text``: the AS paths as CSV text; ``dictionary``: the
    low-cardinality ones as Arrow dictionaries, as in ``DICT_SCHEMA``)."""
    rec = answers.records
    n = len(rec)
    cols: dict[str, pa.Array] = {
        "router": _names(answers.routers, rec["router"], dictionary),
        "override": _names(answers.overrides, rec["override"], dictionary),
    }
    for name in ("src_origin_as", "src_peer_as", "dst_origin_as", "dst_peer_as"):
        cols[name] = _num(rec[name], pa.uint32())
    prov = rec["provenance"]
    for k, name in enumerate(("src_origin", "src_peer", "dst_origin", "dst_peer")):
        if dictionary:
            idx = _num(_PROVENANCE_INDEX[prov[:, k]], pa.int32())
            cols[f"{name}_provenance"] = pa.DictionaryArray.from_arrays(idx, _PROVENANCE_DICT)
        else:
            cols[f"{name}_provenance"] = _PROVENANCE.take(_num(prov[:, k], pa.uint8()))
    for side in ("src", "dst"):
        got = _route_columns(answers.routes, rec[f"{side}_route"], side == "dst", path_text)
        cols[f"{side}_prefix"] = got["prefix"]
        cols[f"{side}_as_path"] = got["as_path"]
        via = got["via"]
        origin = rec[f"{side}_origin_as"]
        cols[f"{side}_via_as"] = _num(np.where(via < 0, origin, via), pa.uint32())
        if side == "dst":
            for name in _DST_ONLY:
                cols[f"dst_{name}"] = got[name]
    flags = rec["flags"]
    for bit, name in FLAG_NAMES.items():
        cols[name] = _bools((flags & bit) != 0)
    if not answers.errors:  # the usual batch: no string built a row
        cols["error_code"] = pa.nulls(n, _LC if dictionary else pa.string())
        cols["error"] = pa.nulls(n, pa.string())
        return cols
    code: list[str | None] = [None] * n
    message: list[str | None] = [None] * n
    for i, (c, m) in answers.errors.items():
        code[i], message[i] = c, m
    cols["error_code"] = _strings(code)
    if dictionary:
        cols["error_code"] = cols["error_code"].dictionary_encode()
    cols["error"] = _strings(message)
    return cols


# --------------------------------------------------------------------------- flow columns in C


def compiled_flows(flows: FlowBatch, csv: bool = False, now: Any = time.time) -> dict | None:
    """The flow columns of a batch the compiled reader took whole, from its
    texts in C (attribution._enrich_columns.flow_columns), or None: then the
    rows are made and the columns from them. ``now``: the time of records
    without a usable one (:class:`attribution.sinks.table.ArrowBatcher`'s)."""
    if COLUMNS is None or flows.packed is None or not len(flows):
        return None
    rows = flows.python_rows()
    if rows.count(None) != len(rows):  # some taken by the Python reader, or rows made
        return None
    from attribution.reports.records import MAX_TS, MIN_TS

    fields = flows.packed.field_table(len(flows))
    if fields is None:  # read without them (read_batches' fields=False)
        return None
    raw, spans, chunks = flows.texts()
    return COLUMNS.flow_columns(
        raw, spans, chunks or [], flows.formats, csv, int(now()), MIN_TS, MAX_TS, fields
    )


_FORMATS = _strings(list(COLUMNS.FORMATS)) if COLUMNS is not None else None


def _format_column(got: dict, dictionary: bool = False) -> pa.Array:
    """Each record's input format, by ``take`` from the three names
    (``dictionary``: an Arrow dictionary of them)."""
    index = np.frombuffer(got["format"], np.uint8)
    if dictionary:
        return pa.DictionaryArray.from_arrays(_num(index, pa.int32()), _FORMATS)
    return _FORMATS.take(_num(index, pa.uint8()))


def _int64(got: dict, name: str) -> np.ndarray:
    return np.frombuffer(got[name], dtype=np.int64)


def store_flows(
    batcher: Any, got: dict, formats: list[str], dictionary: bool = False
) -> dict[str, pa.Array]:
    """:meth:`attribution.sinks.table.ArrowBatcher.flow_arrays` of the columns
    :func:`compiled_flows` made: the same values (times in range as whole
    seconds, else the time of writing; exporters canonical; counters out of
    range 0). ``dictionary``: the input format and the exporter as Arrow
    dictionaries (``DICT_SCHEMA``)."""
    from attribution.reports.records import MAX_TS, MIN_TS
    from attribution.sinks.table import SCHEMA

    n = got["n"]
    times = got["times"]
    if times is None:  # goflow2's: made in C (whole seconds, or the time of writing)
        seconds = _int64(got, "time_s")
    else:
        fallback = int(batcher.now())
        when = batcher._time
        number = (int, float)
        done = {
            v: int(v) if type(v) in number and MIN_TS <= v < MAX_TS else when(v, fallback)
            for v in set(times)
        }
        seconds = np.fromiter(map(done.__getitem__, times), dtype=np.int64, count=n)
    cols = {
        "time": pa.Array.from_buffers(
            SCHEMA.field("time").type, n, [None, pa.py_buffer(seconds)], null_count=0
        ),
        "input_format": _format_column(got, dictionary),
    }
    index = np.frombuffer(got["exporter_index"], dtype=np.int32)
    canon = [batcher._exporter(t) for t in got["exporters"]]
    cols["exporter"] = _names(canon, index, dictionary)
    for name in ("src_addr", "dst_addr", "src_mac", "next_hop"):
        cols[name] = _from_text(got[name])
    for name in ("in_if", "out_if"):
        cols[name] = _num(np.frombuffer(got[name], dtype=np.uint32), pa.uint32())
    rate = _int64(got, "sampling_rate")
    cols["sampling_rate"] = _num(np.where((rate >= 0) & (rate <= 0xFFFFFFFF), rate, 0), pa.uint32())
    for name in ("bytes", "packets"):
        v = _int64(got, name)
        cols[name] = _num(np.where(v >= 0, v, 0), pa.uint64())
    return cols


def store_table(
    batcher: Any, flows: FlowBatch, answers: AnswerBatch, dictionary: bool = False
) -> pa.Table:
    """A batch as a table of :data:`attribution.sinks.table.SCHEMA` (``dictionary``:
    ``DICT_SCHEMA``, the low-cardinality columns as Arrow dictionaries, for
    ClickHouse): its flow columns from the records' texts in C when the
    compiled reader took it whole, else from its rows; its answer columns
    from the packed answers."""
    got = compiled_flows(flows, now=batcher.now)
    if got is None:  # (the rows' way, not the hot path: converted as any table is)
        from attribution.sinks.table import conform

        table = batcher.from_arrays(len(flows), flows.column, flows.formats, answer_arrays(answers))
        return conform(table, dictionary)
    return batcher.from_flow_arrays(
        store_flows(batcher, got, flows.formats, dictionary),
        answer_arrays(answers, dictionary=dictionary),
        dictionary,
    )


def _csv_flows(got: dict, formats: list[str], cell: Any) -> dict[str, pa.Array]:
    """The CSV writer's flow columns (:func:`_csv_flow` of each row column) of
    the columns :func:`compiled_flows` made: text as written, integers as
    int64, time as its row's text."""
    n = got["n"]
    if "time_text" in got:
        when = _from_text(got["time_text"])
    else:
        when = _strings([_text(v, cell) for v in got["times"]])
    index = _num(np.frombuffer(got["exporter_index"], dtype=np.int32), pa.int32())
    cols = {
        "time": when,
        "exporter": _strings(got["exporters"]).take(index),
    }
    for name in ("src_addr", "dst_addr", "src_mac", "next_hop"):
        text = got[name]
        # a column of nulls only is typed null, as pa.array types a list of None
        cols[name] = pa.nulls(n) if text[3] == n else _from_text(text)
    for name in ("in_if", "out_if"):
        cols[name] = _num(np.frombuffer(got[name], dtype=np.uint32), pa.int64())
    for name in ("bytes", "packets", "sampling_rate"):
        cols[name] = _num(_int64(got, name), pa.int64())
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
    got = compiled_flows(flows, csv=True)
    if got is not None:
        arrays = [_format_column(got)]
        made = _csv_flows(got, flows.formats, cell)
        arrays.extend(made[name] for name in flow_columns)
    else:
        arrays = [pa.array(flows.formats, pa.string())]
        # time is a number or a string by format: always text, so that a batch's
        # mix of formats does not change how it is written
        arrays.extend(_csv_flow(flows.column(name), cell, name == "time") for name in flow_columns)
    answer = answer_arrays(answers, path_text=True)
    arrays.extend(answer[name] for name in answer_columns)
    return pa.Table.from_arrays(arrays, names=["input_format", *flow_columns, *answer_columns])


__all__ = ["answer_arrays", "compiled_flows", "csv_table", "store_flows", "store_table"]
