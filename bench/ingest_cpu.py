"""Service-side CPU of loading tables and of the RIB's maintenance, in CPU-seconds.

Two parts, both on the real full table (``../shared/data``), each measured
in this process with ``time.process_time`` / ``time.thread_time`` (CPU, so
the figures hold on a machine other processes load):

* ``paced``: the service's side of a BGP session load. A ``bench.feeder``
  process replays the table into a FeedServer at ``--pace`` times its
  recorded speed (1.0: the table in ~20 s, about ExaBGP's rate), while a
  maintenance thread runs as the service's does (every 0.1 s, rounds until
  done, then the compiled views). Reported: the process's CPU-s from go until
  the table is in, merged and its view built; the maintenance thread's share;
  merge attempts and RIB lock hold times.
* ``routers``: ``--routers`` routers loaded in-process, each with its own
  next hop (so attribute sets are not shared across routers, as in a real
  network), then one router's session reset in purge mode. Reported: the CPU
  of a full garbage collection and of the maintenance after the reset, and
  the longest single hold of the RIB lock meanwhile (what a flow batch or
  the feed would wait for).

Run from a checkout: ``python -m bench.ingest_cpu [--pace 1.0] [--routers 8]``.
The counters read from the Rib are taken by wrapping it from outside, so the
script measures older code the same way.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import (
    CHURN,
    FULL_TABLE,
    FULL_TABLE_PEER,
    FULL_TABLE_PREFIXES,
    V4,
    log,
    read_lines,
)
from bench.feeder import wait_marker


class TimedLock:
    """The RIB's lock, recording how long each hold lasted (wall, perf_counter)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.longest = 0.0
        self.total = 0.0
        self._since = 0.0

    def acquire(self, *args: object) -> bool:
        got = self._lock.acquire(*args)  # type: ignore[arg-type]
        if got:
            self._since = time.perf_counter()
        return got

    def release(self) -> None:
        held = time.perf_counter() - self._since
        self.total += held
        self.longest = max(self.longest, held)
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    __enter__ = acquire

    def __exit__(self, *exc: object) -> None:
        self.release()

    def reset(self) -> None:
        self.longest = self.total = 0.0


def count_merges(rib) -> dict[str, int]:
    """Wrap ``rib._merge``: attempts and attempts that moved nothing."""
    counts = {"attempts": 0, "moved_nothing": 0}
    merge = rib._merge

    def counted(table):
        counts["attempts"] += 1
        moved = merge(table)
        if not moved:
            counts["moved_nothing"] += 1
        return moved

    rib._merge = counted
    return counts


class Maintainer(threading.Thread):
    """The service's maintenance loop (attribution.service.Service._maintain)."""

    def __init__(self, rib, views, neighbors: list[str]) -> None:
        super().__init__(name="bench-maintenance", daemon=True)
        self.rib, self.views, self.neighbors = rib, views, neighbors
        self.stop_event = threading.Event()
        self.cpu = 0.0
        self.view_cpu = 0.0
        self.longest_round = 0.0  # CPU of the longest maintenance() call

    def run(self) -> None:
        while not self.stop_event.wait(0.1):
            t0 = time.thread_time()
            while True:
                c0 = time.thread_time()
                more = self.rib.maintenance()
                self.longest_round = max(self.longest_round, time.thread_time() - c0)
                if not more or self.stop_event.is_set():
                    break
                time.sleep(0.001)
            t1 = time.thread_time()
            if self.views is not None:
                with self.rib.lock:
                    self.views.want_missing(self.neighbors)
                self.views.refresh()
            t2 = time.thread_time()
            self.cpu += t2 - t0
            self.view_cpu += t2 - t1


