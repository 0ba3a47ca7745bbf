"""Valid inputs the fuzzer mutates: ExaBGP 5 JSON lines of each kind, flow records, a config.

Built in, plus the real ExaBGP captures in ../shared/data when present
(``seed_lines``). Kept apart from ``bench.fuzz`` (the targets and the
command) and ``bench.fuzz_mutate`` (how an input is damaged).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "exabgp-samples"
PEERS = ("127.0.0.1", "2001:db8::1")

_NH = {"local": "127.0.0.2", "peer": "127.0.0.1"}
_ASN = {"local": 65000, "peer": 65001}
_ATTRS5 = {
    "origin": "igp",
    "as-path": {
        "0": {"element": "as-sequence", "value": [65001, 65002]},
        "1": {"element": "as-set", "value": [65010, 65011]},
    },
    "confederation-path": [],
    "med": 100,
    "local-preference": 200,
    "atomic-aggregate": True,
    "aggregator": "65001:10.0.0.1",
    "community": [[65001, 100], [65535, 65281]],
    "originator-id": "10.0.0.1",
    "cluster-list": ["10.0.0.2", "10.0.0.3"],
    "extended-community": [{"value": 842127122628708, "string": "target:65001:100"}],
    "large-community": [[65001, 1, 2]],
}


def _line(kind: str, neighbor: dict, **top: Any) -> bytes:
    n = {"address": _NH, "asn": _ASN, "router-id": "127.0.0.2"} | neighbor
    msg = {"exabgp": "5.0.0", "time": 1795635285.4, "host": "vm", "pid": 1, "ppid": 1}
    return orjson.dumps(msg | {"counter": 1, "type": kind, "neighbor": n} | top)


SEED_LINES: list[bytes] = [
    _line("state", {"state": "connected"}),
    _line("state", {"state": "up"}),
    _line(
        "update",
        {
            "direction": "receive",
            "message": {
                "update": {
                    "attribute": _ATTRS5,
                    "announce": {
                        "ipv4 unicast": {"127.0.0.1": [{"nlri": "192.0.2.0/24"}]},
                        "ipv6 unicast": {
                            "2001:db8::1": [{"nlri": "2001:db8:1::/48"}],
                            "fe80::1": [{"nlri": "2001:db8:1::/48"}],
                        },
                    },
                }
            },
        },
    ),
    _line(
        "update",
        {
            "message": {
                "update": {
                    "attribute": {"origin": "egp", "as-path": [65001, 65003], "as-set": [7, 8]},
                    "announce": {
                        "ipv4 unicast": {
                            "127.0.0.1": [
                                {"nlri": "198.51.100.0/24", "path-information": "0.0.0.1"},
                                {"nlri": "198.51.100.0/24", "path-information": 2},
                            ]
                        }
                    },
                }
            }
        },
    ),
    _line(
        "update",
        {"message": {"update": {"withdraw": {"ipv4 unicast": [{"nlri": "192.0.2.0/24"}]}}}},
    ),
    _line("update", {"message": {"eor": {"afi": "ipv4", "safi": "unicast"}}}),
    _line(
        "notification",
        {"direction": "receive", "notification": {"code": 6, "subcode": 2, "message": "bye"}},
    ),
    _line("state", {"state": "down", "reason": "peer reset"}),
    _line("keepalive", {"direction": "receive"}),
    _line("refresh", {"route-refresh": {"afi": "ipv4", "safi": "unicast", "subtype": "begin"}}),
    _line("refresh", {"route-refresh": {"afi": "ipv6", "safi": "unicast", "subtype": "end"}}),
    orjson.dumps({"exabgp": "5.0.0", "type": "notification", "notification": "shutdown"}),
]

SEED_FLOWS: list[dict] = [
    {
        "exporter": "127.0.1.1",
        "src_addr": "10.1.1.1",
        "dst_addr": "10.2.2.2",
        "in_if": 20,
        "out_if": 3,
        "src_mac": "02:00:00:00:00:0a",
        "bytes": 1500,
        "packets": 1,
        "sampling_rate": 1000,
    },
    {
        "exporter": "127.0.0.11",
        "src_addr": "2001:db8::9",
        "dst_addr": "2001:db8:1::1",
        "next_hop": "2001:db8::1",
    },
    {"exporter": "192.0.2.99", "src_addr": "10.0.0.1", "dst_addr": "8.8.8.8", "in_if": 30},
]

FLOW_CONFIG = """
[service]
local_as = 64500
router_id = "127.0.0.1"
grpc_listen = "127.0.0.1:0"

[[routers]]
name = "edge1"
neighbor = "127.0.0.11"
exporters = ["127.0.1.1"]

[[overrides]]
name = "ix"
exporter = "127.0.1.1"
in_if = 20
src_mac = "02:00:00:00:00:0a"
peer_as = 65010
"""


def seed_lines() -> list[bytes]:
    """Built-in lines, plus the real captures when ../shared/data is here."""
    lines = list(SEED_LINES)
    if SAMPLES.is_dir():
        for path in sorted(SAMPLES.glob("*.jsonl")):
            lines += [x for x in path.read_bytes().splitlines() if x.strip()]
    return lines
