"""`attribution enrich`: collector records in, the same records plus the attribution out.

Three stages, each bounded:

- a reader thread turns lines (stdin, files, or a followed file) into
  records through :mod:`attribution.flowformats`, and cuts them into batches;
  a batch is sent when full, or as soon as the input goes quiet, so a slow
  trickle of flows is answered within a second, not when a batch fills;
- the batches go over one ``ResolveStream`` (packed records, routes sent once
  per stream: the fastest answer shape), at most ``max_in_flight`` at once;
- the main thread merges each reply with its records and writes them, in input
  order, as JSON lines (original fields + answer fields) or CSV (:data:`CSV_COLUMNS`).

Memory is at most (read-ahead queue + in flight + 1) batches. A record that
cannot be read (not JSON, unknown format, a required field missing) is counted
by reason, reported with its file and line, and left out; a record the
service cannot answer (bad address, unknown exporter) is written with its
``error``/``error_code`` and counted too. Neither ever stops the run.
"""

from __future__ import annotations

import csv
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import IO, Any, NamedTuple

import orjson

from attribution.balancing import FailoverStats
from attribution.client import Balancing, Connection, resolve_flow_batches
from attribution.enrich_sources import IDLE, MAX_LINE, Line, follow, read_fd
from attribution.flowformats import FORMATS, MAPPINGS, ObjectSplitter, detect, is_marker
from attribution.reports.records import RecordError
from ribd.checks import MAX_DEPTH, too_deep

CSV_COLUMNS = (
    "input_format",
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
    "override",
    "src_unrouted",
    "src_asymmetric",
    "src_stale",
    "dst_stale",
    "fallback",
    "error_code",
    "error",
)


# --------------------------------------------------------------------------- records


@dataclass
class Counters:
    """What a run did; printed at the end, written as JSON with ``--stats``."""

    read: int = 0
    enriched: int = 0
    written: int = 0
    bad: dict[str, int] = field(default_factory=dict)
    formats: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    echo: Callable[[str], None] | None = None
    echo_per_reason: int = 10
    keep: int = 100
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    failover: FailoverStats = field(default_factory=FailoverStats)  # replicas lost mid-run

    def add_bad(self, reason: str, where: str, message: str) -> None:
        with self.lock:  # the reader thread and the writer both count
            n = self.bad.get(reason, 0) + 1
            self.bad[reason] = n
        text = f"{where}: {reason}: {message}"
        if len(self.examples) < self.keep:
            self.examples.append(text)
        if self.echo is not None and n <= self.echo_per_reason:
            self.echo(f"bad record: {text}")
            if n == self.echo_per_reason:
                self.echo(f"bad record: more {reason} records are counted, not shown")

    def as_json(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "enriched": self.enriched,
            "written": self.written,
            "bad": dict(sorted(self.bad.items())),
            "bad_total": sum(self.bad.values()),
            "formats": dict(sorted(self.formats.items())),
            "examples": self.examples,
            "failover": self.failover.as_json(),
        }

    def summary(self) -> str:
        formats = ", ".join(f"{k} {v}" for k, v in sorted(self.formats.items())) or "none"
        bad = ", ".join(f"{k} {v}" for k, v in sorted(self.bad.items())) or "none"
        text = (
            f"read {self.read} records ({formats}); enriched {self.enriched}; "
            f"written {self.written}; bad {sum(self.bad.values())} ({bad})"
        )
        if self.failover.streams_failed:
            text += f"; failover: {self.failover.summary()}"
        return text


class Record(NamedTuple):
    where: str  # file:line
    fmt: str
    original: dict[str, Any]
    flow: dict[str, Any]


