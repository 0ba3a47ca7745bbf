"""The peering candidates table: networks reaching us over transit, ranked by saving."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from attribution.reports import sql
from attribution.reports.costs import CandidateInput, rank_candidates, weighted_price
from attribution.reports.tables import Column, Table, pct_label, pivot, stat

if TYPE_CHECKING:
    from attribution.reports.report import ReportBuilder


def candidates_table(builder: ReportBuilder) -> Table:
    limit = builder.cfg.table_rows
    # One pass over all ASes; those whose percentile is 0 on both sides (seen in
    # fewer buckets than the percentile skips) cannot save anything and are dropped.
    connected = sql.in_list("asn", sorted(builder.cfg.connected_ases() | {0}), negate=True)
    reach = pivot(
        builder.b.query(
            sql.percentiles(
                "transit_reach",
                ["side", "asn"],
                [(0, builder.whole.start, builder.whole.end)],
                builder.bucket,
                connected,
                nonzero=True,
            )
        ),
        1,
    )
    top = sorted(
        reach,
        key=lambda k: -max(stat(reach[k], "in", "pct"), stat(reach[k], "out", "pct")),
    )[:limit]
    reach = {k: reach[k] for k in top}
    asns = [k[0] for k in top]
    origin = (
        pivot(builder._pct("transit_origin", ["asn"], [builder.whole], sql.in_list("asn", asns)), 1)
        if asns
        else {}
    )
    price_by_link = {
        i: link.price_per_mbps for i, link in enumerate(builder.cfg.links) if link.kind == "transit"
    }
    by_link: dict[int, dict[int, float]] = defaultdict(dict)
    for asn, link_id, b, *_ in (
        builder.b.query(sql.totals("transit_reach", ["asn", "link_id"], sql.in_list("asn", asns)))
        if asns
        else []
    ):
        by_link[asn][link_id] = float(b or 0)
    transit_total = sum(
        float(r[1] or 0)
        for r in builder.b.query(sql.totals("cube", ["link_kind"]))
        if r[0] == "transit"
    )
    inputs = [
        CandidateInput(
            asn=asn,
            p95_in=stat(s, "in", "pct"),
            p95_out=stat(s, "out", "pct"),
            origin_p95_in=stat(origin.get((asn,), {}), "in", "pct"),
            origin_p95_out=stat(origin.get((asn,), {}), "out", "pct"),
            transit_bytes=stat(s, "in", "bytes") + stat(s, "out", "bytes"),
            transit_price=weighted_price(by_link[asn], price_by_link),
        )
        for (asn,), s in reach.items()
    ]
    ranked = rank_candidates(inputs, builder.cfg.peering, builder.cfg.connected_ases())[:limit]
    rows = [
        {
            "rank": c.rank,
            "asn": c.asn,
            "as_name": builder.name(c.asn),
            "p95_in_mbps": c.p95_in,
            "p95_out_mbps": c.p95_out,
            "p95_mbps": c.p95_mbps,
            "origin_p95_mbps": c.origin_p95_mbps,
            "transit_bytes": c.transit_bytes,
            "transit_share_pct": 100 * c.transit_bytes / transit_total if transit_total else 0.0,
            "transit_price": c.transit_price,
            "transit_cost": c.transit_cost,
            "option": c.option or "",
            "option_cost": c.option_cost,
            "saving": c.saving,
        }
        for c in ranked
    ]
    pct = pct_label(builder.cfg.percentile)
    cur = builder.cfg.currency
    return Table(
        "candidates",
        "Peering candidates: networks reaching us over transit",
        [
            Column("rank", "#", "int"),
            Column("asn", "AS", "asn"),
            Column("as_name", "name"),
            Column("p95_mbps", f"{pct} Mbps", "mbps"),
            Column("origin_p95_mbps", "own origin", "mbps"),
            Column("transit_share_pct", "of transit %", "pct"),
            Column("transit_cost", f"transit {cur}/mo", "money"),
            Column("option", "move to"),
            Column("option_cost", f"new {cur}/mo", "money"),
            Column("saving", f"saving {cur}/mo", "money"),
        ],
        rows,
        note=(
            f"{pct} of transit traffic the AS originates or hands to our provider "
            "(max of in/out); already connected ASes excluded"
        ),
        display_limit=builder.top_n,
    )
