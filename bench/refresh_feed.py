"""Routers re-sending their tables after a warm start, in process: the refresh's feed
against the first load's, through the feed's own loop.

Issue 11 item 4 asks that routers restored from a snapshot be "refreshed over BGP at the
new ingest rate". Through real sessions (``bench.restart --refresh bgp``) that costs one
sitting's worth of ExaBGP noise per run; this driver prices the service's part alone:

* ``--stage first``: an empty RIB fed the lines (as ``bench.ingest_instr --stage
  feedtime``: routers loading together, no merge), CPU-s of the feed printed;
* ``--stage snapshot``: the same load, the stores merged (as a settled service), then a
  snapshot written to ``--snapshot``;
* ``--stage refresh``: a fresh RIB warm-started from that snapshot (every route stale, as
  ``attribution serve`` restores it), then fed the same lines again: the sessions come
  up, each router re-sends its table over its stale copy, End-of-RIB sweeps what did not
  come back. CPU-s of the feed printed, then checks: every router holds as many prefixes
  as before and none is left stale.

* ``--stage lookups``: the refresh as ``refresh`` (from the same snapshot), with the
  lookup views restored routers have (built as the first batches after the warm start
  ask for them), and after each hundredth of the lines the service's maintenance pass
  (``Service._maintain``) and two batches of lookups (``Resolver.resolve_columns``,
  zipf IPv4 flows spread over every router, AS numbers only: they also ask for views,
  as a collector's traffic would), on a clock that runs the refresh over ``--seconds``
  (the through-session refresh's length: the views' wait for a load,
  ``VIEWS_WAIT_MAX``, then expires mid-refresh as there). Printed per tenth: the
  passes' CPU-s so far, the views built so far, the bulk rate in flows per CPU-s (the
  mean of the tenth's steps: a rate over time). ``--ab`` with ``--lookups`` runs it
  from each tree.

The lines are ``packets`` lines as ``bench.ingest_instr --lines-file`` takes them (the
session lines first, UPDATEs interleaved round-robin, each router's End-of-RIB last).
Run the driver (``--ab TREE,TREE``) to interleave trees, a fresh process a run:

    python -m bench.refresh_feed --lines-file F --snapshot S --ab /tmp/base,. --rounds 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HOLD = 600.0  # s: longer than any run, so nothing expires on its own
STEPS = 100  # ``--stage lookups``: a maintenance pass and a bulk rate after each hundredth
STEP_BATCHES = 2  # of ``multirouter_child.BATCH`` flows timed each step, no round before
LOOKUP_BATCHES = 4  # before and after the refresh: timed ``LOOKUP_ROUNDS`` times
LOOKUP_ROUNDS = 3


def sessions_up(lines: list[bytes]) -> list[bytes]:
    """``lines`` with each session's ``state up`` line after the leading OPENs, as
    ExaBGP reports a session before its UPDATEs: without it a restored router stayed
    down, and its re-sent routes overwrote the restored ones in place instead of
    shadowing them from a new slot until End-of-RIB (no stale generation, no sweep)."""
    import re

    from bench.realistic import state_up

    opens = 0
    peers: list[str] = []
    for line in lines:
        if b'"type":"open"' not in line:
            break
        opens += 1
        peer = re.search(rb'"peer":"([^"]+)"', line).group(1).decode()  # type: ignore[union-attr]
        if peer not in peers:
            peers.append(peer)
    return [*lines[:opens], *map(state_up, peers), *lines[opens:]]


def _counts(rib) -> dict[str, tuple[int, ...]]:
    """Each router's prefixes by family: what a refresh must leave as the first load did."""
    return {
        n: tuple(fs.prefixes for _, fs in sorted(r.families.items()))
        for n, r in sorted(rib.routers.items())
    }


def stage_first(lines_file: str, snapshot: str = "") -> None:
    from attribution.service import tune_gc
    from bench.ingest import new_rib
    from bench.ingest_instr import feed_lines, read_lines

    lines = sessions_up(read_lines(lines_file))
    rib, _ = new_rib()
    tune_gc()
    spent = feed_lines(rib, lines, True)
    if snapshot:
        from ribd.snapshot import write_snapshot

        rib.compact()
        write_snapshot(rib, snapshot)
        Path(snapshot + ".counts").write_text(repr(_counts(rib)))
    print(f"{spent:.3f}")


