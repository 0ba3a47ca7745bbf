"""Replicas behind the balanced client, one killed with SIGKILL mid-stream (issue 15).

``python -m bench.replicas [--routes N | --real] [--replicas 3] [--seconds 20]``

A BIRD route reflector (Debian ``bird2``) announces the table (the real 2015 table's
IPv4 routes from ../shared/data with ``--real``, else N synthetic routes) to every
replica, each an ``attribution serve`` on its own loopback address with its own
ExaBGP and snapshot (bench.replicaset). Once all are SERVING, one client streams flows
through the balanced channel (``--target`` listing every replica) as fast as it can;
after ``--seconds`` one replica is killed (SIGKILL to its process group: ExaBGP goes
with it), the stream goes on for as long again, then the replica is restarted from its
snapshot and the client keeps streaming until the restarted replica answers batches.

Figures: batches answered and sent again, streams lost, duplicates dropped; answer
equality with one process (every answer compared with that replica's own answer for the
same flows, asked before the run); the throughput before the kill, in the half-second
windows after it, and after the rejoin; time to recover (the kill to the first answer of
a batch sent again, and to a window back at 80% of the rate before); time from the
restart to SERVING (snapshot loaded, BGP converged) and to its first batch.
Run it under ``flock /tmp/heavy.lock`` on a shared machine.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

from attribution.client import Balancing, resolve_flow_batches
from attribution.failover import FailoverStats
from bench.replicaset import (
    SHARED_TABLE,
    Replica,
    RouteReflector,
    bird_available,
    flows_for,
    real_table,
    synthetic_table,
    wait_until,
)

WINDOW = 0.5  # seconds per throughput window


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__)
    p.add_argument("--real", action="store_true", help="the real table from ../shared/data")
    p.add_argument("--routes", type=int, default=20_000, help="synthetic routes (no --real)")
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--seconds", type=float, default=20.0, help="before the kill, and after")
    p.add_argument("--batch", type=int, default=4096, help="flows per batch")
    p.add_argument("--flows", type=int, default=65_536, help="distinct flows, sent round")
    p.add_argument("--streams", type=int, default=0, help="client streams (0: one per replica)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args(argv)
    if not bird_available():
        print("bench.replicas: BIRD is not installed (apt-get install bird2)")
        return 2
    if args.real and not SHARED_TABLE.exists():
        print(f"bench.replicas: {SHARED_TABLE} is absent")
        return 2
    t = time.monotonic()
    routes = real_table() if args.real else synthetic_table(args.routes)
    print(f"table: {len(routes):,} routes ({'real 2015 IPv4' if args.real else 'synthetic'}), "
          f"read in {time.monotonic() - t:.1f} s")  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="rp-bench-", dir="/tmp"))
    reps = [Replica(n, work / f"r{n}", snapshot_interval=10) for n in range(2, 2 + args.replicas)]
    reflector = RouteReflector(work, routes, [(r.address, r.bgp_port) for r in reps])
    try:
        return run(args, routes, reps, reflector)
    finally:
        for r in reps:
            r.stop()
        reflector.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory kept: {work}")


def run(args, routes, reps: list[Replica], reflector: RouteReflector) -> int:
    flows = list(flows_for(routes, args.flows))
    rounds = max(1, len(flows) // args.batch)

    def flows_of(i: int) -> list[dict]:
        k = i % rounds
        return flows[k * args.batch : (k + 1) * args.batch]

    t0 = time.monotonic()
    reflector.start()
    for r in reps:
        r.start()
    wait_until(lambda: all(r.serving() for r in reps), 1800, "every replica SERVING")
    print(f"{len(reps)} replicas SERVING {time.monotonic() - t0:.1f} s after the start")
    victim = reps[0]
    single = [a for _, a in resolve_flow_batches(victim.target, range(rounds), flows_of)]
    rss = [r.metric("process_resident_memory_bytes") for r in reps]
    print("RSS per replica: " + ", ".join(f"{b / 2**20:.0f} MiB" for b in rss))

    stop = threading.Event()
    stamps: list[float] = []  # time of each answered batch
    mismatches = [0]
    stats = FailoverStats()
    failure: list[BaseException] = []

    def numbers():
        i = 0
        while not stop.is_set():
            yield i
            i += 1

    def client() -> None:
        bal = Balancing(streams=args.streams, rebalance=2.0, ready_timeout=600, stats=stats)
        try:
            target = ",".join(r.target for r in reps)
            for i, answers in resolve_flow_batches(target, numbers(), flows_of, bal):
                stamps.append(time.monotonic())
                if answers != single[i % rounds]:
                    mismatches[0] += 1
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=client, daemon=True)
    start = time.monotonic()
    thread.start()
    wait_until(lambda: victim.snapshot.exists(), 600, "a snapshot of the victim")
    time.sleep(max(0.0, args.seconds - (time.monotonic() - start)))
    before_rate = len(stamps) / (time.monotonic() - start)
    killed_at = time.monotonic()
    answered_before_kill = len(stamps)
    victim.kill9()
    time.sleep(args.seconds)
    after_rate = (len(stamps) - answered_before_kill) / (time.monotonic() - killed_at)
    restarted_at = time.monotonic()
    victim.start()
    wait_until(victim.serving, 1800, "the restarted replica SERVING")
    serving_s = time.monotonic() - restarted_at
    wait_until(lambda: victim.batches_answered() or failure, 600, "the restarted replica's batch")
    rejoin_s = time.monotonic() - restarted_at
    mark, mark_n = time.monotonic(), len(stamps)
    time.sleep(min(args.seconds, 10.0))
    rejoined_rate = (len(stamps) - mark_n) / (time.monotonic() - mark)
    stop.set()
    thread.join(600)
    if failure:
        print(f"client failed: {failure[0]!r}")
        return 1

    # time to recover: the kill to the first answer after it, and to a window back at 80%
    after = [s for s in stamps if s > killed_at]
    first_answer = (after[0] - killed_at) if after else float("nan")
    recovered = float("nan")
    w = killed_at
    while w < killed_at + args.seconds:
        n = sum(1 for s in after if w <= s < w + WINDOW)
        if n / WINDOW >= 0.8 * before_rate:
            recovered = w + WINDOW - killed_at
            break
        w += WINDOW
    windows = [
        sum(1 for s in after if killed_at + k * WINDOW <= s < killed_at + (k + 1) * WINDOW)
        / WINDOW
        * args.batch
        for k in range(6)
    ]
    fps = args.batch
    print()
    print(f"| figure | {len(reps)} replicas, {len(routes):,} routes |")
    print("|---|---|")
    print(f"| batches answered ({args.batch:,} flows each) | {stats.answered:,} |")
    lost = f"{stats.streams_failed} / {stats.batches_retried} / {stats.duplicates_dropped}"
    print(f"| streams lost / batches sent again / duplicates dropped | {lost} |")
    print(f"| answers equal to one process | {'yes' if not mismatches[0] else 'NO'} "
          f"({mismatches[0]} batches differ of {stats.answered:,}) |")  # fmt: skip
    print(f"| flows/s before the kill | {before_rate * fps:,.0f} |")
    print(f"| flows/s in the {WINDOW:g} s windows after the kill | "
          + ", ".join(f"{x:,.0f}" for x in windows) + " |")  # fmt: skip
    print(f"| flows/s after the kill ({args.seconds:g} s) | {after_rate * fps:,.0f} |")
    print(f"| kill -> first answer / -> a window at 80% of before | "
          f"{first_answer:.2f} s / {recovered:.1f} s |")  # fmt: skip
    print(f"| restart -> SERVING (snapshot, BGP converged) / -> its first batch | "
          f"{serving_s:.1f} s / {rejoin_s:.1f} s |")  # fmt: skip
    print(f"| flows/s with the replica back | {rejoined_rate * fps:,.0f} |")
    print(f"| errors seen by the client | {stats.errors or 'none'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
