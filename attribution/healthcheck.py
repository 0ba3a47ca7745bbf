"""`attribution-health`: one gRPC health check, for container and Kubernetes probes.

Why not Kubernetes' built-in ``grpc:`` probe or ``grpc_health_probe``: the kubelet's
gRPC probe speaks plaintext only, so it cannot check an API that serves TLS (let alone
mutual TLS), and ``grpc_health_probe`` is a separate binary the image would have to
fetch. This command is installed with the package and finds the service as the client
commands do (``--target``/``--ca``/``--cert``/``--key``, else ``ATTRIBUTION_*``, else
``--config``, as ``attribution.client.connection_from`` reads it; ``--server-name`` or
``ATTRIBUTION_SERVER_NAME`` when the certificate does not name the target's host).
Health needs no token. It answers with its exit status:

* 0: SERVING;
* 1: NOT_SERVING or UNKNOWN (up, but not ready: ExaBGP down, or routers not converged);
* 2: no answer (refused, timed out, TLS failure, unknown service, unusable settings).

``--liveness`` turns 1 into 0: a service that answers is alive, even while its routers
converge or while it restarts its ExaBGP. Restarting it then (what a failed liveness
probe does) would only throw its RIB away.

One line on stdout says which, so ``docker inspect`` and ``kubectl describe`` show why.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING, NOT_SERVING, NO_ANSWER = 0, 1, 2
DEFAULT_TARGET = "127.0.0.1:50051"  # attribution.client's default
ENV = {"target": "ATTRIBUTION_TARGET", "ca": "ATTRIBUTION_CA"}
ENV |= {"cert": "ATTRIBUTION_CERT", "key": "ATTRIBUTION_KEY"}


@dataclass(frozen=True, slots=True)
class Settings:
    target: str
    ca: str = ""
    cert: str = ""
    key: str = ""

    @property
    def tls(self) -> bool:
        return bool(self.ca or self.cert)


def settings(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    """Flag, else ``ATTRIBUTION_*`` variable, else (with ``--config``) the service's config.

    Without ``--config`` this stays away from ``attribution.client``, whose imports
    (numpy, the RIB) would triple the CPU time of a probe that runs every few seconds.
    """
    given = {k: getattr(args, k) or env.get(var, "") for k, var in ENV.items()}
    if args.config:
        from attribution.connection import connection_from

        conn = connection_from(**given, config_path=args.config, env={})
        return Settings(conn.target, conn.ca, conn.cert, conn.key)
    if bool(given["cert"]) != bool(given["key"]):
        raise ValueError("a client certificate needs both --cert and --key")
    return Settings(given.pop("target") or DEFAULT_TARGET, **given)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="attribution-health",
        description="Ask the service's gRPC health service; exit 0 when SERVING, "
        "1 when NOT_SERVING, 2 without an answer.",
    )
    p.add_argument("--target", metavar="HOST:PORT", help="the gRPC API ($ATTRIBUTION_TARGET)")
    p.add_argument("--ca", metavar="FILE", help="CA to trust: turns TLS on ($ATTRIBUTION_CA)")
    p.add_argument("--cert", metavar="FILE", help="client certificate ($ATTRIBUTION_CERT)")
    p.add_argument("--key", metavar="FILE", help="its private key ($ATTRIBUTION_KEY)")
    p.add_argument(
        "--config", metavar="FILE", help="take what is not given from the service's config"
    )
    p.add_argument(
        "--server-name",
        default=os.environ.get("ATTRIBUTION_SERVER_NAME", ""),
        metavar="NAME",
        help="name to check the server's certificate against, when the target's host "
        "is not in it, e.g. a probe connecting to 127.0.0.1 ($ATTRIBUTION_SERVER_NAME)",
    )
    p.add_argument(
        "--service",
        default="",
        help="health service name (default: the whole server, which follows the health rule)",
    )
    p.add_argument(
        "--liveness",
        action="store_true",
        help="exit 0 for any answer, NOT_SERVING included (a liveness probe)",
    )
    p.add_argument("--timeout", type=float, default=5.0, help="seconds (default %(default)s)")
    return p


def open_channel(conn: Settings, server_name: str = "") -> grpc.Channel:
    """Plaintext, or TLS when the connection says so (no token: health is open)."""
    if not conn.tls:
        return grpc.insecure_channel(conn.target)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=Path(conn.ca).read_bytes() if conn.ca else None,
        private_key=Path(conn.key).read_bytes() if conn.key else None,
        certificate_chain=Path(conn.cert).read_bytes() if conn.cert else None,
    )
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    return grpc.secure_channel(conn.target, credentials, options=options)


def check(args: argparse.Namespace, env: dict[str, str] | None = None) -> tuple[int, str]:
    """(exit status, one-line reason) of one Health/Check call."""
    target = args.target or "the service"
    try:
        conn = settings(args, os.environ if env is None else env)
        target = conn.target
        with open_channel(conn, args.server_name) as chan:
            reply = health_pb2_grpc.HealthStub(chan).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
    except (OSError, ValueError) as exc:  # ConfigError is a ValueError
        return NO_ANSWER, f"{target}: {exc}"
    except grpc.RpcError as exc:
        return NO_ANSWER, f"{target}: {exc.code().name}: {exc.details()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    code = SERVING if reply.status == health_pb2.HealthCheckResponse.SERVING else NOT_SERVING
    return code, f"{target}: {status}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code, line = check(args)
    print(line)
    if args.liveness and code == NOT_SERVING:
        return SERVING
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
