"""End to end over real BGP: a speaker ExaBGP -> supervised ExaBGP -> RIB -> gRPC -> client.

Runs the README's demo command itself (`attribution demo --json`): the bundled
table is announced over a real session on loopback and the bundled flows are
attributed through the gRPC bulk path. Each row pins one semantic rule.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.bgp


@pytest.fixture(scope="module")
def answers():
    out = subprocess.run(
        [sys.executable, "-m", "attribution.cli", "--log-level", "ERROR", "demo", "--json"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert len(rows) == 14
    return rows


def fields(a, *names):
    return tuple(a[n] for n in names)


AS = ("dst_peer_as", "dst_origin_as", "dst_peer_provenance", "dst_origin_provenance")


def test_v4_dst_origin_and_peer_from_the_routers_rib(answers):
    a = answers[0]
    assert fields(a, *AS) == (64496, 15169, "bgp", "bgp")
    assert a["router"] == "demo-edge"
    assert (a["dst_communities"], a["dst_large_communities"]) == (
        ["64496:3000", "64500:100"],  # as sent on the wire: sorted
        ["64500:1:2"],
    )
    assert (a["dst_local_pref"], a["dst_med"], a["dst_next_hop"]) == (100, 10, "127.0.0.2")


def test_nested_more_specific_wins_and_prepending_changes_nothing(answers):
    a = answers[1]
    assert a["dst_prefix"] == "198.51.100.128/25"
    assert a["dst_as_path"] == [64497, 64497, 64497, 13335]
    assert fields(a, "dst_peer_as", "dst_origin_as") == (64497, 13335)


def test_trailing_as_set_gives_the_aggregator(answers):
    a = answers[2]
    assert a["dst_as_path"] == [64498, 64511, [64520, 64521]]
    assert (a["dst_origin_as"], a["dst_origin_as_set"]) == (64511, True)


def test_empty_path_is_our_own_prefix(answers):
    a = answers[3]
    assert fields(a, *AS) == (0, 64500, "local", "local")


def test_override_without_mac_matching_the_rib(answers):
    a = answers[3]
    assert fields(a, "src_peer_as", "src_peer_provenance", "override") == (
        64510,
        "override",
        "pni-as64510",
    )
    assert a["src_asymmetric"] is False
    assert (a["src_origin_as"], a["src_origin_provenance"]) == (64512, "bgp")


def test_ix_override_needs_the_mac_and_flags_asymmetry(answers):
    with_mac, other_mac = answers[4], answers[5]
    assert fields(with_mac, "src_peer_as", "override", "src_asymmetric") == (
        64512,
        "ix-as64512",
        True,
    )
    assert fields(other_mac, "src_peer_as", "src_peer_provenance", "override") == (
        64499,
        "bgp",
        None,
    )


def test_same_ifindex_on_another_exporter_falls_back_without_override(answers):
    a = answers[6]
    assert a["override"] is None and a["src_peer_provenance"] == "bgp"
    assert (a["router"], a["fallback"]) == ("demo-edge", True)  # edge-b has no RIB


def test_only_default_route_and_unrouted_source(answers):
    assert fields(answers[7], *AS) == (64496, 0, "default", "default")
    spoofed = answers[8]
    assert spoofed["src_unrouted"] is True
    assert spoofed["src_origin_provenance"] == "default"


def test_ipv6_with_four_byte_asns_local_and_no_route(answers):
    assert fields(answers[9], "src_origin_as", "dst_origin_as") == (4200000002, 64501)
    assert fields(answers[10], *AS) == (0, 64500, "local", "local")
    assert fields(answers[11], *AS) == (0, 0, "none", "none")
    assert answers[11]["dst_prefix"] is None


def test_unknown_exporter_without_global_fallback_gets_the_error(answers):
    a = answers[12]
    assert a["error_code"] == "unknown_exporter" and "127.0.1.9" in a["error"]
    assert fields(a, "router", "fallback", "dst_origin_as") == (None, False, 0)


def test_bad_record_in_the_batch_gets_its_own_error(answers):
    a = answers[13]
    assert a["error_code"] == "bad_address" and "dst_addr" in a["error"]
    assert answers[11]["error"] is None
