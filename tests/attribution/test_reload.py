"""Reloading the config in a running daemon: good files apply, broken ones change nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attribution.client import channel
from attribution.service import Service
from attribution.v1 import attribution_pb2 as pb
from attribution.v1 import attribution_pb2_grpc as pb_grpc
from ribd.events import RoutesAnnounced, SessionState
from tests.attribution.helpers import CONFIG, EDGE1, attrs


def write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def external(text: str, tmp_path: Path) -> str:
    return text.replace(
        "[[routers]]",
        f'[bgp]\nexabgp = "external"\nfeed_socket = "{tmp_path}/feed.sock"\n\n[[routers]]',
        1,
    )


@pytest.fixture
def running(tmp_path):
    path = tmp_path / "attribution.toml"
    write(path, external(CONFIG, tmp_path))
    service = Service(str(path))
    service.start()
    service.rib.apply(SessionState(EDGE1, "up"))
    service.rib.apply(
        RoutesAnnounced(EDGE1, "ipv4 unicast", ("10.0.0.0/8",), None, attrs((65001, 65002)))
    )
    with channel(f"127.0.0.1:{service.grpc_port}") as ch:
        yield path, service, pb_grpc.AttributionStub(ch)
    service.stop()


def src_peer(stub, in_if: int) -> tuple[int, str]:
    a = stub.Resolve(
        pb.Flow(exporter="127.0.1.1", src_addr="10.1.1.1", dst_addr="10.2.2.2", in_if=in_if)
    )
    return a.src_peer_as, a.override


def test_reload_applies_new_overrides_without_restart(running, tmp_path):
    path, _, stub = running
    assert src_peer(stub, 30) == (65020, "pni-b")
    write(path, external(CONFIG.replace("peer_as = 65020", "peer_as = 65021"), tmp_path))
    reply = stub.ReloadConfig(pb.ReloadConfigRequest())
    assert reply.ok and reply.overrides == 2
    assert src_peer(stub, 30) == (65021, "pni-b")


def test_broken_reload_keeps_the_running_config_and_says_why(running, tmp_path):
    path, service, stub = running
    write(path, external(CONFIG.replace("in_if = 30", 'in_if = "x"'), tmp_path))
    reply = stub.ReloadConfig(pb.ReloadConfigRequest())
    assert not reply.ok
    assert str(path) in reply.error and "overrides[1].in_if" in reply.error
    assert src_peer(stub, 30) == (65020, "pni-b")  # old rules still in force
    assert service.config.overrides[1].peer_as == 65020


def test_sighup_reloads_a_running_daemon(tmp_path):
    """The real command: `attribution serve`, SIGHUP, and `attribution reload`."""
    path = tmp_path / "attribution.toml"
    write(path, external(CONFIG.replace('"127.0.0.1:0"', '"127.0.0.1:0"'), tmp_path))
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "attribution.cli",
            "serve",
            "--config",
            str(path),
            "--grpc-listen",
            f"127.0.0.1:{port}",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        target = f"127.0.0.1:{port}"
        with channel(target) as ch:
            stub = pb_grpc.AttributionStub(ch)
            deadline = time.time() + 30
            while True:
                try:
                    stub.ListRouters(pb.ListRoutersRequest(), timeout=1)
                    break
                except Exception:
                    if time.time() > deadline or proc.poll() is not None:
                        raise
                    time.sleep(0.1)
            assert src_peer(stub, 30) == (65020, "pni-b")
            write(path, external(CONFIG.replace("peer_as = 65020", "peer_as = 65030"), tmp_path))
            proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 10
            while src_peer(stub, 30)[0] != 65030:
                assert time.time() < deadline, "SIGHUP did not reload"
                time.sleep(0.05)
            write(path, "this is = not [toml")
            out = subprocess.run(
                [sys.executable, "-m", "attribution.cli", "reload", "--target", target],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert out.returncode == 1
            assert "TOML syntax error" in out.stderr and "running config is kept" in out.stderr
            assert src_peer(stub, 30) == (65030, "pni-b")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
