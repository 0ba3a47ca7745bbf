"""Explain: the README's semantics table rule by rule, through a real gRPC
server and client, and `attribution explain` end to end.

Every explanation is also checked against the real answer, asked for
separately (the Resolve RPC): same router, AS numbers, prefixes, override
and flags, and every flag it sets has a cause.
"""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import replace

import grpc
import pytest

from attribution.client import Connection, channel
from attribution.config import ApiSettings
from attribution.explain import _explain
from attribution.explain_render import answer_json, to_json, to_text
from attribution.grpc_service import AttributionServicer, ReloadResult, start_server
from attribution.resolver import FLAG_NAMES, Resolver
from attribution.v1 import attribution_pb2 as pb
from attribution.v1 import attribution_pb2_grpc as pb_grpc
from ribd.attributes import AS_CONFED_SEQUENCE, AS_SEQUENCE, make_attributes
from ribd.events import RoutesAnnounced, SessionState
from tests.attribution.helpers import CONFIG, EDGE1, attrs, build_world

V4, V6 = "ipv4 unicast", "ipv6 unicast"
NO_GLOBAL_FALLBACK = CONFIG.replace('fallback = ["edge2"]\n', "", 1)
HIGHEST = CONFIG.replace(
    'grpc_listen = "127.0.0.1:0"', 'grpc_listen = "127.0.0.1:0"\nas_set_policy = "highest"'
)
SHADOWED = (
    CONFIG
    + """
[[overrides]]
name = "late-pni"
exporter = "127.0.1.1"
in_if = 30
peer_as = 65099
"""
)


@contextmanager
def served(config_text: str = CONFIG, rib_hook=None, api: ApiSettings | None = None):
    rib, config = build_world(config_text)
    if api is not None:
        config = replace(config, api=api)
    if rib_hook:
        rib_hook(rib)
    resolver = Resolver(rib, config)
    servicer = AttributionServicer(rib, resolver, lambda: config, lambda: ReloadResult(ok=True))
    server, port = start_server(servicer, "127.0.0.1:0", 4 << 20, api)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def flow(dst, src="172.16.0.1", exporter="127.0.1.1", **kw):
    return {"exporter": exporter, "src_addr": src, "dst_addr": dst, **kw}


def ask(target, record) -> dict:
    """Explain over gRPC, checked against the Resolve RPC's answer for the same flow."""
    message = pb.Flow(**record)
    with channel(target) as ch:
        stub = pb_grpc.AttributionStub(ch)
        reply = stub.Explain(message, timeout=30)
        resolved = stub.Resolve(message, timeout=30)
    doc = to_json(reply)
    assert doc["mismatches"] == []
    assert doc["answer"] == answer_json(resolved)
    set_flags = [name for name in FLAG_NAMES.values() if doc["answer"][name]]
    assert sorted(f["flag"] for f in doc["flags"]) == sorted(set_flags)
    assert all(f["reason"] for f in doc["flags"])
    return doc


def explained(record, config_text=CONFIG, rib_hook=None) -> dict:
    with served(config_text, rib_hook) as target:
        return ask(target, record)


def used(side: dict) -> dict:
    (c,) = [c for c in side["prefixes"] if c["used"]]
    return c


def flags(doc) -> dict:
    return {f["flag"]: f["reason"] for f in doc["flags"]}


# -- which RIB ---------------------------------------------------------------


def test_router_chain_says_how_each_router_entered_it_and_the_first_answers():
    d = explained(flow("10.2.3.4"))
    chain = [(s["router"], s["outcome"]) for s in d["routers"]]
    assert chain == [("edge1", "answered"), ("edge3", "not tried"), ("edge2", "not tried")]
    assert "127.0.1.1 is in edge1's exporters" in d["routers"][0]["source"]
    assert "fallback of edge1" in d["routers"][1]["source"]
    assert d["routers"][2]["source"] == "[service] fallback"
    assert "session up" in d["routers"][0]["reason"]
    assert d["answer"]["fallback"] is False and "fallback" not in flags(d)


