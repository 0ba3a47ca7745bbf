"""The service's RIB snapshots: loaded at start, written every interval and at stop, counted.

Why its own module: a snapshot is what a restart keeps, so an operator must see
that writes happen and succeed (a full disk otherwise shows only as a log line,
then as an empty RIB after the next restart). The counters here are read by
the metrics collector (``attribution.metrics_scrape``) at scrape time.
The file format and its checks are ``ribd.snapshot``'s.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ribd import heap
from ribd.rib import Rib
from ribd.snapshot import (
    LEFTOVER_AGE,
    SnapshotError,
    SnapshotLock,
    SnapshotPathInUse,
    load_snapshot,
    remove_leftovers,
    write_snapshot,
)

log = logging.getLogger(__name__)

LOAD_OUTCOMES = ("loaded", "none", "refused")
SNAPSHOT_RETRY = 5.0  # seconds between looks at a load a periodic snapshot write waits for


@dataclass
class SnapshotStats:
    """What the snapshots did since start (read at scrape time)."""

    written: int = 0
    failed: int = 0
    last_written: float = 0.0  # Unix time of the last write that succeeded; 0: none yet
    last_seconds: float = 0.0  # how long that write took
    last_bytes: int = 0  # that file's size
    leftovers_removed: int = 0  # unfinished writes' files removed (at start, before a write)
    postponed: int = 0  # periodic writes that waited for a table load (SnapshotSchedule)
    load: str = ""  # at start: one of LOAD_OUTCOMES ("" before it, or without a path)
    load_seconds: float = 0.0


class Snapshots:
    """Load and write ``rib``'s snapshot at the configured path (read at each call:
    a reload may change it)."""

    def __init__(self, rib: Rib, path: Callable[[], str], hold_time: Callable[[], float]):
        self.rib = rib
        self._path = path
        self._hold_time = hold_time
        self.stats = SnapshotStats()
        # One write at a time: the stop's write waits for a periodic one still going
        # on (each holds a capture: ~1.2 GB above the RIB with 64 routers).
        self._lock = threading.Lock()
        self._held: SnapshotLock | None = None  # the path this service holds (claim)

    def claim(self, path: str) -> None:
        """Hold ``path`` for this service (``ribd.snapshot.SnapshotLock``) and let go of
        the one held before: at start and at each reload, before anything is applied.

        Raises SnapshotPathInUse when another process holds it. A lock file that
        cannot be made (a directory not writable, say) is logged and the service
        goes on unguarded: its writes fail there too, are counted and alerted on,
        and must not also stop the answers.
        """
        held = self._held
        if held is not None and held.path == path:
            return
        new = None
        if path:
            try:
                new = SnapshotLock(path)  # SnapshotPathInUse (not an OSError) goes up
            except OSError as exc:
                log.error(
                    "cannot hold the snapshot path %s (%s): a second service given the same "
                    "path would not be refused",
                    path,
                    exc,
                )
        if held is not None:
            held.release()
        self._held = new

    def close(self) -> None:
        """Let the held path go (at stop, after the last write)."""
        if self._held is not None:
            self._held.release()
            self._held = None

    def _clear_leftovers(self, path: str) -> None:
        """Remove unfinished writes' files (``ribd.snapshot.remove_leftovers``): at
        start, and before each write. Holding the path, any such file is a killed
        write's, whatever its age (a crash loop restarts within seconds); unguarded,
        only those a minute old are taken, as a write going on elsewhere touches its
        file every moment."""
        held = self._held is not None and self._held.path == path
        try:
            for left, size in remove_leftovers(path, older_than=0 if held else LEFTOVER_AGE):
                self.stats.leftovers_removed += 1
                log.warning(
                    "removed %s (%d bytes): a snapshot write that never finished", left, size
                )
        except OSError as exc:
            log.error("cannot clear unfinished snapshot writes beside %s: %s", path, exc)

    def load(self) -> bool:
        """Warm start: last known routes, validated, stale until BGP refreshes them.
        True if a snapshot was loaded. Unfinished writes' files are removed first."""
        path = self._path()
        if not path:
            return False
        self._clear_leftovers(path)
        try:
            info = load_snapshot(self.rib, path, hold_time=self._hold_time())
        except FileNotFoundError:
            log.info("no RIB snapshot at %s yet: starting empty", path)
            self.stats.load = "none"
            return False
        except (SnapshotError, OSError) as exc:
            log.error("RIB snapshot refused, starting empty: %s", exc)
            self.stats.load = "refused"
            return False
        self.stats.load, self.stats.load_seconds = "loaded", info.seconds
        log.info(
            "RIB snapshot loaded from %s: %s prefixes of %d routers in %.1f s, stale until "
            "their sessions are back",
            path,
            sum(info.prefixes.values()),
            info.routers,
            info.seconds,
        )
        return True

    def write(self) -> None:
        """Write the snapshot now (after any write going on); a failure is logged and
        counted, never raised: the service goes on, the previous file stays."""
        path = self._path()
        if not path:
            return
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            # The capture's columns are freed in this thread's arena: ~400 MB
            # kept resident after each write at 32 routers (ribd.heap).
            with self._lock, heap.released_after_growth():
                self._clear_leftovers(path)
                info = write_snapshot(self.rib, path)
        except OSError as exc:
            self.stats.failed += 1
            log.error("cannot write the RIB snapshot %s: %s", path, exc)
            return
        except Exception:  # a bug: the periodic thread must live on to write the next one
            self.stats.failed += 1
            log.exception("RIB snapshot write to %s failed", path)
            return
        s = self.stats
        s.written += 1
        s.last_written, s.last_seconds, s.last_bytes = time.time(), info.seconds, info.file_bytes
        log.info("RIB snapshot written: %s (%d bytes, %.1f s)", path, info.file_bytes, info.seconds)


