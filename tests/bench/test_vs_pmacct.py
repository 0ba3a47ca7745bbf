"""bench.vs_pmacct sends every router's session to an address its ExaBGP listens on.

With one router and ``--workers 1,2`` the bench gave the router an address of
its own (127.0.4.1) for workers = 2, but one running worker is the single
ExaBGP, bound to ``listen_address``: the session was refused and the bench
crashed after measuring workers = 1.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from attribution.config import load_config
from bench import bgpsend
from bench.vs_load import Load
from bench.vs_service import service_config, worker_counts
from ribd.workers import plan_workers, waits_on


def _load(routers: int) -> Load:
    tables = bgpsend.Tables([[] for _ in range(routers)], ("ipv4 unicast",), True, 65001, {})
    return Load("empty", tables, "192.0.2.0/24", {})


@pytest.mark.parametrize("routers", [1, 2, 4])
def test_every_router_waits_on_an_address_its_worker_listens_on(
    tmp_path: Path, routers: int
) -> None:
    for workers in worker_counts("1,2", routers):
        path = service_config(tmp_path, _load(routers), 1790, 50051, "raw", workers)
        assert_each_router_waits_where_its_worker_listens(load_config(path).bgp, workers)


def assert_each_router_waits_where_its_worker_listens(settings, workers: int) -> None:
    """``workers`` ExaBGP workers run, and each router's address to connect to is
    one its worker listens on."""
    plans = plan_workers(settings)
    assert len(plans) == workers
    for plan in plans:
        listens = plan.bind if plan.bind is not None else (settings.listen_address,)
        for n in plan.neighbors:
            assert waits_on(settings, n) in listens


def test_more_workers_than_routers_run_as_many_as_routers() -> None:
    assert worker_counts("1,2", 1) == [1]
    assert worker_counts("1,2,4", 2) == [1, 2]
    assert worker_counts("2,1", 4) == [2, 1]