def test_exporter_that_is_a_neighbor_address_is_named_so():
    d = explained(flow("10.2.3.4", exporter="127.0.0.12"))
    assert d["routers"][0]["source"] == "exporter 127.0.0.12 is edge2's neighbor address"
    assert d["answer"]["router"] == "edge2"


def test_fallback_chain_with_a_down_router_says_why_it_was_skipped():
    def edge1_down(rib):
        rib.apply(SessionState(EDGE1, "down", reason="hold timer expired"))

    d = explained(flow("10.2.3.4"), rib_hook=edge1_down)
    steps = d["routers"]
    assert [(s["router"], s["outcome"]) for s in steps] == [
        ("edge1", "skipped"),
        ("edge3", "answered"),
        ("edge2", "not tried"),
    ]
    assert "no ipv4 unicast routes" in steps[0]["reason"]
    assert "session down (hold timer expired)" in steps[0]["reason"]
    assert "purged" in steps[0]["reason"]
    assert (d["answer"]["router"], d["answer"]["dst_origin_as"]) == ("edge3", 65301)
    assert "edge1, the exporter's own router, was skipped (no ipv4" in flags(d)["fallback"]


def test_router_without_routes_of_the_family_is_skipped_for_that_family():
    # edge2 and edge3 have IPv4 routes only, and no End-of-RIB for IPv6 yet
    d = explained(flow("2001:db8::1", src="2001:db8:1::1", exporter="127.0.0.12"))
    first = d["routers"][0]
    assert (first["router"], first["outcome"]) == ("edge2", "skipped")
    assert "no ipv6 unicast routes" in first["reason"]
    assert "none received yet (waiting for End-of-RIB)" in first["reason"]
    assert d["answer"]["router"] is None and d["dst"] is None
    assert "no router of the chain has ipv6 unicast routes" in to_text(d)


def test_unknown_exporter_without_fallback_is_the_error_and_says_why():
    d = explained(flow("10.2.3.4", exporter="127.0.9.9"), config_text=NO_GLOBAL_FALLBACK)
    assert d["answer"]["error_code"] == "unknown_exporter"
    (step,) = d["routers"]
    assert step["outcome"] == "skipped" and "maps to no router" in step["reason"]
    assert d["dst"] is None and d["flags"] == []
    assert "overrides: not applied (the flow is not answered)" in to_text(d)


def test_unknown_exporter_answered_by_the_global_fallback_is_flagged():
    d = explained(flow("10.2.3.4", exporter="127.0.9.9"))
    assert [(s["router"], s["source"]) for s in d["routers"]] == [("edge2", "[service] fallback")]
    assert "exporter 127.0.9.9 maps to no router; edge2 answered" in flags(d)["fallback"]


def test_stale_routes_say_the_session_is_down_and_until_when():
    def edge1_stale(rib):
        rib.stale_hold_by_neighbor[EDGE1] = 60
        rib.apply(SessionState(EDGE1, "down", reason="peer reset"))

    d = explained(flow("10.2.3.4", src="172.16.0.1"), rib_hook=edge1_stale)
    assert d["routers"][0]["outcome"] == "answered"
    assert "served stale until" in d["routers"][0]["reason"]
    f = flags(d)
    assert "session down (peer reset)" in f["dst_stale"] and "10.0.0.0/8" in f["dst_stale"]
    assert "kept stale until" in f["src_stale"]
    assert used(d["dst"])["stale"] is True


def test_routes_kept_from_before_a_restarted_session_say_so():
    def restarted(rib):
        rib.stale_hold_by_neighbor[EDGE1] = 60
        rib.apply(SessionState(EDGE1, "down", reason="peer reset"))
        rib.apply(SessionState(EDGE1, "up"))  # no End-of-RIB yet: old routes stay, stale

    d = explained(flow("10.2.3.4"), rib_hook=restarted)
    first = d["routers"][0]
    assert first["outcome"] == "answered" and "session up" in first["reason"]
    assert "session up: 0 ipv4 unicast prefixes received since, plus" in first["reason"]
    assert "stale prefixes kept from before" in first["reason"]
    assert "kept from before the session restarted" in flags(d)["dst_stale"]


# -- one side: prefixes, paths and the rule ------------------------------------


