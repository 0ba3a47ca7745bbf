"""Build the report (tables + series) from a prepared backend. Renderers format it.

Tables are lists of plain dicts with raw numbers (bytes, Mbps, money) and a
column spec saying how to show each; JSON and CSV get the numbers unrounded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from attribution.reports import sql
from attribution.reports.candidates_table import candidates_table
from attribution.reports.config import ReportConfig
from attribution.reports.engine import AggregationBackend
from attribution.reports.links_tables import link_months, links_table
from attribution.reports.percentile import (
    Period,
    align_down,
    align_up,
    whole_period,
)
from attribution.reports.tables import (
    SIDES,
    Column,
    Report,
    Series,
    Table,
    iso,
    pct_label,
    pivot,
    stat,
)


class ReportBuilder:
    """Runs the queries for one report window and assembles tables."""

    def __init__(
        self,
        backend: AggregationBackend,
        config: ReportConfig,
        start: int | None = None,
        end: int | None = None,
        top_n: int | None = None,
        chart_series: int = 8,
    ) -> None:
        self.b = backend
        self.cfg = config
        self.start = start
        self.end = end
        self.top_n = top_n or config.top_n
        self.chart_series = chart_series
        self.bucket = config.bucket_seconds

    def name(self, asn: int) -> str:
        return self.cfg.as_names.get(asn, "")

    def _pct(self, source: str, keys: list[str], periods: Sequence[Period], where: str = ""):
        text = sql.percentiles(
            source,
            ["side", *keys],
            [(p.period_id, p.start, p.end) for p in periods],
            self.bucket,
            where,
        )
        return self.b.query(text)

    def build(self, meta: dict[str, Any]) -> Report:
        lo, hi, staged = self.b.staged_range()
        cfg = self.cfg
        meta = {
            **meta,
            "currency": cfg.currency,
            "bucket_seconds": self.bucket,
            "percentile": cfg.percentile,
            "local_as": sorted(cfg.local_as),
            "config": cfg.path,
            "records": staged,
        }
        if staged == 0:
            meta.update(start=None, end=None, buckets=0)
            return Report(meta=meta, summary={"records": 0, "bytes": 0.0})
        self.b.prepare(cfg.links, self.bucket)
        start = align_down(self.start if self.start is not None else lo, self.bucket)
        end = (
            align_up(self.end, self.bucket)
            if self.end is not None
            else align_down(hi, self.bucket) + self.bucket
        )
        whole = self.whole = whole_period(start, end, self.bucket)
        meta.update(start=iso(start), end=iso(end), start_ts=start, end_ts=end, buckets=whole.n)
        self.b.set_periods([whole.row(cfg.percentile)])

        report = Report(meta=meta, summary={})
        side_totals = {r[0]: float(r[1] or 0) for r in self.b.query(sql.totals("cube", ["side"]))}
        link_stats = pivot(self._pct("cube", ["link_id"], [whole], "link_id >= 0"), 1)
        limit = cfg.table_rows
        top_peers = self._top("peer_as", limit)
        top_origins = self._top("origin_as", limit)
        peer_stats = pivot(
            self._pct("cube", ["peer_as"], [whole], sql.in_list("peer_as", top_peers)), 1
        )
        peer_link_stats = pivot(
            self._pct(
                "cube",
                ["peer_as", "link_id"],
                [whole],
                f"link_id >= 0 AND {sql.in_list('peer_as', top_peers)}",
            ),
            2,
        )
        origin_stats = pivot(
            self._pct("cube", ["origin_as"], [whole], sql.in_list("origin_as", top_origins)), 1
        )

        report.tables["links"] = links_table(self, link_stats)
        report.tables["link_months"] = link_months(self, start, end)
        self.b.set_periods([whole.row(cfg.percentile)])
        report.tables["peers"] = self._as_table(
            "peers",
            "Traffic by neighbor (peer) AS",
            "peer_as",
            peer_stats,
            side_totals,
            kinds=self._kinds("peer_as", top_peers),
        )
        report.tables["origins"] = self._as_table(
            "origins",
            "Traffic by remote origin AS",
            "origin_as",
            origin_stats,
            side_totals,
            kinds=self._kinds("origin_as", top_origins),
        )
        report.tables["peer_links"] = self._peer_links(peer_link_stats)
        report.tables["candidates"] = candidates_table(self)
        report.tables["directions"] = self._directions()
        for column, title in (
            ("src_peer_as", "All flows by source peer AS"),
            ("dst_peer_as", "All flows by destination peer AS"),
            ("src_origin_as", "All flows by source origin AS"),
            ("dst_origin_as", "All flows by destination origin AS"),
        ):
            report.tables[column] = self._raw(column, title)
        self._series(report, peer_stats, start, end)
        report.summary = self._summary(report, side_totals)
        return report

    # ------------------------------------------------------------------ tables
    def _top(self, key: str, limit: int) -> list[int]:
        """The biggest groups by volume: AS tables keep only these (``table_rows``)."""
        return [int(r[0]) for r in self.b.query(sql.totals("cube", [key], limit=limit))]

    def _kinds(self, key: str, among: list[int]) -> dict[int, str]:
        kinds: dict[int, set[str]] = defaultdict(set)
        for asn, kind, *_ in self.b.query(
            sql.totals("cube", [key, "link_kind"], sql.in_list(key, among))
        ):
            kinds[asn].add(kind or "no link")
        order = {"pni": 0, "ix": 1, "customer": 2, "transit": 3, "no link": 4}
        return {a: "+".join(sorted(k, key=lambda x: order.get(x, 9))) for a, k in kinds.items()}

    def _as_table(
        self,
        name: str,
        title: str,
        key: str,
        stats: dict[tuple[Any, ...], dict[str, dict[str, float]]],
        side_totals: dict[str, float],
        kinds: dict[int, str],
    ) -> Table:
        rows = []
        t_in, t_out = side_totals.get("in", 0.0), side_totals.get("out", 0.0)
        for (asn,), s in stats.items():
            b_in, b_out = stat(s, "in", "bytes"), stat(s, "out", "bytes")
            rows.append(
                {
                    key: asn,
                    "as_name": self.name(asn),
                    "seen_on": kinds.get(asn, ""),
                    "bytes_in": b_in,
                    "bytes_out": b_out,
                    "bytes": b_in + b_out,
                    "share_in_pct": 100 * b_in / t_in if t_in else 0.0,
                    "share_out_pct": 100 * b_out / t_out if t_out else 0.0,
                    "p95_in_mbps": stat(s, "in", "pct"),
                    "p95_out_mbps": stat(s, "out", "pct"),
                    "peak_in_mbps": stat(s, "in", "peak"),
                    "peak_out_mbps": stat(s, "out", "peak"),
                }
            )
        rows.sort(key=lambda r: (-r["bytes"], r[key]))
        pct = pct_label(self.cfg.percentile)
        return Table(
            name,
            title,
            [
                Column(key, key.replace("_", " ").replace("as", "AS"), "asn"),
                Column("as_name", "name"),
                Column("seen_on", "via"),
                Column("bytes_in", "in", "bytes"),
                Column("share_in_pct", "in %", "pct"),
                Column("p95_in_mbps", f"{pct} in", "mbps"),
                Column("bytes_out", "out", "bytes"),
                Column("share_out_pct", "out %", "pct"),
                Column("p95_out_mbps", f"{pct} out", "mbps"),
            ],
            rows,
            note="AS 0 = unknown (no route / not attributed)",
            display_limit=self.top_n,
        )

    def _peer_links(self, stats: dict[tuple[Any, ...], dict[str, dict[str, float]]]) -> Table:
        rows = []
        for (asn, link_id), s in stats.items():
            link = self.cfg.links[link_id]
            rows.append(
                {
                    "peer_as": asn,
                    "as_name": self.name(asn),
                    "link": link.name,
                    "kind": link.kind,
                    "bytes_in": stat(s, "in", "bytes"),
                    "bytes_out": stat(s, "out", "bytes"),
                    "p95_in_mbps": stat(s, "in", "pct"),
                    "p95_out_mbps": stat(s, "out", "pct"),
                }
            )
        rows.sort(key=lambda r: (-(r["bytes_in"] + r["bytes_out"]), r["peer_as"], r["link"]))
        pct = pct_label(self.cfg.percentile)
        return Table(
            "peer_links",
            "Neighbor AS x link",
            [
                Column("peer_as", "peer AS", "asn"),
                Column("as_name", "name"),
                Column("link", "link"),
                Column("kind", "kind"),
                Column("bytes_in", "in", "bytes"),
                Column("p95_in_mbps", f"{pct} in", "mbps"),
                Column("bytes_out", "out", "bytes"),
                Column("p95_out_mbps", f"{pct} out", "mbps"),
            ],
            rows,
            display_limit=self.top_n,
        )

    def _whole(self) -> Period:
        return self.whole

    def _directions(self) -> Table:
        rows = self.b.query(sql.DIRECTION_SUMMARY)
        total = self.grand_total = sum(float(r[1] or 0) for r in rows)
        return Table(
            "directions",
            "Direction of all flows",
            [
                Column("direction", "direction"),
                Column("bytes", "bytes", "bytes"),
                Column("share_pct", "%", "pct"),
                Column("packets", "packets", "int"),
                Column("flows", "records", "int"),
            ],
            [
                {
                    "direction": d,
                    "bytes": float(b or 0),
                    "share_pct": 100 * float(b or 0) / total if total else 0.0,
                    "packets": float(p or 0),
                    "flows": int(f or 0),
                }
                for d, b, p, f in rows
            ],
            note=(
                "in/out by configured links first, else by local origin; "
                "through = in on one link, out on another"
            ),
        )

    def _raw(self, column: str, title: str) -> Table:
        rows = self.b.query(sql.raw_totals(column, self.cfg.table_rows))
        total = self.grand_total
        return Table(
            column,
            title,
            [
                Column("asn", "AS", "asn"),
                Column("as_name", "name"),
                Column("bytes", "bytes", "bytes"),
                Column("share_pct", "%", "pct"),
                Column("packets", "packets", "int"),
                Column("flows", "records", "int"),
            ],
            [
                {
                    "asn": a,
                    "as_name": self.name(a),
                    "bytes": float(b or 0),
                    "share_pct": 100 * float(b or 0) / total if total else 0.0,
                    "packets": float(p or 0),
                    "flows": int(f or 0),
                }
                for a, b, p, f in rows
            ],
            display_limit=self.top_n,
        )

    def _series(
        self,
        report: Report,
        peer_stats: dict[tuple[Any, ...], dict[str, dict[str, float]]],
        start: int,
        end: int,
    ) -> None:
        buckets = list(range(start, end, self.bucket))
        index = {b: i for i, b in enumerate(buckets)}
        long_rows: list[dict[str, Any]] = []
        for side in SIDES:
            ranked = sorted(
                ((s.get(side, {}).get("bytes", 0.0), k[0]) for k, s in peer_stats.items()),
                reverse=True,
            )
            keep = [asn for b, asn in ranked[: self.chart_series] if b > 0]
            values: dict[int, list[float]] = {asn: [0.0] * len(buckets) for asn in [*keep, -1]}
            text = sql.folded_series("cube", "peer_as", keep, f"side = '{side}'")
            for bucket, _side, k, b in self.b.query(text):
                i = index.get(bucket)
                if i is not None:
                    values[k][i] = float(b) * 8 / self.bucket / 1e6
            named = [(self._label(asn), values[asn]) for asn in keep]
            if any(values[-1]):
                named.append(("other", values[-1]))
            report.charts[f"peers_{side}"] = Series(buckets, named)
            for label, vals in named:
                long_rows.extend(
                    {"time": iso(buckets[i]), "side": side, "peer": label, "mbps": v}
                    for i, v in enumerate(vals)
                    if v
                )
        report.tables["timeseries_peers"] = Table(
            "timeseries_peers",
            f"Mbps per {self.bucket // 60}-minute bucket, top neighbors",
            [
                Column("time", "time"),
                Column("side", "side"),
                Column("peer", "peer"),
                Column("mbps", "Mbps", "mbps"),
            ],
            long_rows,
            display_limit=0,
        )
        link_rows: list[dict[str, Any]] = []
        for bucket, side, link_id, b in self.b.query(
            sql.series("cube", ["side", "link_id"], "link_id >= 0")
        ):
            link_rows.append(
                {
                    "time": iso(bucket),
                    "side": side,
                    "link": self.cfg.links[link_id].name,
                    "mbps": float(b) * 8 / self.bucket / 1e6,
                }
            )
        report.tables["timeseries_links"] = Table(
            "timeseries_links",
            f"Mbps per {self.bucket // 60}-minute bucket and link",
            [
                Column("time", "time"),
                Column("side", "side"),
                Column("link", "link"),
                Column("mbps", "Mbps", "mbps"),
            ],
            link_rows,
            display_limit=0,
        )

    def _label(self, asn: int) -> str:
        name = self.name(asn)
        return f"AS{asn} {name}" if name else ("unknown" if asn == 0 else f"AS{asn}")

    def _summary(self, report: Report, side_totals: dict[str, float]) -> dict[str, Any]:
        links = report.tables["links"].rows
        cost = sum(r["monthly_cost"] for r in links if r["kind"] != "customer")
        revenue = sum(r["monthly_cost"] for r in links if r["kind"] == "customer")
        transit = [r for r in links if r["kind"] == "transit"]
        cands = report.tables["candidates"].rows
        directions = {r["direction"]: r["bytes"] for r in report.tables["directions"].rows}
        return {
            "records": report.meta["records"],
            "bytes": sum(directions.values()),
            "bytes_by_direction": directions,
            "bytes_in": side_totals.get("in", 0.0),
            "bytes_out": side_totals.get("out", 0.0),
            "monthly_cost": cost,
            "monthly_customer_revenue": revenue,
            "transit_billed_mbps": sum(r["billed_mbps"] for r in transit),
            "transit_monthly_cost": sum(r["monthly_cost"] for r in transit),
            "candidates": len(cands),
            "candidate_saving_top": sum(
                r["saving"] for r in cands[: self.top_n] if r["saving"] and r["saving"] > 0
            ),
        }