def stage_refresh(lines_file: str, snapshot: str) -> None:
    from attribution.service import tune_gc
    from bench.ingest import new_rib
    from bench.ingest_instr import feed_lines, read_lines
    from ribd.snapshot import load_snapshot

    lines = sessions_up(read_lines(lines_file))
    rib, _ = new_rib()
    rib.stale_hold_time = HOLD
    load_snapshot(rib, snapshot, hold_time=HOLD)
    tune_gc()  # (collects, then freezes what the snapshot made)
    spent = feed_lines(rib, lines, True)
    want = Path(snapshot + ".counts").read_text()
    got = _counts(rib)
    if repr(got) != want:
        raise SystemExit(f"the refresh left other counts than the first load: {got} != {want}")
    stale = {
        n: {f: fs.stale_prefixes for f, fs in r.families.items() if fs.stale_prefixes}
        for n, r in rib.routers.items()
    }
    stale = {n: s for n, s in stale.items() if s}
    if stale:
        raise SystemExit(f"stale routes left after End-of-RIB: {stale}")
    print(f"{spent:.3f}")


class _Clock:
    """The RIB's clock for ``--stage lookups``: moved by the driver."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class _Feed:
    """The feed's loop as ``ingest_instr.feed_lines`` runs it, kept across calls: the
    raw decoder needs each session's OPEN, which the first lines carry."""

    def __init__(self, rib) -> None:
        import socket

        from ribd import feed

        self.server = feed.FeedServer("/tmp/unused-refresh-feed.sock", rib)
        self.lines_in = feed._compiled_lines or feed.FeedServer._lines
        self.pair = socket.socketpair()
        self.conn = feed._Connection(self.pair[0])

    def __call__(self, lines: list[bytes]) -> None:
        from bench.ingest_instr import READ_LINES

        for i in range(0, len(lines), READ_LINES):
            self.lines_in(self.server, self.conn, lines[i : i + READ_LINES])
        if self.conn.counters.bad_lines:
            raise SystemExit(f"bad lines: {self.conn.counters.bad_by_category}")


def _bulk_rate(resolver, exporters: list[str], flows: list[tuple], rounds: int = 0) -> float:
    """Flows per CPU-s of ``flows`` (zipf batches): ``rounds`` after one untimed
    round, or (0) one round untimed nothing, as batches that arrive mid-refresh
    pay for the changes since the last (the changed ranges extended)."""
    from bench.multirouter_child import BATCH

    def once() -> None:
        for src, dst, ex in flows:
            resolver.resolve_columns(exporters, ex, src, dst, with_routes=False)

    if rounds:
        once()
    t0 = time.process_time()
    for _ in range(max(rounds, 1)):
        once()
    return max(rounds, 1) * len(flows) * BATCH / (time.process_time() - t0)


def _maintain(rib, resolver, neighbors: list[str]) -> float:
    """CPU-s of one pass of the service's maintenance loop (``Service._maintain``)."""
    t0 = time.process_time()
    while rib.maintenance():
        pass
    with rib.lock:
        resolver.views.want_missing(neighbors)
        wait = rib.views_may_wait()
    if not wait:
        resolver.views.refresh()
    return time.process_time() - t0


