"""Lines -> batches of flow records for `attribution enrich`, in columns, no I/O.

Per record the work is kept to one C-level decode: a line that is one JSON
object takes :mod:`attribution.enrich_decode`'s fast path (msgspec, straight
to a row of :data:`FLOW_FIELDS`). The record's own text is kept as it is for
the output (no re-encoding).

Anything unusual takes the generic path, which alone decides what is wrong:
a line that is not one object (nfdump's pretty-printed array), not ASCII,
nested deep, of another type than expected (a digit string for a number), a
field a mapping requires missing, or a field named like an answer field
(the answer replaces it in the output): orjson decodes it, the format's
mapping in :mod:`attribution.flowformats` maps it, and errors are counted by
reason with ``FILE:LINE``. Both paths give the same rows (a test pins it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from attribution.balancing import FailoverStats
from attribution.enrich_decode import (
    ANSWER_FIELDS,
    ANSWER_SET,
    DECODERS,
    FAST,
    FAST_ERRORS,
    FLOW_FIELDS,
    fast_format,
    fast_marker,
)
from attribution.enrich_sources import IDLE, MAX_LINE, Chunk
from attribution.flowformats import MAPPINGS, ObjectSplitter, detect, is_marker
from attribution.reports.records import RecordError
from ribd.checks import MAX_DEPTH, too_deep

# --------------------------------------------------------------------------- counters


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

    def add_formats(self, counts: dict[str, int]) -> None:
        with self.lock:
            for kind, n in counts.items():
                self.formats[kind] = self.formats.get(kind, 0) + n
                self.read += n

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


# --------------------------------------------------------------------------- batches


@dataclass(slots=True)
class FlowBatch:
    """Records of one batch, in input order.

    ``raw[i]``: record i's JSON object text, without fields named like an
    answer field (a writer appends the answer to it). ``rows[i]``: its flow
    fields, :data:`FLOW_FIELDS` in order (None where the record has none).
    """

    sources: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    _columns: tuple[int, list[tuple]] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.rows)

    def where(self, i: int) -> str:
        source = self.sources[i]
        return f"{'stdin' if source == '-' else source}:{self.lines[i]}"

    def column(self, name: str) -> list:
        """One of :data:`FLOW_FIELDS` for every record."""
        return list(self.columns()[FLOW_FIELDS.index(name)])

    def columns(self) -> list[tuple]:
        """Every one of :data:`FLOW_FIELDS` as a column, made at once in C."""
        got = self._columns
        if got is None or got[0] != len(self.rows):
            cols = list(zip(*self.rows, strict=True)) or [() for _ in FLOW_FIELDS]
            got = self._columns = (len(self.rows), cols)
        return got[1]

    def flow(self, i: int) -> dict[str, Any]:
        """Record i's flow fields as a dict (fields it has none of left out)."""
        return {k: v for k, v in zip(FLOW_FIELDS, self.rows[i], strict=True) if v is not None}

    def original(self, i: int) -> dict[str, Any]:
        """Record i as it came (answer-named fields left out)."""
        return orjson.loads(self.raw[i])


# --------------------------------------------------------------------------- generic path


def parse_record(
    text: bytes, fmt: str | None, where: str, counters: Counters
) -> tuple[str, bytes, tuple] | None:
    """One object's text -> (format, text without answer-named fields, row); None
    for a marker or a bad record (counted, with ``where`` and the reason)."""
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
    if kind is None:
        counters.read += 1
        keys = ", ".join(list(obj)[:6])
        counters.add_bad("unknown_format", where, f"no known format has these fields: {keys}")
        return None
    counters.add_formats({kind: 1})
    if too_deep(obj):
        counters.add_bad("bad_record", where, f"nested deeper than {MAX_DEPTH}")
        return None
    try:
        flow = MAPPINGS[kind](obj)
    except RecordError as exc:
        counters.add_bad("bad_record", where, f"{kind}: {exc}")
        return None
    if not ANSWER_SET.isdisjoint(obj):
        text = orjson.dumps({k: v for k, v in obj.items() if k not in ANSWER_SET})
    row = tuple(flow.get(k) for k in FLOW_FIELDS)
    return kind, text, row


