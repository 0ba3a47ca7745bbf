"""The gRPC server's TLS files, followed on disk: a renewed certificate is served without a restart.

Certificates are short-lived now: cert-manager renews at two thirds of their
life, ACME clients every 60 days, some meshes every hour. Read once at start,
a renewal needed a restart of the service (its BGP sessions and views with
it), and a renewal nobody restarted for let the served certificate expire.

gRPC asks ``fetch`` before each new connection's handshake
(``grpc.dynamic_ssl_server_credentials``); it answers "no change" unless the
files changed since they were last read (a stat of each, at most every
``CHECK_EVERY`` seconds). Changed files are read and checked as at start
(``attribution.security``: PEM, the key matching the certificate); only a
whole, consistent set replaces the served one. A broken or half-written set
is refused, logged once and counted, and the served certificate stays (so is
a new certificate that has already expired while the served one has not); it is
tried again at the next check, so a key written a moment after its
certificate is taken as soon as both are there. Connections already open
keep the certificate of their handshake.

``refresh`` does a check at once: a config reload (SIGHUP) calls it, so the
log says at the reload whether new files were taken. The files' paths are
fixed at start (``[api]`` is not reloaded); their contents are followed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from attribution.config import ApiSettings
from attribution.security import SecurityError, tls_material

log = logging.getLogger(__name__)

CHECK_EVERY = 1.0  # seconds: the files are stat()ed at most this often (per new connection)
OUTCOMES = ("taken", "refused")

# (device, inode, size, mtime in ns) of each file; None for a file that is not there.
Stamp = tuple[tuple[int, int, int, int] | None, ...]


@dataclass(frozen=True, slots=True)
class Served:
    """What the server hands out: the leaf certificate's subject and validity."""

    subject: str
    not_after: float  # Unix time


class FollowedCertificates:
    """The server certificate, its key and the client CA of ``[api]``, re-read when
    they change. Raises SecurityError at construction for unusable files (the
    start fails, as before)."""

    def __init__(
        self,
        api: ApiSettings,
        clock: Callable[[], float] = time.monotonic,
        check_every: float = CHECK_EVERY,
    ) -> None:
        self.paths = tuple(p for p in (api.tls_cert, api.tls_key, api.tls_client_ca) if p)
        self.mutual = bool(api.tls_client_ca)
        self._api = api
        self._clock = clock
        self._check_every = check_every
        self._lock = threading.Lock()
        self._stamp = self._stat()
        configuration, self.served = self._read()
        self._initial = configuration
        self._new: grpc.ServerCertificateConfiguration | None = None  # for the next handshake
        self._checked = clock()
        self._refused_stamp: Stamp | None = None  # the set last refused (logged once)
        self.outcomes = dict.fromkeys(OUTCOMES, 0)
        self.last_error = ""

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._initial, self.fetch, require_client_authentication=self.mutual
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's question before a handshake: a new configuration, or None (keep
        the served one). Never raises: a failure here would fail the handshake."""
        try:
            with self._lock:
                if self._clock() - self._checked >= self._check_every:
                    self._check()
                new, self._new = self._new, None
                return new
        except Exception:  # pragma: no cover - a bug must not refuse every client
            log.exception("TLS files: the check failed; the served certificate stays")
            return None

    def refresh(self) -> bool:
        """Check the files now (a reload); True when a new set was taken."""
        with self._lock:
            return self._check()

    def _check(self) -> bool:
        self._checked = self._clock()
        stamp = self._stat()
        if stamp == self._stamp:
            return False
        try:
            configuration, served = self._read()
            if served.not_after < time.time() <= self.served.not_after:
                raise SecurityError(
                    f"[api] tls_cert: {self._api.tls_cert}: the new certificate expired on "
                    f"{_iso(served.not_after)}"
                )
        except SecurityError as exc:
            self.last_error = str(exc)
            if stamp != self._refused_stamp:
                self._refused_stamp = stamp
                self.outcomes["refused"] += 1
                log.error(
                    "TLS files changed but were not taken, the served certificate (%s, "
                    "valid until %s) stays: %s",
                    self.served.subject,
                    _iso(self.served.not_after),
                    exc,
                )
            return False
        self._stamp, self._new, self.served = stamp, configuration, served
        self._refused_stamp, self.last_error = None, ""
        self.outcomes["taken"] += 1
        log.info(
            "TLS files re-read: serving %s, valid until %s, from the next connection on",
            served.subject,
            _iso(served.not_after),
        )
        return True

    def _read(self) -> tuple[grpc.ServerCertificateConfiguration, Served]:
        key_pem, cert_pem, ca_pem, leaf = tls_material(self._api)
        configuration = grpc.ssl_server_certificate_configuration(
            [(key_pem, cert_pem)], root_certificates=ca_pem
        )
        return configuration, Served(
            leaf.subject.rfc4514_string(), leaf.not_valid_after_utc.timestamp()
        )

    def _stat(self) -> Stamp:
        out = []
        for path in self.paths:
            try:
                st = os.stat(path)  # follows symlinks: a Kubernetes Secret's swap is seen
            except OSError:
                out.append(None)
            else:
                out.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(out)


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


__all__ = ["CHECK_EVERY", "OUTCOMES", "FollowedCertificates", "Served"]
