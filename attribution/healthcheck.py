"""`attribution-health`: one gRPC health check, for container and Kubernetes probes.

Why not Kubernetes' built-in ``grpc:`` probe or ``grpc_health_probe``: the kubelet's
gRPC probe speaks plaintext only, so it cannot check an API that serves TLS (let alone
mutual TLS), and ``grpc_health_probe`` is a separate binary the image would have to
fetch. This command is installed with the package, reads the same environment as the
CLI client commands (``ATTRIBUTION_TARGET``, ``ATTRIBUTION_CA``, ``ATTRIBUTION_CERT``,
``ATTRIBUTION_KEY``, ``ATTRIBUTION_TOKEN``) and answers with its exit status:

* 0: SERVING;
* 1: NOT_SERVING or UNKNOWN (up, but not ready: ExaBGP down, or routers not converged);
* 2: no answer (refused, timed out, TLS failure, unknown service).

``--liveness`` turns 1 into 0: a service that answers is alive, even while its routers
converge or while it restarts its ExaBGP. Restarting it then (what a failed liveness
probe does) would only throw its RIB away.

One line on stdout says which, so ``docker inspect`` and ``kubectl describe`` show why.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

DEFAULT_TARGET = "127.0.0.1:50051"
SERVING, NOT_SERVING, NO_ANSWER = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="attribution-health",
        description="Ask the service's gRPC health service; exit 0 when SERVING.",
    )
    p.add_argument(
        "--target",
        default=env("ATTRIBUTION_TARGET", DEFAULT_TARGET),
        metavar="HOST:PORT",
        help="the gRPC API (env ATTRIBUTION_TARGET; default %(default)s)",
    )
    p.add_argument(
        "--ca",
        default=env("ATTRIBUTION_CA", ""),
        metavar="FILE",
        help="CA that signed the server's certificate: use TLS (env ATTRIBUTION_CA)",
    )
    p.add_argument(
        "--cert",
        default=env("ATTRIBUTION_CERT", ""),
        metavar="FILE",
        help="client certificate for mutual TLS (env ATTRIBUTION_CERT)",
    )
    p.add_argument(
        "--key",
        default=env("ATTRIBUTION_KEY", ""),
        metavar="FILE",
        help="client key for mutual TLS (env ATTRIBUTION_KEY)",
    )
    p.add_argument(
        "--server-name",
        default="",
        metavar="NAME",
        help="name to check the server's certificate against, when the target's host "
        "is not in it (e.g. a probe connecting to localhost)",
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


def open_channel(args: argparse.Namespace) -> grpc.Channel:
    """A plaintext channel, or TLS when a CA or a client certificate is given."""
    if not (args.ca or args.cert or args.key):
        return grpc.insecure_channel(args.target)
    if bool(args.cert) != bool(args.key):
        raise ValueError("--cert and --key go together")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=Path(args.ca).read_bytes() if args.ca else None,
        private_key=Path(args.key).read_bytes() if args.key else None,
        certificate_chain=Path(args.cert).read_bytes() if args.cert else None,
    )
    options = [("grpc.ssl_target_name_override", args.server_name)] if args.server_name else []
    return grpc.secure_channel(args.target, credentials, options=options)


def check(args: argparse.Namespace) -> tuple[int, str]:
    """(exit status, one-line reason) of one Health/Check call."""
    token = os.environ.get("ATTRIBUTION_TOKEN", "")
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    try:
        with open_channel(args) as chan:
            stub = health_pb2_grpc.HealthStub(chan)
            reply = stub.Check(
                health_pb2.HealthCheckRequest(service=args.service),
                timeout=args.timeout,
                metadata=metadata,
            )
    except (OSError, ValueError) as exc:
        return NO_ANSWER, f"{args.target}: {exc}"
    except grpc.RpcError as exc:
        return NO_ANSWER, f"{args.target}: {exc.code().name}: {exc.details()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    code = SERVING if reply.status == health_pb2.HealthCheckResponse.SERVING else NOT_SERVING
    return code, f"{args.target}: {status}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code, line = check(args)
    print(line)
    if args.liveness and code == NOT_SERVING:
        return SERVING
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
