"""`attribution enrich`: collector records in, the same records plus the attribution out.

Three stages, each bounded:

- a reader thread turns lines (stdin, files, or a followed file) into
  batches of records in columns (:mod:`attribution.enrich_records`);
  a batch is sent when full, or as soon as the input goes quiet, so a slow
  trickle of flows is answered within a second, not when a batch fills;
- the batches go over one ``ResolveStream`` (packed records, routes sent once
  per stream: the fastest answer shape), at most ``max_in_flight`` at once;
- the main thread hands each batch and its answers (:mod:`attribution.enrich_wire`)
  to a writer (:mod:`attribution.enrich_writers`: JSON lines, original fields +
  answer fields; CSV; others register there), in input order.

Memory is at most (read-ahead queue + in flight + 1) batches. A record that
cannot be read (not JSON, unknown format, a required field missing) is counted
by reason, reported with its file and line, and left out; a record the
service cannot answer (bad address, unknown exporter) is written with its
``error``/``error_code`` and counted too. Neither ever stops the run.
"""

from __future__ import annotations

import os
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from typing import IO, Any

from attribution import enrich_records
from attribution.balancing import BalancedStreams, parse_targets
from attribution.client import Balancing, Connection, channel, replica_count, wait_ready
from attribution.enrich_checkpoint import DEFER
from attribution.enrich_records import Counters, FlowBatch, read_batches
from attribution.enrich_sources import Chunk, _Splitter, follow, read_fd
from attribution.enrich_wire import AnswerBatch, RouteDictionary, pack_request
from attribution.enrich_writers import (
    CSV_COLUMNS,
    OUTPUTS,
    CsvWriter,
    JsonWriter,
    Record,
    SinkWriter,
    Writer,
)
from attribution.flowformats import FORMATS
from attribution.v1 import attribution_pb2_grpc as pb_grpc

__all__ = ["CSV_COLUMNS", "Counters", "Options", "Record", "resolve_batches", "run"]


# --------------------------------------------------------------------------- resolving


class _StreamRoutes:
    """A stream's route dictionary: replies update it in the stream's order; each
    answer keeps the dictionary it was made against (a reset starts a new one)."""

    def __init__(self) -> None:
        self.current = RouteDictionary()

    def on_reply(self, reply: Any) -> RouteDictionary:
        if not reply.batch_error:
            self.current = self.current.update(reply.columns)
        return self.current


