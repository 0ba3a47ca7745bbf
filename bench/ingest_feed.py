"""Ingest end to end through the feed socket: relay process -> Unix socket -> FeedServer -> Rib.

The FeedServer and the Rib run here, as in the service (GC tuned as the
service tunes it); the lines come from another process over the real Unix
socket protocol (hello control line, then ExaBGP's lines):

* ``fake relay``: ``bench.feeder``, which has the lines in memory and sends
  them at once (the service's side alone);
* ``ribd-feed``: the real relay reading the lines from its stdin (a file), as
  ExaBGP would feed it, so its spooling is included.

Timing runs from the go signal (or the relay's spawn) until the marker line
after the last UPDATE has been applied.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import (
    FULL_TABLE,
    FULL_TABLE_PEER,
    FULL_TABLE_PREFIXES,
    V4,
    Row,
    at_least,
    bench_main,
    data_available,
    log,
    read_lines,
)
from bench.feeder import marker_line, state_up_line, wait_marker
from bench.ingest import TARGET, prefix_ops


def _fresh(sock_path: str):
    from ribd.feed import FeedServer
    from ribd.rib import Rib

    rib = Rib()
    server = FeedServer(sock_path, rib, resync_on_loss=False)
    server.start()
    return rib, server


def via_fake_relay(tmp: Path, token: float) -> tuple[float, int]:
    rib, server = _fresh(str(tmp / "feed-a.sock"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.feeder",
            "--socket",
            str(tmp / "feed-a.sock"),
            "--file",
            str(FULL_TABLE),
            "--state-up",
            FULL_TABLE_PEER,
            "--token",
            str(token),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin and proc.stdout
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("feeder failed to start")
    t0 = time.monotonic()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    t1 = wait_marker(rib, token)
    proc.communicate(timeout=60)
    prefixes = rib.routers[FULL_TABLE_PEER].families[V4].prefixes
    server.stop()
    return t1 - t0, prefixes


def via_ribd_feed(tmp: Path, lines: list[bytes], token: float) -> tuple[float, int]:
    rib, server = _fresh(str(tmp / "feed-b.sock"))
    spool = tmp / "exabgp-output.jsonl"
    with open(spool, "wb") as f:
        f.write(state_up_line(FULL_TABLE_PEER) + b"\n")
        f.write(b"\n".join(lines) + b"\n")
        f.write(marker_line(token) + b"\n")
    with open(spool, "rb") as stdin:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ribd.relay",
                "--socket",
                str(tmp / "feed-b.sock"),
                # stdin is a file: EOF comes at once, long before the lines
                # are delivered; the default 1.5 s grace would drop the rest.
                "--grace",
                "120",
            ],
            stdin=stdin,
            stderr=subprocess.DEVNULL,
        )
        t1 = wait_marker(rib, token)
    proc.wait(30)
    prefixes = rib.routers[FULL_TABLE_PEER].families[V4].prefixes
    server.stop()
    return t1 - t0, prefixes


def run(args: argparse.Namespace) -> list[Row]:
    skip = data_available(FULL_TABLE)
    if skip:
        return [Row("ingest", "feed socket, end to end", None, "prefixes/s", note=skip)]
    from attribution.service import tune_gc

    lines = read_lines(FULL_TABLE)
    n = len(prefix_ops(lines))
    tune_gc()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-feed-") as d:
        tmp = Path(d)
        log("ingest-feed: fake relay -> FeedServer")
        t_fake, got_a = via_fake_relay(tmp, 1.0)
        log("ingest-feed: ribd-feed (real relay, stdin from a file) -> FeedServer")
        t_relay, got_b = via_ribd_feed(tmp, lines, 2.0)
    for label, t, got, note in (
        ("feed socket (fake relay), end to end", t_fake, got_a, "relay has the lines in memory"),
        ("feed socket (ribd-feed relay), end to end", t_relay, got_b, "includes relay start-up"),
    ):
        check = "" if got == FULL_TABLE_PREFIXES else f"; RIB has {got} prefixes!"
        rows.append(
            Row(
                "ingest",
                label,
                n / t,
                "prefixes/s",
                target=">= 300k/s",
                met=at_least(n / t, TARGET),
                note=f"{t:.2f} s; {note}; service GC tuning{check}",
            )
        )
    return rows


if __name__ == "__main__":
    raise SystemExit(bench_main("ingest_feed", run))