def test_longest_match_lists_the_less_specific_routes_it_beat():
    d = explained(flow("10.1.2.3"))
    dst = d["dst"]
    assert [c["prefix"] for c in dst["prefixes"]] == [
        "10.1.2.0/24",
        "10.1.0.0/16",
        "10.0.0.0/8",
        "0.0.0.0/0",
    ]
    assert used(dst)["prefix"] == "10.1.2.0/24" == d["answer"]["dst_prefix"]
    assert dst["rules"] == ["longest_match", "prepending_ignored"]
    assert "more specific than the 3 other covering prefixes" in dst["reasons"][0]
    assert (dst["origin_as"], dst["peer_as"]) == (65005, 65004)


def test_empty_path_is_local_as():
    d = explained(flow("192.168.1.1"))
    assert d["dst"]["rules"] == ["longest_match", "empty_path_local_as"]
    assert "local_as 64500" in d["dst"]["reasons"][-1]
    assert (d["dst"]["origin_as"], d["dst"]["peer_as"], d["dst"]["provenance"]) == (
        64500,
        0,
        "local",
    )


def test_default_route_only_gives_its_peer_and_flags_the_source_unrouted():
    d = explained(flow("8.8.8.8", src="203.0.113.7"))
    for side in ("dst", "src"):
        assert d[side]["rules"] == ["default_route_only"]
        assert [c["prefix"] for c in d[side]["prefixes"]] == ["0.0.0.0/0"]
        assert (d[side]["origin_as"], d[side]["peer_as"]) == (0, 65001)
    assert "only the default route covers the source 203.0.113.7" in flags(d)["src_unrouted"]


def test_no_route_lists_no_prefix():
    d = explained(flow("2001:db9::1", src="2001:db8::1"))
    assert d["dst"]["prefixes"] == [] and d["dst"]["rules"] == ["no_route"]
    assert d["dst"]["provenance"] == "none"
    assert d["src"]["rules"] == ["longest_match"]  # 2001:db8::/32


def test_trailing_as_set_aggregator_policy():
    d = explained(flow("10.9.1.1"))
    assert d["dst"]["rules"] == ["longest_match", "as_set_aggregator"]
    assert d["dst"]["origin_as"] == 65006
    assert "{65007,65008}" in flags(d)["dst_origin_as_set"]
    assert "the AS just before the set" in flags(d)["dst_origin_as_set"]


def test_as_set_flag_cause_is_the_set_rule_even_with_prepending():
    def prepended(rib):
        a = attrs((65001, 65001, 65006), [65007, 65008])
        rib.apply(RoutesAnnounced(EDGE1, V4, ("10.5.0.0/16",), None, a))

    d = explained(flow("10.5.1.1"), rib_hook=prepended)
    assert d["dst"]["rules"] == ["longest_match", "as_set_aggregator", "prepending_ignored"]
    assert "AS_SET {65007,65008}" in flags(d)["dst_origin_as_set"]


def test_trailing_as_set_highest_policy():
    d = explained(flow("10.9.1.1"), config_text=HIGHEST)
    assert d["dst"]["rules"] == ["longest_match", "as_set_highest"]
    assert d["dst"]["origin_as"] == 65008 == d["answer"]["dst_origin_as"]
    assert d["as_set_policy"] == "highest"


def test_one_member_as_set_is_that_as():
    d = explained(flow("10.8.1.1"))
    assert d["dst"]["rules"] == ["longest_match", "as_set_one_member"]
    assert d["dst"]["origin_as"] == 65009 and d["answer"]["dst_origin_as_set"] is False


def _confederation(rib):
    confed = make_attributes(
        ((AS_CONFED_SEQUENCE, (65510, 65511)), (AS_SEQUENCE, (65020, 65021))), next_hop="127.0.0.9"
    )
    only_confed = make_attributes(((AS_CONFED_SEQUENCE, (65510,)),), next_hop="127.0.0.9")
    rib.apply(RoutesAnnounced(EDGE1, V4, ("10.7.0.0/16",), None, confed))
    rib.apply(RoutesAnnounced(EDGE1, V4, ("10.6.0.0/16",), None, only_confed))


