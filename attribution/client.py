"""Client side of the bulk path: flow dicts in, attributed dicts out, in order.

Records are validated and packed into columns here (the same checks as the
server, from attribution.resolver), so a bad record never costs a round trip
and never reaches the wire; its answer carries the error.

The target may name several replicas (``H1:P1,H2:P2`` or ``dns:///NAME:PORT``):
batches are then spread over them and a batch whose replica dies is answered
by another (attribution.balancing).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import TypeVar

import grpc

from attribution.answers import MAX_MESSAGE_BYTES
from attribution.balancing import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_READY_TIMEOUT,
    DEFAULT_REBALANCE,
    START_READY_TIMEOUT,
    BalancedStreams,
    parse_targets,
    service_config,
)
from attribution.convert import columns_to_answers, error_answer, route_summary_json
from attribution.failover import FailoverStats
from attribution.pmacct import to_pmacct
from attribution.records import row_next_hops, rows_to_columns
from attribution.v1 import attribution_pb2 as pb
from attribution.v1 import attribution_pb2_grpc as pb_grpc

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_BATCH = 4096


class ClientSettingsError(ValueError):
    """A connection setting or TLS file the client cannot use."""


@dataclass(frozen=True, slots=True)
class Connection:
    """How to reach the service: address, TLS files and bearer token.

    TLS is on when any of ``ca``, ``cert``, ``key`` is set (``ca`` empty:
    the system's roots); ``cert`` and ``key`` give a client certificate
    for mutual TLS. The token is sent as ``authorization: Bearer TOKEN``.
    ``target`` is one HOST:PORT, a comma-separated list of replicas or
    ``dns:///NAME:PORT``; ``server_name`` is the name the server certificate
    is checked against when it is not the target's host (a list: its first).
    """

    target: str = DEFAULT_TARGET
    token: str = ""
    ca: str = ""
    cert: str = ""
    key: str = ""
    tls: bool = False
    server_name: str = ""

    def __post_init__(self) -> None:
        if bool(self.cert) != bool(self.key):
            raise ClientSettingsError("a client certificate needs both --cert and --key")
        if self.ca or self.cert:
            object.__setattr__(self, "tls", True)


ENV = {
    "target": "ATTRIBUTION_TARGET",
    "token": "ATTRIBUTION_TOKEN",
    "ca": "ATTRIBUTION_CA",
    "cert": "ATTRIBUTION_CERT",
    "key": "ATTRIBUTION_KEY",
    "server_name": "ATTRIBUTION_SERVER_NAME",
}


def connection_from(
    *,
    target: str | None = None,
    token: str | None = None,
    ca: str | None = None,
    cert: str | None = None,
    key: str | None = None,
    config_path: str | None = None,
    env: Mapping[str, str] | None = None,
    server_name: str | None = None,
) -> Connection:
    """Each setting from the argument, else its ``ATTRIBUTION_*`` variable in
    ``env``, else the service's config file, else the default.

    From the config: the target is ``[service] grpc_listen`` (a wildcard host
    becomes loopback); with ``[api] tls_cert`` TLS is on, trusting
    ``tls_client_ca`` if set (else ``tls_cert`` itself, for a self-signed
    certificate); under mutual TLS the service's own certificate and key are
    the client's; the token is the admin token file's first token, else the
    read token file's, whichever this user can read.
    Raises ConfigError for an unreadable config file.
    """
    given = {"target": target, "token": token, "ca": ca, "cert": cert, "key": key}
    given["server_name"] = server_name
    env = env if env is not None else {}
    values = {k: v if v else env.get(ENV[k], "") for k, v in given.items()}
    if config_path:
        from attribution.config import load_config

        config = load_config(config_path)
        api = config.api
        from_config = {
            "target": _loopback_target(config.grpc_listen),
            "token": _first_token(api.admin_token_file) or _first_token(api.read_token_file),
            "ca": (api.tls_client_ca or api.tls_cert) if api.tls else "",
            "cert": api.tls_cert if api.tls_client_ca else "",
            "key": api.tls_key if api.tls_client_ca else "",
            "server_name": "",
        }
        if values["cert"] or values["key"]:  # a client certificate given: not the service's
            from_config["cert"] = from_config["key"] = ""
        values = {k: v or from_config[k] for k, v in values.items()}
    values["target"] = values["target"] or DEFAULT_TARGET
    return Connection(**values)


def _loopback_target(listen: str) -> str:
    host, _, port = listen.rpartition(":")
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host in ("::", "[::]"):
        host = "[::1]"
    return f"{host}:{port}"


def _first_token(path: str) -> str:
    if not path:
        return ""
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                token = line.strip()
                if token and not token.startswith("#"):
                    return token
    except (OSError, UnicodeDecodeError):
        pass  # not ours to read: the caller gives a token another way
    return ""


def _read(path: str, what: str) -> bytes:
    """A PEM file, checked here: gRPC would only fail the handshake, saying less."""
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
    except OSError as exc:
        raise ClientSettingsError(f"{what} {path}: cannot read: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise ClientSettingsError(f"{what} {path}: not a PEM file")
    return data


class _Bearer(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds the token to plaintext calls (gRPC sends call credentials only over TLS)."""

    def __init__(self, token: str) -> None:
        self.header = ("authorization", f"Bearer {token}")

    def _details(self, d: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _CallDetails(
            d.method,
            d.timeout,
            (*(d.metadata or ()), self.header),
            d.credentials,
            d.wait_for_ready,
            d.compression,
        )

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._details(details), requests)


class _CallDetails(
    namedtuple(
        "_CallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,
):
    pass


# Reconnect backoff of our channels: gRPC's default (1 s, x1.6, up to 120 s) let
# a client reach a restarted service up to two minutes after it was back; the
# relays retry every 0.05-2 s, and so do we. (The connect timeout stays gRPC's.)
RECONNECT_INITIAL_MS, RECONNECT_MAX_MS = 100, 2000


def channel(
    target: str | Connection,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    keepalive: float = 0.0,
) -> grpc.Channel:
    """A channel to the service; a plain string is a plaintext HOST:PORT without token.

    A target naming several replicas (a list, ``dns:///``) gets round_robin
    with gRPC health checking: calls go only to replicas that say SERVING.
    ``keepalive`` seconds: ping each connection this often while calls are
    open, and drop it when a ping goes unanswered for half as long (a replica
    frozen or gone without closing its connections would hold a stream forever).
    """
    conn = target if isinstance(target, Connection) else Connection(target)
    try:
        targets = parse_targets(conn.target)
    except ValueError as exc:
        raise ClientSettingsError(f"target {exc}") from None
    options: list[tuple[str, object]] = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.initial_reconnect_backoff_ms", RECONNECT_INITIAL_MS),
        ("grpc.max_reconnect_backoff_ms", RECONNECT_MAX_MS),
    ]
    if targets.balanced:
        options.append(("grpc.service_config", service_config()))
    if keepalive > 0:
        options += [
            ("grpc.keepalive_time_ms", int(keepalive * 1000)),
            ("grpc.keepalive_timeout_ms", int(keepalive * 500)),
            ("grpc.http2.ping_timeout_ms", int(keepalive * 500)),  # else 60 s in grpcio 1.6x+
            ("grpc.http2.max_pings_without_data", 0),
        ]
    if not conn.tls:
        ch = grpc.insecure_channel(targets.grpc_target, options=options)
        return grpc.intercept_channel(ch, _Bearer(conn.token)) if conn.token else ch
    server_name = conn.server_name or targets.authority
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(conn.ca, "CA") if conn.ca else None,
        private_key=_read(conn.key, "client key") if conn.key else None,
        certificate_chain=_read(conn.cert, "client certificate") if conn.cert else None,
    )
    if conn.token:
        credentials = grpc.composite_channel_credentials(
            credentials, grpc.access_token_call_credentials(conn.token)
        )
    return grpc.secure_channel(targets.grpc_target, credentials, options=options)


