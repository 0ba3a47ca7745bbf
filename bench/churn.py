"""Attribution throughput while real BGP churn is being applied.

A real ``attribution serve`` holds the full table (router 206.220.231.55).
Load clients (``bench.loadgen``, Zipf addresses) stream without pause while
we replay the RIPE RIS update recording (54,107 UPDATEs, 162,785 prefix
announcements and withdrawals) through the feed socket at full speed from a
feeder process. Two variants, each on a freshly loaded server:

1. ``63 routers``: as recorded, 63 peers, configured as 63 more routers
   (the service takes lines only from configured routers). They share the
   trie with the loaded router, so its answers do not change, but every
   touched prefix is a change for its compiled lookup view;
2. ``remapped``: every peer rewritten to the loaded router, so the churn
   rewrites the very RIB the flows are answered from (63 peers' updates on
   one router: not a realistic table afterwards, but the worst case for the
   resolver, whose compiled view goes stale).

A third run replays the remapped stream at its recorded pace (180 UPDATEs/s,
by the lines' time stamps) for a minute: the steady state of a real session.

Windows: a quiet one before the replay, then from the replay's start until
its last line is applied (marker line), or until ``budget`` seconds if it is
not done by then: the replay is then stopped, and the lines applied are
estimated from what the feeder had handed to the socket (within ~1 MiB, the
service's read size). Throughput is the wall-clock rate of flows answered in
each window; the churn rate is UPDATEs (lines) per second, compared with the
stream's recorded rate (its time stamps span 300 s: 180 UPDATEs/s; the data
README says 15 minutes, which would be 60/s).
"""

from __future__ import annotations

import argparse
import bisect
import re
import tempfile
import time
from functools import cache
from pathlib import Path

from bench.common import (
    CHURN,
    FULL_TABLE,
    FULL_TABLE_PEER,
    FULL_TABLE_PREFIXES,
    Row,
    bench_main,
    data_available,
    log,
    read_lines,
)
from bench.server import Server
from bench.throughput import Clients, sleep_until, start_clients

CHURN_LINES = 54_107
CHURN_PREFIXES = 162_785
_TIME = re.compile(rb'"time":([0-9.]+)')
_PEER = re.compile(rb'"peer":"([^"]*)"')  # the neighbor's address (the AS "peer" is a number)


@cache
def churn_peers() -> tuple[str, ...]:
    """The recording's peers, each configured as a router for the ``63 routers`` run."""
    peers = {m.group(1).decode() for line in read_lines(CHURN) if (m := _PEER.search(line))}
    return tuple(sorted(peers))


@cache
def churn_times() -> list[float]:
    """ExaBGP's time stamp of every line, in file order (non-decreasing)."""
    return [float(m.group(1)) for line in read_lines(CHURN) if (m := _TIME.search(line))]


def real_time_rate() -> float:
    """UPDATEs/s as recorded: lines over the span of their (1 s) time stamps."""
    times = churn_times()
    return len(times) / (times[-1] - times[0] + 1)


def applied_lines(reply) -> int:
    """Lines applied so far, from the newest UPDATE time any router shows
    (exact to one second of recorded time, ~180 lines)."""
    newest = max((r.last_update for r in reply.routers), default=0.0)
    return bisect.bisect_right(churn_times(), newest)


def per_second(clients: Clients, t0: float, t1: float) -> str:
    """Thousands of flows/s in each whole second of [t0, t1), for the note."""
    out = []
    t = t0
    while t + 1 <= t1 + 1e-9:
        out.append(f"{clients.flows_between(t, t + 1) / 1000:.0f}")
        t += 1
    return " ".join(out)


def variant(workdir: Path, remap: bool, warm: float, quiet: float, budget: float) -> dict:
    """One fresh server: load, settle, quiet window, churn window."""
    with Server(workdir, extra_neighbors=() if remap else churn_peers()) as server:
        server.load_full_table(FULL_TABLE_PREFIXES)
        server.settle()
        sets0, rss0 = server.list_routers().unique_attribute_sets, server.rss()
        feeder, token = server.feeder(CHURN, remap_all_to=FULL_TABLE_PEER if remap else None)
        clients = start_clients(server.target, "zipf", 600.0)
        t0 = clients.start + warm
        sleep_until(t0)
        c0 = server.cpu()
        sleep_until(t0 + quiet)
        c1 = server.cpu()
        ta = server.go(feeder)
        try:
            tb = server.wait_marker(token, timeout=budget, poll=0.01)
            done = True
        except TimeoutError:
            tb, done = time.monotonic(), False
        c2 = server.cpu()
        reply = server.list_routers()
        applied = CHURN_LINES if done else applied_lines(reply)
        server.finish_feeder(feeder, stop=not done)
        clients.stop()
        clients.wait()
        routers = len(reply.routers)
        time.sleep(1.0)  # a few maintenance rounds
        sets1, rss1 = server.list_routers().unique_attribute_sets, server.rss()
    return {
        "quiet": clients.flows_between(t0, t0 + quiet) / quiet,
        "quiet_cpu": (c1 - c0) / quiet,
        "rate": clients.flows_between(ta, tb) / (tb - ta),
        "cpu": (c2 - c1) / (tb - ta),
        "span": tb - ta,
        "done": done,
        "applied": applied,
        "series": per_second(clients, ta, tb),
        "routers": routers,
        "checks": clients.checks(),
        "sets": (sets0, sets1),
        "rss": (rss0 / 2**20, rss1 / 2**20),
    }


