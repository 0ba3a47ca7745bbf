"""`attribution enrich --follow --checkpoint FILE`: a restarted run carries on where
the last one's durable output ends, every record written once.

Before it, a restarted followed run (systemd, Kubernetes) read the file from
its start again and wrote every record a second time. These tests run the
real command as separate processes against a real gRPC server, stop it with
SIGTERM as a supervisor does, append records, rotate or truncate the file
between runs, and count every record in the output: each record carries its
number in ``bytes``, so a duplicate or a gap shows.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from attribution.enrich_checkpoint import (
    FINGERPRINT,
    CheckpointError,
    Position,
    fingerprint,
    load,
    save,
)
from tests.attribution.served import Server

pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


RUNS: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def no_run_left():
    """A test that fails while its run follows the file would leave it running
    for good (a followed run never ends): killed here, whatever happened."""
    yield
    while RUNS:
        proc = RUNS.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def records(first: int, last: int) -> bytes:
    """Goflow2 lines numbered first..last-1 in ``bytes`` (padded: lines of
    several lengths, so a position off by a few bytes lands inside a line)."""
    out = []
    for n in range(first, last):
        rec = {"sampler_address": "127.0.1.1", "src_addr": "10.1.0.1", "dst_addr": "10.1.2.1"}
        rec["bytes"] = n
        if n % 3 == 1:
            rec["pad"] = "x" * (n % 40)
        out.append(json.dumps(rec))
    return ("\n".join(out) + "\n").encode()


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


class Run:
    """One `enrich --follow --checkpoint` process, its stdout appended to ``out``."""

    def __init__(self, server: Server, log: Path, ckpt: Path, out: Path, *args: str) -> None:
        self.err = out.with_suffix(f".err{time.monotonic_ns()}")
        self.ckpt = ckpt
        cmd = [
            sys.executable, "-m", "attribution.cli", "enrich", "--target", server.target,
            "--follow", str(log), "--checkpoint", str(ckpt), "--checkpoint-interval", "0.2",
            "--progress", "0.1", "--batch-size", "64", *args,
        ]  # fmt: skip
        with open(out, "ab") as sink, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=sink, stderr=err)
        RUNS.append(self.proc)

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def wait_committed(self, log: Path, timeout: float = 240.0) -> None:
        """Until the checkpoint names ``log`` at its end: every record in it is
        durable in the output (the checkpoint is the run's own word for it)."""
        deadline = time.monotonic() + timeout
        pos = None
        while time.monotonic() < deadline:
            st = log.stat()
            try:
                pos = load(str(self.ckpt))
            except CheckpointError:
                pos = None
            if pos is not None and (pos.ino, pos.offset) == (st.st_ino, st.st_size):
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"enrich ended ({self.proc.returncode}): {self.stderr()}")
            time.sleep(0.05)
        raise AssertionError(f"{log} not committed within {timeout} s ({pos}): {self.stderr()}")

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail("enrich did not exit within 120 s of SIGTERM")
        assert code == 128 + signal.SIGTERM, self.stderr()
        return code


def numbers(out: Path) -> Counter:
    return Counter(json.loads(line)["bytes"] for line in out.read_text().splitlines())


def exactly_once(got: Counter, first: int, last: int) -> None:
    twice = sorted(n for n, c in got.items() if c > 1)
    missing = sorted(set(range(first, last)) - set(got))
    assert not twice and not missing and set(got) == set(range(first, last)), (
        f"{len(twice)} written twice (first {twice[:5]}), {len(missing)} missing "
        f"(first {missing[:5]})"
    )


def test_a_restart_resumes_after_the_last_durable_record(server, tmp_path):
    log, ckpt, out = tmp_path / "flows.json", tmp_path / "ckpt", tmp_path / "out.jsonl"
    log.write_bytes(records(0, 3000))
    run = Run(server, log, ckpt, out)
    run.wait_committed(log)
    run.terminate()
    assert load(str(ckpt)).offset == log.stat().st_size
    append(log, records(3000, 5000))
    run = Run(server, log, ckpt, out)
    run.wait_committed(log)
    run.terminate()
    assert f"resuming {log} at byte" in run.stderr()
    exactly_once(numbers(out), 0, 5000)


def test_stopped_mid_stream_and_restarted_writes_each_record_once(server, tmp_path):
    """SIGTERM while batches are on the wire and in the reader: those not
    written are not committed, and the position of the last written batch is
    exact (batches of 64 end inside the reader's chunks)."""
    log, ckpt, out = tmp_path / "flows.json", tmp_path / "ckpt", tmp_path / "out.jsonl"
    log.write_bytes(records(0, 40_000))
    for _ in range(3):
        run = Run(server, log, ckpt, out)
        lines = out.read_text().count("\n") if out.exists() else 0
        while out.read_text().count("\n") == lines and run.proc.poll() is None:
            time.sleep(0.02)
        run.terminate()
    run = Run(server, log, ckpt, out)
    run.wait_committed(log)
    run.terminate()
    exactly_once(numbers(out), 0, 40_000)


