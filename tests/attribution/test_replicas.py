"""Three replicas fed by a route reflector, one killed with SIGKILL mid-stream (issue 15).

Real processes only: BIRD (Debian's bird2) on 127.0.15.1 announces a table of a few
thousand routes over iBGP to three ``attribution serve`` processes on 127.0.0.2-4, each
with its own supervised ExaBGP, snapshot and metrics; the client streams flows through
the balanced channel (bench.replicaset has the pieces; ``python -m bench.replicas``
runs the same with the real table and reports the figures).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from attribution.client import Balancing, resolve_flow_batches
from attribution.failover import FailoverStats
from bench.replicaset import (
    Replica,
    RouteReflector,
    bird_available,
    flows_for,
    synthetic_table,
    wait_until,
)

pytestmark = [
    pytest.mark.bgp,
    pytest.mark.skipif(not bird_available(), reason="BIRD (Debian bird2) is not installed"),
]

BATCH = 50
FLOWS = 600  # twelve distinct batches, sent round and round


def first_difference(got: list[dict], want: list[dict]) -> str:
    for n, (a, b) in enumerate(zip(got, want, strict=True)):
        if a != b:
            return f"record {n}: " + ", ".join(
                f"{k}: {a.get(k)!r} (one process: {b.get(k)!r})" for k in a if a.get(k) != b.get(k)
            )
    return "same records"


@pytest.fixture
def work() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="rp-", dir="/tmp"))  # short: Unix socket paths
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_kill_9_of_a_replica_mid_stream_loses_no_batch_and_it_rejoins_from_its_snapshot(work):
    routes = synthetic_table(3000)
    reps = [Replica(n, work / f"r{n}") for n in (2, 3, 4)]
    victim, others = reps[0], reps[1:]
    reflector = RouteReflector(work, routes, [(r.address, r.bgp_port) for r in reps])
    flows = list(flows_for(routes, FLOWS))
    stop = threading.Event()
    results: list[tuple[int, list[dict]]] = []
    stats = FailoverStats()
    failure: list[BaseException] = []

    def batch_numbers() -> Iterator[int]:
        i = 0
        while not stop.is_set():
            yield i
            i += 1
            time.sleep(0.02)

    def flows_of(i: int) -> list[dict]:
        k = i % (FLOWS // BATCH)
        return flows[k * BATCH : (k + 1) * BATCH]

    def client() -> None:
        # streams never move on their own (rebalance 600 s): opened while the victim
        # alone is ready, all three are on it when it dies
        bal = Balancing(streams=3, max_in_flight=6, rebalance=600, ready_timeout=120, stats=stats)
        try:
            target = ",".join(r.target for r in reps)
            results.extend(resolve_flow_batches(target, batch_numbers(), flows_of, bal))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=client, daemon=True)
    try:
        reflector.start()
        victim.start()
        wait_until(victim.serving, 120, "the first replica SERVING")
        rounds = FLOWS // BATCH
        single = [a for _, a in resolve_flow_batches(victim.target, range(rounds), flows_of)]
        thread.start()
        wait_until(lambda: len(results) >= 5 or failure, 60, "the first answers")
        for r in others:
            r.start()
        wait_until(lambda: all(r.serving() for r in others), 120, "the other replicas SERVING")
        ready_at = time.time()
        wait_until(
            lambda: victim.snapshot.exists() and victim.snapshot.stat().st_mtime > ready_at,
            60,
            "a periodic snapshot of the victim",
        )
        before = len(results)
        victim.kill9()
        wait_until(lambda: len(results) >= before + 40 or failure, 120, "answers after the kill")
        victim.start()  # from its snapshot, NOT_SERVING until BGP has converged again
        wait_until(victim.serving, 120, "the restarted replica SERVING")
        stop.set()
        thread.join(120)
        assert not failure, failure
        log = victim.log.read_text()
        # warm start from the snapshot, out of rotation until BGP has converged again
        loaded = log.index("RIB snapshot loaded")
        assert loaded < log.index("health: NOT_SERVING") < log.index("health: SERVING")

        # every batch answered exactly once, in order, as one process answers it
        assert [i for i, _ in results] == list(range(len(results)))
        for i, answers in results:
            assert answers == single[i % rounds], (
                f"batch {i}: {first_difference(answers, single[i % rounds])}"
            )
        assert stats.answered == stats.batches == len(results)
        print(f"{len(results)} batches, {before} before the kill: {stats.summary()}")
        assert stats.streams_failed >= 1 and stats.duplicates_dropped == 0
        assert len(results) > before + 40  # the stream went on after the kill

        # rejoined: streams reopened on the balanced channel reach it again
        def until_victim_answers() -> Iterator[int]:
            i = 0
            while not victim.batches_answered():
                yield i
                i += 1
                time.sleep(0.01)

        target = ",".join(r.target for r in reps)
        again = list(
            resolve_flow_batches(
                target, until_victim_answers(), flows_of, Balancing(streams=3, rebalance=0.3)
            )
        )
        assert victim.batches_answered() >= 1
        assert [a for _, a in again] == [single[i % rounds] for i in range(len(again))]
    finally:
        stop.set()
        for r in reps:
            r.stop()
        reflector.stop()
