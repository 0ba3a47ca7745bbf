"""Routers sharded over several ExaBGP workers ([bgp] workers, ribd.workers).

The plan is pure and tested as such; the rest runs real processes on
loopback: one Speaker (ExaBGP) per router, each from its own 127.0.0.x to
an address of its own on our side, our workers (one ExaBGP and relay each)
feeding one FeedServer and Rib. Nothing is timed: every wait polls.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from ribd.exabgp import render_config, render_env
from ribd.rib import Rib
from ribd.settings import BgpSettings, NeighborSettings
from ribd.speaker import BgpTestbed, Route, Speaker, wait_until
from ribd.workers import (
    ExabgpWorkers,
    plan_warnings,
    plan_workers,
    spool_warnings,
    worker_settings,
)
from tests.ribd.test_exabgp_e2e import rib_view
from tests.ribd.test_resync import pipe_bytes

LOCAL_AS = 65000


def settings(*neighbors: NeighborSettings, workers: int = 2, listen: str = "127.0.0.1"):
    return BgpSettings(
        local_as=LOCAL_AS,
        router_id="127.0.0.1",
        listen_address=listen,
        listen_port=1179,
        neighbors=neighbors,
        work_dir="/run/x",
        workers=workers,
    )


def router(k: int, local: str | None = "", passive: bool = True) -> NeighborSettings:
    return NeighborSettings(
        f"r{k}",
        f"127.0.1.{k}",
        LOCAL_AS,
        local_address=f"127.0.2.{k}" if local is None else local,
        passive=passive,
    )


def layout(s: BgpSettings) -> list[tuple[int, list[str], tuple[str, ...] | None]]:
    return [(p.number, [n.name for n in p.neighbors], p.bind) for p in plan_workers(s)]


# -- the plan -----------------------------------------------------------------------


def test_routers_with_addresses_of_their_own_go_round_robin_in_file_order() -> None:
    s = settings(*(router(k, local=None) for k in range(1, 6)), workers=2)
    assert layout(s) == [
        (1, ["r1", "r3", "r5"], ("127.0.2.1", "127.0.2.3", "127.0.2.5")),
        (2, ["r2", "r4"], ("127.0.2.2", "127.0.2.4")),
    ]


def test_appending_a_router_never_moves_another() -> None:
    routers = [router(k, local=None) for k in range(1, 8)]
    for workers in (2, 3, 4):
        before = {
            n.name: p.number
            for p in plan_workers(settings(*routers[:-1], workers=workers))
            for n in p.neighbors
        }
        after = {
            n.name: p.number
            for p in plan_workers(settings(*routers, workers=workers))
            for n in p.neighbors
        }
        assert {k: after[k] for k in before} == before


def test_passive_routers_waiting_on_one_address_share_a_worker() -> None:
    # r1, r3 on the listen address, r2 on its own, r4 connects out (any worker).
    s = settings(router(1), router(2, local=None), router(3), router(4, passive=False), workers=3)
    assert layout(s) == [
        (1, ["r1", "r3"], ("127.0.0.1",)),
        (2, ["r2"], ("127.0.2.2",)),
        (3, ["r4"], ()),  # listens nowhere: ExaBGP connects out
    ]


def test_a_wildcard_listen_address_takes_every_passive_router_of_its_family() -> None:
    s = settings(
        router(1, local=None),
        router(2),  # waits on the wildcard 0.0.0.0
        router(3, local=None),
        router(4, passive=False),
        workers=4,
        listen="0.0.0.0",
    )
    assert layout(s) == [
        (1, ["r1", "r2", "r3"], ("127.0.2.1", "0.0.0.0", "127.0.2.3")),
        (2, ["r4"], ()),
    ]


def test_one_worker_is_the_single_exabgp_of_before() -> None:
    for s in (
        settings(router(1), router(2), workers=1),
        settings(router(1), router(2), workers=4),  # one address: one worker can run
        settings(workers=8),  # no routers at all
    ):
        [plan] = plan_workers(s)
        assert (plan.number, plan.bind) == (0, None)
        mine = worker_settings(s, plan)
        assert render_env(mine) == render_env(settings(*s.neighbors, workers=1))
        assert render_config(mine) == render_config(s)
        assert "--worker" not in render_config(mine)


def test_one_exabgp_also_listens_on_passive_routers_own_addresses() -> None:
    s = settings(router(1, local=None), router(2), router(3, passive=False, local=None), workers=1)
    [plan] = plan_workers(s)
    assert (plan.number, plan.bind) == (0, ("127.0.0.1", "127.0.2.1"))
    assert render_env(worker_settings(s, plan))["exabgp.tcp.bind"] == "127.0.0.1 127.0.2.1"
    # A wildcard listen address already takes them: bound alone, as before.
    [plan] = plan_workers(settings(router(1, local=None), workers=1, listen="0.0.0.0"))
    assert plan.bind is None


def test_each_worker_renders_its_routers_listen_addresses_relay_and_directory() -> None:
    s = settings(*(router(k, local=None) for k in range(1, 4)), router(4, passive=False))
    p1, p2 = plan_workers(s)
    w1, w2 = worker_settings(s, p1), worker_settings(s, p2)
    assert render_env(w1)["exabgp.tcp.bind"] == "127.0.2.1 127.0.2.3"
    assert render_env(w2)["exabgp.tcp.bind"] == "127.0.2.2"
    assert (w1.work_dir, w2.work_dir) == ("/run/x/worker-1", "/run/x/worker-2")
    assert render_env(w1)["exabgp.log.destination"] == "/run/x/worker-1/exabgp.log"
    c1, c2 = render_config(w1), render_config(w2)
    assert "--worker 1;" in c1 and "--worker 2;" in c2
    assert "--socket /run/x/feed.sock" in c1 and "--socket /run/x/feed.sock" in c2
    assert "neighbor 127.0.1.1 {" in c1 and "neighbor 127.0.1.3 {" in c1
    assert "neighbor 127.0.1.2 {" in c2 and "neighbor 127.0.1.4 {" in c2
    assert "neighbor 127.0.1.2 {" not in c1


def test_addresses_that_keep_workers_idle_are_warned_about_naming_the_routers() -> None:
    crowded = settings(router(1), router(2), router(3, local=None), workers=4)
    [warning] = plan_warnings(crowded)
    assert "only 2 ExaBGP worker(s) can run" in warning
    assert "r1, r2 wait on 127.0.0.1" in warning
    # More workers than routers is no problem, nor are routers of their own.
    assert plan_warnings(settings(*(router(k, local=None) for k in range(1, 4)), workers=8)) == []
    assert plan_warnings(settings(router(1), router(2), workers=1)) == []


def test_a_worker_whose_routers_tables_overflow_the_relay_spool_is_warned_about() -> None:
    """16 real tables sent at once to one worker overflowed the default 256 MiB
    spool within a minute (bench.restart --routers 16 --refresh bgp): the lines
    were dropped and every table re-read, itself a burst of the same size."""
    import dataclasses

    sixteen = settings(*(router(k, local=None) for k in range(1, 17)), workers=1)
    [warning] = spool_warnings(sixteen)
    assert "relay_spool_bytes = 256 MiB" in warning and "16 routers share one" in warning
    assert "at least 1024 MiB" in warning
    assert spool_warnings(dataclasses.replace(sixteen, relay_spool_bytes=1 << 30)) == []
    # Spread over four workers (routers of their own addresses), four each fit.
    assert spool_warnings(dataclasses.replace(sixteen, workers=4)) == []
    # Not ours to size when ExaBGP is run by the user.
    assert spool_warnings(dataclasses.replace(sixteen, exabgp_mode="external")) == []
    assert spool_warnings(settings(router(1), router(2), workers=1)) == []


# -- real sessions ----------------------------------------------------------------------


def table(k: int) -> list[Route]:
    """Router k's own table: its next hops, one path that only it has, IPv6 too."""
    hop = f"127.0.1.{k}"
    routes = [
        Route(f"10.{i}.0.0/16", hop, as_path=[65001, 65100 + i], local_pref=100 + k)
        for i in range(20)
    ]
    routes.append(Route(f"10.{100 + k}.0.0/24", hop, as_path=[65001 + k, 64999]))
    routes.append(Route("2001:db8::/32", f"2001:db8::{k}", as_path=[65001, 65005], path_id=1))
    return routes