class SnapshotSchedule:
    """The periodic writes: one every ``snapshot_interval`` while a path is set.

    ``run`` is the service's ``rib-snapshots`` thread, until ``stopping`` is set.
    ``config`` is read at each turn, and a reload calls ``wake``: the interval and
    the path it sets apply at once, not after the wait going on (up to a day).
    """

    def __init__(
        self, snapshots: Snapshots, config: Callable[[], Any], stopping: threading.Event
    ) -> None:
        self.snapshots = snapshots
        self._config = config
        self._stopping = stopping
        self._wake = threading.Event()
        self.postponed_since: float | None = None  # monotonic; None: not waiting

    def wake(self) -> None:
        self._wake.set()

    def run(self) -> None:
        last = time.monotonic()
        while not self._stopping.is_set():
            config = self._config()
            if self.postponed_since is not None:
                wait = SNAPSHOT_RETRY
            else:
                wait = max(0.0, last + config.snapshot_interval - time.monotonic())
            self._wake.wait(wait)
            if self._stopping.is_set():
                break
            if self._wake.is_set():
                self._wake.clear()
                continue
            if not self._config().snapshot_path or self.periodic(time.monotonic()):
                last = time.monotonic()

    def periodic(self, now: float) -> bool:
        """A periodic write, unless a table streams in (a load, a re-read): True once
        it ran, False while it waits.

        A re-read holds ~1.7x the RIB and views for a while and a write ~0.9x more
        for its seconds: together past the 1.9x a replica is sized for (README,
        "Sizing a replica"), the OOM killer's case, and a snapshot taken mid-load is
        a partial one anyway. So the write waits for the load, polled every
        SNAPSHOT_RETRY, at most one more ``snapshot_interval`` (endless churn
        must not stop snapshots). The stop's write never waits."""
        rib = self.snapshots.rib
        interval = self._config().snapshot_interval
        with rib.lock:
            loading = rib.streaming()
        since = self.postponed_since
        if loading and (since is None or now - since < interval):
            if since is None:
                self.postponed_since = now
                self.snapshots.stats.postponed += 1
                log.info(
                    "snapshot write put off while a table loads (%s): memory peaks would "
                    "stack; at most %.0f s",
                    ", ".join(sorted(loading)),
                    interval,
                )
            return False
        self.postponed_since = None
        self.snapshots.write()
        return True


__all__ = [
    "LOAD_OUTCOMES",
    "SNAPSHOT_RETRY",
    "SnapshotPathInUse",
    "SnapshotSchedule",
    "SnapshotStats",
    "Snapshots",
]