def test_confederation_segments_are_skipped():
    d = explained(flow("10.7.1.1"), rib_hook=_confederation)
    assert d["dst"]["rules"] == ["longest_match", "confederation_skipped"]
    assert "(65510 65511)" in d["dst"]["reasons"][1]
    assert (d["dst"]["peer_as"], d["dst"]["origin_as"]) == (65020, 65021)


def test_confederation_only_path_counts_as_empty():
    d = explained(flow("10.6.1.1"), rib_hook=_confederation)
    assert d["dst"]["rules"] == ["longest_match", "confederation_skipped", "empty_path_local_as"]
    assert d["dst"]["origin_as"] == 64500


def _add_paths(rib):
    """ADD-PATH prefixes where each preference_key criterion decides once."""
    cases = {
        "10.50.0.0/16": [
            (1, attrs((65001, 65050), local_pref=100)),
            (2, attrs((65002,), local_pref=200)),
        ],
        "10.51.0.0/16": [(1, attrs((65001, 65051))), (2, attrs((65002,)))],
        "10.52.0.0/16": [(1, attrs((65001,), origin="incomplete")), (2, attrs((65002,)))],
        "10.53.0.0/16": [(1, attrs((65001,), med=50)), (2, attrs((65002,), med=10))],
        "10.54.0.0/16": [(7, attrs((65001,))), (3, attrs((65002,)))],
    }
    for prefix, paths in cases.items():
        for path_id, a in paths:
            rib.apply(RoutesAnnounced(EDGE1, V4, (prefix,), (path_id,), a))


@pytest.mark.parametrize(
    "dst, criterion, words, best",
    [
        ("10.50.1.1", "local_pref", "local-pref 200 > 100", 2),
        ("10.51.1.1", "as_path_length", "AS path length 1 < 2", 2),
        ("10.52.1.1", "origin", "origin igp < incomplete", 2),
        ("10.53.1.1", "med", "MED 10 < 50", 2),
        ("10.54.1.1", "path_id", "path id 3 < 7", 3),
    ],
)
def test_add_path_paths_are_ranked_with_the_deciding_criterion(dst, criterion, words, best):
    d = explained(flow(dst), rib_hook=_add_paths)
    c = used(d["dst"])
    assert c["decided_by"] == criterion and words in c["decision"]
    assert c["paths"][0]["path_id"] == best
    assert len(c["paths"]) == 2
    assert d["answer"]["dst_peer_as"] == 65002  # the best path's first AS


def test_a_prefix_at_the_add_path_bound_says_its_router_had_paths_not_kept():
    def at_bound(rib):
        rib.max_paths = 2
        _add_paths(rib)

    def past_bound(rib):
        at_bound(rib)
        rib.apply(RoutesAnnounced(EDGE1, V4, ("10.51.0.0/16",), (9,), attrs((65001, 65002, 65003))))

    def bound_reasons(d) -> list[str]:
        return [r for r in d["dst"]["reasons"] if "max_paths_per_prefix" in r]

    assert bound_reasons(explained(flow("10.51.1.1"), rib_hook=at_bound)) == []  # none dropped
    d = explained(flow("10.51.1.1"), rib_hook=past_bound)
    assert [p["path_id"] for p in used(d["dst"])["paths"]] == [2, 1]
    (reason,) = bound_reasons(d)
    assert reason.startswith("10.51.0.0/16 holds 2 paths, the [bgp] max_paths_per_prefix bound")
    assert "paths of this router not kept at prefixes at the bound so far: 1 " in reason


def test_a_router_that_refused_prefixes_at_its_limit_says_so_on_both_sides():
    """10.2.3.4's covering route is edge1's; a more-specific it sent past its
    prefix limit was not installed, and the answer may differ from the router's."""
    from ribd.prefix_limit import PrefixLimits

    def at_limit(rib):
        held = rib.routers[EDGE1].families[V4].prefixes
        rib.set_prefix_limits(PrefixLimits(default={V4: held}))
        rib.apply(RoutesAnnounced(EDGE1, V4, ("10.2.3.0/24",), None, attrs((65001, 65077))))

    def limit_reasons(side) -> list[str]:
        return [r for r in side["reasons"] if "max_prefixes_ipv4" in r]

    assert limit_reasons(explained(flow("10.2.3.4"))["dst"]) == []
    d = explained(flow("10.2.3.4"), rib_hook=at_limit)
    assert "10.2.3.0/24" not in [c["prefix"] for c in d["dst"]["prefixes"]]
    (reason,) = limit_reasons(d["dst"])
    assert reason.startswith("edge1 refused 1 new ipv4 unicast prefixes at its limit of ")
    assert limit_reasons(d["src"])


