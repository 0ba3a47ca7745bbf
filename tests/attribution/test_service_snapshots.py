"""The service's snapshots (``attribution.snapshots``) as an operator meets them: a process
killed while writing (kill -9, the OOM killer) leaves the previous snapshot and a temporary
file, which the next start removes (never a write still going on); writes never overlap;
writes and the load at start are counted in a real scrape, failures included."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from attribution.service import Service
from ribd.events import RoutesAnnounced, SessionState
from ribd.snapshot import remove_leftovers
from ribd.speaker import wait_until
from tests.attribution.helpers import EDGE1, attrs, external_service
from tests.attribution.observed import samples, scrape_text

V4 = "ipv4 unicast"

# A child that writes a snapshot of its own RIB to argv[1] and is stopped for good
# between the temporary file's write and its rename (its fsync never returns).
_KILLED_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from ribd.events import RoutesAnnounced, SessionState
    from ribd.rib import Rib
    from ribd.snapshot import write_snapshot
    from tests.attribution.helpers import EDGE1, attrs

    rib = Rib()
    rib.apply(SessionState(EDGE1, "up"))
    prefixes = tuple(f"10.9.{i}.0/24" for i in range(200))
    rib.apply(RoutesAnnounced(EDGE1, "ipv4 unicast", prefixes, None, attrs((65009,))))

    def stuck(fd):
        print("writing", flush=True)
        time.sleep(3600)

    os.fsync = stuck
    write_snapshot(rib, sys.argv[1])
    """
)


def _service(tmp_path: Path, snapshot: Path, extra: str = "") -> Service:
    """A service on helpers.CONFIG, external ExaBGP, snapshots at ``snapshot`` (not started)."""
    return external_service(tmp_path, f'snapshot_path = "{snapshot}"\n', extra)


def _killed_mid_write(snapshot: Path) -> Path:
    """Run the writer, SIGKILL it inside the write: the temporary file it left."""
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(snapshot)],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "writing\n"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    (left,) = snapshot.parent.glob(f"{snapshot.name}.tmp.*")
    return left


def test_a_start_after_a_write_killed_midway_loads_the_previous_snapshot_and_removes_the_leftover(
    tmp_path: Path, caplog
) -> None:
    snapshot = tmp_path / "state" / "rib.snapshot"
    first = _service(tmp_path, snapshot)
    first.rib.apply(SessionState(EDGE1, "up"))
    first.rib.apply(RoutesAnnounced(EDGE1, V4, ("10.1.0.0/16",), None, attrs((65001,))))
    first.write_snapshot()
    previous = snapshot.read_bytes()

    left = _killed_mid_write(snapshot)
    assert left.stat().st_size > 0
    assert snapshot.read_bytes() == previous  # the rename never happened
    old = time.time() - 3600  # the crash was before this start
    os.utime(left, (old, old))
    # A second old: with the path held (test_snapshot_owner), no other service can be
    # writing there, so it is a crash loop's leftover too.
    fresh = snapshot.parent / f"{snapshot.name}.tmp.young"
    fresh.write_bytes(b"partial")
    unrelated = snapshot.parent / "rib.snapshot.bak"
    unrelated.write_bytes(b"kept")

    second = _service(tmp_path, snapshot)
    caplog.set_level("WARNING", logger="attribution")
    second.start()
    try:
        wait_until(lambda: second.rib.routers, 10)
        assert not left.exists()
        assert f"removed {left} (" in caplog.text
        assert "a snapshot write that never finished" in caplog.text
        assert not fresh.exists() and unrelated.exists()
        answer = second.rib.lookup(EDGE1, V4, "10.1.2.3")
        assert answer is not None and answer.stale
        assert answer.attributes.origin_as == 65001
        assert second.rib.lookup(EDGE1, V4, "10.9.1.1") is None  # the killed write's routes
    finally:
        second.stop()


