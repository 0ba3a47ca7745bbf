"""The links tables of a report: volume, billing percentile and cost, whole and per month."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from attribution.reports.costs import link_cost
from attribution.reports.percentile import month_periods
from attribution.reports.tables import Column, Table, pct_label, stat

if TYPE_CHECKING:
    from attribution.reports.report import ReportBuilder


def links_table(
    builder: ReportBuilder, stats: dict[tuple[Any, ...], dict[str, dict[str, float]]]
) -> Table:
    rows = []
    for i, link in enumerate(builder.cfg.links):
        s = stats.get((i,), {})
        p_in, p_out = stat(s, "in", "pct"), stat(s, "out", "pct")
        cost = link_cost(link, p_in, p_out)
        rows.append(
            {
                "link": link.name,
                "kind": link.kind,
                "exporter": link.exporter,
                "if_index": link.if_index,
                "peer_as": ",".join(str(a) for a in link.peer_as),
                "bytes_in": stat(s, "in", "bytes"),
                "bytes_out": stat(s, "out", "bytes"),
                "p95_in_mbps": p_in,
                "p95_out_mbps": p_out,
                "peak_in_mbps": stat(s, "in", "peak"),
                "peak_out_mbps": stat(s, "out", "peak"),
                "mean_in_mbps": stat(s, "in", "mean"),
                "mean_out_mbps": stat(s, "out", "mean"),
                "billed_mbps": cost.billed_mbps,
                "commit_mbps": link.commit_mbps,
                "below_commit": cost.below_commit,
                "capacity_mbps": link.capacity_mbps,
                "utilisation_pct": (
                    100 * max(p_in, p_out) / link.capacity_mbps if link.capacity_mbps else None
                ),
                "price_per_mbps": link.price_per_mbps,
                "usage_cost": cost.usage_cost,
                "fixed_cost": cost.fixed_cost,
                "monthly_cost": cost.monthly_cost,
                "cost_per_mbps": cost.cost_per_mbps,
            }
        )
    pct = pct_label(builder.cfg.percentile)
    return Table(
        "links",
        "Links: volume, billing percentile and monthly cost",
        [
            Column("link", "link"),
            Column("kind", "kind"),
            Column("peer_as", "peer AS"),
            Column("bytes_in", "in", "bytes"),
            Column("bytes_out", "out", "bytes"),
            Column("p95_in_mbps", f"{pct} in Mbps", "mbps"),
            Column("p95_out_mbps", f"{pct} out Mbps", "mbps"),
            Column("peak_in_mbps", "peak in", "mbps"),
            Column("peak_out_mbps", "peak out", "mbps"),
            Column("billed_mbps", "billed Mbps", "mbps"),
            Column("commit_mbps", "commit", "mbps"),
            Column("utilisation_pct", "util %", "pct"),
            Column("monthly_cost", f"cost/month {builder.cfg.currency}", "money"),
            Column("cost_per_mbps", f"{builder.cfg.currency}/Mbps", "money2"),
        ],
        rows,
        note=(
            f"billed = max(in, out) {pct} unless the link sets billing; "
            "cost = max(billed, commit) x price + monthly fee; customer links show revenue"
        ),
    )


def link_months(builder: ReportBuilder, start: int, end: int) -> Table:
    months = month_periods(start, end, builder.bucket)
    builder.b.set_periods([m.row(builder.cfg.percentile) for m in months])
    rows_raw = builder._pct("cube", ["link_id"], months, "link_id >= 0")
    by: dict[tuple[int, int], dict[str, dict[str, float]]] = defaultdict(dict)
    for r in rows_raw:
        side, link_id, period = r[0], r[1], r[2]
        by[(link_id, period)][side] = {"pct": float(r[6] or 0), "bytes": float(r[3] or 0)}
    rows = []
    for m in months:
        for i, link in enumerate(builder.cfg.links):
            s = by.get((i, m.period_id), {})
            p_in, p_out = stat(s, "in", "pct"), stat(s, "out", "pct")
            cost = link_cost(link, p_in, p_out)
            rows.append(
                {
                    "month": m.label,
                    "coverage_pct": 100 * m.coverage,
                    "link": link.name,
                    "kind": link.kind,
                    "bytes_in": stat(s, "in", "bytes"),
                    "bytes_out": stat(s, "out", "bytes"),
                    "p95_in_mbps": p_in,
                    "p95_out_mbps": p_out,
                    "billed_mbps": cost.billed_mbps,
                    "monthly_cost": cost.monthly_cost,
                    "cost_per_mbps": cost.cost_per_mbps,
                }
            )
    pct = pct_label(builder.cfg.percentile)
    return Table(
        "link_months",
        "Links per calendar month (UTC): what the invoice would say",
        [
            Column("month", "month"),
            Column("coverage_pct", "data %", "pct"),
            Column("link", "link"),
            Column("kind", "kind"),
            Column("p95_in_mbps", f"{pct} in", "mbps"),
            Column("p95_out_mbps", f"{pct} out", "mbps"),
            Column("billed_mbps", "billed Mbps", "mbps"),
            Column("monthly_cost", f"cost {builder.cfg.currency}", "money"),
            Column("cost_per_mbps", f"{builder.cfg.currency}/Mbps", "money2"),
        ],
        rows,
        note="a month partly covered by data has its percentile taken over the covered part",
    )
