"""The report's aggregation in ClickHouse: :class:`ClickHouseBackend`.

Same interface as :class:`attribution.reports.engine.DuckDBBackend` and the
same SQL (:mod:`attribution.reports.sql`, written to the common subset of
both dialects), so a report gives identical tables on either engine. What
differs is set here, once:

* ``join_use_nulls = 1``: a LEFT JOIN miss is NULL, as in DuckDB (the links join);
* ``default_table_engine = 'Memory'``: ``CREATE TABLE x AS SELECT`` needs an
  engine; cube, links and periods are small;
* the staged flows go into a MergeTree (they may not fit in memory), loaded
  from Arrow in chunks of ``chunk_rows``.

Everything lives in a database of its own, ``attribution_report_<random>``,
dropped on :meth:`close`: several reports can run on one server, and chdb's
sessions in one process share their databases.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from attribution.clickhouse import ChdbConnection, ClickHouseError, ServerConnection
from attribution.reports import sql
from attribution.reports.config import LinkConfig
from attribution.reports.engine import AggregationBackend
from attribution.reports.records import ROW_COLUMNS, Row

SETTINGS = {"join_use_nulls": 1, "default_table_engine": "Memory"}
_ARROW = {
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "BOOLEAN": pa.bool_(),
}
ROW_SCHEMA = pa.schema([pa.field(name, _ARROW[typ]) for name, typ in ROW_COLUMNS])


def connect(spec: str) -> ChdbConnection | ServerConnection:
    """``chdb`` (in memory), ``chdb:DIR``, or a clickhouse:// URL, with the report's settings."""
    if spec in ("chdb", "chdb:"):
        return ChdbConnection(":memory:", SETTINGS)
    from attribution.sinks import OutputError, parse_output
    from attribution.sinks.clickhouse import connect as sink_connect

    try:
        out = parse_output(spec)
    except OutputError as exc:
        raise ClickHouseError(str(exc)) from None
    if out.kind == "chdb":
        return ChdbConnection(out.path, SETTINGS)
    if out.kind != "clickhouse":
        raise ClickHouseError(f"{spec!r}: use chdb, chdb:DIR or clickhouse://HOST[:PORT]")
    conn, _ = sink_connect(out, database_required=False)
    assert isinstance(conn, ServerConnection)
    for name, value in SETTINGS.items():
        conn.client.set_client_setting(name, value)
    return conn


class ClickHouseBackend(AggregationBackend):
    def __init__(
        self,
        conn: ChdbConnection | ServerConnection,
        chunk_rows: int = 1_000_000,
    ) -> None:
        self.conn = conn
        self.db = "attribution_report_" + secrets.token_hex(6)
        self.chunk_rows = chunk_rows
        self._pending: list[Sequence[Row]] = []
        self._pending_rows = 0
        conn.command(f"CREATE DATABASE {self.db}")
        try:
            if isinstance(conn, ChdbConnection):
                conn.command(f"USE {self.db}")
            else:
                conn.client.database = self.db
            cols = ", ".join(f"{name} {typ}" for name, typ in ROW_COLUMNS)
            conn.command(f"CREATE TABLE flows ({cols}) ENGINE = MergeTree ORDER BY ts")
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ staging
    def add_rows(self, rows: Sequence[Row]) -> None:
        self._pending.append(rows)
        self._pending_rows += len(rows)
        if self._pending_rows >= self.chunk_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._pending_rows:
            return
        columns = list(zip(*(r for rows in self._pending for r in rows), strict=True))
        self._pending, self._pending_rows = [], 0
        table = pa.Table.from_arrays(
            [pa.array(col, f.type) for col, f in zip(columns, ROW_SCHEMA, strict=True)],
            schema=ROW_SCHEMA,
        )
        self.conn.insert_arrow(self.db, "flows", table)

    def finish_load(self) -> None:
        self._flush()

    # ------------------------------------------------------------------ queries
    def staged_range(self) -> tuple[int, int, int]:
        lo, hi, n = self.conn.rows(sql.TIME_RANGE)[0]
        return (int(lo), int(hi), int(n)) if n else (0, 0, 0)

    def prepare(self, links: Sequence[LinkConfig], bucket_seconds: int) -> None:
        self.conn.command(sql.LINKS_TABLE)
        if links:
            self.conn.insert_arrow(
                self.db,
                "links",
                pa.table(
                    {
                        "link_id": pa.array(range(len(links)), pa.int32()),
                        "kind": pa.array([link.kind for link in links], pa.string()),
                        "peer_as": pa.array([link.single_peer_as for link in links], pa.int64()),
                    }
                ),
            )
        self.conn.command(sql.cube(bucket_seconds))

    def set_periods(self, periods: Sequence[tuple[int, int, int, int, int]]) -> None:
        self.conn.command(sql.PERIODS_TABLE)
        if periods:
            cols = list(zip(*periods, strict=True))
            names = ("period_id", "start_ts", "end_ts", "n", "pick")
            types = (pa.int32(), pa.int64(), pa.int64(), pa.int64(), pa.int64())
            self.conn.insert_arrow(
                self.db,
                "periods",
                pa.table({n: pa.array(c, t) for n, c, t in zip(names, cols, types, strict=True)}),
            )

    def query(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if params:
            raise ValueError("the ClickHouse backend runs the report's SQL without parameters")
        return self.conn.rows(text)

    def close(self) -> None:
        try:
            self.conn.command(f"DROP DATABASE IF EXISTS {self.db}")
        except ClickHouseError:
            pass
        finally:
            self.conn.close()

    def __enter__(self) -> ClickHouseBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
