"""The one column layout of stored attributed flows (Parquet files, ClickHouse tables).

JSON output keeps each collector's own field names; a store needs one fixed,
typed schema instead, whatever the input format. :data:`COLUMNS` is it: the
flow fields as :mod:`attribution.flowformats` maps them, then the answer
fields of docs/flow-json.md, then ``src_via_as``/``dst_via_as`` (the AS right
behind the neighbor, as the peering-cost report computes it), so rollups and
reports need no AS-path parsing in SQL. The Arrow types and the ClickHouse types
come from the same list, so the Parquet files and the ClickHouse table cannot
drift apart.

No I/O here: :func:`to_arrow` turns a batch of (record, answer) into an Arrow
table; the writers in this package decide where it goes.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import numpy as np
import pyarrow as pa

from attribution.answers import FLAG_NAMES
from attribution.reports.records import MAX_TS, MIN_TS, RecordError, TimeParser, via_as
from attribution.sinks.columns import COLUMNS, NAMES, U32, U64

# kind -> Arrow type (the ClickHouse types are in attribution.sinks.columns)
ARROW_TYPES: dict[str, pa.DataType] = {
    "time": pa.timestamp("s", tz="UTC"),
    "lc": pa.string(),
    "str": pa.string(),
    "u32": pa.uint32(),
    "u64": pa.uint64(),
    "opt_u32": pa.uint32(),
    "bool": pa.bool_(),
    "path": pa.list_(pa.uint32()),
    "strs": pa.list_(pa.string()),
}
SCHEMA = pa.schema([pa.field(name, ARROW_TYPES[kind]) for name, kind, _ in COLUMNS])
# The low-cardinality columns (routers, exporters, provenances, ...) as Arrow
# dictionaries: indices into a few names instead of a string a row. ClickHouse
# takes them as LowCardinality directly (its Arrow input maps DICTIONARY to
# LowCardinality) instead of hashing every value; Parquet files keep SCHEMA
# (pyarrow would read dictionary columns back as dictionaries).
LC_DICTIONARY = pa.dictionary(pa.int32(), pa.string())
LOW_CARDINALITY = tuple(name for name, kind, _ in COLUMNS if kind == "lc")
DICT_SCHEMA = pa.schema(
    [
        pa.field(name, LC_DICTIONARY if kind == "lc" else ARROW_TYPES[kind])
        for name, kind, _ in COLUMNS
    ]
)


def conform(table: pa.Table, dictionary: bool) -> pa.Table:
    """``table`` (of SCHEMA or DICT_SCHEMA) as DICT_SCHEMA (``dictionary``) or as
    SCHEMA: the same values, each low-cardinality column converted if needed."""
    want = DICT_SCHEMA if dictionary else SCHEMA
    if table.schema.equals(want):
        return table
    cols = []
    for name, field in zip(table.column_names, want, strict=True):
        col = table.column(name)
        if col.type != field.type:
            col = col.dictionary_encode() if dictionary else col.cast(field.type)
            if dictionary and col.type != LC_DICTIONARY:  # an all-null column: typed null
                col = col.cast(LC_DICTIONARY)
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=want)


_FLOW_FIELDS = ("src_addr", "dst_addr", "src_mac", "next_hop")
_FLOW_INTS = (("in_if", U32), ("out_if", U32), ("sampling_rate", U32))
_FLOW_BIG = (("bytes", U64), ("packets", U64))
_ANSWER_STRS = (
    "router",
    "src_origin_provenance",
    "src_peer_provenance",
    "dst_origin_provenance",
    "dst_peer_provenance",
    "src_prefix",
    "dst_prefix",
    "dst_next_hop",
    "override",
    "error_code",
    "error",
)
_ASNS = ("src_origin_as", "src_peer_as", "dst_origin_as", "dst_peer_as")


def _flat_path(path: Any) -> list[int]:
    """An AS path of the flow JSON contract (an AS_SET a nested list) -> its AS numbers."""
    if type(path) is not list:
        return []
    out: list[int] = []
    for hop in path:
        if type(hop) is int:
            out.append(hop)
        elif type(hop) is list:
            out.extend(h for h in hop if type(h) is int)
    return [a for a in out if 0 <= a <= U32]


def _text(v: Any) -> str | None:
    return v if v is None or type(v) is str else str(v)


def _uint(values: Sequence[Any], hi: int, arrow: pa.DataType) -> pa.Array:
    """Integers as Arrow, missing ones 0; a value that is not one in 0..hi (a bad record's) -> 0."""
    try:
        return pa.array(values, arrow).fill_null(0)
    except _ARROW_REFUSED:
        return pa.array([v if type(v) is int and 0 <= v <= hi else 0 for v in values], arrow)


class ArrowBatcher:
    """(record, answer) batches -> Arrow tables of :data:`SCHEMA`.

    ``now`` gives the time for records without a usable one (tests pin it).
    """

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self.parse_time = TimeParser("UTC")
        self.now = now
        self._exporters: dict[Any, str | None] = {}

    def _exporter(self, value: Any) -> str | None:
        """An exporter address in its canonical text (reports match config exporters so)."""
        if type(value) is not str:
            return _text(value)
        norm = self._exporters.get(value)
        if norm is None and value not in self._exporters:
            try:
                norm = ipaddress.ip_address(value).compressed
            except ValueError:
                norm = _text(value)
            if len(self._exporters) < 65536:
                self._exporters[value] = norm
        return norm

    def _exporter_column(self, values: Sequence[Any]) -> pa.Array:
        """:meth:`_exporter` of each value, computed once per distinct value."""
        try:
            distinct = {v: self._exporter(v) for v in set(values)}
        except TypeError:  # an unhashable value (a bad record's): one by one
            return pa.array([self._exporter(v) for v in values], pa.string())
        return pa.array(list(map(distinct.__getitem__, values)), pa.string())

    def _time(self, value: Any, fallback: int) -> int:
        if value is None:
            return fallback
        try:
            ts = self.parse_time(value)
        except RecordError:
            return fallback
        return ts if MIN_TS <= ts < MAX_TS else fallback

    def table(
        self,
        flows: Sequence[dict[str, Any]],
        answers: Sequence[dict[str, Any]],
        formats: Sequence[str],
    ) -> pa.Table:
        """From flow dicts and answer dicts (convert.columns_to_answers' shape)."""
        if not flows:
            return SCHEMA.empty_table()
        try:  # every answer dict has every key (convert.error_answer / _answer_json)
            rows = map(itemgetter(*_ANSWER_KEYS), answers)
            a = dict(zip(_ANSWER_KEYS, zip(*rows, strict=True), strict=True))
        except KeyError:
            a = {k: [x.get(k) for x in answers] for k in _ANSWER_KEYS}
        return self.from_columns(
            len(flows), lambda name: [f.get(name) for f in flows], formats, a.__getitem__
        )

    def from_columns(
        self,
        n: int,
        flow: Callable[[str], Sequence[Any]],
        formats: Sequence[str],
        answer: Callable[[str], Sequence[Any]],
    ) -> pa.Table:
        """One Arrow table from column getters: ``flow(name)`` for the flow fields,
        ``answer(name)`` for the answer fields of docs/flow-json.md, each a value per
        record in order. A value of the wrong type or range is stored as 0/null,
        never raised: each column is first handed to Arrow whole (C speed); only a
        column that Arrow refuses (a bad record's field) is cleaned value by value.
        """
        if not n:
            return SCHEMA.empty_table()
        a = _Columns(answer)
        cols = self.flow_arrays(n, flow, formats)
        for name in _ANSWER_STRS:
            cols[name] = _strings(a[name])
        for name in _ASNS:
            cols[name] = _uint(a[name], U32, pa.uint32())
        for side in ("src", "dst"):
            paths = a[f"{side}_as_path"]
            cols[f"{side}_as_path"] = _paths(paths)
            cols[f"{side}_via_as"] = _uint(
                [via_as(p, o) for p, o in zip(paths, a[f"{side}_origin_as"], strict=True)],
                U32,
                pa.uint32(),
            )
        for name in ("dst_communities", "dst_large_communities"):
            try:
                cols[name] = pa.array(a[name], _STRS)
            except _ARROW_REFUSED:
                cols[name] = pa.array(
                    [[_text(c) for c in v] if type(v) is list else [] for v in a[name]], _STRS
                )
        for name in ("dst_local_pref", "dst_med"):
            try:
                cols[name] = pa.array(a[name], pa.uint32())
            except _ARROW_REFUSED:
                cols[name] = pa.array(
                    [v if type(v) is int and 0 <= v <= U32 else None for v in a[name]],
                    pa.uint32(),
                )
        for name in FLAG_NAMES.values():
            try:
                cols[name] = pa.array(a[name], pa.bool_()).fill_null(False)
            except _ARROW_REFUSED:
                cols[name] = pa.array([bool(v) for v in a[name]], pa.bool_())
        return pa.Table.from_arrays([cols[n] for n in NAMES], schema=SCHEMA)

    def flow_arrays(
        self, n: int, flow: Callable[[str], Sequence[Any]], formats: Sequence[str]
    ) -> dict[str, pa.Array]:
        """The flow columns of :data:`SCHEMA` (time, input_format, exporter, ...)."""
        fallback = int(self.now())
        cols: dict[str, pa.Array] = {}
        when = self._time
        times = flow("time")
        seconds = _seconds(times)
        if seconds is None:
            seconds = pa.array(
                [
                    int(v) if type(v) in _NUMBERS and MIN_TS <= v < MAX_TS else when(v, fallback)
                    for v in times
                ],
                pa.int64(),
            )
        cols["time"] = seconds.cast(SCHEMA.field("time").type)
        cols["input_format"] = _strings(formats)
        cols["exporter"] = self._exporter_column(flow("exporter"))
        for name in _FLOW_FIELDS:
            cols[name] = _strings(flow(name))
        for name, hi in _FLOW_INTS:
            cols[name] = _uint(flow(name), hi, pa.uint32())
        for name, hi in _FLOW_BIG:
            cols[name] = _uint(flow(name), hi, pa.uint64())
        return cols

    def from_arrays(
        self,
        n: int,
        flow: Callable[[str], Sequence[Any]],
        formats: Sequence[str],
        answers: dict[str, pa.Array],
    ) -> pa.Table:
        """As :meth:`from_columns`, the answer columns already Arrow arrays of
        :data:`SCHEMA`'s types (attribution.enrich_arrow.answer_arrays)."""
        if not n:
            return SCHEMA.empty_table()
        return self.from_flow_arrays(self.flow_arrays(n, flow, formats), answers)

    @staticmethod
    def from_flow_arrays(
        flows: dict[str, pa.Array], answers: dict[str, pa.Array], dictionary: bool = False
    ) -> pa.Table:
        """One table of :data:`SCHEMA` (``dictionary``: :data:`DICT_SCHEMA`) from
        its flow columns and its answer columns, all Arrow arrays of its types,
        by name."""
        cols = {**flows, **answers}
        schema = DICT_SCHEMA if dictionary else SCHEMA
        return pa.Table.from_arrays([cols[n] for n in NAMES], schema=schema)


class _Columns:
    """Answer columns fetched once each from a getter (AS numbers serve two columns)."""

    def __init__(self, get: Callable[[str], Sequence[Any]]) -> None:
        self.get = get
        self.cache: dict[str, Sequence[Any]] = {}

    def __getitem__(self, name: str) -> Sequence[Any]:
        col = self.cache.get(name)
        if col is None:
            col = self.cache[name] = self.get(name)
        return col


_NUMBERS = (int, float)
_STRS = pa.list_(pa.string())
_PATH = pa.list_(pa.uint32())
_ARROW_REFUSED = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError)
_ANSWER_KEYS = (
    *_ANSWER_STRS,
    *_ASNS,
    "src_as_path",
    "dst_as_path",
    "dst_communities",
    "dst_large_communities",
    "dst_local_pref",
    "dst_med",
    *FLAG_NAMES.values(),
)


def _seconds(values: Sequence[Any]) -> pa.Array | None:
    """Unix times that are all numbers in range, truncated as ``int()`` does, in
    C; None when any is not (then each is parsed on its own)."""
    if not values or not set(map(type, values)) <= {int, float}:
        return None
    got = np.array(values, dtype=np.float64)
    if not ((got >= MIN_TS) & (got < MAX_TS)).all():
        return None
    return pa.array(got.astype(np.int64))  # in range (< 2**53): exact; floats truncated


def _strings(values: Sequence[Any]) -> pa.Array:
    try:
        return pa.array(values, pa.string())
    except _ARROW_REFUSED:
        return pa.array([_text(v) for v in values], pa.string())


def _paths(values: Sequence[Any]) -> pa.Array:
    """AS paths; one with an AS_SET (a nested list) makes Arrow refuse: then flattened."""
    try:
        return pa.array(values, _PATH).fill_null([])
    except _ARROW_REFUSED:
        return pa.array([_flat_path(v) for v in values], _PATH)