def replica_count(conn: Connection) -> int:
    """How many replicas the target names (a ``dns:///`` name: its addresses now; 0: unknown)."""
    try:
        return len(replica_connections(conn))
    except ClientSettingsError:
        return 0


def replica_connections(conn: Connection) -> list[Connection]:
    """One connection per replica the target names, for calls every replica must get
    (``reload``), where a balanced channel would reach only one.

    A list gives its addresses; a ``dns:///NAME:PORT`` the addresses NAME has now.
    Each keeps the token and TLS settings; TLS checks every replica against the
    list's one name (``--server-name``, else the first entry's host or NAME).
    Raises ClientSettingsError for a bad target or a name that does not resolve.
    """
    from dataclasses import replace

    try:
        targets = parse_targets(conn.target)
    except ValueError as exc:
        raise ClientSettingsError(f"target {exc}") from None
    if not targets.balanced:
        return [conn]
    text = targets.grpc_target
    if text.startswith(("ipv4:", "ipv6:")):
        addresses = text.split(":", 1)[1].split(",")
        authority = targets.authority
    elif text.startswith(("unix:", "unix-abstract:")):
        scheme, paths = text.split(":", 1)  # "unix:/a,/b": the scheme once, for every path
        return [replace(conn, target=f"{scheme}:{p}") for p in paths.split(",")]
    else:  # dns:[//authority]/NAME:PORT
        import socket

        name = text.split("///", 1)[-1].lstrip("/")
        host, _, port = name.rpartition(":")
        host = host.strip("[]")
        try:
            infos = socket.getaddrinfo(host, int(port or 443), type=socket.SOCK_STREAM)
        except (OSError, ValueError) as exc:
            raise ClientSettingsError(
                f"target {conn.target}: {host} does not resolve: {exc}"
            ) from None
        found = dict.fromkeys(info[4][0] for info in infos)
        addresses = [f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in found]
        authority = host
    name = conn.server_name or (authority if conn.tls else "")
    return [replace(conn, target=a, server_name=name) for a in addresses]


def wait_ready(ch: grpc.Channel, timeout: float) -> bool:
    """True once the channel has a ready replica (with health checking: one SERVING).

    One health check that waits for a ready connection (round_robin with health
    checking only picks SERVING replicas). Not grpc.channel_ready_future: its
    polling thread outlives it and trips over the channel's close.
    """
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        reply = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(), timeout=max(timeout, 0.05), wait_for_ready=True
        )
    except grpc.RpcError:
        return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


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

    with channel(conn, keepalive=bal.keepalive) as ch:
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
