"""A periodic snapshot write waits while a table streams in (a load, a re-read).

A re-read holds ~1.7x the RIB and views for a while and a write ~0.9x more for its
seconds: together past the 1.9x a replica is sized for, so the two at once were the
OOM killer's case; and a snapshot taken mid-load is a partial table. The write now
waits for the load to end, at most one more interval; the stop's write never waits.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import attribution.snapshots as snapshots_module
from ribd.events import RoutesAnnounced, SessionState
from ribd.speaker import wait_until
from tests.attribution.helpers import EDGE1, attrs, external_service
from tests.attribution.observed import samples, scrape_text

V4 = "ipv4 unicast"


class Stream:
    """EDGE1's table streaming in (no End-of-RIB) from a thread until stopped."""

    def __init__(self, rib) -> None:
        self.rib = rib
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(0.05):
            prefixes = tuple(f"10.{k // 256 % 256}.{k % 256}.0/24" for k in range(n, n + 50))
            n += 50
            self.rib.apply(RoutesAnnounced(EDGE1, V4, prefixes, None, attrs((65001,))))

    def __enter__(self) -> Stream:
        self.rib.apply(SessionState(EDGE1, "up"))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _service(tmp_path: Path, interval: float, monkeypatch):
    snapshot = tmp_path / "rib.snapshot"
    service = external_service(
        tmp_path, f'snapshot_path = "{snapshot}"\n', '\n[metrics]\nlisten = "127.0.0.1:0"\n'
    )
    # Below the file's 10 s floor, so the test takes seconds; the loop reads it live.
    service.config = replace(service.config, snapshot_interval=interval)
    monkeypatch.setattr(snapshots_module, "SNAPSHOT_RETRY", 0.1)
    return service, snapshot


def test_a_periodic_write_waits_while_a_table_streams_in_and_runs_once_it_ends(
    tmp_path: Path, monkeypatch
) -> None:
    service, snapshot = _service(tmp_path, 1.0, monkeypatch)
    stream = Stream(service.rib)
    service.start()
    try:
        with stream:
            wait_until(lambda: service.snapshots.stats.postponed == 1, 10, 0.05)
            time.sleep(0.5)  # due, and waiting
            assert not snapshot.exists()
        ended = time.monotonic()
        # The counter, not the file: the file is renamed in before the count is taken.
        wait_until(lambda: service.snapshots.stats.written >= 1, 10, 0.05, "the write")
        assert time.monotonic() - ended < 5
        assert snapshot.exists()
        got = samples(scrape_text(service.metrics_port))
        assert got[("attribution_snapshot_writes_postponed_total", ())] == 1
        assert got[("attribution_snapshot_writes_total", (("outcome", "written"),))] >= 1
    finally:
        service.stop()


def test_a_write_waits_at_most_one_more_interval_for_a_load_that_goes_on(
    tmp_path: Path, monkeypatch
) -> None:
    service, snapshot = _service(tmp_path, 0.5, monkeypatch)
    stream = Stream(service.rib)
    service.start()
    try:
        with stream:
            wait_until(lambda: service.snapshots.stats.written >= 1, 10, 0.05, "a write")
            assert snapshot.exists()
            assert service.snapshots.stats.postponed >= 1
    finally:
        service.stop()


def test_the_stop_writes_at_once_during_a_load(tmp_path: Path, monkeypatch) -> None:
    service, snapshot = _service(tmp_path, 300.0, monkeypatch)
    stream = Stream(service.rib)
    service.start()
    with stream:
        wait_until(lambda: service.rib.lookup(EDGE1, V4, "10.0.1.1") is not None, 10, 0.05)
        service.stop()
    assert snapshot.exists()
    assert service.snapshots.stats.written == 1
