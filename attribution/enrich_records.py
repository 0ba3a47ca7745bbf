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

Ahead of both, when it was compiled (a C compiler at install time), the
compiled reader (:mod:`attribution._enrich_scan`) takes whole runs of lines
that are flat objects of a known format straight into the packed request,
and stops at any line it is not certain of, which then takes the paths
above. Its records' rows are made only if a writer asks for them
(:meth:`FlowBatch.rows`), by the msgspec path. ``--stats`` says which reader
ran (``reader``) and how many records the compiled one took.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from attribution.addresses import canonical_exporter
from attribution.balancing import FailoverStats
from attribution.enrich_decode import (
    ANSWER_FIELDS,
    DECODERS,
    FAST,
    FAST_ERRORS,
    FLOW_FIELDS,
    fast_format,
    fast_marker,
)
from attribution.enrich_generic import count_openers, own_struct, parse_record, row_of, where
from attribution.enrich_sources import IDLE, MAX_LINE, NEXT, Chunk, split_lines, whole_parts
from attribution.flowformats import ObjectSplitter
from ribd.checks import MAX_DEPTH

try:
    from attribution import _enrich_scan
except ImportError:  # built without a C compiler: the Python reader alone
    _enrich_scan = None  # type: ignore[assignment]
else:
    _enrich_scan.setup(ANSWER_FIELDS, MAX_DEPTH)

# the compiled reader, None for none; ATTRIBUTION_ENRICH_READER=python switches
# it off (to compare; tests set SCANNER)
SCANNER: Any = None if os.environ.get("ATTRIBUTION_ENRICH_READER") == "python" else _enrich_scan


def reader_name() -> str:
    """Which reader runs: ``compiled`` or ``python`` (no compiler at install time)."""
    return "compiled" if SCANNER is not None else "python"


# --------------------------------------------------------------------------- counters


@dataclass
class Counters:
    """What a run did; printed at the end, written as JSON with ``--stats``."""

    read: int = 0
    compiled: int = 0  # records the compiled reader took
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
    checkpoint: Any = None  # --checkpoint: its Checkpointer (commits, position)

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
            "reader": reader_name(),
            "compiled_records": self.compiled,
            "enriched": self.enriched,
            "written": self.written,
            "bad": dict(sorted(self.bad.items())),
            "bad_total": sum(self.bad.values()),
            "formats": dict(sorted(self.formats.items())),
            "examples": self.examples,
            "failover": self.failover.as_json(),
            **({} if self.checkpoint is None else {"checkpoint": self.checkpoint.as_json()}),
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
    ``packed``: the compiled reader's packed request records (its records'
    rows are made when first asked for, their texts too when they are spans
    of a whole chunk: :meth:`texts`), or None.
    """

    sources: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)
    _raw: list[bytes | None] = field(default_factory=list)
    _rows: list[tuple | None] = field(default_factory=list)
    packed: Any = None
    lazy: bool = False  # some rows not made yet (the compiled reader's)
    spans: bool = False  # some texts not made yet (the compiled reader's, from whole chunks)
    # --checkpoint: where the input is read to once this batch's records are out
    # (attribution.enrich_checkpoint.Position), None when the input has none
    position: Any = None
    _columns: tuple[int, list[tuple]] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def raw(self) -> list[bytes]:
        if self.spans:
            self.packed.fill_texts(self._raw)
            self.spans = False
        return self._raw  # type: ignore[return-value]

    def texts(self) -> tuple[list[bytes | None], bytes | None, list[bytes] | None]:
        """(raw, spans, chunks) for the compiled JSON assembler: the texts still
        spans are copied from their chunk once, into the output."""
        if not self.spans:
            return self._raw, None, None
        return self._raw, self.packed.span_table(len(self._raw)), self.packed.chunks

    @property
    def rows(self) -> list[tuple]:
        if self.lazy:
            if SCANNER is not None:  # in C, as the msgspec path makes them
                SCANNER.fill_rows(self._rows, self.formats, self.raw, row_of)
            else:
                rows, formats, raw = self._rows, self.formats, self.raw
                for i, row in enumerate(rows):
                    if row is None:
                        rows[i] = row_of(formats[i], raw[i])
            self.lazy = False
        return self._rows  # type: ignore[return-value]

    def python_rows(self) -> list[tuple | None]:
        """The rows as they are: None for the compiled reader's records."""
        return self._rows

    def where(self, i: int) -> str:
        source = self.sources[i]
        return f"{'stdin' if source == '-' else source}:{self.lines[i]}"

    def column(self, name: str) -> list:
        """One of :data:`FLOW_FIELDS` for every record."""
        return list(self.columns()[FLOW_FIELDS.index(name)])

    def columns(self) -> list[tuple]:
        """Every one of :data:`FLOW_FIELDS` as a column, made at once in C."""
        got = self._columns
        if got is None or got[0] != len(self._rows):
            cols = list(zip(*self.rows, strict=True)) or [() for _ in FLOW_FIELDS]
            got = self._columns = (len(self._rows), cols)
        return got[1]

    def flow(self, i: int) -> dict[str, Any]:
        """Record i's flow fields as a dict (fields it has none of left out)."""
        return {k: v for k, v in zip(FLOW_FIELDS, self.rows[i], strict=True) if v is not None}

    def original(self, i: int) -> dict[str, Any]:
        """Record i as it came (answer-named fields left out)."""
        return orjson.loads(self.raw[i])


