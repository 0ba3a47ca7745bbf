"""Securing the gRPC API: TLS, bearer tokens, and bounded concurrency.

Three things stand between a client and the resolver:

- **TLS** (``[api] tls_cert``, ``tls_key``; with ``tls_client_ca`` mutual TLS).
  The files are read and checked at start (PEM, key matching the certificate),
  so a typo fails the start with the file's name, not the first handshake.
- **Tokens** (``authorization: Bearer TOKEN`` metadata). Read tokens may
  resolve, look up and list; admin tokens may also reload. The check runs in
  the interceptor, before a worker thread is taken, so a client without a
  token cannot hold one. Tokens are compared in constant time.
- **Concurrency**. Python's gRPC server gives every running call a thread
  until it ends: an idle or unread stream holds one forever, and with all of
  them held, health checks time out. So streams are limited
  (``max_streams``; the next one is refused at once with RESOURCE_EXHAUSTED),
  a stream that neither sends a batch nor reads its answers for
  ``stream_idle_timeout`` is closed, and health checks and reflection run on
  their own small pool, which Attribution calls never use.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import stat
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from datetime import UTC, datetime
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from attribution.config import ApiSettings, Config, ConfigError, MetricsSettings
from attribution.streams import Slots, Watchdog, watched_answers, watched_requests

log = logging.getLogger(__name__)

ATTRIBUTION = "/attribution.v1.Attribution/"
READ_METHODS = frozenset(
    ATTRIBUTION + m
    for m in (
        "Resolve",
        "ResolveBatch",
        "ResolveStream",
        "LookupRoute",
        "ListRouters",
        "Explain",
        "DiffOverrides",  # changes nothing; the candidate's text is sensitive: use TLS
        "ListIx",
    )
)
PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
UNLIMITED_STREAMS = frozenset({"/grpc.health.v1.Health/Watch"})  # idle by design
CONTROL_THREADS = 8  # health checks and reflection; never used by Attribution calls
CONTROL_STREAMS = 4  # of which at most this many serve streams (Watch, reflection)


class SecurityError(ConfigError):
    """A TLS or token file that cannot be used; the message names the file and key."""


# -- files ---------------------------------------------------------------------


def _read(path: str, key: str, section: str = "api") -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20)
    except FileNotFoundError:
        raise SecurityError(f"[{section}] {key}: {path}: no such file") from None
    except IsADirectoryError:
        raise SecurityError(f"[{section}] {key}: {path}: is a directory, not a file") from None
    except OSError as exc:
        raise SecurityError(
            f"[{section}] {key}: {path}: cannot read: {exc.strerror or exc}"
        ) from None


def _certificates(
    path: str, key: str, section: str = "api"
) -> tuple[bytes, list[x509.Certificate]]:
    data = _read(path, key, section)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise SecurityError(
            f"[{section}] {key}: {path}: not a PEM certificate "
            "(expected '-----BEGIN CERTIFICATE-----')"
        ) from None
    now = datetime.now(UTC)
    for cert in certs:
        if cert.not_valid_after_utc < now:
            log.warning(
                "[%s] %s: %s: certificate %s expired on %s",
                section,
                key,
                path,
                cert.subject.rfc4514_string(),
                cert.not_valid_after_utc.isoformat(),
            )
    return data, certs


def _private_key(path: str, cert: x509.Certificate, cert_path: str, section: str = "api") -> bytes:
    data = _read(path, "tls_key", section)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise SecurityError(
            f"[{section}] tls_key: {path}: the key is encrypted; give an unencrypted PEM key "
            "(readable only by the service's user)"
        ) from None
    except (ValueError, Exception) as exc:  # cryptography raises several kinds
        raise SecurityError(f"[{section}] tls_key: {path}: not a PEM private key ({exc})") from None
    if not key_matches(key, cert):
        raise SecurityError(
            f"[{section}] tls_key: {path}: does not match the certificate in tls_cert ({cert_path})"
        )
    return data


def key_matches(key: Any, cert: x509.Certificate) -> bool:
    """Whether ``key`` (a loaded private key) is the one of ``cert``."""
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return key.public_key().public_bytes(der, spki) == cert.public_key().public_bytes(der, spki)


def tls_material(
    files: ApiSettings | MetricsSettings, section: str = "api"
) -> tuple[bytes, bytes, bytes | None, x509.Certificate]:
    """(key, certificate chain, client CA or None, the leaf certificate) of the TLS
    files of ``[section]``, read and checked; raises SecurityError."""
    cert_pem, chain = _certificates(files.tls_cert, "tls_cert", section)
    key_pem = _private_key(files.tls_key, chain[0], files.tls_cert, section)
    ca_pem = (
        _certificates(files.tls_client_ca, "tls_client_ca", section)[0]
        if files.tls_client_ca
        else None
    )
    return key_pem, cert_pem, ca_pem, chain[0]


def load_tokens(path: str, key: str, section: str = "api") -> frozenset[bytes]:
    """One token per line; blank lines and ``#`` comments are skipped."""
    try:
        text = _read(path, key, section).decode("ascii")
    except UnicodeDecodeError:
        raise SecurityError(f"[{section}] {key}: {path}: tokens must be ASCII") from None
    tokens = set()
    for n, line in enumerate(text.splitlines(), 1):
        token = line.strip()
        if not token or token.startswith("#"):
            continue
        if any(c.isspace() or not c.isprintable() for c in token):
            raise SecurityError(f"[{section}] {key}: {path}:{n}: a token has no spaces or controls")
        tokens.add(token.encode())
    if not tokens:
        raise SecurityError(f"[{section}] {key}: {path}: holds no token")
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = 0
    if mode & 0o007:
        log.warning(
            "[%s] %s: %s is readable by every user (mode %04o): chmod o-rwx",
            section,
            key,
            path,
            stat.S_IMODE(mode),
        )
    return frozenset(tokens)