def up_and_converged(rib: Rib, neighbor: str) -> bool:
    r = rib.routers.get(neighbor)
    return bool(r and r.session == "up" and all(fs.converged for fs in r.families.values()))


def start_routers(bed: BgpTestbed, count: int) -> list[Speaker]:
    return [
        bed.speaker(local_address=f"127.0.1.{k}", routes=table(k), hold_time=30)
        for k in range(1, count + 1)
    ]


def loaded(bed: BgpTestbed, count: int) -> dict:
    neighbors = [f"127.0.1.{k}" for k in range(1, count + 1)]
    wait_until(
        lambda: all(up_and_converged(bed.rib, n) for n in neighbors),
        90,
        what="every router's table loaded",
    )
    return {n: rib_view(bed.rib, n) for n in neighbors}


def bed_with(testbed, count: int, workers: int, **kwargs: object) -> BgpTestbed:
    own = workers > 1  # workers = 1 listens on listen_address only, as before
    return testbed(
        neighbors=[router(k, local=None if own else "") for k in range(1, count + 1)],
        workers=workers,
        **kwargs,
    )


@pytest.mark.bgp
def test_one_exabgp_takes_passive_routers_on_their_own_local_addresses(testbed) -> None:
    bed = testbed(neighbors=[router(k, local=None) for k in (1, 2)], workers=1)
    start_routers(bed, 2)
    tables = loaded(bed, 2)
    assert all(len(v) == len(table(1)) for v in tables.values())


