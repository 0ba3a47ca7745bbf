"""Every attribution rule of the README's semantics table, resolver only."""

from __future__ import annotations

import pytest

from attribution.config import parse_config
from attribution.convert import columns_to_answers, flow_answer_json, resolution_to_columns
from attribution.resolver import Resolver
from ribd.events import SessionState
from tests.attribution.helpers import CONFIG, EDGE1, EDGE2, EDGE3, build_world


@pytest.fixture(autouse=True, params=["compiled", "exact", "one-flow"])
def lookup_path(request):
    """Every rule must hold on every path: compiled (numpy) views, exact pytricia
    lookups in a batch, and the one-flow path (Resolver.resolve_one)."""
    global PATH
    PATH = request.param
    yield


PATH = "compiled"


def resolve(flows, config_text=CONFIG, rib_hook=None):
    rib, config = build_world(config_text)
    if rib_hook:
        rib_hook(rib)
    resolver = Resolver(rib, config, build_views_inline=PATH == "compiled")
    highest = config.as_set_policy == "highest"
    if PATH == "one-flow":
        return [flow_answer_json(resolver.resolve_one(f), config.local_as, highest) for f in flows]
    res = resolver.resolve_dicts(flows)
    cols, errors = resolution_to_columns(res, config.local_as, highest)
    return list(columns_to_answers(cols, errors))


def flow(dst, src="172.16.0.1", exporter="127.0.1.1", **kw):
    return {"exporter": exporter, "src_addr": src, "dst_addr": dst, **kw}


def one(dst, **kw):
    (answer,) = resolve([flow(dst, **kw)])
    return answer


def test_dst_origin_is_last_as_and_peer_is_first_as():
    a = one("10.2.3.4")
    assert (a["dst_origin_as"], a["dst_peer_as"]) == (65002, 65001)
    assert a["dst_origin_provenance"] == a["dst_peer_provenance"] == "bgp"
    assert a["dst_prefix"] == "10.0.0.0/8"
    assert a["dst_as_path"] == [65001, 65002]
    assert a["router"] == "edge1"


def test_longest_prefix_wins_among_nested_prefixes():
    assert one("10.1.9.9")["dst_origin_as"] == 65003
    assert one("10.1.2.3")["dst_prefix"] == "10.1.2.0/24"


def test_prepending_never_changes_the_answer():
    a = one("10.1.2.3")
    assert (a["dst_peer_as"], a["dst_origin_as"]) == (65004, 65005)
    assert a["dst_as_path"] == [65004, 65004, 65004, 65005, 65005]


def test_trailing_as_set_gives_the_aggregator_and_flags_it():
    a = one("10.9.1.1")
    assert a["dst_origin_as"] == 65006
    assert a["dst_origin_as_set"] is True
    assert a["dst_as_path"] == [65001, 65006, [65007, 65008]]


def test_as_set_policy_highest_gives_pmacct_behaviour():
    text = CONFIG.replace(
        'grpc_listen = "127.0.0.1:0"', 'grpc_listen = "127.0.0.1:0"\nas_set_policy = "highest"'
    )
    (a,) = resolve([flow("10.9.1.1")], config_text=text)
    assert a["dst_origin_as"] == 65008


def test_one_member_as_set_counts_as_that_as():
    a = one("10.8.1.1")
    assert a["dst_origin_as"] == 65009
    assert a["dst_origin_as_set"] is False


def test_empty_path_is_ours_origin_local_as_peer_zero():
    a = one("192.168.1.1")
    assert (a["dst_origin_as"], a["dst_peer_as"]) == (64500, 0)
    assert a["dst_origin_provenance"] == a["dst_peer_provenance"] == "local"
    assert a["dst_local_pref"] == 200


def test_only_default_route_gives_peer_and_no_origin():
    a = one("8.8.8.8")
    assert (a["dst_origin_as"], a["dst_peer_as"]) == (0, 65001)
    assert a["dst_origin_provenance"] == a["dst_peer_provenance"] == "default"
    assert a["dst_prefix"] == "0.0.0.0/0"


