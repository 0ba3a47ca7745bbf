"""`attribution enrich` leaves nothing of gRPC for the interpreter's exit.

The bug (rare): enrich hung at exit in grpc's ``_Rendezvous.__del__`` during
the final garbage collection. A stream's call object (the ``_Rendezvous``,
which is also the ``grpc.RpcError`` raised when the stream ends) survived the
run in a reference cycle (the error's traceback holds the frames that hold the
call) or in an abandoned generator, and was only finalised by the interpreter's
last collection; by then daemon threads (ours, grpc's channel spin thread) are
frozen wherever they were, possibly inside ``with call._state.condition``, and
``__del__`` waits for that lock forever. So, on every way a run ends (all
answered, the consumer stopping early as Ctrl-C or a failed write does, the
service going away), these tests pin: no call object left alive for a later
collection (collection disabled while they run, so nothing is hidden by an
earlier one), and no thread of the run still running. A last test runs short
``attribution enrich`` processes that end those ways and wants each to exit.
"""

from __future__ import annotations

import gc
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc._channel import _Rendezvous

from attribution import enrich
from attribution.balancing import BalancingError
from attribution.client import Balancing
from attribution.enrich import resolve_batches
from attribution.enrich_records import Counters, FlowBatch
from tests.attribution.served import Server

DATA = Path(__file__).parent / "data" / "enrich"
RAW = b'{"exporter":"127.0.1.1","src_addr":"10.1.0.1","dst_addr":"10.1.2.3"}'


def batches(limit: int | None = None) -> Iterator[FlowBatch]:
    row = ("127.0.1.1", "10.1.0.1", "10.1.2.3", *[None] * 8)
    n = 0
    while limit is None or n < limit:
        n += 1
        yield FlowBatch(["x"] * 10, [1] * 10, ["native"] * 10, [RAW] * 10, [row] * 10)


def live_calls() -> list[object]:
    """Call objects still in memory, reachable or garbage not yet collected."""
    return [o for o in gc.get_objects() if isinstance(o, _Rendezvous)]


def run_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("balanced-") and t.is_alive()]


@pytest.fixture
def no_collection():
    """Cyclic collection off: what the run leaves to a collection stays visible."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()


def assert_nothing_left() -> None:
    assert run_threads() == []
    assert live_calls() == []


def test_a_run_answered_to_the_end_leaves_no_call_and_no_thread(server, no_collection):
    got = list(resolve_batches(server.target, batches(20), max_in_flight=2))
    assert len(got) == 20
    del got
    assert_nothing_left()


def test_a_consumer_stopping_early_leaves_no_call_and_no_thread(server, no_collection):
    """Ctrl-C or a failed write in the main thread: the generator is closed mid-run."""
    answers = resolve_batches(server.target, batches(), max_in_flight=2, read_ahead=2)
    for _ in range(3):
        next(answers)
    answers.close()
    del answers
    assert_nothing_left()


def test_an_error_in_the_writer_of_a_run_leaves_no_call_and_no_thread(server, no_collection):
    """enrich.run closes the stream itself when its writer raises, without waiting for
    the garbage collector to finalise the abandoned generator."""

    class Broken:
        def write(self, batch, answers) -> None:
            raise KeyboardInterrupt

        def close(self) -> None:
            pass

    opts = enrich.Options(inputs=[str(DATA / "goflow2.jsonl")], batch_size=2, progress=0)
    with pytest.raises(KeyboardInterrupt):
        enrich.run(server.target, opts, sys.stdout.buffer, lambda _: None, Counters(), Broken())
    assert_nothing_left()


def test_a_service_gone_mid_run_leaves_no_call_and_no_thread(no_collection):
    """The service stops: the streams end with an error, which reaches the caller
    without the call objects (their tracebacks) attached."""
    s = Server()
    answers = resolve_batches(
        s.target,
        batches(),
        max_in_flight=2,
        balancing=Balancing(max_attempts=2, ready_timeout=1.0),
    )
    next(answers)
    s.stop()
    with pytest.raises((grpc.RpcError, BalancingError)) as caught:
        for _ in answers:
            pass
    caught = None  # noqa: F841 - the error (and its traceback) dropped as a caller does
    del answers
    assert_nothing_left()


@pytest.mark.parametrize("ending", ["sigint", "service_stops", "all_read"])
def test_enrich_processes_ended_every_way_exit(ending):
    """Short runs that end by Ctrl-C, by the service stopping, or at the end of
    their input each exit (the hang needed a thread frozen at the wrong moment:
    several runs each, a small switch interval to make that moment likelier)."""
    code = (
        "import sys; sys.setswitchinterval(1e-5); from attribution.cli import main; "
        "sys.exit(main())"
    )
    line = (DATA / "goflow2.jsonl").read_bytes()
    for run in range(4):
        s = Server()
        cmd = [sys.executable, "-c", code, "enrich", "--target", s.target, "--progress", "0"]
        cmd += ["--batch-size", "2", "--ready-timeout", "1", "--retries", "2"]
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            for _ in range(200 + 100 * run):
                proc.stdin.write(line)
            proc.stdin.flush()
            time.sleep(0.5)
            if ending == "sigint":
                proc.send_signal(signal.SIGINT)
            elif ending == "service_stops":
                s.stop()
        except BrokenPipeError:
            pass
        try:
            _, err = proc.communicate(timeout=120)  # closes its input: the end of it
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail(f"run {run} ({ending}) did not exit within 120 s")
        finally:
            s.stop()
        assert proc.returncode in (0, 1, 130), err.decode()


def test_lines_reported_from_several_threads_stay_whole(monkeypatch, tmp_path):
    """The reader thread and the main thread both report bad records: each line
    whole, none empty (print wrote text and newline apart, and two threads
    interleaved them; seen once in the suite as an empty stderr line)."""
    import io

    from attribution.enrich_cli import err

    path = tmp_path / "stderr"
    # as sys.stderr is: text over an unbuffered file, each write straight to the fd
    raw = open(path, "wb", buffering=0)  # noqa: SIM115 - closed below
    out = io.TextIOWrapper(raw, encoding="utf-8", line_buffering=True, write_through=True)
    monkeypatch.setattr(sys, "stderr", out)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [
            threading.Thread(target=lambda k=k: [err(f"t{k} {i}") for i in range(3000)])
            for k in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
        out.close()
    lines = path.read_text().split("\n")
    assert lines.pop() == ""
    assert sorted(lines) == sorted(
        f"attribution enrich: t{k} {i}" for k in range(4) for i in range(3000)
    )
