"""Client side of the bulk path: flow dicts in, attributed dicts out, in order.

Records are validated and packed into columns here (the same checks as the
server, from attribution.resolver), so a bad record never costs a round trip
and never reaches the wire; its answer carries the error.

The target may name several replicas (``H1:P1,H2:P2`` or ``dns:///NAME:PORT``):
batches are then spread over them and a batch whose replica dies is answered
by another (attribution.balancing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import TypeVar

from attribution.balancing import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_READY_TIMEOUT,
    DEFAULT_REBALANCE,
    START_READY_TIMEOUT,
    BalancedStreams,
    parse_targets,
)
from attribution.connection import (
    DEFAULT_TARGET,
    ClientSettingsError,
    Connection,
    channel,
    connection_from,
    replica_connections,
    replica_count,
    wait_ready,
)
from attribution.convert import columns_to_answers, error_answer, route_summary_json
from attribution.failover import FailoverStats
from attribution.pmacct import to_pmacct
from attribution.records import row_next_hops, rows_to_columns
from attribution.v1 import attribution_pb2 as pb
from attribution.v1 import attribution_pb2_grpc as pb_grpc

# The connection's names, kept importable from here for the many callers that
# take a channel and the bulk client from one place.
__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_TARGET",
    "Balancing",
    "ClientSettingsError",
    "Connection",
    "StreamRoutes",
    "channel",
    "columns_request",
    "connection_from",
    "replica_connections",
    "replica_count",
    "resolve_dicts",
    "resolve_flow_batches",
    "wait_ready",
]

DEFAULT_BATCH = 4096


def columns_request(
    flows: list, batch_id: int = 0, *, packed: bool = False, stream_routes: bool = False
) -> tuple[pb.FlowBatch, dict, list[int]]:
    """Pack dict records into a FlowBatch; returns (request, bad by index, good indexes)."""
    exporters, exporter, src, dst, in_if, mac, bad = rows_to_columns(flows)
    next_hop = row_next_hops(flows, bad)  # b"" when no flow has one
    good = [i for i in range(len(flows)) if i not in bad]
    if bad:
        exporter = [exporter[i] for i in good]
        src = b"".join(src[16 * i : 16 * i + 16] for i in good)
        dst = b"".join(dst[16 * i : 16 * i + 16] for i in good)
        in_if = [in_if[i] for i in good]
        mac = b"".join(mac[6 * i : 6 * i + 6] for i in good) if mac else b""
        next_hop = b"".join(next_hop[16 * i : 16 * i + 16] for i in good) if next_hop else b""
    request = pb.FlowBatch(
        batch_id=batch_id,
        columns=pb.FlowColumns(
            exporters=exporters,
            exporter=exporter,
            src_addr=src,
            dst_addr=dst,
            in_if=in_if,  # even all zeros (absent = 0): an override may name ifIndex 0
            src_mac=mac,
            next_hop=next_hop,
        ),
        packed_records=packed,
        stream_routes=stream_routes,
    )
    return request, bad, good


class StreamRoutes:
    """The client's copy of a ResolveStream's route dictionary (stream_routes)."""

    def __init__(self) -> None:
        self.routes: list[dict] = []

    def update(self, cols: pb.AttributionColumns) -> list[dict]:
        if cols.routes_reset:
            self.routes = []
        if cols.route_base != len(self.routes):
            raise RuntimeError(
                f"route dictionary out of step: the server numbers from {cols.route_base}, "
                f"we hold {len(self.routes)} routes"
            )
        self.routes.extend(route_summary_json(r) for r in cols.routes)
        return self.routes


@dataclass(frozen=True, slots=True)
class Balancing:
    """How batches are spread over streams (and replicas) and retried.

    ``streams`` 0: one per replica the target names (at least 2 for a
    balanced target, 1 for a single service). ``max_in_flight``: batches on
    the wire unanswered, over all streams (0: 4 per stream); ``read_ahead``:
    batches prepared beyond those. A batch whose stream is lost is sent again
    up to ``max_attempts`` times in all; after a loss a new stream waits up to
    ``ready_timeout`` seconds for a ready replica. Streams are reopened every
    ``rebalance`` seconds, so a replica that rejoins gets batches again, and
    closed after ``stream_idle`` seconds with nothing to send. ``keepalive``:
    seconds between pings on open streams; a replica that does not answer one
    within half that is taken as lost (frozen, or its host gone silently).
    """

    streams: int = 0
    max_in_flight: int = 0
    read_ahead: int = 4
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    ready_timeout: float = DEFAULT_READY_TIMEOUT
    rebalance: float = DEFAULT_REBALANCE
    stream_idle: float = 60.0
    keepalive: float = 20.0
    stats: FailoverStats = field(default_factory=FailoverStats, compare=False)


B = TypeVar("B")


def batch_answers(n: int, bad: dict, good: list[int], reply: pb.AttributionBatch, routes) -> list:
    """The answer dicts of a batch of ``n`` records, in order (bad ones: their error)."""
    if reply.batch_error:
        return [error_answer("bad_batch", reply.batch_error)] * n
    answers: list = [None] * n
    for i, (code, message) in bad.items():
        answers[i] = error_answer(code, message)
    resolved = columns_to_answers(reply.columns, reply.errors, routes)
    for i, answer in zip(good, resolved, strict=True):
        answers[i] = answer
    return answers


def _route_list(routes: StreamRoutes, reply: pb.AttributionBatch) -> list[dict] | None:
    return None if reply.batch_error else routes.update(reply.columns)


def resolve_flow_batches(
    target: str | Connection,
    batches: Iterable[B],
    flows_of: Callable[[B], list] = list,
    balancing: Balancing | None = None,
) -> Iterator[tuple[B, list[dict]]]:
    """(batch, answer dicts) in input order, over ResolveStreams to one or more replicas.

    Each batch is sent as packed records with the stream's route dictionary,
    with its sequence number as ``batch_id``; a batch whose stream is lost
    (the replica died, the stream was reset) is sent again on another stream,
    and exactly one answer per batch is yielded. ``balancing.stats`` counts
    what happened (:class:`attribution.balancing.FailoverStats`).
    """
    bal = balancing or Balancing()
    conn = target if isinstance(target, Connection) else Connection(target)
    targets = parse_targets(conn.target)
    streams = bal.streams or (max(2, replica_count(conn)) if targets.balanced else 1)
    in_flight = bal.max_in_flight or 4 * streams

    def prepare(batch: B, batch_id: int):
        flows = flows_of(batch)
        request, bad, good = columns_request(flows, batch_id, packed=True, stream_routes=True)
        return request, (len(flows), bad, good)

    with channel(conn, keepalive=bal.keepalive, follow=True) as ch:  # long-running streams
        stub = pb_grpc.AttributionStub(ch)

        def open_stream(requests, wait: bool):
            # wait: after a lost stream, queue the call until a replica is ready
            # rather than fail it while the channel notices which one is gone.
            return stub.ResolveStream(requests, timeout=None, wait_for_ready=wait)

        balanced = BalancedStreams(
            open_stream,
            lambda timeout: wait_ready(ch, timeout),
            streams=streams,
            max_in_flight=in_flight,
            read_ahead=bal.read_ahead,
            max_attempts=bal.max_attempts,
            ready_timeout=bal.ready_timeout,
            start_ready_timeout=bal.ready_timeout if targets.balanced else START_READY_TIMEOUT,
            rebalance=bal.rebalance,
            stream_idle=bal.stream_idle,
            stats=bal.stats,
            new_state=StreamRoutes,
            on_reply=_route_list,
            target=conn.target,
        )
        results = balanced.run(batches, prepare)
        try:
            for batch, (n, bad, good), reply, routes in results:
                yield batch, batch_answers(n, bad, good, reply, routes)
        finally:
            results.close()  # its streams ended before the channel closes


def resolve_dicts(
    target: str | Connection,
    flows: Iterable[dict],
    batch_size: int = DEFAULT_BATCH,
    timeout: float = 30.0,
    *,
    pmacct: bool = False,
    balancing: Balancing | None = None,
) -> Iterator[dict]:
    """Attribute flows through the service's streaming bulk RPC, keeping order.

    Batches are pipelined over ResolveStreams so the client never waits a
    round trip per batch; answers come as packed records and each route is
    sent once per stream. Several replicas: see :func:`resolve_flow_batches`.
    ``pmacct=True``: records in pmacct 1.7.7's JSON names and conventions
    (``attribution.pmacct.to_pmacct``, docs/pmacct.md).
    """
    if pmacct:
        yield from map(
            to_pmacct, resolve_dicts(target, flows, batch_size, timeout, balancing=balancing)
        )
        return
    it = iter(flows)
    chunks = iter(lambda: list(islice(it, batch_size)), [])
    for chunk, answers in resolve_flow_batches(target, chunks, balancing=balancing):
        for flow, answer in zip(chunk, answers, strict=True):
            yield {**flow, **answer} if isinstance(flow, dict) else answer