def test_no_route_is_zero_with_provenance_none():
    a = one("2001:db9::1", src="2001:db8::1")
    assert (a["dst_origin_as"], a["dst_peer_as"]) == (0, 0)
    assert a["dst_origin_provenance"] == "none"
    assert a["dst_prefix"] is None


def test_ipv6_with_four_byte_asn_and_communities():
    a = one("2001:db8:ffff::1", src="2001:db8:1::5")
    assert (a["dst_origin_as"], a["dst_peer_as"]) == (4200000001, 65001)
    assert a["dst_communities"] == ["65001:7"]
    assert (a["src_origin_as"], a["src_peer_as"]) == (65013, 65012)


def test_src_is_looked_up_like_dst():
    a = one("10.2.3.4", src="172.16.5.5")
    assert (a["src_origin_as"], a["src_peer_as"]) == (65011, 65010)
    assert a["src_prefix"] == "172.16.0.0/12"
    assert a["src_origin_provenance"] == "bgp"
    assert a["src_unrouted"] is False


def test_source_covered_only_by_default_is_flagged_unrouted():
    a = one("10.2.3.4", src="203.0.113.7")
    assert a["src_unrouted"] is True
    assert a["src_origin_provenance"] == "default"


def test_override_on_port_sets_src_peer_as_only():
    a = one("10.2.3.4", src="172.16.5.5", in_if=30)
    assert (a["src_peer_as"], a["src_peer_provenance"]) == (65020, "override")
    assert (a["src_origin_as"], a["src_origin_provenance"]) == (65011, "bgp")
    assert a["override"] == "pni-b"
    assert a["src_asymmetric"] is True  # the RIB says 65010


def test_override_matching_the_rib_is_not_asymmetric():
    a = one("10.2.3.4", src="172.16.5.5", in_if=20, src_mac="02:00:00:00:00:0a")
    assert (a["src_peer_as"], a["override"]) == (65010, "ix-peer-a")
    assert a["src_asymmetric"] is False


def test_ix_override_needs_the_mac_too():
    other_mac = one("10.2.3.4", src="172.16.5.5", in_if=20, src_mac="02:00:00:00:00:0b")
    assert other_mac["src_peer_provenance"] == "bgp"
    no_mac = one("10.2.3.4", src="172.16.5.5", in_if=20)
    assert no_mac["override"] is None


def test_same_ifindex_on_another_exporter_is_not_overridden():
    a = one("10.2.3.4", src="172.16.5.5", in_if=30, exporter=EDGE1)
    assert a["override"] is None
    assert a["src_peer_provenance"] == "bgp"


def test_first_matching_override_in_file_order_wins():
    text = (
        CONFIG
        + """
[[overrides]]
name = "shadowed"
exporter = "127.0.1.1"
in_if = 30
peer_as = 65099
"""
    )
    config = parse_config(text, "t.toml")
    assert any("never matches" in w and "shadowed" in w for w in config.warnings)
    (a,) = resolve([flow("10.2.3.4", in_if=30)], config_text=text)
    assert a["override"] == "pni-b"


def test_exporter_map_then_neighbor_address_picks_the_rib():
    assert one("10.2.3.4", exporter="127.0.1.1")["router"] == "edge1"
    a = one("10.2.3.4", exporter="127.0.0.12")
    assert (a["router"], a["dst_origin_as"], a["fallback"]) == ("edge2", 65101, False)


def test_router_without_rib_falls_back_along_its_chain():
    def edge1_down(rib):
        rib.apply(SessionState(EDGE1, "down", reason="test"))

    (a,) = resolve([flow("10.2.3.4")], rib_hook=edge1_down)
    assert (a["router"], a["dst_origin_as"], a["fallback"]) == ("edge3", 65301, True)

    def edge1_and_3_down(rib):
        edge1_down(rib)
        rib.apply(SessionState(EDGE3, "down", reason="test"))

    (a,) = resolve([flow("10.2.3.4")], rib_hook=edge1_and_3_down)
    assert (a["router"], a["dst_origin_as"]) == ("edge2", 65101)  # global fallback


