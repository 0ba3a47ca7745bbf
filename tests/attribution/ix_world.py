"""A hand-fed IX world: edge1's RIB with routes whose next hops are IX LAN
addresses, a neighbor table file, a PeeringDB file, and the MAC-qualified
override list an operator would have had to write by hand for the same peers."""

from __future__ import annotations

from pathlib import Path

import orjson

from attribution.config import parse_config
from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.events import RoutesAnnounced
from tests.attribution.helpers import CONFIG, EDGE1, build_world

V4, V6 = "ipv4 unicast", "ipv6 unicast"
EXPORTER, PORT = "127.0.1.1", 40
MAC_A, MAC_B, MAC_CONFLICT, MAC_PDB, MAC_MANUAL = (
    "02:00:00:00:01:01",
    "02:00:00:00:01:02",
    "02:00:00:00:01:03",
    "02:00:00:00:01:05",
    "02:00:00:00:01:06",
)
# (prefix, AS path, next hop): peer A has two addresses (v4 and v6), one MAC;
# the conflict MAC holds two addresses of two different peers.
IX_ROUTES = [
    ("198.51.100.0/24", (65101, 65111), "10.99.0.11"),
    ("2001:db8:aa::/48", (65101,), "2001:db8:99::11"),
    ("203.0.113.0/24", (65102,), "10.99.0.12"),
    ("192.0.2.0/25", (65103,), "10.99.0.13"),
    ("192.0.2.128/25", (65104,), "10.99.0.14"),
    ("100.64.0.0/24", (65106,), "10.99.0.16"),
]
NEIGHBORS = [
    {"dst": "10.99.0.11", "dev": "ix0", "lladdr": MAC_A, "state": ["REACHABLE"]},
    {"dst": "2001:db8:99::11", "dev": "ix0", "lladdr": MAC_A, "state": ["STALE"]},
    {"dst": "10.99.0.12", "dev": "ix0", "lladdr": MAC_B, "state": ["REACHABLE"]},
    {"dst": "10.99.0.13", "dev": "ix0", "lladdr": MAC_CONFLICT, "state": ["REACHABLE"]},
    {"dst": "10.99.0.14", "dev": "ix0", "lladdr": MAC_CONFLICT, "state": ["REACHABLE"]},
    {"dst": "10.99.0.15", "dev": "ix0", "lladdr": MAC_PDB, "state": ["REACHABLE"]},
    {"dst": "10.99.0.16", "dev": "ix0", "lladdr": MAC_MANUAL, "state": ["REACHABLE"]},
    {"dst": "10.99.0.17", "dev": "ix0", "state": ["FAILED"]},
    {"dst": "192.0.2.200", "dev": "eth0", "lladdr": "02:00:00:00:09:09", "state": ["STALE"]},
]
PEERINGDB = {"data": [{"asn": 65105, "ipaddr4": "10.99.0.15", "ipaddr6": None}]}
# What each MAC's flows must answer, as a hand-written override list would
# say it (the conflicting MAC is left out: nobody can say).
EXPECTED = {MAC_A: 65101, MAC_B: 65102, MAC_PDB: 65105, MAC_MANUAL: 65999}


def ix_config_text(neighbors: Path, peeringdb: Path | None = None, extra: str = "") -> str:
    pdb = f'peeringdb_file = "{peeringdb}"\n' if peeringdb else ""
    return (
        CONFIG
        + f"""
[[overrides]]
name = "manual-on-ix"
exporter = "{EXPORTER}"
in_if = {PORT}
src_mac = "{MAC_MANUAL}"
peer_as = 65999

[[ix]]
name = "ix-test"
router = "edge1"
in_if = [{PORT}]
prefixes = ["10.99.0.0/24", "2001:db8:99::/64"]
neighbors_file = "{neighbors}"
refresh_interval = 1
{pdb}{extra}"""
    )


def hand_written_text() -> str:
    rules = "".join(
        f"""
[[overrides]]
name = "hand-{i}"
exporter = "{EXPORTER}"
in_if = {PORT}
src_mac = "{mac}"
peer_as = {asn}
"""
        for i, (mac, asn) in enumerate(EXPECTED.items())
    )
    return CONFIG + rules


def write_inputs(tmp: Path) -> tuple[Path, Path]:
    neighbors, pdb = tmp / "neigh.json", tmp / "peeringdb.json"
    neighbors.write_bytes(orjson.dumps(NEIGHBORS))
    pdb.write_bytes(orjson.dumps(PEERINGDB))
    return neighbors, pdb


def build_ix_world(config_text: str):
    rib, _ = build_world()
    for prefix, path, nh in IX_ROUTES:
        family = V6 if ":" in prefix else V4
        a = make_attributes(((AS_SEQUENCE, path),), next_hop=nh)
        rib.apply(RoutesAnnounced(EDGE1, family, (prefix,), None, a))
    return rib, parse_config(config_text, "ix.toml")
