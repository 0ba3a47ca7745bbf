"""Prometheus metrics: what the RIB, the feed, ExaBGP and the API are doing.

Two kinds, chosen by cost:

* RIB, feed, ExaBGP and view figures already exist as plain counters and
  fields (``FeedServer.stats``, ``Rib.routers``, ``ExabgpSupervisor.state``).
  ``ServiceCollector`` (``attribution.metrics_scrape``) reads them when
  Prometheus scrapes, so ingest pays nothing for being measured.
* API figures are counted by ``RpcMetrics`` once per RPC or per batch (never
  per flow in Python): latency histograms, requests by status, flows by RPC
  and answer shape, per-flow errors by code.

Each service has its own ``CollectorRegistry`` (tests run several services in
one process); the process collector (RSS, CPU, open files), the cyclic
collector's figures (``python_gc_*``) and the interpreter's version are
registered on it too, as on prometheus_client's default registry.
``attribution.metrics_http.MetricsServer`` serves it over HTTP or HTTPS, in
threads.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from attribution.metrics_http import MetricsRefusedCollector as MetricsRefusedCollector
from attribution.metrics_http import MetricsServer as MetricsServer  # re-exported
from attribution.metrics_scrape import (
    BAD_LINE_CATEGORIES,
    SESSION_STATES,
    IxCollector,
    ServiceCollector,
    Sources,
)
from ribd.observe import Note, SessionDown, SessionUp

RPCS = ("Resolve", "ResolveBatch", "ResolveStream", "LookupRoute", "ListRouters", "ReloadConfig")
# How a batch's answer is shaped (FlowBatch options): the labels of resolved flows.
SHAPES = ("one", "rows", "columns", "packed", "packed_stream_routes", "packed_omit_routes")
# Per-flow error codes of the resolver (docs/flow-json.md); others appear as they occur.
FLOW_ERROR_CODES = ("bad_record", "bad_address", "bad_exporter", "family_mismatch")
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


def batch_shape(kind: str, packed: bool, stream_routes: bool, omit_routes: bool) -> str:
    """The SHAPES label of a FlowBatch (``kind``: its ``records`` oneof)."""
    if kind != "columns":
        return "rows"
    if not packed:
        return "columns"
    if omit_routes:
        return "packed_omit_routes"
    if stream_routes:
        return "packed_stream_routes"
    return "packed"


class RpcMetrics:
    """Counters and histograms the gRPC servicer updates, once per RPC or batch."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.seconds = Histogram(
            "attribution_rpc_seconds",
            "Time to answer one RPC; for ResolveStream, one batch.",
            ["rpc"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.requests = Counter(
            "attribution_rpc_requests",
            "RPCs answered (ResolveStream: batches), by status code.",
            ["rpc", "code"],
            registry=registry,
        )
        self.flows = Counter(
            "attribution_resolved_flows",
            "Flow records answered, by RPC and answer shape (records with an error included).",
            ["rpc", "shape"],
            registry=registry,
        )
        self.flow_errors = Counter(
            "attribution_flow_errors",
            "Flow records answered with a per-flow error, by error code.",
            ["code"],
            registry=registry,
        )
        for rpc in RPCS:
            self.seconds.labels(rpc)
            self.requests.labels(rpc, "OK")
        for rpc, shapes in (
            ("Resolve", ("one",)),
            ("ResolveBatch", ("rows", "columns", "packed", "packed_omit_routes")),
            ("ResolveStream", SHAPES[1:]),
        ):
            for shape in shapes:
                self.flows.labels(rpc, shape)
        for code in FLOW_ERROR_CODES:
            self.flow_errors.labels(code)

        # Labelled children by label values: ``labels()`` costs ~4 us a call.
        self._seconds: dict[str, Any] = {}
        self._requests: dict[tuple[str, str], Any] = {}
        self._flows: dict[tuple[str, str], Any] = {}

    def rpc(self, rpc: str, seconds: float, code: str = "OK") -> None:
        h = self._seconds.get(rpc)
        if h is None:
            h = self._seconds[rpc] = self.seconds.labels(rpc)
        h.observe(seconds)
        key = (rpc, code)
        c = self._requests.get(key)
        if c is None:
            c = self._requests[key] = self.requests.labels(rpc, code)
        c.inc()

    def flows_answered(
        self, rpc: str, shape: str, flows: int, error_codes: Iterable[str] = ()
    ) -> None:
        if flows:
            key = (rpc, shape)
            c = self._flows.get(key)
            if c is None:
                c = self._flows[key] = self.flows.labels(rpc, shape)
            c.inc(flows)
        if error_codes:
            for code, n in collections.Counter(error_codes).items():
                self.flow_errors.labels(code).inc(n)


class SessionMetrics:
    """Session changes per router, counted from the RIB's notes (ribd.observe)
    as the service logs them: flaps show as a rate, even between scrapes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.changes = Counter(
            "attribution_bgp_session_changes",
            "BGP sessions that came up or went down, per router.",
            ["router", "neighbor", "change"],
            registry=registry,
        )

    def configured(self, routers: Iterable[tuple[str, str]]) -> None:
        """Show configured routers at 0 before their first change."""
        for name, neighbor in routers:
            self.changes.labels(name, neighbor, "up")
            self.changes.labels(name, neighbor, "down")

    def count(self, note: Note) -> None:
        if type(note) is SessionUp:
            self.changes.labels(note.name, note.neighbor, "up").inc()
        elif type(note) is SessionDown:
            self.changes.labels(note.name, note.neighbor, "down").inc()


class Timer:
    """``with metrics.timed(rpc) as t:`` -- observes the RPC's time and status."""

    __slots__ = ("code", "context", "metrics", "rpc", "started")

    def __init__(self, metrics: RpcMetrics, rpc: str, context: Any = None) -> None:
        self.metrics = metrics
        self.rpc = rpc
        self.context = context  # a ServicerContext: the status an abort set
        self.code = "OK"
        self.started = 0.0

    def __enter__(self) -> Timer:
        self.started = time.perf_counter()
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: Any) -> None:
        code = self.code
        if exc is not None and code == "OK":
            code = _status_of(exc, self.context)
        self.metrics.rpc(self.rpc, time.perf_counter() - self.started, code)


def _status_of(exc: BaseException, context: Any) -> str:
    """The gRPC status an exception leaving a servicer method ends in."""
    set_code = getattr(context, "code", None)
    if callable(set_code):
        try:
            aborted = set_code()  # context.abort(code, ...) records it there
        except Exception:
            aborted = None
        if aborted is not None and hasattr(aborted, "name"):
            return aborted.name
    code = getattr(exc, "code", None)
    if callable(code):
        try:
            return code().name  # grpc.RpcError and context.abort's exception
        except Exception:
            pass
    if isinstance(exc, GeneratorExit):
        return "CANCELLED"
    return "UNKNOWN"


def new_registry() -> CollectorRegistry:
    """A registry with what prometheus_client's default one collects: the
    process (RSS, CPU seconds, open files), the cyclic collector (collections
    and objects collected by generation) and the interpreter's version."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


__all__ = [
    "BAD_LINE_CATEGORIES",
    "SESSION_STATES",
    "IxCollector",
    "MetricsRefusedCollector",
    "MetricsServer",
    "RpcMetrics",
    "ServiceCollector",
    "SessionMetrics",
    "Sources",
    "Timer",
    "batch_shape",
    "new_registry",
]
