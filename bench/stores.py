"""Throughput of the stores `enrich --output` writes to, and of the report on ClickHouse.

In process, no service: N attributed records (goflow2-shaped flows, answers
shaped as the client decodes them: AS paths, communities, flags) in batches
of 4,096, as enrich hands them to its writer.

1. Arrow conversion alone (``attribution.sinks.table.ArrowBatcher``);
2. ``parquet:PATH`` (conversion + zstd row groups of 131,072 rows);
3. ``chdb:DIR`` (conversion + inserts of 100,000 rows into the flows table of
   ``attribution clickhouse schema``, the 5-minute rollup view included);
4. the peering-cost report's aggregation on the same staged rows, DuckDB and
   chdb (stage + every query of the report; normalising rows not counted).

Run: ``python -m bench.stores [--records N] [--report-rows N]``. Prints a
Markdown table (wall and CPU seconds; chdb's own threads count as CPU).
Nothing asserts on time.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path

from attribution.convert import error_answer

BATCH = 4096


def records(n: int, seed: int = 1):
    from attribution.enrich import Record

    rnd = random.Random(seed)
    now = int(time.time())
    out = []
    for i in range(n):
        origin = 64512 + rnd.randrange(2000)
        flow = {
            "exporter": f"127.0.1.{1 + i % 4}",
            "src_addr": f"10.{rnd.randrange(256)}.{rnd.randrange(256)}.1",
            "dst_addr": f"172.16.{rnd.randrange(256)}.{rnd.randrange(256)}",
            "in_if": rnd.randrange(64),
            "out_if": rnd.randrange(64),
            "src_mac": "0c:00:00:00:00:01",
            "bytes": rnd.randrange(64, 1_500_000),
            "packets": rnd.randrange(1, 1000),
            "sampling_rate": 1000,
            "time": now - rnd.randrange(3600),
        }
        answer = error_answer("", "")
        answer.update(
            router="edge",
            src_origin_as=origin,
            src_peer_as=3356,
            dst_origin_as=origin + 1,
            dst_peer_as=174,
            src_origin_provenance="bgp",
            src_peer_provenance="bgp",
            dst_origin_provenance="bgp",
            dst_peer_provenance="bgp",
            src_prefix="10.0.0.0/16",
            dst_prefix="172.16.0.0/24",
            src_as_path=[3356, 3356, 6939, origin],
            dst_as_path=[174, 1299, origin + 1],
            dst_communities=["174:21000", "174:22013"],
            dst_local_pref=100,
            dst_next_hop="127.0.0.11",
            error=None,
            error_code=None,
        )
        out.append((Record(f"b:{i}", "goflow2", flow, flow), answer))
    return out


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_sinks(data, workdir: Path) -> list[tuple[str, float, float]]:
    from attribution.sinks import open_sink
    from attribution.sinks.table import ArrowBatcher

    batches = [data[i : i + BATCH] for i in range(0, len(data), BATCH)]
    split = [([r for r, _ in b], [a for _, a in b]) for b in batches]
    out = []

    def arrow():
        batcher = ArrowBatcher()
        for recs, answers in split:
            batcher.table([r.flow for r in recs], answers, [r.fmt for r in recs])

    def sink(spec: str):
        def run():
            s = open_sink(spec)
            for recs, answers in split:
                s.write_batch(recs, answers)
                s.flush()
            s.close()

        return run

    out.append(("Arrow conversion alone", *timed(arrow)))
    out.append(("parquet:PATH", *timed(sink(f"parquet:{workdir / 'f.parquet'}"))))
    out.append(("chdb:DIR", *timed(sink(f"chdb:{workdir / 'db'}"))))
    return out


def bench_report(n: int) -> list[tuple[str, float, float]]:
    from attribution.reports.config import load_report_config_file
    from attribution.reports.engine import DuckDBBackend
    from attribution.reports.engine_clickhouse import ClickHouseBackend, connect
    from attribution.reports.records import Normalizer
    from attribution.reports.report import ReportBuilder
    from tests.reports.test_clickhouse_engine import synthetic_flows

    config = load_report_config_file(
        str(Path(__file__).parents[1] / "tests" / "reports" / "data" / "report.toml")
    )
    normalize = Normalizer(config)
    rows = [normalize(f, 0) for f in synthetic_flows(n, seed=5)]
    out = []
    for name, make in (
        ("report on DuckDB", DuckDBBackend),
        ("report on chdb", lambda: ClickHouseBackend(connect("chdb"))),
    ):

        def run(make=make):
            backend = make()
            try:
                for i in range(0, len(rows), 50_000):
                    backend.add_rows(rows[i : i + 50_000])
                backend.finish_load()
                ReportBuilder(backend, config).build({})
            finally:
                backend.close()

        out.append((name, *timed(run)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--report-rows", type=int, default=500_000)
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-stores-"))
    try:
        data = records(args.records)
        rows = bench_sinks(data, workdir)
        size = (workdir / "f.parquet").stat().st_size
        print(f"{args.records} records; Parquet file {size / args.records:.1f} bytes/record\n")
        print("| what | records/s (wall) | records per CPU second |")
        print("|---|---:|---:|")
        for name, wall, cpu in rows:
            print(f"| {name} | {args.records / wall:,.0f} | {args.records / cpu:,.0f} |")
        if args.report_rows:
            for name, wall, cpu in bench_report(args.report_rows):
                print(
                    f"| {name} ({args.report_rows} rows staged + every query) | "
                    f"{args.report_rows / wall:,.0f} | {args.report_rows / cpu:,.0f} |"
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
