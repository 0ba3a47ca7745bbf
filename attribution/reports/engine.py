"""Aggregation backends: stage normalized rows, answer the report's queries.

:class:`AggregationBackend` is the interface the report builder uses; the
SQL lives in :mod:`attribution.reports.sql`. :class:`DuckDBBackend` is the
embedded implementation. A ClickHouse backend would implement the same
interface (staging with ``INSERT ... FORMAT CSV``, queries from ``sql``
with the dialect notes there applied).

Staging goes through temporary CSV chunks that DuckDB reads natively: without
pyarrow/numpy that is far faster than parameterised INSERTs (measured in
bench/bench_reports.py).
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

from attribution.reports import sql
from attribution.reports.config import LinkConfig
from attribution.reports.records import ROW_COLUMNS, Row


class AggregationBackend(ABC):
    """What the report needs from an analytical engine."""

    @abstractmethod
    def add_rows(self, rows: Sequence[Row]) -> None:
        """Stage a batch of normalized rows."""

    @abstractmethod
    def finish_load(self) -> None:
        """Flush staged rows; after this only queries are made."""

    @abstractmethod
    def staged_range(self) -> tuple[int, int, int]:
        """(min ts, max ts, row count) of the staged rows; (0, 0, 0) when empty."""

    @abstractmethod
    def prepare(self, links: Sequence[LinkConfig], bucket_seconds: int) -> None:
        """Build the per-bucket cube all queries read (links give kind and neighbor)."""

    @abstractmethod
    def query(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one of the statements built by :mod:`sql`."""

    @abstractmethod
    def set_periods(self, periods: Sequence[tuple[int, int, int, int, int]]) -> None:
        """(period_id, start_ts, end_ts, n buckets, pick rank) rows for percentile queries."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""


class DuckDBBackend(AggregationBackend):
    """Embedded DuckDB; rows are staged through CSV chunks in a private temp dir."""

    def __init__(
        self,
        database: str = ":memory:",
        chunk_rows: int = 1_000_000,
        threads: int | None = None,
        memory_limit: str | None = None,
        temp_dir: str | None = None,
    ) -> None:
        import duckdb

        self.con = duckdb.connect(database)
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            self.con.execute("SET memory_limit = ?", [memory_limit])
        self._tmp = tempfile.mkdtemp(prefix="attribution-report-", dir=temp_dir)
        self.con.execute("SET temp_directory = ?", [os.path.join(self._tmp, "spill")])
        self.con.execute(sql.flows_table(ROW_COLUMNS))
        self.chunk_rows = chunk_rows
        self._chunk_path = os.path.join(self._tmp, "chunk.csv")
        self._fh = open(self._chunk_path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.writer(self._fh)
        self._pending = 0
        self._columns = "{" + ", ".join(f"'{n}': '{t}'" for n, t in ROW_COLUMNS) + "}"

    def add_rows(self, rows: Sequence[Row]) -> None:
        self._writer.writerows(rows)
        self._pending += len(rows)
        if self._pending >= self.chunk_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        self._fh.close()
        self.con.execute(
            "INSERT INTO flows SELECT * FROM read_csv(?, header = false, columns = "
            + self._columns
            + ", auto_detect = false, quote = '\"', escape = '\"')",
            [self._chunk_path],
        )
        self._fh = open(self._chunk_path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.writer(self._fh)
        self._pending = 0

    def load_table(self, select: str) -> None:
        """Stage rows straight from a SELECT (benchmarks, Parquet archives)."""
        self.con.execute(f"INSERT INTO flows {select}")

    def finish_load(self) -> None:
        self._flush()
        self._fh.close()

    def staged_range(self) -> tuple[int, int, int]:
        lo, hi, n = self.con.execute(sql.TIME_RANGE).fetchone()  # type: ignore[misc]
        return (int(lo), int(hi), int(n)) if n else (0, 0, 0)

    def prepare(self, links: Sequence[LinkConfig], bucket_seconds: int) -> None:
        con = self.con
        con.execute(sql.LINKS_TABLE)
        if links:
            con.executemany(
                "INSERT INTO links VALUES (?, ?, ?)",
                [(i, link.kind, link.single_peer_as) for i, link in enumerate(links)],
            )
        con.execute(sql.cube(bucket_seconds))

    def set_periods(self, periods: Sequence[tuple[int, int, int, int, int]]) -> None:
        self.con.execute(sql.PERIODS_TABLE)
        if periods:
            self.con.executemany("INSERT INTO periods VALUES (?, ?, ?, ?, ?)", list(periods))

    def query(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.con.execute(text, list(params)).fetchall()

    def close(self) -> None:
        try:
            if not self._fh.closed:
                self._fh.close()
            self.con.close()
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> DuckDBBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def batched(rows: Iterable[Row], size: int = 50_000) -> Iterable[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
