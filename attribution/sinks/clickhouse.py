"""``--output clickhouse://...`` and ``--output chdb:PATH``: attributed flows into ClickHouse.

Rows are inserted ``batch=`` at a time (100,000 by default; ClickHouse makes a
part per insert, so small inserts cost merges), or after ``max_delay=``
seconds (5) when the input trickles, and once more at the end of the run.

A server's table must exist (``attribution clickhouse schema --apply URL``
creates it; a DBA may prefer to run the printed DDL): the sink checks that it
has every column it writes and names the missing ones. A chdb directory is a
local store: the sink creates the schema there when it is missing.
"""

from __future__ import annotations

from collections.abc import Mapping

from attribution.clickhouse import (
    ChdbConnection,
    ClickHouseError,
    ServerConnection,
    missing_columns,
    read_password_file,
    table_columns,
)
from attribution.sinks import BufferedSink, OutputError, OutputSpec, parse_output
from attribution.sinks.table import NAMES

BATCH = 100_000
MAX_DELAY = 5.0


def connect(
    spec: str | OutputSpec,
    env: Mapping[str, str] | None = None,
    database_required: bool = True,
) -> tuple[ChdbConnection | ServerConnection, OutputSpec]:
    """A connection for a clickhouse:// URL or a chdb:PATH (parsed and checked)."""
    out = parse_output(spec) if isinstance(spec, str) else spec
    if out.kind == "chdb":
        return ChdbConnection(out.path), out
    if out.kind != "clickhouse":
        raise OutputError(f"not a ClickHouse destination: {out.kind}")
    password = None
    if "password_file" in out.options:
        password = read_password_file(out.options["password_file"])
    verify = out.options.get("verify", "1") not in ("0", "false")
    conn = ServerConnection(
        out.host,
        out.port,
        user=out.user,
        password=password,
        secure=out.secure,
        ca=out.options.get("ca"),
        verify=verify,
        database=out.database if database_required else None,
        env=env,
    )
    return conn, out


class ClickHouseSink(BufferedSink):
    # LowCardinality columns inserted as Arrow dictionaries: the engine takes
    # their indices instead of hashing a string a row (BENCHMARKS.md, "Enrich,
    # twelfth pass"); ClickHouse's Arrow input maps DICTIONARY to LowCardinality
    dictionary = True

    def __init__(self, spec: OutputSpec, env: Mapping[str, str] | None = None) -> None:
        super().__init__(
            spec.option_int("batch", BATCH, 1, 10_000_000),
            spec.option_float("max_delay", MAX_DELAY, 0.0, 3600.0),
        )
        self.database = spec.database
        self.table = spec.table
        conn, _ = connect(spec, env, database_required=spec.kind == "clickhouse")
        self.conn = conn
        try:
            have = table_columns(conn, spec.database, spec.table)
            if not have and spec.kind == "chdb":
                from attribution.clickhouse_schema import statements

                ttl = spec.option_int("ttl_days", 30, 1, 36500)
                rollup_ttl = spec.option_int("rollup_ttl_days", 400, 1, 36500)
                for stmt in statements(spec.database, spec.table, ttl, rollup_ttl):
                    conn.command(stmt)
                have = table_columns(conn, spec.database, spec.table)
            where = f"{conn.where}: table {spec.database}.{spec.table}"
            if not have:
                raise ClickHouseError(
                    f"{where} does not exist: create it with "
                    "`attribution clickhouse schema --apply URL` (or run the DDL it prints)"
                )
            missing = missing_columns(have, NAMES)
            if missing:
                raise ClickHouseError(
                    f"{where} lacks the columns {', '.join(missing)}: it was not made by "
                    "`attribution clickhouse schema`, or by an older version"
                )
        except BaseException:
            conn.close()
            raise
        self.start_timer()  # a quiet --follow input still gets its rows in within max_delay

    def _write(self, table) -> None:
        self.conn.insert_arrow(self.database, self.table, table)

    def _close(self) -> None:
        self.conn.close()
