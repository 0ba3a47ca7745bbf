"""Flows during a load, for ``bench.vs_pmacct --flows-during-load``: what a
collector's steady stream costs the service while routers' tables stream in.

A production service gets flows all the time, also while its routers load
(a first start without a snapshot, 64 routers over ~9 minutes). Lookups then
ask for the views of routers that have none yet; the maintenance builds them
once no table streams in, or after ``VIEWS_WAIT_MAX`` of waiting. The load
benches sent no flows, so what that costs was never measured (BENCHMARKS.md,
stop 43, "noticed").

``FlowStream`` sends ``ResolveBatch`` requests at a paced rate from a thread
of the bench's process: batches of Zipf-drawn destinations over the real
table (``bench.flows``), each flow's exporter one of the routers' (127.0.2.k),
AS numbers only (``omit_routes``, ``packed_records``: the cheapest answer, a
collector's choice). ``view_metrics`` reads the service's view builds from
its Prometheus endpoint.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from dataclasses import dataclass, field

BATCH = 4096
DISTINCT_BATCHES = 16


def flow_batches(routers: int, size: int = BATCH, count: int = DISTINCT_BATCHES) -> list[bytes]:
    """Serialized FlowBatch messages: ``size`` flows each, exporters spread
    round-robin over routers 1..``routers`` (127.0.2.k), Zipf destinations
    and sources over the real table, AS numbers only."""
    from bench.flows import batch_requests

    exporters = [f"127.0.2.{k}" for k in range(1, routers + 1)]
    return batch_requests("zipf", count, size, exporters, seed=11, answer="omit")


@dataclass
class FlowStream:
    """Paced ``ResolveBatch`` calls from a thread until ``stop``.

    ``rate``: flows per second. A call that takes longer than its slot delays
    the next ones (no catch-up burst), so ``sent`` over the elapsed time says
    what rate the service kept up with."""

    target: str
    routers: int
    rate: int
    sent: int = 0
    errors: int = 0
    slow_calls: int = 0  # calls over a second (the service stalled)
    longest_call: float = 0.0
    error_texts: list[str] = field(default_factory=list)
    started_at: float = 0.0
    stopped_at: float = 0.0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._requests = flow_batches(self.routers)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="vs-flows", daemon=True)
        self._thread.start()

    def stop(self) -> dict:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        return self.figures()

    def figures(self) -> dict:
        end = self.stopped_at or time.monotonic()
        seconds = max(end - self.started_at, 1e-9)
        return {
            "rate_asked": self.rate,
            "flows_sent": self.sent,
            "rate_kept": round(self.sent / seconds),
            "errors": self.errors,
            "slow_calls": self.slow_calls,
            "longest_call_s": round(self.longest_call, 3),
            "first_errors": self.error_texts[:3],
        }

    def _run(self) -> None:
        import grpc

        channel = grpc.insecure_channel(
            self.target, options=[("grpc.max_receive_message_length", 64 << 20)]
        )
        call = channel.unary_unary("/attribution.v1.Attribution/ResolveBatch")
        interval = BATCH / self.rate
        self.started_at = next_at = time.monotonic()
        i = 0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now < next_at:
                    self._stop.wait(next_at - now)
                    continue
                t = time.monotonic()
                try:
                    call(self._requests[i % len(self._requests)], timeout=30)
                    self.sent += BATCH
                except grpc.RpcError as e:
                    self.errors += 1
                    if len(self.error_texts) < 10:
                        self.error_texts.append(f"{e.code().name}: {e.details()}")
                took = time.monotonic() - t
                self.longest_call = max(self.longest_call, took)
                self.slow_calls += took > 1.0
                i += 1
                next_at = max(next_at + interval, time.monotonic() - interval)
        finally:
            self.stopped_at = time.monotonic()
            channel.close()


VIEW_METRICS = {  # name: unit
    "attribution_view_builds_total": "views",
    "attribution_view_patches_total": "views",
    "attribution_view_build_seconds_total": "s",
}


def view_metrics(port: int) -> dict[str, float]:
    """The service's view builds so far, from its ``/metrics`` (a missing
    metric reads as -1: the name changed, say so rather than report 0)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    values = dict.fromkeys(VIEW_METRICS, -1.0)
    for line in text.decode().splitlines():
        name, _, value = line.partition(" ")
        if name in values:
            values[name] = float(value)
    return values
