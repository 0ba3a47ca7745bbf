"""A real `attribution serve` with [bgp] workers = 2: health, metrics, routers, logs.

Worker 2's listen address is taken by the test, so it crash-loops ("can not
bind") while worker 1 runs: health must stay NOT_SERVING naming worker 2, the
metrics must say which worker is down, and once the address is free the
worker starts on its own and health turns SERVING.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import orjson
import pytest

from ribd.speaker import free_port, wait_until
from tests.attribution.observed import NOT_SERVING, SERVING, ServedProcess, metric

pytestmark = pytest.mark.bgp


def routers() -> str:
    return "".join(
        f'[[routers]]\nname = "edge{k}"\nneighbor = "127.0.1.{k}"\npeer_as = 64500\n'
        f'local_address = "127.0.4.{k}"\nexporters = ["127.0.2.{k}"]\n'
        for k in (1, 2)
    )


def test_a_worker_that_cannot_start_holds_health_and_shows_in_metrics_and_routers():
    port = free_port("127.0.4.2")
    taken = socket.socket()
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    taken.bind(("127.0.4.2", port))
    taken.listen()
    svc = ServedProcess(
        routers(), service="ready_timeout = 0\n", bgp="workers = 2\n", bgp_port=port
    )
    try:
        wait_until(lambda: svc.health() is not None, 60, 0.1, "gRPC up")
        wait_until(
            lambda: (
                metric(svc.metrics(), "attribution_exabgp_worker_restarts_total", worker="2") >= 1
            ),
            120,
            0.2,
            "worker 2 restarted",
        )
        wait_until(
            lambda: (
                metric(svc.metrics(), "attribution_exabgp_worker_relays_connected", worker="1") == 1
            ),
            60,
            0.2,
            "worker 1's relay",
        )
        assert svc.health() == NOT_SERVING
        values = svc.metrics()
        assert metric(values, "attribution_exabgp_worker_routers", worker="1") == 1
        assert metric(values, "attribution_exabgp_worker_routers", worker="2") == 1
        assert metric(values, "attribution_exabgp_worker_restarts_total", worker="1") == 0
        # (worker 2's process runs a second or so per attempt: its relay is what counts)
        assert metric(values, "attribution_exabgp_worker_relays_connected", worker="2") == 0
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "attribution.cli",
                "routers",
                "--json",
                "--target",
                f"127.0.0.1:{svc.grpc_port}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        target = f"127.0.0.1:{svc.grpc_port}"
        shown = {r["name"]: r["worker"] for r in orjson.loads(out.stdout)["routers"]}
        assert shown == {"edge1": 1, "edge2": 2}
        table = subprocess.run(
            [sys.executable, "-m", "attribution.cli", "routers", "--target", target],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.splitlines()
        assert table[0].split()[:3] == ["name", "neighbor", "worker"]
        assert [line.split()[2] for line in table[2:4]] == ["1", "2"]
        taken.close()  # worker 2 can bind now: it starts on its own
        svc.wait_health(SERVING, 120)
        assert metric(svc.metrics(), "attribution_exabgp_worker_up", worker="2") == 1
    finally:
        taken.close()
        code = svc.stop()
    assert code == 0
    health = svc.events("health")  # (a reason is logged when the state changes, not after)
    assert health and all(not r["serving"] for r in health[:-1]) and health[-1]["serving"]
    assert "ExaBGP worker 2 exited with code 1" in svc.log_text()
    stopped = [r for r in svc.log_records() if "stopped (exit code" in r["message"]]
    assert {r["message"].split(" stopped")[0] for r in stopped} == {
        "ExaBGP worker 1",
        "ExaBGP worker 2",
    }


def test_sigterm_stops_every_worker_and_keeps_all_routers_routes_for_the_next_start(
    tmp_path,
) -> None:
    """Rib.stopping holds for every worker: each ExaBGP reports its sessions
    down as it exits, and no router is purged before the snapshot."""
    from attribution.service import Service
    from ribd.speaker import Route, Speaker

    routers = {k: f"127.0.1.{k}" for k in (1, 2)}
    tables = {
        k: [Route(f"10.{k}.{i}.0/24", routers[k], as_path=[65001, 65100 + i]) for i in range(30)]
        for k in routers
    }
    bgp_port = free_port("127.0.4.1")
    svc = ServedProcess(
        "".join(
            f'[[routers]]\nname = "edge{k}"\nneighbor = "{a}"\npeer_as = 64500\n'
            f'local_address = "127.0.4.{k}"\n'
            for k, a in routers.items()
        ),
        service=f'snapshot_path = "{tmp_path}/rib.snapshot"\nsnapshot_interval = 3600\n',
        bgp="workers = 2\nstale_hold_time = 0\nrestart_hold_time = 300\n",
        bgp_port=bgp_port,
    )
    speakers = [
        Speaker(
            peer_port=bgp_port,
            peer_address=f"127.0.4.{k}",
            local_address=a,
            peer_as=64500,
            local_as=64500,
            routes=tables[k],
        )
        for k, a in routers.items()
    ]
    second = None
    try:
        for s in speakers:
            s.start()
        for s in speakers:
            s.wait_established(60)
        svc.wait_health(SERVING, 120)
        assert svc.stop() == 0
        for s in speakers:
            s.stop()
        second = Service(svc.config_path)
        second.start()
        for k, a in routers.items():
            for route in tables[k]:
                m = second.rib.lookup(a, "ipv4 unicast", route.prefix.split("/")[0])
                assert m is not None and m.prefix == route.prefix and m.stale, route.prefix
    finally:
        for s in speakers:
            s.close()
        svc.stop()
        if second is not None:
            second.stop()
    stopped = {
        r["message"].split(" stopped")[0]
        for r in svc.log_records()
        if "stopped (exit" in r["message"]
    }
    assert stopped == {"ExaBGP worker 1", "ExaBGP worker 2"}
    assert "purged" not in svc.log_text()