# --------------------------------------------------------------------------- the reader


def read_batches(
    chunks: Iterator[Chunk | None],
    fmt: str | None,
    counters: Counters,
    size: int,
    fields: bool = True,
) -> Iterator[FlowBatch]:
    """Full batches, and the partial one whenever the input goes quiet (IDLE) or ends.

    ``fields``: the compiled reader keeps where each flow field was in its
    records' texts, for the flow columns of CSV and the stores
    (attribution.enrich_arrow.compiled_flows); JSON lines out has no use for
    them (False saves copying them a record)."""
    splitters: dict[str, ObjectSplitter] = {}
    scanner = SCANNER
    scan_fmt = -1 if fmt is None else _SCAN_KINDS.get(fmt, -2)
    if scan_fmt == -2:
        scanner = None

    def new_batch() -> FlowBatch:
        if scanner is None:
            return FlowBatch()
        return FlowBatch(packed=scanner.Packed(canonical_exporter, size, fields))

    batch = new_batch()
    formats: dict[str, int] = {}
    fast = FAST

    def add(source: str, number: int, kind: str, text: bytes, row: tuple) -> None:
        batch.sources.append(source)
        batch.lines.append(number)
        batch.formats.append(kind)
        batch._raw.append(text)
        batch._rows.append(row)

    def generic(source: str, number: int, text: bytes) -> None:
        split = splitters.get(source)
        if split is None:
            split = splitters[source] = ObjectSplitter()
        for start, obj in split.feed_many(number, text):
            got = parse_record(obj, fmt, where(source, start), counters)
            if got is not None:
                add(source, start, *got)

    # --checkpoint positions: ``safe`` is the last chunk end with no record
    # begun and unfinished (a pretty-printed object spans lines); a batch cut
    # inside a chunk is at the chunk's end less the bytes not taken yet
    safe: Any = None
    chunk_pos: Any = None
    mapped = False
    after = 0  # bytes of the chunk's parts after the current one

    def cut(left: int | None) -> None:
        """The batch ends with ``left`` bytes of the chunk not taken (None: unknown)."""
        if chunk_pos is None:
            return
        if left is None or not mapped or any(s.parts for s in splitters.values()):
            batch.position = safe
        else:
            batch.position = chunk_pos.at(chunk_pos.offset - left - after)

    def left_in(lines: list, k: int) -> int | None:
        rest = lines[k:]
        if None in rest:
            return None
        return sum(map(len, rest)) + len(rest)

    def take() -> FlowBatch:
        nonlocal batch
        counters.add_formats(formats)
        formats.clear()
        if batch.packed is not None:
            counters.compiled += batch.packed.taken
        out, batch = batch, new_batch()
        return out

    guess = fmt or "goflow2"  # the struct to decode with: the last record's format
    decoders = DECODERS
    following: dict[str, int] = {}  # each source's next line number (Chunk.first NEXT)
    for chunk in chunks:
        if chunk is IDLE:
            if batch._rows or formats:
                cut(0)
                yield take()
            continue
        source = chunk.source
        first = following.get(source, 1) if chunk.first == NEXT else chunk.first
        pending = splitters.get(source)
        parts: list = [chunk.lines] if chunk.lines is not None else whole_parts(chunk)
        if chunk.pos is not None:
            chunk_pos, mapped = chunk.pos, chunk.mapped
            after = sum(p[2] - p[1] for p in parts[1:]) if len(parts) > 1 else 0
        else:  # (followed) no position: cuts in it fall back to the last safe one
            mapped = False
        for part in parts:
            if type(part) is list:
                lines = part
            else:  # whole lines in one bytes object: the compiled reader's from there
                data, pos, end = part
                if chunk_pos is not None and part is not parts[0]:
                    after -= end - pos
                k = 0
                while scanner is not None and (pending is None or not pending.parts) and pos < end:
                    got = len(batch._rows)
                    k, pos = batch.packed.scan_data(
                        data,
                        pos,
                        k,
                        first,
                        source,
                        scan_fmt,
                        size,
                        batch._rows,
                        batch._raw,
                        batch.sources,
                        batch.lines,
                        batch.formats,
                        formats,
                        end,
                    )
                    if len(batch._rows) > got:
                        batch.lazy = batch.spans = True
                    if len(batch._rows) < size:
                        break
                    cut(end - pos)
                    yield take()
                first += k
                if pos >= end:
                    continue
                lines = split_lines(data[pos:end])  # the rest, a bytes object a line
            n = len(lines)
            k = 0
            ascii_chunk: bool | None = None  # whole-chunk checks, made when Python needs them
            openers: list[int] = []
            while k < n:
                if scanner is not None and (pending is None or not pending.parts):
                    # the compiled reader takes what it can, up to a full batch
                    got = len(batch._rows)
                    k = batch.packed.scan(
                        lines,
                        k,
                        first,
                        source,
                        scan_fmt,
                        size,
                        batch._rows,
                        batch._raw,
                        batch.sources,
                        batch.lines,
                        batch.formats,
                        formats,
                    )
                    if len(batch._rows) > got:
                        batch.lazy = True
                    if len(batch._rows) >= size:
                        cut(left_in(lines, k))
                        yield take()
                        continue
                    if k >= n:
                        break
                if ascii_chunk is None:
                    try:  # whole-chunk checks instead of per-line ones, in C
                        data = b"\n".join(lines)  # type: ignore[arg-type]
                    except TypeError:  # an over-long line (None) in it
                        ascii_chunk = False
                        openers = [count_openers(t) for t in lines]
                    else:
                        ascii_chunk = data.isascii()
                        # each line's { and [ (a bound on its depth), one pass over the chunk
                        openers = list(map(len, data.translate(None, _NOT_OPENERS).split(b"\n")))
                text = lines[k]
                number = first + k
                k += 1
                if text is None:
                    counters.read += 1
                    counters.add_bad(
                        "too_long", where(source, number), f"line longer than {MAX_LINE} bytes"
                    )
                    continue
                if text[-2:] == b",}":  # nfdump -o json-log ends its objects so
                    text = text[:-2] + b"}"
                if (
                    (pending is None or not pending.parts)
                    and text[:1] == b"{"
                    and text[-1:] == b"}"
                    and (ascii_chunk or text.isascii())
                    and openers[k - 1] <= MAX_DEPTH
                ):
                    try:
                        r = decoders[guess](text)
                        kind = fmt or fast_format(r)
                        if kind is not None and kind != guess:  # another format: its struct
                            guess = kind
                            r = decoders[kind](text)
                    except FAST_ERRORS:
                        r = None
                        if fmt is None:  # its own format's struct decides, not the last one's
                            r, kind = own_struct(text, guess)
                            guess = kind or guess
                    if r is not None and kind is not None:
                        if fast_marker(kind, r):
                            continue
                        row = fast[kind](r)
                        if row is not None:
                            formats[kind] = formats.get(kind, 0) + 1
                            add(source, number, kind, text, row)
                            if len(batch._rows) >= size:
                                cut(left_in(lines, k))
                                yield take()
                            continue
                generic(source, number, text)
                pending = splitters.get(source)
                if len(batch._rows) >= size:
                    cut(left_in(lines, k))
                    yield take()
            first += n
        following[source] = first
        if chunk.pos is not None:
            after = 0
            if not any(s.parts for s in splitters.values()):
                safe = chunk_pos
    for source, split in splitters.items():
        done = split.flush()
        if done is not None:
            got = parse_record(done[1], fmt, where(source, done[0]), counters)
            if got is not None:
                add(source, done[0], *got)
    if batch._rows or formats:
        cut(0)
        yield take()


_SCAN_KINDS = {"goflow2": 0, "pmacct": 1, "nfdump": 2, "native": 3}
_NOT_OPENERS = bytes(b for b in range(256) if b not in b"{[\n")


__all__ = [
    "ANSWER_FIELDS",
    "FLOW_FIELDS",
    "Counters",
    "FlowBatch",
    "parse_record",
    "read_batches",
]
