"""`attribution ix show` and the ListIx RPC over a real gRPC server; bad sources shown."""

from __future__ import annotations

import orjson
import pytest

from attribution.cli import main
from attribution.grpc_service import AttributionServicer, ReloadResult, start_server
from attribution.ix import IxLearner
from attribution.resolver import Resolver
from tests.attribution.ix_world import (
    MAC_A,
    MAC_CONFLICT,
    build_ix_world,
    ix_config_text,
    write_inputs,
)


@pytest.fixture
def served(tmp_path):
    neighbors, pdb = write_inputs(tmp_path)
    rib, config = build_ix_world(ix_config_text(neighbors, pdb))
    resolver = Resolver(rib, config)
    learner = IxLearner(rib, resolver.ix, config)
    learner.refresh(force=True)
    servicer = AttributionServicer(rib, resolver, lambda: config, lambda: ReloadResult(ok=True))
    servicer.ix_states = learner.status
    server, port = start_server(servicer, "127.0.0.1:0", 64 << 20)
    yield f"127.0.0.1:{port}", learner, tmp_path
    server.stop(grace=None)


def test_ix_show_json_lists_each_mac_with_its_facts(served, capsys):
    target, _, _ = served
    assert main(["ix", "show", "--json", "--target", target]) == 0
    (ix,) = orjson.loads(capsys.readouterr().out)["ix"]
    assert (ix["name"], ix["router"], ix["in_if"]) == ("ix-test", "edge1", [40])
    assert ix["learned"] == 4 and ix["conflicts"] == 1
    macs = {m["mac"]: m for m in ix["macs"]}
    assert macs[MAC_A]["peer_as"] == 65101
    assert macs[MAC_A]["addresses"] == ["10.99.0.11", "2001:db8:99::11"]
    assert {f["source"] for f in macs[MAC_A]["facts"]} == {"rib"}
    assert macs[MAC_CONFLICT]["conflict"] and macs[MAC_CONFLICT]["peer_as"] is None
    assert ix["neighbors"]["kind"] == "ip-json" and ix["neighbors"]["error"] is None
    assert ix["peeringdb"]["entries"] == 1


def test_ix_show_text_names_a_failed_source_and_its_refused_entries(served, capsys):
    target, learner, tmp = served
    (tmp / "neigh.json").write_bytes(b'[{"dst": "10.99.0.11", "lladdr": "nope"}]')
    learner.refresh(force=True)
    (tmp / "neigh.json").write_bytes(b"not json")
    learner.refresh(force=True)
    assert main(["ix", "show", "ix-test", "--target", target]) == 0
    out = capsys.readouterr().out
    assert "IX ix-test: 127.0.0.11, 127.0.1.1 in_if 40" in out
    assert "refused: json 1, mac 1" in out
    assert "LAST READ FAILED: json: not JSON" in out
    assert "02:00:00:00:01:01  65101" in out  # the last good table still answers


def test_ix_show_of_an_unknown_ix_says_so(served, capsys):
    target, _, _ = served
    assert main(["ix", "show", "nowhere", "--target", target]) == 1
    assert "no IX named 'nowhere'" in capsys.readouterr().err


def test_packed_stream_flow_json_and_rows_batches_carry_the_learned_answer(served):
    """The client's packed records + stream route dictionary, and `flows` batches,
    give what the one-flow path gives; flow JSON names the provenance and the flag."""
    from attribution.client import resolve_dicts
    from attribution.v1 import attribution_pb2 as pb
    from attribution.v1 import attribution_pb2_grpc as pb_grpc
    from tests.attribution.ix_world import EXPORTER, PORT

    target, _, _ = served
    base = {"exporter": EXPORTER, "src_addr": "10.1.2.3", "dst_addr": "10.0.0.1", "in_if": PORT}
    flows = [
        {**base, "src_mac": MAC_A},
        {**base, "src_mac": MAC_CONFLICT},
        {**base, "src_addr": "2001:db8:1::5", "dst_addr": "2001:db8::1", "src_mac": MAC_A},
        base,
    ]
    out = list(resolve_dicts(target, flows))
    assert [a["src_peer_as"] for a in out] == [65101, 65004, 65101, 65004]
    assert [a["src_peer_provenance"] for a in out] == ["ix_mac", "bgp", "ix_mac", "bgp"]
    assert [a["src_ix_mac_unknown"] for a in out] == [False, True, False, True]
    assert out[0]["src_asymmetric"] and out[0]["override"] is None
    import grpc

    with grpc.insecure_channel(target) as ch:
        stub = pb_grpc.AttributionStub(ch)
        rows = stub.ResolveBatch(
            pb.FlowBatch(flows=pb.FlowRows(flows=[pb.Flow(**f) for f in flows])), timeout=10
        )
        one = [stub.Resolve(pb.Flow(**f), timeout=10) for f in flows]
    got = [(a.src_peer_as, a.src_peer_provenance, a.flags) for a in rows.attributions]
    assert got == [(a.src_peer_as, a.src_peer_provenance, a.flags) for a in one]
    assert one[0].src_peer_provenance == pb.IX_MAC and one[1].flags & pb.SRC_IX_MAC_UNKNOWN
