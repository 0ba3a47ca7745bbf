"""The secured API: TLS and mutual TLS, bearer tokens, bounded concurrency.

Real servers and clients on loopback, real certificates made per test.
"""

from __future__ import annotations

import queue
import threading
import urllib.request
from dataclasses import replace

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from attribution.client import Connection, channel, columns_request
from attribution.config import ApiSettings
from attribution.security import REFUSED, SecurityError, is_loopback_peer
from attribution.v1 import attribution_pb2 as pb
from attribution.v1 import attribution_pb2_grpc as pb_grpc
from tests.attribution.pki import make_pki
from tests.attribution.served import Server

FLOW = pb.Flow(exporter="127.0.1.1", src_addr="172.16.0.1", dst_addr="10.9.1.1")
WAIT = 30.0  # generous: busy CI machines


@pytest.fixture
def serve():
    servers: list[Server] = []

    def start(api: ApiSettings) -> Server:
        servers.append(Server(api))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def pki(tmp_path):
    return make_pki(tmp_path)


def stub(conn: Connection | str) -> tuple[grpc.Channel, pb_grpc.AttributionStub]:
    ch = channel(conn)
    return ch, pb_grpc.AttributionStub(ch)


def health(target: Connection | str) -> int:
    with channel(target) as ch:
        return (
            health_pb2_grpc.HealthStub(ch)
            .Check(health_pb2.HealthCheckRequest(service=""), timeout=WAIT)
            .status
        )


# -- TLS ---------------------------------------------------------------------------


def test_tls_serves_clients_that_trust_its_ca_and_refuses_plaintext(serve, pki):
    s = serve(ApiSettings(tls_cert=str(pki.server_cert), tls_key=str(pki.server_key)))
    with channel(Connection(s.target, ca=str(pki.ca))) as ch:
        a = pb_grpc.AttributionStub(ch).Resolve(FLOW, timeout=WAIT)
    assert a.dst_origin_as == 65006
    with channel(s.target) as ch, pytest.raises(grpc.RpcError) as err:
        pb_grpc.AttributionStub(ch).Resolve(FLOW, timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    # a client that does not trust the server's CA is refused too
    with channel(Connection(s.target, ca=str(pki.rogue_cert))) as ch, pytest.raises(grpc.RpcError):
        pb_grpc.AttributionStub(ch).Resolve(FLOW, timeout=5)


def test_mutual_tls_refuses_clients_without_a_certificate_of_its_ca(serve, pki):
    s = serve(
        ApiSettings(
            tls_cert=str(pki.server_cert), tls_key=str(pki.server_key), tls_client_ca=str(pki.ca)
        )
    )
    good = Connection(s.target, ca=str(pki.ca), cert=str(pki.client_cert), key=str(pki.client_key))
    with channel(good) as ch:
        assert pb_grpc.AttributionStub(ch).Resolve(FLOW, timeout=WAIT).dst_origin_as == 65006
    for bad in (
        Connection(s.target, ca=str(pki.ca)),
        Connection(s.target, ca=str(pki.ca), cert=str(pki.rogue_cert), key=str(pki.rogue_key)),
    ):
        with channel(bad) as ch, pytest.raises(grpc.RpcError) as err:
            pb_grpc.AttributionStub(ch).Resolve(FLOW, timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert health(good) == health_pb2.HealthCheckResponse.SERVING


def test_unusable_tls_files_fail_the_start_naming_file_and_key(serve, pki, tmp_path):
    not_pem = tmp_path / "junk.pem"
    not_pem.write_text("hello\n")
    encrypted = tmp_path / "encrypted.key"
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pki.server_key.read_bytes(), None)
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
    )
    cert, k = str(pki.server_cert), str(pki.server_key)
    cases = [
        (ApiSettings(tls_cert=str(tmp_path / "nope.pem"), tls_key=k), "tls_cert", "no such file"),
        (ApiSettings(tls_cert=str(tmp_path), tls_key=k), "tls_cert", "is a directory"),
        (ApiSettings(tls_cert=str(not_pem), tls_key=k), "tls_cert", "not a PEM certificate"),
        (ApiSettings(tls_cert=cert, tls_key=str(not_pem)), "tls_key", "not a PEM private key"),
        (ApiSettings(tls_cert=cert, tls_key=str(pki.client_key)), "tls_key", "does not match"),
        (ApiSettings(tls_cert=cert, tls_key=str(encrypted)), "tls_key", "encrypted"),
        (
            ApiSettings(tls_cert=cert, tls_key=k, tls_client_ca=str(not_pem)),
            "tls_client_ca",
            "not a PEM certificate",
        ),
    ]
    for api, key_name, why in cases:
        with pytest.raises(SecurityError) as err:
            serve(api)
        assert key_name in str(err.value) and why in str(err.value), str(err.value)


