"""The `attribution enrich` command line: options, then :func:`attribution.enrich.run`."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

import orjson

from attribution.enrich import Counters, Options, run
from attribution.enrich_checkpoint import CheckpointError
from attribution.enrich_jobs import WorkerError
from attribution.enrich_writers import OUTPUTS
from attribution.flowformats import FORMATS


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return value


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    s = sub.add_parser(
        "enrich",
        help="attribute collector records (goflow2, pmacct, nfdump JSON, flow JSON): "
        "each record out with its own fields plus the attribution",
        parents=parents,
        description="Reads JSON records as goflow2, pmacct's print plugin, nfdump -o json "
        "(or -o json-log) and our own flow JSON write them, resolves them in bulk over "
        "the service's streaming API and writes each record with the answer fields. "
        "Unreadable records are counted and reported with file:line and the reason; "
        "the counters are printed on stderr at the end.",
    )
    s.add_argument(
        "inputs",
        nargs="*",
        metavar="FILE",
        help="files to read in turn ('-' or none: stdin)",
    )
    s.add_argument(
        "--input-format",
        choices=("auto", *FORMATS, "goflow2-pb"),
        default="auto",
        help="the records' format (default: auto, detected per record from its fields; "
        "goflow2-pb: goflow2 -format=bin, length-delimited protobuf, never detected)",
    )
    s.add_argument(
        "--output-format",
        choices=tuple(OUTPUTS),
        default="json",
        help="; ".join(f"{name}: {o.help}" for name, o in OUTPUTS.items()),
    )
    s.add_argument(
        "--output",
        metavar="SPEC",
        help="store the records instead of writing them to stdout: parquet:PATH, "
        "clickhouse://[USER@]HOST[:PORT]/DATABASE?table=NAME (clickhouses:// for TLS; "
        "password from ATTRIBUTION_CLICKHOUSE_PASSWORD or ?password_file=FILE) or chdb:DIR "
        "(ClickHouse embedded); README 'Storing attributed flows'",
    )
    s.add_argument(
        "--follow",
        action="store_true",
        help="follow the one FILE like tail -F from its start: keeps reading as it grows, "
        "across rotation and truncation (Ctrl-C stops)",
    )
    s.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="with --follow: keep the read position in FILE (device, inode, offset, a "
        "fingerprint of the file's start), committed once the records before it are "
        "durable in the output, and resume there on start (also in the file rotated "
        "while stopped); at-least-once: README 'Resuming a followed file'",
    )
    s.add_argument(
        "--checkpoint-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="commit the checkpoint this often (each commit fsyncs a JSON/CSV output)",
    )
    s.add_argument(
        "--ignore-bad-checkpoint",
        action="store_true",
        help="a checkpoint that cannot be read: say so and start from the file's start "
        "(default: exit 2)",
    )
    s.add_argument("--batch-size", type=_positive, default=4096, help="records per request")
    s.add_argument(
        "--max-in-flight",
        type=_positive,
        default=4,
        help="batches sent and not yet answered (memory: about 3 + this many batches)",
    )
    s.add_argument(
        "--progress",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="a progress line on stderr this often (0: none)",
    )
    s.add_argument(
        "--stream-idle",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="close the stream after this long with nothing to send, and open another "
        "when records come (keep it below the service's [api] stream_idle_timeout, 300 s)",
    )
    s.add_argument(
        "--jobs",
        type=_positive,
        default=1,
        metavar="N",
        help="decode, pack and format in N worker processes (each its own stream to the "
        "service; the output keeps the input's order). One process does ~50 k records per "
        "CPU second; use up to one per free core",
    )
    s.add_argument("--stats", metavar="FILE", help="write the final counters there as JSON")
    from attribution.client_commands import add_replica_options

    add_replica_options(s, in_flight=False)


def _store_errors() -> tuple[type[Exception], ...]:
    from attribution.clickhouse import ClickHouseError
    from attribution.sinks import OutputError

    return (OutputError, ClickHouseError)


_ERR_LOCK = threading.Lock()


def err(text: str) -> None:
    """A line on stderr: one write, under a lock. The reader thread reports bad
    records while the main thread does; print's text and newline are two
    writes, and two threads interleaved them into "AB" and an empty line."""
    with _ERR_LOCK:
        sys.stderr.write(f"attribution enrich: {text}\n")
        sys.stderr.flush()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread, so the run ends as on Ctrl-C: a
    followed file never ends, and supervisors (systemd, ``docker stop``,
    Kubernetes) end a run with SIGTERM, whose default killed the process on
    the spot: the Parquet file left ``.partial`` without its footer, the last
    ClickHouse insert and the counters never written. A KeyboardInterrupt, so
    every path that cleans up after Ctrl-C cleans up after it too."""