def test_unknown_exporter_uses_the_global_fallback():
    a = one("10.2.3.4", exporter="127.0.9.9")
    assert (a["router"], a["fallback"]) == ("edge2", True)


NO_GLOBAL_FALLBACK = CONFIG.replace('fallback = ["edge2"]\n', "", 1)


def test_unknown_exporter_without_fallback_gets_the_unknown_exporter_error():
    flows = [flow("10.2.3.4"), flow("10.2.3.4", exporter="127.0.9.9"), flow("10.1.9.9")]
    answers = resolve(flows, config_text=NO_GLOBAL_FALLBACK)
    a = answers[1]
    assert a["error_code"] == "unknown_exporter"
    assert "127.0.9.9" in a["error"] and "no router" in a["error"]
    assert (a["router"], a["dst_origin_as"], a["fallback"]) == (None, 0, False)
    # the flows around it are answered
    assert (answers[0]["dst_origin_as"], answers[2]["dst_origin_as"]) == (65002, 65003)


def test_unknown_exporter_is_an_error_when_no_fallback_router_has_the_family():
    # the global fallback edge2 has IPv4 routes only
    a = one("2001:db8::1", src="2001:db8:1::1", exporter="127.0.9.9")
    assert a["error_code"] == "unknown_exporter"
    assert "127.0.9.9" in a["error"] and "fallback" in a["error"]
    v4 = one("10.2.3.4", exporter="127.0.9.9")
    assert (v4["router"], v4["fallback"], v4["error"]) == ("edge2", True, None)


def test_known_exporter_whose_routers_have_no_routes_answers_none_without_error():
    def edge2_down(rib):
        rib.apply(SessionState(EDGE2, "down", reason="test"))

    # 127.0.0.12 is edge2's neighbor address: a known router, no routes yet
    flows = [flow("10.2.3.4", exporter="127.0.0.12")]
    (a,) = resolve(flows, config_text=NO_GLOBAL_FALLBACK, rib_hook=edge2_down)
    assert a["router"] is None and a["error"] is None
    assert a["dst_origin_provenance"] == "none"
    assert a["src_unrouted"] is False


@pytest.mark.parametrize(
    "bad, code, words",
    [
        ({"exporter": "127.0.1.1", "src_addr": "10.0.0.1"}, "bad_record", "dst_addr: missing"),
        (flow("10.0.0.300"), "bad_address", "dst_addr"),
        (flow("2001:db8::1"), "family_mismatch", "family"),
        (flow("10.2.3.4", in_if=-1), "bad_record", "in_if"),
        (flow("10.2.3.4", src_mac="not-a-mac"), "bad_record", "src_mac"),
        (flow("10.2.3.4", exporter=""), "bad_record", "exporter"),
        ("just a string", "bad_record", "JSON object"),
    ],
)
def test_bad_record_in_a_batch_gets_its_own_error_and_the_rest_is_answered(bad, code, words):
    answers = resolve([flow("10.2.3.4"), bad, flow("10.1.9.9")])
    assert answers[0]["dst_origin_as"] == 65002
    assert answers[1]["error_code"] == code and words in answers[1]["error"]
    assert answers[1]["dst_origin_as"] == 0 and answers[1]["router"] is None
    assert answers[2]["dst_origin_as"] == 65003


def test_stale_routes_are_flagged():
    def edge3_stale(rib):
        rib.stale_hold_by_neighbor[EDGE1] = 60
        rib.apply(SessionState(EDGE1, "down", reason="test"))

    (a,) = resolve([flow("10.2.3.4", src="172.16.0.1")], rib_hook=edge3_stale)
    assert (a["router"], a["dst_stale"], a["src_stale"]) == ("edge1", True, True)