def test_only_old_regular_files_named_after_the_snapshot_are_taken_for_leftovers(
    tmp_path: Path,
) -> None:
    snapshot = tmp_path / "rib.snapshot"
    old = time.time() - 3600
    target = tmp_path / "elsewhere"
    target.write_bytes(b"not ours")
    link = tmp_path / "rib.snapshot.tmp.link"
    link.symlink_to(target)
    os.utime(link, (old, old), follow_symlinks=False)
    other = tmp_path / "other.snapshot.tmp.abc"  # another snapshot's
    other.write_bytes(b"x")
    os.utime(other, (old, old))
    left = tmp_path / "rib.snapshot.tmp.abc"
    left.write_bytes(b"12345")
    os.utime(left, (old, old))
    assert remove_leftovers(str(snapshot)) == [(str(left), 5)]
    assert link.is_symlink() and target.exists() and other.exists()
    assert remove_leftovers(str(tmp_path / "missing" / "rib.snapshot")) == []


def test_the_shutdown_write_waits_for_a_periodic_write_in_progress(
    tmp_path: Path, monkeypatch
) -> None:
    """Two writes at once hold two captures (~1.7 GB above the RIB each with 64
    routers, ~11 s): the stop's write, after a 5 s join of the periodic thread,
    overlapped a periodic write still going on, at the moment a crash costs most."""
    import threading

    import attribution.snapshots as service_module

    snapshot = tmp_path / "rib.snapshot"
    service = _service(tmp_path, snapshot)
    service.start()
    service.rib.apply(SessionState(EDGE1, "up"))
    service.rib.apply(RoutesAnnounced(EDGE1, V4, ("10.1.0.0/16",), None, attrs((65001,))))
    real = service_module.write_snapshot
    inside, most, calls = [0], [0], [0]
    first_in, release = threading.Event(), threading.Event()
    count = threading.Lock()

    def slow_write(rib, path, **kw):
        with count:
            calls[0] += 1
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            first = calls[0] == 1
        if first:
            first_in.set()
            release.wait(30)
        try:
            return real(rib, path, **kw)
        finally:
            with count:
                inside[0] -= 1

    monkeypatch.setattr(service_module, "write_snapshot", slow_write)
    periodic = threading.Thread(target=service.write_snapshot)
    periodic.start()
    assert first_in.wait(10)
    stopping = threading.Thread(target=service.stop)
    stopping.start()
    # The stop reaches its own write at once (the periodic thread it joins is not
    # this one); it must not start it while the first is going on.
    try:
        entered = wait_until(lambda: calls[0] == 2, 1.5)
    except TimeoutError:
        entered = False
    release.set()
    periodic.join(30)
    stopping.join(30)
    assert not periodic.is_alive() and not stopping.is_alive()
    assert not entered and calls[0] == 2 and most[0] == 1
    assert snapshot.exists()


def _scrape(service: Service) -> dict[tuple[str, tuple], float]:
    """{(sample, sorted labels): value} from the service's /metrics over HTTP."""
    return samples(scrape_text(service.metrics_port))


def _with_metrics(tmp_path: Path, snapshot: Path) -> Service:
    return _service(tmp_path, snapshot, '\n[metrics]\nlisten = "127.0.0.1:0"\n')


