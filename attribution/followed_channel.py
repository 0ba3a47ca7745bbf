"""A client channel whose TLS files are followed: a renewed client certificate is used
without restarting the client.

The server follows its own files (``attribution.tls_files``); a long-running
client (``attribution enrich --follow``, a collector's resolve stream) read its
client certificate, key and CA once. TLS checks a certificate at the handshake
only, so the running connection outlives a short-lived certificate, but the next
one (the service restarted, a replica replaced) was made with the expired
certificate and refused, until someone restarted the client.

``FollowedChannel`` stands for the channel: every call goes to the current
channel, and the files are ``stat``ed when a stream opens and at most every
``CHECK_EVERY`` seconds when a unary call starts. Changed, and whole (a
certificate and a key that match), they make a new channel for the calls from
then on; a half-written set is skipped and looked at again at the next check.
Calls already running stay on the channel they started on, which is closed
``CLOSE_AFTER`` seconds later (a stream still on it then ends as a lost stream
does, and ``attribution.balancing`` sends its batches again on another).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from attribution.security import key_matches
from attribution.tls_files import Stamp, file_stamp

log = logging.getLogger(__name__)

CHECK_EVERY = 1.0  # seconds between two looks at the files when unary calls start
CLOSE_AFTER = 600.0  # seconds a replaced channel is kept for the calls still on it


class FollowedChannel(grpc.Channel):
    """``make()``'s channel, made again when one of ``paths`` changes.

    ``make`` reads the files (raising ValueError for unusable ones);
    ``cert_and_key``: the two of ``paths`` that must match before a new set is
    used ("" when the client has no certificate)."""

    def __init__(
        self,
        make: Callable[[], grpc.Channel],
        paths: tuple[str, ...],
        cert_and_key: tuple[str, str] = ("", ""),
        clock: Callable[[], float] = time.monotonic,
        check_every: float = CHECK_EVERY,
        close_after: float = CLOSE_AFTER,
    ) -> None:
        self._make = make
        self._paths = tuple(p for p in paths if p)
        self._cert_and_key = cert_and_key
        self._clock = clock
        self._check_every = check_every
        self._close_after = close_after
        self._lock = threading.Lock()
        self._stamp = file_stamp(self._paths)
        self._current = make()
        self._generation = 0
        self._checked = clock()
        self._retired: list[tuple[float, grpc.Channel]] = []
        self._skipped: Stamp | None = None  # a set not used (logged once)
        self._subscribed: dict[Callable, grpc.Channel] = {}
        self.renewals = 0

    def current(self, look: bool = False) -> tuple[grpc.Channel, int]:
        """The channel for a call starting now, and its generation; ``look``: at the
        files now, whenever they were last looked at."""
        with self._lock:
            now = self._clock()
            if look or now - self._checked >= self._check_every:
                self._checked = now
                self._look(now)
            return self._current, self._generation

    def _look(self, now: float) -> None:
        while self._retired and now - self._retired[0][0] >= self._close_after:
            self._retired.pop(0)[1].close()
        stamp = file_stamp(self._paths)
        if stamp == self._stamp:
            return
        try:
            _check_pair(*self._cert_and_key)
            new = self._make()
        except ValueError as exc:
            if stamp != self._skipped:
                self._skipped = stamp
                log.warning("client TLS files changed but are not usable yet, kept: %s", exc)
            return
        self._retired.append((now, self._current))
        self._current, self._stamp, self._skipped = new, stamp, None
        self._generation += 1
        self.renewals += 1
        log.info("client TLS files re-read: new calls use them (calls running keep theirs)")

    # -- grpc.Channel --------------------------------------------------------------

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Call(self, "unary_unary", method, args, kwargs)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Call(self, "unary_stream", method, args, kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Call(self, "stream_unary", method, args, kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Call(self, "stream_stream", method, args, kwargs)

    def subscribe(self, callback: Callable, try_to_connect: bool = False) -> None:
        ch, _ = self.current()
        self._subscribed[callback] = ch
        ch.subscribe(callback, try_to_connect=try_to_connect)

    def unsubscribe(self, callback: Callable) -> None:
        ch = self._subscribed.pop(callback, None)
        if ch is not None:
            ch.unsubscribe(callback)

    def close(self) -> None:
        with self._lock:
            channels = [self._current] + [c for _, c in self._retired]
            self._retired = []
        for ch in channels:
            ch.close()

    def __enter__(self) -> FollowedChannel:
        return self

    def __exit__(self, *exc: object) -> bool:
        self.close()
        return False


class _Call:
    """A multi-callable that starts each call on the channel current at that moment."""

    def __init__(
        self, owner: FollowedChannel, kind: str, method: str, args: tuple, kwargs: dict
    ) -> None:
        self._owner, self._kind, self._method = owner, kind, method
        self._args, self._kwargs = args, kwargs
        self._made: tuple[int, Any] | None = None

    def _target(self) -> Any:
        # A stream is opened rarely and lives long: one opened on a replaced channel
        # after a renewal would wait there for a connection its old certificate can
        # no longer make. So streams always look at the files; unary calls, which may
        # come thousands a second, every CHECK_EVERY.
        ch, generation = self._owner.current(look=self._kind != "unary_unary")
        made = self._made
        if made is None or made[0] != generation:
            made = (generation, getattr(ch, self._kind)(self._method, *self._args, **self._kwargs))
            self._made = made
        return made[1]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._target()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # with_call, future
        return getattr(self._target(), name)


def _check_pair(cert_path: str, key_path: str) -> None:
    """A client certificate and key that belong together (ValueError otherwise): gRPC
    would take a mismatched pair and only fail the handshake."""
    if not cert_path:
        return
    try:
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificates(f.read(1 << 20))[0]
        with open(key_path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(1 << 20), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{cert_path}, {key_path}: {exc}") from None
    if not key_matches(key, cert):
        raise ValueError(f"{key_path} does not match the certificate in {cert_path}")


__all__ = ["CHECK_EVERY", "CLOSE_AFTER", "FollowedChannel"]