def paced_variant(workdir: Path, warm: float, quiet: float, seconds: float) -> dict:
    """The RIS recording replayed at its own pace (remapped onto the loaded router)."""
    with Server(workdir) as server:
        server.load_full_table(FULL_TABLE_PREFIXES)
        server.settle()
        feeder, _ = server.feeder(CHURN, remap_all_to=FULL_TABLE_PEER, pace=1.0)
        clients = start_clients(server.target, "zipf", 600.0)
        t0 = clients.start + warm
        sleep_until(t0 + quiet)
        ta = server.go(feeder)
        c0 = server.cpu()
        sleep_until(ta + seconds)
        tb = time.monotonic()
        cpu = server.cpu() - c0
        applied = applied_lines(server.list_routers())
        server.finish_feeder(feeder, stop=True)
        clients.stop()
        clients.wait()
    buckets = []
    step = seconds / 6
    for k in range(6):
        a = ta + k * step
        buckets.append(f"{clients.flows_between(a, a + step) / step / 1000:.0f}")
    return {
        "quiet": clients.flows_between(t0, t0 + quiet) / quiet,
        "rate": clients.flows_between(ta, tb) / (tb - ta),
        "cpu": cpu / (tb - ta),
        "span": tb - ta,
        "applied": applied,
        "buckets": " ".join(buckets),
        "step": step,
        "checks": clients.checks(),
    }


def run(args: argparse.Namespace) -> list[Row]:
    skip = data_available(FULL_TABLE, CHURN)
    if skip:
        return [Row("churn", "throughput under churn", None, "flows/s", note=skip)]
    warm, quiet, budget = (2.0, 3.0, 10.0) if args.quick else (3.0, 5.0, 20.0)
    rows: list[Row] = []
    for remap, label in ((False, "RIS churn as 63 routers"), (True, "RIS churn remapped")):
        log(f"churn: {label}")
        with tempfile.TemporaryDirectory(prefix="bench-churn-") as d:
            v = variant(Path(d), remap, warm, quiet, budget)
        check = f"; CHECK FAILED: {v['checks']}" if v["checks"] else ""
        rows.append(
            Row(
                "churn",
                f"zipf, no churn ({'remapped' if remap else '63 routers'} run)",
                v["quiet"],
                "flows/s",
                note=f"wall clock, 2 clients; server CPU {v['quiet_cpu']:.2f} cores{check}",
            )
        )
        rows.append(
            Row(
                "churn",
                f"zipf, during {label}",
                v["rate"],
                "flows/s",
                v["quiet"],
                "same server and clients, no churn",
                note=f"{v['rate'] / v['quiet']:.0%} of the quiet rate; server CPU "
                f"{v['cpu']:.2f} cores; kflows/s in each second: {v['series']}",
            )
        )
        rate = v["applied"] / v["span"]
        how = (
            f"all {CHURN_LINES} UPDATEs in {v['span']:.2f} s"
            if v["done"]
            else f"NOT DONE after {v['span']:.0f} s: {v['applied']} of {CHURN_LINES} UPDATEs "
            "applied (from the newest UPDATE time stamp the routers show, +-1 s of recording)"
        )
        rows.append(
            Row(
                "churn",
                f"  churn applied under load ({label})",
                rate,
                "UPDATEs/s",
                real_time_rate(),
                "recorded real-time rate",
                note=f"{how}; {rate / real_time_rate():.1f}x real time; "
                f"{v['routers']} routers at the end; interned attribute sets "
                f"{v['sets'][0]} -> {v['sets'][1]}, server RSS {v['rss'][0]:.0f} -> "
                f"{v['rss'][1]:.0f} MiB",
            )
        )
    seconds = 30.0 if args.quick else 60.0
    log(f"churn: RIS churn at its recorded pace, remapped, for {seconds:.0f} s")
    with tempfile.TemporaryDirectory(prefix="bench-churn-") as d:
        v = paced_variant(Path(d), warm, quiet, seconds)
    rows.append(
        Row(
            "churn",
            "zipf, during RIS churn at recorded pace (remapped)",
            v["rate"],
            "flows/s",
            v["quiet"],
            "same server and clients, no churn",
            note=f"{v['rate'] / v['quiet']:.0%} of the quiet rate over {v['span']:.0f} s; "
            f"{v['applied']} UPDATEs applied ({v['applied'] / v['span']:.0f}/s); server CPU "
            f"{v['cpu']:.2f} cores; kflows/s in each {v['step']:.0f} s: {v['buckets']}"
            + (f"; CHECK FAILED: {v['checks']}" if v["checks"] else ""),
        )
    )
    return rows


if __name__ == "__main__":
    raise SystemExit(bench_main("churn", run))