# --------------------------------------------------------------------------- the reader


def read_batches(
    chunks: Iterator[Chunk | None], fmt: str | None, counters: Counters, size: int
) -> Iterator[FlowBatch]:
    """Full batches, and the partial one whenever the input goes quiet (IDLE) or ends."""
    splitters: dict[str, ObjectSplitter] = {}
    batch = FlowBatch()
    formats: dict[str, int] = {}
    fast = FAST

    def add(source: str, number: int, kind: str, text: bytes, row: tuple) -> None:
        batch.sources.append(source)
        batch.lines.append(number)
        batch.formats.append(kind)
        batch.raw.append(text)
        batch.rows.append(row)

    def generic(source: str, number: int, text: bytes) -> None:
        split = splitters.get(source)
        if split is None:
            split = splitters[source] = ObjectSplitter()
        for start, obj in split.feed_many(number, text):
            got = parse_record(obj, fmt, _where(source, start), counters)
            if got is not None:
                add(source, start, *got)

    def take() -> FlowBatch:
        nonlocal batch
        counters.add_formats(formats)
        formats.clear()
        out, batch = batch, FlowBatch()
        return out

    guess = fmt or "goflow2"  # the struct to decode with: the last record's format
    decoders = DECODERS
    for chunk in chunks:
        if chunk is IDLE:
            if batch.rows or formats:
                yield take()
            continue
        source = chunk.source
        number = chunk.first - 1
        pending = splitters.get(source)
        try:  # whole-chunk checks instead of per-line ones, in C
            data = b"\n".join(chunk.lines)  # type: ignore[arg-type]
        except TypeError:  # an over-long line (None) in it
            ascii_chunk = False
            openers = [_count_openers(t) for t in chunk.lines]
        else:
            ascii_chunk = data.isascii()
            # each line's { and [ (a bound on its depth), one pass over the chunk
            openers = list(map(len, data.translate(None, _NOT_OPENERS).split(b"\n")))
        for k, text in enumerate(chunk.lines):
            number += 1
            if text is None:
                counters.read += 1
                counters.add_bad(
                    "too_long", _where(source, number), f"line longer than {MAX_LINE} bytes"
                )
                continue
            if text[-2:] == b",}":  # nfdump -o json-log ends its objects so
                text = text[:-2] + b"}"
            if (
                (pending is None or not pending.parts)
                and text[:1] == b"{"
                and text[-1:] == b"}"
                and (ascii_chunk or text.isascii())
                and openers[k] <= MAX_DEPTH
            ):
                try:
                    r = decoders[guess](text)
                    kind = fmt or fast_format(r)
                    if kind is not None and kind != guess:  # another format: its struct
                        guess = kind
                        r = decoders[kind](text)
                except FAST_ERRORS:
                    r = None
                if r is not None and kind is not None:
                    if fast_marker(kind, r):
                        continue
                    row = fast[kind](r)
                    if row is not None:
                        formats[kind] = formats.get(kind, 0) + 1
                        rows = batch.rows
                        rows.append(row)
                        batch.sources.append(source)
                        batch.lines.append(number)
                        batch.formats.append(kind)
                        batch.raw.append(text)
                        if len(rows) >= size:
                            yield take()
                        continue
            generic(source, number, text)
            pending = splitters.get(source)
            if len(batch.rows) >= size:
                yield take()
    for source, split in splitters.items():
        done = split.flush()
        if done is not None:
            got = parse_record(done[1], fmt, _where(source, done[0]), counters)
            if got is not None:
                add(source, done[0], *got)
    if batch.rows or formats:
        yield take()


_NOT_OPENERS = bytes(b for b in range(256) if b not in b"{[\n")


def _count_openers(text: bytes | None) -> int:
    return 0 if text is None else text.count(b"{") + text.count(b"[")


def _where(source: str, number: int) -> str:
    return f"{'stdin' if source == '-' else source}:{number}"


__all__ = [
    "ANSWER_FIELDS",
    "FLOW_FIELDS",
    "Counters",
    "FlowBatch",
    "parse_record",
    "read_batches",
]
