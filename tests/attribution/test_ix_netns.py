"""IX learning with real parts: a bridged LAN of namespaces, the kernel's ARP/ND
entries read with `ip -j neigh` and over SNMP (net-snmp's snmpd in the router
namespace, read with pysnmp), routes with the peers' next hops over a real BGP
session (ExaBGP). The answers must equal what a hand-written MAC-qualified
override list gives, and a peer that changes its MAC must be followed.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import orjson
import pytest

from attribution.answers import IX_MAC, SRC_ASYMMETRIC, SRC_IX_MAC_UNKNOWN
from attribution.config import parse_config, parse_mac
from attribution.ix import IxLearner
from attribution.ix_snmp import walk_neighbors
from attribution.resolver import Resolver, pack_address
from ribd.speaker import BgpTestbed, Route, wait_until
from tests.attribution.ixlan import LAN4, LAN6, IxLan, in_netns, netns_available

pytestmark = pytest.mark.bgp

R1, EXPORTER, PORT = "127.0.0.2", "127.0.1.9", 7
SNMP_PORT = 1161
PEERS = {  # name: (MAC, host, AS); p4 announces nothing: PeeringDB knows it
    "p1": ("02:99:00:00:01:01", 11, 65101),
    "p2": ("02:99:00:00:01:02", 12, 65102),
    "p3": ("02:99:00:00:01:03", 13, 65103),
    "p4": ("02:99:00:00:01:04", 14, 65104),
}
ROUTES = [
    Route("203.0.113.0/26", "10.99.0.11", (65101, 64999)),
    Route("2001:db8:f1::/48", "2001:db8:99::11", (65101,)),
    Route("203.0.113.64/26", "10.99.0.12", (65102,)),
    Route("203.0.113.128/26", "10.99.0.13", (65103, 65113)),
    Route("198.51.100.0/24", "127.0.0.2", (64990,)),  # a transit route, not via the IX
]
SNMPD_CONF = """agentAddress udp:127.0.0.1:{port}
rocommunity ixcommunity 127.0.0.1
createUser ixuser SHA256 "ix-auth-key-1" AES "ix-priv-key-1"
rouser ixuser priv
"""


def config_text(tmp: Path, source: str) -> str:
    return f"""
[service]
local_as = 65000
router_id = "127.0.0.1"

[[routers]]
name = "r1"
neighbor = "{R1}"
exporters = ["{EXPORTER}"]