def records(
    lines: Iterator[Line | None], fmt: str | None, counters: Counters
) -> Iterator[Record | None]:
    """Lines -> records in the given format, or each line's own (auto-detected).

    Bad ones are counted and skipped; IDLE passes through.
    """
    splitters: dict[str, ObjectSplitter] = {}
    for line in lines:
        if line is IDLE:
            yield IDLE
            continue
        where = f"{'stdin' if line.source == '-' else line.source}:{line.number}"
        if line.text is None:
            counters.read += 1
            counters.add_bad("too_long", where, f"line longer than {MAX_LINE} bytes")
            continue
        split = splitters.get(line.source)
        if split is None:
            split = splitters[line.source] = ObjectSplitter()
        done = split.feed(line.number, line.text)
        if done is None:
            continue
        number, text = done
        where = f"{'stdin' if line.source == '-' else line.source}:{number}"
        record = parse_record(text, fmt, where, counters)
        if record is not None:
            yield record
    for source, split in splitters.items():
        done = split.flush()
        if done is not None:
            record = parse_record(done[1], fmt, f"{source}:{done[0]}", counters)
            if record is not None:
                yield record


def parse_record(text: bytes, fmt: str | None, where: str, counters: Counters) -> Record | None:
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        counters.read += 1
        counters.add_bad("bad_json", where, f"not JSON ({exc})")
        return None
    if type(obj) is not dict:
        counters.read += 1
        counters.add_bad("bad_record", where, f"expected a JSON object, got {type(obj).__name__}")
        return None
    kind = fmt or detect(obj)
    if kind is not None and is_marker(kind, obj):
        return None
    counters.read += 1
    if kind is None:
        keys = ", ".join(list(obj)[:6])
        counters.add_bad("unknown_format", where, f"no known format has these fields: {keys}")
        return None
    counters.formats[kind] = counters.formats.get(kind, 0) + 1
    if too_deep(obj):
        counters.add_bad("bad_record", where, f"nested deeper than {MAX_DEPTH}")
        return None
    try:
        flow = MAPPINGS[kind](obj)
    except RecordError as exc:
        counters.add_bad("bad_record", where, f"{kind}: {exc}")
        return None
    return Record(where, kind, obj, flow)


def batches(items: Iterator[Record | None], size: int) -> Iterator[list[Record]]:
    """Full batches, and the partial one whenever the input goes quiet or ends."""
    batch: list[Record] = []
    for item in items:
        if item is IDLE:
            if batch:
                yield batch
                batch = []
            continue
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# --------------------------------------------------------------------------- resolving


def resolve_batches(
    target: Connection | str,
    source: Iterator[list[Record]],
    *,
    max_in_flight: int = 4,
    read_ahead: int = 4,
    stream_idle: float = 60.0,
    balancing: Balancing | None = None,
) -> Iterator[tuple[list[Record], list[dict]]]:
    """(batch, answers) in input order, over ResolveStreams (attribution.client).

    ``source`` is drained by a thread ``read_ahead`` batches ahead of those on
    the wire; at most ``max_in_flight`` batches are on the wire unanswered. A
    stream with nothing to send for ``stream_idle`` seconds is closed and the
    next batch opens a new one: the service cuts streams idle longer than its
    ``[api] stream_idle_timeout``, and a followed file may be quiet for hours.
    Several replicas in the target: batches are spread over them, and a batch
    whose replica dies is answered by another (``balancing.stats`` counts it).
    """
    bal = replace(
        balancing or Balancing(),
        max_in_flight=max_in_flight,
        read_ahead=read_ahead,
        stream_idle=stream_idle,
    )
    yield from resolve_flow_batches(target, source, lambda b: [r.flow for r in b], bal)


# --------------------------------------------------------------------------- writers


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


class JsonWriter:
    def __init__(self, out: IO[bytes]) -> None:
        self.out = out

    def write(self, record: Record, answer: dict) -> None:
        self.out.write(orjson.dumps({**record.original, **answer}) + b"\n")

    def write_batch(self, batch: list[Record], answers: list[dict]) -> None:
        dumps = orjson.dumps
        lines = [dumps({**r.original, **a}) for r, a in zip(batch, answers, strict=True)]
        lines.append(b"")
        self.out.write(b"\n".join(lines))  # one write per batch: a write per line costs more

    def flush(self) -> None:
        self.out.flush()


