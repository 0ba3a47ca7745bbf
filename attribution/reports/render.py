"""Terminal table, CSV and JSON renderings of a :class:`Report`."""

from __future__ import annotations

import csv
import io
import math
import os
from typing import Any

import orjson

from attribution.reports.report import Column, Report, Table

# Order of sections for humans (terminal, HTML); machines get every table.
HUMAN_TABLES = (
    "links",
    "link_months",
    "candidates",
    "peers",
    "origins",
    "peer_links",
    "directions",
)


def fmt_bytes(v: float | None) -> str:
    if v is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(v) < 1000 or unit == "PB":
            return f"{v:,.0f} {unit}" if unit == "B" else f"{v:,.1f} {unit}"
        v /= 1000
    return f"{v:,.1f} EB"  # pragma: no cover


def fmt_mbps(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 1:
        return f"{v:,.1f}"
    return f"{v:.2f}" if v else "0"


def fmt_cell(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if kind == "bytes":
        return fmt_bytes(value)
    if kind == "mbps":
        return fmt_mbps(value)
    if kind == "money":
        return f"{value:,.0f}"
    if kind == "money2":
        return f"{value:,.2f}"
    if kind == "pct":
        return f"{value:.1f}"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "asn":
        return str(value) if value else "0 (unknown)"
    if kind == "bool":
        return "yes" if value else "no"
    return str(value)


NUMERIC = {"bytes", "mbps", "money", "money2", "pct", "int", "asn"}


def text_table(table: Table, limit: int | None = None) -> str:
    rows = table.rows if limit is None else table.rows[:limit]
    cols = table.columns
    cells = [[fmt_cell(r.get(c.key), c.kind) for c in cols] for r in rows]
    widths = [max([len(c.header)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]

    def line(values: list[str]) -> str:
        out = []
        for value, width, col in zip(values, widths, cols, strict=True):
            out.append(value.rjust(width) if col.kind in NUMERIC else value.ljust(width))
        return "  ".join(out).rstrip()

    parts = [table.title, "=" * len(table.title), line([c.header for c in cols])]
    parts.append("  ".join("-" * w for w in widths))
    parts.extend(line(row) for row in cells)
    if not rows:
        parts.append("(none)")
    if limit is not None and len(table.rows) > limit:
        parts.append(f"... {len(table.rows) - limit} more rows in CSV/JSON")
    if table.note:
        parts.append(f"note: {table.note}")
    return "\n".join(parts)


def render_text(report: Report, top_n: int | None = None) -> str:
    m, s = report.meta, report.summary
    cur = m.get("currency", "")
    head = [
        "Peering and transit cost report",
        f"period   {m.get('start')} .. {m.get('end')}  ({m.get('buckets', 0)} buckets of "
        f"{m.get('bucket_seconds', 300) // 60} min, "
        f"billing percentile p{m.get('percentile', 95):g})",
        f"records  {m.get('records', 0):,} staged, "
        f"{m.get('bad_lines', {}).get('total', 0):,} bad lines, "
        f"{m.get('outside_window', 0):,} outside the time window",
    ]
    if s.get("records"):
        head.append(
            f"traffic  in {fmt_bytes(s.get('bytes_in'))}, out {fmt_bytes(s.get('bytes_out'))}, "
            f"total {fmt_bytes(s.get('bytes'))}"
        )
        head.append(
            f"cost     {s.get('monthly_cost', 0):,.0f} {cur}/month "
            f"(transit {s.get('transit_monthly_cost', 0):,.0f}); "
            f"top candidates could save {s.get('candidate_saving_top', 0):,.0f} {cur}/month"
        )
    parts = ["\n".join(head)]
    inputs = m.get("inputs", [])
    if inputs:
        parts.append(_inputs_text(inputs))
    for name in HUMAN_TABLES:
        table = report.tables.get(name)
        if table is None:
            continue
        limit = top_n if top_n is not None else table.display_limit
        parts.append(text_table(table, limit))
    bad = m.get("bad_lines", {})
    if bad.get("examples"):
        shown = bad["examples"][:10]
        lines = [f"  {b['file']}:{b['line']}: {b['reason']}" for b in shown]
        parts.append("Bad lines (first 10)\n====================\n" + "\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _inputs_text(inputs: list[dict[str, Any]]) -> str:
    table = Table(
        "inputs",
        "Inputs",
        [
            Column("path", "file"),
            Column("format", "format"),
            Column("attribution", "attribution"),
            Column("lines", "lines", "int"),
            Column("records", "records", "int"),
            Column("bad_lines", "bad lines", "int"),
            Column("outside_window", "outside window", "int"),
        ],
        inputs,
    )
    return text_table(table)


# ---------------------------------------------------------------------- machines
def _plain(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return round(value, 6)
    return value


def report_dict(report: Report) -> dict[str, Any]:
    return {
        "meta": report.meta,
        "summary": {k: _plain(v) for k, v in report.summary.items()},
        "tables": {
            name: {
                "title": t.title,
                "note": t.note,
                "columns": [{"key": c.key, "header": c.header, "kind": c.kind} for c in t.columns],
                "rows": [{k: _plain(v) for k, v in row.items()} for row in t.rows],
            }
            for name, t in report.tables.items()
        },
    }


def render_json(report: Report) -> bytes:
    return orjson.dumps(report_dict(report), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)


def table_csv(table: Table) -> str:
    buf = io.StringIO()
    keys = list(table.rows[0].keys()) if table.rows else [c.key for c in table.columns]
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(keys)
    for row in table.rows:
        writer.writerow(["" if row.get(k) is None else _plain(row.get(k)) for k in keys])
    return buf.getvalue()


def write_csv_dir(report: Report, directory: str) -> list[str]:
    """One CSV per table, plus inputs.csv and bad_lines.csv; returns the paths written."""
    os.makedirs(directory, exist_ok=True)
    written = []
    tables = dict(report.tables)
    inputs = report.meta.get("inputs", [])
    tables["inputs"] = Table("inputs", "Inputs", [Column(k, k) for k in ("path",)], inputs)
    bad = report.meta.get("bad_lines", {}).get("examples", [])
    tables["bad_lines"] = Table(
        "bad_lines", "Bad lines", [Column(k, k) for k in ("file", "line", "reason")], bad
    )
    for name, table in tables.items():
        path = os.path.join(directory, f"{name}.csv")
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(table_csv(table))
        written.append(path)
    return written