def test_rotation_while_running_and_between_runs(server, tmp_path):
    log, ckpt, out = tmp_path / "flows.json", tmp_path / "ckpt", tmp_path / "out.jsonl"
    log.write_bytes(records(0, 500))
    run = Run(server, log, ckpt, out)
    run.wait_committed(log)
    log.rename(tmp_path / "flows.json.1")  # rotated while running: drained, then the new one
    append(tmp_path / "flows.json.1", records(500, 600))
    log.write_bytes(records(600, 900))
    run.wait_committed(log)  # the new file's end
    run.terminate()
    pos = load(str(ckpt))
    assert (pos.ino, pos.offset) == (log.stat().st_ino, log.stat().st_size)  # it followed
    append(log, records(900, 1000))  # while stopped: written, then rotated
    log.rename(tmp_path / "flows.json.2")
    log.write_bytes(records(1000, 1200))
    run = Run(server, log, ckpt, out)
    run.wait_committed(log)
    run.terminate()
    assert "flows.json.2 at byte" in run.stderr()
    exactly_once(numbers(out), 0, 1200)


def test_a_truncated_file_is_read_from_its_start_saying_why(server, tmp_path):
    log, ckpt, out = tmp_path / "flows.json", tmp_path / "ckpt", tmp_path / "out.jsonl"
    log.write_bytes(records(0, 400))
    run = Run(server, log, ckpt, out)
    run.wait_committed(log)
    run.terminate()
    with open(log, "r+b") as f:  # the same inode, shorter than the checkpoint's offset
        f.truncate(0)
        f.write(records(400, 450))
    run = Run(server, log, ckpt, out)
    run.wait_committed(log)
    run.terminate()
    assert "truncated; reading" in run.stderr()
    exactly_once(numbers(out), 0, 450)


def test_a_rewritten_file_on_the_same_inode_is_told_by_its_first_bytes(server, tmp_path):
    log, ckpt, out = tmp_path / "flows.json", tmp_path / "ckpt", tmp_path / "out.jsonl"
    log.write_bytes(records(0, 100))
    run = Run(server, log, ckpt, out)
    run.wait_committed(log)
    run.terminate()
    with open(log, "r+b") as f:  # longer than before: only the fingerprint tells
        f.truncate(0)
        f.write(records(100, 400))
    run = Run(server, log, ckpt, out)
    run.wait_committed(log)
    run.terminate()
    assert "first 1024 bytes changed" in run.stderr()
    exactly_once(numbers(out), 0, 400)


def test_a_checkpoint_of_another_file_is_not_applied_to_this_one(server, tmp_path):
    other, log = tmp_path / "a" / "other.json", tmp_path / "b" / "flows.json"
    other.parent.mkdir()
    log.parent.mkdir()
    ckpt, out = tmp_path / "ckpt", tmp_path / "out.jsonl"
    other.write_bytes(records(0, 300))
    log.write_bytes(records(1000, 1300))
    st = other.stat()
    head = other.read_bytes()[: min(FINGERPRINT, 200)]
    save(str(ckpt), Position(str(other), st.st_dev, st.st_ino, 200, len(head), fingerprint(head)))
    run = Run(server, log, ckpt, out)
    run.wait_committed(log)
    run.terminate()
    assert f"it is of another file, {other}; reading {log} from its start" in run.stderr()
    exactly_once(numbers(out), 1000, 1300)


@pytest.mark.parametrize(
    "text",
    [b"{not json", b"[]", b'{"version": 1, "device": 1}', b'{"version": 9}', b"\xff\xfe"],
)
def test_a_corrupt_checkpoint_ends_the_run_unless_told_to_ignore_it(server, tmp_path, text):
    log, ckpt, out = tmp_path / "flows.json", tmp_path / "ckpt", tmp_path / "out.jsonl"
    log.write_bytes(records(0, 100))
    ckpt.write_bytes(text)
    run = Run(server, log, ckpt, out)
    assert run.proc.wait(timeout=120) == 2
    assert f"checkpoint {ckpt}: " in run.stderr()
    assert "--ignore-bad-checkpoint" in run.stderr()
    assert out.read_bytes() == b""
    assert ckpt.read_bytes() == text  # left for the operator to look at
    run = Run(server, log, ckpt, out, "--ignore-bad-checkpoint")
    run.wait_committed(log)
    run.terminate()
    assert "ignored (--ignore-bad-checkpoint)" in run.stderr()
    exactly_once(numbers(out), 0, 100)
    assert load(str(ckpt)).offset == log.stat().st_size  # replaced by a good one