@pytest.mark.bgp
def test_two_workers_load_every_routers_table_as_one_exabgp_does(testbed) -> None:
    one = bed_with(testbed, 4, workers=1)
    start_routers(one, 4)
    expected = loaded(one, 4)
    one.close()

    two = bed_with(testbed, 4, workers=2)
    assert isinstance(two.supervisor, ExabgpWorkers) and two.supervisor.numbers == [1, 2]
    start_routers(two, 4)
    assert loaded(two, 4) == expected
    assert all(len(v) == len(table(1)) for v in expected.values())
    pids = {st.pid for _, st in two.supervisor.states()}
    assert len(pids) == 2 and None not in pids
    wait_until(
        lambda: two.feed.stats()["relays_connected_by_worker"] == {1: 1, 2: 1}, 30, what="relays"
    )
    for w in (1, 2):
        assert Path(two.work_dir, f"worker-{w}", "exabgp.conf").is_file()


class Watch:
    """Polls the RIB in a thread: did any of ``neighbors`` ever go stale or down?"""

    def __init__(self, rib: Rib, neighbors: list[str]) -> None:
        self.rib, self.neighbors = rib, neighbors
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            with self.rib.lock:
                for n in self.neighbors:
                    r = self.rib.routers[n]
                    if r.session != "up" or any(
                        fs.stale_slot is not None or not fs.converged for fs in r.families.values()
                    ):
                        self.seen.append(f"{n}: session {r.session}")

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(5)
        return self.seen


@pytest.mark.bgp
def test_a_killed_worker_restarts_alone_and_only_its_routers_resync(testbed) -> None:
    bed = bed_with(testbed, 4, workers=2, restart_hold_time=60)
    speakers = start_routers(bed, 4)
    before = loaded(bed, 4)
    mine, others = ["127.0.1.1", "127.0.1.3"], ["127.0.1.2", "127.0.1.4"]
    worker1, worker2 = bed.supervisor.supervisors
    ups = [s.sessions_established for s in speakers]
    pid2 = worker2.pid
    watch = Watch(bed.rib, others)
    victim = worker1.pid
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: worker1.state().last_exit_code == -signal.SIGKILL, 15)
    # Worker 1's routers: kept, stale, until their sessions are back.
    wait_until(
        lambda: all(bed.rib.routers[n].session == "down" for n in mine), 15, what="r1, r3 down"
    )
    wait_until(lambda: worker1.state().restarts == 1 and worker1.pid, 30)
    assert worker1.pid != victim
    for k in (0, 2):
        speakers[k].wait_established(60, after=ups[k])
    assert loaded(bed, 4) == before
    seen = watch.stop()
    assert seen == [], f"worker 2's routers were disturbed: {seen[:5]}"
    assert worker2.pid == pid2 and worker2.state().restarts == 0
    assert [speakers[k].sessions_established for k in (1, 3)] == [ups[1], ups[3]]


def relay_of(supervisor) -> int:
    out = subprocess.run(["pgrep", "-P", str(supervisor.pid)], capture_output=True, text=True)
    [pid] = [int(p) for p in out.stdout.split()]
    return pid


@pytest.mark.bgp
def test_lines_lost_by_one_workers_relay_re_read_only_that_workers_routers(testbed) -> None:
    bed = bed_with(testbed, 4, workers=2, restart_hold_time=60)
    speakers = start_routers(bed, 4)
    loaded(bed, 4)
    worker1, _ = bed.supervisor.supervisors
    watch = Watch(bed.rib, ["127.0.1.2", "127.0.1.4"])
    resyncs = bed.feed.stats()["resyncs_requested"]
    # Freeze worker 1's relay while r1 withdraws, then kill it: those lines
    # are gone; ExaBGP respawns its relay, whose hello reveals the gap.
    relay = relay_of(worker1)
    os.kill(relay, signal.SIGSTOP)
    try:
        gone = table(1)[:5]
        for route in gone:
            speakers[0].withdraw(route.prefix)
        wait_until(lambda: pipe_bytes(relay) >= 150 * len(gone), 30, what="lines in the pipe")
    finally:
        os.kill(relay, signal.SIGKILL)
    wait_until(lambda: bed.feed.stats()["relay_gaps"] >= 1, 30, what="the gap seen")
    wait_until(lambda: bed.feed.stats()["resyncs_requested"] > resyncs, 30, what="a re-read asked")
    expected_r1 = {
        k: v for k, v in rib_view_of(table(1)).items() if k[1] not in {r.prefix for r in gone}
    }
    wait_until(
        lambda: (
            up_and_converged(bed.rib, "127.0.1.1") and rib_view(bed.rib, "127.0.1.1") == expected_r1
        ),
        60,
        what="r1's table re-read exactly",
    )
    # r1 and r3, worker 1's routers, each asked of its relay; r2 and r4 never stale
    assert bed.feed.stats()["resyncs_requested"] == resyncs + 2
    assert watch.stop() == []


def rib_view_of(routes: list[Route]) -> dict:
    from tests.ribd.test_exabgp_e2e import expected_view

    return expected_view(routes)