def stage_lookups(lines_file: str, snapshot: str, seconds: float, stop: int = STEPS) -> None:
    from attribution.resolver import Resolver
    from attribution.service import tune_gc
    from bench.ingest import new_rib
    from bench.ingest_instr import read_lines
    from bench.multirouter_child import _config, _zipf_batches
    from ribd.events import IPV4_UNICAST
    from ribd.snapshot import load_snapshot

    lines = sessions_up(read_lines(lines_file))
    rib, _ = new_rib()
    clock = rib.clock = _Clock()
    rib.stale_hold_time = HOLD
    load_snapshot(rib, snapshot, hold_time=HOLD)
    tune_gc()
    neighbors = sorted(rib.routers)
    prefixes = list(rib.tables[IPV4_UNICAST].store.prefixes())
    flows = _zipf_batches(prefixes, len(neighbors))[:LOOKUP_BATCHES]
    resolver = Resolver(rib, _config(), build_views_inline=False)
    views = resolver.views
    for src, dst, ex in flows[:1]:  # the first batch asks for the restored routers' views
        resolver.resolve_columns(neighbors, ex, src, dst, with_routes=False)
    views.refresh()
    rate = _bulk_rate(resolver, neighbors, flows, LOOKUP_ROUNDS)
    print(f"restored: {views.builds} views built, {rate:,.0f} flows/s")
    feed = _Feed(rib)
    step = -(-len(lines) // STEPS)
    spent = 0.0
    rates: list[float] = []
    for i in range(stop):
        feed(lines[i * step : (i + 1) * step])
        clock.now += seconds / STEPS
        spent += _maintain(rib, resolver, neighbors)
        rates.append(_bulk_rate(resolver, neighbors, flows[:STEP_BATCHES]))
        if (i + 1) % (STEPS // 10) == 0:
            tenth = rates[-(STEPS // 10) :]
            print(
                f"{(i + 1) * 100 // STEPS:>3}%: maintenance {spent:.2f} CPU-s, "
                f"{views.builds} views built, {sum(tenth) / len(tenth):,.0f} flows/s "
                f"(mean of the tenth's steps; {min(tenth):,.0f}-{max(tenth):,.0f})"
            )
    if stop < STEPS:  # (``--stop``: the first hundredths only, one rate each)
        print("first steps: " + ", ".join(f"{r:,.0f}" for r in rates) + " flows/s")
        return
    print(f"mid-refresh: {sum(rates) / len(rates):,.0f} flows/s (mean of {STEPS} steps)")
    clock.now += 60  # the loads have ended: every view built
    spent += _maintain(rib, resolver, neighbors)
    rate = _bulk_rate(resolver, neighbors, flows, LOOKUP_ROUNDS)
    print(f"after: maintenance {spent:.2f} CPU-s, {views.builds} views built, {rate:,.0f} flows/s")


def ab(trees: list[str], lines_file: str, snapshot: str, rounds: int) -> None:
    """Interleaved, a fresh process a run: each tree's first load, then its refresh."""
    got: dict[tuple[str, str], list[float]] = {}
    if not Path(snapshot).exists():
        run_one(trees[0], "snapshot", lines_file, snapshot)
    for _ in range(rounds):
        for tree in trees:
            for stage in ("first", "refresh"):
                spent = run_one(tree, stage, lines_file, snapshot)
                got.setdefault((tree, stage), []).append(spent)
                load = os.getloadavg()[0]
                print(f"{tree} {stage}: {spent:.2f} CPU-s (load {load:.1f})", flush=True)
    for tree in trees:
        first, refresh = got[(tree, "first")], got[(tree, "refresh")]
        ratio = " / ".join(f"{r / f:.2f}" for f, r in zip(first, refresh, strict=True))
        print(
            f"{tree}: first {' / '.join(f'{t:.2f}' for t in first)}; "
            f"refresh {' / '.join(f'{t:.2f}' for t in refresh)}; refresh / first {ratio}"
        )


def ab_lookups(
    trees: list[str], lines_file: str, snapshot: str, rounds: int, seconds: float, stop: int
) -> None:
    """``--stage lookups`` from each tree in turn, a fresh process a run."""
    if not Path(snapshot).exists():
        run_one(trees[0], "snapshot", lines_file, snapshot)
    for _ in range(rounds):
        for tree in trees:
            extra = ["--seconds", str(seconds), "--stop", str(stop)]
            out = run_one(tree, "lookups", lines_file, snapshot, extra)
            print(f"{tree} (load {os.getloadavg()[0]:.1f}):\n{out}", flush=True)


def run_one(tree: str, stage: str, lines_file: str, snapshot: str, extra: list | None = None):
    """The CPU-s a stage printed last (``lookups``: its whole output)."""
    env = dict(os.environ, PYTHONPATH=str(Path(tree).resolve()))
    cmd = [sys.executable, "-m", "bench.refresh_feed", "--stage", stage]
    cmd += ["--lines-file", lines_file, "--snapshot", snapshot, *(extra or [])]
    out = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True, cwd=tree).stdout
    return out.rstrip() if stage == "lookups" else float(out.split()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lines-file", required=True)
    p.add_argument("--snapshot", default="/tmp/refresh_feed.snapshot")
    p.add_argument("--stage", choices=("first", "snapshot", "refresh", "lookups"))
    p.add_argument("--seconds", type=float, default=110.0, help="--stage lookups: refresh length")
    p.add_argument(
        "--stop", type=int, default=STEPS, help="--stage lookups: the first hundredths only"
    )
    p.add_argument("--ab", default="", help="trees, comma-separated: interleaved runs")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--lookups", action="store_true", help="--ab: the lookups stage instead")
    args = p.parse_args()
    started = time.perf_counter()
    if args.stage == "first":
        stage_first(args.lines_file)
    elif args.stage == "snapshot":
        stage_first(args.lines_file, args.snapshot)
    elif args.stage == "refresh":
        stage_refresh(args.lines_file, args.snapshot)
    elif args.stage == "lookups":
        stage_lookups(args.lines_file, args.snapshot, args.seconds, args.stop)
    elif args.lookups:
        trees = args.ab.split(",") if args.ab else ["."]
        ab_lookups(trees, args.lines_file, args.snapshot, args.rounds, args.seconds, args.stop)
    else:
        ab(args.ab.split(",") if args.ab else ["."], args.lines_file, args.snapshot, args.rounds)
    print(f"({time.perf_counter() - started:.0f} s wall)", file=sys.stderr)


if __name__ == "__main__":
    main()
