"""Reports read from ClickHouse's 5-minute rollup give the numbers of the flows themselves.

Flows are stored as `attribution enrich --output chdb:DIR` stores them (the
sink, the schema's materialised view filling ``flows_5m``); the report over
that store (``attribution report chdb:DIR``) must equal, table for table, the
report over the same flows read one by one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from attribution.convert import error_answer
from attribution.enrich import Record
from attribution.reports.engine import DuckDBBackend
from attribution.reports.engine_clickhouse import ClickHouseBackend, connect
from attribution.reports.pipeline import Ingest, IngestError
from attribution.reports.readers import BadLines
from attribution.reports.records import Normalizer
from attribution.reports.report import ReportBuilder
from attribution.reports.rollup import ingest_store
from attribution.sinks import open_sink
from tests.reports.conftest import DATA
from tests.reports.test_clickhouse_engine import assert_identical, synthetic_flows

ANSWER_KEYS = (
    "src_origin_as",
    "src_peer_as",
    "src_as_path",
    "dst_origin_as",
    "dst_peer_as",
    "dst_as_path",
    "src_origin_provenance",
    "dst_origin_provenance",
)
# the synthetic flows are from 2024: keep them past the default TTLs
STORE_OPTIONS = "?ttl_days=36500&rollup_ttl_days=36500"


def store(flows, path) -> str:
    """Write flows through the chdb sink, as enrich does; the spec of the store."""
    spec = f"chdb:{path}"
    sink = open_sink(spec + STORE_OPTIONS + "&batch=2000")
    try:
        for i in range(0, len(flows), 512):
            chunk = flows[i : i + 512]
            records = [Record("t", "native", f, f) for f in chunk]
            answers = []
            for f in chunk:
                answer = error_answer("", "")
                answer.update({k: f[k] for k in ANSWER_KEYS}, error=None, error_code=None)
                answers.append(answer)
            sink.write_batch(records, answers)
    finally:
        sink.close()
    return spec


def colliding(flows):
    """The flows, each twice more in its own 5 minutes and key: the rollup sums them."""
    out = list(flows)
    for f in flows:
        bucket = f["time"] - f["time"] % 300
        out.append({**f, "time": bucket + 7, "bytes": f["bytes"] // 3 + 1})
        out.append({**f, "time": bucket + 299, "packets": 1})
    return out


def report_from_flows(flows, config, start=None, end=None):
    normalize = Normalizer(config, start, end)
    rows = []
    for f in flows:
        try:
            rows.append(normalize(f, 0))
        except Exception:
            continue  # outside the window
    backend = DuckDBBackend()
    try:
        backend.add_rows(rows)
        backend.finish_load()
        return ReportBuilder(backend, config, start, end).build({})
    finally:
        backend.close()


def report_from_store(spec, config, backend, start=None, end=None):
    try:
        ingest = Ingest(config, backend, BadLines())
        stats = ingest_store(ingest, spec, start, end)
        backend.finish_load()
        return ReportBuilder(backend, config, start, end).build({}), stats
    finally:
        backend.close()


def test_a_report_over_the_rollup_equals_the_report_over_the_flows(config, tmp_path):
    flows = colliding(synthetic_flows(3000, seed=11))
    spec = store(flows, tmp_path / "db")
    expected = report_from_flows(flows, config)
    got, stats = report_from_store(spec, config, DuckDBBackend())
    assert stats.records == 3000  # rolled up: a row per 5 minutes and key ...
    assert got.meta["records"] == len(flows)  # ... standing for every flow
    assert_identical(expected, got)
    # and with the aggregation in ClickHouse too, on the store's own engine
    in_clickhouse, _ = report_from_store(spec, config, ClickHouseBackend(connect(spec)))
    assert_identical(expected, in_clickhouse)


def test_a_window_on_5_minute_boundaries_reads_the_same_flows(config, tmp_path):
    flows = colliding(synthetic_flows(2000, seed=12))
    spec = store(flows, tmp_path / "db")
    start, end = 1708300800, 1710000000  # 2024-02-19 .. 2024-03-09T16:00Z, both multiples of 300
    expected = report_from_flows(flows, config, start, end)
    got, _ = report_from_store(spec, config, DuckDBBackend(), start, end)
    assert_identical(expected, got)


def test_a_window_or_bucket_finer_than_the_rollup_is_refused(config, tmp_path):
    spec = store(synthetic_flows(10), tmp_path / "db")
    with pytest.raises(IngestError, match="--from must fall on a 5-minute boundary"):
        report_from_store(spec, config, DuckDBBackend(), start=1708300801)
    fine = type(config)(**{**config.__dict__, "bucket_seconds": 60})
    with pytest.raises(IngestError, match=r"bucket_seconds \(60\) must be a multiple of it"):
        report_from_store(spec, fine, DuckDBBackend())


def test_a_missing_store_table_fails_that_input_with_the_reason(config, tmp_path):
    spec = store(synthetic_flows(10), tmp_path / "db")
    with pytest.raises(IngestError, match=r"attribution\.nosuch_5m"):
        report_from_store(spec + "?table=nosuch", config, DuckDBBackend())


def test_report_command_reads_a_chdb_store_like_the_flow_file(config, tmp_path):
    flows = synthetic_flows(2000, seed=13)
    spec = store(flows, tmp_path / "db")
    lines = tmp_path / "flows.jsonl"
    lines.write_text("".join(json.dumps(f) + "\n" for f in flows))
    docs = []
    for source in (os.fspath(lines), spec):
        cmd = [sys.executable, "-m", "attribution.cli", "report", "-f", "json"]
        cmd += ["-c", os.fspath(DATA / "report.toml"), source]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        assert run.returncode == 0, run.stderr
        doc = json.loads(run.stdout)
        for key in ("generated_at", "inputs"):
            doc["meta"].pop(key)
        docs.append(doc)
    assert docs[0] == docs[1]


def test_the_rollup_holds_the_sums_of_the_flows_per_bucket_and_key(tmp_path):
    """``flows_5m`` (filled by the view, summed by the table) read with sum()
    per 5 minutes and key equals the same sums over ``flows`` itself; flows
    with an error are not in it. The view does not group: the table sums each
    insert's rows of one key (and parts at merges), so this holds for rows
    colliding within an insert, across inserts, and both."""
    flows = colliding(synthetic_flows(1500, seed=14))  # inserts of 2,000: collisions across them
    spec = store(flows, tmp_path / "db")
    conn = connect(spec)
    try:
        conn.command(
            "INSERT INTO attribution.flows (time, exporter, in_if, bytes, packets, error_code) "
            "VALUES (toDateTime(1709251200, 'UTC'), '192.0.2.1', 1, 999, 9, 'no_route')"
        )
        keys = (
            "exporter, in_if, out_if, sampling_rate, src_origin_as, src_peer_as, src_via_as, "
            "dst_origin_as, dst_peer_as, dst_via_as"
        )
        rollup = conn.rows(
            f"SELECT toUnixTimestamp(time), {keys}, src_local, dst_local, sum(bytes), "
            "sum(packets), sum(flows) FROM attribution.flows_5m GROUP BY ALL ORDER BY ALL"
        )
        direct = conn.rows(
            "SELECT toUnixTimestamp(toStartOfInterval(time, INTERVAL 300 SECOND)), "
            f"{keys}, src_origin_provenance = 'local', dst_origin_provenance = 'local', "
            "sum(bytes), sum(packets), count() FROM attribution.flows WHERE error_code = '' "
            "GROUP BY ALL ORDER BY ALL"
        )
        stored = conn.rows("SELECT count() FROM attribution.flows_5m")[0][0]
    finally:
        conn.close()
    assert rollup == direct
    assert len(rollup) == 1500 and sum(r[-1] for r in rollup) == len(flows)
    assert stored < len(flows)  # summed as they were stored, not a row a flow
