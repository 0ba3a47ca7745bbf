"""Override dry-run: DiffOverrides through a real gRPC server and client, and
`attribution overrides diff` end to end; the recent-flows ring it samples."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import replace

import grpc
import numpy as np
import pytest

from attribution.client import Connection, channel
from attribution.config import ApiSettings
from attribution.flowring import BatchKeys, FlowRing
from attribution.grpc_service import AttributionServicer, ReloadResult, start_server
from attribution.resolver import Resolver, pack_address
from attribution.v1 import attribution_pb2 as pb
from attribution.v1 import attribution_pb2_grpc as pb_grpc
from tests.attribution.helpers import CONFIG, build_world

EXPORTER = "127.0.1.1"
WAIT = 60

# pni-b moves to AS65030; a new rule takes in_if 40; late-pni comes after
# pni-b on the same port (shadowed: it can never match).
CANDIDATE = (
    CONFIG.replace("peer_as = 65020", "peer_as = 65030")
    + f"""
[[overrides]]
name = "new-ix"
exporter = "{EXPORTER}"
in_if = 40
peer_as = 65040

[[overrides]]
name = "late-pni"
exporter = "{EXPORTER}"
in_if = 30
peer_as = 65099
"""
)


def flow(src: str, dst: str = "10.1.2.3", in_if: int = 0, **kw) -> dict:
    return {"exporter": EXPORTER, "src_addr": src, "dst_addr": dst, "in_if": in_if, **kw}


SAMPLE = [
    flow("10.1.0.5", in_if=30, bytes=1000, packets=2),  # pni-b: 65020 -> 65030
    flow("10.9.0.5", in_if=30, bytes=500, packets=1),  # pni-b: 65020 -> 65030
    flow("10.1.0.5", in_if=40, bytes=70, packets=1),  # BGP 65001 -> new-ix 65040
    flow("10.1.0.5", in_if=20, src_mac="02:00:00:00:00:0a", bytes=9),  # ix-peer-a: unchanged
    flow("10.1.0.5", in_if=5, bytes=3),  # no rule either side
]


@contextmanager
def served(config_text: str = CONFIG, api: ApiSettings | None = None, recent: int | None = None):
    rib, config = build_world(config_text)
    if api is not None:
        config = replace(config, api=api)
    if recent is not None:
        config = replace(config, recent_flows=recent)
    resolver = Resolver(rib, config)
    servicer = AttributionServicer(rib, resolver, lambda: config, lambda: ReloadResult(ok=True))
    server, port = start_server(servicer, "127.0.0.1:0", 4 << 20, api)
    try:
        yield f"127.0.0.1:{port}", resolver
    finally:
        server.stop(grace=None)


def diff(target: str, text: str, flows=(), token: str = "", name: str = "new.toml"):
    with channel(Connection(target, token=token)) as ch:
        request = pb.DiffOverridesRequest(
            config_text=text, config_name=name, flows=[pb.Flow(**f) for f in flows]
        )
        return pb_grpc.AttributionStub(ch).DiffOverrides(request, timeout=WAIT)


def changes(reply) -> set[tuple]:
    return {
        (c.old_rule, c.new_rule, c.old_src_peer_as, c.new_src_peer_as, c.flows, c.bytes, c.packets)
        for c in reply.changes
    }


def test_diff_groups_changed_flows_and_bytes_by_rule_and_old_to_new_src_peer_as():
    with served() as (target, _):
        reply = diff(target, CANDIDATE, SAMPLE)
    assert reply.changed and not reply.recent
    assert reply.flows == 5 and reply.bad_flows == 0
    assert changes(reply) == {
        ("pni-b", "pni-b", 65020, 65030, 2, 1500, 3),
        ("", "new-ix", 65001, 65040, 1, 70, 1),
    }
    assert reply.other_changed_flows == 0
    assert list(reply.unmatched_rules) == ["late-pni"]
    assert [(s.rule, s.shadowed_by, s.new) for s in reply.shadowed_rules] == [
        ("late-pni", "pni-b", True)
    ]


def test_the_running_config_as_candidate_changes_nothing_and_lists_unmatched_rules():
    with served() as (target, _):
        reply = diff(target, CONFIG, [flow("10.1.0.5", in_if=30)])
    assert not reply.changed
    assert list(reply.changes) == [] and reply.other_changed_flows == 0
    assert list(reply.unmatched_rules) == ["ix-peer-a"]
    assert list(reply.shadowed_rules) == []


def test_a_rule_removed_gives_its_flows_back_to_bgp():
    without_pni = CONFIG[: CONFIG.index('[[overrides]]\nname = "pni-b"')]
    with served() as (target, _):
        reply = diff(target, without_pni, [flow("10.1.0.5", in_if=30, bytes=10)])
    assert changes(reply) == {("pni-b", "", 65020, 65001, 1, 10, 0)}


def test_changes_outside_overrides_are_counted_as_other_answer_changes():
    highest = CONFIG.replace(
        'grpc_listen = "127.0.0.1:0"', 'grpc_listen = "127.0.0.1:0"\nas_set_policy = "highest"'
    )
    with served() as (target, _):
        reply = diff(target, highest, [flow("10.1.0.5", dst="10.9.1.1"), flow("10.1.0.5")])
    assert reply.changed and list(reply.changes) == []
    assert reply.other_changed_flows == 1  # dst origin from the trailing AS_SET


def test_a_broken_candidate_is_refused_naming_file_line_and_key():
    broken = CANDIDATE.replace("in_if = 40", 'in_if = "forty"')
    line = broken.splitlines().index('in_if = "forty"') + 1
    with served() as (target, _), pytest.raises(grpc.RpcError) as err:
        diff(target, broken, SAMPLE)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(f"new.toml:{line}: overrides[2].in_if")


def test_unreadable_sample_records_are_counted_and_left_out():
    with served() as (target, _):
        reply = diff(target, CANDIDATE, [flow("nope", in_if=30), flow("10.1.0.5", in_if=30)])
    assert reply.flows == 1 and reply.bad_flows == 1
    assert changes(reply) == {("pni-b", "pni-b", 65020, 65030, 1, 0, 0)}


def test_without_flows_the_sample_is_the_flows_the_service_answered_last():
    with served(recent=3) as (target, resolver):
        with channel(Connection(target)) as ch:
            stub = pb_grpc.AttributionStub(ch)
            rows = [pb.Flow(**f) for f in SAMPLE]  # rows: bytes and packets kept
            stub.ResolveBatch(pb.FlowBatch(flows=pb.FlowRows(flows=rows)), timeout=WAIT)
        counted = resolver.counters()["flows_resolved"]
        reply = diff(target, CANDIDATE)
        # the ring keeps the last 3: in_if 40, 20 (MAC) and 5
        assert reply.recent and reply.flows == 3
        assert changes(reply) == {("", "new-ix", 65001, 65040, 1, 70, 1)}
        # a dry-run is neither counted as answered flows nor kept in the ring
        assert resolver.counters()["flows_resolved"] == counted
        assert len(resolver.recent) == 3
        assert diff(target, CANDIDATE).flows == 3


def test_columns_batches_fill_the_ring_too():
    src = b"".join(pack_address(a) for a in ("10.1.0.5", "10.9.0.5"))
    dst = b"".join(pack_address(a) for a in ("10.1.2.3", "10.1.2.3"))
    cols = pb.FlowColumns(exporters=[EXPORTER], exporter=[0, 0], src_addr=src, dst_addr=dst)
    cols.in_if.extend([30, 7])
    with served() as (target, _):
        with channel(Connection(target)) as ch:
            stub = pb_grpc.AttributionStub(ch)
            stub.ResolveBatch(pb.FlowBatch(columns=cols, packed_records=True), timeout=WAIT)
        reply = diff(target, CANDIDATE)
    assert reply.recent and reply.flows == 2
    assert changes(reply) == {("pni-b", "pni-b", 65020, 65030, 1, 0, 0)}


def test_a_read_token_may_dry_run(tmp_path):
    read, admin = tmp_path / "read", tmp_path / "admin"
    read.write_text("r-token\n")
    admin.write_text("a-token\n")
    api = ApiSettings(read_token_file=str(read), admin_token_file=str(admin))
    with served(api=api) as (target, _):
        assert diff(target, CANDIDATE, SAMPLE, token="r-token").changed
        with pytest.raises(grpc.RpcError) as err:
            diff(target, CANDIDATE, SAMPLE)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


# -- the CLI -------------------------------------------------------------------


def cli(*argv: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "attribution.cli", "overrides", "diff", *argv],
        input=stdin,
        capture_output=True,
        timeout=120,
    )


def test_cli_exit_status_says_whether_anything_changes(tmp_path):
    new, same, broken = tmp_path / "new.toml", tmp_path / "same.toml", tmp_path / "broken.toml"
    new.write_text(CANDIDATE)
    same.write_text(CONFIG)
    broken.write_text(CANDIDATE.replace("peer_as = 65040", "peer_as = -1"))
    flows = tmp_path / "flows.jsonl"
    flows.write_text("".join(json.dumps(f) + "\n" for f in SAMPLE) + "not json\n")
    with served() as (target, _):
        changed = cli("--target", target, "--config", str(new), str(flows))
        unchanged = cli("--target", target, "--config", str(same), str(flows))
        as_json = cli(
            "--target", target, "--config", str(new), "--json", "-", stdin=flows.read_bytes()
        )
        refused = cli("--target", target, "--config", str(broken), str(flows))
    assert changed.returncode == 1, changed.stderr
    out = changed.stdout.decode()
    assert "sample: 5 flows given (1 unreadable, left out)" in out
    assert "pni-b -> pni-b: AS65020 -> AS65030: 2 flows, 1500 bytes, 3 packets" in out
    assert "(no rule) -> new-ix: AS65001 -> AS65040: 1 flows, 70 bytes" in out
    assert "rules matching no flow of the sample: late-pni" in out
    assert "rule late-pni is shadowed by pni-b (new)" in out
    assert unchanged.returncode == 0, unchanged.stderr
    assert "src peer AS: no flow changes" in unchanged.stdout.decode()
    assert as_json.returncode == 1, as_json.stderr
    doc = json.loads(as_json.stdout)
    assert doc["changed"] and doc["flows"] == 5 and doc["bad_flows"] == 1
    assert {"old_rule": None, "new_rule": "new-ix", "old_src_peer_as": 65001}.items() <= (
        next(c for c in doc["changes"] if c["new_rule"] == "new-ix").items()
    )
    assert refused.returncode == 2
    line = CANDIDATE.splitlines().index("peer_as = 65040") + 1
    assert f"{broken}:{line}: overrides[2].peer_as" in refused.stderr.decode()


def test_cli_an_unreachable_service_is_an_error_not_no_change(tmp_path):
    new = tmp_path / "new.toml"
    new.write_text(CANDIDATE)
    p = cli("--target", "127.0.0.1:1", "--config", str(new))
    assert p.returncode == 2
    assert "UNAVAILABLE" in p.stderr.decode()


# -- the ring ------------------------------------------------------------------


def keys(n: int, first: int = 0) -> BatchKeys:
    src = b"".join(pack_address(f"10.0.{i // 256}.{i % 256}") for i in range(first, first + n))
    return BatchKeys(
        exporters=np.array([pack_address(EXPORTER)], dtype="V16"),
        exporter=np.zeros(n, dtype=np.int64),
        src=src,
        dst=src,
        in_if=np.arange(first, first + n, dtype=np.int64),
        src_mac=None,
        keep=np.ones(n, dtype=bool),
    )


def test_the_ring_keeps_the_last_n_flows_oldest_first_across_wraps():
    ring = FlowRing(5)
    ring.add(keys(3))
    assert ring.snapshot()["in_if"].tolist() == [0, 1, 2]
    ring.add(keys(4, first=3))
    assert ring.snapshot()["in_if"].tolist() == [2, 3, 4, 5, 6]
    ring.add(keys(12, first=7))  # larger than the ring: its last 5
    assert ring.snapshot()["in_if"].tolist() == [14, 15, 16, 17, 18]
    assert len(ring) == 5


def test_the_ring_skips_unreadable_flows_and_can_be_off():
    b = keys(4)
    b.keep[1] = False
    ring = FlowRing(10)
    ring.add(b)
    assert ring.snapshot()["in_if"].tolist() == [0, 2, 3]
    off = FlowRing(0)
    off.add(keys(4))
    assert len(off) == 0 and len(off.snapshot()) == 0
