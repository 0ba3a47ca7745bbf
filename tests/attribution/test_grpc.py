"""The gRPC service with a real server on a loopback port and a real client."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
from dataclasses import replace

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from attribution.client import StreamRoutes, channel, columns_request, resolve_dicts
from attribution.convert import columns_to_answers, decode_records, route_message
from attribution.grpc_service import AttributionServicer, ReloadResult, start_server
from attribution.resolver import Resolver
from attribution.v1 import attribution_pb2 as pb
from attribution.v1 import attribution_pb2_grpc as pb_grpc
from attribution.wire import RouteEncoder
from ribd.events import RoutesAnnounced, RoutesWithdrawn
from ribd.rib import RouteMatch
from tests.attribution.helpers import EDGE1, attrs, build_world


@pytest.fixture
def service():
    rib, config = build_world()
    resolver = Resolver(rib, config, max_batch_flows=1000)
    servicer = AttributionServicer(
        rib, resolver, lambda: config, lambda: ReloadResult(ok=True, overrides=2)
    )
    server, port = start_server(servicer, "127.0.0.1:0", 4 * 1024 * 1024)
    target = f"127.0.0.1:{port}"
    with channel(target) as ch:
        yield target, pb_grpc.AttributionStub(ch), ch
    server.stop(grace=None)


def test_one_flow_rpc_answers_every_field(service):
    _, stub, _ = service
    a = stub.Resolve(pb.Flow(exporter="127.0.1.1", src_addr="172.16.0.1", dst_addr="10.9.1.1"))
    assert (a.router, a.dst_origin_as, a.dst_peer_as) == ("edge1", 65006, 65001)
    assert a.dst_origin_provenance == pb.BGP
    assert a.flags & pb.DST_ORIGIN_AS_SET
    assert a.dst_route.prefix == "10.9.0.0/16"
    assert [s.type for s in a.dst_route.as_path] == [
        pb.AsPathSegment.AS_SEQUENCE,
        pb.AsPathSegment.AS_SET,
    ]
    assert (a.src_origin_as, a.src_route.prefix) == (65011, "172.16.0.0/12")


def test_batch_of_rows_keeps_order_and_isolates_a_bad_record(service):
    _, stub, _ = service
    flows = [
        pb.Flow(exporter="127.0.1.1", src_addr="172.16.0.1", dst_addr="10.1.9.9"),
        pb.Flow(exporter="127.0.1.1", src_addr="172.16.0.1", dst_addr="2001:db8::1"),
        pb.Flow(exporter="127.0.1.1", src_addr="172.16.0.1", dst_addr="nonsense"),
        pb.Flow(exporter="127.0.1.1", src_addr="172.16.0.1", dst_addr="192.168.1.1"),
    ]
    reply = stub.ResolveBatch(pb.FlowBatch(batch_id=7, flows=pb.FlowRows(flows=flows)))
    assert reply.batch_id == 7
    out = reply.attributions
    assert out[0].dst_origin_as == 65003
    assert out[1].error.code == "family_mismatch"
    assert out[2].error.code == "bad_address" and "dst_addr" in out[2].error.message
    assert (out[3].dst_origin_as, out[3].dst_origin_provenance) == (64500, pb.LOCAL)
    assert [e.index for e in reply.errors] == [1, 2]


def test_columns_batch_answers_in_columns(service):
    _, stub, _ = service
    flows = [
        {"exporter": "127.0.1.1", "src_addr": "172.16.0.1", "dst_addr": "10.1.2.3", "in_if": 30},
        {"exporter": "127.0.1.1", "src_addr": "2001:db8:1::1", "dst_addr": "2001:db8::5"},
    ]
    request, _, _ = columns_request(flows)
    reply = stub.ResolveBatch(request)
    cols = reply.columns
    assert list(cols.dst_origin_as) == [65005, 4200000001]
    assert list(cols.src_peer_as) == [65020, 65012]
    assert cols.overrides[cols.override[0]] == "pni-b" and cols.override[1] == -1
    assert cols.routes[cols.dst_route[0]].prefix == "10.1.2.0/24"
    assert cols.provenance[1] == pb.OVERRIDE


def test_oversized_batch_is_rejected_with_invalid_argument(service):
    _, stub, _ = service
    flow = pb.Flow(exporter="127.0.1.1", src_addr="10.0.0.1", dst_addr="10.0.0.2")
    with pytest.raises(grpc.RpcError) as err:
        stub.ResolveBatch(pb.FlowBatch(flows=pb.FlowRows(flows=[flow] * 1001)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "limit of 1000" in err.value.details()


def test_stream_answers_each_batch_and_survives_a_rejected_one(service):
    _, stub, _ = service
    good = pb.FlowBatch(
        batch_id=1,
        columns=columns_request(
            [{"exporter": "127.0.1.1", "src_addr": "10.0.0.1", "dst_addr": "10.1.9.9"}]
        )[0].columns,
    )
    broken = pb.FlowBatch(
        batch_id=2,
        columns=pb.FlowColumns(
            exporters=["127.0.1.1"], exporter=[0, 0], src_addr=b"\x00" * 16, dst_addr=b"\x00" * 32
        ),
    )
    replies = list(stub.ResolveStream(iter([good, broken, good])))
    assert [r.batch_id for r in replies] == [1, 2, 1]
    assert replies[0].columns.dst_origin_as[0] == 65003
    assert "16 bytes per flow" in replies[1].batch_error
    assert replies[2].columns.dst_origin_as[0] == 65003


def test_client_resolve_dicts_streams_in_order_with_errors_in_place(service):
    target, _, _ = service
    flows = [
        {
            "exporter": "127.0.1.1",
            "src_addr": "172.16.0.1",
            "dst_addr": f"10.{i % 3}.9.9",
            "bytes": i,
        }
        for i in range(2500)
    ]
    flows[1234] = {"exporter": "127.0.1.1", "src_addr": "x", "dst_addr": "10.0.0.1"}
    out = list(resolve_dicts(target, flows, batch_size=1000))
    assert len(out) == 2500
    assert out[0]["dst_origin_as"] == 65002 and out[0]["bytes"] == 0
    assert out[1]["dst_origin_as"] == 65003
    assert out[1234]["error_code"] == "bad_address"
    assert out[2499]["bytes"] == 2499


def test_lookup_route_by_address_and_by_prefix(service):
    _, stub, _ = service
    r = stub.LookupRoute(pb.LookupRouteRequest(router="edge1", address="10.1.2.3"))
    assert r.found and r.routes[0].prefix == "10.1.2.0/24"
    assert (r.routes[0].origin_as, r.routes[0].peer_as) == (65005, 65004)
    r = stub.LookupRoute(pb.LookupRouteRequest(router="127.0.1.1", prefix="10.1.0.0/16"))
    assert r.found and r.routes[0].router == "edge1"
    r = stub.LookupRoute(pb.LookupRouteRequest(router="edge2", address="11.0.0.1"))
    assert not r.found
    with pytest.raises(grpc.RpcError) as err:
        stub.LookupRoute(pb.LookupRouteRequest(router="edge1", prefix="10.1.0.1/16"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "host bits" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.LookupRoute(pb.LookupRouteRequest(router="nope", address="10.0.0.1"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_list_routers_reports_sessions_and_counts(service):
    _, stub, _ = service
    reply = stub.ListRouters(pb.ListRoutersRequest())
    by_name = {r.name: r for r in reply.routers}
    assert set(by_name) == {"edge1", "edge2", "edge3"}
    edge1 = by_name["edge1"]
    assert edge1.session == "up" and list(edge1.exporters) == ["127.0.1.1"]
    v4 = next(f for f in edge1.families if f.family == "ipv4 unicast")
    assert (v4.prefixes, v4.converged) == (8, True)
    assert reply.unique_attribute_sets >= 0


def test_health_and_reflection_are_served(service):
    _, _, ch = service
    health = health_pb2_grpc.HealthStub(ch)
    status = health.Check(health_pb2.HealthCheckRequest(service="attribution.v1.Attribution"))
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(ch)
    (answer,) = refl.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    names = {s.name for s in answer.list_services_response.service}
    assert "attribution.v1.Attribution" in names


def test_reload_rpc_reports_the_outcome(service):
    _, stub, _ = service
    reply = stub.ReloadConfig(pb.ReloadConfigRequest())
    assert reply.ok and reply.overrides == 2


def test_omit_routes_answers_as_numbers_only(service):
    _, stub, _ = service
    request, _, _ = columns_request(
        [{"exporter": "127.0.1.1", "src_addr": "172.16.0.1", "dst_addr": "10.1.2.3"}]
    )
    request.omit_routes = True
    cols = stub.ResolveBatch(request).columns
    assert list(cols.dst_origin_as) == [65005]
    assert len(cols.routes) == 0 and list(cols.dst_route) == [-1]


def test_resolve_command_keeps_order_and_reports_bad_lines_in_place(service):
    target, _, _ = service
    stdin = "\n".join(
        [
            '{"exporter": "127.0.1.1", "src_addr": "172.16.0.1", "dst_addr": "10.1.9.9"}',
            '{"exporter": "127.0.1.1", "src_addr": "172.16.0.1", "dst_addr": ',
            "[1, 2, 3]",
            "",
            '{"exporter": "127.0.1.1", "src_addr": "172.16.0.1", "dst_addr": "192.168.1.1",'
            ' "bytes": 42}',
        ]
    )
    out = subprocess.run(
        [sys.executable, "-m", "attribution.cli", "resolve", "--target", target],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 4  # the blank line is skipped, every other line answered
    assert (rows[0]["dst_origin_as"], rows[0]["router"]) == (65003, "edge1")
    assert rows[1]["error_code"] == "bad_json" and rows[1]["error"].startswith("line 2:")
    assert rows[2]["error_code"] == "bad_record" and "line 3" in rows[2]["error"]
    assert (rows[3]["dst_origin_as"], rows[3]["bytes"]) == (64500, 42)
    assert "4 flows, 2 with errors" in out.stderr


WIRE_FLOWS = [
    {"exporter": "127.0.1.1", "src_addr": "172.16.0.1", "dst_addr": "10.1.2.3", "in_if": 30},
    {"exporter": "127.0.1.1", "src_addr": "2001:db8:1::1", "dst_addr": "2001:db8::5"},
    {"exporter": "127.0.1.1", "src_addr": "172.16.0.9", "dst_addr": "10.9.1.1"},
    {"exporter": "127.0.1.1", "src_addr": "203.0.113.1", "dst_addr": "192.168.7.7"},
    {"exporter": "127.0.9.9", "src_addr": "10.0.0.1", "dst_addr": "10.200.0.1"},
]


def _answers(reply, route_json=None):
    return list(columns_to_answers(reply.columns, reply.errors, route_json))


def test_packed_records_carry_the_same_answers_as_the_repeated_columns(service):
    _, stub, _ = service
    plain = stub.ResolveBatch(columns_request(WIRE_FLOWS)[0])
    packed = stub.ResolveBatch(columns_request(WIRE_FLOWS, packed=True)[0])
    assert len(packed.columns.records) == 40 * len(WIRE_FLOWS)
    assert len(packed.columns.flags) == 0 and len(packed.columns.dst_origin_as) == 0
    rec = decode_records(packed.columns)
    assert rec["dst_origin_as"].tolist() == list(plain.columns.dst_origin_as)
    assert rec["provenance"].tobytes() == plain.columns.provenance
    assert _answers(packed) == _answers(plain)
    assert _answers(packed)[0]["override"] == "pni-b"


def _stream_replies(stub, requests):
    return list(stub.ResolveStream(iter(requests)))


def test_stream_routes_sends_each_route_once_per_stream(service):
    _, stub, _ = service
    make = lambda i: columns_request(WIRE_FLOWS, i, packed=True, stream_routes=True)[0]  # noqa: E731
    first, second = _stream_replies(stub, [make(1), make(2)])
    assert first.columns.route_base == 0 and len(first.columns.routes) > 0
    assert second.columns.route_base == len(first.columns.routes)
    assert len(second.columns.routes) == 0  # every route was sent with the first batch
    assert not second.columns.routes_reset
    dictionary = StreamRoutes()
    dictionary.update(first.columns)
    per_batch = _answers(stub.ResolveBatch(columns_request(WIRE_FLOWS, packed=True)[0]))
    assert _answers(first, dictionary.routes) == per_batch
    assert _answers(second, dictionary.update(second.columns)) == per_batch


@pytest.fixture
def world_service():
    """A served world whose RIB and resolver the test can change between batches."""
    rib, config = build_world()
    resolver = Resolver(rib, config, max_batch_flows=1000)
    servicer = AttributionServicer(rib, resolver, lambda: config, lambda: ReloadResult(ok=True))
    server, port = start_server(servicer, "127.0.0.1:0", 4 * 1024 * 1024)
    with channel(f"127.0.0.1:{port}") as ch:
        yield pb_grpc.AttributionStub(ch), rib, resolver, config
    server.stop(grace=None)


class Lockstep:
    """A ResolveStream driven one batch at a time, so the test can act in between."""

    def __init__(self, stub):
        self._requests: queue.Queue = queue.Queue()
        self._replies = stub.ResolveStream(iter(self._requests.get, None))
        self.routes = StreamRoutes()

    def answer(self, request):
        """The reply alone (for a batch the server rejects: no columns to track)."""
        self._requests.put(request)
        return next(self._replies)

    def send(self, request):
        reply = self.answer(request)
        return reply, self.routes.update(reply.columns)

    def close(self):
        self._requests.put(None)


def test_stream_routes_stay_right_when_the_rib_changes_between_batches(world_service):
    stub, rib, _, _ = world_service
    stream = Lockstep(stub)
    request = columns_request(WIRE_FLOWS, packed=True, stream_routes=True)[0]
    reply, routes = stream.send(request)
    assert _answers(reply, routes)[0]["dst_prefix"] == "10.1.2.0/24"
    # 10.1.2.0/24 changes path: its flows now take the exact path, and the new
    # route is a new dictionary entry (entries are never changed in place).
    rib.apply(RoutesAnnounced(EDGE1, "ipv4 unicast", ("10.1.2.0/24",), None, attrs((65001, 65077))))
    reply, routes = stream.send(request)
    assert len(reply.columns.routes) == 1 and reply.columns.route_base > 0
    answer = _answers(reply, routes)[0]
    assert (answer["dst_prefix"], answer["dst_origin_as"]) == ("10.1.2.0/24", 65077)
    assert answer["dst_as_path"] == [65001, 65077]
    # Withdrawn: the flow falls back to the covering /16.
    rib.apply(RoutesWithdrawn(EDGE1, "ipv4 unicast", ("10.1.2.0/24",), None))
    reply, routes = stream.send(request)
    assert _answers(reply, routes)[0]["dst_prefix"] == "10.1.0.0/16"
    stream.close()


def test_stream_route_dictionary_is_emptied_after_a_config_reload(world_service):
    stub, _, resolver, config = world_service
    stream = Lockstep(stub)
    request = columns_request(WIRE_FLOWS, packed=True, stream_routes=True)[0]
    first, _ = stream.send(request)
    resolver.reconfigure(replace(config, local_as=64999))
    reply, routes = stream.send(request)
    assert reply.columns.routes_reset and reply.columns.route_base == 0
    assert len(reply.columns.routes) == len(first.columns.routes)
    local = _answers(reply, routes)[3]
    assert (local["dst_origin_as"], local["dst_origin_provenance"]) == (64999, "local")
    stream.close()


def test_stream_routes_is_rejected_on_the_unary_rpc(service):
    _, stub, _ = service
    with pytest.raises(grpc.RpcError) as err:
        stub.ResolveBatch(columns_request(WIRE_FLOWS, stream_routes=True)[0])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ResolveStream" in err.value.details()


def test_a_full_stream_route_dictionary_starts_again(world_service, monkeypatch):
    monkeypatch.setattr("attribution.grpc_service.MAX_STREAM_ROUTES", 3)
    stub, _, _, _ = world_service
    stream = Lockstep(stub)
    request = columns_request(WIRE_FLOWS, packed=True, stream_routes=True)[0]
    first, _ = stream.send(request)
    assert len(first.columns.routes) > 3
    reply, routes = stream.send(request)
    assert reply.columns.routes_reset and reply.columns.route_base == 0
    assert len(reply.columns.routes) == len(first.columns.routes)
    expected = _answers(stub.ResolveBatch(columns_request(WIRE_FLOWS)[0]))
    assert _answers(reply, routes) == expected
    stream.close()


def test_client_notices_a_route_dictionary_out_of_step():
    routes = StreamRoutes()
    with pytest.raises(RuntimeError, match="out of step"):
        routes.update(pb.AttributionColumns(route_base=5))


@pytest.mark.parametrize("stale", [False, True])
@pytest.mark.parametrize("path_id", [0, 7])
def test_route_entries_built_from_parts_parse_as_the_whole_route_message(stale, path_id):
    encoder = RouteEncoder()
    a = attrs((65001, 65002), [65003, 65004], communities=(65001 << 16 | 7,), local_pref=120)
    for prefix, length in (("10.0.0.0/8", 8), ("0.0.0.0/0", 0)):
        m = RouteMatch(prefix, length, a, path_id, stale)
        for local_as, highest in ((64500, False), (64501, True)):
            body = encoder.route_body("edge1", m, local_as, highest)
            assert pb.Route.FromString(body) == route_message("edge1", m, local_as, highest)


def test_a_rejected_batch_on_a_route_stream_empties_the_dictionary_and_the_stream_goes_on(
    world_service,
):
    stub, _, _, _ = world_service
    stream = Lockstep(stub)
    request = columns_request(WIRE_FLOWS, packed=True, stream_routes=True)[0]
    stream.send(request)
    broken = pb.FlowBatch(
        batch_id=9,
        stream_routes=True,
        columns=pb.FlowColumns(
            exporters=["127.0.1.1"], exporter=[0, 0], src_addr=b"\x00" * 16, dst_addr=b"\x00" * 32
        ),
    )
    assert "16 bytes per flow" in stream.answer(broken).batch_error
    reply, routes = stream.send(request)
    assert reply.columns.routes_reset and reply.columns.route_base == 0
    assert _answers(reply, routes) == _answers(stub.ResolveBatch(columns_request(WIRE_FLOWS)[0]))
    stream.close()