[[ix]]
name = "lan"
router = "r1"
in_if = [{PORT}]
prefixes = ["{LAN4}", "{LAN6}"]
refresh_interval = 1
peeringdb_file = "{tmp / "netixlan.json"}"
{source}
"""


def hand_written(macs: dict[str, int]) -> str:
    rules = "".join(
        f'\n[[overrides]]\nname = "hand-{i}"\nexporter = "{EXPORTER}"\nin_if = {PORT}\n'
        f'src_mac = "{mac}"\npeer_as = {asn}\n'
        for i, (mac, asn) in enumerate(macs.items())
    )
    return (
        f'[service]\nlocal_as = 65000\nrouter_id = "127.0.0.1"\n[[routers]]\nname = "r1"\n'
        f'neighbor = "{R1}"\nexporters = ["{EXPORTER}"]\n' + rules
    )


@pytest.fixture(scope="module")
def world():
    why = netns_available()
    if why:
        pytest.skip(why)
    tmp = Path(tempfile.mkdtemp(prefix="ix-netns-", dir="/tmp"))
    lan = IxLan()
    bed = None
    snmpd = None
    try:
        for name, (mac, host, _) in PEERS.items():
            lan.reach_from_router(lan.add_peer(name, mac, host))
        (tmp / "netixlan.json").write_bytes(
            orjson.dumps({"data": [{"asn": 65104, "ipaddr4": "10.99.0.14", "ipaddr6": None}]})
        )
        (tmp / "community").write_text("# v2c\nixcommunity\n")
        (tmp / "auth.key").write_text("ix-auth-key-1\n")
        (tmp / "priv.key").write_text("ix-priv-key-1\n")
        if shutil.which("snmpd"):
            (tmp / "snmpd.conf").write_text(SNMPD_CONF.format(port=SNMP_PORT))
            snmpd = subprocess.Popen(
                ["ip", "netns", "exec", lan.router, "snmpd", "-f", "-Lf", str(tmp / "snmpd.log"),
                 "-C", "-c", str(tmp / "snmpd.conf"), "-p", str(tmp / "snmpd.pid"),
                 f"--persistentDir={tmp / 'snmp'}", "-m", ""],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        bed = BgpTestbed().start()
        bed.speaker(routes=ROUTES)
        wait_until(
            lambda: (
                (r := bed.rib.routers.get(R1)) is not None
                and r.families["ipv4 unicast"].prefixes == 4
                and r.families["ipv6 unicast"].prefixes == 1
            ),
            60,
            what="the routes over BGP",
        )
        yield lan, bed, tmp, snmpd
    finally:
        if bed is not None:
            bed.close()
        if snmpd is not None:
            snmpd.kill()
            snmpd.wait(10)
        lan.close()
        shutil.rmtree(tmp, ignore_errors=True)


def snmp_source(tmp: Path, version: str = "3") -> str:
    if version == "2c":
        return (
            f'snmp_target = "127.0.0.1:{SNMP_PORT}"\nsnmp_version = "2c"\n'
            f'snmp_community_file = "{tmp / "community"}"\nsnmp_timeout = 5\n'
        )
    return (
        f'snmp_target = "127.0.0.1:{SNMP_PORT}"\nsnmp_version = "3"\nsnmp_user = "ixuser"\n'
        f'snmp_auth_protocol = "sha256"\nsnmp_auth_key_file = "{tmp / "auth.key"}"\n'
        f'snmp_priv_protocol = "aes"\nsnmp_priv_key_file = "{tmp / "priv.key"}"\n'
        "snmp_timeout = 5\n"
    )


def learner_for(lan: IxLan, bed: BgpTestbed, text: str) -> tuple[Resolver, IxLearner]:
    config = parse_config(text, "ix.toml")
    resolver = Resolver(bed.rib, config)

    def walk(source):  # pysnmp's socket opens inside the router namespace
        return in_netns(lan.router, walk_neighbors, source)

    return resolver, IxLearner(bed.rib, resolver.ix, config, snmp_walk=walk)


def learned(learner: IxLearner) -> dict[str, int]:
    (st,) = learner.status()
    return {e.mac.hex(":"): e.peer_as for e in st.table.values() if e.usable}


def expected() -> dict[str, int]:
    return {mac: asn for mac, _, asn in PEERS.values()}


def file_learner(lan: IxLan, bed: BgpTestbed, tmp: Path) -> tuple[Resolver, IxLearner]:
    (tmp / "neigh.json").write_bytes(lan.neighbors_json())
    return learner_for(lan, bed, config_text(tmp, f'neighbors_file = "{tmp / "neigh.json"}"'))


def flows(src_for_mac: str = "203.0.113.70") -> list[dict]:
    out = []
    for mac, _, _ in PEERS.values():
        out.append({"exporter": EXPORTER, "src_addr": src_for_mac, "dst_addr": "198.51.100.1",
                    "in_if": PORT, "src_mac": mac})  # fmt: skip
        out.append({"exporter": EXPORTER, "src_addr": "2001:db8:f1::9", "dst_addr": "2001:db8::1",
                    "in_if": PORT, "src_mac": mac})  # fmt: skip
    out.append({"exporter": EXPORTER, "src_addr": src_for_mac, "dst_addr": "198.51.100.1",
                "in_if": PORT, "src_mac": "02:99:00:00:0f:0f"})  # fmt: skip
    return out


def test_ip_neigh_table_and_bgp_next_hops_give_each_peers_mac(world):
    lan, bed, tmp, _ = world
    _, learner = file_learner(lan, bed, tmp)
    learner.refresh(force=True)
    assert learned(learner) == expected()
    (st,) = learner.status()
    facts = {e.mac.hex(":"): {f.source for f in e.facts} for e in st.table.values()}
    assert facts[PEERS["p1"][0]] == {"rib"} and facts[PEERS["p4"][0]] == {"peeringdb"}
    p1 = next(e for e in st.table.values() if e.mac.hex(":") == PEERS["p1"][0])
    assert p1.addresses == ("10.99.0.11", "2001:db8:99::11")


@pytest.mark.parametrize("version", ["3", "2c"])
def test_snmp_agent_in_the_router_namespace_gives_the_same_table(world, version):
    lan, bed, tmp, snmpd = world
    if snmpd is None:
        pytest.skip("snmpd is not installed (Debian package snmpd)")
    _, learner = learner_for(lan, bed, config_text(tmp, snmp_source(tmp, version)))
    wait_until(lambda: (learner.refresh(force=True), learned(learner))[1], 180, 0.5, "snmpd")
    (st,) = learner.status()
    assert st.neighbors.error == "" and st.neighbors.kind == "snmp"
    assert learned(learner) == expected()


def test_answers_equal_a_hand_written_mac_override_list(world):
    lan, bed, tmp, _ = world
    resolver, learner = file_learner(lan, bed, tmp)
    learner.refresh(force=True)
    hand = Resolver(bed.rib, parse_config(hand_written(expected()), "hand.toml"))
    fs = flows()
    got, want = resolver.resolve_dicts(fs), hand.resolve_dicts(fs)
    assert list(got.src_peer_as) == list(want.src_peer_as)
    cols = resolver.resolve_columns(
        [EXPORTER],
        [0] * len(fs),
        b"".join(pack_address(f["src_addr"]) for f in fs),
        b"".join(pack_address(f["dst_addr"]) for f in fs),
        [PORT] * len(fs),
        b"".join(parse_mac(f["src_mac"]) for f in fs),
    )
    assert list(cols.src_peer_as) == list(want.src_peer_as)
    for i, f in enumerate(fs):
        one = resolver.resolve_one(f)
        assert one.src_peer_as == want.src_peer_as[i]
        if f["src_mac"] in expected():
            assert one.provenance[1] == IX_MAC
        else:
            assert one.flags & SRC_IX_MAC_UNKNOWN
    p1_v4 = resolver.resolve_one(fs[0])  # p1's MAC, a source p2 announced: asymmetric
    assert (p1_v4.src_peer_as, bool(p1_v4.flags & SRC_ASYMMETRIC)) == (65101, True)


def test_a_peer_that_changes_its_mac_is_followed_after_refresh(world):
    lan, bed, tmp, snmpd = world
    resolver, learner = file_learner(lan, bed, tmp)
    snmp = learner_for(lan, bed, config_text(tmp, snmp_source(tmp)))[1] if snmpd else None
    learner.start()
    p2 = lan.peers["p2"]
    old = p2.mac
    try:
        wait_until(lambda: learned(learner) == expected(), 120, 0.2, "first table")
        lan.change_mac(p2, "02:99:00:00:01:22")
        # net-snmp 5.9 never rewrites the MAC of a row it already has (it adds and
        # removes rows), so the router's entries go, as their expiry would make
        # them, before the peer speaks again with its new MAC.
        lan.forget(p2)
        if snmp is not None:
            wait_until(lambda: (snmp.refresh(force=True), old not in learned(snmp))[1], 60, 0.5)
        lan.reach_router_from(p2)  # the router's kernel now has the new MAC
        (tmp / "neigh.json").write_bytes(lan.neighbors_json())
        want = {**{k: v for k, v in expected().items() if k != old}, p2.mac: 65102}
        wait_until(lambda: learned(learner) == want, 120, 0.2, "the new MAC from the file")
        flow = {**flows()[0], "src_mac": p2.mac}
        assert resolver.resolve_one(flow).src_peer_as == 65102
        assert resolver.resolve_one({**flow, "src_mac": old}).flags & SRC_IX_MAC_UNKNOWN
        if snmp is not None:
            wait_until(
                lambda: (snmp.refresh(force=True), learned(snmp) == want)[1], 60, 0.5, "SNMP"
            )
    finally:
        learner.stop()
        if p2.mac != old:  # the module's world, as the other tests know it
            lan.change_mac(p2, old)
            lan.forget(p2)
            lan.reach_from_router(p2)
