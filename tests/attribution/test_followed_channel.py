"""A long-running client follows its TLS files (attribution.followed_channel): a renewed
client certificate is used from the next call on, without restarting the client.

Real certificates from two CAs, a real server under mutual TLS that follows its
own files, real reconnects (the server restarted on its port).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import grpc
import pytest

from attribution.client import Connection
from attribution.config import ApiSettings
from attribution.connection import channel
from attribution.followed_channel import CHECK_EVERY, FollowedChannel
from attribution.grpc_service import AttributionServicer, ReloadResult, start_server
from attribution.resolver import Resolver
from attribution.tls_files import FollowedCertificates
from attribution.v1 import attribution_pb2 as pb
from attribution.v1 import attribution_pb2_grpc as pb_grpc
from tests.attribution.helpers import build_world
from tests.attribution.pki import make_pki

FLOW = pb.Flow(exporter="127.0.1.1", src_addr="172.16.0.1", dst_addr="10.9.1.1")
WAIT = 30.0


def replace_file(path: Path, source: Path) -> None:
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(source.read_bytes())
    os.replace(tmp, path)


def resolve(ch: grpc.Channel, timeout: float = WAIT) -> int:
    return (
        pb_grpc.AttributionStub(ch)
        .Resolve(FLOW, timeout=timeout, wait_for_ready=True)
        .dst_origin_as
    )


class MutualServer:
    """A mutual-TLS server whose client CA is a file it follows; restartable on its port."""

    def __init__(self, server_cert: Path, server_key: Path, client_ca: Path) -> None:
        self.api = ApiSettings(
            tls_cert=str(server_cert), tls_key=str(server_key), tls_client_ca=str(client_ca)
        )
        self.port = 0
        self.server = None
        self.start()

    def start(self) -> None:
        rib, config = build_world()
        servicer = AttributionServicer(
            rib, Resolver(rib, config), lambda: config, lambda: ReloadResult(ok=True)
        )
        certificates = FollowedCertificates(self.api, check_every=0)
        self.server, self.port = start_server(
            servicer, f"127.0.0.1:{self.port}", 4 << 20, self.api, certificates
        )

    def restart(self) -> None:
        self.server.stop(grace=None).wait(WAIT)
        self.start()

    def stop(self) -> None:
        self.server.stop(grace=None)


@pytest.fixture
def two_cas(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    return make_pki(one), make_pki(two)


def test_a_renewed_client_certificate_is_used_after_a_reconnect_without_a_restart(
    two_cas, tmp_path
):
    old, new = two_cas
    client_ca = tmp_path / "clients-ca.pem"  # the server's: which client certificates it takes
    replace_file(client_ca, old.ca)
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"  # the client's own
    replace_file(cert, old.client_cert)
    replace_file(key, old.client_key)
    server = MutualServer(old.server_cert, old.server_key, client_ca)
    conn = Connection(f"127.0.0.1:{server.port}", ca=str(old.ca), cert=str(cert), key=str(key))
    followed = channel(conn, follow=True)
    plain = channel(conn)
    try:
        assert isinstance(followed, FollowedChannel)
        assert resolve(followed) == resolve(plain) == 65006
        # Renewal: the service now takes certificates of the new CA only, and the
        # client's files hold one; then the service restarts (every client reconnects).
        replace_file(client_ca, new.ca)
        replace_file(cert, new.client_cert)
        replace_file(key, new.client_key)
        server.restart()
        time.sleep(CHECK_EVERY)  # the client looks at its files at most this often
        assert resolve(followed) == 65006
        assert followed.renewals == 1
        with pytest.raises(grpc.RpcError) as err:  # read its files once: refused now
            resolve(plain, timeout=3)
        assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    finally:
        followed.close()
        plain.close()
        server.stop()


def test_a_certificate_written_before_its_key_is_not_used_until_the_key_comes(
    two_cas, tmp_path, caplog
):
    old, new = two_cas
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    replace_file(cert, old.client_cert)
    replace_file(key, old.client_key)
    made = []

    def make() -> grpc.Channel:
        made.append(grpc.insecure_channel("127.0.0.1:1"))
        return made[-1]

    now = [0.0]
    followed = FollowedChannel(
        make, (str(cert), str(key)), (str(cert), str(key)), clock=lambda: now[0], check_every=1
    )
    replace_file(cert, new.client_cert)  # its key not yet
    with caplog.at_level(logging.WARNING, logger="attribution.followed_channel"):
        for _ in range(3):
            now[0] += 1
            assert followed.current()[1] == 0
    assert len(caplog.records) == 1 and "does not match the certificate" in caplog.text
    replace_file(key, new.client_key)
    now[0] += 1
    assert followed.current() == (made[1], 1)
    followed.close()


def test_a_replaced_channel_is_closed_once_its_calls_had_time_to_end(two_cas, tmp_path):
    old, new = two_cas
    ca = tmp_path / "ca.pem"
    replace_file(ca, old.ca)

    class Fake:
        closed = False

        def close(self) -> None:
            self.closed = True

    made: list[Fake] = []

    def make() -> Fake:
        made.append(Fake())
        return made[-1]

    now = [0.0]
    followed = FollowedChannel(make, (str(ca),), clock=lambda: now[0], close_after=600)
    replace_file(ca, new.ca)
    now[0] += 1
    assert followed.current() == (made[1], 1)
    now[0] += 599
    followed.current()
    assert not made[0].closed  # calls may still run on it
    now[0] += 1
    followed.current()
    assert made[0].closed and not made[1].closed
    followed.close()
    assert made[1].closed


def test_short_lived_commands_get_a_plain_channel(two_cas):
    old, _ = two_cas
    conn = Connection("127.0.0.1:1", ca=str(old.ca))
    with channel(conn) as ch:
        assert not isinstance(ch, FollowedChannel)
    with channel(Connection("127.0.0.1:1"), follow=True) as ch:  # no TLS files to follow
        assert not isinstance(ch, FollowedChannel)


def test_a_stream_opened_right_after_a_renewal_uses_the_new_files(two_cas, tmp_path):
    """Unary calls look at the files at most every CHECK_EVERY; a stream, opened rarely
    and living long, always looks (one left on the old channel would wait there)."""
    old, new = two_cas
    client_ca = tmp_path / "clients-ca.pem"
    replace_file(client_ca, old.ca)
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    replace_file(cert, old.client_cert)
    replace_file(key, old.client_key)
    server = MutualServer(old.server_cert, old.server_key, client_ca)
    conn = Connection(f"127.0.0.1:{server.port}", ca=str(old.ca), cert=str(cert), key=str(key))
    followed = channel(conn, follow=True)
    try:
        assert resolve(followed) == 65006  # a unary call: the files looked at just now
        replace_file(client_ca, new.ca)
        replace_file(cert, new.client_cert)
        replace_file(key, new.client_key)
        server.restart()
        stub = pb_grpc.AttributionStub(followed)
        batch = pb.FlowBatch(flows=pb.FlowRows(flows=[FLOW]), batch_id=1)
        (reply,) = stub.ResolveStream(iter([batch]), timeout=WAIT, wait_for_ready=True)
        assert reply.batch_id == 1 and followed.renewals == 1
    finally:
        followed.close()
        server.stop()
