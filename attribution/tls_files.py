"""TLS files followed on disk: a renewed certificate is served without a restart.

Certificates are short-lived now: cert-manager renews at two thirds of their
life, ACME clients every 60 days, some meshes every hour. Read once at start,
a renewal needed a restart of the service (its BGP sessions and views with
it), and a renewal nobody restarted for let the served certificate expire.

gRPC asks ``fetch`` before each new connection's handshake
(``grpc.dynamic_ssl_server_credentials``), the metrics endpoint asks
``ssl_context`` at each connection it accepts; both get "no change" unless
the files changed since they were last read (a stat of each, at most every
``CHECK_EVERY`` seconds). Changed files are read and checked as at start
(``attribution.security``: PEM, the key matching the certificate); only a
whole, consistent set replaces the served one. A broken or half-written set
is refused, logged once and counted, and the served certificate stays (so is
a new certificate that has already expired while the served one has not); it is
tried again at the next check, so a key written a moment after its
certificate is taken as soon as both are there. Connections already open
keep the certificate of their handshake.

``refresh`` does a check at once: a config reload (SIGHUP) calls it, so the
log says at the reload whether new files were taken. ``poll`` checks if due:
the service's observer calls it, so that ``served`` (the expiry metric) shows a
renewal while no client connects, and asks ``expiry_warning`` once a round. The files' paths are
fixed at start (``[api]`` and ``[metrics]`` are not reloaded); their contents
are followed.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from attribution.config import ApiSettings, MetricsSettings
from attribution.security import SecurityError, tls_material

log = logging.getLogger(__name__)

CHECK_EVERY = 1.0  # seconds: the files are stat()ed at most this often (per new connection)
EXPIRY_WARNING_DAYS = 14  # a served certificate this close to its end is warned about
WARN_EVERY = 86400.0  # seconds between two of those warnings for one server
OUTCOMES = ("taken", "refused")

# (device, inode, size, mtime in ns) of each file; None for a file that is not there.
Stamp = tuple[tuple[int, int, int, int] | None, ...]


@dataclass(frozen=True, slots=True)
class Served:
    """What the server hands out: the leaf certificate's subject and validity."""

    subject: str
    not_after: float  # Unix time