# -- overrides ---------------------------------------------------------------


def test_override_match_names_the_keys_and_every_rule_in_file_order():
    d = explained(flow("10.2.3.4", src="172.16.5.5", in_if=30))
    o = d["overrides"]
    assert [(x["index"], x["name"], x["outcome"], x["key"]) for x in o] == [
        (0, "ix-peer-a", "no match", "in_if"),
        (1, "pni-b", "matched", "in_if"),
    ]
    assert "src peer AS set to 65020" in o[1]["reason"]
    assert d["answer"]["override"] == "pni-b"
    assert "override pni-b says peer AS 65020" in flags(d)["src_asymmetric"]
    assert "says 65010" in flags(d)["src_asymmetric"]
    assert d["src"]["peer_as"] == 65010  # the RIB's, before the override


def test_override_mac_mismatch_says_which_mac():
    d = explained(flow("10.2.3.4", in_if=20, src_mac="02:00:00:00:00:0b"))
    first = d["overrides"][0]
    assert (first["outcome"], first["key"]) == ("no match", "src_mac")
    assert "02:00:00:00:00:0a" in first["reason"] and "02:00:00:00:00:0b" in first["reason"]
    assert d["answer"]["override"] is None
    no_mac = explained(flow("10.2.3.4", in_if=20))
    assert "the flow's none" in no_mac["overrides"][0]["reason"]


def test_override_on_another_exporter_fails_on_the_exporter():
    d = explained(flow("10.2.3.4", exporter="127.0.0.11", in_if=30))
    assert {x["key"] for x in d["overrides"]} == {"exporter"}


def test_shadowed_override_is_named_with_the_rule_that_shadows_it():
    d = explained(flow("10.2.3.4", in_if=30), config_text=SHADOWED)
    late = d["overrides"][2]
    assert (late["name"], late["outcome"], late["shadowed_by"]) == ("late-pni", "shadowed", "pni-b")
    assert "pni-b comes first" in late["reason"]
    assert d["answer"]["override"] == "pni-b"
    # shadowed is said even for a flow it does not match
    other = explained(flow("10.2.3.4", in_if=99), config_text=SHADOWED)
    assert other["overrides"][2]["shadowed_by"] == "pni-b"
    assert other["overrides"][2]["outcome"] == "no match"


# -- errors, the RPC, security, the CLI ----------------------------------------


def test_bad_record_explains_the_error():
    with served() as target, channel(target) as ch:
        reply = pb_grpc.AttributionStub(ch).Explain(
            pb.Flow(exporter="127.0.1.1", src_addr="10.0.0.1", dst_addr="2001:db8::1"),
            timeout=30,
        )
    doc = to_json(reply)
    assert doc["answer"]["error_code"] == "family_mismatch"
    assert doc["mismatches"] == [] and doc["routers"] == []


def test_explain_is_a_read_method(tmp_path):
    read, admin = tmp_path / "read.tokens", tmp_path / "admin.tokens"
    read.write_text("read-token-1\n")
    admin.write_text("admin-token-1\n")
    api = ApiSettings(read_token_file=str(read), admin_token_file=str(admin))
    with served(api=api) as target:
        with channel(Connection(target, token="read-token-1")) as ch:
            reply = pb_grpc.AttributionStub(ch).Explain(pb.Flow(**flow("10.9.1.1")), timeout=30)
        assert reply.answer.dst_origin_as == 65006
        with channel(target) as ch, pytest.raises(grpc.RpcError) as err:
            pb_grpc.AttributionStub(ch).Explain(pb.Flow(**flow("10.9.1.1")), timeout=30)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def cli(*argv: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "attribution.cli", "explain", *argv],
        input=stdin,
        capture_output=True,
        timeout=120,
    )