def paced(pace: float) -> dict:
    from attribution.fastpath import CompiledViews
    from attribution.service import tune_gc
    from ribd.events import SessionState
    from ribd.feed import FeedServer
    from ribd.rib import Rib

    tune_gc()
    rib = Rib()
    lock = rib.lock = TimedLock()  # type: ignore[assignment]
    merges = count_merges(rib)
    views = CompiledViews(rib)
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as d:
        sock = str(Path(d) / "feed.sock")
        server = FeedServer(sock, rib, resync_on_loss=False)
        server.start()
        rib.apply(SessionState(FULL_TABLE_PEER, "up"))
        maint = Maintainer(rib, views, [FULL_TABLE_PEER])
        maint.start()
        cmd = [sys.executable, "-m", "bench.feeder", "--socket", sock, "--file", str(FULL_TABLE)]
        # No --state-up: the feeder would pace from that line's (current) time
        # stamp and send the whole table at once. The session is up here.
        cmd += ["--token", "7.0", "--pace", str(pace)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdin and proc.stdout
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("feeder failed to start")
        cpu0, t0 = time.process_time(), time.monotonic()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        wait_marker(rib, 7.0, timeout=600, poll=0.01)
        out["load_wall"] = time.monotonic() - t0
        out["cpu_at_marker"] = time.process_time() - cpu0
        # Settled: merged and the view built.
        while True:
            table = rib.tables[V4]
            view = views._views.get((FULL_TABLE_PEER, V4))
            merged = not len(table.store.delta)
            if merged and view is not None and view.seq >= table.change_seq:
                break
            if view is not None and view.seq < table.change_seq:
                with rib.lock:  # as a lookup would (CompiledViews.usable)
                    views._wanted.add((FULL_TABLE_PEER, V4))
            if time.monotonic() - t0 > 900:
                raise TimeoutError("did not settle")
            time.sleep(0.05)
        out["cpu_settled"] = time.process_time() - cpu0
        maint.stop_event.set()
        maint.join(30)
        proc.communicate(timeout=60)
        server.stop()
    out["prefixes"] = rib.routers[FULL_TABLE_PEER].families[V4].prefixes
    out["maintenance_cpu"] = maint.cpu
    out["view_cpu"] = maint.view_cpu
    out["merge_attempts"] = merges["attempts"]
    out["merges_moving_nothing"] = merges["moved_nothing"]
    out["lock_longest"] = lock.longest
    return out


_NEXT_HOP = re.compile(rb'("ipv4 unicast":\{)"[0-9.]+"')
_PEER = re.compile(rb'"peer":"[^"]*"')


def router_lines(lines: list[bytes], i: int) -> list[bytes]:
    """The table as router ``i`` would send it: its own neighbor address and next hop."""
    peer = b'"peer":"127.0.1.%d"' % (i + 1)
    hop = rb'\1"10.%d.0.1"' % (i + 1)
    return [_NEXT_HOP.sub(hop, _PEER.sub(peer, line)) for line in lines]


def routers(n: int) -> dict:
    from attribution.service import tune_gc
    from ribd.events import SessionState
    from ribd.parser import ExabgpParser
    from ribd.rib import Rib

    lines = read_lines(FULL_TABLE)
    tune_gc()
    rib = Rib()
    lock = rib.lock = TimedLock()  # type: ignore[assignment]
    parse = ExabgpParser(rib.interner).parse
    out: dict = {}
    cpu_load = 0.0
    for i in range(n):
        mine = router_lines(lines, i)
        rib.apply(SessionState(f"127.0.1.{i + 1}", "up"))
        c0 = time.process_time()
        for line in mine:
            rib.apply_many(parse(line))
        while rib.maintenance():
            pass
        cpu_load += time.process_time() - c0
        log(f"ingest-cpu: router {i + 1}/{n} loaded")
    del lines
    out["load_cpu_per_router"] = cpu_load / n
    out["attribute_sets"] = len(rib.interner)
    # A full collection (what maintenance does once the sets grew by half).
    lock.reset()
    c0 = time.process_time()
    rib.collect_garbage()
    while rib.maintenance():
        pass
    out["gc_cpu"] = time.process_time() - c0
    out["gc_lock_longest"] = lock.longest
    # One router's session reset, purge mode: its slot is swept, its sets collected.
    lock.reset()
    longest_round = 0.0
    c0 = time.process_time()
    rib.apply(SessionState("127.0.1.1", "down", reason="bench reset"))
    rounds = 0
    while True:
        r0 = time.process_time()
        more = rib.maintenance()
        longest_round = max(longest_round, time.process_time() - r0)
        rounds += 1
        # A collection starts only after the sweep: run rounds until none is left.
        if not more and rounds > 1 and not _work_left(rib):
            break
    out["reset_cpu"] = time.process_time() - c0
    out["reset_lock_longest"] = lock.longest
    out["reset_longest_round_cpu"] = longest_round
    out["attribute_sets_after_reset"] = len(rib.interner)
    return out


def views(windows: list[int]) -> dict:
    """A router's compiled view after a window of real churn: patched vs built afresh.

    The RIS recording (63 peers, 180 UPDATEs/s) remapped onto the loaded
    router, ``lines`` UPDATEs per window: 171 is one minute of one peer's
    share (the service refreshes a changed view every 60 s).
    """
    from attribution.changedranges import ChangedRanges
    from attribution.compiledview import view_signature
    from attribution.service import tune_gc
    from attribution.viewbuild import build_view
    from ribd.parser import ExabgpParser
    from ribd.rib import Rib

    try:
        from attribution.viewpatch import patch_view
    except ImportError:  # before the patching existed
        patch_view = None
    table = read_lines(FULL_TABLE)
    churn = [_PEER.sub(b'"peer":"' + FULL_TABLE_PEER.encode() + b'"', x) for x in read_lines(CHURN)]
    tune_gc()
    rib = Rib()
    parse = ExabgpParser(rib.interner).parse
    for line in table:
        rib.apply_many(parse(line))
    rib.compact()
    out: dict = {}
    c0 = time.process_time()
    view = build_view(rib, FULL_TABLE_PEER, V4)
    out["full_build_cpu"] = time.process_time() - c0
    at = 0
    for lines in windows:
        for line in churn[at : at + lines]:
            rib.apply_many(parse(line))
        at += lines
        changes = rib.tables[V4].change_seq - view.seq
        c0 = time.process_time()
        fresh = build_view(rib, FULL_TABLE_PEER, V4)
        built = time.process_time() - c0
        patched_cpu = None
        if patch_view is not None:
            c0 = time.process_time()
            patched = patch_view(rib, view, ChangedRanges, view_signature)
            patched_cpu = time.process_time() - c0 if patched is not None else None
        out[f"{lines}_lines"] = {"changes": changes, "build_cpu": built, "patch_cpu": patched_cpu}
        view = fresh
    return out


def _work_left(rib) -> bool:
    """Whether the maintenance still has a sweep or a collection in progress."""
    for t in rib.tables.values():
        if t._sweeps:
            return True
    return getattr(rib, "_collection", None) is not None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", default="paced,routers,views")
    p.add_argument("--pace", type=float, default=1.0)
    p.add_argument("--routers", type=int, default=8)
    args = p.parse_args(argv)
    if not FULL_TABLE.exists():
        print(f"skipped: {FULL_TABLE} is absent")
        return 0
    parts = args.only.split(",")
    if "paced" in parts:
        log(f"ingest-cpu: paced feed at {args.pace}x the recorded speed")
        res = paced(args.pace)
        ok = "" if res["prefixes"] == FULL_TABLE_PREFIXES else " (RIB INCOMPLETE!)"
        print(f"paced x{args.pace}: {res}{ok}")
    if "routers" in parts:
        log(f"ingest-cpu: {args.routers} routers, then one session reset (purge)")
        print(f"routers={args.routers}: {routers(args.routers)}")
    if "views" in parts:
        log("ingest-cpu: view patch vs rebuild after churn windows")
        print(f"views: {views([171, 1714, 5000])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
