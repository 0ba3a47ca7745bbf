"""A feed gap re-reads its routers in waves that fit the relay's spool.

Real processes on loopback: four Speakers (ExaBGP routers) -> supervised
ExaBGP -> relay (a 1 MiB spool) -> FeedServer -> Rib. Asking every router
for its table at once (``resync *``) made them all re-send at the same
moment: a burst bigger than the spool, so a gap caused the next gap. The
service is stalled (its RIB lock held) from the first re-read asked until
ExaBGP has handed the relay everything the routers re-sent, as a busy
service would be: one wave's tables fit the spool, all four do not.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time

import pytest

from ribd.reads import slot_value
from ribd.rib import Rib
from ribd.speaker import BgpTestbed, Route, wait_until
from ribd.workers import ExabgpWorkers, reread_wave
from tests.ribd.test_exabgp_e2e import expected_view, rib_view
from tests.ribd.test_resync import relay_pid
from tests.ribd.test_workers import router, up_and_converged

ROUTERS = 4
ROUTES = 1200  # distinct attributes: one UPDATE line each, ~0.6 MB a table


def table(k: int) -> list[Route]:
    hop = f"127.0.1.{k}"
    return [
        Route(f"10.{i // 256}.{i % 256}.0/24", hop, as_path=[65001 + k, 60000 + i])
        for i in range(ROUTES)
    ]


def exact(rib: Rib, k: int) -> bool:
    n = f"127.0.1.{k}"
    return up_and_converged(rib, n) and rib_view(rib, n) == expected_view(table(k))


def relay_read_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


class Stall:
    """From the first re-read asked, hold the RIB lock (the service stops
    reading) until the relay has read nothing new from ExaBGP for 5 s or its
    spool overflowed again; then note whether every router still answered
    for its whole table (stale), and let go."""

    def __init__(self, bed: BgpTestbed, overflows) -> None:
        self.bed, self.overflows = bed, overflows
        self.visible: dict[str, int] = {}  # routes each router answers for
        self.stale: dict[str, int] = {}  # of which stale
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        bed = self.bed
        try:
            wait_until(lambda: bed.feed.stats()["resyncs_requested"] > 0, 120, what="a re-read")
            before = self.overflows()
            with bed.rib.lock:
                pid = relay_pid(bed)
                seen, quiet_since = relay_read_bytes(pid), time.monotonic()
                while time.monotonic() - quiet_since < 5.0 and self.overflows() == before:
                    time.sleep(0.2)
                    now = relay_read_bytes(pid)
                    if now != seen:
                        seen, quiet_since = now, time.monotonic()
                items = bed.rib.tables["ipv4 unicast"].store.items()  # (we hold the lock)
                for k in range(1, ROUTERS + 1):
                    n = f"127.0.1.{k}"
                    r = bed.rib.routers[n]
                    fs = r.families["ipv4 unicast"]
                    values = [
                        slot_value(e, fs.slot, fs.stale_slot, r.current_stale) for _, e in items
                    ]
                    self.visible[n] = sum(1 for v, _ in values if v is not None)
                    self.stale[n] = sum(1 for v, stale in values if v is not None and stale)
        finally:
            self.done.set()


@pytest.mark.bgp
def test_a_gap_re_reads_its_routers_in_waves_and_the_re_read_overflows_nothing(caplog) -> None:
    caplog.set_level(logging.INFO, logger="ribd.exabgp")
    bed = BgpTestbed(neighbors=[router(k) for k in range(1, ROUTERS + 1)])
    bed.settings = dataclasses.replace(bed.settings, relay_spool_bytes=1024 * 1024)
    bed.supervisor = ExabgpWorkers(bed.settings, bed.rib)
    bed.feed.rereads.wave = reread_wave(bed.settings)  # as the service sizes it: one table
    bed.start()
    try:
        for k in range(1, ROUTERS + 1):
            bed.speaker(local_address=f"127.0.1.{k}", routes=table(k), hold_time=60)
        wait_until(
            lambda: all(exact(bed.rib, k) for k in range(1, ROUTERS + 1)),
            240,
            what="every table loaded",
        )
        stall = Stall(bed, lambda: caplog.text.count("spool full"))
        # A gap: the relay dies; ExaBGP respawns it, whose hello says lines
        # may be missing, so every router's table is re-read.
        os.kill(relay_pid(bed), signal.SIGKILL)
        assert stall.done.wait(300), "the stall never ended"
        assert stall.visible == {f"127.0.1.{k}": ROUTES for k in range(1, ROUTERS + 1)}
        # (the one being re-read may have sent part of its table already)
        waited = [n for n, stale in stall.stale.items() if stale == ROUTES]
        assert len(waited) >= ROUTERS - 1, "routers waiting for their turn answer, stale"
        wait_until(
            lambda: all(exact(bed.rib, k) for k in range(1, ROUTERS + 1)),
            300,
            what="every table re-read exactly",
        )
        stats = bed.feed.stats()
        assert "spool full" not in caplog.text, "the re-read overflowed the spool"
        assert stats["relay_gaps"] == 1 and stats["relay_lost_lines"] == 0
        assert stats["rereads_running_peak"] == 1
        wait_until(
            lambda: bed.feed.stats()["rereads_running"] == bed.feed.stats()["rereads_waiting"] == 0,
            30,
            what="every re-read's turn over",
        )
    finally:
        bed.close()


# -- the bookkeeping alone (no I/O) ---------------------------------------------------


class Routers:
    """reread_status answers, set by the test: (pending, settled, up, marker)."""

    def __init__(self, *names: str) -> None:
        self.st = {n: (True, False, True, (0,)) for n in names}

    def __call__(self, n: str):
        return self.st.get(n)


def test_waves_ask_at_most_wave_routers_per_worker_and_the_next_when_one_is_done() -> None:
    from ribd.reread_waves import RereadWaves

    rib = Routers("a", "b", "c", "x")
    w = RereadWaves(wave=2, stall_timeout=60)
    w.gap(["a", "b", "c"], worker=1)
    w.gap(["x"], worker=2)
    ask, drop = w.turns(rib)
    assert ask == [("a", 1), ("b", 1), ("x", 2)] and drop == []
    for n, _ in ask:
        w.started(n, 0.0, rib(n))
    assert w.turns(rib) == ([], []) and w.peak == 2
    rib.st["a"] = (False, True, True, (1,))  # re-read and converged
    assert w.retire(1.0, rib) == [] and set(w.running) == {"b", "x"}
    assert w.turns(rib)[0] == [("c", 1)]


def test_a_re_read_without_progress_frees_its_turn_and_one_cut_by_a_gap_goes_last() -> None:
    from ribd.reread_waves import RereadWaves

    rib = Routers("a", "b", "c")
    w = RereadWaves(wave=1, stall_timeout=60)
    w.gap(["a", "b", "c"], worker=0)
    w.started("a", 0.0, rib("a"))
    rib.st["a"] = (True, False, True, (5,))  # progress at t=30
    assert w.retire(30.0, rib) == []
    assert w.retire(80.0, rib) == [] and "a" in w.running
    assert w.retire(90.0, rib) == ["a"] and w.stalled == 1
    w.started("b", 90.0, rib("b"))
    w.gap(["a", "b", "c"], worker=0)  # b's re-read cut short: after c
    assert list(w.waiting) == ["c", "a", "b"] and not w.running


def test_routers_thought_down_are_asked_without_a_turn_and_restarted_ones_dropped() -> None:
    from ribd.reread_waves import RereadWaves

    rib = Routers("a", "b", "c")
    rib.st["a"] = (True, False, False, (0,))  # down (its "up" line may be the lost one)
    rib.st["b"] = (False, False, True, (0,))  # its session restarted: End-of-RIB is exact
    w = RereadWaves(wave=1)
    w.gap(["a", "b", "c"], worker=0)
    ask, drop = w.turns(rib)
    assert ask == [("a", 0), ("c", 0)] and drop == ["b"]
    w.drop(drop)
    for n, _ in ask:
        w.started(n, 0.0, rib(n))
    assert list(w.running) == ["c"] and not w.waiting


def test_a_router_name_that_is_no_address_is_dropped_from_the_waves_not_a_crash(short_tmp) -> None:
    """Without a configured router list, the RIB keys routers by what the feed
    said; one that is no IP address cannot be refreshed: it is skipped, and the
    next router's re-read is still asked."""
    import socket as so

    from ribd.events import EndOfRib, RoutesAnnounced, SessionState
    from ribd.feed import FeedServer
    from ribd.relay import control_line
    from tests.ribd.test_rib_resync import attrs

    rib = Rib()
    for n in ("not-an-ip", "192.0.2.9"):
        rib.apply(SessionState(n, "up"))
        rib.apply(RoutesAnnounced(n, "ipv4 unicast", ("10.1.0.0/16",), None, attrs(65001)))
        rib.apply(EndOfRib(n, "ipv4 unicast"))
    feed = FeedServer(str(short_tmp / "feed.sock"), rib, reread_wave=1)
    feed.start()
    try:
        with so.socket(so.AF_UNIX, so.SOCK_STREAM) as s:
            s.connect(feed.socket_path)
            s.settimeout(30)
            s.sendall(control_line("hello", pid=7, ppid=1, started=1.0, delivered=0))
            s.sendall(control_line("lost", lines=3))
            assert s.recv(100) == b"resync 192.0.2.9\n"
        assert feed._resync_thread is not None and feed._resync_thread.is_alive()
        assert "not-an-ip" not in feed.rereads.waiting
    finally:
        feed.stop()
