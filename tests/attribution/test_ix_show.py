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
