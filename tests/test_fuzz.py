"""Bounded, seeded fuzzing of every entry point that takes untrusted input (a few seconds).

The generators are bench/fuzz.py's (``python -m bench.fuzz`` runs them for
as long as you like). Feed lines mutate the real ExaBGP captures when
../shared/data is here and built-in lines always, so this runs anywhere.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from bench.fuzz import (
    FLOW_CONFIG,
    flow_lines,
    fuzz_feed,
    fuzz_flows,
    fuzz_parser,
    fuzz_snapshots,
)
from bench.fuzz_raw import fuzz_raw
from bench.fuzz_service import fuzz_enrich, fuzz_grpc

ROOT = Path(__file__).resolve().parents[1]


def no_crashes(report) -> None:
    assert report.inputs > 0
    details = "\n".join(f"{data[:200]!r}\n{trace}" for data, trace in report.crashes[:3])
    crashed = len(report.crashes)
    assert not crashed, f"{crashed} of {report.inputs} inputs crashed:\n{details}"


@pytest.mark.parametrize("seed", [1, 2])
def test_hostile_lines_through_the_feed_socket_are_read_and_counted(seed: int) -> None:
    """One connection, thousands of hostile lines: it stays up, every bad line is
    counted (as many as the parser and the neighbor list refuse), the last good
    line is applied."""
    no_crashes(fuzz_feed(seed, count=3000))


@pytest.mark.parametrize("seed", [3, 4])
def test_hostile_lines_raise_only_feed_errors_and_the_rib_they_build_snapshots(seed: int) -> None:
    report = fuzz_parser(seed, count=3000, hang=float("inf"))
    no_crashes(report)
    assert 0 < report.refused < report.inputs  # the mutations hit both sides


def test_hostile_snapshots_raise_only_snapshot_errors_and_leave_the_rib_empty() -> None:
    report = fuzz_snapshots(5, count=400, hang=float("inf"))
    no_crashes(report)
    assert report.refused > 0


def test_hostile_flow_records_get_an_error_each() -> None:
    report = fuzz_flows(6, count=1500, hang=float("inf"))
    no_crashes(report)
    assert report.refused > 0


def test_hostile_flow_batches_are_refused_whole_or_answered_as_each_flow_alone() -> None:
    """FlowBatch bytes through the servicer: only INVALID_ARGUMENT escapes, a rows
    batch answers each flow as Resolve does, a columns batch the same in every shape."""
    report = fuzz_grpc(7, count=3000, hang=float("inf"))
    no_crashes(report)
    assert 0 < report.refused < report.inputs


def test_the_batch_checker_catches_a_batch_answer_unlike_the_flow_alone(monkeypatch) -> None:
    from attribution.v1 import attribution_pb2 as pb
    from bench.fuzz_service import WORLD_FLOWS, BatchChecker

    checker = BatchChecker()
    request = pb.FlowBatch(flows=pb.FlowRows(flows=[pb.Flow(**WORLD_FLOWS[0])]))
    assert checker.check(request) is False
    resolve_dicts = checker.resolver.resolve_dicts

    def off_by_one(flows):
        res = resolve_dicts(flows)
        res.dst_origin_as[0] += 1
        return res

    monkeypatch.setattr(checker.resolver, "resolve_dicts", off_by_one)
    with pytest.raises(AssertionError, match="flow 0"):
        checker.check(request)


def test_damaged_collector_files_through_enrich_keep_every_good_record_in_order() -> None:
    report = fuzz_enrich(8, count=60, hang=float("inf"))
    no_crashes(report)
    assert report.refused > 0


def test_the_enrich_checks_catch_a_lost_record_and_counts_that_do_not_add_up() -> None:
    from attribution.enrich_records import Counters
    from bench.fuzz_service import _counted, _in_order

    first, second = b'{"a": 1, "error_code": null}', b'{"a": 2, "error_code": null}'
    _in_order([first, second], [first, b'{"b": 0}', second])
    with pytest.raises(AssertionError, match="missing"):
        _in_order([first, second], [second, first])
    _counted(first + b"\n", Counters(read=2, written=1, bad={"bad_json": 1}), csv=False)
    with pytest.raises(AssertionError):
        _counted(first + b"\n", Counters(read=3, written=1, bad={"bad_json": 1}), csv=False)


def test_attribution_resolve_answers_every_hostile_line_in_order(tmp_path: Path) -> None:
    """The real command against a running service: one output line per input line."""
    from attribution.service import Service

    conf = tmp_path / "attribution.toml"
    conf.write_text(
        FLOW_CONFIG.replace(
            "[[routers]]",
            f'[bgp]\nexabgp = "external"\nfeed_socket = "{tmp_path}/run/feed.sock"\n\n[[routers]]',
            1,
        )
    )
    service = Service(str(conf))
    service.start()
    try:
        rng = random.Random(7)
        lines = [line for line in flow_lines(rng, 600) if line.strip()]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        target = f"127.0.0.1:{service.grpc_port}"
        done = subprocess.run(
            [sys.executable, "-m", "attribution.cli", "resolve", "--target", target],
            input=b"\n".join(lines) + b"\n",
            capture_output=True,
            env=env,
            timeout=300,
            check=False,
        )
    finally:
        service.stop()
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    answers = [orjson.loads(x) for x in done.stdout.splitlines()]
    assert len(answers) == len(lines)
    errors = sum(1 for a in answers if a.get("error"))
    assert 0 < errors < len(lines)
    assert f"{len(lines)} flows, {errors} with errors" in done.stderr.decode()


def test_a_deeply_nested_field_in_a_flow_record_is_a_bad_record_not_a_crash() -> None:
    """What `attribution report` and the Python client hand the resolver: decoded JSON
    whose field is nested 1,000 deep (the error message used to repr it)."""
    import threading

    from attribution.config import parse_config
    from attribution.resolver import Resolver, rows_to_columns
    from ribd.rib import Rib

    nested = orjson.loads(b'{"exporter":"127.0.1.1","src_addr":"10.1.1.1","dst_addr":"10.2.2.2",'
                          b'"in_if":' + b"[" * 1000 + b"]" * 1000 + b"}")  # fmt: skip
    resolver = Resolver(Rib(), parse_config(FLOW_CONFIG, "fuzz.toml"))
    out: list = []

    def run() -> None:  # a fresh thread, as gRPC handlers and report workers are
        try:
            out.append((rows_to_columns([nested])[-1], resolver.resolve_one(nested).error))
        except BaseException as exc:
            out.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    bad, error = out[0]
    assert bad[0][0] == "bad_record" and "in_if" in bad[0][1] and len(bad[0][1]) < 200
    assert error[0] == "bad_record"


@pytest.mark.parametrize("seed", [5, 6])
def test_hostile_raw_updates_raise_only_feed_errors_and_the_rib_they_build_snapshots(
    seed: int,
) -> None:
    """Mutated UPDATE bodies (and lines) in ExaBGP's packets format, through the parser."""
    report = fuzz_raw(seed, count=4000)
    no_crashes(report)
    assert 0 < report.refused < report.inputs