def test_snapshot_writes_failures_and_the_load_at_start_are_scraped(tmp_path: Path) -> None:
    state = tmp_path / "state"
    snapshot = state / "rib.snapshot"
    state.mkdir()
    left = state / "rib.snapshot.tmp.abcdefgh"
    left.write_bytes(b"a write killed midway")
    old = time.time() - 3600
    os.utime(left, (old, old))
    service = _with_metrics(tmp_path, snapshot)
    service.start()
    try:
        got = _scrape(service)
        assert got[("attribution_snapshot_load", (("outcome", "none"),))] == 1
        assert got[("attribution_snapshot_load", (("outcome", "loaded"),))] == 0
        assert got[("attribution_snapshot_leftovers_removed_total", ())] == 1
        assert got[("attribution_snapshot_writes_total", (("outcome", "written"),))] == 0
        assert got[("attribution_snapshot_last_written_timestamp_seconds", ())] == 0

        service.rib.apply(SessionState(EDGE1, "up"))
        service.rib.apply(RoutesAnnounced(EDGE1, V4, ("10.1.0.0/16",), None, attrs((65001,))))
        before = time.time()
        service.write_snapshot()
        got = _scrape(service)
        assert got[("attribution_snapshot_writes_total", (("outcome", "written"),))] == 1
        assert got[("attribution_snapshot_bytes", ())] == snapshot.stat().st_size > 0
        assert before <= got[("attribution_snapshot_last_written_timestamp_seconds", ())]
        assert got[("attribution_snapshot_last_write_seconds", ())] > 0

        # The disk goes wrong: where the snapshot's directory was is now a file.
        kept = snapshot.read_bytes()
        shutil.rmtree(state)
        state.write_bytes(b"not a directory")
        service.write_snapshot()  # logged and counted, not raised
        got = _scrape(service)
        assert got[("attribution_snapshot_writes_total", (("outcome", "failed"),))] == 1
        assert got[("attribution_snapshot_writes_total", (("outcome", "written"),))] == 1
    finally:
        service.stop()  # its own write fails too: counted, the stop goes on
    state.unlink()
    state.mkdir()
    snapshot.write_bytes(kept)
    again = _with_metrics(tmp_path, snapshot)
    again.start()
    try:
        got = _scrape(again)
        assert got[("attribution_snapshot_load", (("outcome", "loaded"),))] == 1
        assert got[("attribution_snapshot_load_seconds", ())] > 0
    finally:
        again.stop()
    snapshot.write_bytes(kept[:-100])  # cut short: refused, the service starts empty
    third = _with_metrics(tmp_path, snapshot)
    third.start()
    try:
        got = _scrape(third)
        assert got[("attribution_snapshot_load", (("outcome", "refused"),))] == 1
        assert not third.rib.routers
    finally:
        third.stop()


def test_a_write_that_fails_unforeseen_is_counted_and_the_next_one_runs(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    """Only OSError was caught: anything else ended the periodic thread, and no
    snapshot was written again until a restart, which then had an old one."""
    import attribution.snapshots as snapshots_module

    snapshot = tmp_path / "rib.snapshot"
    service = _service(tmp_path, snapshot)
    service.rib.apply(SessionState(EDGE1, "up"))
    service.rib.apply(RoutesAnnounced(EDGE1, V4, ("10.1.0.0/16",), None, attrs((65001,))))
    real = snapshots_module.write_snapshot
    calls = [0]

    def broken_once(rib, path, **kw):
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("a state the capture did not foresee")
        return real(rib, path, **kw)

    monkeypatch.setattr(snapshots_module, "write_snapshot", broken_once)
    service.write_snapshot()
    assert "a state the capture did not foresee" in caplog.text
    assert not snapshot.exists()
    service.write_snapshot()
    assert snapshot.exists()
    assert (service.snapshots.stats.failed, service.snapshots.stats.written) == (1, 1)


def test_a_leftover_too_young_at_start_goes_at_a_later_write_when_the_path_is_not_held(
    tmp_path: Path,
) -> None:
    """Unguarded (no lock file could be made; here: loaded without a start), a file
    younger than a minute may be a write going on elsewhere and is kept; a crash loop
    restarts within seconds, so a later write takes it once it is old enough."""
    snapshot = tmp_path / "rib.snapshot"
    left = tmp_path / "rib.snapshot.tmp.crashed1"
    left.write_bytes(b"a write killed a second ago")
    service = _service(tmp_path, snapshot)
    service.snapshots.load()
    assert left.exists()  # might be a write going on elsewhere: kept
    old = time.time() - 3600  # ... and a minute later, or more
    os.utime(left, (old, old))
    service.write_snapshot()
    assert not left.exists() and snapshot.exists()
    assert service.snapshots.stats.leftovers_removed == 1
