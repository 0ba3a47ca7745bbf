"""`attribution enrich --jobs N`: the CPU-bound stages in N worker processes.

One Python process decodes, packs and formats ~50 k records per CPU second;
the service answers several times that. With ``--jobs N`` the main process
only reads: it cuts the input into blocks of lines (at record starts, so a
pretty-printed nfdump object is never split) and hands block k to worker
k mod N. Each worker is a whole enrich pipeline of its own (read_batches ->
its own ResolveStream -> the output format into bytes, or Arrow IPC for a
store) and returns each block's output and counters; the main process
writes the blocks in input order, so the output is the one of ``--jobs 1``.

Bounded: each worker's inbox holds ``INBOX`` blocks, and a worker has at most
its read-ahead plus in-flight batches; a block's result waits in the main
process only until the blocks before it are written. Bad records are
reported by the main process (counted by reason, the first ten echoed) as
they would be with one process. A worker that fails (service lost, store
refused) ends the run with its error.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing as mp
import queue
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import IO, Any

from attribution.balancing import FailoverStats
from attribution.client import Balancing, Connection
from attribution.enrich_checkpoint import DEFER
from attribution.enrich_records import Counters, read_batches
from attribution.enrich_sources import IDLE, Chunk, chunk_lines

INBOX = 2  # blocks queued per worker
MAX_EXTEND = 1000  # lines a block may grow past its size to end at a record start


class WorkerError(RuntimeError):
    """A worker process failed; the message is its error."""


# --------------------------------------------------------------------------- blocks


def blocks(chunks: Iterator[Chunk | None], size: int) -> Iterator[list[Chunk]]:
    """Chunks of lines -> blocks of about ``size`` lines, each ending before a line
    that starts a record (``{`` or ``[`` first) or MAX_EXTEND lines past ``size``;
    a partial block whenever the input goes quiet (IDLE) or ends, unless its
    last line is inside a pretty-printed object (the rest of it is awaited)."""
    block: list[Chunk] = []
    n = 0
    for chunk in chunks:
        if chunk is IDLE:
            if block and not _inside_object(block[-1].lines[-1]):
                yield block
                block, n = [], 0
            continue
        source, first, lines = chunk.source, chunk.first, chunk_lines(chunk)
        start = 0
        while start < len(lines):
            if n < size:
                take = min(len(lines) - start, size - n)
                block.append(Chunk(source, first + start, lines[start : start + take]))
                n += take
                start += take
                continue
            cap = size + MAX_EXTEND - n  # lines this block may still take
            end = min(len(lines), start + max(cap, 0))
            j = start
            while j < end and not _starts_record(lines[j]):
                j += 1
            if j < end or j - start >= cap:  # a record starts at j, or the cap is reached
                if j > start:
                    block.append(Chunk(source, first + start, lines[start:j]))
                yield block
                block, n = [], 0
                start = j
            else:  # no record start in the rest of this chunk: all of it, look on
                block.append(Chunk(source, first + start, lines[start:]))
                n += len(lines) - start
                start = len(lines)
    if block:
        yield block


def _inside_object(line: bytes | None) -> bool:
    """``{`` (or ``[``) alone, or a ``"field": value`` line of a pretty-printed object."""
    if line is None:
        return False
    text = line.strip()
    return text in (b"{", b"[", b"[{") or text[:1] == b'"'


def _starts_record(line: bytes | None) -> bool:
    if line is None:
        return True
    head = line.lstrip()[:1]
    return head in (b"{", b"[")


def _pack(chunk: Chunk) -> tuple[str, int, bytes, list[int]]:
    """A chunk as one string (pickling a list of lines costs ~3x more), and where
    its over-long lines (None) are."""
    lines = chunk_lines(chunk)
    gone = [i for i, line in enumerate(lines) if line is None] if None in lines else []
    if gone:
        lines = [b"" if line is None else line for line in lines]
    return chunk.source, chunk.first, b"\n".join(lines), gone


def _unpack(packed: tuple[str, int, bytes, list[int]]) -> Chunk:
    source, first, text, gone = packed
    if not gone:  # whole: the compiled reader takes records without a bytes object a line
        return Chunk(source, first, None, text + b"\n")
    lines: list[bytes | None] = text.split(b"\n")  # type: ignore[assignment]
    for i in gone:
        lines[i] = None
    return Chunk(source, first, lines)


# --------------------------------------------------------------------------- workers


class _BlockCounters(Counters):
    """A worker's counters for one block: bad records kept as events for the main
    process to count and echo (its caps apply over the whole run)."""

    def __init__(self) -> None:
        super().__init__(echo=None, keep=0)
        self.events: list[tuple[str, str, str]] = []

    def add_bad(self, reason: str, where: str, message: str) -> None:
        self.events.append((reason, where, message))

    def export(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "compiled": self.compiled,
            "enriched": self.enriched,
            "written": self.written,
            "formats": self.formats,
            "events": self.events,
        }


@dataclass
class _Block:
    block_id: int
    counters: _BlockCounters
    left: int  # batches not yet answered
    parts: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs (picklable: sent to a spawned process)."""

    conn: Connection
    input_format: str | None
    # json | csv | arrow | arrow-dict (a store: Arrow IPC to the main process;
    # -dict: the low-cardinality columns as dictionaries, what ClickHouse takes)
    output_format: str
    batch_size: int
    max_in_flight: int
    stream_idle: float
    balancing: Balancing


def _output(kind: str) -> tuple[Callable[[_Block, Any, Any], None], Callable[[_Block], bytes]]:
    """(write a batch into a block, the block's bytes) for an output kind."""
    if kind in ("arrow", "arrow-dict"):
        import pyarrow as pa

        from attribution.enrich_arrow import store_table
        from attribution.sinks.table import ArrowBatcher

        batcher = ArrowBatcher()
        dictionary = kind == "arrow-dict"

        def write(block: _Block, batch: Any, answers: Any) -> None:
            block.parts.append(store_table(batcher, batch, answers, dictionary))

        def done(block: _Block) -> bytes:
            sink = pa.BufferOutputStream()
            table = pa.concat_tables(block.parts)
            with pa.ipc.new_stream(sink, table.schema) as w:
                w.write_table(table)
            return sink.getvalue().to_pybytes()

        return write, done
    from attribution.enrich_writers import OUTPUTS

    buf = io.BytesIO()
    writer = OUTPUTS[kind].make(buf)
    buf.seek(0)
    buf.truncate()  # the CSV header: the main process writes it once

    def write_text(block: _Block, batch: Any, answers: Any) -> None:
        writer.write(batch, answers)

    def done_text(block: _Block) -> bytes:
        data = buf.getvalue()
        buf.seek(0)
        buf.truncate()
        return data

    return write_text, done_text


def worker_main(index: int, spec: WorkerSpec, inbox: Any, outbox: Any) -> None:
    """A worker process: blocks in, (block id, output bytes, counters) out."""
    import signal

    from attribution.enrich import resolve_batches

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the main process ends the run
    try:
        write, done = _output(spec.output_format)
        tags: deque[_Block] = deque()
        stats = FailoverStats()

        def source() -> Iterator[Any]:
            while True:
                item = inbox.get()
                if item is None:
                    return
                block_id, packed = item
                chunks = [_unpack(c) for c in packed]
                counters = _BlockCounters()
                got = [
                    b
                    for b in read_batches(
                        iter(chunks),
                        spec.input_format,
                        counters,
                        spec.batch_size,
                        fields=spec.output_format != "json",
                    )
                    if len(b)
                ]
                if not got:
                    outbox.put(("block", block_id, b"", counters.export()))
                    continue
                block = _Block(block_id, counters, len(got))
                for b in got:
                    tags.append(block)
                    yield b

        for batch, answers in resolve_batches(
            spec.conn,
            source(),
            max_in_flight=spec.max_in_flight,
            stream_idle=spec.stream_idle,
            balancing=replace(spec.balancing, stats=stats),
        ):
            block = tags.popleft()
            c = block.counters
            for i, (code, message) in sorted(answers.errors.items()):
                c.add_bad(code, batch.where(i), message or code)
            c.enriched += len(batch) - len(answers.errors)
            c.written += len(batch)
            write(block, batch, answers)
            block.left -= 1
            if not block.left:
                outbox.put(("block", block.block_id, done(block), c.export()))
        outbox.put(("done", index, stats))
    except KeyboardInterrupt:
        outbox.put(("error", index, "interrupted"))
    except BaseException as exc:  # the main process ends the run with it
        text = str(exc) or type(exc).__name__
        if not isinstance(exc, OSError | RuntimeError | ValueError):
            text += "\n" + traceback.format_exc()
        outbox.put(("error", index, text))


# --------------------------------------------------------------------------- the main process


def run_jobs(
    jobs: int,
    spec: WorkerSpec,
    chunks: Iterator[Chunk | None],
    emit: Callable[[bytes], None],
    counters: Counters,
    on_progress: Callable[[], None],
) -> None:
    """Blocks to ``jobs`` workers, their outputs to ``emit`` in input order."""
    ctx = mp.get_context("spawn")  # no fork: gRPC and threads do not survive one
    inboxes = [ctx.Queue(INBOX) for _ in range(jobs)]
    outbox = ctx.Queue()
    procs = [
        ctx.Process(
            target=worker_main, args=(i, spec, inboxes[i], outbox), name=f"enrich-{i}", daemon=True
        )
        for i in range(jobs)
    ]
    for p in procs:
        p.start()
    total: list[int] = []  # the number of blocks, once the input has ended
    failure: list[BaseException] = []
    stop = threading.Event()

    def dispatch() -> None:
        n = 0
        try:
            for block in blocks(chunks, spec.batch_size):
                box = inboxes[n % jobs]
                item = (n, [_pack(c) for c in block])
                while not stop.is_set():
                    try:
                        box.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
                n += 1
        except BaseException as exc:  # an unreadable file: the run ends with it
            failure.append(exc)
        finally:
            total.append(n)
            for box in inboxes:
                box.put(None)

    reader = threading.Thread(target=dispatch, name="enrich-dispatch", daemon=True)
    reader.start()
    waiting: dict[int, tuple[bytes, dict]] = {}
    following = 0
    finished: set[int] = set()
    try:
        while True:
            if total and following >= total[0] and len(finished) == jobs:
                break
            try:
                msg = outbox.get(timeout=0.5)
            except queue.Empty:
                # gone without a "done" (killed, or exited early): the run cannot finish
                dead = [
                    f"{p.name} (exit code {p.exitcode})"
                    for i, p in enumerate(procs)
                    if i not in finished and not p.is_alive()
                ]
                if dead:
                    raise WorkerError(f"worker {', '.join(dead)} ended unfinished") from None
                on_progress()
                continue
            kind = msg[0]
            if kind == "error":
                raise WorkerError(f"worker {msg[1]}: {msg[2]}")
            if kind == "done":
                finished.add(msg[1])
                _merge_failover(counters.failover, msg[2])
                continue
            waiting[msg[1]] = (msg[2], msg[3])
            while following in waiting:
                data, got = waiting.pop(following)
                with DEFER:  # counted and written as one step (SIGTERM waits for its end)
                    _merge(counters, got)
                    if data:
                        emit(data)
                following += 1
            on_progress()
        if failure:
            raise failure[0]
    finally:
        stop.set()
        for box in inboxes:  # the dispatcher may be blocked on the input: end them here
            with contextlib.suppress(queue.Full):
                box.put_nowait(None)
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)


def _merge(counters: Counters, got: dict) -> None:
    counters.add_formats(got["formats"])
    with counters.lock:
        counters.read += got["read"] - sum(got["formats"].values())
        counters.enriched += got["enriched"]
        counters.written += got["written"]
        counters.compiled += got.get("compiled", 0)
    for reason, where, message in got["events"]:
        counters.add_bad(reason, where, message)


def _merge_failover(into: FailoverStats, got: FailoverStats) -> None:
    for name in (
        "batches",
        "answered",
        "streams_opened",
        "streams_failed",
        "batches_retried",
        "duplicates_dropped",
    ):
        setattr(into, name, getattr(into, name) + getattr(got, name))
    for k, v in got.errors.items():
        into.errors[k] = into.errors.get(k, 0) + v
    into.last_error = got.last_error or into.last_error
    into.recovery_seconds.extend(got.recovery_seconds)


def emit_to(out: IO[bytes]) -> Callable[[bytes], None]:
    def emit(data: bytes) -> None:
        out.write(data)
        out.flush()

    return emit


def emit_to_sink(sink: Any) -> Callable[[bytes], None]:
    import pyarrow as pa

    def emit(data: bytes) -> None:
        table = pa.ipc.open_stream(data).read_all()
        sink.write_table(table)
        sink.flush()

    return emit


__all__ = ["WorkerError", "WorkerSpec", "blocks", "emit_to", "emit_to_sink", "run_jobs"]