def resolve_batches(
    target: Connection | str,
    source: Iterator[FlowBatch],
    *,
    max_in_flight: int = 4,
    read_ahead: int = 4,
    stream_idle: float = 60.0,
    balancing: Balancing | None = None,
) -> Iterator[tuple[FlowBatch, AnswerBatch]]:
    """(batch, answers) in input order, over ResolveStreams (attribution.balancing).

    ``source`` is drained by a thread ``read_ahead`` batches ahead of those on
    the wire, each packed there (:func:`attribution.enrich_wire.pack_request`);
    at most ``max_in_flight`` batches are on the wire unanswered. A stream with
    nothing to send for ``stream_idle`` seconds is closed and the next batch
    opens a new one: the service cuts streams idle longer than its
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
    conn = target if isinstance(target, Connection) else Connection(target)
    streams = bal.streams or (
        max(2, replica_count(conn)) if parse_targets(conn.target).balanced else 1
    )

    def prepare(batch: FlowBatch, batch_id: int) -> tuple[Any, tuple[dict, list[int]]]:
        request, bad, good = pack_request(batch, batch_id)
        return request, (bad, good)

    with channel(conn, follow=True) as ch:  # runs for days with --follow: renewals followed
        stub = pb_grpc.AttributionStub(ch)

        def open_stream(requests: Iterator[Any], wait: bool) -> Iterator[Any]:
            # wait: after a lost stream, queue the call until a replica is ready
            return stub.ResolveStream(requests, timeout=None, wait_for_ready=wait)

        balanced = BalancedStreams(
            open_stream,
            lambda timeout: wait_ready(ch, timeout),
            streams=streams,
            max_in_flight=bal.max_in_flight or 4 * streams,
            read_ahead=bal.read_ahead,
            max_attempts=bal.max_attempts,
            ready_timeout=bal.ready_timeout,
            rebalance=bal.rebalance,
            stream_idle=bal.stream_idle,
            stats=bal.stats,
            new_state=_StreamRoutes,
            on_reply=_StreamRoutes.on_reply,
            target=conn.target,
        )
        results = balanced.run(source, prepare)
        try:
            for batch, (bad, good), reply, routes in results:
                yield batch, AnswerBatch.from_reply(len(batch), bad, good, reply, routes)
        finally:
            results.close()  # its streams ended before the channel closes


# --------------------------------------------------------------------------- the run


@dataclass
class Options:
    inputs: list[str]
    input_format: str | None = None  # None: per record
    output_format: str = "json"  # a key of enrich_writers.OUTPUTS
    output: str | None = None  # parquet:PATH, clickhouse://..., chdb:PATH (attribution.sinks)
    balancing: Balancing | None = None  # streams, retries (attribution.client)
    follow: bool = False
    batch_size: int = 4096
    max_in_flight: int = 4
    progress: float = 10.0  # seconds between progress lines; 0 = none
    idle: float = 0.5  # quiet input this long: send the partial batch
    stream_idle: float = 60.0  # nothing to send this long: close the stream
    jobs: int = 1  # worker processes for the CPU-bound stages (attribution.enrich_jobs)
    checkpoint: str | None = None  # --follow: resume from / commit to this file
    checkpoint_interval: float = 1.0  # seconds between commits
    ignore_bad_checkpoint: bool = False  # unreadable checkpoint: start afresh, not fail


BINARY_FORMATS = ("goflow2-pb",)  # read as messages, not lines (attribution.enrich_goflow2pb)


def record_format(opts: Options) -> str | None:
    """The format the reader maps records with (goflow2-pb arrives as goflow2 JSON)."""
    return "goflow2" if opts.input_format == "goflow2-pb" else opts.input_format


def input_lines(
    opts: Options,
    stop: threading.Event,
    counters: Counters | None = None,
    whole: bool = False,
    resume: Any = None,
    note: Callable[[str], None] | None = None,
) -> Iterator[Chunk | None]:
    """The inputs' chunks; ``whole``: lines as one bytes object a chunk where
    they can be (for read_batches' compiled reader, which then makes no bytes
    object a line), else a list of lines."""
    splitter: Any = partial(_Splitter, whole=True) if whole else _Splitter
    if opts.input_format == "goflow2-pb":
        from attribution.enrich_goflow2pb import DelimitedSplitter

        def bad(where: str, message: str) -> None:
            if counters is not None:
                counters.read += 1
                counters.add_bad("bad_record", where, message)

        def splitter(name: str) -> DelimitedSplitter:
            return DelimitedSplitter(name, bad)

    if opts.follow:
        if len(opts.inputs) != 1 or opts.inputs[0] == "-":
            raise ValueError("--follow takes exactly one file")
        yield from follow(opts.inputs[0], stop=stop, splitter=splitter, resume=resume, note=note)
        return
    for path in opts.inputs or ["-"]:
        if path == "-":
            yield from read_fd(sys.stdin.fileno(), "-", opts.idle, splitter=splitter)
        else:
            fd = os.open(path, os.O_RDONLY)
            try:
                yield from read_fd(fd, path, opts.idle, splitter=splitter)
            finally:
                os.close(fd)


def run(
    target: Connection | str,
    opts: Options,
    out: IO[bytes],
    err: Callable[[str], None],
    counters: Counters | None = None,
    writer: Writer | None = None,
) -> Counters:
    """Enrich every input record; returns the counters (also on Ctrl-C or a lost service).

    ``writer``: where the records go; by default the store ``opts.output``
    names (attribution.sinks), else the ``opts.output_format`` writer on ``out``.
    It is closed at the end.
    """
    if opts.input_format not in (None, *FORMATS, *BINARY_FORMATS):
        raise ValueError(f"unknown input format {opts.input_format!r}")
    if opts.jobs > 1:
        if writer is not None:
            raise ValueError("a writer object runs in this process: jobs must be 1")
        if opts.checkpoint:
            raise ValueError("--checkpoint runs with --jobs 1")
        return _run_jobs(target, opts, out, err, counters or Counters(echo=err))
    resume: Any = None
    if opts.checkpoint:
        if opts.output and opts.output.startswith("parquet:") and "{part}" not in opts.output:
            raise ValueError(
                "--checkpoint with Parquet needs parts (parquet:DIR/flows-{part}.parquet): "
                "one file is written whole at the end, and a restarted run would replace it"
            )
        resume = _resume_from(opts, err)
    if writer is None:
        if opts.output:  # a store (Parquet, ClickHouse): attribution.sinks
            from attribution.sinks import open_sink

            writer = SinkWriter(open_sink(opts.output))
        elif opts.output_format == "csv" and opts.checkpoint and _appending(out):
            writer = CsvWriter(out, header=False)  # the header is in the output already
        elif opts.output_format in OUTPUTS:
            writer = OUTPUTS[opts.output_format].make(out)
        else:
            raise ValueError(f"unknown output format {opts.output_format!r}")
    counters = counters or Counters(echo=err)
    committer = None
    if opts.checkpoint:
        from attribution.enrich_checkpoint import Checkpointer

        committer = Checkpointer(opts.checkpoint, writer, opts.checkpoint_interval)  # type: ignore[arg-type]
        counters.checkpoint = committer
        committer.start()
    stop = threading.Event()
    chunks = input_lines(
        opts,
        stop,
        counters,
        whole=enrich_records.SCANNER is not None,
        resume=resume,
        note=lambda text: err(f"checkpoint {opts.checkpoint}: {text}"),
    )
    started = last = time.monotonic()
    answered = resolve_batches(
        target,
        read_batches(
            chunks,
            record_format(opts),
            counters,
            opts.batch_size,
            fields=not isinstance(writer, JsonWriter),  # columns: CSV, the stores
        ),
        max_in_flight=opts.max_in_flight,
        stream_idle=opts.stream_idle,
        balancing=replace(opts.balancing or Balancing(), stats=counters.failover),
    )
    try:
        for batch, answers in answered:
            for i, (code, message) in sorted(answers.errors.items()):
                counters.add_bad(code, batch.where(i), message or code)
            counters.enriched += len(batch) - len(answers.errors)
            # Written, noted and counted as one step: SIGTERM waits for its end
            # (else a stop between them delivered records that the counters,
            # --stats or the checkpoint never saw).
            with DEFER:
                writer.write(batch, answers)
                if committer is not None:
                    committer.note(writer.rows, batch.position)  # type: ignore[attr-defined]
                counters.written += len(batch)
            now = time.monotonic()
            if opts.progress and now - last >= opts.progress:
                last = now
                rate = counters.written / max(now - started, 1e-9)
                err(f"progress: {counters.summary()}; {rate:,.0f} records/s")
    finally:
        stop.set()
        # Its streams ended and its threads joined now, on every way out (a failed
        # write, Ctrl-C), not when the garbage collector gets to the generator:
        # at the interpreter's exit that can hang (attribution.balancing.StreamError).
        answered.close()
        try:
            writer.close()  # the last insert, the Parquet footer
        finally:
            if committer is not None:  # what the closed output holds (on any way out)
                committer.close()
    return counters


def _resume_from(opts: Options, err: Callable[[str], None]) -> Any:
    """The checkpoint's position (or True: none yet, positions wanted).

    An unreadable checkpoint ends the run (CheckpointError) unless
    ``ignore_bad_checkpoint``: then it says so and starts afresh."""
    from attribution.enrich_checkpoint import CheckpointError, check_writable, load

    assert opts.checkpoint is not None
    if not opts.follow:
        raise ValueError("--checkpoint needs --follow")
    check_writable(opts.checkpoint)
    try:
        pos = load(opts.checkpoint)
    except CheckpointError as exc:
        if not opts.ignore_bad_checkpoint:
            raise CheckpointError(
                f"{exc}: fix or remove it, or pass --ignore-bad-checkpoint to read from the start"
            ) from None
        err(f"{exc}; ignored (--ignore-bad-checkpoint): reading from the start")
        return True
    return True if pos is None else pos


def _appending(out: IO[bytes]) -> bool:
    """``out`` is a file with something in it already (a resumed run's output)."""
    try:
        st = os.fstat(out.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size > 0


def _store_format(output: str) -> str:
    """The workers' Arrow for a store: ClickHouse takes dictionaries
    (attribution.sinks.clickhouse), Parquet strings."""
    from attribution.sinks import parse_output

    return "arrow" if parse_output(output).kind == "parquet" else "arrow-dict"


def _run_jobs(
    target: Connection | str,
    opts: Options,
    out: IO[bytes],
    err: Callable[[str], None],
    counters: Counters,
) -> Counters:
    """:func:`run`, the CPU-bound stages in ``opts.jobs`` processes (enrich_jobs)."""
    from attribution.enrich_jobs import WorkerSpec, emit_to, emit_to_sink, run_jobs

    if not opts.output and opts.output_format not in OUTPUTS:
        raise ValueError(f"unknown output format {opts.output_format!r}")
    spec = WorkerSpec(
        conn=target if isinstance(target, Connection) else Connection(target),
        input_format=record_format(opts),
        output_format=_store_format(opts.output) if opts.output else opts.output_format,
        batch_size=opts.batch_size,
        max_in_flight=opts.max_in_flight,
        stream_idle=opts.stream_idle,
        balancing=replace(opts.balancing or Balancing(), stats=None),
    )
    sink: Any = None
    if opts.output:
        from attribution.sinks import open_sink

        sink = open_sink(opts.output)
        emit = emit_to_sink(sink)
    else:
        if opts.output_format == "csv":
            out.write(CsvWriter.header())
        emit = emit_to(out)
    stop = threading.Event()
    started = last = time.monotonic()

    def progress() -> None:
        nonlocal last
        now = time.monotonic()
        if opts.progress and now - last >= opts.progress:
            last = now
            rate = counters.written / max(now - started, 1e-9)
            err(f"progress: {counters.summary()}; {rate:,.0f} records/s")

    try:
        run_jobs(opts.jobs, spec, input_lines(opts, stop, counters), emit, counters, progress)
    finally:
        stop.set()
        if sink is not None:
            sink.close()
        else:
            out.flush()
    return counters
