"""How a client reaches the service: the address, TLS files and token (from
arguments, ``ATTRIBUTION_*`` variables or the service's own config file), and
the gRPC channel built from them.

Every command that talks to the service uses this, not only the bulk client
(:mod:`attribution.client`): ``reload``, ``explain``, the health check, the
IX and dry-run commands. It imports no protobuf messages, so those stay cheap.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping
from dataclasses import dataclass

import grpc

from attribution.answers import MAX_MESSAGE_BYTES
from attribution.balancing import parse_targets, service_config

DEFAULT_TARGET = "127.0.0.1:50051"


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
    follow: bool = False,
) -> grpc.Channel:
    """A channel to the service; a plain string is a plaintext HOST:PORT without token.

    A target naming several replicas (a list, ``dns:///``) gets round_robin
    with gRPC health checking: calls go only to replicas that say SERVING.
    ``keepalive`` seconds: ping each connection this often while calls are
    open, and drop it when a ping goes unanswered for half as long (a replica
    frozen or gone without closing its connections would hold a stream forever).
    ``follow``: for long-running clients, the TLS files are followed and renewed
    ones used from the next call on (``attribution.followed_channel``).
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

    def secure() -> grpc.Channel:
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

    if follow and (conn.ca or conn.cert):
        from attribution.followed_channel import FollowedChannel

        return FollowedChannel(secure, (conn.ca, conn.cert, conn.key), (conn.cert, conn.key))
    return secure()


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
