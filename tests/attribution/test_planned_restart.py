"""A planned restart with supervised ExaBGP keeps every router's routes.

The daemon runs as a real process (``attribution serve``) with its own ExaBGP;
a Speaker (a second ExaBGP on loopback) is the router. SIGTERM makes ExaBGP
report each session down before it exits: with ``stale_hold_time = 0`` that
used to purge the router just before the snapshot was written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from attribution.client import channel
from attribution.service import Service
from attribution.v1 import attribution_pb2 as pb
from attribution.v1 import attribution_pb2_grpc as pb_grpc
from ribd.speaker import Route, Speaker, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
R1 = "127.0.0.2"
TABLE = [Route(f"10.{i}.0.0/16", R1, as_path=[65001, 65100 + i]) for i in range(40)] + [
    Route(f"2001:db8:{i:x}::/48", "2001:db8::1", as_path=[65001, 65200 + i]) for i in range(10)
]


@pytest.fixture
def work() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ribd-pr-", dir="/tmp") as d:
        yield Path(d)


def write_config(work: Path, bgp_port: int, grpc_port: int) -> Path:
    path = work / "attribution.toml"
    path.write_text(
        f"""
[service]
local_as = 65000
router_id = "127.0.0.1"
grpc_listen = "127.0.0.1:{grpc_port}"
snapshot_path = "{work}/rib.snapshot"
snapshot_interval = 3600

[bgp]
listen_address = "127.0.0.1"
listen_port = {bgp_port}
stale_hold_time = 0
restart_hold_time = 300
work_dir = "{work}/exabgp"

[[routers]]
name = "r1"
neighbor = "{R1}"
"""
    )
    return path


def router_state(target: str) -> pb.RouterState | None:
    try:
        with channel(target) as ch:
            reply = pb_grpc.AttributionStub(ch).ListRouters(pb.ListRoutersRequest(), timeout=5)
    except grpc.RpcError:
        return None
    return next((r for r in reply.routers if r.neighbor == R1), None)


def loaded(state: pb.RouterState | None) -> bool:
    return bool(
        state
        and state.session == "up"
        and all(f.converged for f in state.families)
        and sum(f.prefixes for f in state.families) == len(TABLE)
    )


@pytest.mark.bgp
def test_sigterm_with_supervised_exabgp_keeps_the_routes_for_the_next_start(work: Path) -> None:
    bgp_port, grpc_port = free_port(), free_port()
    config = write_config(work, bgp_port, grpc_port)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    daemon = subprocess.Popen(
        [sys.executable, "-m", "attribution.cli", "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(work / "serve.log", "wb"),  # noqa: SIM115 (closed with the process)
    )
    speaker = Speaker(peer_port=bgp_port, peer_as=65000, local_as=65000, routes=TABLE)
    second = None
    try:
        speaker.start()
        speaker.wait_established(60)
        target = f"127.0.0.1:{grpc_port}"
        wait_until(lambda: loaded(router_state(target)), 60, what="the table loaded")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
        speaker.stop()

        second = Service(str(config))
        second.start()
        for route in TABLE:
            family = route.family
            m = second.rib.lookup(R1, family, route.prefix.split("/")[0])
            assert m is not None and m.prefix == route.prefix, route.prefix
            assert m.stale, "kept routes are stale until the router sends them again"
            assert m.attributes.origin_as == route.as_path[-1]

        # The router comes back: its routes are current again, nothing else.
        speaker.start()
        speaker.wait_established(60)
        r = second.rib.routers[R1]
        wait_until(
            lambda: r.session == "up" and all(fs.converged for fs in r.families.values()), 60
        )
        for route in TABLE:
            m = second.rib.lookup(R1, route.family, route.prefix.split("/")[0])
            assert m is not None and not m.stale
    finally:
        speaker.close()
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)
        if second is not None:
            second.stop()
