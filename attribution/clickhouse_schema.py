"""The ClickHouse schema for attributed flows, and ``attribution clickhouse schema``.

Three objects in one database (``attribution`` by default):

* ``flows`` — one row per attributed flow, the columns of
  :data:`attribution.sinks.columns.COLUMNS`. MergeTree, a partition per day
  (dropping old data drops whole parts), ordered by ``(exporter, time)``
  (what dashboards filter on first, and flows of one exporter arrive in time
  order, so parts merge cheaply), rows older than ``ttl_days`` deleted.
  Router, exporter, provenance, override and error code are
  LowCardinality: a handful of distinct values in millions of rows.
* ``flows_5m`` — 5-minute rollups: bytes, packets and flow counts summed per
  (bucket, exporter, interfaces, sampling rate, the four AS numbers and the
  two via ASes, local provenance). SummingMergeTree, so parts merging sum
  rows of the same key; read it with ``sum()``. These are exactly the
  dimensions of the peering-cost report's cube, so a report over months reads
  the rollup instead of every flow. Kept ``rollup_ttl_days``.
* ``flows_5m_mv`` — the materialised view that fills ``flows_5m`` on every
  insert into ``flows`` (records with an error are not rolled up: the report
  leaves them out too). It maps each flow to its bucket and key and does not
  group: the SummingMergeTree sums rows of one key when it writes the insert's
  part (``optimize_on_insert``, on by default) and again when parts merge, and
  readers ``sum()`` whatever is not merged yet, so a GROUP BY in the view only
  did that summing twice. Measured in chdb (BENCHMARKS.md, "Enrich, tenth
  pass"): with near-unique keys the view cost about half as much without it,
  with few keys the same; the rollup's rows and the reports' numbers the same.

Names are checked identifiers; numbers are validated ints: nothing else is
interpolated.
"""

from __future__ import annotations

import argparse
import sys

from attribution.sinks import OutputError, identifier
from attribution.sinks.columns import clickhouse_columns

ROLLUP_SECONDS = 300
# The rollup's dimensions: (column, expression over flows).
ROLLUP_KEYS: tuple[tuple[str, str, str], ...] = (
    ("exporter", "LowCardinality(String)", "exporter"),
    ("in_if", "UInt32", "in_if"),
    ("out_if", "UInt32", "out_if"),
    ("sampling_rate", "UInt32", "sampling_rate"),
    ("src_origin_as", "UInt32", "src_origin_as"),
    ("src_peer_as", "UInt32", "src_peer_as"),
    ("src_via_as", "UInt32", "src_via_as"),
    ("dst_origin_as", "UInt32", "dst_origin_as"),
    ("dst_peer_as", "UInt32", "dst_peer_as"),
    ("dst_via_as", "UInt32", "dst_via_as"),
    ("src_local", "Bool", "src_origin_provenance = 'local'"),
    ("dst_local", "Bool", "dst_origin_provenance = 'local'"),
)