# -- tokens ------------------------------------------------------------------------


@pytest.fixture
def token_files(tmp_path):
    read = tmp_path / "read.tokens"
    admin = tmp_path / "admin.tokens"
    read.write_text("# readers\nread-token-1\n\nread-token-2\n")
    admin.write_text("admin-token-1\n")
    return read, admin


def test_tokens_gate_calls_by_role(serve, token_files):
    read, admin = token_files
    s = serve(ApiSettings(read_token_file=str(read), admin_token_file=str(admin)))
    before = REFUSED.snapshot()

    def call(token: str, rpc: str):
        ch, st = stub(Connection(s.target, token=token))
        with ch:
            request = pb.ReloadConfigRequest() if rpc == "ReloadConfig" else FLOW
            return getattr(st, rpc)(request, timeout=WAIT)

    for token in ("", "wrong", "read-token-1x", "read-token"):
        with pytest.raises(grpc.RpcError) as err:
            call(token, "Resolve")
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, token
        assert "Bearer" in err.value.details()
    assert call("read-token-2", "Resolve").dst_origin_as == 65006
    assert call("admin-token-1", "Resolve").dst_origin_as == 65006
    with pytest.raises(grpc.RpcError) as err:
        call("read-token-1", "ReloadConfig")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert s.reloads == 0
    assert call("admin-token-1", "ReloadConfig").ok and s.reloads == 1
    # streams and listing are read calls
    ch, st = stub(Connection(s.target, token="read-token-1"))
    with ch:
        assert st.ListRouters(pb.ListRoutersRequest(), timeout=WAIT).routers
        request, _, _ = columns_request(
            [{"exporter": "127.0.1.1", "src_addr": "172.16.0.1", "dst_addr": "10.9.1.1"}]
        )
        assert len(list(st.ResolveStream(iter([request]), timeout=WAIT))) == 1
    # health and reflection need no token
    assert health(s.target) == health_pb2.HealthCheckResponse.SERVING
    with channel(s.target) as ch:
        answers = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=WAIT
        )
        assert next(iter(answers)).list_services_response.service
    after = REFUSED.snapshot()
    assert after.get("unauthenticated", 0) - before.get("unauthenticated", 0) >= 4
    assert after.get("permission_denied", 0) - before.get("permission_denied", 0) >= 1


def test_without_admin_token_file_reload_is_open_to_loopback_only(serve, token_files):
    read, _ = token_files
    s = serve(ApiSettings(read_token_file=str(read)))
    ch, st = stub(Connection(s.target, token="read-token-1"))
    with ch:
        assert st.ReloadConfig(pb.ReloadConfigRequest(), timeout=WAIT).ok
    assert s.reloads == 1
    # Tests may not send from other addresses: the peer rule itself, on grpc's peer strings.
    assert is_loopback_peer("ipv4:127.0.0.1:40000")
    assert is_loopback_peer("ipv4:127.3.2.1:40000")
    assert is_loopback_peer("ipv6:[::1]:40000")
    assert is_loopback_peer("ipv6:[::ffff:127.0.0.1]:40000")
    assert is_loopback_peer("unix:/run/attribution.sock")
    assert not is_loopback_peer("ipv4:192.0.2.7:40000")
    assert not is_loopback_peer("ipv6:[2001:db8::1]:40000")
    assert not is_loopback_peer("ipv6:[::ffff:192.0.2.7]:40000")
    assert not is_loopback_peer("garbage")


def test_token_files_are_read_again_on_reload(serve, token_files):
    read, admin = token_files
    api = ApiSettings(read_token_file=str(read), admin_token_file=str(admin))
    s = serve(api)
    read.write_text("fresh-token\n")
    ch, st = stub(Connection(s.target, token="read-token-1"))
    with ch:
        assert st.Resolve(FLOW, timeout=WAIT).dst_origin_as == 65006  # no reload yet
    s.config = replace(s.config)  # what a reload does: a new Config
    for token, ok in (("read-token-1", False), ("fresh-token", True)):
        ch, st = stub(Connection(s.target, token=token))
        with ch:
            if ok:
                assert st.Resolve(FLOW, timeout=WAIT).dst_origin_as == 65006
            else:
                with pytest.raises(grpc.RpcError) as err:
                    st.Resolve(FLOW, timeout=WAIT)
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # a broken file at reload keeps the tokens in force
    read.write_text("\n")
    s.config = replace(s.config)
    ch, st = stub(Connection(s.target, token="fresh-token"))
    with ch:
        assert st.Resolve(FLOW, timeout=WAIT).dst_origin_as == 65006


