"""The metrics endpoint over HTTPS, with mutual TLS and bearer tokens (attribution.metrics_http).

Real certificates made here, real scrapes over loopback (urllib and ssl, as
Prometheus' own client would connect), a real daemon for the wiring.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from prometheus_client import CollectorRegistry, Counter

from attribution import metrics_http
from attribution.config import ConfigError, MetricsSettings, parse_config
from attribution.metrics_http import MetricsServer
from attribution.security import SecurityError
from attribution.tls_files import FollowedCertificates
from tests.attribution.helpers import external_service
from tests.attribution.observed import DASHBOARD, TLS_ONLY_METRICS
from tests.attribution.pki import make_pki, renew_server

WAIT = 30.0


def registry() -> CollectorRegistry:
    r = CollectorRegistry()
    Counter("probe_things", "Things counted for the test.", registry=r).inc(3)
    return r


def context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def scrape(server: MetricsServer, ctx: ssl.SSLContext | None = None, token: str = "") -> str:
    request = urllib.request.Request(f"{server.scheme}://localhost:{server.port}/metrics")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=WAIT, context=ctx) as answer:
        return answer.read().decode()


def refused_at_least(server: MetricsServer, reason: str, n: int) -> None:
    """The server counts a failed handshake in the connection's thread, which may end
    after the client has seen its error: wait for the count."""
    deadline = time.monotonic() + WAIT
    while server.refused.snapshot().get(reason, 0) < n:
        assert time.monotonic() < deadline, server.refused.snapshot()
        time.sleep(0.01)


@pytest.fixture
def pki(tmp_path):
    return make_pki(tmp_path)


@pytest.fixture
def servers():
    started: list[MetricsServer] = []

    def start(settings: MetricsSettings, **kw) -> MetricsServer:
        started.append(MetricsServer(registry(), settings, **kw))
        return started[-1]

    yield start
    for s in started:
        s.stop()


def test_https_serves_scrapers_that_trust_its_ca_and_refuses_plaintext(servers, pki):
    s = servers(
        MetricsSettings("127.0.0.1:0", tls_cert=str(pki.server_cert), tls_key=str(pki.server_key))
    )
    assert s.scheme == "https"
    assert "probe_things_total 3.0" in scrape(s, context(pki.ca))
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://127.0.0.1:{s.port}/metrics", timeout=WAIT).read()
    with pytest.raises(urllib.error.URLError):  # a scraper that does not trust our CA
        scrape(s, context(pki.rogue_cert))
    refused_at_least(s, "tls", 1)


def test_mutual_tls_asks_scrapers_for_a_certificate_of_its_ca(servers, pki):
    s = servers(
        MetricsSettings(
            "127.0.0.1:0",
            tls_cert=str(pki.server_cert),
            tls_key=str(pki.server_key),
            tls_client_ca=str(pki.ca),
        )
    )
    assert "probe_things_total" in scrape(s, context(pki.ca, pki.client_cert, pki.client_key))
    for ctx in (context(pki.ca), context(pki.ca, pki.rogue_cert, pki.rogue_key)):
        with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
            scrape(s, ctx)
    refused_at_least(s, "tls", 2)


def test_tokens_gate_the_scrape_and_are_read_again_on_reload(servers, tmp_path):
    tokens = tmp_path / "metrics.tokens"
    tokens.write_text("# scrapers\nscrape-1\n")
    s = servers(MetricsSettings("127.0.0.1:0", token_file=str(tokens)))
    for given in ("", "wrong"):
        with pytest.raises(urllib.error.HTTPError) as err:
            scrape(s, token=given)
        assert err.value.code == 401
        assert err.value.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert s.refused.snapshot()["unauthenticated"] == 2
    assert "probe_things_total" in scrape(s, token="scrape-1")
    tokens.write_text("scrape-2\n")
    s.reload_tokens(MetricsSettings("127.0.0.1:0", token_file=str(tokens)))
    assert "probe_things_total" in scrape(s, token="scrape-2")
    with pytest.raises(urllib.error.HTTPError):
        scrape(s, token="scrape-1")
    tokens.write_text("# nothing here\n")  # unusable: the tokens in force stay
    s.reload_tokens(MetricsSettings("127.0.0.1:0", token_file=str(tokens)))
    assert "probe_things_total" in scrape(s, token="scrape-2")


def test_a_renewed_certificate_is_served_from_the_next_scrape(servers, pki):
    settings = MetricsSettings(
        "127.0.0.1:0", tls_cert=str(pki.server_cert), tls_key=str(pki.server_key)
    )
    s = servers(settings, certificates=FollowedCertificates(settings, "metrics", check_every=0))
    scrape(s, context(pki.ca))
    renewed = renew_server(pki, pki.server_cert, pki.server_key, subject="localhost")
    ctx = context(pki.ca)
    with (
        socket.create_connection(("127.0.0.1", s.port), timeout=WAIT) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        presented = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
    assert presented == renewed
    assert "probe_things_total" in scrape(s, context(pki.ca))
    assert s.certificates is not None and s.certificates.outcomes["taken"] == 1


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_a_client_that_connects_and_says_nothing_does_not_stall_scrapes(servers, pki, tls):
    settings = MetricsSettings("127.0.0.1:0")
    if tls:
        settings = MetricsSettings(
            "127.0.0.1:0", tls_cert=str(pki.server_cert), tls_key=str(pki.server_key)
        )
    s = servers(settings)
    silent = [socket.create_connection(("127.0.0.1", s.port), timeout=WAIT) for _ in range(3)]
    try:
        started = time.monotonic()
        assert "probe_things_total" in scrape(s, context(pki.ca) if tls else None)
        # Well under the silent ones' timeout: they hold their own threads, not the accept loop.
        assert time.monotonic() - started < metrics_http.CONNECTION_TIMEOUT
    finally:
        for sock in silent:
            sock.close()


def test_connections_past_the_limit_are_closed_at_once_and_counted(servers, monkeypatch):
    monkeypatch.setattr(metrics_http, "MAX_CONNECTIONS", 2)
    s = servers(MetricsSettings("127.0.0.1:0"))
    held = [socket.create_connection(("127.0.0.1", s.port), timeout=WAIT) for _ in range(2)]
    try:
        deadline = time.monotonic() + WAIT
        while True:  # the held ones take their slots once accepted
            extra = socket.create_connection(("127.0.0.1", s.port), timeout=WAIT)
            try:
                if extra.recv(1) == b"":  # closed by the server: no slot
                    break
            except TimeoutError:
                pass
            finally:
                extra.close()
            assert time.monotonic() < deadline
        assert s.refused.snapshot()["connections_exhausted"] >= 1
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + WAIT
    while True:  # the slots come back when the held connections end
        try:
            assert "probe_things_total" in scrape(s)
            break
        except (urllib.error.URLError, ConnectionError):
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_unusable_metrics_files_fail_naming_the_metrics_section(tmp_path, pki):
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(SecurityError, match=r"\[metrics\] tls_cert: .*nope.pem: no such file"):
        MetricsServer(registry(), MetricsSettings("127.0.0.1:0", missing, str(pki.server_key)))
    with pytest.raises(SecurityError, match=r"\[metrics\] tls_key: .* does not match"):
        MetricsServer(
            registry(), MetricsSettings("127.0.0.1:0", str(pki.server_cert), str(pki.client_key))
        )
    empty = tmp_path / "empty.tokens"
    empty.write_text("\n")
    with pytest.raises(SecurityError, match=r"\[metrics\] token_file: .* holds no token"):
        MetricsServer(registry(), MetricsSettings("127.0.0.1:0", token_file=str(empty)))


MINIMAL = '[service]\nlocal_as = 64500\nrouter_id = "192.0.2.1"\n'


def test_metrics_settings_are_checked_with_the_rest_of_the_file():
    config = parse_config(
        MINIMAL + '[metrics]\nlisten = "127.0.0.1:9179"\ntls_cert = "/c"\ntls_key = "/k"\n'
        'token_file = "/t"\n',
        "a.toml",
    )
    assert config.metrics == MetricsSettings("127.0.0.1:9179", "/c", "/k", "", "/t")
    assert config.metrics_listen == "127.0.0.1:9179"
    with pytest.raises(ConfigError) as err:
        parse_config(MINIMAL + '[metrics]\nlisten = "127.0.0.1:9179"\ntls_cert = "/c"\n', "a.toml")
    assert "metrics.tls_key: tls_cert and tls_key go together: set both" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_config(MINIMAL + '[metrics]\ntoken_file = "/t"\n', "a.toml")
    assert "metrics.token_file: needs listen (the endpoint is off)" in str(err.value)


def test_daemon_serves_metrics_over_https_with_a_token_and_counts_refusals(tmp_path, pki):
    tokens = tmp_path / "metrics.tokens"
    tokens.write_text("scrape-1\n")
    service = external_service(
        tmp_path,
        extra=f'\n[metrics]\nlisten = "127.0.0.1:0"\ntls_cert = "{pki.server_cert}"\n'
        f'tls_key = "{pki.server_key}"\ntoken_file = "{tokens}"\n',
    )
    service.start()
    try:
        server = service.metrics_server
        assert server is not None and server.scheme == "https"
        with pytest.raises(urllib.error.HTTPError):
            scrape(server, context(pki.ca))
        text = scrape(server, context(pki.ca), token="scrape-1")
        assert 'attribution_metrics_refused_total{reason="unauthenticated"} 1.0' in text
        served = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
        expiry = served.not_valid_after_utc.timestamp()
        name = 'attribution_tls_certificate_expiry_timestamp_seconds{server="metrics"} '
        (line,) = [line for line in text.splitlines() if line.startswith(name)]
        assert float(line.split()[-1]) == expiry
        assert 'server="grpc"' not in text  # gRPC runs without TLS here
        # The dashboard's TLS panel (its other panels: tests/attribution/test_observability.py)
        dashboard = json.loads(Path(DASHBOARD).read_text())
        tls_panel = next(p for p in dashboard["panels"] if p["title"].startswith("TLS"))
        used = {
            name
            for target in tls_panel["targets"]
            for name in re.findall(r"\b(attribution_[a-zA-Z0-9_]+)", target["expr"])
        }
        scraped = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", text, re.M))
        assert used and used <= scraped, sorted(used - scraped)
        assert used >= TLS_ONLY_METRICS
        tokens.write_text("scrape-2\n")
        assert service.reload().ok
        assert "attribution_bgp_session_up" in scrape(server, context(pki.ca), token="scrape-2")
    finally:
        service.stop()


def test_a_reload_applies_a_new_token_file_and_says_tls_paths_need_a_restart():
    from attribution.reload_changes import describe_changes, restart_needed

    base = MINIMAL + '[metrics]\nlisten = "127.0.0.1:9179"\n'
    running = parse_config(base + 'token_file = "/t1"\n', "a.toml")
    tokens = parse_config(base + 'token_file = "/t2"\n', "a.toml")
    assert "[metrics] token_file changed" in describe_changes(running, tokens)
    assert restart_needed(running, tokens) == []
    tls = parse_config(base + 'token_file = "/t1"\ntls_cert = "/c"\ntls_key = "/k"\n', "a.toml")
    assert restart_needed(running, tls) == ["[metrics] tls_cert, tls_key"]
    moved = parse_config(
        MINIMAL + '[metrics]\nlisten = "127.0.0.1:9180"\ntoken_file = "/t1"\n', "a"
    )
    assert restart_needed(running, moved) == ["[metrics] listen"]


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_a_client_that_trickles_its_request_is_cut_at_the_deadline(servers, pki, tls, monkeypatch):
    monkeypatch.setattr(metrics_http, "CONNECTION_DEADLINE", 1.0)
    settings = MetricsSettings("127.0.0.1:0")
    if tls:
        settings = MetricsSettings(
            "127.0.0.1:0", tls_cert=str(pki.server_cert), tls_key=str(pki.server_key)
        )
    s = servers(settings)
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=WAIT)
    if tls:
        sock = context(pki.ca).wrap_socket(sock, server_hostname="localhost")
    started = time.monotonic()
    try:
        for byte in b"GET /metrics HTTP/1.1\r\nHost: x\r\n":  # never the blank line
            sock.sendall(bytes([byte]))
            time.sleep(0.2)  # well under the 10 s a read may wait
    except OSError:
        pass  # cut while trickling
    else:
        raise AssertionError("the trickling client was never cut")
    finally:
        sock.close()
    # Cut at the deadline (1 s here), not after the whole trickle (~7 s).
    assert time.monotonic() - started < 5
    assert "probe_things_total" in scrape(s, context(pki.ca) if tls else None)
