"""Unknown exporters through a real gRPC server and client, in every answer shape.

An exporter that maps to no router gets the ``unknown_exporter`` error
(counted), unless a ``[service] fallback`` router answers, and then the
``fallback`` flag says so. Zeros without an error would look like a router
with no routes yet and hide a missing ``exporters`` entry.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from attribution.client import StreamRoutes, channel, columns_request
from attribution.config import parse_config
from attribution.convert import columns_to_answers, decode_records
from attribution.grpc_service import AttributionServicer, ReloadResult, start_server
from attribution.resolver import Resolver
from attribution.v1 import attribution_pb2 as pb
from attribution.v1 import attribution_pb2_grpc as pb_grpc
from tests.attribution.helpers import CONFIG, build_world

NO_GLOBAL_FALLBACK = CONFIG.replace('fallback = ["edge2"]\n', "", 1)
UNKNOWN = "127.0.9.9"

# known, unknown (v4), known, unknown (v6): edge2, the global fallback, has IPv4 only
FLOWS = [
    {"exporter": "127.0.1.1", "src_addr": "172.16.0.1", "dst_addr": "10.1.2.3", "in_if": 30},
    {"exporter": UNKNOWN, "src_addr": "172.16.0.1", "dst_addr": "10.2.3.4", "in_if": 30},
    {"exporter": "127.0.1.1", "src_addr": "2001:db8:1::1", "dst_addr": "2001:db8::5"},
    {"exporter": UNKNOWN, "src_addr": "2001:db8:1::1", "dst_addr": "2001:db8::5"},
]


class Served:
    def __init__(self, config_text: str, compiled: bool) -> None:
        rib, config = build_world(config_text)
        self.resolver = Resolver(rib, config, max_batch_flows=1000, build_views_inline=compiled)
        servicer = AttributionServicer(
            rib, self.resolver, lambda: config, lambda: ReloadResult(ok=True)
        )
        self.server, port = start_server(servicer, "127.0.0.1:0", 4 * 1024 * 1024)
        self.target = f"127.0.0.1:{port}"
        self.channel = channel(self.target)
        self.stub = pb_grpc.AttributionStub(self.channel)

    def unknown_count(self) -> int:
        return self.resolver.counters()["flow_errors"].get("unknown_exporter", 0)

    def close(self) -> None:
        self.channel.close()
        self.server.stop(grace=None)


@pytest.fixture(params=["compiled", "exact"])
def served(request):
    """Without a global fallback; lookups through compiled views or exact lookups."""
    s = Served(NO_GLOBAL_FALLBACK, compiled=request.param == "compiled")
    yield s
    s.close()


@pytest.fixture(params=["compiled", "exact"])
def with_fallback(request):
    """With ``[service] fallback = ["edge2"]`` (IPv4 routes only)."""
    s = Served(CONFIG, compiled=request.param == "compiled")
    yield s
    s.close()


def check_unknown(a: dict) -> None:
    assert a["error_code"] == "unknown_exporter", a
    assert UNKNOWN in a["error"] and "maps to no router" in a["error"]
    assert (a["router"], a["dst_origin_as"], a["src_peer_as"], a["fallback"]) == (
        None,
        0,
        0,
        False,
    )


def check_known(answers: list[dict]) -> None:
    assert (answers[0]["router"], answers[0]["dst_origin_as"]) == ("edge1", 65005)
    assert answers[0]["override"] == "pni-b" and answers[0]["error"] is None
    assert (answers[2]["dst_origin_as"], answers[2]["error"]) == (4200000001, None)


def test_one_flow_rpc_answers_an_unknown_exporter_with_the_error(served):
    a = served.stub.Resolve(pb.Flow(**FLOWS[1]))
    assert a.error.code == "unknown_exporter"
    assert UNKNOWN in a.error.message
    assert (a.router, a.dst_origin_as, a.flags) == ("", 0, 0)
    ok = served.stub.Resolve(pb.Flow(**FLOWS[0]))
    assert (ok.router, ok.dst_origin_as, ok.HasField("error")) == ("edge1", 65005, False)
    assert served.unknown_count() == 1


def test_rows_batch_marks_only_the_unknown_exporters_flows(served):
    flows = [pb.Flow(**f) for f in FLOWS]
    reply = served.stub.ResolveBatch(pb.FlowBatch(flows=pb.FlowRows(flows=flows)))
    assert [e.index for e in reply.errors] == [1, 3]
    assert {e.code for e in reply.errors} == {"unknown_exporter"}
    out = reply.attributions
    assert out[1].error.code == out[3].error.code == "unknown_exporter"
    assert (out[0].router, out[0].dst_origin_as) == ("edge1", 65005)
    assert (out[2].dst_origin_as, out[2].HasField("error")) == (4200000001, False)
    assert served.unknown_count() == 2


@pytest.mark.parametrize("packed", [False, True], ids=["columns", "packed_records"])
@pytest.mark.parametrize("omit_routes", [False, True], ids=["routes", "omit_routes"])
def test_columns_answers_carry_the_error_in_every_shape(served, packed, omit_routes):
    request = columns_request(FLOWS, packed=packed)[0]
    request.omit_routes = omit_routes
    reply = served.stub.ResolveBatch(request)
    assert [(e.index, e.code) for e in reply.errors] == [
        (1, "unknown_exporter"),
        (3, "unknown_exporter"),
    ]
    cols = reply.columns
    router = decode_records(cols)["router"].tolist() if packed else list(cols.router)
    assert router[1] == router[3] == -1
    answers = list(columns_to_answers(cols, reply.errors))
    check_unknown(answers[1])
    check_unknown(answers[3])
    if omit_routes:
        assert answers[0]["dst_origin_as"] == 65005 and answers[0]["dst_prefix"] is None
    else:
        check_known(answers)
    assert served.unknown_count() == 2


def test_stream_routes_answers_carry_the_error_batch_after_batch(served):
    requests = [columns_request(FLOWS, i, packed=True, stream_routes=True)[0] for i in range(1, 4)]
    replies = list(served.stub.ResolveStream(iter(requests)))
    assert [r.batch_id for r in replies] == [1, 2, 3]
    dictionary = StreamRoutes()
    for reply in replies:
        assert not reply.batch_error
        answers = list(
            columns_to_answers(reply.columns, reply.errors, dictionary.update(reply.columns))
        )
        check_unknown(answers[1])
        check_unknown(answers[3])
        check_known(answers)
    assert served.unknown_count() == 6


def test_resolve_command_writes_the_error_in_flow_json(served):
    out = subprocess.run(
        [sys.executable, "-m", "attribution.cli", "resolve", "--target", served.target],
        input="\n".join(json.dumps(f) for f in FLOWS),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 4
    check_unknown(rows[1])
    check_unknown(rows[3])
    check_known(rows)
    assert rows[1]["exporter"] == UNKNOWN  # the input is echoed
    assert "4 flows, 2 with errors" in out.stderr


def test_errors_are_counted_by_code_with_the_flows_answered(served):
    served.stub.ResolveBatch(columns_request(FLOWS)[0])
    bad = pb.Flow(exporter="127.0.1.1", src_addr="x", dst_addr="10.0.0.1")
    served.stub.ResolveBatch(pb.FlowBatch(flows=pb.FlowRows(flows=[bad, pb.Flow(**FLOWS[0])])))
    served.stub.Resolve(pb.Flow(**FLOWS[3]))
    counters = served.resolver.counters()
    assert counters["flow_errors"] == {"unknown_exporter": 3, "bad_address": 1}
    assert (counters["flows_resolved"], counters["flows_bad"]) == (3, 4)


def test_a_global_fallback_answers_an_unknown_exporter_and_says_so(with_fallback):
    s = with_fallback
    one = s.stub.Resolve(pb.Flow(**FLOWS[1]))
    assert (one.router, one.dst_origin_as, one.HasField("error")) == ("edge2", 65101, False)
    assert one.flags & pb.FALLBACK
    rows = s.stub.ResolveBatch(pb.FlowBatch(flows=pb.FlowRows(flows=[pb.Flow(**FLOWS[1])])))
    assert (rows.attributions[0].router, rows.attributions[0].flags & pb.FALLBACK) == (
        "edge2",
        pb.FALLBACK,
    )
    for packed in (False, True):
        reply = s.stub.ResolveBatch(columns_request(FLOWS, packed=packed)[0])
        answers = list(columns_to_answers(reply.columns, reply.errors))
        a = answers[1]
        assert (a["router"], a["dst_origin_as"], a["fallback"], a["error"]) == (
            "edge2",
            65101,
            True,
            None,
        )
        assert answers[0]["fallback"] is False
        # edge2 has no IPv6 routes: that flow of the unknown exporter is still an error
        assert answers[3]["error_code"] == "unknown_exporter"
        assert "fallback router (edge2)" in answers[3]["error"]
    assert s.unknown_count() == 2


def test_a_reload_that_maps_the_exporter_makes_the_error_go_away(served):
    assert served.stub.Resolve(pb.Flow(**FLOWS[1])).error.code == "unknown_exporter"
    mapped = NO_GLOBAL_FALLBACK.replace(
        '[[routers]]\nname = "edge2"\n', f'[[routers]]\nname = "edge2"\nexporters = ["{UNKNOWN}"]\n'
    )
    served.resolver.reconfigure(parse_config(mapped, "t.toml"))
    a = served.stub.Resolve(pb.Flow(**FLOWS[1]))
    assert (a.router, a.dst_origin_as, a.flags & pb.FALLBACK) == ("edge2", 65101, 0)