def check(api: ApiSettings, metrics: MetricsSettings | None = None) -> dict[str, x509.Certificate]:
    """Read every TLS and token file once (``[api]``'s, and ``[metrics]``' when its
    endpoint is on): fail before anything starts. Returns the leaf certificate of
    each section that serves TLS ("api", "metrics")."""
    leaves = {}
    if api.tls:
        leaves["api"] = tls_material(api)[3]
    for key in ("read_token_file", "admin_token_file"):
        if getattr(api, key):
            load_tokens(getattr(api, key), key)
    if metrics is not None and metrics.listen:
        if metrics.tls:
            leaves["metrics"] = tls_material(metrics, "metrics")[3]
        if metrics.token_file:
            load_tokens(metrics.token_file, "token_file", "metrics")
    return leaves


# -- counters --------------------------------------------------------------------


class Counters:
    """Refused and cut calls by reason (for metrics): unauthenticated,
    permission_denied, streams_exhausted, stream_idle."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, reason: str) -> None:
        with self._lock:
            self._counts[reason] = self._counts.get(reason, 0) + 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


REFUSED = Counters()  # every server of this process counts here
REFUSE_REASONS = ("unauthenticated", "permission_denied", "streams_exhausted", "stream_idle")


# -- tokens ------------------------------------------------------------------------


class Tokens:
    """The read and admin token sets, re-read when the config is reloaded."""

    def __init__(self, api: ApiSettings) -> None:
        self.read: frozenset[bytes] = frozenset()
        self.admin: frozenset[bytes] = frozenset()
        self.enabled = False
        self.admin_configured = False
        self.load(api)

    def load(self, api: ApiSettings) -> None:
        """Raises SecurityError and keeps the tokens it had."""
        read = load_tokens(api.read_token_file, "read_token_file") if api.read_token_file else ()
        admin = (
            load_tokens(api.admin_token_file, "admin_token_file") if api.admin_token_file else ()
        )
        self.read, self.admin = frozenset(read), frozenset(admin)
        self.admin_configured = bool(api.admin_token_file)
        self.enabled = bool(api.read_token_file or api.admin_token_file)

    def role(self, metadata: Any) -> str | None:
        """'admin', 'read' or None for the call's bearer token."""
        token = bearer_token(metadata)
        if token is None:
            return None
        # Every token is compared, so the time taken says nothing about which matched.
        admin = read = False
        for t in self.admin:
            admin |= hmac.compare_digest(t, token)
        for t in self.read:
            read |= hmac.compare_digest(t, token)
        return "admin" if admin else "read" if read else None


def bearer_token(metadata: Any) -> bytes | None:
    for key, value in metadata or ():
        if key == "authorization":
            scheme, _, token = str(value).partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                try:
                    return token.strip().encode("ascii")
                except UnicodeEncodeError:
                    return None
    return None


def is_loopback_peer(peer: str) -> bool:
    """``ipv4:127.0.0.1:5000``, ``ipv6:[::1]:5000`` or a Unix socket."""
    kind, _, rest = peer.partition(":")
    if kind == "unix":
        return True
    host = rest.rsplit(":", 1)[0].strip("[]")
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


# -- the interceptor ----------------------------------------------------------------


