"""The source route's attributes reach every answer shape, on every lookup path.

A real gRPC server over the hand-fed world; the source route carries
communities, large communities, local-pref, MED and a next hop of its own, so
an answer that took them from the destination route (or dropped them) fails.
"""

from __future__ import annotations

import pytest

from attribution.client import channel, columns_request, resolve_dicts
from attribution.convert import columns_to_answers, flow_answer_json
from attribution.grpc_service import AttributionServicer, ReloadResult, start_server
from attribution.resolver import Resolver
from attribution.v1 import attribution_pb2 as pb
from attribution.v1 import attribution_pb2_grpc as pb_grpc
from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.events import RoutesAnnounced
from tests.attribution.helpers import EDGE1, build_world

SRC_ROUTE = make_attributes(
    ((AS_SEQUENCE, (65040, 65041)),),
    next_hop="127.0.0.41",
    local_pref=120,
    med=7,
    communities=((65040 << 16) | 1, (65040 << 16) | 2),
    large_communities=((65040, 3, 4),),
)
DST_ROUTE = make_attributes(
    ((AS_SEQUENCE, (65050, 65051)),),
    next_hop="127.0.0.51",
    local_pref=90,
    med=11,
    communities=((65050 << 16) | 9,),
)
SRC_FIELDS = {
    "src_communities": ["65040:1", "65040:2"],
    "src_large_communities": ["65040:3:4"],
    "src_local_pref": 120,
    "src_med": 7,
    "src_next_hop": "127.0.0.41",
}
DST_FIELDS = {
    "dst_communities": ["65050:9"],
    "dst_large_communities": [],
    "dst_local_pref": 90,
    "dst_med": 11,
    "dst_next_hop": "127.0.0.51",
}
FLOW = {"exporter": "127.0.1.1", "src_addr": "100.64.1.1", "dst_addr": "100.65.1.1"}
# in_if 30 matches the "pni-b" override: the src route's attributes stay.
OVERRIDDEN = {**FLOW, "in_if": 30}
NO_SRC_ROUTE = {"exporter": "127.0.1.1", "src_addr": "2001:db9::1", "dst_addr": "2001:db8::1"}


@pytest.fixture(params=["compiled", "exact"])
def served(request):
    rib, config = build_world()
    for prefix, a in (("100.64.0.0/16", SRC_ROUTE), ("100.65.0.0/16", DST_ROUTE)):
        rib.apply(RoutesAnnounced(EDGE1, "ipv4 unicast", (prefix,), None, a))
    compiled = request.param == "compiled"
    resolver = Resolver(rib, config, max_batch_flows=1000, build_views_inline=compiled)
    servicer = AttributionServicer(rib, resolver, lambda: config, lambda: ReloadResult(ok=True))
    server, port = start_server(servicer, "127.0.0.1:0", 4 * 1024 * 1024)
    target = f"127.0.0.1:{port}"
    with channel(target) as ch:
        yield target, pb_grpc.AttributionStub(ch), resolver, config
    server.stop(grace=None)


def _has(answer: dict, fields: dict) -> None:
    assert {k: answer[k] for k in fields} == fields


def test_client_library_answers_carry_the_source_routes_attributes(served):
    target, _, resolver, _ = served
    plain, overridden, missing = resolve_dicts(target, [FLOW, OVERRIDDEN, NO_SRC_ROUTE])
    compiled = resolver.views.usable(EDGE1, "ipv4 unicast") is not None
    assert compiled == resolver.build_views_inline  # the batch took the path under test
    for answer in (plain, overridden):
        _has(answer, SRC_FIELDS)
        _has(answer, DST_FIELDS)
        assert answer["src_prefix"] == "100.64.0.0/16"
    assert overridden["override"] == "pni-b"
    assert missing["src_prefix"] is None
    _has(
        missing,
        {
            "src_communities": [],
            "src_large_communities": [],
            "src_local_pref": None,
            "src_med": None,
            "src_next_hop": None,
        },
    )


def test_unpacked_columns_carry_the_source_routes_attributes(served):
    _, stub, _, _ = served
    request = columns_request([FLOW, OVERRIDDEN])[0]
    reply = stub.ResolveBatch(request)
    assert not reply.columns.records  # the repeated-field shape
    for answer in columns_to_answers(reply.columns, reply.errors):
        _has(answer, SRC_FIELDS)
        _has(answer, DST_FIELDS)


def _route_has_source_attributes(route: pb.Route) -> None:
    assert route.prefix == "100.64.0.0/16"
    assert list(route.communities) == ["65040:1", "65040:2"]
    assert list(route.large_communities) == ["65040:3:4"]
    assert (route.local_pref, route.has_local_pref) == (120, True)
    assert (route.med, route.has_med) == (7, True)
    assert route.next_hop == "127.0.0.41"


def test_rows_and_the_one_flow_rpc_carry_the_whole_source_route(served):
    _, stub, _, _ = served
    rows = stub.ResolveBatch(
        pb.FlowBatch(flows=pb.FlowRows(flows=[pb.Flow(**FLOW), pb.Flow(**OVERRIDDEN)]))
    )
    one = stub.Resolve(pb.Flow(**FLOW))
    for a in (*rows.attributions, one):
        _route_has_source_attributes(a.src_route)
        assert a.dst_route.next_hop == "127.0.0.51"


def test_packed_route_dictionary_entries_are_whole_routes(served):
    _, stub, _, _ = served
    reply = stub.ResolveBatch(columns_request([FLOW], packed=True)[0])
    (answer,) = columns_to_answers(reply.columns, reply.errors)
    _has(answer, SRC_FIELDS)
    (src,) = [r for r in reply.columns.routes if r.prefix == "100.64.0.0/16"]
    _route_has_source_attributes(src)


def test_one_flow_json_has_the_same_source_fields(served):
    _, _, resolver, config = served
    answer = flow_answer_json(resolver.resolve_one(OVERRIDDEN), config.local_as)
    _has(answer, SRC_FIELDS)
    _has(answer, DST_FIELDS)


def test_a_rows_answer_reads_as_the_same_flow_json_as_columns(served):
    """flow_attribution_json: the rows shape, read back, is the columns shape's JSON,
    bad records included."""
    from attribution.convert import flow_attribution_json

    _, stub, _, _ = served
    flows = [FLOW, OVERRIDDEN, NO_SRC_ROUTE, {**FLOW, "dst_addr": "not-an-ip"}]
    rows = stub.ResolveBatch(pb.FlowBatch(flows=pb.FlowRows(flows=[pb.Flow(**f) for f in flows])))
    columns = stub.ResolveBatch(columns_request(flows[:3])[0])
    from_rows = [flow_attribution_json(a) for a in rows.attributions]
    assert from_rows[:3] == list(columns_to_answers(columns.columns, columns.errors))
    _has(from_rows[0], SRC_FIELDS)
    assert from_rows[3]["error_code"] == "bad_address"
