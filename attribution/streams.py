"""Streams on a thread-per-call server: a fixed number of slots, and a
watchdog that closes streams whose client has stopped taking part.

grpcio's synchronous server holds a thread for every running call, and a
stream's thread waits as long as its client lets it: for the next request,
or for the client to read an answer (the send blocks once the client's
flow-control window is full). These pieces bound both (attribution.security
puts them in front of the service).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import grpc

log = logging.getLogger(__name__)


class Counting(Protocol):
    def add(self, reason: str) -> None: ...


class Watchdog:
    """Closes streams that wait on their client longer than the idle timeout.

    A stream waits for its client while it waits for the next batch and while
    an answer waits to be read (the send blocks once the client's window is
    full); working on a batch is not waiting. The thread runs only while
    streams are open.
    """

    def __init__(self, timeout: float, counters: Counting) -> None:
        self.timeout = timeout
        self.counters = counters
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[float | None, grpc.ServicerContext]] = {}
        self._thread: threading.Thread | None = None

    def open(self, key: int, context: grpc.ServicerContext) -> None:
        with self._lock:
            self._waiting[key] = (time.monotonic(), context)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="grpc-stream-watchdog", daemon=True
                )
                self._thread.start()

    def waiting(self, key: int, waiting: bool) -> None:
        with self._lock:
            entry = self._waiting.get(key)
            if entry is not None:
                self._waiting[key] = (time.monotonic() if waiting else None, entry[1])

    def close(self, key: int) -> None:
        with self._lock:
            self._waiting.pop(key, None)

    def _run(self) -> None:
        period = min(1.0, self.timeout / 4)
        while True:
            time.sleep(period)
            now = time.monotonic()
            with self._lock:
                if not self._waiting:
                    self._thread = None
                    return
                idle = [
                    (k, ctx)
                    for k, (since, ctx) in self._waiting.items()
                    if since is not None and now - since >= self.timeout
                ]
                for k, _ in idle:
                    del self._waiting[k]
            for _, ctx in idle:
                self.counters.add("stream_idle")
                message = (
                    f"stream closed: no batch sent and no answer read for "
                    f"{self.timeout:g} s ([api] stream_idle_timeout)"
                )
                log.info("gRPC %s: %s", ctx.peer(), message)
                cancel(ctx, message)


def cancel(context: grpc.ServicerContext, message: str) -> None:
    """End a call from outside its thread with DEADLINE_EXCEEDED and a message.

    grpcio's public ``cancel()`` sends a bare CANCELLED; the core call can
    say why. Fall back to the public one if grpcio's internals change.
    """
    try:
        from grpc._cython import cygrpc

        context._rpc_event.call.cancel(cygrpc.StatusCode.deadline_exceeded, message)  # type: ignore[attr-defined]
    except Exception:
        context.cancel()


class Slots:
    """At most ``n`` calls at once; the next is refused, never queued."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._free = threading.BoundedSemaphore(n)

    def take(self) -> Callable[[], None] | None:
        """A release function (safe to call twice), or None when all are taken."""
        if not self._free.acquire(blocking=False):
            return None
        done = threading.Lock()

        def release() -> None:
            if done.acquire(blocking=False):
                self._free.release()

        return release


def watched_requests(requests: Iterator[Any], watchdog: Watchdog, key: int) -> Iterator[Any]:
    while True:
        watchdog.waiting(key, True)
        try:
            request = next(requests)
        except StopIteration:
            return
        finally:
            watchdog.waiting(key, False)
        yield request


def watched_answers(
    answers: Any, watchdog: Watchdog, key: int, release: Callable[[], None], watched: bool
) -> Iterator[Any]:
    try:
        for answer in answers:
            if watched:
                watchdog.waiting(key, True)  # until the client has taken it
            yield answer
            if watched:
                watchdog.waiting(key, False)
    finally:
        watchdog.close(key)
        release()
