"""The Prometheus endpoint's server: HTTP or HTTPS, with an optional bearer token.

prometheus_client makes the exposition (``make_wsgi_app``); this serves it,
because its own ``start_http_server`` could not do what ``[metrics]`` asks:

- **Renewed certificates**: its TLS context is made once from file paths. Here
  each accepted connection takes the context of the current checked set
  (``attribution.tls_files``), so a renewal is served from the next scrape on.
- **No stall of the endpoint by one client**: its TLS handshake runs in the
  accept loop, so one client that connects and sends nothing stops every
  scrape. Here the handshake runs in the connection's own thread, every read
  and write has a timeout (``CONNECTION_TIMEOUT``), every connection a
  deadline (``CONNECTION_DEADLINE``), and at most ``MAX_CONNECTIONS`` are
  served at once (the next is closed at once).
- **Bearer tokens** (``token_file``), compared in constant time, re-read at a
  config reload (a file that cannot be read then keeps the previous tokens).

Refused scrapes are counted by reason: ``unauthenticated`` (no or a wrong
token), ``tls`` (a failed handshake: no client certificate under mutual TLS,
a client that does not trust ours, plaintext to an HTTPS port) and
``connections_exhausted``.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from attribution.config import MetricsSettings
from attribution.metrics_scrape import refusals
from attribution.security import Counters, bearer_token, load_tokens
from attribution.tls_files import FollowedCertificates

log = logging.getLogger(__name__)

CONNECTION_TIMEOUT = 10.0  # seconds any one read or write of a connection may wait
CONNECTION_DEADLINE = 30.0  # seconds a connection may last in all (a trickling client)
MAX_CONNECTIONS = 32  # served at once; Prometheus needs one per scrape
REFUSE_REASONS = ("unauthenticated", "tls", "connections_exhausted")


class MetricsServer:
    """The endpoint of ``settings`` (``[metrics]``) for ``registry``, in a daemon thread.

    Raises OSError when the address cannot be bound and SecurityError for
    unusable TLS or token files."""

    def __init__(
        self,
        registry: CollectorRegistry,
        settings: MetricsSettings | str,
        certificates: FollowedCertificates | None = None,
    ) -> None:
        if isinstance(settings, str):
            settings = MetricsSettings(listen=settings)
        self.settings = settings
        self.refused = Counters()
        self.tokens: frozenset[bytes] = frozenset()
        if settings.token_file:
            self.tokens = load_tokens(settings.token_file, "token_file", "metrics")
        if settings.tls and certificates is None:
            certificates = FollowedCertificates(settings, "metrics")
        self.certificates = certificates
        host, _, port = settings.listen.rpartition(":")
        host = host.strip("[]") or "0.0.0.0"
        family, host = _family(host, int(port))
        server_class = type("_Bound", (_Server,), {"address_family": family})
        app = _guarded(make_wsgi_app(registry), lambda: self.tokens, self.refused)
        self.server: _Server = make_server(host, int(port), app, server_class, _QuietHandler)
        self.server.setup(self.certificates, self.refused)
        self.port: int = self.server.server_port
        self.scheme = "https" if self.certificates is not None else "http"
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="metrics", daemon=True
        )
        self.thread.start()

    def reload_tokens(self, settings: MetricsSettings) -> None:
        """The tokens of ``settings.token_file`` ("": none) from now on; a file that
        cannot be used leaves the previous tokens in force (logged)."""
        try:
            tokens = (
                load_tokens(settings.token_file, "token_file", "metrics")
                if settings.token_file
                else frozenset()
            )
        except ValueError as exc:  # SecurityError
            log.error("metrics tokens not re-read, the previous ones stay in force: %s", exc)
            return
        self.tokens = tokens

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5.0)


class MetricsRefusedCollector(Collector):
    """The metrics endpoint's own refusals (``attribution.metrics_http``), by reason."""

    def __init__(self, refused: Counters) -> None:
        self.refused = refused

    def collect(self) -> Iterator[Metric]:
        yield refusals(
            "attribution_metrics_refused",
            "Scrapes refused by the metrics endpoint: unauthenticated (token), tls (failed "
            "handshake), connections_exhausted (README: Metrics and logs).",
            REFUSE_REASONS,
            self.refused.snapshot(),
        )


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape (one every 15 s is no news)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingMixIn, WSGIServer):
    """A thread per connection, at most MAX_CONNECTIONS at once; TLS per connection."""

    daemon_threads = True
    certificates: FollowedCertificates | None = None

    def setup(self, certificates: FollowedCertificates | None, refused: Counters) -> None:
        self.certificates = certificates
        self.refused = refused
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        sock.settimeout(CONNECTION_TIMEOUT)
        if self.certificates is not None:
            # The handshake happens at the first read, in the connection's thread.
            context = self.certificates.ssl_context()
            sock = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.refused.add("connections_exhausted")
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        # A client that sends a byte every few seconds never meets the per-read
        # timeout; at the deadline its socket is shut, which ends the blocked read.
        deadline = threading.Timer(CONNECTION_DEADLINE, _cut, (request,))
        deadline.daemon = True
        deadline.start()
        try:
            super().process_request_thread(request, client_address)
        finally:
            deadline.cancel()
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed (handshake refused, reset, timed out): counted
        when it was TLS, logged at debug; never a traceback on stderr."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ssl.SSLError):
            self.refused.add("tls")
        log.debug("metrics: connection from %s ended: %r", client_address, exc)


def _cut(sock: socket.socket) -> None:
    """Shut the connection's socket (the plain socket's method: an SSLSocket's own
    would drop its TLS object under the thread reading through it)."""
    with contextlib.suppress(OSError):  # already closed: it ended in time
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _guarded(app: Callable, tokens: Callable[[], frozenset[bytes]], refused: Counters) -> Callable:
    """``app`` behind the bearer tokens of ``tokens()`` (none: open)."""

    def guarded(environ: dict, start_response: Callable) -> Iterable[bytes]:
        allowed = tokens()
        if allowed:
            header = environ.get("HTTP_AUTHORIZATION", "")
            given = bearer_token((("authorization", header),)) or b""
            ok = False
            for token in allowed:  # every one compared: the time says nothing
                ok |= hmac.compare_digest(token, given)
            if not ok:
                refused.add("unauthenticated")
                challenge = ("WWW-Authenticate", 'Bearer realm="metrics"')
                start_response("401 Unauthorized", [challenge, ("Content-Type", "text/plain")])
                return [b"this endpoint needs a token: Authorization: Bearer TOKEN\n"]
        return app(environ, start_response)

    return guarded


def _family(host: str, port: int) -> tuple[socket.AddressFamily, str]:
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = info[0]
    return family, address[0]


__all__ = [
    "CONNECTION_DEADLINE",
    "CONNECTION_TIMEOUT",
    "MAX_CONNECTIONS",
    "REFUSE_REASONS",
    "MetricsRefusedCollector",
    "MetricsServer",
]