def _days(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 36500:
        raise OutputError(f"{what}: must be a whole number of days from 1 to 36500, got {value!r}")
    return value


def _comment(text: str) -> str:
    return " COMMENT '" + text.replace("\\", "\\\\").replace("'", "\\'") + "'" if text else ""


def statements(
    database: str = "attribution",
    table: str = "flows",
    ttl_days: int = 30,
    rollup_ttl_days: int = 400,
) -> list[str]:
    """The DDL, in order: database, flows table, rollup table, materialised view."""
    db = identifier(database, "database")
    t = identifier(table, "table")
    ttl = _days(ttl_days, "ttl_days")
    rttl = _days(rollup_ttl_days, "rollup_ttl_days")
    cols = ",\n".join(f"    `{n}` {typ}{_comment(what)}" for n, typ, what in clickhouse_columns())
    rollup_cols = ",\n".join(f"    `{n}` {typ}" for n, typ, _ in ROLLUP_KEYS)
    keys = ", ".join(n for n, _, _ in ROLLUP_KEYS)
    select_keys = ",\n        ".join(f"{expr} AS {n}" for n, _, expr in ROLLUP_KEYS)
    # the view rolls each flow into its bucket and key, one row a flow: the table
    # sums them (at the insert's part and at merges; the module's docstring says why)
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}",
        f"""CREATE TABLE IF NOT EXISTS {db}.{t}
(
{cols}
)
ENGINE = MergeTree
PARTITION BY toDate(time)
ORDER BY (exporter, time)
TTL time + INTERVAL {ttl} DAY DELETE""",
        f"""CREATE TABLE IF NOT EXISTS {db}.{t}_5m
(
    `time` DateTime('UTC') COMMENT 'start of the 5-minute bucket',
{rollup_cols},
    `bytes` UInt64 COMMENT 'sum, as exported (sampled)',
    `packets` UInt64,
    `flows` UInt64 COMMENT 'flow records'
)
ENGINE = SummingMergeTree((bytes, packets, flows))
PARTITION BY toDate(time)
ORDER BY (time, {keys})
TTL time + INTERVAL {rttl} DAY DELETE""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{t}_5m_mv TO {db}.{t}_5m AS
    SELECT
        toStartOfInterval(time, INTERVAL {ROLLUP_SECONDS} SECOND) AS time,
        {select_keys},
        bytes,
        packets,
        toUInt64(1) AS flows
    FROM {db}.{t}
    WHERE error_code = ''""",
    ]


def script(stmts: list[str]) -> str:
    """The statements as one script for clickhouse-client --multiquery."""
    return ";\n\n".join(stmts) + ";\n"


# --------------------------------------------------------------------------- command line


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "clickhouse",
        help="ClickHouse storage for attributed flows: print or apply the schema",
        parents=parents,
    )
    csub = p.add_subparsers(dest="clickhouse_command", required=True, metavar="SUBCOMMAND")
    s = csub.add_parser(
        "schema",
        help="print the DDL of the flows table and its 5-minute rollup (or apply it)",
        description="Prints CREATE statements for DATABASE.TABLE (attributed flows), "
        "DATABASE.TABLE_5m (5-minute rollups) and the materialised view that fills it. "
        "With --apply, runs them (IF NOT EXISTS: existing objects are kept as they are).",
    )
    s.add_argument("--database", default="attribution", help="database (default: attribution)")
    s.add_argument("--table", default="flows", help="flows table (default: flows)")
    s.add_argument(
        "--ttl-days", type=int, default=30, help="keep flows this many days (default: 30)"
    )
    s.add_argument(
        "--rollup-ttl-days",
        type=int,
        default=400,
        help="keep 5-minute rollups this many days (default: 400)",
    )
    s.add_argument(
        "--apply",
        metavar="URL",
        help="run the statements there: clickhouse://[USER@]HOST[:PORT] (clickhouses:// for "
        "TLS; password from ATTRIBUTION_CLICKHOUSE_PASSWORD or ?password_file=) or chdb:PATH",
    )


def run(args: argparse.Namespace) -> int:
    def err(text: str) -> None:
        print(f"attribution clickhouse schema: {text}", file=sys.stderr)

    from attribution.clickhouse import ClickHouseError

    try:
        stmts = statements(args.database, args.table, args.ttl_days, args.rollup_ttl_days)
        if not args.apply:
            sys.stdout.write(script(stmts))
            return 0
        from urllib.parse import urlsplit

        from attribution.sinks.clickhouse import connect

        named = urlsplit(args.apply).path.strip("/") if "://" in args.apply else ""
        if named and named != args.database:
            raise OutputError(
                f"--apply names database {named!r} but --database is {args.database!r}: "
                "the schema goes into --database (give the URL without a path, or the same name)"
            )
        conn, _ = connect(args.apply, database_required=False)
        try:
            for stmt in stmts:
                conn.command(stmt)
        finally:
            conn.close()
    except (OutputError, ClickHouseError) as exc:
        err(str(exc))
        return 2
    err(
        f"applied to {args.apply}: {args.database}.{args.table}, {args.table}_5m, "
        f"{args.table}_5m_mv"
    )
    return 0