class CsvWriter:
    """:data:`CSV_COLUMNS`: the input fields as mapped, then the answer fields."""

    def __init__(self, out: IO[bytes]) -> None:
        import io

        self.text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
        self.csv = csv.writer(self.text, lineterminator="\n")
        self.csv.writerow(CSV_COLUMNS)

    def write(self, record: Record, answer: dict) -> None:
        row = {**record.flow, **answer, "input_format": record.fmt}
        self.csv.writerow([_cell(row.get(c)) for c in CSV_COLUMNS])

    def write_batch(self, batch: list[Record], answers: list[dict]) -> None:
        for record, answer in zip(batch, answers, strict=True):
            self.write(record, answer)

    def flush(self) -> None:
        self.text.flush()


# --------------------------------------------------------------------------- the run


@dataclass
class Options:
    inputs: list[str]
    input_format: str | None = None  # None: per record
    output_format: str = "json"
    follow: bool = False
    batch_size: int = 4096
    max_in_flight: int = 4
    progress: float = 10.0  # seconds between progress lines; 0 = none
    idle: float = 0.5  # quiet input this long: send the partial batch
    stream_idle: float = 60.0  # nothing to send this long: close the stream
    output: str | None = None  # parquet:PATH, clickhouse://..., chdb:PATH (attribution.sinks)
    balancing: Balancing | None = None  # streams, retries (attribution.client)


def input_lines(opts: Options, stop: threading.Event) -> Iterator[Line | None]:
    if opts.follow:
        if len(opts.inputs) != 1 or opts.inputs[0] == "-":
            raise ValueError("--follow takes exactly one file")
        yield from follow(opts.inputs[0], stop=stop)
        return
    for path in opts.inputs or ["-"]:
        if path == "-":
            yield from read_fd(sys.stdin.fileno(), "-", opts.idle)
        else:
            fd = os.open(path, os.O_RDONLY)
            try:
                yield from read_fd(fd, path, opts.idle)
            finally:
                os.close(fd)


def run(
    target: Connection | str,
    opts: Options,
    out: IO[bytes],
    err: Callable[[str], None],
    counters: Counters | None = None,
) -> Counters:
    """Enrich every input record; returns the counters (also on Ctrl-C or a lost service)."""
    if opts.input_format is not None and opts.input_format not in FORMATS:
        raise ValueError(f"unknown input format {opts.input_format!r}")
    counters = counters or Counters(echo=err)
    if opts.output:  # a store (Parquet, ClickHouse): attribution.sinks
        from attribution.sinks import open_sink

        writer: Any = open_sink(opts.output)
    else:
        writer = CsvWriter(out) if opts.output_format == "csv" else JsonWriter(out)
    stop = threading.Event()
    items = records(input_lines(opts, stop), opts.input_format, counters)
    started = last = time.monotonic()
    try:
        for batch, answers in resolve_batches(
            target,
            batches(items, opts.batch_size),
            max_in_flight=opts.max_in_flight,
            stream_idle=opts.stream_idle,
            balancing=replace(opts.balancing or Balancing(), stats=counters.failover),
        ):
            errors = 0
            for record, answer in zip(batch, answers, strict=True):
                code = answer["error_code"]
                if code:
                    errors += 1
                    counters.add_bad(code, record.where, answer["error"] or code)
            counters.enriched += len(batch) - errors
            writer.write_batch(batch, answers)
            counters.written += len(batch)
            writer.flush()
            now = time.monotonic()
            if opts.progress and now - last >= opts.progress:
                last = now
                rate = counters.written / max(now - started, 1e-9)
                err(f"progress: {counters.summary()}; {rate:,.0f} records/s")
    finally:
        stop.set()
        if opts.output:
            writer.close()  # the last insert, the Parquet footer
    return counters
