"""config/attribution.production.toml: loads, and has every protection turned on."""

from __future__ import annotations

import json
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from attribution.client import channel, connection_from
from attribution.config import load_config
from attribution.v1 import attribution_pb2 as pb
from attribution.v1 import attribution_pb2_grpc as pb_grpc
from ribd.speaker import Route, Speaker, free_port
from tests.deploy.common import PRODUCTION_CONFIG, wait_until


def test_the_production_config_loads_without_warnings():
    config = load_config(PRODUCTION_CONFIG)
    assert config.warnings == ()
    assert config.routers


def test_the_api_serves_mutual_tls_and_wants_tokens():
    api = load_config(PRODUCTION_CONFIG).api
    assert api.tls and api.tls_key and api.tls_client_ca
    assert api.read_token_file and api.admin_token_file
    assert api.read_token_file != api.admin_token_file
    # secrets live together, where the unit and the image expect /etc/attribution
    for path in (api.tls_cert, api.tls_key, api.tls_client_ca, api.read_token_file):
        assert Path(path).is_relative_to("/etc/attribution")


def test_metrics_json_logs_and_the_snapshot_are_on():
    config = load_config(PRODUCTION_CONFIG)
    assert config.metrics_listen
    assert config.log_format == "json"
    assert config.snapshot_path == "/var/lib/attribution/rib.snapshot"
    assert config.snapshot_interval > 0
    assert config.bgp.exabgp_mode == "supervised"
    assert config.bgp.work_dir.startswith("/var/lib/attribution/")


def production_config_here(work: Path, bgp_port: int, grpc_port: int, metrics_port: int) -> Path:
    """The production config with its addresses moved to loopback and its paths to ``work``.

    Every replaced string must be found: a change of the production file that this test
    would no longer cover fails here instead of being silently skipped.
    """
    text = PRODUCTION_CONFIG.read_text()
    for old, new in {
        'router_id = "192.0.2.1"': 'router_id = "127.0.0.1"',
        'grpc_listen = "[::]:50051"': f'grpc_listen = "127.0.0.1:{grpc_port}"',
        'listen_address = "192.0.2.1"': 'listen_address = "127.0.0.1"',
        "listen_port = 179": f"listen_port = {bgp_port}",
        'listen = "[::]:9179"': f'listen = "127.0.0.1:{metrics_port}"',
        '"192.0.2.10"': f'"{EDGE_1}"',
        '"192.0.2.11"': f'"{EDGE_2}"',
        "/var/lib/attribution": f"{work}/state",
        "/run/attribution": f"{work}/run",
        "/etc/attribution": f"{work}/etc",
    }.items():
        assert old in text, old
        text = text.replace(old, new)
    path = work / "attribution.toml"
    path.write_text(text)
    return path


EDGE_1, EDGE_2 = "127.0.0.2", "127.0.0.3"
TABLE = [Route(f"10.{i}.0.0/16", EDGE_1, as_path=[65001, 65100 + i]) for i in range(20)]


@pytest.fixture
def work() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="attr-prod-", dir="/tmp") as d:  # short: sockets
        yield Path(d)


def probe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("attribution-health")), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return reply.read().decode()


@pytest.mark.bgp
def test_the_production_config_runs_tls_tokens_metrics_health_and_snapshot(work, pki):
    """`attribution serve` on the production config (addresses and paths moved here), two
    real BGP routers: NOT_SERVING until both tables are in, then SERVING to a probe that
    has the CA and a client certificate but no token; tokens guard the API; metrics
    scrape; JSON logs; SIGTERM writes the snapshot into the state directory."""
    for sub in ("state", "run", "etc/tls", "etc/tokens"):  # what systemd or the image makes
        (work / sub).mkdir(parents=True, mode=0o700)
    tls = work / "etc" / "tls"
    shutil.copy(pki["server_crt"], tls / "server.crt")
    shutil.copy(pki["server_key"], tls / "server.key")
    shutil.copy(pki["ca"], tls / "clients-ca.crt")
    (work / "etc/tokens/read.tokens").write_text("read-0123456789abcdef0123456789\n")
    (work / "etc/tokens/admin.tokens").write_text("admin-0123456789abcdef012345678\n")
    for token_file in (work / "etc/tokens").iterdir():
        token_file.chmod(0o600)
    bgp_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    config = production_config_here(work, bgp_port, grpc_port, metrics_port)
    target = f"127.0.0.1:{grpc_port}"
    env = {
        "ATTRIBUTION_TARGET": target,
        "ATTRIBUTION_CA": str(pki["ca"]),
        "ATTRIBUTION_CERT": str(pki["client_crt"]),
        "ATTRIBUTION_KEY": str(pki["client_key"]),
    }
    log = (work / "serve.log").open("wb")
    daemon = subprocess.Popen(
        [str(Path(sys.executable).with_name("attribution")), "serve", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    speakers = [
        Speaker(
            peer_port=bgp_port,
            peer_as=64500,
            local_as=64500,
            local_address=address,
            routes=TABLE if address == EDGE_1 else TABLE[:3],
        )
        for address in (EDGE_1, EDGE_2)
    ]
    try:
        answered = wait_until(lambda: probe(env).returncode != 2, 60, what="gRPC health")
        assert answered
        assert probe(env).returncode == 1, "NOT_SERVING before the routers' tables are in"
        for speaker in speakers:
            speaker.start()
        for speaker in speakers:
            speaker.wait_established(60)
        wait_until(lambda: probe(env).returncode == 0, 120, what="SERVING")

        # the API wants a token; the client certificate alone is not enough
        def list_routers(token: str) -> pb.ListRoutersReply:
            conn = connection_from(env={**env, "ATTRIBUTION_TOKEN": token})
            with channel(conn) as ch:
                return pb_grpc.AttributionStub(ch).ListRouters(pb.ListRoutersRequest(), timeout=10)

        with pytest.raises(grpc.RpcError) as refused:
            list_routers("")
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        names = {r.name for r in list_routers("read-0123456789abcdef0123456789").routers}
        assert names == {"edge-par-1", "edge-par-2"}

        metrics = scrape(metrics_port)
        assert "attribution_health_serving 1.0" in metrics
        assert "attribution_bgp_session_up{" in metrics

        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(90) == 0
    finally:
        for speaker in speakers:
            speaker.close()
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)
        log.close()
    assert (work / "state" / "rib.snapshot").stat().st_size > 0
    assert stat.S_IMODE((work / "state" / "exabgp").stat().st_mode) == 0o700
    lines = (work / "serve.log").read_text().splitlines()
    log_lines = [line for line in lines if line.startswith("{")]
    assert log_lines and all(isinstance(json.loads(line), dict) for line in log_lines)