class FollowedCertificates:
    """A server certificate, its key and the client CA (``tls_cert``, ``tls_key``,
    ``tls_client_ca`` of ``[section]``), re-read when they change. Raises
    SecurityError at construction for unusable files (the start fails, as before).

    Two servers use it: gRPC through ``credentials`` (its ``fetch`` callback),
    the metrics endpoint through ``ssl_context``."""

    def __init__(
        self,
        files: ApiSettings | MetricsSettings,
        section: str = "api",
        clock: Callable[[], float] = time.monotonic,
        check_every: float = CHECK_EVERY,
    ) -> None:
        self.paths = tuple(p for p in (files.tls_cert, files.tls_key, files.tls_client_ca) if p)
        self.mutual = bool(files.tls_client_ca)
        self._files = files
        self._section = section
        self._clock = clock
        self._check_every = check_every
        self._lock = threading.Lock()
        self._stamp = file_stamp(self.paths)
        self._material, self.served = self._read()
        self._generation = 0  # sets taken so far
        self._fetched = 0  # the generation gRPC was last handed
        self._context: tuple[int, ssl.SSLContext] | None = None
        self._checked = clock()
        self._refused_stamp: Stamp | None = None  # the set last refused (logged once)
        self.outcomes = dict.fromkeys(OUTCOMES, 0)
        self.last_error = ""
        self._warned: float | None = None  # when expiry_warning last said something

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._grpc_configuration(), self.fetch, require_client_authentication=self.mutual
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's question before a handshake: a new configuration, or None (keep
        the served one). Never raises: a failure here would fail the handshake."""
        try:
            with self._lock:
                self._check_if_due()
                if self._fetched == self._generation:
                    return None
                self._fetched = self._generation
                return self._grpc_configuration()
        except Exception:  # pragma: no cover - a bug must not refuse every client
            log.exception("TLS files: the check failed; the served certificate stays")
            return None

    def ssl_context(self) -> ssl.SSLContext:
        """A server context of the current set, for a new connection (made again
        only when a new set was taken)."""
        with self._lock:
            try:
                self._check_if_due()
            except Exception:  # pragma: no cover - as in fetch
                log.exception("TLS files: the check failed; the served certificate stays")
            if self._context is None or self._context[0] != self._generation:
                self._context = (self._generation, _server_context(*self._material))
            return self._context[1]

    def refresh(self) -> bool:
        """Check the files now (a reload); True when a new set was taken."""
        with self._lock:
            return self._check()

    def poll(self) -> None:
        """Check the files if due, without a connection: the service's observer calls
        this, so that a renewal on disk shows in ``served`` (and the expiry metric)
        while no client connects (gRPC's connections live for hours)."""
        with self._lock:
            self._check_if_due()

    def expiry_warning(self, now: float) -> str | None:
        """A warning when the served certificate ends within EXPIRY_WARNING_DAYS (or
        has ended), at most once every WARN_EVERY seconds; else None."""
        left = self.served.not_after - now
        if left >= EXPIRY_WARNING_DAYS * 86400:
            return None
        if self._warned is not None and now - self._warned < WARN_EVERY:
            return None
        self._warned = now
        when = "expired on" if left < 0 else f"expires in {left / 86400:.1f} days, on"
        return (
            f"[{self._section}] the served TLS certificate ({self.served.subject}) {when} "
            f"{_iso(self.served.not_after)}; renewed files are taken as soon as they are on "
            f"disk ({', '.join(self.paths[:2])})"
        )

    def _check_if_due(self) -> None:
        if self._clock() - self._checked >= self._check_every:
            self._check()

    def _check(self) -> bool:
        self._checked = self._clock()
        stamp = file_stamp(self.paths)
        if stamp == self._stamp:
            return False
        try:
            material, served = self._read()
            if served.not_after < time.time() <= self.served.not_after:
                raise SecurityError(
                    f"[{self._section}] tls_cert: {self._files.tls_cert}: the new certificate "
                    f"expired on {_iso(served.not_after)}"
                )
        except SecurityError as exc:
            self.last_error = str(exc)
            if stamp != self._refused_stamp:
                self._refused_stamp = stamp
                self.outcomes["refused"] += 1
                log.error(
                    "[%s] TLS files changed but were not taken, the served certificate (%s, "
                    "valid until %s) stays: %s",
                    self._section,
                    self.served.subject,
                    _iso(self.served.not_after),
                    exc,
                )
            return False
        self._stamp, self._material, self.served = stamp, material, served
        self._generation += 1
        self._refused_stamp, self.last_error = None, ""
        self.outcomes["taken"] += 1
        log.info(
            "[%s] TLS files re-read: serving %s, valid until %s, from the next connection on",
            self._section,
            served.subject,
            _iso(served.not_after),
        )
        return True

    def _read(self) -> tuple[tuple[bytes, bytes, bytes | None], Served]:
        key_pem, cert_pem, ca_pem, leaf = tls_material(self._files, self._section)
        served = Served(leaf.subject.rfc4514_string(), leaf.not_valid_after_utc.timestamp())
        return (key_pem, cert_pem, ca_pem), served

    def _grpc_configuration(self) -> grpc.ServerCertificateConfiguration:
        key_pem, cert_pem, ca_pem = self._material
        return grpc.ssl_server_certificate_configuration(
            [(key_pem, cert_pem)], root_certificates=ca_pem
        )


def file_stamp(paths: tuple[str, ...]) -> Stamp:
    """What tells a changed file: (device, inode, size, mtime) of each path, through
    symlinks (a Kubernetes Secret's swap is seen); None for one that is not there."""
    out = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append(None)
        else:
            out.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _server_context(key_pem: bytes, cert_pem: bytes, ca_pem: bytes | None) -> ssl.SSLContext:
    """An ``ssl`` server context of checked PEM bytes. ``load_cert_chain`` reads
    paths only: the bytes go through anonymous memory files (memfd), so what is
    loaded is the set that was checked, not whatever the paths hold by then."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    fds = []
    try:
        for data in (cert_pem, key_pem):
            fd = os.memfd_create("attribution-tls", os.MFD_CLOEXEC)
            fds.append(fd)
            os.write(fd, data)
        context.load_cert_chain(f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}")
    finally:
        for fd in fds:
            os.close(fd)
    if ca_pem is not None:
        context.load_verify_locations(cadata=ca_pem.decode("ascii", "replace"))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


__all__ = [
    "CHECK_EVERY",
    "EXPIRY_WARNING_DAYS",
    "OUTCOMES",
    "WARN_EVERY",
    "FollowedCertificates",
    "Served",
    "file_stamp",
]
