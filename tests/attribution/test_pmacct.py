"""pmacct compatibility: as_set_policy = "highest" against pmacct 1.7.7's rules,
and the pmacct-shaped output (converter, client library, `resolve --format pmacct`).

``attribution.pmacct`` ports pmacct's AS-path printing and its
``evaluate_last_asn`` / ``evaluate_first_asn``; every case pmacct defines is
resolved by the service on each lookup path and compared with that model.
Where we differ on purpose (empty path, default route, confederations) the
test pins the documented difference (docs/pmacct.md).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from attribution.client import channel, resolve_dicts
from attribution.convert import columns_to_answers, flow_answer_json, resolution_to_columns
from attribution.explain import explain
from attribution.grpc_service import AttributionServicer, ReloadResult, start_server
from attribution.pmacct import as_path_text, first_asn, last_asn, to_pmacct
from attribution.resolver import Resolver
from ribd.attributes import AS_CONFED_SEQUENCE, AS_CONFED_SET, AS_SEQUENCE, AS_SET, make_attributes
from ribd.events import RoutesAnnounced
from tests.attribution.helpers import CONFIG, EDGE1, build_world

HIGHEST = CONFIG.replace(
    'grpc_listen = "127.0.0.1:0"', 'grpc_listen = "127.0.0.1:0"\nas_set_policy = "highest"'
)
SEQ, SET, CSEQ, CSET = AS_SEQUENCE, AS_SET, AS_CONFED_SEQUENCE, AS_CONFED_SET


def announce(rib, path, prefix="10.77.0.0/16"):
    rib.apply(RoutesAnnounced(EDGE1, "ipv4 unicast", (prefix,), None, make_attributes(path)))


def pmacct_answer(path, skip_subas=False) -> tuple[int, int]:
    """(origin, peer) as pmacct 1.7.7 derives them: as_dst and peer_as_dst."""
    return last_asn(path), first_asn(as_path_text(path), skip_subas)


def test_model_prints_paths_as_pmacct_does():
    # sets sorted and deduplicated, adjacent sequences merged, confederations bracketed
    path = ((CSEQ, (65001, 65002)), (SEQ, (64500,)), (SEQ, (64496,)), (SET, (64510, 64505, 64510)))
    assert as_path_text(path) == "(65001 65002) 64500 64496 {64505,64510}"
    assert as_path_text(((CSET, (65004, 65003)), (SEQ, (64500,)))) == "[65003,65004] 64500"
    assert as_path_text(()) == ""
    assert first_asn("(65001 65002) 64500") == 65001  # pmacct's default
    assert first_asn("(65001) 64500 64496", skip_subas=True) == 64500
    assert first_asn("{64505,64510}") == 0
    assert first_asn("") == 0


@pytest.fixture(params=["compiled", "exact", "one-flow"])
def answer(request):
    """The service's (dst_origin_as, dst_peer_as) for a route with the given path."""

    def resolve(path, prefix="10.77.0.0/16", dst="10.77.1.1"):
        rib, config = build_world(HIGHEST)
        announce(rib, path, prefix)
        resolver = Resolver(rib, config, build_views_inline=request.param == "compiled")
        flow = {"exporter": "127.0.1.1", "src_addr": "172.16.0.1", "dst_addr": dst}
        if request.param == "one-flow":
            a = flow_answer_json(resolver.resolve_one(flow), config.local_as, True)
        else:
            cols, errors = resolution_to_columns(resolver.resolve_dicts([flow]), 64500, True)
            (a,) = columns_to_answers(cols, errors)
        return a["dst_origin_as"], a["dst_peer_as"]

    return resolve


@pytest.mark.parametrize(
    "path",
    [
        ((SEQ, (64500, 64496)),),  # plain
        ((SEQ, (64500, 64500, 64496, 64496)),),  # prepending
        ((SET, (64510, 64505)),),  # set only: pmacct peer 0, origin the highest
        ((SET, (64510, 64505, 64510)),),  # set only, with a duplicate
        ((SEQ, (64500, 64496)), (SET, (64510, 64505))),  # trailing set
        ((SEQ, (64500,)), (SET, (64505,))),  # trailing one-member set
        ((SEQ, (64500,)), (SET, (64510, 64505)), (SEQ, (64496,))),  # set in the middle
        ((SET, (64510, 64505)), (SEQ, (64496,))),  # leading set: peer 0
        ((SET, (64501,)), (SEQ, (64496,))),  # leading one-member set: still 0 in pmacct
    ],
    ids=[
        "plain",
        "prepending",
        "set-only",
        "set-only-duplicate",
        "trailing-set",
        "trailing-one-member-set",
        "set-in-the-middle",
        "leading-set",
        "leading-one-member-set",
    ],
)
def test_highest_policy_equals_pmacct(answer, path):
    assert answer(path) == pmacct_answer(path)


