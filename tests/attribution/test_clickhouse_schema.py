"""`attribution clickhouse schema`: the DDL printed, and applied to a real engine (chdb)."""

from __future__ import annotations

import socket
import subprocess
import sys

from attribution.clickhouse import ChdbConnection
from attribution.sinks.table import NAMES


def schema(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "attribution.cli", "clickhouse", "schema", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_schema_prints_ordering_key_ttl_partitions_and_the_rollup_view():
    run = schema("--database", "netflow", "--ttl-days", "7", "--rollup-ttl-days", "90")
    assert run.returncode == 0, run.stderr
    ddl = run.stdout
    assert "CREATE TABLE IF NOT EXISTS netflow.flows\n" in ddl
    assert "ORDER BY (exporter, time)" in ddl
    assert "PARTITION BY toDate(time)" in ddl
    assert "TTL time + INTERVAL 7 DAY DELETE" in ddl
    assert "TTL time + INTERVAL 90 DAY DELETE" in ddl
    assert "`router` LowCardinality(String)" in ddl
    assert "`exporter` LowCardinality(String)" in ddl
    assert "`dst_peer_provenance` LowCardinality(String)" in ddl
    assert "ENGINE = SummingMergeTree((bytes, packets, flows))" in ddl
    assert "CREATE MATERIALIZED VIEW IF NOT EXISTS netflow.flows_5m_mv TO netflow.flows_5m" in ddl


def test_bad_names_and_ttls_are_refused():
    run = schema("--table", "flows; DROP TABLE x")
    assert run.returncode == 2 and "letters, digits or underscores" in run.stderr
    run = schema("--apply", "clickhouse://127.0.0.1:1/netflow")  # checked before connecting
    assert run.returncode == 2 and "names database 'netflow' but --database" in run.stderr
    run = schema("--apply", "clickhouse://admin:pw@127.0.0.1:1")
    assert run.returncode == 2 and "ATTRIBUTION_CLICKHOUSE_PASSWORD" in run.stderr
    run = schema("--ttl-days", "0")
    assert run.returncode == 2 and "ttl_days: must be a whole number of days" in run.stderr


def test_schema_applied_to_chdb_makes_the_three_objects_and_is_idempotent(tmp_path):
    db = tmp_path / "db"
    for _ in range(2):  # IF NOT EXISTS: applying again keeps what is there
        run = schema("--apply", f"chdb:{db}", "--ttl-days", "14")
        assert run.returncode == 0, run.stderr
        assert "applied to chdb:" in run.stderr
    conn = ChdbConnection(str(db))
    try:
        tables = conn.rows(
            "SELECT name, engine, partition_key, sorting_key FROM system.tables "
            "WHERE database = 'attribution' ORDER BY name"
        )
        columns = conn.rows(
            "SELECT name, type FROM system.columns WHERE database = 'attribution' "
            "AND table = 'flows' ORDER BY position"
        )
        ttl = conn.rows("SHOW CREATE TABLE attribution.flows")[0][0]
    finally:
        conn.close()
    assert tables == [
        ("flows", "MergeTree", "toDate(time)", "exporter, time"),
        ("flows_5m", "SummingMergeTree", "toDate(time)", tables[1][3]),
        ("flows_5m_mv", "MaterializedView", "", ""),
    ]
    assert tables[1][3].startswith("time, exporter, in_if, out_if, sampling_rate")
    assert [c[0] for c in columns] == list(NAMES)
    assert dict(columns)["router"] == "LowCardinality(String)"
    assert "TTL time + toIntervalDay(14)" in ttl


def test_an_unreachable_server_is_reported_with_its_address():
    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = schema("--apply", f"clickhouse://127.0.0.1:{port}")
    assert run.returncode == 2
    assert f"http://127.0.0.1:{port}: cannot connect" in run.stderr
