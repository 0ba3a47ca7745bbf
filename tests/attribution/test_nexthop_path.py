"""ADD-PATH by the flow's next hop: the dst path whose BGP next hop is the one
the router used, on every lookup path (one flow, rows, columns over the
compiled views, gRPC rows, columns and packed records, the client library);
``dst_next_hop_mismatch`` and the best path when none has it."""

from __future__ import annotations

from contextlib import contextmanager

import grpc
import pytest

from attribution.client import Connection, channel, resolve_dicts
from attribution.grpc_service import AttributionServicer, ReloadResult, start_server
from attribution.resolver import DST_NEXT_HOP_MISMATCH, Resolver, pack_address
from attribution.v1 import attribution_pb2 as pb
from attribution.v1 import attribution_pb2_grpc as pb_grpc
from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.events import RoutesAnnounced
from tests.attribution.helpers import EDGE1, build_world

V4, V6 = "ipv4 unicast", "ipv6 unicast"
EXPORTER = "127.0.1.1"
# (path id, first AS, origin AS, next hop, local-pref): path 1 is the best.
PATHS_V4 = [
    (1, 65061, 65601, "127.0.0.61", 200),
    (2, 65062, 65602, "127.0.0.62", 100),
    (3, 65063, 65603, "127.0.0.63", 100),
]
PATHS_V6 = [
    (1, 65071, 65701, "2001:db8::71", 200),
    (2, 65072, 65702, "2001:db8::72", 100),
]


def world():
    rib, config = build_world()
    for family, prefix, paths in (
        (V4, "10.60.0.0/16", PATHS_V4),
        (V6, "2001:db8:60::/48", PATHS_V6),
    ):
        for path_id, first, origin, hop, pref in paths:
            a = make_attributes(((AS_SEQUENCE, (first, origin)),), next_hop=hop, local_pref=pref)
            rib.apply(RoutesAnnounced(EDGE1, family, (prefix,), (path_id,), a))
    return rib, config


def flow(dst: str, next_hop: str | None = None, src: str = "10.1.0.5") -> dict:
    f = {"exporter": EXPORTER, "src_addr": src, "dst_addr": dst}
    if next_hop is not None:
        f["next_hop"] = next_hop
    return f


# (flow, dst peer AS, dst origin AS, mismatch flag)
CASES = [
    (flow("10.60.1.1", "127.0.0.62"), 65062, 65602, False),  # not the best: chosen by hop
    (flow("10.60.1.1", "127.0.0.63"), 65063, 65603, False),
    (flow("10.60.1.1", "127.0.0.61"), 65061, 65601, False),  # the best itself
    (flow("10.60.1.1", "127.0.0.77"), 65061, 65601, True),  # none has it: best, flagged
    (flow("10.60.1.1"), 65061, 65601, False),  # no next hop: best
    (flow("10.60.1.1", ""), 65061, 65601, False),
    (flow("10.60.1.1", "0.0.0.0"), 65061, 65601, False),  # exporters' "none"
    (flow("10.1.2.3", "127.0.0.5"), 65004, 65005, False),  # one path: no choice, no flag
    (flow("2001:db8:60::1", "2001:db8::72", src="2001:db8::5"), 65072, 65702, False),
    (flow("2001:db8:60::1", "2001:db8::99", src="2001:db8::5"), 65071, 65701, True),
    (flow("2001:db8:60::1", "::", src="2001:db8::5"), 65071, 65701, False),
]
IDS = [f"{c[0]['dst_addr']}-nh-{c[0].get('next_hop', 'absent') or 'empty'}" for c in CASES]


@pytest.mark.parametrize(("record", "peer", "origin", "mismatch"), CASES, ids=IDS)
def test_one_flow_takes_the_path_with_its_next_hop(record, peer, origin, mismatch):
    rib, config = world()
    a = Resolver(rib, config).resolve_one(record)
    assert a.error is None
    assert (a.dst_peer_as, a.dst_origin_as) == (peer, origin)
    assert bool(a.flags & DST_NEXT_HOP_MISMATCH) == mismatch
    real_hop = record.get("next_hop") not in (None, "", "0.0.0.0", "::")
    if real_hop and not mismatch and a.dst_route[1].path_id:  # ADD-PATH: the flow's hop
        assert pack_address(a.dst_route[1].attributes.next_hop) == pack_address(record["next_hop"])