def test_confederation_one_member_equals_pmacct_skipping_sub_as(answer):
    # pmacct's bgp_peer_as_skip_subas: true skips a leading confederation token;
    # we always skip confederation segments.
    path = ((CSEQ, (65001,)), (SEQ, (64500, 64496)))
    assert answer(path) == pmacct_answer(path, skip_subas=True) == (64496, 64500)


def test_confederation_differs_from_pmacct_default_as_documented(answer):
    path = ((CSEQ, (65001, 65002)), (SEQ, (64500, 64496)))
    assert answer(path) == (64496, 64500)
    assert pmacct_answer(path) == (64496, 65001)  # its peer is our confederation member
    assert pmacct_answer(path, skip_subas=True) == (64496, 65002)


def test_empty_path_differs_from_pmacct_as_documented(answer):
    assert pmacct_answer(()) == (0, 0)
    assert answer(()) == (64500, 0)  # local_as, provenance "local"


def test_default_route_differs_from_pmacct_as_documented(answer):
    path = ((SEQ, (65001, 65002)),)
    got = answer(path, prefix="0.0.0.0/0", dst="10.200.0.1")  # 10/8 is in the world
    assert got == (65002, 65001)  # 10.0.0.0/8 covers it: not the default route
    got = answer(path, prefix="0.0.0.0/0", dst="100.100.0.1")
    assert got == (0, 65001)  # pmacct: origin 65002, the default route's last AS


def test_aggregator_policy_keeps_its_smallest_member_peer():
    rib, config = build_world()
    path = ((SET, (64510, 64505)), (SEQ, (64496,)))
    rib.apply(
        RoutesAnnounced(EDGE1, "ipv4 unicast", ("10.77.0.0/16",), None, make_attributes(path))
    )
    a = flow_answer_json(
        Resolver(rib, config).resolve_one(
            {"exporter": "127.0.1.1", "src_addr": "172.16.0.1", "dst_addr": "10.77.1.1"}
        ),
        config.local_as,
    )
    assert (a["dst_origin_as"], a["dst_peer_as"]) == (64496, 64505)


NATIVE = {
    "exporter": "127.0.1.1",
    "src_addr": "172.16.0.1",
    "dst_addr": "10.9.1.1",
    "in_if": 20,
    "bytes": 1500,
    "router": "edge1",
    "src_origin_as": 65011,
    "src_peer_as": 65010,
    "dst_origin_as": 65008,
    "dst_peer_as": 65001,
    "src_prefix": "172.16.0.0/12",
    "dst_prefix": "10.9.0.0/16",
    "src_as_path": [65010, 65011],
    "dst_as_path": [65001, 65006, [65008, 65007, 65008]],
    "dst_communities": ["65001:7", "65535:65281", "65001:2", "65001:7"],
    "dst_large_communities": ["65001:2:3", "65001:1:9"],
    "dst_local_pref": 200,
    "dst_med": None,
    "dst_next_hop": "127.0.0.99",
    "src_communities": [],
    "src_large_communities": [],
    "src_local_pref": None,
    "src_med": 5,
    "src_next_hop": "127.0.0.98",
    "error": None,
    "error_code": None,
}


