"""Report input from ClickHouse: the 5-minute rollup of stored flows, not flow files.

``attribution report clickhouse://HOST/attribution?table=flows`` (or
``chdb:DIR``) reads ``flows_5m`` (``attribution clickhouse schema``): a row per
5 minutes and (exporter, interfaces, sampling rate, AS numbers, via ASes,
local provenance), with bytes, packets and the flow count summed. Each becomes
one staged :class:`Row` carrying its flow count, mapped exactly as
:class:`attribution.reports.records.Normalizer` maps a flow (link ids from
exporter and ifIndex, the sampling rate: the row's, else the exporter's, else
the default; local: provenance ``local`` or one of our ASes), so a report over
the rollup has the same numbers as over the flows it was made of, as long as
the report's buckets are whole multiples of 5 minutes and its window starts and
ends on 5-minute boundaries (both checked). A month of flows reads as a few
rows per 5 minutes and key instead of every flow.
"""

from __future__ import annotations

from collections.abc import Iterator

from attribution.clickhouse import ChdbConnection, ServerConnection
from attribution.reports.config import MAX_ASN, ReportConfig
from attribution.reports.pipeline import Ingest, IngestError, InputStats
from attribution.reports.records import MAX_BYTES, MAX_PACKETS, RecordError, Row

ROLLUP_SECONDS = 300
ROLLUP_QUERY = """
SELECT toUnixTimestamp(time), exporter, in_if, out_if, sampling_rate,
       src_origin_as, src_peer_as, src_via_as, dst_origin_as, dst_peer_as, dst_via_as,
       src_local, dst_local, sum(bytes), sum(packets), sum(flows)
FROM {db}.{table}_5m
{where}
GROUP BY ALL
ORDER BY 1
"""


def is_store(path: str) -> bool:
    """A report input that names a ClickHouse store rather than a file."""
    return path.startswith(("clickhouse://", "clickhouses://", "chdb:"))


def check_window(config: ReportConfig, start: int | None, end: int | None) -> None:
    if config.bucket_seconds % ROLLUP_SECONDS:
        raise RecordError(
            f"the rollup has {ROLLUP_SECONDS}-second buckets: report.bucket_seconds "
            f"({config.bucket_seconds}) must be a multiple of it"
        )
    for name, value in (("--from", start), ("--to", end)):
        if value is not None and value % ROLLUP_SECONDS:
            raise RecordError(
                f"{name} must fall on a {ROLLUP_SECONDS // 60}-minute boundary to read the rollup"
            )


class RollupRows:
    """Rollup rows -> report :class:`Row` values (with their flow counts)."""

    def __init__(self, config: ReportConfig, file_id: int = 0) -> None:
        self.links = {(link.exporter, link.if_index): i for i, link in enumerate(config.links)}
        self.sampling = dict(config.sampling)
        self.default_rate = config.default_sampling_rate
        self.local = config.local_as
        self.file_id = file_id

    def __call__(self, r: tuple) -> Row:
        ts, exporter, in_if, out_if, rate = r[0], r[1], r[2], r[3], r[4]
        so, sp, sv, do, dp, dv = r[5:11]
        src_local, dst_local, nbytes, npackets, flows = r[11:16]
        for value, hi, what in (
            (so, MAX_ASN, "src_origin_as"),
            (do, MAX_ASN, "dst_origin_as"),
            (nbytes, MAX_BYTES * flows, "bytes"),
            (npackets, MAX_PACKETS * flows, "packets"),
        ):
            if not 0 <= value <= hi:
                raise RecordError(f"{what}: {value} out of range")
        if rate == 0:
            rate = self.sampling.get(exporter, self.default_rate)
        links = self.links
        return Row(
            int(ts),
            links.get((exporter, in_if), -1),
            links.get((exporter, out_if), -1),
            int(nbytes),
            int(npackets),
            int(rate),
            int(so),
            int(sp),
            int(sv),
            int(do),
            int(dp),
            int(dv),
            bool(src_local) or so in self.local,
            bool(dst_local) or do in self.local,
            self.file_id,
            int(flows),
        )


def read_rollup(
    conn: ChdbConnection | ServerConnection,
    database: str,
    table: str,
    start: int | None,
    end: int | None,
) -> Iterator[tuple]:
    """The rollup's rows in the window, summed over parts not merged yet."""
    cond = []
    if start is not None:
        cond.append(f"time >= toDateTime({int(start)}, 'UTC')")
    if end is not None:
        cond.append(f"time < toDateTime({int(end)}, 'UTC')")
    where = ("WHERE " + " AND ".join(cond)) if cond else ""
    yield from conn.stream_rows(ROLLUP_QUERY.format(db=database, table=table, where=where))


def ingest_store(
    ingest: Ingest,
    spec: str,
    start: int | None = None,
    end: int | None = None,
    file_id: int = 0,
) -> InputStats:
    """Stage the rollup of the store ``spec`` names into ``ingest``'s backend.

    Raises :class:`IngestError` (the report marks the input failed) when the
    store cannot be read or the report's buckets or window do not fit 5 minutes.
    """
    from attribution.clickhouse import ClickHouseError
    from attribution.sinks import OutputError, parse_output
    from attribution.sinks.clickhouse import connect

    stats = InputStats(path=spec, format="clickhouse-rollup", attribution="stored")
    ingest.stats.append(stats)
    try:
        check_window(ingest.config, start, end)
        out = parse_output(spec)
        if out.kind == "parquet":
            raise IngestError(f"{spec}: Parquet files are not a report input (yet)")
        conn, _ = connect(out, database_required=False)
    except (RecordError, OutputError, ClickHouseError) as exc:
        raise IngestError(f"{spec}: {exc}") from None
    to_row = RollupRows(ingest.config, file_id)
    batch: list[Row] = []
    try:
        for r in read_rollup(conn, out.database, out.table, start, end):
            stats.lines += 1
            try:
                batch.append(to_row(r))
            except RecordError as exc:  # only a corrupted rollup row
                stats.bad_lines += 1
                ingest.bad.add(spec, stats.lines, str(exc))
                continue
            if len(batch) >= ingest.batch_rows:
                ingest.backend.add_rows(batch)
                stats.records += len(batch)
                batch = []
        if batch:
            ingest.backend.add_rows(batch)
            stats.records += len(batch)
    except ClickHouseError as exc:
        raise IngestError(f"{spec}: {exc}") from None
    finally:
        conn.close()
    return stats