def test_checkpoint_load_names_what_is_wrong(tmp_path):
    path = tmp_path / "ckpt"
    assert load(str(path)) is None  # none yet: a first run
    path.write_text('{"version": 1, "device": 1, "inode": 2, "offset": -5}')
    with pytest.raises(CheckpointError, match="offset -5 is not a count"):
        load(str(path))


def test_parquet_parts_resume_each_record_once(server, tmp_path):
    log, ckpt, out = tmp_path / "flows.json", tmp_path / "ckpt", tmp_path / "stdout"
    store = tmp_path / "pq"
    store.mkdir()
    spec = f"parquet:{store}/flows-{{part}}.parquet?row_group=700&max_delay=0.2"
    log.write_bytes(records(0, 2000))
    run = Run(server, log, ckpt, out, "--output", spec)
    run.wait_committed(log)
    run.terminate()
    append(log, records(2000, 3000))
    run = Run(server, log, ckpt, out, "--output", spec)
    run.wait_committed(log)
    run.terminate()
    parts = sorted(store.iterdir())
    assert all(p.suffix == ".parquet" for p in parts), parts  # no .partial left
    assert len(parts) >= 4  # 2000 in groups of 700, then the second run's own
    got = Counter(n for p in parts for n in pq.read_table(p).column("bytes").to_pylist())
    exactly_once(got, 0, 3000)


def test_parquet_as_one_file_is_refused_with_a_checkpoint(server, tmp_path):
    log = tmp_path / "flows.json"
    log.write_bytes(records(0, 10))
    run = Run(server, log, tmp_path / "ckpt", tmp_path / "o", "--output", f"parquet:{log}.pq")
    assert run.proc.wait(timeout=120) == 2
    assert "needs parts (parquet:DIR/flows-{part}.parquet)" in run.stderr()


def test_chdb_store_resumes_each_record_once(server, tmp_path):
    pytest.importorskip("chdb")
    from attribution.clickhouse import ChdbConnection

    log, ckpt, out = tmp_path / "flows.json", tmp_path / "ckpt", tmp_path / "stdout"
    spec = f"chdb:{tmp_path / 'db'}?ttl_days=36500&rollup_ttl_days=36500&batch=500&max_delay=0.2"
    log.write_bytes(records(0, 1500))
    run = Run(server, log, ckpt, out, "--output", spec)
    run.wait_committed(log)
    run.terminate()
    append(log, records(1500, 2500))
    run = Run(server, log, ckpt, out, "--output", spec)
    run.wait_committed(log)
    run.terminate()
    conn = ChdbConnection(str(tmp_path / "db"))
    try:
        got = Counter(n for (n,) in conn.rows("SELECT bytes FROM attribution.flows"))
    finally:
        conn.close()
    exactly_once(got, 0, 2500)


def test_checkpoint_file_is_replaced_atomically(tmp_path):
    path = tmp_path / "ckpt"
    pos = Position("/x", 1, 2, 3000, 1024, "0" * 64)
    save(str(path), pos)
    save(str(path), pos.at(4000))
    assert load(str(path)) == pos.at(4000)
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]  # no temporary file left


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("whole", [True, False])
def test_each_batch_position_is_the_end_of_its_last_record(tmp_path, monkeypatch, compiled, whole):
    """Byte-exact positions, batches cut inside the reader's chunks, with bad
    lines between records, for both readers and both chunk shapes."""
    import threading
    from functools import partial

    from attribution import enrich_records
    from attribution.enrich_records import Counters, read_batches
    from attribution.enrich_sources import IDLE, _Splitter, follow

    if compiled and enrich_records._enrich_scan is None:
        pytest.skip("built without the compiled reader")
    monkeypatch.setattr(
        enrich_records, "SCANNER", enrich_records._enrich_scan if compiled else None
    )
    lines = records(0, 3000).splitlines(keepends=True)
    for i in range(250, len(lines), 500):
        lines.insert(i, b"not json\n")
    path = tmp_path / "flows.json"
    path.write_bytes(b"".join(lines))
    ends, offset = {}, 0
    for line in lines:
        offset += len(line)
        if line.startswith(b"{"):
            ends[json.loads(line)["bytes"]] = offset
    stop = threading.Event()

    def chunks():
        for chunk in follow(
            str(path), stop=stop, splitter=partial(_Splitter, whole=whole), resume=True
        ):
            if chunk is IDLE:
                stop.set()
            yield chunk

    got = [
        (json.loads(b.raw[-1])["bytes"], b.position.offset)
        for b in read_batches(chunks(), None, Counters(), 97, fields=False)
    ]
    assert sum(1 for _ in got) >= 3000 // 97
    assert [offset for _, offset in got] == [ends[n] for n, _ in got]
    assert got[-1] == (2999, path.stat().st_size)
