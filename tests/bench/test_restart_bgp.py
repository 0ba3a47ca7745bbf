"""bench.restart's BGP refresh: the service it starts can take every router's session.

The refresh sends each router's table from the router's own address
(``bench.realistic.neighbor``) to an address the supervised ExaBGP listens
on; a config that gave a router no worker listening where it connects, or
kept the feeder's marker router (192.0.2.254, outside loopback) beside a
supervised ExaBGP, would make the run fail or reach outside loopback.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from attribution.config import load_config
from bench.realistic import neighbor
from bench.restart_many import many_config
from bench.vs_service import our_address
from ribd.workers import waits_on
from tests.bench.test_vs_pmacct import assert_each_router_waits_where_its_worker_listens


@pytest.mark.parametrize("workers", [1, 2])
def test_every_router_can_connect_where_its_worker_listens(tmp_path: Path, workers: int) -> None:
    path = many_config(tmp_path, 50051, 4, tmp_path / "rib.snapshot", 1790, workers)
    config = load_config(path)
    settings = config.bgp
    assert settings.api_mode == "raw" and settings.exabgp_mode == "supervised"
    assert config.warnings == ()  # the spool holds every router's table (spool_warnings)
    assert [n.address for n in settings.neighbors] == [neighbor(k) for k in range(1, 5)]
    assert_each_router_waits_where_its_worker_listens(settings, workers)
    for k, n in enumerate(settings.neighbors, start=1):
        assert waits_on(settings, n) == our_address(k, workers)  # where bgpsend connects


def test_the_feed_refresh_keeps_its_marker_and_the_bgp_one_stays_on_loopback(
    tmp_path: Path,
) -> None:
    feed = load_config(many_config(tmp_path, 50051, 2, tmp_path / "rib.snapshot"))
    assert feed.bgp.exabgp_mode == "external"
    assert any(not ipaddress.ip_address(n.address).is_loopback for n in feed.bgp.neighbors)
    bgp = load_config(many_config(tmp_path, 50051, 2, tmp_path / "rib.snapshot", 1790))
    assert all(ipaddress.ip_address(n.address).is_loopback for n in bgp.bgp.neighbors)
    assert ipaddress.ip_address(bgp.bgp.listen_address).is_loopback
