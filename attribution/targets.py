"""What ``--target`` / ``ATTRIBUTION_TARGET`` names, turned into a gRPC channel target.

One replica (``HOST:PORT``), a list (``H1:P1,H2:P2``: resolved once, one
address family) or a name gRPC re-resolves (``dns:///NAME:PORT``). Split out of
``attribution.balancing`` (which re-exports these names): parsing a target
is needed by every command, the streams only by bulk ones.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Targets:
    """What ``--target``/``ATTRIBUTION_TARGET`` named, as gRPC wants it.

    ``grpc_target`` is the channel's target; ``count`` how many replicas it
    names (0: unknown until the name resolves); ``authority`` the name TLS
    checks the certificate against when the target has no single host
    ("" : gRPC's own choice); ``balanced``: several replicas, or a name that
    may resolve to several, so round_robin with health checking applies.
    """

    grpc_target: str
    count: int
    authority: str = ""
    balanced: bool = False


def parse_targets(text: str) -> Targets:
    """``HOST:PORT``, ``H1:P1,H2:P2,...`` or ``dns:///NAME:PORT``.

    A list is resolved once, here (a name in it becomes its addresses): for
    replicas whose addresses change use ``dns:///``, which gRPC re-resolves.
    Raises ValueError naming the entry that is wrong.
    """
    text = text.strip()
    if not text:
        raise ValueError("empty target")
    if text.startswith("dns:"):
        return Targets(text, 0, balanced=True)
    if ":" in text and text.split(":", 1)[0] in ("ipv4", "ipv6", "unix", "unix-abstract"):
        return Targets(text, text.count(",") + 1, balanced="," in text)
    entries = [e.strip() for e in text.split(",")]
    if len(entries) == 1:
        _split(entries[0])  # checked, used as given
        return Targets(entries[0], 1)
    addresses: list[tuple[str, int]] = []
    hosts = []
    for entry in entries:
        host, port = _split(entry)
        hosts.append(host)
        addresses += _resolve(host, port, entry)
    v4 = [f"{a}:{p}" for a, p in addresses if ":" not in a]
    v6 = [f"[{a}]:{p}" for a, p in addresses if ":" in a]
    if v4 and v6:
        raise ValueError(
            f"{text}: mixes IPv4 and IPv6 replicas; gRPC takes one family per list "
            "(give one family, or a dns:///NAME:PORT)"
        )
    unique = list(dict.fromkeys(v4 or v6))
    grpc_target = ("ipv4:" if v4 else "ipv6:") + ",".join(unique)
    # One name for TLS to check every replica's certificate against: the first
    # entry's host (the certificate must name it; --server-name overrides).
    return Targets(grpc_target, len(unique), authority=hosts[0], balanced=True)


def _split(entry: str) -> tuple[str, int]:
    host, sep, port = entry.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{entry!r}: not HOST:PORT")
    return host.strip("[]"), int(port)


def _resolve(host: str, port: int, entry: str) -> list[tuple[str, int]]:
    try:
        ipaddress.ip_address(host)
        return [(host, port)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ValueError(f"{entry!r}: cannot resolve {host}: {exc}") from None
    return list(dict.fromkeys((str(info[4][0]), port) for info in infos))


def service_config() -> str:
    """round_robin over the replicas, each only while its gRPC health says SERVING."""
    return json.dumps(
        {
            "loadBalancingConfig": [{"round_robin": {}}],
            "healthCheckConfig": {"serviceName": ""},
        }
    )
