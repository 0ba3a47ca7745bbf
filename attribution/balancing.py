"""Client-side load balancing over replicas of the service.

Every replica holds every router's RIB and answers any batch the same way, so
a client may send each batch to any ready replica (README, "Running more than
one"). gRPC does the spreading and the health checking: the channel's target
names every replica (a list becomes one ``ipv4:``/``ipv6:`` target, a
``dns:///NAME:PORT`` resolves to every address of the name, as a Kubernetes
headless Service gives), its service config asks for ``round_robin`` with
``healthCheckConfig``, so only replicas whose gRPC health says SERVING (their
RIB converged, :mod:`attribution.health`) get calls.

A ResolveStream is one call and stays on the replica it was opened on, so
:class:`BalancedStreams` opens several streams (each lands on the next ready
replica) and spreads batches over them. A replica that dies mid-stream
(UNAVAILABLE, stream reset) takes its stream's unanswered batches with it:
they go back to the front of the queue and are sent again, with the same
``batch_id``, on another stream. Resolving is read-only, so sending a batch
twice is harmless; the client keeps exactly one answer per ``batch_id`` and
yields answers in input order. Batches held (queued, on the wire, or
answered and waiting for an earlier one) are bounded by ``max_in_flight``.
Streams are reopened every ``rebalance`` seconds so a replica that comes back
gets its share again.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

import grpc

from attribution.failover import RETRYABLE, BalancingError, FailoverStats, StreamError
from attribution.targets import Targets, parse_targets, service_config

DEFAULT_STREAMS = 2
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_READY_TIMEOUT = 60.0
DEFAULT_REBALANCE = 30.0
# One service (not a list): before anything was answered, a lost stream waits this
# long at most for it to be ready, so a wrong address is reported in seconds. Several
# replicas wait ready_timeout from the start: they may all be converging.
START_READY_TIMEOUT = 5.0
# At the end of a run, how long the stream threads are waited for after their calls
# are cancelled (they end within a second; this only bounds an unforeseen stall).
FINISH_TIMEOUT = 60.0


# --------------------------------------------------------------------------- streams

T = TypeVar("T")
M = TypeVar("M")


class _Batch(Generic[T, M]):
    __slots__ = ("attempts", "item", "meta", "request", "seq")

    def __init__(self, seq: int, item: T, request: Any, meta: M) -> None:
        self.seq, self.item, self.request, self.meta = seq, item, request, meta
        self.attempts = 0


class _Work:
    """The batches waiting for a stream; a lost stream's go back to the front."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.queue: deque[_Batch] = deque()
        self.closed = False  # no more batches will come
        self.on_wire = 0  # sent on a stream, not answered

    def put(self, batch: _Batch) -> None:
        with self.cond:
            self.queue.append(batch)
            self.cond.notify()

    def put_front(self, batches: Iterable[_Batch]) -> None:
        with self.cond:
            self.queue.extendleft(reversed(list(batches)))
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