def test_a_token_file_every_user_can_read_is_warned_about(serve, tmp_path, caplog):
    tokens = tmp_path / "read.tokens"
    tokens.write_text("t-1\n")
    tokens.chmod(0o600)
    serve(ApiSettings(read_token_file=str(tokens)))
    assert "readable by every user" not in caplog.text
    tokens.chmod(0o644)
    serve(ApiSettings(read_token_file=str(tokens)))
    assert "read_token_file" in caplog.text and "readable by every user (mode 0644)" in caplog.text


def test_unusable_token_files_fail_the_start(serve, tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("# nobody\n")
    spaced = tmp_path / "spaced"
    spaced.write_text("two words\n")
    for api, why in (
        (ApiSettings(read_token_file=str(tmp_path / "missing")), "no such file"),
        (ApiSettings(admin_token_file=str(empty)), "holds no token"),
        (ApiSettings(read_token_file=str(spaced)), "spaced:1"),
    ):
        with pytest.raises(SecurityError) as err:
            serve(api)
        assert why in str(err.value)


# -- concurrency -------------------------------------------------------------------


class IdleStream:
    """A ResolveStream that sends one batch, reads its answer, then waits."""

    def __init__(self, target: str) -> None:
        self.channel = channel(target)
        self.requests: queue.Queue = queue.Queue()
        request, _, _ = columns_request(
            [{"exporter": "127.0.1.1", "src_addr": "172.16.0.1", "dst_addr": "10.9.1.1"}]
        )
        self.requests.put(request)
        self.call = pb_grpc.AttributionStub(self.channel).ResolveStream(
            iter(self.requests.get, None), timeout=120
        )

    def first(self):
        try:
            return next(self.call)
        except grpc.RpcError as exc:
            return exc

    def close(self) -> None:
        self.requests.put(None)
        self.call.cancel()
        self.channel.close()


@pytest.mark.parametrize("workers, max_streams", [(4, 2), (16, 8)])
def test_streams_beyond_max_streams_are_refused_and_health_and_resolve_still_answer(
    serve, workers, max_streams
):
    s = serve(ApiSettings(workers=workers, max_streams=max_streams, stream_idle_timeout=600))
    held = [IdleStream(s.target) for _ in range(max_streams)]
    try:
        for h in held:
            assert not isinstance(h.first(), grpc.RpcError)
        extra = [IdleStream(s.target) for _ in range(6)]
        for e in extra:
            refused = e.first()
            assert isinstance(refused, grpc.RpcError)
            assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert f"{max_streams} streams" in refused.details()
            e.close()
        assert health(s.target) == health_pb2.HealthCheckResponse.SERVING
        with channel(s.target) as ch:  # health streams have slots of their own
            watch = health_pb2_grpc.HealthStub(ch).Watch(
                health_pb2.HealthCheckRequest(service=""), timeout=WAIT
            )
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            watch.cancel()
        ch, st = stub(s.target)
        with ch:
            for _ in range(10):
                assert st.Resolve(FLOW, timeout=WAIT).dst_origin_as == 65006
    finally:
        for h in held:
            h.close()
    # closed streams give their slots back
    again = IdleStream(s.target)
    try:
        deadline_ok = False
        for _ in range(50):
            if not isinstance(again.first(), grpc.RpcError):
                deadline_ok = True
                break
            again.close()
            threading.Event().wait(0.2)
            again = IdleStream(s.target)
        assert deadline_ok
    finally:
        again.close()


def test_idle_stream_is_closed_with_a_message(serve):
    s = serve(ApiSettings(workers=4, max_streams=2, stream_idle_timeout=1.0))
    before = REFUSED.snapshot().get("stream_idle", 0)
    idle = IdleStream(s.target)
    try:
        assert not isinstance(idle.first(), grpc.RpcError)
        ended = idle.first()  # blocks until the server closes the stream
        assert isinstance(ended, grpc.RpcError)
        assert ended.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "stream_idle_timeout" in ended.details()
    finally:
        idle.close()
    assert REFUSED.snapshot().get("stream_idle", 0) > before


def test_slow_readers_do_not_starve_health_or_other_calls(serve):
    """Clients that send big batches and never read the answers."""
    s = serve(ApiSettings(workers=4, max_streams=2, stream_idle_timeout=3.0))
    flows = [
        {"exporter": "127.0.1.1", "src_addr": "172.16.0.1", "dst_addr": f"10.9.{i % 250}.{i % 200}"}
        for i in range(8000)
    ]
    request, _, _ = columns_request(flows, packed=False)
    readers = []
    stop = threading.Event()

    def batches():
        for _ in range(200):  # ~8 MB of answers per stream: far beyond the flow-control window
            if stop.is_set():
                return
            yield request

    try:
        for _ in range(10):
            ch = channel(s.target)
            call = pb_grpc.AttributionStub(ch).ResolveStream(batches(), timeout=120)
            readers.append((ch, call))  # never read
        # whatever the readers hold, health and unary calls answer
        for _ in range(3):
            assert health(s.target) == health_pb2.HealthCheckResponse.SERVING
            ch, st = stub(s.target)
            with ch:
                assert st.Resolve(FLOW, timeout=WAIT).dst_origin_as == 65006
        # the stuck streams are cut after the idle timeout and free their slots
        fresh_ok = False
        for _ in range(60):
            fresh = IdleStream(s.target)
            answer = fresh.first()
            fresh.close()
            if not isinstance(answer, grpc.RpcError):
                fresh_ok = True
                break
            assert answer.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            threading.Event().wait(0.5)
        assert fresh_ok
    finally:
        stop.set()
        for ch, call in readers:
            call.cancel()
            ch.close()


# -- the daemon ----------------------------------------------------------------------


def test_daemon_serves_tls_and_tokens_from_its_config_and_rereads_tokens_on_reload(
    tmp_path, pki, capsys
):
    from attribution.cli import main
    from attribution.service import Service
    from tests.attribution.helpers import CONFIG

    read, admin = tmp_path / "read.tokens", tmp_path / "admin.tokens"
    read.write_text("read-1\n")
    admin.write_text("admin-1\n")
    path = tmp_path / "attribution.toml"
    text = CONFIG.replace(
        "[[routers]]",
        f'[bgp]\nexabgp = "external"\nfeed_socket = "{tmp_path}/feed.sock"\n\n[[routers]]',
        1,
    )
    path.write_text(
        text
        + f'\n[api]\ntls_cert = "{pki.server_cert}"\ntls_key = "{pki.server_key}"\n'
        + f'tls_client_ca = "{pki.ca}"\nread_token_file = "{read}"\n'
        + f'admin_token_file = "{admin}"\nmax_streams = 3\n'
        + '\n[metrics]\nlisten = "127.0.0.1:0"\n'
    )
    service = Service(str(path))
    service.start()
    try:
        target = f"127.0.0.1:{service.grpc_port}"
        client = Connection(
            target, ca=str(pki.ca), cert=str(pki.client_cert), key=str(pki.client_key)
        )
        with channel(replace(client, token="read-1")) as ch:
            assert pb_grpc.AttributionStub(ch).ListRouters(pb.ListRoutersRequest(), timeout=WAIT)
        with channel(client) as ch, pytest.raises(grpc.RpcError) as err:
            pb_grpc.AttributionStub(ch).ListRouters(pb.ListRoutersRequest(), timeout=WAIT)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        metrics = urllib.request.urlopen(
            f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=WAIT
        ).read()
        refused = [
            line
            for line in metrics.decode().splitlines()
            if line.startswith('attribution_grpc_refused_total{reason="unauthenticated"}')
        ]
        assert refused and float(refused[0].split()[-1]) >= 1
        with channel(target) as ch, pytest.raises(grpc.RpcError):  # plaintext
            pb_grpc.AttributionStub(ch).ListRouters(pb.ListRoutersRequest(), timeout=5)
        # `attribution reload --config`: admin token and TLS from the file, target from the flag
        read.write_text("read-2\n")
        assert main(["reload", "--config", str(path), "--target", target]) == 0
        assert "reloaded" in capsys.readouterr().out
        for token, code in (("read-1", grpc.StatusCode.UNAUTHENTICATED), ("read-2", None)):
            with channel(replace(client, token=token)) as ch:
                stub = pb_grpc.AttributionStub(ch)
                if code is None:
                    reply = stub.ListRouters(pb.ListRoutersRequest(), timeout=WAIT)
                    assert "edge1" in [r.name for r in reply.routers]
                else:
                    with pytest.raises(grpc.RpcError) as err:
                        stub.Resolve(FLOW, timeout=WAIT)
                    assert err.value.code() == code
    finally:
        service.stop()
