"""Start-up: cold (empty RIB, table through the feed) and warm (RIB snapshot).

Both figures run from the spawn of ``attribution serve`` to the moment it
serves the full table: ListRouters shows the router's 577,703 prefixes
(current or stale) and a Resolve of 8.8.8.8 answers AS15169.

* cold: no snapshot yet; a feeder (ready before the spawn, as a relay that
  spooled ExaBGP's output would be) pushes the table as soon as the feed
  socket exists.
* warm: the same service stopped with SIGTERM (it writes its snapshot on
  shutdown, ``[service] snapshot_path``) and started again; nothing is fed.
  Loaded routes are stale until BGP refreshes them, which the answer's
  ``dst_stale`` flag must show.

If the snapshot module or its service integration is missing, the warm row
says "not available" instead of failing.

Many routers (``--routers 16 [--refresh [feed|bgp]]``, issue 11): ``bench.restart_many``,
``bench.restart_bgp``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import tempfile
import time
from pathlib import Path

from bench.common import (
    FULL_TABLE,
    FULL_TABLE_PEER,
    FULL_TABLE_PREFIXES,
    Row,
    at_most,
    bench_main,
    data_available,
    log,
)
from bench.server import EXPORTER, Server

TARGET = 10.0  # seconds, process start -> serving a full table


def cold_start(server: Server) -> tuple[float, float]:
    """(seconds to gRPC serving, seconds to the full table served), from spawn."""
    feeder, token = server.feeder(state_up=FULL_TABLE_PEER)
    server.start()
    sock = server.workdir / "feed.sock"
    while not sock.exists():
        server._check_alive()
        time.sleep(0.01)
    server.go(feeder)
    serving = server.wait_serving() - server.spawned_at
    server.wait_marker(token)
    loaded = server.wait_table(FULL_TABLE_PREFIXES, poll=0.02) - server.spawned_at
    server.finish_feeder(feeder)
    return serving, loaded


def warm_start(server: Server) -> tuple[float, float, bool]:
    """(seconds to gRPC serving, seconds to the full table served, answers flagged stale)."""
    from attribution.v1 import attribution_pb2 as pb

    server.start()
    serving = server.wait_serving() - server.spawned_at
    loaded = server.wait_table(FULL_TABLE_PREFIXES, poll=0.02) - server.spawned_at
    a = server._stub.Resolve(  # type: ignore[union-attr]
        pb.Flow(exporter=EXPORTER, src_addr="1.1.1.1", dst_addr="8.8.8.8"), timeout=5
    )
    return serving, loaded, bool(a.flags & pb.DST_STALE)


def bgp_refresh(server: Server) -> tuple[float, float, float, int, int]:
    """After a warm start: the session comes back and re-sends the table.

    Returns (seconds from the first line until the router is converged with no
    stale route left, server RSS before, peak RSS seen while refreshing (MiB),
    interned attribute sets before, and 2 s after convergence). Both
    generations of the table are held until the End-of-RIB.
    """
    sets0 = server.list_routers().unique_attribute_sets
    feeder, token = server.feeder(state_up=FULL_TABLE_PEER)
    rss0 = peak = server.rss()
    t0 = server.go(feeder)
    while True:
        peak = max(peak, server.rss())
        reply = server.list_routers()
        fam = [
            f
            for r in reply.routers
            if r.neighbor == FULL_TABLE_PEER
            for f in r.families
            if f.family == "ipv4 unicast"
        ]
        done = server.marker(reply) == token and fam and fam[0].converged
        if done and not fam[0].stale_prefixes:
            break
        if time.monotonic() - t0 > 120:
            raise TimeoutError("the refreshed table did not converge")
        time.sleep(0.02)
    t1 = time.monotonic()
    server.finish_feeder(feeder)
    time.sleep(2.0)  # a few maintenance rounds
    sets1 = server.list_routers().unique_attribute_sets
    return t1 - t0, rss0 / 2**20, peak / 2**20, sets0, sets1


def _log_figure(log_path: Path, pattern: str) -> str:
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    found = re.findall(pattern, text)
    return found[-1] if found else "?"


def run(args: argparse.Namespace) -> list[Row]:
    if getattr(args, "routers", 0):
        workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-restart-"))
        workdir.mkdir(parents=True, exist_ok=True)
        from bench.procs import codes
        from bench.restart_many import many_routers

        trees = codes(args.code) if args.code else None
        return many_routers(args.routers, workdir, args.refresh, args.workers, trees, args.repeat)
    skip = data_available(FULL_TABLE)
    if skip:
        return [Row("restart", "warm restart", None, "s", note=skip)]
    rows = []
    available = importlib.util.find_spec("ribd.snapshot") is not None
    with tempfile.TemporaryDirectory(prefix="bench-restart-") as d:
        server = Server(Path(d), snapshot=available)
        log("restart: cold start")
        serving, loaded = cold_start(server)
        rows.append(
            Row(
                "restart",
                "cold start -> full table served (feed)",
                loaded,
                "s",
                target="(reference)",
                note=f"gRPC answering {serving:.2f} s after spawn; table fed through the "
                "feed socket as soon as it exists",
            )
        )
        stop_s = server.stop()
        snap = Path(d) / "rib.snapshot"
        if not available or not snap.exists():
            why = "ribd.snapshot missing" if not available else "no snapshot written on shutdown"
            rows.append(
                Row(
                    "restart",
                    "warm start (snapshot) -> full table served",
                    None,
                    "s",
                    target="<= 10 s",
                    note=f"not available: {why}",
                )
            )
            return rows
        size = os.path.getsize(snap)
        write = _log_figure(server.log_path, r"RIB snapshot written: .*?\(\d+ bytes, ([\d.]+) s\)")
        log("restart: warm start from the snapshot")
        serving, loaded, stale = warm_start(server)
        read = _log_figure(server.log_path, r"RIB snapshot loaded from .*? in ([\d.]+) s")
        log("restart: BGP refresh of the snapshot's routes")
        refresh, rss0, peak, sets0, sets1 = bgp_refresh(server)
        server.stop()
    rows.append(
        Row(
            "restart",
            "warm start (snapshot) -> full table served",
            loaded,
            "s",
            target="<= 10 s",
            met=at_most(loaded, TARGET),
            note=f"gRPC answering {serving:.2f} s after spawn; snapshot {size / 2**20:.1f} MiB, "
            f"written in {write} s on shutdown (SIGTERM -> exit {stop_s:.1f} s), loaded in "
            f"{read} s; answers flagged stale: {'yes' if stale else 'NO'}",
        )
    )
    rows.append(
        Row(
            "restart",
            "  then BGP refresh -> converged, no stale route",
            refresh,
            "s",
            note=f"the session comes up and the table is fed again at full speed; RSS "
            f"{rss0:.0f} MiB before, {peak:.0f} MiB peak (both generations held until "
            f"End-of-RIB); interned attribute sets {sets0} before, {sets1} after",
        )
    )
    return rows


def _extra(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--routers", type=int, default=0, help="many-router warm start instead (issue 11: 16)"
    )
    p.add_argument("--workdir", help="keep the base model and built snapshot here")
    p.add_argument(
        "--refresh",
        nargs="?",
        const="feed",
        default="",
        choices=("feed", "bgp"),
        help="with --routers: then send every router's table again and time the refresh: "
        "through the feed socket (feed, the default) or over real BGP sessions to a "
        "supervised ExaBGP in raw mode (bgp)",
    )
    p.add_argument(
        "--workers", type=int, default=1, help="with --refresh bgp: ExaBGP workers ([bgp] workers)"
    )
    p.add_argument(
        "--code",
        default="",
        help="with --routers: comma-separated checkouts (each built in place) whose service "
        "runs in turn on the same snapshot, alternated round by round; default: this one",
    )
    p.add_argument(
        "--repeat", type=int, default=1, help="with --routers: rounds (each checkout once a round)"
    )


if __name__ == "__main__":
    raise SystemExit(bench_main("restart", run, _extra))
