"""``attribution report``: flow files in, peering/transit cost report out.

Exit status: 0 report written (bad lines are counted, not fatal); 1 report
written but at least one input file could not be used; 2 usage or config error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from attribution.reports.config import ReportConfig, ReportConfigError, load_report_config_file
from attribution.reports.engine import AggregationBackend, DuckDBBackend
from attribution.reports.html import render_html
from attribution.reports.pipeline import (
    Ingest,
    IngestError,
    Resolver,
    offline_resolver,
    service_resolver,
)
from attribution.reports.progress import Progress
from attribution.reports.readers import FORMATS, BadLines
from attribution.reports.render import render_json, render_text, write_csv_dir
from attribution.reports.report import Report, ReportBuilder
from attribution.reports.rollup import ingest_store, is_store

OUTPUT_FORMATS = ("table", "csv", "json", "html")
FILE_NAMES = {"table": "report.txt", "json": "report.json", "html": "report.html"}


class UsageError(Exception):
    pass


def parse_time(text: str) -> int:
    """``--from``/``--to``: unix seconds, or ISO 8601 (date or date-time; no zone = UTC)."""
    value = text.strip()
    if value.isdigit():
        return int(value)
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (use 2024-01-31, 2024-01-31T12:00:00Z or unix seconds)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def _top(text: str) -> int:
    n = int(text)
    if not 1 <= n <= 100000:
        raise argparse.ArgumentTypeError("--top must be between 1 and 100000")
    return n


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="FILE",
        help="flow files (- = stdin; .gz is read transparently), or a ClickHouse store of "
        "attributed flows, read from its 5-minute rollup: clickhouse://HOST[:PORT]/DATABASE"
        "?table=NAME or chdb:DIR (README 'Storing attributed flows')",
    )
    p.add_argument(
        "-f",
        "--format",
        action="append",
        metavar="FMT",
        help="table, csv, json, html; repeat or comma-separate (default: table)",
    )
    p.add_argument(
        "-o", "--output", metavar="PATH", help="output file (one format; a directory for csv)"
    )
    p.add_argument(
        "--output-dir", metavar="DIR", help="write report.txt/.json/.html and CSV files here"
    )
    p.add_argument("-c", "--config", metavar="TOML", help="service config with a [report] table")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--target", metavar="HOST:PORT", help="attribute through the running service")
    src.add_argument(
        "--table", metavar="DUMP", help="attribute offline from an ExaBGP JSON table dump"
    )
    p.add_argument(
        "--input-format",
        default="auto",
        choices=("auto", *FORMATS),
        help="input format (default: detect per file from its first line)",
    )
    p.add_argument(
        "--use-input-as",
        action="store_true",
        help="with --target/--table, keep the AS fields of nfdump/pmacct records (no resolving)",
    )
    p.add_argument(
        "--top",
        type=_top,
        metavar="N",
        help="rows per table in table/html output (default: config top_n)",
    )
    p.add_argument(
        "--from", dest="start", type=parse_time, metavar="TIME", help="first time included (UTC)"
    )
    p.add_argument(
        "--to", dest="end", type=parse_time, metavar="TIME", help="first time excluded (UTC)"
    )
    prog = p.add_mutually_exclusive_group()
    prog.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show progress on stderr",
    )
    prog.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show progress"
    )
    p.add_argument(
        "--engine",
        default="duckdb",
        metavar="ENGINE",
        help="where the aggregation runs: duckdb (embedded, the default), chdb (ClickHouse "
        "embedded, in memory), chdb:DIR, or clickhouse://[USER@]HOST[:PORT] (a server; "
        "password from ATTRIBUTION_CLICKHOUSE_PASSWORD or ?password_file=FILE); the same "
        "numbers on each",
    )
    p.add_argument("--threads", type=int, metavar="N", help="DuckDB threads (default: all cores)")
    p.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="DuckDB memory limit, e.g. 4GB (spills to disk beyond)",
    )
    p.add_argument(
        "--temp-dir", metavar="DIR", help="where staging files and spills go (default: system temp)"
    )


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``report`` on the main CLI's subparsers; the handler is :func:`run`."""
    p = subparsers.add_parser(
        "report",
        help="peering/transit cost report from flow files",
        description="Aggregate flow records by peer/origin AS and link, compute billing "
        "percentiles and monthly cost per link, and rank peering candidates.",
    )
    add_arguments(p)
    p.set_defaults(func=run, handler=run)
    return p


def _formats(values: Sequence[str] | None) -> list[str]:
    out: list[str] = []
    for value in values or ["table"]:
        for part in value.split(","):
            name = part.strip().lower()
            if not name:
                continue
            if name not in OUTPUT_FORMATS:
                raise UsageError(f"unknown --format {name!r} (use {', '.join(OUTPUT_FORMATS)})")
            if name not in out:
                out.append(name)
    return out or ["table"]


