"""The image's PID 1 (tini, as its ENTRYPOINT runs it) passes SIGHUP and SIGTERM to the
service alone: a reload, then a stop that keeps every router's routes in the snapshot.

`docker stop` and a pod's deletion send SIGTERM to PID 1; with a shell there instead it
would never reach the service, and the pod would be killed after its grace period without
a snapshot. Fails if the ENTRYPOINT stops passing signals on or exit statuses back.
"""

from __future__ import annotations

import os
import shutil
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
from ribd.speaker import Route, Speaker, free_port
from tests.deploy.common import dockerfile_instructions, exec_form, wait_until

TINI = shutil.which("tini")
pytestmark = [
    pytest.mark.bgp,
    pytest.mark.skipif(TINI is None, reason="tini is not installed (.ci/run installs it)"),
]
ROUTER = "127.0.0.2"
TABLE = [Route(f"10.{i}.0.0/16", ROUTER, as_path=[65001, 65100 + i]) for i in range(40)]


def entrypoint() -> list[str]:
    """The image's ENTRYPOINT with this machine's tini and installed commands."""
    (args,) = [a for word, a in dockerfile_instructions() if word == "ENTRYPOINT"]
    tini, *options, program = exec_form(args)
    assert Path(tini).name == "tini" and options == ["--"], "tini as in the Dockerfile"
    return [TINI, *options, str(Path(sys.executable).with_name(program))]


@pytest.fixture
def work() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="attr-tini-", dir="/tmp") as d:
        yield Path(d)


def loaded(target: str) -> bool:
    try:
        with channel(target) as ch:
            reply = pb_grpc.AttributionStub(ch).ListRouters(pb.ListRoutersRequest(), timeout=5)
    except grpc.RpcError:
        return False
    return any(
        r.session == "up" and sum(f.prefixes for f in r.families) == len(TABLE)
        for r in reply.routers
    )


def test_sigterm_to_pid_1_reaches_the_service_alone_and_the_snapshot_keeps_the_routes(work):
    bgp_port, grpc_port = free_port(), free_port()
    config = work / "attribution.toml"
    config.write_text(
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
work_dir = "{work}/exabgp"

[[routers]]
name = "r1"
neighbor = "{ROUTER}"
"""
    )
    log = (work / "serve.log").open("wb")
    pid1 = subprocess.Popen(
        [*entrypoint(), "serve", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as in a container
    )
    speaker = Speaker(peer_port=bgp_port, peer_as=65000, local_as=65000, routes=TABLE)
    second = None
    try:
        speaker.start()
        speaker.wait_established(60)
        wait_until(lambda: loaded(f"127.0.0.1:{grpc_port}"), 60, what="the table loaded")
        pid1.send_signal(signal.SIGHUP)
        wait_until(lambda: b"config reloaded" in (work / "serve.log").read_bytes(), 60)
        assert pid1.poll() is None, "SIGHUP reloads; it does not stop the service"
        pid1.send_signal(signal.SIGTERM)
        assert pid1.wait(90) == 0, (work / "serve.log").read_text()[-3000:]
        speaker.stop()

        second = Service(str(config))
        second.start()
        for route in TABLE:
            m = second.rib.lookup(ROUTER, route.family, route.prefix.split("/")[0])
            assert m is not None and m.prefix == route.prefix, route.prefix
    finally:
        speaker.close()
        if pid1.poll() is None:
            os.killpg(pid1.pid, signal.SIGKILL)
            pid1.wait(10)
        log.close()
        if second is not None:
            second.stop()