def _refusal(code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler that refuses at once. Stream-shaped, so the server does not
    first wait (holding a thread) for the request message of a unary call."""

    def behavior(request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        context.abort(code, message)
        yield from ()  # pragma: no cover - abort raises

    return grpc.stream_stream_rpc_method_handler(behavior)


_KINDS = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


def _rewrap(
    handler: grpc.RpcMethodHandler,
    wrap: Callable[[Callable], Callable],
    pool: futures.ThreadPoolExecutor | None = None,
) -> grpc.RpcMethodHandler:
    attr, make = _KINDS[(handler.request_streaming, handler.response_streaming)]
    behavior = wrap(getattr(handler, attr))
    if pool is not None:
        behavior.experimental_thread_pool = pool  # grpcio runs it on that pool
    return make(
        behavior,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _same(behavior: Callable) -> Callable:
    def call(request: Any, context: grpc.ServicerContext) -> Any:
        return behavior(request, context)

    return call


class Guard(grpc.ServerInterceptor):
    """Tokens, reload permission, stream limits and the control pool.

    ``config`` returns the running config: when it changes (a reload), the
    token files are read again; if that fails the previous tokens stay and
    the error is logged. TLS and the limits are fixed at start (the reload
    says a restart is needed: attribution.reload_changes).
    """

    def __init__(
        self,
        api: ApiSettings,
        config: Callable[[], Config] | None = None,
        counters: Counters = REFUSED,
    ) -> None:
        self.api = api
        self.tokens = Tokens(api)
        self.counters = counters
        self._config = config
        self._seen = config() if config else None
        self.streams = Slots(api.max_streams)
        self.control_streams = Slots(CONTROL_STREAMS)
        self.control_pool = futures.ThreadPoolExecutor(
            max_workers=CONTROL_THREADS, thread_name_prefix="grpc-control"
        )
        self.watchdog = Watchdog(api.stream_idle_timeout, counters)
        self._keys = iter(range(1 << 62))
        self._keys_lock = threading.Lock()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        if handler is None:
            return None
        method = details.method
        streaming = handler.request_streaming or handler.response_streaming
        if method.startswith(PUBLIC_PREFIXES):
            if not streaming:
                return _rewrap(handler, _same, self.control_pool)
            return _rewrap(
                handler,
                lambda b: self._limited(b, method, self.control_streams, handler),
                self.control_pool,
            )
        self._follow_reloads()
        tokens = self.tokens
        role = tokens.role(details.invocation_metadata) if tokens.enabled else "open"
        if role is None:
            self.counters.add("unauthenticated")
            return _refusal(
                grpc.StatusCode.UNAUTHENTICATED,
                "this service needs a token: metadata 'authorization: Bearer TOKEN'",
            )
        if method not in READ_METHODS:
            if tokens.admin_configured and role != "admin":
                self.counters.add("permission_denied")
                return _refusal(grpc.StatusCode.PERMISSION_DENIED, f"{method} needs an admin token")
            if not tokens.admin_configured:
                handler = _rewrap(handler, self._loopback_only)
        if streaming:
            return _rewrap(handler, lambda b: self._limited(b, method, self.streams, handler))
        return handler

    def _follow_reloads(self) -> None:
        if self._config is None:
            return
        config = self._config()
        if config is self._seen:
            return
        self._seen = config
        try:
            self.tokens.load(config.api)
            log.info("API tokens re-read after the config reload")
        except SecurityError as exc:
            log.error("API tokens not re-read, the previous ones stay in force: %s", exc)

    def _loopback_only(self, behavior: Callable) -> Callable:
        counters = self.counters

        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            if not is_loopback_peer(context.peer()):
                counters.add("permission_denied")
                context.abort(
                    grpc.StatusCode.PERMISSION_DENIED,
                    "without [api] admin_token_file, only local clients (loopback) may reload",
                )
            return behavior(request, context)

        return guarded

    def _limited(
        self, behavior: Callable, method: str, slots: Slots, handler: grpc.RpcMethodHandler
    ) -> Callable:
        watched = method not in UNLIMITED_STREAMS
        answers_stream = handler.response_streaming
        watchdog, counters = self.watchdog, self.counters

        def limited(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            release = slots.take()
            if release is None:
                counters.add("streams_exhausted")
                context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"{slots.n} streams are open, the most this server serves at once: "
                    "close one or retry later",
                )
            if not context.add_callback(release):  # on the call's end, even if never resumed
                release()  # already ended
            with self._keys_lock:
                key = next(self._keys)
            if watched:
                watchdog.open(key, context)
                if hasattr(request, "__next__"):
                    request = watched_requests(request, watchdog, key)
            if not answers_stream:  # stream in, one answer out
                try:
                    return behavior(request, context)
                finally:
                    watchdog.close(key)
                    release()  # type: ignore[misc]
            try:
                answers = behavior(request, context)
            except BaseException:
                watchdog.close(key)
                release()  # type: ignore[misc]
                raise
            return watched_answers(answers, watchdog, key, release, watched)

        return limited


__all__ = [
    "REFUSED",
    "Counters",
    "Guard",
    "SecurityError",
    "Tokens",
    "check",
    "is_loopback_peer",
    "load_tokens",
]
