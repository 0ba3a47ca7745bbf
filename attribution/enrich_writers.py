"""Where `attribution enrich` writes attributed records: the writer interface and
its JSON lines and CSV writers (to stdout; the stores of attribution.sinks,
``--output``, through :class:`SinkWriter`).

A writer gets each batch as two column sets in input order: the records
(:class:`attribution.enrich_records.FlowBatch`: each record's own JSON text,
its flow fields, format, file and line) and their answers
(:class:`attribution.enrich_wire.AnswerBatch`: ``json_parts()``, ``dicts()``,
``column(name)`` for any of ``ANSWER_FIELDS``, or the packed numpy
``records``). Formats to stdout register in :data:`OUTPUTS` under their
``--output-format`` name.
"""

from __future__ import annotations

import csv
import errno
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, NamedTuple, Protocol

from attribution import enrich_csv, enrich_wire
from attribution.answers import FLAG_NAMES
from attribution.enrich_decode import ROUTE_COLUMNS
from attribution.enrich_records import FLOW_FIELDS, FlowBatch
from attribution.enrich_wire import AnswerBatch

# The flag columns as first shipped keep their place; every other flag of the
# proto (answers.FLAG_NAMES) follows the error columns, so a flag added to the
# proto is a column added at the end and readers by position keep working.
_FIRST_FLAGS = ("src_unrouted", "src_asymmetric", "src_stale", "dst_stale", "fallback")
CSV_FLAG_COLUMNS = tuple(f for f in FLAG_NAMES.values() if f in _FIRST_FLAGS)
CSV_ANSWER_COLUMNS = (
    *ROUTE_COLUMNS,
    "override",
    *CSV_FLAG_COLUMNS,
    "error_code",
    "error",
    *(f for f in FLAG_NAMES.values() if f not in _FIRST_FLAGS),
)
CSV_FLOW_COLUMNS = ("time", *(f for f in FLOW_FIELDS if f != "time"))
CSV_COLUMNS = ("input_format", *CSV_FLOW_COLUMNS, *CSV_ANSWER_COLUMNS)


class Writer(Protocol):
    """An output of `attribution enrich`. ``write`` gets every batch in input
    order; ``close`` is called once at the end, also when the run fails."""

    def write(self, flows: FlowBatch, answers: AnswerBatch) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Output:
    """An ``--output-format`` (to stdout): what it is, and how to make its writer."""

    help: str
    make: Callable[[IO[bytes]], Writer]


class _Synced:
    """Rows written to a file object and flushed (``rows``), and how many of them
    are durable (``durable_rows``: an fsync of its descriptor; a pipe or a
    terminal cannot be synced: flushed to it is all there is)."""

    out: IO[bytes]
    rows = 0
    _can_sync = True

    def durable_rows(self) -> int:
        rows = self.rows  # flushed before counted: all of these are in the kernel
        if self._can_sync:
            try:
                os.fsync(self.out.fileno())
            except (OSError, ValueError, AttributeError) as exc:
                if isinstance(exc, OSError) and exc.errno not in (errno.EINVAL, errno.ENOTSUP):
                    raise
                self._can_sync = False  # a pipe, a terminal, or in memory
        return rows