class _Attempt:
    """One stream: the batches sent on it and not answered yet, in order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent: deque[_Batch] = deque()
        self.dead = False
        self.opened = time.monotonic()


class BalancedStreams(Generic[T, M]):
    """Batches over ``streams`` ResolveStreams of one balanced channel, answers in order.

    ``prepare(item, batch_id)`` makes (request, meta) for a batch; the results
    are (item, meta, reply, extra) in input order, where extra is what
    ``on_reply(state, reply)`` returned, called in the stream's own order with
    ``state = new_state()`` of the stream the reply came on (the route
    dictionary, which is per stream).
    """

    def __init__(
        self,
        open_stream: Callable[[Iterator[Any], bool], Iterator[Any]],
        wait_ready: Callable[[float], bool],
        *,
        streams: int = DEFAULT_STREAMS,
        max_in_flight: int = 8,
        read_ahead: int = 0,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        ready_timeout: float = DEFAULT_READY_TIMEOUT,
        start_ready_timeout: float = START_READY_TIMEOUT,
        rebalance: float = DEFAULT_REBALANCE,
        stream_idle: float = 60.0,
        stats: FailoverStats | None = None,
        new_state: Callable[[], Any] = lambda: None,
        on_reply: Callable[[Any, Any], Any] = lambda state, reply: state,
        target: str = "",
    ) -> None:
        if streams < 1 or max_in_flight < 1 or max_attempts < 1:
            raise ValueError("streams, max_in_flight and max_attempts must be at least 1")
        self.open_stream = open_stream
        self.wait_ready = wait_ready
        self.streams = streams
        self.max_in_flight = max_in_flight
        self.read_ahead = read_ahead
        self.max_attempts = max_attempts
        self.ready_timeout = ready_timeout
        self.start_ready_timeout = start_ready_timeout
        self.rebalance = rebalance
        self.stream_idle = stream_idle
        self.stats = stats if stats is not None else FailoverStats()
        self.new_state = new_state
        self.on_reply = on_reply
        self.target = target
        self._work = _Work()
        self._results: dict[int, tuple[_Batch, Any, Any]] = {}
        self._yielded = 0  # batches below this seq have been yielded
        self._done_cond = threading.Condition()
        self._failure: BaseException | None = None
        self._stop = threading.Event()
        self._last_rpc_error: StreamError | None = None
        self._lost_once = False
        self._calls: set[Any] = set()
        self._calls_lock = threading.Lock()

    # -- the caller's side ---------------------------------------------------

    def run(
        self, source: Iterable[T], prepare: Callable[[T, int], tuple[Any, M]]
    ) -> Iterator[tuple[T, M, Any, Any]]:
        slots = threading.Semaphore(self.max_in_flight + self.read_ahead)
        total: list[int] = []  # set once the source is exhausted

        def feed() -> None:
            seq = 0
            try:
                for item in source:
                    while not slots.acquire(timeout=0.5):
                        if self._stop.is_set():
                            return
                    if self._stop.is_set():
                        return
                    request, meta = prepare(item, seq)
                    self.stats.batches += 1
                    self._work.put(_Batch(seq, item, request, meta))
                    seq += 1
            except BaseException as exc:  # the source failed: stop the run with its error
                self._fail(exc)
            finally:
                with self._done_cond:
                    total.append(seq)
                    self._done_cond.notify_all()
                self._work.close()

        feeder = threading.Thread(target=feed, name="balanced-feed", daemon=True)
        threads = [
            threading.Thread(target=self._stream_loop, name=f"balanced-stream-{i}", daemon=True)
            for i in range(self.streams)
        ]
        feeder.start()
        for t in threads:
            t.start()
        next_seq = 0
        try:
            while True:
                with self._done_cond:
                    while (
                        next_seq not in self._results
                        and self._failure is None
                        and not (total and next_seq >= total[0])
                    ):
                        self._done_cond.wait()
                    if next_seq in self._results:
                        batch, reply, state = self._results.pop(next_seq)
                    elif self._failure is not None:
                        raise self._failure
                    else:
                        return  # every batch answered
                self.stats.answered += 1
                slots.release()
                next_seq += 1
                with self._done_cond:
                    self._yielded = next_seq
                yield batch.item, batch.meta, reply, state
        finally:
            self._finish(threads, feeder)

    def _finish(self, streams: list[threading.Thread], feeder: threading.Thread) -> None:
        """End every call and wait for the threads, on every way out of :meth:`run`
        (all answered, an error, the caller closing it: Ctrl-C, a failed write).

        Nothing of a stream may outlive the run: a daemon thread still inside
        grpc, or a call left for the interpreter's final garbage collection,
        can hang the process at exit (see :class:`StreamError`). A stream
        thread ends once its call is cancelled; cancelling again each second
        covers a call opened while the first cancel ran. The feeder stops at
        its next batch; one blocked on its input (stdin) holds nothing of gRPC
        and is waited for a few seconds only.
        """
        self._stop.set()
        self._work.close()
        deadline = time.monotonic() + FINISH_TIMEOUT
        while time.monotonic() < deadline:  # bounded: a thread stuck past it is left
            with self._calls_lock:
                calls = list(self._calls)
            for call in calls:
                call.cancel()
            del calls
            for t in streams:
                t.join(timeout=1.0)
            if not any(t.is_alive() for t in streams):
                break
        feeder.join(timeout=5.0)

    # -- the streams ---------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        with self._done_cond:
            if self._failure is None:
                self._failure = exc
            self._done_cond.notify_all()
        self._stop.set()
        self._work.close()

    def _has_work(self) -> bool:
        """Wait until a batch is queued (True) or none will ever come (False)."""
        work = self._work
        with work.cond:
            while not work.queue and not work.closed and not self._stop.is_set():
                work.cond.wait(0.5)
            return bool(work.queue) and not self._stop.is_set()

    def _stream_loop(self) -> None:
        backoff = 0.05
        while self._has_work():
            if self._lost_once:
                timeout = self.ready_timeout if self.stats.answered else self.start_ready_timeout
                timeout = min(timeout, self.ready_timeout)
                if not self._wait_ready(timeout):
                    self._fail(
                        self._last_rpc_error
                        or BalancingError(
                            f"{self.target or 'the service'}: no replica ready (gRPC health "
                            f"SERVING) within {timeout:g} s"
                        )
                    )
                    return
            attempt = _Attempt()
            self.stats.streams_opened += 1
            try:
                self._one_stream(attempt)
            except grpc.RpcError as exc:
                lost = StreamError.of(exc)
                exc.__traceback__ = None  # the call is the error: no cycle keeps it
                if self._stop.is_set():
                    return
                code = lost.code()
                name = code.name if code is not None else type(exc).__name__
                self.stats.errors[name] = self.stats.errors.get(name, 0) + 1
                self.stats.last_error = f"{name}: {lost.details()}"
                self._last_rpc_error = lost
                self._lost_once = True
                if code not in RETRYABLE:
                    self._requeue(attempt)
                    self._fail(lost)
                    return
                self.stats.streams_failed += 1
                if self.stats._failed_at is None:
                    self.stats._failed_at = time.monotonic()
                if not self._requeue(attempt, count=True):
                    return
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            except BaseException as exc:  # a reply we cannot use: a bug, not a lost replica
                self._fail(exc)
                return
            backoff = 0.05
            if attempt.sent:  # the server ended the stream without answering them
                self.stats.streams_failed += 1
                self.stats.errors["ended_early"] = self.stats.errors.get("ended_early", 0) + 1
                if not self._requeue(attempt, count=True):
                    return

    def _wait_ready(self, timeout: float) -> bool:
        """wait_ready in slices, so a stopped run does not wait for the whole timeout."""
        deadline = time.monotonic() + timeout
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if self.wait_ready(max(0.0, min(left, 1.0))):
                return True
            if left <= 1.0:
                return False
        return False

    def _requeue(self, attempt: _Attempt, count: bool = False) -> bool:
        """Put a lost stream's unanswered batches back first; False when one is out of tries."""
        with attempt.lock:
            attempt.dead = True
            lost = list(attempt.sent)
            attempt.sent.clear()
        with self._work.cond:
            self._work.on_wire -= len(lost)
        if count:
            for batch in lost:
                batch.attempts += 1
                if batch.attempts >= self.max_attempts:
                    self._fail(
                        BalancingError(
                            f"batch {batch.seq}: not answered after {batch.attempts} "
                            f"attempts; last error {self.stats.last_error or 'none'}"
                        )
                    )
                    return False
            self.stats.batches_retried += len(lost)
        self._work.put_front(lost)
        return True

    def _requests(self, attempt: _Attempt) -> Iterator[Any]:
        """This stream's requests: queued batches until idle, rebalance time or the end."""
        work = self._work
        idle_since = time.monotonic()
        while not self._stop.is_set() and not attempt.dead:
            with work.cond:
                now = time.monotonic()
                if work.queue and work.on_wire < self.max_in_flight:
                    if now - attempt.opened >= self.rebalance:
                        return  # half-close: answers still come, a new stream takes the rest
                    batch = work.queue.popleft()
                    work.on_wire += 1
                else:
                    if not work.queue:
                        with attempt.lock:
                            pending = bool(attempt.sent)
                        if not pending and (
                            work.closed
                            or now - idle_since >= self.stream_idle  # quiet: close for now
                            or now - attempt.opened >= self.rebalance
                        ):
                            return
                    work.cond.wait(0.2)
                    continue
            with attempt.lock:
                dead = attempt.dead
                if not dead:
                    attempt.sent.append(batch)
            if dead:  # lost while we took it: back to the queue, not sent
                with work.cond:
                    work.on_wire -= 1
                work.put_front([batch])
                return
            yield batch.request
            idle_since = time.monotonic()

    def _one_stream(self, attempt: _Attempt) -> None:
        call = self.open_stream(self._requests(attempt), self._lost_once)
        with self._calls_lock:
            self._calls.add(call)
        if self._stop.is_set():  # the run ended while it opened: _finish may have missed it
            call.cancel()
        state = self.new_state()
        try:
            for reply in call:
                with attempt.lock:
                    batch = attempt.sent.popleft() if attempt.sent else None
                if batch is None or reply.batch_id != batch.seq:
                    raise BalancingError(
                        f"answer for batch {reply.batch_id} where batch "
                        f"{batch.seq if batch else 'none'} was due: the stream is out of step"
                    )
                with self._work.cond:
                    self._work.on_wire -= 1
                    self._work.cond.notify_all()
                self._deliver(batch, reply, self.on_reply(state, reply))
        finally:
            call.cancel()  # ended by an error of ours: the call must end too (no-op if done)
            with self._calls_lock:
                self._calls.discard(call)
            del call  # an error's traceback holds this frame: not the call with it

    def _deliver(self, batch: _Batch, reply: Any, state: Any) -> None:
        with self._done_cond:
            if batch.seq in self._results or batch.seq < self._yielded:
                self.stats.duplicates_dropped += 1
                return
            self._results[batch.seq] = (batch, reply, state)
            self._done_cond.notify_all()
        if self.stats._failed_at is not None:
            self.stats.recovery_seconds.append(time.monotonic() - self.stats._failed_at)
            self.stats._failed_at = None


__all__ = [
    "RETRYABLE",
    "BalancedStreams",
    "BalancingError",
    "FailoverStats",
    "StreamError",
    "Targets",
    "parse_targets",
    "service_config",
]
