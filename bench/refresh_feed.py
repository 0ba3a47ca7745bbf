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

    lines = read_lines(lines_file)
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

    lines = read_lines(lines_file)
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


def run_one(tree: str, stage: str, lines_file: str, snapshot: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(Path(tree).resolve()))
    cmd = [sys.executable, "-m", "bench.refresh_feed", "--stage", stage]
    cmd += ["--lines-file", lines_file, "--snapshot", snapshot]
    out = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True, cwd=tree).stdout
    return float(out.split()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lines-file", required=True)
    p.add_argument("--snapshot", default="/tmp/refresh_feed.snapshot")
    p.add_argument("--stage", choices=("first", "snapshot", "refresh"))
    p.add_argument("--ab", default="", help="trees, comma-separated: interleaved runs")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    started = time.perf_counter()
    if args.stage == "first":
        stage_first(args.lines_file)
    elif args.stage == "snapshot":
        stage_first(args.lines_file, args.snapshot)
    elif args.stage == "refresh":
        stage_refresh(args.lines_file, args.snapshot)
    else:
        ab(args.ab.split(",") if args.ab else ["."], args.lines_file, args.snapshot, args.rounds)
    print(f"({time.perf_counter() - started:.0f} s wall)", file=sys.stderr)


if __name__ == "__main__":
    main()