class JsonWriter(_Synced):
    """One JSON object per line: the record's own fields, then the answer fields
    (an input field named like an answer field is replaced)."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out

    def write(self, flows: FlowBatch, answers: AnswerBatch) -> None:
        # each record's text without its closing brace, then its answer: one write a batch
        if enrich_wire.JSON_COMPILED is not None:  # texts copied once, from their chunks
            self.out.write(answers.json_lines(*flows.texts()))
        else:
            self.out.write(answers.json_lines(flows.raw))
        self.out.flush()
        self.rows += len(flows)

    def close(self) -> None:
        self.out.flush()


_PLAIN = (str, int, float, type(None))


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return " ".join(
            "{" + ",".join(map(str, v)) + "}" if isinstance(v, list) else str(v) for v in value
        )
    return value


class CsvWriter(_Synced):
    """:data:`CSV_COLUMNS`: the input format, the flow fields as mapped, the answer fields.

    With pyarrow installed (the ``parquet``/``clickhouse`` extras) the rows
    are pyarrow.csv's bytes (text values quoted, numbers and booleans bare):
    assembled in C (:mod:`attribution.enrich_csv`) for batches the compiled
    reader took whole, else the columns go to Arrow and ``pyarrow.csv`` writes
    them (``compiled=False``: always so, the reference); without pyarrow,
    Python's csv module writes the same values row by row (quoted only where
    needed), about 3x slower.
    """

    def __init__(
        self,
        out: IO[bytes],
        arrow: bool | None = None,
        compiled: bool | None = None,
        header: bool = True,
    ) -> None:
        self.out = out
        if arrow is None:
            try:
                import pyarrow.csv  # noqa: F401
            except ImportError:
                arrow = False
            else:
                arrow = True
        self.arrow = arrow
        supported = enrich_csv.supports(CSV_FLOW_COLUMNS, CSV_ANSWER_COLUMNS)
        self.compiled = arrow and supported and compiled is not False
        if header:  # not when a resumed run appends to its own earlier output
            out.write(self.header())
        if arrow:
            import pyarrow.csv as pacsv

            self.options = pacsv.WriteOptions(include_header=False)
            self.write_csv = pacsv.write_csv
        else:
            self.text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
            self.csv = csv.writer(self.text, lineterminator="\n")
        out.flush()

    @staticmethod
    def header() -> bytes:
        return ",".join(CSV_COLUMNS).encode() + b"\n"

    def write(self, flows: FlowBatch, answers: AnswerBatch) -> None:
        if self.compiled:
            lines = enrich_csv.csv_lines(flows, answers, CSV_ANSWER_COLUMNS, _cell)
            if lines is not None:
                self.out.write(lines)
                self.out.flush()
                self.rows += len(flows)
                return
        if self.arrow:
            from attribution.enrich_arrow import csv_table

            table = csv_table(flows, answers, CSV_FLOW_COLUMNS, CSV_ANSWER_COLUMNS, _cell)
            self.write_csv(table, self.out, self.options)
            self.out.flush()
            self.rows += len(flows)
            return
        columns: list[list] = [flows.formats]
        for name in CSV_FLOW_COLUMNS:
            col = flows.column(name)
            if any(type(v) not in _PLAIN or type(v) is bool for v in col):
                col = [_cell(v) for v in col]
            columns.append(col)
        path = answers.routes.csv_path
        for name in CSV_ANSWER_COLUMNS:
            if name.endswith("_as_path"):
                col = [path(k) for k in answers.records[f"{name[:3]}_route"].tolist()]
            else:
                col = answers.column(name)
                if col and type(col[0]) is bool:
                    col = ["true" if v else "false" for v in col]
            columns.append(col)
        self.csv.writerows(zip(*columns, strict=True))
        self.text.flush()
        self.rows += len(flows)

    def close(self) -> None:
        self.out.flush()


class Record(NamedTuple):
    """One record as attribution.sinks reads it (``fmt``, ``flow``)."""

    where: str  # file:line
    fmt: str
    original: dict | None
    flow: dict


class SinkWriter:
    """A store of attribution.sinks (its ``batcher`` makes Arrow tables,
    ``write_table``, ``flush``, ``close``) as a Writer."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.rows = 0  # rows given to the sink

    def durable_rows(self) -> int:
        """Rows the store holds for good (inserted, or in a closed Parquet part)."""
        return self.sink.durable_rows()

    def write(self, flows: FlowBatch, answers: AnswerBatch) -> None:
        # columns to Arrow directly (no dict per record; the flow columns from the
        # records' texts in C when the compiled reader took the whole batch)
        from attribution.enrich_arrow import store_table

        table = store_table(
            self.sink.batcher, flows, answers, getattr(self.sink, "dictionary", False)
        )
        self.sink.write_table(table)
        self.rows += table.num_rows
        self.sink.flush()

    def close(self) -> None:
        self.sink.close()


OUTPUTS: dict[str, Output] = {
    "json": Output(
        "one object per line: the input's fields then the answer fields (docs/flow-json.md)",
        JsonWriter,
    ),
    "csv": Output("a header and the columns " + ", ".join(CSV_COLUMNS), CsvWriter),
}


__all__ = [
    "CSV_COLUMNS",
    "OUTPUTS",
    "CsvWriter",
    "JsonWriter",
    "Output",
    "Record",
    "SinkWriter",
    "Writer",
]
