"""Serving the Attribution servicer over gRPC: transport, not meaning.

Handlers are registered by hand rather than through the generated code so an
RPC may return bytes the bulk path already encoded (attribution.wire) without a
second serialisation. TLS and tokens come from attribution.security; health
checking and server reflection are on, so ``grpcurl -plaintext HOST:PORT list``
works out of the box.
"""

from __future__ import annotations

import logging
from concurrent import futures
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from attribution.config_api import ApiSettings
from attribution.security import Guard
from attribution.tls_files import FollowedCertificates
from attribution.v1 import attribution_pb2 as pb

if TYPE_CHECKING:
    from attribution.grpc_service import AttributionServicer

log = logging.getLogger(__name__)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Attribution"].full_name


def _serialize(message: object) -> bytes:
    """Answers are messages, or wire bytes built by attribution.wire (bulk path)."""
    return message if type(message) is bytes else message.SerializeToString()  # type: ignore[attr-defined]


_HANDLER_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def add_servicer(servicer: AttributionServicer, server: grpc.Server) -> None:
    """Register the service like the generated code does, but let answers be bytes."""
    handlers = {}
    for method in pb.DESCRIPTOR.services_by_name["Attribution"].methods:
        make = _HANDLER_KINDS[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=getattr(pb, method.input_type.name).FromString,
            response_serializer=_serialize,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


def start_server(
    servicer: AttributionServicer,
    listen: str,
    max_message_bytes: int,
    api: ApiSettings | None = None,
    certificates: FollowedCertificates | None = None,
) -> tuple[grpc.Server, int]:
    """Start serving on ``listen`` (HOST:PORT, port 0 = any free); return (server, port).

    ``api`` (the ``[api]`` section) sets TLS, tokens and the limits on threads
    and streams (attribution.security); raises SecurityError for unusable
    TLS or token files, OSError when the address cannot be bound. With TLS the
    certificate files are followed (``certificates``, made here when not given:
    ``attribution.tls_files``): a renewed certificate is served from the next
    connection on.
    """
    api = api or ApiSettings()
    credentials = (certificates or FollowedCertificates(api)).credentials() if api.tls else None
    guard = Guard(api, servicer.config)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=api.workers, thread_name_prefix="grpc"),
        interceptors=(guard,),
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.so_reuseport", 0),
            # Clients ping every 20 s (at least 5 s apart) to find a replica that
            # froze or vanished without closing its connections (attribution.balancing);
            # grpcio's default answers pings on a quiet stream more often than every
            # 5 min with GOAWAY.
            ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ],
    )
    add_servicer(servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(servicer.health, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    try:
        port = (
            server.add_secure_port(listen, credentials)
            if credentials is not None
            else server.add_insecure_port(listen)
        )
    except RuntimeError as exc:  # grpcio raises instead of returning 0 on some failures
        raise OSError(f"cannot listen on {listen}: {exc}") from None
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    server.start()
    log.info(
        "gRPC listening on %s (port %d, %s, %s; %d workers, at most %d streams)",
        listen,
        port,
        ("mutual TLS" if api.tls_client_ca else "TLS") if credentials else "plaintext",
        "tokens required" if guard.tokens.enabled else "no tokens",
        api.workers,
        api.max_streams,
    )
    return server, port


__all__ = ["add_servicer", "start_server"]
