"""What a report is made of: tables of plain rows with a column spec, and chart series.

Shared by the builder (``report.py`` and the table modules beside it) and the
renderers, which format them; no queries here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SIDES = ("in", "out")


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    kind: str = "text"  # text | int | asn | bytes | mbps | money | pct | bool | time


@dataclass
class Table:
    name: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    note: str = ""
    display_limit: int | None = None  # rows shown in terminal/HTML (all in CSV/JSON)


@dataclass
class Series:
    """Mbps per bucket for a few named series (charts)."""

    buckets: list[int]
    series: list[tuple[str, list[float]]]


@dataclass
class Report:
    meta: dict[str, Any]
    summary: dict[str, Any]
    tables: dict[str, Table] = field(default_factory=dict)
    charts: dict[str, Series] = field(default_factory=dict)


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pivot(
    rows: Sequence[tuple[Any, ...]], nkeys: int
) -> dict[tuple[Any, ...], dict[str, dict[str, float]]]:
    """percentile rows (side, *keys, period, bytes, packets, flows, pct, peak, mean) -> by key."""
    out: dict[tuple[Any, ...], dict[str, dict[str, float]]] = defaultdict(dict)
    for r in rows:
        side, keys = r[0], tuple(r[1 : 1 + nkeys])
        bytes_, packets, flows, pct, peak, mean = r[2 + nkeys : 8 + nkeys]
        out[keys][side] = {
            "bytes": float(bytes_ or 0),
            "packets": float(packets or 0),
            "flows": int(flows or 0),
            "pct": float(pct or 0),
            "peak": float(peak or 0),
            "mean": float(mean or 0),
        }
    return out


def stat(stats: dict[str, dict[str, float]], side: str, what: str) -> float:
    """One figure of one side of a pivoted row, 0 when that side had no traffic."""
    return stats.get(side, {}).get(what, 0.0)


def pct_label(p: float) -> str:
    """The percentile as column headers show it: p95, p99.5."""
    return f"p{p:g}"
