"""A running `attribution serve` with [[ix]]: learns from its files, answers over gRPC,
shows in `ix show` and in a real /metrics scrape, and a broken reload keeps the old [[ix]]."""

from __future__ import annotations

import os
import signal

import orjson
import pytest

from attribution.cli import main
from attribution.v1 import attribution_pb2 as pb
from attribution.v1 import attribution_pb2_grpc as pb_grpc
from ribd.speaker import wait_until
from tests.attribution.observed import ServedProcess, metric, router_block

EXPORTER, PORT = "127.0.1.1", 40
GOOD_MAC, OTHER_MAC = "02:00:00:00:01:01", "02:00:00:00:01:02"


def ix_block(tmp: str, in_if: str = f"[{PORT}]") -> str:
    return f"""
[[ix]]
name = "ix-svc"
router = "edge1"
in_if = {in_if}
prefixes = ["10.99.0.0/24"]
neighbors_file = "{tmp}/neigh.csv"
neighbors_format = "csv"
peeringdb_file = "{tmp}/netixlan.json"
refresh_interval = 1
"""


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("ix-svc"))
    with open(f"{tmp}/neigh.csv", "w") as f:
        f.write(f"address,mac\n10.99.0.11,{GOOD_MAC}\n10.99.0.12,{OTHER_MAC}\n10.99.0.13,junk\n")
    with open(f"{tmp}/netixlan.json", "wb") as f:
        f.write(orjson.dumps({"data": [{"asn": 65101, "ipaddr4": "10.99.0.11"},
                                       {"asn": 65102, "ipaddr4": "10.99.0.12"}]}))  # fmt: skip
    s = ServedProcess(router_block("edge1", "127.0.0.2", EXPORTER) + ix_block(tmp))
    s.tmp = tmp  # type: ignore[attr-defined]
    try:
        wait_until(lambda: s.health() is not None, 60, 0.1, "gRPC up")
        yield s
    finally:
        s.stop()


def learned(s, capsys) -> int:
    """MACs learned by the first IX (0 while there is none yet)."""
    assert main(["ix", "show", "--json", "--target", f"127.0.0.1:{s.grpc_port}"]) == 0
    ixes = orjson.loads(capsys.readouterr().out)["ix"]
    return ixes[0]["learned"] if ixes else 0


def ix_doc(s, capsys) -> dict:
    assert main(["ix", "show", "--json", "--target", f"127.0.0.1:{s.grpc_port}"]) == 0
    return orjson.loads(capsys.readouterr().out)["ix"][0]


def test_the_daemon_learns_and_answers_from_the_mac(svc, capsys):
    wait_until(lambda: ix_doc(svc, capsys)["learned"] == 2, 30, 0.2, "two MACs learned")
    stub = pb_grpc.AttributionStub(svc.channel)
    flow = pb.Flow(exporter=EXPORTER, src_addr="192.0.2.1", dst_addr="192.0.2.2", in_if=PORT)
    a = stub.Resolve(pb.Flow(**{**_fields(flow), "src_mac": OTHER_MAC}), timeout=10)
    assert (a.src_peer_as, a.src_peer_provenance) == (65102, pb.IX_MAC)
    b = stub.Resolve(pb.Flow(**{**_fields(flow), "src_mac": "02:00:00:00:0f:0f"}), timeout=10)
    assert b.flags & pb.SRC_IX_MAC_UNKNOWN
    e = stub.Explain(pb.Flow(**{**_fields(flow), "src_mac": OTHER_MAC}), timeout=10)
    assert "AS65102" in e.ix and not e.mismatches


def test_scrape_counts_macs_reads_and_refused_entries(svc, capsys):
    wait_until(lambda: ix_doc(svc, capsys)["learned"] == 2, 30, 0.2, "two MACs learned")
    m = svc.metrics()
    assert metric(m, "attribution_ix_macs", ix="ix-svc", state="learned") == 2
    assert metric(m, "attribution_ix_source_ok", ix="ix-svc", source="csv") == 1
    assert metric(m, "attribution_ix_source_bad_entries_total", ix="ix-svc", source="csv",
                  reason="mac") >= 1  # fmt: skip
    assert metric(m, "attribution_ix_source_reads_total", ix="ix-svc", source="peeringdb",
                  result="ok") >= 1  # fmt: skip


def test_a_broken_ix_reload_keeps_the_running_tables(svc, capsys):
    wait_until(lambda: ix_doc(svc, capsys)["learned"] == 2, 30, 0.2, "two MACs learned")
    with open(svc.config_path) as f:
        good = f.read()
    with open(svc.config_path, "w") as f:
        f.write(good.replace(f"in_if = [{PORT}]", "in_if = []"))
    os.kill(svc.proc.pid, signal.SIGHUP)
    wait_until(lambda: "ix[0].in_if: must list at least one ifIndex" in svc.log_text(), 30, 0.1)
    assert ix_doc(svc, capsys)["learned"] == 2
    with open(svc.config_path, "w") as f:
        f.write(good.replace(f"in_if = [{PORT}]", f"in_if = [{PORT}, 41]"))
    os.kill(svc.proc.pid, signal.SIGHUP)
    wait_until(lambda: ix_doc(svc, capsys)["in_if"] == [PORT, 41], 30, 0.2, "the new ports")
    assert "[[ix]] changed" in svc.log_text()


def _fields(flow: pb.Flow) -> dict:
    return {f.name: v for f, v in flow.ListFields()}


def test_a_reload_that_adds_the_first_ix_starts_learning(tmp_path, capsys):
    tmp = str(tmp_path)
    with open(f"{tmp}/neigh.csv", "w") as f:
        f.write(f"10.99.0.11,{GOOD_MAC}\n")
    with open(f"{tmp}/netixlan.json", "wb") as f:
        f.write(orjson.dumps([{"asn": 65101, "ipaddr4": "10.99.0.11"}]))
    s = ServedProcess(router_block("edge1", "127.0.0.2", EXPORTER))
    try:
        wait_until(lambda: s.health() is not None, 60, 0.1, "gRPC up")
        assert main(["ix", "show", "--target", f"127.0.0.1:{s.grpc_port}"]) == 0
        assert "no [[ix]] configured" in capsys.readouterr().out
        with open(s.config_path, "a") as f:
            f.write(ix_block(tmp))
        os.kill(s.proc.pid, signal.SIGHUP)
        wait_until(lambda: learned(s, capsys) == 1, 30, 0.2, "learned after the reload")
    finally:
        s.stop()