def test_a_batch_agrees_with_one_flow_whether_views_are_built_or_not():
    """Mixed batch: the same dst with several next hops and none (the memo is
    keyed on the hop), over the compiled views and over exact lookups."""
    records = [c[0] for c in CASES] * 3
    for inline in (True, False):
        rib, config = world()
        r = Resolver(rib, config, build_views_inline=inline)
        if not inline:
            r.views.refresh()
        res = r.resolve_dicts(records)
        assert res.errors == []
        for i, (record, peer, origin, mismatch) in enumerate(CASES * 3):
            assert (int(res.dst_peer_as[i]), int(res.dst_origin_as[i])) == (peer, origin), i
            assert bool(int(res.flags[i]) & DST_NEXT_HOP_MISMATCH) == mismatch, i
            one = r.resolve_one(record)
            assert one.flags == int(res.flags[i]), i
            m = res.routes[int(res.dst_route[i])][1]
            assert m.path_id == one.dst_route[1].path_id, i


def test_a_bad_next_hop_is_that_flows_error_only():
    rib, config = world()
    res = Resolver(rib, config).resolve_dicts(
        [flow("10.60.1.1", "nope"), flow("10.60.1.1", "127.0.0.62"), flow("10.60.1.1", 7)]
    )
    errors = {i: (code, msg) for i, code, msg in res.errors}
    assert errors[0][0] == "bad_address" and errors[0][1].startswith("next_hop:")
    assert errors[2] == ("bad_record", "next_hop: must be a string, not int")
    assert 1 not in errors and int(res.dst_peer_as[1]) == 65062
    one = Resolver(rib, config).resolve_one(flow("10.60.1.1", "nope"))
    assert one.error[0] == "bad_address"


@contextmanager
def served():
    rib, config = world()
    servicer = AttributionServicer(
        rib, Resolver(rib, config), lambda: config, lambda: ReloadResult(ok=True)
    )
    server, port = start_server(servicer, "127.0.0.1:0", 4 << 20)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def test_grpc_one_flow_rows_and_the_client_library_choose_by_next_hop():
    records = [c[0] for c in CASES]
    with served() as target:
        with channel(Connection(target)) as ch:
            stub = pb_grpc.AttributionStub(ch)
            ones = [stub.Resolve(pb.Flow(**r), timeout=60) for r in records]
            rows = stub.ResolveBatch(
                pb.FlowBatch(flows=pb.FlowRows(flows=[pb.Flow(**r) for r in records])),
                timeout=60,
            ).attributions
        answers = list(resolve_dicts(target, records))  # columns, packed, stream routes
    for (_, peer, origin, mismatch), one, row, doc in zip(CASES, ones, rows, answers, strict=True):
        for a in (one, row):
            assert (a.dst_peer_as, a.dst_origin_as) == (peer, origin)
            assert bool(a.flags & DST_NEXT_HOP_MISMATCH) == mismatch
        assert (doc["dst_peer_as"], doc["dst_origin_as"]) == (peer, origin)
        assert doc["dst_next_hop_mismatch"] is mismatch
        assert doc["error"] is None


def test_grpc_columns_carry_the_next_hop_column():
    cases = [c for c in CASES if c[0]["dst_addr"].startswith("10.")]
    hops = b"".join(
        pack_address(c[0]["next_hop"]) if c[0].get("next_hop") else b"\x00" * 16 for c in cases
    )
    cols = pb.FlowColumns(
        exporters=[EXPORTER],
        exporter=[0] * len(cases),
        src_addr=b"".join(pack_address(c[0]["src_addr"]) for c in cases),
        dst_addr=b"".join(pack_address(c[0]["dst_addr"]) for c in cases),
        next_hop=hops,
    )
    with served() as target, channel(Connection(target)) as ch:
        stub = pb_grpc.AttributionStub(ch)
        answer = stub.ResolveBatch(pb.FlowBatch(columns=cols), timeout=60).columns
        short = pb.FlowColumns()
        short.CopyFrom(cols)
        short.next_hop = hops[:-1]
        with pytest.raises(grpc.RpcError) as err:
            stub.ResolveBatch(pb.FlowBatch(columns=short), timeout=60)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "next_hop must hold 16 bytes per flow" in err.value.details()
    assert list(answer.dst_peer_as) == [c[1] for c in cases]
    assert [bool(f & DST_NEXT_HOP_MISMATCH) for f in answer.flags] == [c[3] for c in cases]


@pytest.mark.parametrize(("record", "peer", "origin", "mismatch"), CASES, ids=IDS)
def test_explain_follows_the_next_hop_and_agrees_with_the_answer(record, peer, origin, mismatch):
    with served() as target, channel(Connection(target)) as ch:
        e = pb_grpc.AttributionStub(ch).Explain(pb.Flow(**record), timeout=60)
    assert list(e.mismatches) == []
    assert (e.dst.peer_as, e.dst.origin_as) == (peer, origin)
    causes = {f.flag: f.reason for f in e.flags}
    assert ("dst_next_hop_mismatch" in causes) == mismatch
    if mismatch:
        assert "is none of" in causes["dst_next_hop_mismatch"]