def test_converter_writes_pmacct_names_and_conventions():
    assert to_pmacct(NATIVE) == {
        "ip_src": "172.16.0.1",
        "ip_dst": "10.9.1.1",
        "peer_ip_src": "127.0.1.1",
        "iface_in": 20,
        "bytes": 1500,
        "as_src": 65011,
        "as_dst": 65008,
        "peer_as_src": 65010,
        "peer_as_dst": 65001,
        "peer_ip_dst": "127.0.0.99",
        "as_path": "65001_65006_{65007,65008}",
        "as_path_src": "65010_65011",
        "comms": "65001:2_65001:7_no-export",
        "comms_src": "",
        "lcomms": "65001:1:9_65001:2:3",
        "lcomms_src": "",
        "local_pref": 200,
        "local_pref_src": 0,
        "med": 0,
        "med_src": 5,
        "net_src": "172.16.0.0",
        "mask_src": 16 - 4,
        "net_dst": "10.9.0.0",
        "mask_dst": 16,
    }


def test_converter_spells_none_as_pmacct_does_per_family():
    v6 = {"exporter": "::1", "src_addr": "2001:db9::1", "dst_addr": "2001:db9::2"}
    out = to_pmacct({**v6, "src_prefix": None, "dst_prefix": None, "dst_next_hop": None})
    assert (out["net_src"], out["mask_src"], out["net_dst"], out["peer_ip_dst"]) == (
        "::",
        0,
        "::",
        "::",
    )
    assert (out["as_path"], out["comms"], out["local_pref"], out["as_dst"]) == ("", "", 0, 0)
    assert "error" not in out
    v4 = to_pmacct({"src_addr": "10.0.0.1", "dst_addr": "10.0.0.2"})
    assert (v4["net_dst"], v4["peer_ip_dst"]) == ("0.0.0.0", "0.0.0.0")


@pytest.fixture
def served():
    rib, config = build_world(HIGHEST)
    resolver = Resolver(rib, config, max_batch_flows=1000)
    servicer = AttributionServicer(rib, resolver, lambda: config, lambda: ReloadResult(ok=True))
    server, port = start_server(servicer, "127.0.0.1:0", 4 * 1024 * 1024)
    with channel(f"127.0.0.1:{port}"):
        yield f"127.0.0.1:{port}"
    server.stop(grace=None)


FLOWS = [
    {"exporter": "127.0.1.1", "src_addr": "172.16.0.1", "dst_addr": "10.9.1.1", "in_if": 30},
    {"exporter": "127.0.9.9", "src_addr": "10.0.0.1", "dst_addr": "2001:db8::1"},
]


def test_client_library_pmacct_option_matches_the_converter(served):
    native = list(resolve_dicts(served, FLOWS))
    shaped = list(resolve_dicts(served, FLOWS, pmacct=True))
    assert shaped == [to_pmacct(r) for r in native]
    first = shaped[0]
    # as_set_policy "highest": the trailing set's highest member, like pmacct
    assert (first["as_dst"], first["peer_as_dst"], first["as_path"]) == (
        65008,
        65001,
        "65001_65006_{65007,65008}",
    )
    assert first["peer_as_src"] == 65020  # the pni-b override, as bgp_peer_src_as_map would
    assert shaped[1]["error_code"] == "family_mismatch"


PMACCT = ("--format", "pmacct")


def test_resolve_command_writes_pmacct_json(served):
    stdin = json.dumps(FLOWS[0]) + "\n" + '{"exporter": "127.0.1.1", "src_addr": \n'
    out = subprocess.run(
        [sys.executable, "-m", "attribution.cli", "resolve", "--target", served, *PMACCT],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    good, bad = (json.loads(line) for line in out.stdout.splitlines())
    assert good == to_pmacct(next(resolve_dicts(served, FLOWS[:1])))
    assert "src_origin_as" not in good and good["as_src"] == 65011
    assert bad["error_code"] == "bad_json" and bad["as_dst"] == 0


def test_explain_agrees_with_the_highest_policy_on_a_leading_set():
    rib, config = build_world(HIGHEST)
    path = ((SET, (64510, 64505)), (SEQ, (64496,)))
    rib.apply(
        RoutesAnnounced(EDGE1, "ipv4 unicast", ("10.77.0.0/16",), None, make_attributes(path))
    )
    flow = {"exporter": "127.0.1.1", "src_addr": "172.16.0.1", "dst_addr": "10.77.1.1"}
    e = explain(Resolver(rib, config), config, flow)
    assert e.mismatches == []
    assert (e.dst.peer_as, e.dst.origin_as) == (0, 64496)
    assert "as_set_first" in e.dst.rules
    assert any("pmacct's 0" in why for why in e.dst.reasons)