def test_cli_explains_one_flow_as_readable_text():
    record = flow("10.1.2.3", src="172.16.5.5", in_if=30)
    with served() as target:
        p = cli("--target", target, json.dumps(record))
    assert p.returncode == 0, p.stderr
    text = p.stdout.decode()
    for line in (
        "flow: exporter 127.0.1.1, 172.16.5.5 -> 10.1.2.3, in_if 30",
        "answer: router edge1",
        "  src: origin AS65011 (bgp), peer AS65020 (override), prefix 172.16.0.0/12",
        "  1. edge1 (127.0.0.11) <- exporter map: 127.0.1.1 is in edge1's exporters",
        "dst 10.1.2.3 in edge1's RIB: 4 covering prefixes, most specific first",
        "  => 10.1.2.0/24  [65004 65004 65004 65005 65005]  origin igp  next hop 127.0.0.99",
        "     10.1.0.0/16  [65001 65003]  origin igp  next hop 127.0.0.99",
        "  [1] pni-b (peer AS 65020): matched",
        "  [0] ix-peer-a (peer AS 65010): no match on in_if",
    ):
        assert line in text.splitlines(), (line, text)
    assert "src_asymmetric: override pni-b says peer AS 65020" in text
    assert "WARNING" not in text


def test_cli_reads_flow_lines_from_stdin_and_keeps_going_after_a_bad_one():
    lines = [
        json.dumps(flow("10.9.1.1")),
        "not json",
        json.dumps(flow("10.1.2.3", in_if="thirty")),
        json.dumps(flow("8.8.8.8", src="203.0.113.7")),
    ]
    with served() as target:
        p = cli("--target", target, "--json", stdin="\n".join(lines).encode())
        t = cli("--target", target, stdin="\n".join(lines).encode())
    assert p.returncode == 1  # two unusable records
    docs = [json.loads(line) for line in p.stdout.decode().splitlines()]
    assert [d.get("error_code") for d in docs] == [None, "bad_json", "bad_record", None]
    assert docs[0]["answer"]["dst_origin_as"] == 65006
    assert docs[0]["flow"] == flow("10.9.1.1")
    assert docs[3]["src"]["rules"] == ["default_route_only"]
    assert "in_if" in docs[2]["error"]
    text = t.stdout.decode()
    assert text.count("answer: router edge1") == 2
    assert "flow not explained: bad_json" in text


def test_text_rendering_of_ranked_paths():
    with served(rib_hook=_add_paths) as target, channel(target) as ch:
        reply = pb_grpc.AttributionStub(ch).Explain(pb.Flow(**flow("10.50.1.1")), timeout=30)
    text = to_text(to_json(reply))
    assert "  => 10.50.0.0/16  2 paths, best first; local-pref 200 > 100" in text
    assert "       1. path id 2  [65002]  origin igp  local-pref 200" in text


def test_an_explanation_that_disagrees_with_the_answer_says_so():
    rib, config = build_world()
    resolver = Resolver(rib, config)
    other = resolver.resolve_one(flow("10.1.2.3", in_if=30))  # the answer of another flow
    e = _explain(resolver, config, flow("10.9.1.1"), other)
    said = " | ".join(e.mismatches)
    assert "dst: answer origin 65005" in said
    assert "override: answer pni-b, explanation None" in said
    assert "flags:" in said
    assert (
        _explain(
            resolver, config, flow("10.9.1.1"), resolver.resolve_one(flow("10.9.1.1"))
        ).mismatches
        == []
    )


def _update(prefix: str, path: list, **attribute) -> str:
    """An ExaBGP 5 UPDATE line of neighbor 127.0.0.1; ``path``: ints, an AS_SET as a list."""
    segments = {str(i): {"element": k, "value": v} for i, (k, v) in enumerate(_segments(path))}
    return json.dumps(
        {
            "exabgp": "5.0.0",
            "type": "update",
            "time": 1.0,
            "neighbor": {
                "address": {"local": "127.0.0.2", "peer": "127.0.0.1"},
                "message": {
                    "update": {
                        "attribute": {"origin": "igp", "as-path": segments, **attribute},
                        "announce": {V4: {"127.0.0.1": [{"nlri": prefix}]}},
                    }
                },
            },
        }
    )