def _terminated(signum: int, frame: object) -> None:
    from attribution.enrich_checkpoint import DEFER

    if not DEFER.interrupt(Terminated()):  # else raised once the batch is written and noted
        raise Terminated


@contextlib.contextmanager
def _sigterm_ends_the_run() -> Iterator[None]:
    """SIGTERM raises ``Terminated`` while the run lasts (main thread only:
    Python runs handlers there; elsewhere, as a library call, nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def cmd_enrich(args: argparse.Namespace) -> int:

    opts = Options(
        inputs=args.inputs,
        input_format=None if args.input_format == "auto" else args.input_format,
        output_format=args.output_format,
        follow=args.follow,
        batch_size=args.batch_size,
        max_in_flight=args.max_in_flight,
        progress=args.progress,
        stream_idle=args.stream_idle,
        jobs=args.jobs,
        checkpoint=args.checkpoint,
        checkpoint_interval=args.checkpoint_interval,
        ignore_bad_checkpoint=args.ignore_bad_checkpoint,
    )
    from attribution.client_commands import balancing

    opts.balancing = balancing(args)
    if args.follow and (len(args.inputs) != 1 or args.inputs[0] == "-"):
        err("--follow takes exactly one FILE")
        return 2
    if args.checkpoint is not None and (not args.follow or args.jobs > 1):
        err("--checkpoint needs --follow, and runs with --jobs 1")
        return 2
    output = args.output or ""
    if args.checkpoint and output.startswith("parquet:") and "{part}" not in output:
        err(
            "--checkpoint with Parquet needs parts (parquet:DIR/flows-{part}.parquet): one "
            "file is written whole at the end, and a restarted run would replace it"
        )
        return 2
    if not 0 < args.checkpoint_interval <= 3600:
        err("--checkpoint-interval: between 0 and 3600 seconds")
        return 2
    if args.output is not None:
        from attribution.sinks import OutputError, parse_output

        if args.output_format != "json":
            err("--output-format applies to stdout; --output stores a fixed set of columns")
            return 2
        try:
            parse_output(args.output)
        except OutputError as exc:
            err(f"--output: {exc}")
            return 2
        opts.output = args.output
    counters = Counters(echo=err)
    try:
        with _sigterm_ends_the_run():
            run(args.connection, opts, sys.stdout.buffer, err, counters)
    except Terminated:  # the output finished, the counters below: a normal stop
        return 128 + signal.SIGTERM
    except WorkerError as exc:  # --jobs: a worker lost the service, or failed
        err(str(exc))
        return 1
    except CheckpointError as exc:  # unreadable at the start (exit 2), unwritable later
        err(str(exc))
        return 2 if counters.written == 0 else 1
    except _store_errors() as exc:
        err(f"--output: {exc}")
        return 2 if counters.written == 0 else 1
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        err(f"{exc.filename or ''}: {exc.strerror or exc}")
        return 2
    finally:
        err(counters.summary())
        if args.stats:
            with open(args.stats, "wb") as f:
                f.write(orjson.dumps(counters.as_json(), option=orjson.OPT_INDENT_2))
    return 0
