"""Lost feed lines are recovered exactly: withdrawals included, converged again.

Real processes on loopback: Speaker (ExaBGP) -> supervised ExaBGP -> relay ->
FeedServer -> Rib. The relay is frozen (SIGSTOP) while the router withdraws
routes, so ExaBGP's lines pile up in its stdin pipe, then killed (SIGKILL):
those lines are gone for good, as with a relay killed mid-stream.
"""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import subprocess
import termios
import time

import pytest

from ribd.rib import Rib
from ribd.speaker import BgpTestbed, Route, Speaker, wait_until
from tests.ribd.test_exabgp_e2e import R1, expected_view, rib_view

V4_ROUTES = [Route(f"10.{i // 256}.{i % 256}.0/24", R1, as_path=[65001, 65100]) for i in range(400)]
V6_ROUTES = [
    Route(f"2001:db8:{i:x}::/48", "2001:db8::1", as_path=[65001, 65200]) for i in range(20)
]


def converged(rib: Rib) -> bool:
    r = rib.routers.get(R1)
    return bool(r and r.session == "up" and all(fs.converged for fs in r.families.values()))


def exact(bed: BgpTestbed, routes: list[Route]) -> bool:
    return converged(bed.rib) and rib_view(bed.rib) == expected_view(routes)


def relay_pid(bed: BgpTestbed) -> int:
    exabgp = bed.supervisor.pid
    out = subprocess.run(["pgrep", "-P", str(exabgp)], capture_output=True, text=True).stdout
    pids = [int(p) for p in out.split()]
    assert len(pids) == 1, f"ExaBGP {exabgp} children: {pids}"
    return pids[0]


def pipe_bytes(pid: int) -> int:
    """Bytes waiting in the relay's stdin pipe (ExaBGP's lines it has not read)."""
    fd = os.open(f"/proc/{pid}/fd/0", os.O_RDONLY | os.O_NONBLOCK)
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]
    finally:
        os.close(fd)


def lose_withdrawals(bed: BgpTestbed, speaker: Speaker, withdraw: list[Route]) -> None:
    """Withdraw ``withdraw`` while the relay is frozen, then kill the relay."""
    pid = relay_pid(bed)
    os.kill(pid, signal.SIGSTOP)
    try:
        for route in withdraw:
            speaker.withdraw(route.prefix)
        # Every withdrawal reached ExaBGP and sits unread in the pipe
        # (a withdrawal line is well over 150 bytes).
        wait_until(lambda: pipe_bytes(pid) >= 150 * len(withdraw), 30, what="lines in the pipe")
        settled = pipe_bytes(pid)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # let stragglers arrive (no assertion on time)
            time.sleep(0.2)
            now = pipe_bytes(pid)
            if now != settled:
                settled, deadline = now, time.monotonic() + 2.0
    finally:
        os.kill(pid, signal.SIGKILL)


@pytest.mark.bgp
def test_relay_killed_during_withdrawals_resyncs_to_the_routers_table_exactly(testbed) -> None:
    bed: BgpTestbed = testbed()
    table = V4_ROUTES + V6_ROUTES
    speaker = bed.speaker(routes=table)
    speaker.wait_established(30)
    wait_until(lambda: exact(bed, table), 60, what="the table loaded")

    withdrawn = V4_ROUTES[100:160] + V6_ROUTES[:5]
    lose_withdrawals(bed, speaker, withdrawn)
    remaining = [r for r in table if r not in withdrawn]
    # ExaBGP respawns the relay; the new one's hello says lines were lost.
    wait_until(lambda: bed.feed.stats()["relay_gaps"] >= 1, 30, what="the gap noticed")
    wait_until(lambda: exact(bed, remaining), 60, what="the RIB equal to the router's table")
    stats = bed.feed.stats()
    assert stats["resyncs_requested"] >= 1 and stats["session_resets_requested"] == 0
    assert speaker.sessions_established == 1, "an enhanced route refresh, no session reset"


@pytest.mark.bgp
def test_a_family_the_router_cannot_re_send_is_re_read_by_a_session_reset(testbed) -> None:
    """The router withdrew all its IPv6 routes in the gap: ExaBGP answers a
    refresh of an empty family with nothing (no BoRR/EoRR), as would a
    router without enhanced route refresh. The session is reset instead."""
    bed: BgpTestbed = testbed(stale_hold_time=0)
    bed.feed.refresh_timeout = 3.0
    table = V4_ROUTES[:50] + V6_ROUTES[:4]
    speaker = bed.speaker(routes=table)
    speaker.wait_established(30)
    wait_until(lambda: exact(bed, table), 60, what="the table loaded")
    ups = speaker.sessions_established

    lose_withdrawals(bed, speaker, V6_ROUTES[:4] + V4_ROUTES[:3])
    remaining = V4_ROUTES[3:50]
    wait_until(lambda: bed.feed.stats()["session_resets_requested"] >= 1, 60, what="a reset")
    speaker.wait_established(60, after=ups)
    wait_until(lambda: exact(bed, remaining), 60, what="the RIB equal to the router's table")


@pytest.mark.bgp
def test_a_full_spool_drops_lines_marks_the_gap_and_the_rib_ends_exact(caplog) -> None:
    """The service stalls (its RIB lock held) while the router re-sends its
    table and withdraws routes: the relay's spool (1 MiB here, the table ~4 MB) overflows,
    lines are dropped, the gap is marked, and the re-read makes the RIB equal
    to the router's table again."""
    import dataclasses
    import logging

    from ribd.exabgp import ExabgpSupervisor

    caplog.set_level(logging.INFO, logger="ribd.exabgp")
    bed = BgpTestbed()
    bed.settings = dataclasses.replace(bed.settings, relay_spool_bytes=1024 * 1024)
    bed.supervisor = ExabgpSupervisor(bed.settings, bed.rib)
    # Distinct attributes: one UPDATE line per route, ~4 MB for the table.
    table = [
        Route(f"10.{i // 256}.{i % 256}.0/24", R1, as_path=[65001, 64000 + i]) for i in range(8000)
    ]
    bed.start()
    try:
        speaker = bed.speaker(routes=table)
        # The speaker's ExaBGP parses 8,000 static routes before it opens the
        # session: 8 s on a quiet box, 29.6 s with a fifth of a core (measured),
        # so the usual 30 s is no margin on a loaded machine.
        speaker.wait_established(120)
        wait_until(lambda: exact(bed, table), 120, what="the table loaded")
        ups = speaker.sessions_established
        with bed.rib.lock:  # the service stops reading
            speaker.teardown()
            speaker.wait_established(120, after=ups)
            wait_until(lambda: "spool full" in caplog.text, 60, what="the spool to overflow")
            for route in table[:50]:
                speaker.withdraw(route.prefix)
        remaining = table[50:]
        wait_until(lambda: bed.feed.stats()["relay_gaps"] >= 1, 60, what="the gap marked")
        wait_until(lambda: exact(bed, remaining), 180, what="the RIB equal to the router's table")
        assert bed.feed.stats()["relay_lost_lines"] > 0
    finally:
        bed.close()
