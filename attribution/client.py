"""Client side of the bulk path: flow dicts in, attributed dicts out, in order.

Records are validated and packed into columns here (the same checks as the
server, from attribution.resolver), so a bad record never costs a round trip
and never reaches the wire; its answer carries the error.
"""

from __future__ import annotations

from collections import deque, namedtuple
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice

import grpc

from attribution.config import MAX_MESSAGE_BYTES
from attribution.convert import columns_to_answers, error_answer, route_summary_json
from attribution.pmacct import to_pmacct
from attribution.resolver import row_next_hops, rows_to_columns
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
    """

    target: str = DEFAULT_TARGET
    token: str = ""
    ca: str = ""
    cert: str = ""
    key: str = ""
    tls: bool = False

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


def channel(target: str | Connection, max_message_bytes: int = MAX_MESSAGE_BYTES) -> grpc.Channel:
    """A channel to the service; a plain string is a plaintext HOST:PORT without token."""
    conn = target if isinstance(target, Connection) else Connection(target)
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
    if not conn.tls:
        ch = grpc.insecure_channel(conn.target, options=options)
        return grpc.intercept_channel(ch, _Bearer(conn.token)) if conn.token else ch
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(conn.ca, "CA") if conn.ca else None,
        private_key=_read(conn.key, "client key") if conn.key else None,
        certificate_chain=_read(conn.cert, "client certificate") if conn.cert else None,
    )
    if conn.token:
        credentials = grpc.composite_channel_credentials(
            credentials, grpc.access_token_call_credentials(conn.token)
        )
    return grpc.secure_channel(conn.target, credentials, options=options)


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
            in_if=in_if if any(in_if) else (),
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


def merge_answers(
    flows: list,
    bad: dict,
    good: list[int],
    reply: pb.AttributionBatch,
    route_json: list[dict] | None = None,
) -> list:
    answers: list = [None] * len(flows)
    for i, (code, message) in bad.items():
        answers[i] = error_answer(code, message)
    resolved = columns_to_answers(reply.columns, reply.errors, route_json)
    for i, answer in zip(good, resolved, strict=True):
        answers[i] = answer
    out = []
    for flow, answer in zip(flows, answers, strict=True):
        out.append({**flow, **answer} if isinstance(flow, dict) else answer)
    return out


def resolve_dicts(
    target: str | Connection,
    flows: Iterable[dict],
    batch_size: int = DEFAULT_BATCH,
    timeout: float = 30.0,
    *,
    pmacct: bool = False,
) -> Iterator[dict]:
    """Attribute flows through the service's streaming bulk RPC, keeping order.

    Batches are pipelined over one ResolveStream so the client never waits a
    round trip per batch; answers come as packed records and each route is
    sent once per stream. ``pmacct=True``: records in pmacct 1.7.7's JSON
    names and conventions (``attribution.pmacct.to_pmacct``, docs/pmacct.md).
    """
    if pmacct:
        yield from map(to_pmacct, resolve_dicts(target, flows, batch_size, timeout))
        return
    with channel(target) as ch:
        stub = pb_grpc.AttributionStub(ch)
        pending: deque[tuple[list, dict, list[int]]] = deque()
        it = iter(flows)

        def requests() -> Iterator[pb.FlowBatch]:
            batch_id = 0
            while True:
                chunk = list(islice(it, batch_size))
                if not chunk:
                    return
                request, bad, good = columns_request(
                    chunk, batch_id, packed=True, stream_routes=True
                )
                pending.append((chunk, bad, good))
                batch_id += 1
                yield request

        routes = StreamRoutes()
        for reply in stub.ResolveStream(requests(), timeout=None):
            chunk, bad, good = pending.popleft()
            if reply.batch_error:
                for flow in chunk:
                    yield {**flow, **error_answer("bad_batch", reply.batch_error)}
                continue
            yield from merge_answers(chunk, bad, good, reply, routes.update(reply.columns))