def _destinations(
    formats: list[str], output: str | None, output_dir: str | None
) -> dict[str, str | None]:
    """format -> path (None = stdout); csv maps to a directory."""
    if output and output_dir:
        raise UsageError("give --output or --output-dir, not both")
    if output_dir:
        return {
            f: output_dir if f == "csv" else os.path.join(output_dir, FILE_NAMES[f])
            for f in formats
        }
    if output:
        if len(formats) > 1:
            raise UsageError("--output takes one format; use --output-dir for several")
        return {formats[0]: output}
    if "csv" in formats:
        raise UsageError("csv writes one file per table: give --output-dir DIR (or --output DIR)")
    if len(formats) > 1:
        raise UsageError("several formats need --output-dir")
    return {formats[0]: None}


def run(args: argparse.Namespace) -> int:
    err = sys.stderr
    try:
        formats = _formats(args.format)
        dests = _destinations(formats, args.output, args.output_dir)
        if args.start is not None and args.end is not None and args.end <= args.start:
            raise UsageError("--to must be after --from")
        config = load_report_config_file(args.config) if args.config else ReportConfig()
        resolver: Resolver | None = None
        resolver_name = ""
        if args.target:
            resolver, resolver_name = service_resolver(args.target), f"service {args.target}"
        elif args.table:
            resolver, resolver_name = offline_resolver(args.table, args.config), "offline table"
    except (UsageError, ReportConfigError, IngestError) as exc:
        print(f"attribution report: error: {exc}", file=err)
        return 2

    enabled = args.progress if args.progress is not None else err.isatty()
    progress = Progress(err, enabled)
    bad = BadLines(echo=err)
    failed: list[str] = []
    try:
        backend = _backend(args)
    except UsageError as exc:
        print(f"attribution report: error: {exc}", file=err)
        return 2
    try:
        ingest = Ingest(
            config,
            backend,
            bad,
            resolver=resolver,
            resolver_name=resolver_name,
            use_input_as=args.use_input_as,
            start=args.start,
            end=args.end,
            progress=progress,
        )
        for i, path in enumerate(args.inputs, start=1):
            progress.start_file(i, len(args.inputs), path)
            try:
                if is_store(path):  # a ClickHouse store's 5-minute rollup (reports.rollup)
                    ingest_store(ingest, path, args.start, args.end, file_id=i - 1)
                else:
                    ingest.add_file(path, args.input_format, file_id=i - 1)
            except IngestError as exc:
                progress.done()
                print(f"attribution report: {exc}", file=err)
                failed.append(path)
            except Exception as exc:  # attribution service down etc.: name the file
                progress.done()
                print(f"attribution report: {path}: {type(exc).__name__}: {exc}", file=err)
                failed.append(path)
        progress.done()
        progress.stage("aggregating ...")
        backend.finish_load()
        meta = {
            "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "inputs": [s.as_dict() for s in ingest.stats],
            "failed_inputs": failed,
            "bad_lines": {
                "total": bad.total,
                "by_file": bad.counts,
                "examples": [vars(b) for b in bad.examples],
            },
            "outside_window": sum(s.outside_window for s in ingest.stats),
            "window": {"from": args.start, "to": args.end},
        }
        report = ReportBuilder(backend, config, args.start, args.end, args.top).build(meta)
        progress.done()
    finally:
        backend.close()
    try:
        _write(report, dests, args.top)
    except OSError as exc:
        print(f"attribution report: error: cannot write output: {exc}", file=err)
        return 2
    if bad.total:
        per_file = ", ".join(f"{os.path.basename(f)}: {n}" for f, n in bad.counts.items())
        print(f"attribution report: {bad.total} bad lines skipped ({per_file})", file=err)
    return 1 if failed else 0


def _backend(args: argparse.Namespace) -> AggregationBackend:
    """DuckDB (default), or ClickHouse (attribution.reports.engine_clickhouse)."""
    engine = getattr(args, "engine", "duckdb") or "duckdb"
    if engine == "duckdb":
        return DuckDBBackend(
            threads=args.threads, memory_limit=args.memory_limit, temp_dir=args.temp_dir
        )
    if not engine.startswith(("chdb", "clickhouse://", "clickhouses://")):
        raise UsageError(
            f"--engine {engine!r}: use duckdb, chdb, chdb:DIR or clickhouse://HOST[:PORT]"
        )
    from attribution.clickhouse import ClickHouseError

    try:
        from attribution.reports.engine_clickhouse import ClickHouseBackend, connect

        return ClickHouseBackend(connect(engine))
    except ImportError as exc:
        raise UsageError(
            f"--engine {engine}: needs {exc.name}: pip install 'bgp-attribution[clickhouse]'"
        ) from None
    except ClickHouseError as exc:
        raise UsageError(f"--engine: {exc}") from None


def _write(report: Report, dests: dict[str, str | None], top: int | None) -> None:
    for fmt, dest in dests.items():
        if fmt == "csv":
            assert dest is not None
            write_csv_dir(report, dest)
            continue
        if fmt == "table":
            data = render_text(report, top).encode()
        elif fmt == "json":
            data = render_json(report) + b"\n"
        else:
            data = render_html(report, top).encode()
        if dest is None:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        else:
            parent = os.path.dirname(dest)
            if parent:
                os.makedirs(parent, exist_ok=True)
            with open(dest, "wb") as fh:
                fh.write(data)


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point (tests, and until the main CLI wires :func:`add_parser`)."""
    parser = argparse.ArgumentParser(prog="attribution report")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
