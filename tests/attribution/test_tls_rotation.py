"""A renewed TLS certificate is served without a restart (attribution.tls_files).

Real certificates made here, a real gRPC server, real TLS handshakes on
loopback; which certificate the server presents is read from the handshake
itself (Python's ssl module, ALPN h2 as a gRPC client asks).
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from attribution.client import Connection, channel
from attribution.config import ApiSettings
from attribution.grpc_service import AttributionServicer, ReloadResult, start_server
from attribution.resolver import Resolver
from attribution.tls_files import EXPIRY_WARNING_DAYS, FollowedCertificates
from attribution.v1 import attribution_pb2 as pb
from attribution.v1 import attribution_pb2_grpc as pb_grpc
from tests.attribution.helpers import build_world, external_service
from tests.attribution.pki import Pki, make_pki, renew_server

FLOW = pb.Flow(exporter="127.0.1.1", src_addr="172.16.0.1", dst_addr="10.9.1.1")
WAIT = 30.0


def presented(port: int, ca: Path) -> x509.Certificate:
    """The certificate the server presents in a new handshake."""
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=WAIT) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der)


def resolves(port: int, pki: Pki) -> int:
    with channel(Connection(f"127.0.0.1:{port}", ca=str(pki.ca))) as ch:
        return pb_grpc.AttributionStub(ch).Resolve(FLOW, timeout=WAIT).dst_origin_as


def same(a: x509.Certificate, b: x509.Certificate) -> bool:
    pem = serialization.Encoding.DER
    return a.public_bytes(pem) == b.public_bytes(pem)


@pytest.fixture
def served(tmp_path):
    """A TLS server whose files are checked at every new connection (no wait)."""
    pki = make_pki(tmp_path)
    api = ApiSettings(tls_cert=str(pki.server_cert), tls_key=str(pki.server_key))
    rib, config = build_world()
    resolver = Resolver(rib, config, max_batch_flows=1000)
    servicer = AttributionServicer(rib, resolver, lambda: config, lambda: ReloadResult(ok=True))
    certificates = FollowedCertificates(api, check_every=0)
    server, port = start_server(servicer, "127.0.0.1:0", 4 << 20, api, certificates)
    yield pki, port, certificates
    server.stop(grace=None)


def test_a_renewed_certificate_is_served_from_the_next_connection_without_a_restart(served):
    pki, port, certificates = served
    first = presented(port, pki.ca)
    assert first.subject.rfc4514_string() == "CN=localhost"
    open_before = channel(Connection(f"127.0.0.1:{port}", ca=str(pki.ca)))
    assert pb_grpc.AttributionStub(open_before).Resolve(FLOW, timeout=WAIT).dst_origin_as == 65006
    renewed = renew_server(pki, pki.server_cert, pki.server_key, subject="localhost")
    assert same(presented(port, pki.ca), renewed)
    assert resolves(port, pki) == 65006  # a new client trusts it (same CA)
    # a connection made before keeps working on its handshake's certificate
    assert pb_grpc.AttributionStub(open_before).Resolve(FLOW, timeout=WAIT).dst_origin_as == 65006
    open_before.close()
    assert certificates.outcomes == {"taken": 1, "refused": 0}
    assert certificates.served.not_after == renewed.not_valid_after_utc.timestamp()


def test_under_mutual_tls_a_renewed_certificate_still_asks_clients_for_theirs(tmp_path):
    pki = make_pki(tmp_path)
    api = ApiSettings(
        tls_cert=str(pki.server_cert), tls_key=str(pki.server_key), tls_client_ca=str(pki.ca)
    )
    rib, config = build_world()
    servicer = AttributionServicer(
        rib, Resolver(rib, config), lambda: config, lambda: ReloadResult(ok=True)
    )
    certificates = FollowedCertificates(api, check_every=0)
    server, port = start_server(servicer, "127.0.0.1:0", 4 << 20, api, certificates)
    try:
        renewed = renew_server(pki, pki.server_cert, pki.server_key, subject="localhost")
        target = f"127.0.0.1:{port}"
        client = Connection(
            target, ca=str(pki.ca), cert=str(pki.client_cert), key=str(pki.client_key)
        )
        with channel(client) as ch:
            assert pb_grpc.AttributionStub(ch).Resolve(FLOW, timeout=WAIT).dst_origin_as == 65006
        assert certificates.served.not_after == renewed.not_valid_after_utc.timestamp()
        for anonymous in (
            Connection(target, ca=str(pki.ca)),
            Connection(target, ca=str(pki.ca), cert=str(pki.rogue_cert), key=str(pki.rogue_key)),
        ):
            with channel(anonymous) as ch, pytest.raises(grpc.RpcError):
                pb_grpc.AttributionStub(ch).Resolve(FLOW, timeout=5)
    finally:
        server.stop(grace=None)


def test_a_certificate_without_its_new_key_is_refused_until_the_key_comes(served, caplog):
    pki, port, certificates = served
    first = presented(port, pki.ca)
    holder = pki.server_cert.parent / "hold"
    holder.mkdir()
    renewed = renew_server(pki, holder / "c.pem", holder / "k.pem", subject="localhost")
    os.replace(holder / "c.pem", pki.server_cert)  # the certificate first, its key not yet
    with caplog.at_level(logging.ERROR, logger="attribution.tls_files"):
        for _ in range(3):
            assert same(presented(port, pki.ca), first)
        assert resolves(port, pki) == 65006
    refusals = [r.getMessage() for r in caplog.records]
    assert len(refusals) == 1  # said once, not at every connection
    assert "tls_key" in refusals[0] and "does not match the certificate" in refusals[0]
    assert certificates.outcomes["refused"] == 1
    os.replace(holder / "k.pem", pki.server_key)
    assert same(presented(port, pki.ca), renewed)
    assert certificates.outcomes == {"taken": 1, "refused": 1}
    assert certificates.last_error == ""


def test_unreadable_or_garbage_files_are_refused_and_the_served_certificate_stays(served):
    pki, port, certificates = served
    first = presented(port, pki.ca)
    pki.server_cert.write_text("not a certificate\n")
    assert same(presented(port, pki.ca), first)
    assert "not a PEM certificate" in certificates.last_error
    pki.server_cert.unlink()
    assert same(presented(port, pki.ca), first)
    assert "no such file" in certificates.last_error
    assert certificates.outcomes == {"taken": 0, "refused": 2}
    assert resolves(port, pki) == 65006


def test_an_expired_certificate_does_not_replace_a_valid_one(served):
    pki, port, certificates = served
    first = presented(port, pki.ca)
    renew_server(pki, pki.server_cert, pki.server_key, subject="localhost", valid_days=-3)
    assert same(presented(port, pki.ca), first)
    assert "the new certificate expired on" in certificates.last_error
    assert certificates.outcomes["refused"] == 1


def test_a_kubernetes_secret_swap_of_its_data_symlink_is_followed(tmp_path):
    """A mounted Secret is a directory of symlinks through ``..data``, which the
    kubelet points at a new directory on each update, all files at once."""
    (tmp_path / "pki").mkdir()
    pki = make_pki(tmp_path / "pki")
    mount = tmp_path / "mount"
    old = mount / "..2026_12_01"
    old.mkdir(parents=True)
    for name, src in (("tls.crt", pki.server_cert), ("tls.key", pki.server_key)):
        (old / name).write_bytes(src.read_bytes())
        (mount / name).symlink_to(Path("..data") / name)
    (mount / "..data").symlink_to(old.name)
    api = ApiSettings(tls_cert=str(mount / "tls.crt"), tls_key=str(mount / "tls.key"))
    certificates = FollowedCertificates(api, check_every=0)
    assert certificates.fetch() is None  # nothing changed
    new = mount / "..2026_12_05"
    new.mkdir()
    renewed = renew_server(pki, new / "tls.crt", new / "tls.key", subject="renewed")
    (mount / "..data_tmp").symlink_to(new.name)
    os.replace(mount / "..data_tmp", mount / "..data")
    assert certificates.fetch() is not None
    assert certificates.served.subject == "CN=renewed"
    assert certificates.served.not_after == renewed.not_valid_after_utc.timestamp()
    assert certificates.fetch() is None  # handed over once


def test_the_files_are_looked_at_no_more_often_than_check_every(tmp_path):
    pki = make_pki(tmp_path)
    api = ApiSettings(tls_cert=str(pki.server_cert), tls_key=str(pki.server_key))
    now = [1000.0]
    certificates = FollowedCertificates(api, clock=lambda: now[0], check_every=1.0)
    renew_server(pki, pki.server_cert, pki.server_key, subject="renewed")
    now[0] += 0.5
    assert certificates.fetch() is None  # checked 0.5 s ago: not yet
    now[0] += 0.5
    assert certificates.fetch() is not None
    assert certificates.served.subject == "CN=renewed"


def test_daemon_takes_renewed_files_at_reload_and_exposes_the_expiry(tmp_path, caplog):
    pki = make_pki(tmp_path)
    service = external_service(
        tmp_path,
        extra=f'\n[api]\ntls_cert = "{pki.server_cert}"\ntls_key = "{pki.server_key}"\n'
        '\n[metrics]\nlisten = "127.0.0.1:0"\n',
    )
    service.start()
    try:

        def scrape() -> dict[str, float]:
            text = urllib.request.urlopen(
                f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=WAIT
            ).read()
            return {
                line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in text.decode().splitlines()
                if line.startswith("attribution_tls_")
            }

        served = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
        before = scrape()
        assert before['attribution_tls_certificate_expiry_timestamp_seconds{server="grpc"}'] == (
            served.not_valid_after_utc.timestamp()
        )
        renewed = renew_server(
            pki, pki.server_cert, pki.server_key, subject="localhost", valid_days=90
        )
        with caplog.at_level(logging.INFO, logger="attribution.tls_files"):
            assert service.reload().ok
        assert any("TLS files re-read" in r.getMessage() for r in caplog.records)
        after = scrape()
        assert after['attribution_tls_certificate_expiry_timestamp_seconds{server="grpc"}'] == (
            renewed.not_valid_after_utc.timestamp()
        )
        assert after['attribution_tls_reloads_total{outcome="taken",server="grpc"}'] == 1
        assert after['attribution_tls_reloads_total{outcome="refused",server="grpc"}'] == 0
        assert same(presented(service.grpc_port, pki.ca), renewed)
        # The gRPC path serves it too (a real client, trusting the CA).
        with channel(Connection(f"127.0.0.1:{service.grpc_port}", ca=str(pki.ca))) as ch:
            reply = pb_grpc.AttributionStub(ch).ListRouters(pb.ListRoutersRequest(), timeout=WAIT)
        assert "edge1" in [r.name for r in reply.routers]
    finally:
        service.stop()


def test_a_renewal_on_disk_is_taken_by_poll_while_no_client_connects(tmp_path):
    pki = make_pki(tmp_path)
    api = ApiSettings(tls_cert=str(pki.server_cert), tls_key=str(pki.server_key))
    now = [1000.0]
    certificates = FollowedCertificates(api, clock=lambda: now[0], check_every=1.0)
    renewed = renew_server(pki, pki.server_cert, pki.server_key, subject="renewed")
    certificates.poll()  # not due yet
    assert certificates.served.subject == "CN=localhost"
    now[0] += 1.0
    certificates.poll()
    assert certificates.served.not_after == renewed.not_valid_after_utc.timestamp()
    assert certificates.fetch() is not None  # gRPC gets it at its next connection


def test_a_certificate_close_to_its_end_is_warned_about_once_a_day(tmp_path):
    pki = make_pki(tmp_path)  # valid 2 days
    api = ApiSettings(tls_cert=str(pki.server_cert), tls_key=str(pki.server_key))
    certificates = FollowedCertificates(api)
    end = certificates.served.not_after
    far = end - (EXPIRY_WARNING_DAYS + 1) * 86400
    assert certificates.expiry_warning(far) is None
    first = certificates.expiry_warning(end - 2 * 86400)
    assert first is not None and "(CN=localhost) expires in 2.0 days, on" in first
    assert certificates.expiry_warning(end - 1.5 * 86400) is None  # said today
    later = certificates.expiry_warning(end + 3600)
    assert later is not None and "expired on" in later


def test_daemon_takes_a_renewal_without_a_reload_or_a_client_and_warns_near_the_end(
    tmp_path, caplog
):
    pki = make_pki(tmp_path)  # valid 2 days: within the warning's 14
    service = external_service(
        tmp_path,
        extra=f'\n[api]\ntls_cert = "{pki.server_cert}"\ntls_key = "{pki.server_key}"\n',
    )
    with caplog.at_level(logging.INFO, logger="attribution"):
        service.start()
        try:
            deadline = time.monotonic() + WAIT
            while not any("expires in" in r.getMessage() for r in caplog.records):
                assert time.monotonic() < deadline, "no expiry warning"
                time.sleep(0.05)
            (warning,) = [r for r in caplog.records if "expires in" in r.getMessage()]
            assert warning.levelno == logging.WARNING
            assert "[api] the served TLS certificate (CN=localhost) expires in 2.0 days" in (
                warning.getMessage()
            )
            renewed = renew_server(
                pki, pki.server_cert, pki.server_key, subject="localhost", valid_days=90
            )
            expiry = renewed.not_valid_after_utc.timestamp()
            assert service.certificates is not None
            while service.certificates.served.not_after != expiry:  # the observer's poll
                assert time.monotonic() < deadline, "renewal not taken"
                time.sleep(0.05)
            assert service.certificates.outcomes == {"taken": 1, "refused": 0}
            assert not [r for r in caplog.records if "config reload" in r.getMessage()]
        finally:
            service.stop()
