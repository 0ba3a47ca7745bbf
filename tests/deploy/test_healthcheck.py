"""attribution-health, the probe of the container image and the Kubernetes manifests.

Against a real gRPC server with the real health service, over plaintext, TLS and mutual
TLS with certificates made here, and against the real service.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from attribution.service import Service
from ribd.speaker import free_port
from tests.attribution.helpers import CONFIG

PROBE = Path(sys.executable).with_name("attribution-health")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def health_server(credentials=None):
    """A real gRPC server with the standard health service; (server, servicer, target)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return server, servicer, f"127.0.0.1:{port}"


def probe(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(PROBE), *args], capture_output=True, text=True, timeout=60, env=env or {}
    )


def test_plaintext_exit_status_follows_the_health_status():
    server, servicer, target = health_server()
    try:
        servicer.set("", SERVING)
        result = probe("--target", target)
        assert (result.returncode, result.stdout.strip()) == (0, f"{target}: SERVING")
        servicer.set("", NOT_SERVING)
        result = probe("--target", target)
        assert (result.returncode, result.stdout.strip()) == (1, f"{target}: NOT_SERVING")
        # a liveness probe: answering at all is alive
        assert probe("--target", target, "--liveness").returncode == 0
        # the service's own name is asked only when named
        servicer.set("attribution.v1.Attribution", SERVING)
        assert probe("--target", target, "--service", "attribution.v1.Attribution").returncode == 0
    finally:
        server.stop(None)


def test_nothing_listening_is_no_answer_even_for_liveness():
    server, _, target = health_server()
    server.stop(None).wait()
    result = probe("--target", target, "--timeout", "2", "--liveness")
    assert result.returncode == 2, result.stdout
    assert target in result.stdout


def test_tls_is_checked_against_the_given_ca_and_server_name(pki):
    credentials = grpc.ssl_server_credentials(
        [(pki["server_key"].read_bytes(), pki["server_crt"].read_bytes())]
    )
    server, servicer, target = health_server(credentials)
    servicer.set("", SERVING)
    port = target.rpartition(":")[2]
    try:
        # env, as in the image and the pod
        assert (
            probe(env={"ATTRIBUTION_TARGET": target, "ATTRIBUTION_CA": str(pki["ca"])}).returncode
            == 0
        )
        # localhost is not in the certificate: the probe names the Service instead
        by_name = ["--target", f"localhost:{port}", "--ca", str(pki["ca"])]
        assert probe(*by_name, "--timeout", "3").returncode == 2
        assert probe(*by_name, "--server-name", "attribution.attribution.svc").returncode == 0
        named = {"ATTRIBUTION_SERVER_NAME": "attribution.attribution.svc"}
        assert probe(*by_name, env=named).returncode == 0
        # a certificate from another CA is refused
        other = probe("--target", target, "--ca", str(pki["other_ca"]), "--timeout", "3")
        assert other.returncode == 2
        # plaintext against TLS: no answer
        assert probe("--target", target, "--timeout", "3").returncode == 2
    finally:
        server.stop(None)


def test_mutual_tls_needs_the_client_certificate(pki):
    credentials = grpc.ssl_server_credentials(
        [(pki["server_key"].read_bytes(), pki["server_crt"].read_bytes())],
        root_certificates=pki["ca"].read_bytes(),
        require_client_auth=True,
    )
    server, servicer, target = health_server(credentials)
    servicer.set("", NOT_SERVING)
    base = ["--target", target, "--ca", str(pki["ca"]), "--timeout", "3"]
    try:
        assert probe(*base).returncode == 2
        env = {
            "ATTRIBUTION_CERT": str(pki["client_crt"]),
            "ATTRIBUTION_KEY": str(pki["client_key"]),
        }
        assert probe(*base, env=env).returncode == 1  # answered: NOT_SERVING
        assert probe(*base, "--liveness", env=env).returncode == 0
        only_cert = probe(*base, "--cert", str(pki["client_crt"]))
        assert only_cert.returncode == 2 and "both --cert and --key" in only_cert.stdout
    finally:
        server.stop(None)


def test_the_running_service_answers_the_probe(tmp_path):
    config = tmp_path / "attribution.toml"
    config.write_text(
        CONFIG.replace(
            "[[routers]]",
            f'[bgp]\nexabgp = "external"\nfeed_socket = "{tmp_path}/feed.sock"\n\n[[routers]]',
            1,
        )
    )
    service = Service(str(config))
    service.start()
    try:
        target = f"127.0.0.1:{service.grpc_port}"
        result = probe("--target", target)
        # no router has a session: the health rule may hold it NOT_SERVING; both answer
        assert result.returncode in (0, 1), result.stdout
        assert result.stdout.strip() in (f"{target}: SERVING", f"{target}: NOT_SERVING")
        assert probe("--target", target, "--liveness").returncode == 0
    finally:
        service.stop()


def test_the_probe_needs_no_token_from_a_service_with_mutual_tls_and_tokens(tmp_path, pki):
    """The pod's set-up: TLS, client CA and token files on; the probe has the CA and a
    client certificate, and no token."""
    (tmp_path / "read.tokens").write_text("read-token-0123456789abcdef\n")
    (tmp_path / "admin.tokens").write_text("admin-token-0123456789abcdef\n")
    api = f"""
[api]
tls_cert = "{pki["server_crt"]}"
tls_key = "{pki["server_key"]}"
tls_client_ca = "{pki["ca"]}"
read_token_file = "{tmp_path}/read.tokens"
admin_token_file = "{tmp_path}/admin.tokens"
"""
    config = tmp_path / "attribution.toml"
    config.write_text(
        CONFIG.replace(
            'grpc_listen = "127.0.0.1:0"', f'grpc_listen = "127.0.0.1:{free_port()}"'
        ).replace(
            "[[routers]]",
            f'[bgp]\nexabgp = "external"\nfeed_socket = "{tmp_path}/feed.sock"\n{api}\n[[routers]]',
            1,
        )
    )
    service = Service(str(config))
    service.start()
    try:
        target = f"localhost:{service.grpc_port}"
        env = {
            "ATTRIBUTION_TARGET": target,
            "ATTRIBUTION_CA": str(pki["ca"]),
            "ATTRIBUTION_CERT": str(pki["client_crt"]),
            "ATTRIBUTION_KEY": str(pki["client_key"]),
        }
        named = ["--server-name", "attribution.attribution.svc"]
        result = probe(*named, "--liveness", env=env)
        assert result.returncode == 0, result.stdout
        assert result.stdout.strip() in (f"{target}: SERVING", f"{target}: NOT_SERVING")
        # on the service's host: everything from its config (as `attribution` clients do)
        from_config = probe("--config", str(config), "--liveness")
        assert from_config.returncode == 0, from_config.stdout
        # without the client certificate the handshake fails: no answer
        del env["ATTRIBUTION_CERT"], env["ATTRIBUTION_KEY"]
        assert probe(*named, "--liveness", "--timeout", "3", env=env).returncode == 2
        # a config that cannot be read: no answer, and the reason
        missing = probe("--config", str(tmp_path / "absent.toml"))
        assert missing.returncode == 2 and "absent.toml" in missing.stdout
    finally:
        service.stop()
