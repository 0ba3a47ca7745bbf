"""The peering-cost report's aggregation on ClickHouse (chdb, a real engine) and on DuckDB.

The same input goes through both engines and every table, the summary and
the charts must be identical. Link volumes and billing percentiles of a
synthetic month are also computed here in plain Python (nearest rank over
every 5-minute bucket, empty ones counting as 0), independently of the SQL.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from collections import defaultdict
from typing import Any

import pytest

from attribution.reports.engine import DuckDBBackend
from attribution.reports.engine_clickhouse import ClickHouseBackend, connect
from attribution.reports.pipeline import Ingest
from attribution.reports.readers import BadLines
from attribution.reports.records import Normalizer
from attribution.reports.report import Report, ReportBuilder
from tests.reports.conftest import DATA

EXPORTER = "192.0.2.1"
LINK_IFS = {10: "transit-a", 11: "transit-b", 20: "ix-fra", 30: "pni-google", 40: "cust-acme"}


def engines() -> list[tuple[str, Any]]:
    return [("duckdb", DuckDBBackend), ("chdb", lambda: ClickHouseBackend(connect("chdb")))]


def report_from_files(make_backend, paths, config) -> Report:
    backend = make_backend()
    try:
        ingest = Ingest(config, backend, BadLines())
        for i, path in enumerate(paths):
            ingest.add_file(os.fspath(path), "auto", file_id=i)
        backend.finish_load()
        return ReportBuilder(backend, config).build({})
    finally:
        backend.close()


def report_from_rows(make_backend, flows, config, chunk: int = 997) -> Report:
    normalize = Normalizer(config)
    rows = [normalize(f, 0) for f in flows]
    backend = make_backend()
    try:
        for i in range(0, len(rows), chunk):  # several staging batches
            backend.add_rows(rows[i : i + chunk])
        backend.finish_load()
        return ReportBuilder(backend, config).build({})
    finally:
        backend.close()


def assert_identical(a: Report, b: Report) -> None:
    assert a.meta == b.meta
    assert a.summary == b.summary
    assert list(a.tables) == list(b.tables)
    for name in a.tables:
        assert a.tables[name].rows == b.tables[name].rows, name
    assert list(a.charts) == list(b.charts)
    for name in a.charts:
        assert a.charts[name].buckets == b.charts[name].buckets, name
        assert a.charts[name].series == b.charts[name].series, name


def synthetic_flows(n: int = 6000, seed: int = 7) -> list[dict[str, Any]]:
    """Flows over 40 days across a month boundary, every link, sampled and not, local ones."""
    rnd = random.Random(seed)
    start = 1709251200 - 20 * 86400  # 2024-02-10; March starts 20 days in
    ifs = [*LINK_IFS, 0, 99]
    origins = [15169, 2906, 13335, 3356, 64700, 64701, 65000]
    flows = []
    for _ in range(n):
        src_origin, dst_origin = rnd.choice(origins), rnd.choice(origins)
        peer = rnd.choice([64500, 64501, 64600, 15169, 64999, 0])
        flows.append(
            {
                "time": start + rnd.randrange(40 * 86400),
                "exporter": rnd.choice([EXPORTER, EXPORTER, EXPORTER, "192.0.2.9"]),
                "in_if": rnd.choice(ifs),
                "out_if": rnd.choice(ifs),
                "bytes": rnd.randrange(40, 1_500_000),
                "packets": rnd.randrange(1, 1000),
                "sampling_rate": rnd.choice([0, 0, 1, 100]),
                "src_origin_as": src_origin,
                "src_peer_as": peer,
                "src_as_path": [peer, peer, rnd.choice(origins), src_origin] if peer else [],
                "dst_origin_as": dst_origin,
                "dst_peer_as": rnd.choice([64500, 64501, 64600, 0]),
                "dst_as_path": [64500, dst_origin],
                "src_origin_provenance": "local" if src_origin == 65000 else "bgp",
                "dst_origin_provenance": "bgp",
            }
        )
    return flows


def test_sample_files_give_identical_tables_on_duckdb_and_clickhouse(config):
    paths = [DATA / "attributed.jsonl", DATA / "pmacct.json"]
    (_, duck), (_, ch) = (
        (name, report_from_files(make, paths, config)) for name, make in engines()
    )
    assert duck.tables["links"].rows  # not trivially equal
    assert_identical(duck, ch)


def test_a_synthetic_month_gives_identical_tables_and_independently_computed_percentiles(config):
    flows = synthetic_flows()
    reports = {name: report_from_rows(make, flows, config) for name, make in engines()}
    assert_identical(reports["duckdb"], reports["chdb"])
    assert len(reports["duckdb"].tables["link_months"].rows) == 10  # two months, five links

    # the links table, computed here: rate = the record's, else the exporter's (1000), else 1
    bucket = 300
    lo = min(f["time"] for f in flows) // bucket * bucket
    hi = max(f["time"] for f in flows) // bucket * bucket + bucket
    n = (hi - lo) // bucket
    per_bucket: dict[tuple[str, str], dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for f in flows:
        if f["exporter"] != EXPORTER:
            continue
        rate = f["sampling_rate"] or 1000
        b = f["time"] // bucket * bucket
        if f["in_if"] in LINK_IFS:
            per_bucket[(LINK_IFS[f["in_if"]], "in")][b] += f["bytes"] * rate
        if f["out_if"] in LINK_IFS:
            per_bucket[(LINK_IFS[f["out_if"]], "out")][b] += f["bytes"] * rate
    assert len(per_bucket) == 10  # every link, both sides
    k = math.ceil(0.95 * n)
    for engine, report in reports.items():
        links = {r["link"]: r for r in report.tables["links"].rows}
        for (link, side), volumes in per_bucket.items():
            ordered = sorted([*volumes.values(), *[0.0] * (n - len(volumes))])
            p95 = ordered[k - 1] * 8 / bucket / 1e6
            row = links[link]
            assert row[f"bytes_{side}"] == pytest.approx(sum(volumes.values())), (engine, link)
            assert row[f"p95_{side}_mbps"] == pytest.approx(p95), (engine, link, side)
            assert row[f"peak_{side}_mbps"] == pytest.approx(
                max(volumes.values()) * 8 / bucket / 1e6
            )


def test_staging_in_small_chunks_gives_the_same_report(config):
    flows = synthetic_flows(1500, seed=3)

    def small_chunks():
        return ClickHouseBackend(connect("chdb"), chunk_rows=100)

    assert_identical(
        report_from_rows(DuckDBBackend, flows, config),
        report_from_rows(small_chunks, flows, config, chunk=64),
    )


def test_the_report_drops_its_clickhouse_database_when_done(config):
    backend = ClickHouseBackend(connect("chdb"))
    db = backend.db
    other = connect("chdb")  # chdb sessions of one process share their databases
    try:
        assert other.rows(f"SELECT count() FROM system.databases WHERE name = '{db}'") == [(1,)]
        backend.close()
        assert other.rows(f"SELECT count() FROM system.databases WHERE name = '{db}'") == [(0,)]
    finally:
        other.close()


def report_cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "attribution.cli", "report", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def test_report_engine_chdb_on_the_command_line_writes_the_same_json(config, tmp_path):
    base = [
        "-c",
        os.fspath(DATA / "report.toml"),
        "-f",
        "json",
        os.fspath(DATA / "attributed.jsonl"),
    ]
    outputs = {}
    for engine in ("duckdb", "chdb"):
        run = report_cli(*base, "--engine", engine)
        assert run.returncode == 0, run.stderr
        doc = json.loads(run.stdout)
        doc["meta"].pop("generated_at")
        outputs[engine] = doc
    assert outputs["duckdb"] == outputs["chdb"]


def test_an_unknown_engine_is_refused_before_reading_the_inputs():
    run = report_cli("--engine", "postgres://x", os.fspath(DATA / "attributed.jsonl"))
    assert run.returncode == 2
    assert "--engine 'postgres://x': use duckdb, chdb, chdb:DIR or clickhouse://" in run.stderr
    run = report_cli(
        "--engine", "clickhouse://u:pw@127.0.0.1", os.fspath(DATA / "attributed.jsonl")
    )
    assert run.returncode == 2 and "password in the URL" in run.stderr
