"""A small, explicit routing world for semantics tests (hand-fed, no sockets)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from attribution.config import parse_config
from ribd.attributes import AS_SEQUENCE, AS_SET, make_attributes
from ribd.events import EndOfRib, RoutesAnnounced, SessionState
from ribd.rib import Rib

EDGE1, EDGE2, EDGE3 = "127.0.0.11", "127.0.0.12", "127.0.0.13"

CONFIG = f"""
[service]
local_as = 64500
router_id = "127.0.0.1"
grpc_listen = "127.0.0.1:0"
fallback = ["edge2"]

[[routers]]
name = "edge1"
neighbor = "{EDGE1}"
exporters = ["127.0.1.1"]
fallback = ["edge3"]

[[routers]]
name = "edge2"
neighbor = "{EDGE2}"

[[routers]]
name = "edge3"
neighbor = "{EDGE3}"

[[overrides]]
name = "ix-peer-a"
exporter = "127.0.1.1"
in_if = 20
src_mac = "02:00:00:00:00:0a"
peer_as = 65010

[[overrides]]
name = "pni-b"
exporter = "127.0.1.1"
in_if = 30
peer_as = 65020
"""


def attrs(*segments, **kw):
    path = []
    for seg in segments:
        if isinstance(seg, list):
            path.append((AS_SET, tuple(seg)))
        else:
            path.append((AS_SEQUENCE, tuple(seg)))
    return make_attributes(tuple(path), next_hop="127.0.0.99", **kw)


def build_world(config_text: str = CONFIG) -> tuple[Rib, object]:
    config = parse_config(config_text, "test.toml")
    rib = Rib(router_names={r.neighbor: r.name for r in config.routers})
    V4, V6 = "ipv4 unicast", "ipv6 unicast"
    routes = [
        (EDGE1, V4, "0.0.0.0/0", attrs((65001,))),
        (EDGE1, V4, "10.0.0.0/8", attrs((65001, 65002))),
        (EDGE1, V4, "10.1.0.0/16", attrs((65001, 65003))),
        (EDGE1, V4, "10.1.2.0/24", attrs((65004, 65004, 65004, 65005, 65005))),
        (EDGE1, V4, "10.9.0.0/16", attrs((65001, 65006), [65007, 65008])),
        (EDGE1, V4, "10.8.0.0/16", attrs((65001,), [65009])),
        (EDGE1, V4, "192.168.0.0/16", attrs(local_pref=200)),
        (EDGE1, V4, "172.16.0.0/12", attrs((65010, 65011))),
        (EDGE1, V6, "2001:db8::/32", attrs((65001, 4200000001), communities=(65001 << 16 | 7,))),
        (EDGE1, V6, "2001:db8:1::/48", attrs((65012, 65013))),
        (EDGE2, V4, "10.0.0.0/8", attrs((65100, 65101))),
        (EDGE3, V4, "10.0.0.0/8", attrs((65300, 65301))),
    ]
    for neighbor in (EDGE1, EDGE2, EDGE3):
        rib.apply(SessionState(neighbor, "up"))
    for neighbor, family, prefix, a in routes:
        rib.apply(RoutesAnnounced(neighbor, family, (prefix,), None, a))
    for neighbor in (EDGE1, EDGE2, EDGE3):
        rib.apply(EndOfRib(neighbor, V4))
    return rib, config


def wait_for_lines(path: Path, n: int, timeout: float = 240.0) -> list[dict]:
    """The JSON lines of ``path`` once it has ``n`` of them (an output a process is
    still writing); generous by default: the box may be loaded."""
    done = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        done = text.count("\n")
        if done >= n:
            return [json.loads(x) for x in text.splitlines()]
        time.sleep(0.1)
    raise AssertionError(f"{path}: {done} lines, waited for {n}")


def external_service(
    tmp_path: Path, service_lines: str = "", extra: str = "", config: str = CONFIG
):
    """An in-process ``attribution.service.Service`` (not started) on ``config`` with
    an external ExaBGP, written to ``tmp_path/attribution.toml``; ``service_lines`` go
    into [service], ``extra`` at the end."""
    from attribution.service import Service

    bgp = f'[bgp]\nexabgp = "external"\nfeed_socket = "{tmp_path}/feed.sock"\n'
    text = config.replace("[[routers]]", bgp + "\n[[routers]]", 1)
    text = text.replace("[service]\n", "[service]\n" + service_lines, 1) + extra
    path = tmp_path / "attribution.toml"
    path.write_text(text)
    return Service(str(path))