def _segments(path: list) -> list[tuple[str, list]]:
    """[1, 2, [3, 4]] -> [("as-sequence", [1, 2]), ("as-set", [3, 4])]."""
    out: list[tuple[str, list]] = []
    for x in path:
        if isinstance(x, list):
            out.append(("as-set", x))
        elif out and out[-1][0] == "as-sequence":
            out[-1][1].append(x)
        else:
            out.append(("as-sequence", [x]))
    return out


def test_cli_explains_offline_against_a_table_dump(tmp_path):
    dump = tmp_path / "table.jsonl"
    dump.write_text(
        _update("10.0.0.0/8", [65001, 65002], **{"local-preference": 120})
        + "\n"
        + _update("10.1.0.0/16", [65001, 65003, [65007, 65008]])
        + "\n"
    )
    config = tmp_path / "attribution.toml"
    config.write_text(
        """
[service]
local_as = 64500
router_id = "127.0.0.1"
as_set_policy = "highest"

[[routers]]
name = "edge1"
neighbor = "127.0.0.1"
exporters = ["127.0.1.1"]

[[overrides]]
name = "pni"
exporter = "127.0.1.1"
in_if = 7
peer_as = 65099
"""
    )
    record = flow("10.1.2.3", src="10.2.0.1", in_if=7)
    p = cli("--table", str(dump), "--config", str(config), "--json", json.dumps(record))
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["routers"][0]["source"] == "exporter map: 127.0.1.1 is in edge1's exporters"
    assert doc["dst"]["rules"] == ["longest_match", "as_set_highest"]
    assert (doc["answer"]["dst_origin_as"], doc["answer"]["src_peer_as"]) == (65008, 65099)
    assert doc["overrides"][0]["outcome"] == "matched"
    assert doc["mismatches"] == []
    t = cli("--table", str(dump), json.dumps(record))  # no config: the dump's routers
    assert t.returncode == 0, t.stderr
    assert "answer: router 127.0.0.1" in t.stdout.decode()


def _edge1_stale(rib):
    rib.stale_hold_by_neighbor[EDGE1] = 60
    rib.apply(SessionState(EDGE1, "down", reason="peer reset"))


def _edge1_down(rib):
    rib.apply(SessionState(EDGE1, "down", reason="test"))


@pytest.mark.parametrize(
    "config_text, hook",
    [
        (CONFIG, _add_paths),
        (HIGHEST, _confederation),
        (NO_GLOBAL_FALLBACK, _edge1_down),
        (SHADOWED, _edge1_stale),
    ],
)
def test_explanation_agrees_with_the_answer_on_every_combination(config_text, hook):
    """Every exporter x address x port x MAC of the test world, core only: no
    mismatch, and exactly the answer's flags each with a cause."""
    rib, config = build_world(config_text)
    hook(rib)
    resolver = Resolver(rib, config)
    v4 = ["10.1.2.3", "10.1.9.9", "10.9.1.1", "10.8.1.1", "10.7.1.1", "10.6.1.1", "10.50.1.1"]
    v4 += ["10.54.1.1", "192.168.1.1", "172.16.5.5", "8.8.8.8"]
    v6 = ["2001:db8::1", "2001:db8:1::1", "2001:db9::1"]
    checked = 0
    for exporter in ("127.0.1.1", "127.0.0.12", "127.0.0.13", "127.0.9.9"):
        for addresses in (v4, v6):
            for dst in addresses:
                for src in addresses[-3:]:
                    for in_if, mac in ((0, ""), (20, "02:00:00:00:00:0a"), (20, ""), (30, "")):
                        record = flow(dst, src=src, exporter=exporter, in_if=in_if, src_mac=mac)
                        e = _explain(resolver, config, record, resolver.resolve_one(record))
                        assert e.mismatches == [], (record, e.mismatches)
                        assert e.flags == (e.answer.flags if e.error is None else 0)
                        names = {n for b, n in FLAG_NAMES.items() if e.flags & b}
                        assert {c.flag for c in e.flag_causes} == names, record
                        checked += 1
    assert checked == 4 * (11 * 3 + 3 * 3) * 4
