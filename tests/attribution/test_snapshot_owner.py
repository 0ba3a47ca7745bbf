"""One service per snapshot path, and a snapshot path set by a reload written periodically.

Two services given one ``snapshot_path`` (a config copied to run a second instance,
ports changed, the path left) each wrote their own RIB over the other's every
interval: a restart of either then loaded the other's routers, and neither could tell
the other's write going on from a crashed write's leftover. The path is now held by
the service that uses it (``ribd.snapshot.SnapshotLock``, flock(2) on
``<path>.lock``): a second service is refused at start and at reload, naming the
first; the kernel drops the hold when its holder dies, kill -9 included.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from attribution.config import ConfigError
from ribd.events import RoutesAnnounced, SessionState
from ribd.speaker import wait_until
from tests.attribution.helpers import EDGE1, attrs, external_service
from tests.attribution.observed import ServedProcess, router_block

V4 = "ipv4 unicast"


def _service(tmp_path: Path, service_lines: str, name: str):
    """An in-process service (not started) with its own config file and feed socket."""
    own = tmp_path / name
    own.mkdir()
    return external_service(own, service_lines)


def test_a_second_service_on_the_same_snapshot_path_is_refused_at_start_naming_the_first(
    tmp_path: Path,
) -> None:
    snapshot = tmp_path / "state" / "rib.snapshot"
    first = _service(tmp_path, f'snapshot_path = "{snapshot}"\n', "first")
    first.start()
    try:
        first.rib.apply(SessionState(EDGE1, "up"))
        first.rib.apply(RoutesAnnounced(EDGE1, V4, ("10.1.0.0/16",), None, attrs((65001,))))
        second = _service(tmp_path, f'snapshot_path = "{snapshot}"\n', "second")
        with pytest.raises(ConfigError) as refused:
            second.start()
        message = str(refused.value)
        assert "service.snapshot_path" in message
        assert str(snapshot) in message
        assert f"in use by another attribution service (pid {os.getpid()})" in message
        first.write_snapshot()  # the first one goes on writing its own
        assert first.snapshots.stats.written == 1
    finally:
        first.stop()
    # Once the first has stopped, the path is free again.
    third = _service(tmp_path, f'snapshot_path = "{snapshot}"\n', "third")
    third.start()
    try:
        answer = third.rib.lookup(EDGE1, V4, "10.1.2.3")
        assert answer is not None and answer.attributes.origin_as == 65001
    finally:
        third.stop()


def test_the_hold_is_released_by_the_kernel_when_its_service_is_killed(tmp_path: Path) -> None:
    """Real processes: the second `attribution serve` exits 2 and names the first;
    once the first is SIGKILLed (no cleanup of its own runs), a new one starts."""
    snapshot = tmp_path / "rib.snapshot"
    routers = router_block("edge1", "127.0.0.2", "127.0.1.1")
    service = f'snapshot_path = "{snapshot}"\nsnapshot_interval = 10\n'
    first = ServedProcess(routers, service=service, log_args=())
    second = third = None
    try:
        wait_until(lambda: "snapshot" in first.log_text() and first.scraped(), 60, 0.1)
        second = ServedProcess(routers, service=service, log_args=())
        assert second.proc.wait(60) == 2
        said = second.log_text()
        assert f"in use by another attribution service (pid {first.proc.pid})" in said
        assert "Traceback" not in said
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait(30)
        third = ServedProcess(routers, service=service, log_args=())
        wait_until(third.scraped, 60, 0.1, "the third service's metrics")
        assert third.proc.poll() is None
        assert third.stop() == 0
        assert snapshot.exists()  # its stop wrote the snapshot
    finally:
        for s in (first, second, third):
            if s is not None:
                s.stop()


def test_a_reload_onto_a_snapshot_path_in_use_is_refused_and_keeps_the_old_one(
    tmp_path: Path,
) -> None:
    from ribd.snapshot import SnapshotLock, SnapshotPathInUse

    taken = tmp_path / "taken.snapshot"
    own = tmp_path / "own.snapshot"
    holder = SnapshotLock(str(taken))  # another service, as far as this one can tell
    service = _service(tmp_path, f'snapshot_path = "{own}"\n', "svc")
    service.start()
    try:
        config = Path(service.config_path)
        config.write_text(config.read_text().replace(str(own), str(taken)))
        result = service.reload()
        assert not result.ok
        assert "in use by another attribution service" in result.error
        assert str(taken) in result.error
        assert service.config.snapshot_path == str(own)
        service.write_snapshot()
        assert own.exists() and not taken.exists()
        # Freed, the same reload goes through; the old path is let go.
        holder.release()
        assert service.reload().ok
        assert service.config.snapshot_path == str(taken)
        SnapshotLock(str(own)).release()  # free now: no error
        with pytest.raises(SnapshotPathInUse):
            SnapshotLock(str(taken))
    finally:
        service.stop()
    assert taken.exists()


def test_a_reload_that_sets_a_snapshot_path_starts_the_periodic_writes(tmp_path: Path) -> None:
    """The periodic thread was started only when the path was set at start: a reload
    said it applied the path at once, but nothing was written until the stop."""
    snapshot = tmp_path / "rib.snapshot"
    service = _service(tmp_path, "snapshot_interval = 10\n", "svc")
    service.start()
    try:
        service.rib.apply(SessionState(EDGE1, "up"))
        service.rib.apply(RoutesAnnounced(EDGE1, V4, ("10.1.0.0/16",), None, attrs((65001,))))
        config = Path(service.config_path)
        config.write_text(
            config.read_text().replace("[service]\n", f'[service]\nsnapshot_path = "{snapshot}"\n')
        )
        assert service.reload().ok
        started = time.monotonic()
        # The counter, not the file: the file is renamed in before the count is taken.
        wait_until(lambda: service.snapshots.stats.written >= 1, 30, 0.1, "a periodic snapshot")
        assert time.monotonic() - started < 20
        assert snapshot.exists()
    finally:
        service.stop()


def test_a_leftover_is_removed_at_once_by_the_service_holding_the_path(tmp_path: Path) -> None:
    """Holding the path, nothing else writes there: a temporary file there is a killed
    write's, whatever its age (a crash loop restarts within seconds)."""
    snapshot = tmp_path / "rib.snapshot"
    left = tmp_path / "rib.snapshot.tmp.crashed1"
    left.write_bytes(b"a write killed a second ago")
    service = _service(tmp_path, f'snapshot_path = "{snapshot}"\n', "svc")
    service.start()
    try:
        assert not left.exists()
        assert service.snapshots.stats.leftovers_removed == 1
    finally:
        service.stop()


def test_a_lock_file_that_cannot_be_made_does_not_stop_the_service(tmp_path: Path, caplog) -> None:
    """A directory the service cannot write to fails its snapshot writes (counted,
    alerted on); it must not also keep the service from answering."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "rib.snapshot.lock").mkdir()  # in the way: cannot be opened as a file
    service = _service(tmp_path, f'snapshot_path = "{state / "rib.snapshot"}"\n', "svc")
    service.start()
    try:
        assert "cannot hold" in caplog.text
        assert service.grpc_port
    finally:
        service.stop()
