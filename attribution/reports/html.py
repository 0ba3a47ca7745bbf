# ruff: noqa: E501 - markup lines read better unbroken than split mid-tag
"""One self-contained HTML file: inline CSS, SVG charts drawn in Python, no network.

Charts render without JavaScript. A few lines of inline JS only check, after
load, that every chart has drawn marks and flag ``data-rendered="1"`` on
``<body>`` (what the headless-browser test looks at) and errors in
``data-errors``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from datetime import UTC, datetime

from attribution.reports.render import HUMAN_TABLES, NUMERIC, fmt_bytes, fmt_cell, fmt_mbps
from attribution.reports.report import Report, Series, Table

# Colour-blind-safe palette (Okabe-Ito + Tableau tones); "other" is grey.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#86bcb6",
)
OTHER = "#bab0ac"
MAX_POINTS = 600  # per series in a chart; longer series are averaged down


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _nice_max(v: float, ticks: int = 4) -> float:
    """Smallest axis maximum >= v whose ``ticks`` equal steps are round numbers."""
    if v <= 0:
        return float(ticks)
    raw = v / ticks
    exp = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * exp >= raw:
            return m * exp * ticks
    return 10 * exp * ticks  # pragma: no cover


def _rate_label(mbps: float) -> str:
    if mbps >= 1000:
        return f"{mbps / 1000:g} Gbps"
    return f"{mbps:g} Mbps"


def downsample(
    buckets: list[int], values: list[float], max_points: int
) -> tuple[list[int], list[float]]:
    """Average consecutive buckets so a quarter of 5-minute data stays drawable."""
    if len(buckets) <= max_points:
        return buckets, values
    step = math.ceil(len(buckets) / max_points)
    xs = buckets[::step]
    ys = [
        sum(values[i : i + step]) / len(values[i : i + step]) for i in range(0, len(values), step)
    ]
    return xs, ys


def stacked_area(
    chart_id: str, series: Series, title: str, width: int = 920, height: int = 300
) -> str:
    """Stacked traffic per series over time (Mbps), with axes, grid and tooltips."""
    left, right, top, bottom = 78, 12, 12, 28
    pw, ph = width - left - right, height - top - bottom
    if not series.buckets or not series.series:
        return _empty_svg(chart_id, title, width, height)
    xs: list[int] = []
    stacks: list[list[float]] = []
    for _, vals in series.series:
        xs, ys = downsample(series.buckets, vals, MAX_POINTS)
        stacks.append(ys)
    n = len(xs)
    cum = [[0.0] * n]
    for ys in stacks:
        cum.append([a + b for a, b in zip(cum[-1], ys, strict=True)])
    ymax = _nice_max(max(cum[-1]) if cum[-1] else 0)
    t0, t1 = xs[0], xs[-1] if n > 1 else xs[0] + 1

    def px(i: int) -> float:
        return left + (xs[i] - t0) / (t1 - t0) * pw if t1 > t0 else left

    def py(v: float) -> float:
        return top + ph - v / ymax * ph

    parts = [
        f'<svg class="chart" id="{esc(chart_id)}" role="img" aria-label="{esc(title)}" '
        f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMidYMid meet">'
    ]
    for j in range(5):
        v = ymax * j / 4
        y = py(v)
        parts.append(f'<line class="grid" x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{esc(_rate_label(v))}</text>'
        )
    for tick in _time_ticks(t0, t1, 7):
        x = left + (tick - t0) / (t1 - t0) * pw if t1 > t0 else left
        parts.append(
            f'<line class="tick" x1="{x:.1f}" x2="{x:.1f}" y1="{top + ph}" y2="{top + ph + 4}"/>'
        )
        parts.append(
            f'<text class="axis" x="{x:.1f}" y="{height - 8}" text-anchor="middle">{esc(_tick_label(tick, t1 - t0))}</text>'
        )
    for idx, (label, _) in enumerate(series.series):
        color = OTHER if label == "other" else PALETTE[idx % len(PALETTE)]
        lo, hi = cum[idx], cum[idx + 1]
        pts = [f"{px(i):.1f},{py(hi[i]):.1f}" for i in range(n)]
        pts += [f"{px(i):.1f},{py(lo[i]):.1f}" for i in range(n - 1, -1, -1)]
        peak = max(stacks[idx]) if stacks[idx] else 0
        parts.append(
            f'<path class="series" data-series="{esc(label)}" fill="{color}" '
            f'd="M{" L".join(pts)} Z"><title>{esc(label)}: peak {esc(fmt_mbps(peak))} Mbps</title></path>'
        )
    parts.append(
        f'<line class="axisline" x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}"/>'
    )
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="sw" style="background:{OTHER if label == "other" else PALETTE[i % len(PALETTE)]}"></span>{esc(label)}</li>'
        for i, (label, _) in enumerate(series.series)
    )
    return "".join(parts) + f'<ul class="legend">{legend}</ul>'


def _time_ticks(t0: int, t1: int, count: int) -> list[int]:
    span = max(t1 - t0, 1)
    steps = [
        300,
        900,
        1800,
        3600,
        3 * 3600,
        6 * 3600,
        12 * 3600,
        86400,
        2 * 86400,
        7 * 86400,
        14 * 86400,
        30 * 86400,
    ]
    step = next((s for s in steps if span / s <= count), 30 * 86400)
    first = t0 - t0 % step + (step if t0 % step else 0)
    return list(range(first, t1 + 1, step))


def _tick_label(ts: int, span: int) -> str:
    d = datetime.fromtimestamp(ts, UTC)
    if span <= 2 * 86400:
        return d.strftime("%H:%M") if d.hour or d.minute else d.strftime("%b %d")
    return d.strftime("%b %d")


def hbars(
    chart_id: str,
    items: Sequence[tuple[str, Sequence[float], str]],
    segment_names: Sequence[str],
    title: str,
    value_fmt: str = "{:,.0f}",
    width: int = 920,
) -> str:
    """Horizontal bars, optionally stacked (e.g. usage + fixed fee), labelled at the end."""
    if not items:
        return _empty_svg(chart_id, title, width, 80)
    label_w, right, row_h, top = 220, 170, 26, 8
    height = top + row_h * len(items) + 24
    pw = width - label_w - right
    vmax = _nice_max(max(sum(v) for _, v, _ in items) or 1)
    colors = PALETTE if len(segment_names) > 1 else (PALETTE[0],)
    parts = [
        f'<svg class="chart" id="{esc(chart_id)}" role="img" aria-label="{esc(title)}" '
        f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMidYMid meet">'
    ]
    for j in range(5):
        x = label_w + pw * j / 4
        parts.append(
            f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{height - 20}"/>'
        )
        parts.append(
            f'<text class="axis" x="{x:.1f}" y="{height - 6}" text-anchor="middle">{esc(value_fmt.format(vmax * j / 4))}</text>'
        )
    for i, (label, segments, annotation) in enumerate(items):
        y = top + i * row_h + 4
        parts.append(
            f'<text class="label" x="{label_w - 8}" y="{y + 13}" text-anchor="end">{esc(_clip(label, 30))}</text>'
        )
        x = float(label_w)
        for k, v in enumerate(segments):
            w = max(v / vmax * pw, 0.0)
            if v > 0:
                name = segment_names[k] if k < len(segment_names) else ""
                parts.append(
                    f'<rect class="bar" data-series="{esc(name)}" x="{x:.1f}" y="{y}" width="{max(w, 1.0):.1f}" '
                    f'height="{row_h - 8}" fill="{colors[k % len(colors)]}"><title>{esc(label)} {esc(name)}: '
                    f"{esc(value_fmt.format(v))}</title></rect>"
                )
            x += w
        parts.append(f'<text class="value" x="{x + 6:.1f}" y="{y + 13}">{esc(annotation)}</text>')
    parts.append("</svg>")
    legend = ""
    if len(segment_names) > 1:
        legend = (
            '<ul class="legend">'
            + "".join(
                f'<li><span class="sw" style="background:{colors[k % len(colors)]}"></span>{esc(n)}</li>'
                for k, n in enumerate(segment_names)
            )
            + "</ul>"
        )
    return "".join(parts) + legend


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _empty_svg(chart_id: str, title: str, width: int, height: int) -> str:
    return (
        f'<svg class="chart empty" id="{esc(chart_id)}" viewBox="0 0 {width} {height}" width="100%">'
        f'<text class="axis" x="{width / 2}" y="{height / 2}" text-anchor="middle">no data for {esc(title)}</text></svg>'
    )


def html_table(table: Table, limit: int | None) -> str:
    rows = table.rows if limit is None else table.rows[:limit]
    head = "".join(
        f'<th class="{"num" if c.kind in NUMERIC else ""}">{esc(c.header)}</th>'
        for c in table.columns
    )
    body = []
    for r in rows:
        cells = "".join(
            f'<td class="{"num" if c.kind in NUMERIC else ""}">{esc(fmt_cell(r.get(c.key), c.kind))}</td>'
            for c in table.columns
        )
        body.append(f"<tr>{cells}</tr>")
    more = ""
    if limit is not None and len(table.rows) > limit:
        more = f'<p class="more">{len(table.rows) - limit:,} more rows in the CSV/JSON output.</p>'
    note = f'<p class="note">{esc(table.note)}</p>' if table.note else ""
    empty = '<tr><td class="empty" colspan="99">none</td></tr>' if not rows else ""
    return (
        f'<section class="table" id="t-{esc(table.name)}"><h2>{esc(table.title)}</h2>'
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}{empty}</tbody></table></div>'
        f"{more}{note}</section>"
    )


CSS = """
:root{--fg:#1f2933;--muted:#616e7c;--line:#e4e7eb;--bg:#f5f7fa;--card:#fff;--accent:#4e79a7}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI","DejaVu Sans",Arial,sans-serif;color:var(--fg);background:var(--bg)}
header{background:#243b53;color:#fff;padding:22px 32px}
header h1{margin:0 0 4px;font-size:22px;font-weight:600}
header p{margin:0;color:#d9e2ec}
main{max-width:1180px;margin:0 auto;padding:20px 24px 40px}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;margin-bottom:18px}
.kpi{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.kpi .v{font-size:21px;font-weight:600;font-variant-numeric:tabular-nums}
.kpi .k{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card,section.table{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:14px 18px;margin-bottom:18px}
h2{font-size:16px;margin:0 0 10px;font-weight:600}
svg.chart{display:block;max-width:100%;height:auto}
svg .grid{stroke:#e4e7eb;stroke-width:1}
svg .tick,svg .axisline{stroke:#9aa5b1}
svg text{font:11px system-ui,"DejaVu Sans",Arial,sans-serif;fill:#52606d}
svg text.label{fill:#1f2933;font-size:12px}
svg text.value{fill:#1f2933;font-size:12px;font-weight:600}
svg path.series{stroke:#fff;stroke-width:.4;opacity:.95}
.legend{list-style:none;padding:0;margin:8px 0 0;display:flex;flex-wrap:wrap;gap:6px 16px;font-size:12px;color:var(--muted)}
.legend .sw{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:5px 9px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
th{background:#f0f4f8;font-weight:600;color:#334e68;position:sticky;top:0}
tbody tr:nth-child(even){background:#fafbfc}
.num{text-align:right;font-variant-numeric:tabular-nums}
.note,.more{color:var(--muted);font-size:12px;margin:8px 0 0}
.grid2{display:grid;grid-template-columns:1fr;gap:0}
footer{color:var(--muted);font-size:12px;max-width:1180px;margin:0 auto;padding:0 24px 30px}
footer dt{font-weight:600;color:var(--fg)}
.bad{color:#b42318}
"""

JS = """
(function(){
  var errors=[];
  window.addEventListener('error',function(e){errors.push(String(e.message));document.body.setAttribute('data-errors',errors.join(' | '));});
  function check(){
    var charts=document.querySelectorAll('svg.chart');var ok=0;
    charts.forEach(function(svg){
      var marks=svg.querySelectorAll('.series,.bar');var drawn=0;
      marks.forEach(function(m){var b=m.getBBox();if(b.width>0&&b.height>0){drawn++;}});
      svg.setAttribute('data-drawn',String(drawn));
      if(drawn>0||svg.classList.contains('empty')){ok++;}
    });
    document.body.setAttribute('data-charts',String(charts.length));
    document.body.setAttribute('data-rendered',ok===charts.length&&errors.length===0?'1':'0');
  }
  if(document.readyState==='loading'){document.addEventListener('DOMContentLoaded',check);}else{check();}
})();
"""


def render_html(report: Report, top_n: int | None = None) -> str:
    m, s = report.meta, report.summary
    cur = m.get("currency", "")
    title = "Peering and transit cost report"
    period = f"{m.get('start')} to {m.get('end')}" if m.get("start") else "no data"
    local = ", ".join(f"AS{a}" for a in m.get("local_as", [])) or "not configured"
    sub = (
        f"{period} · local {local} · {m.get('records', 0):,} flow records · "
        f"p{m.get('percentile', 95):g} over {m.get('bucket_seconds', 300) // 60}-minute buckets"
    )
    bad_total = m.get("bad_lines", {}).get("total", 0)
    kpis = [
        ("traffic in", fmt_bytes(s.get("bytes_in", 0))),
        ("traffic out", fmt_bytes(s.get("bytes_out", 0))),
        ("transit billed", f"{fmt_mbps(s.get('transit_billed_mbps', 0))} Mbps"),
        ("monthly cost", f"{s.get('monthly_cost', 0):,.0f} {cur}"),
        ("candidate saving", f"{s.get('candidate_saving_top', 0):,.0f} {cur}/mo"),
        ("bad lines", f"{bad_total:,}"),
    ]
    kpi_html = "".join(
        f'<div class="kpi"><div class="k">{esc(k)}</div><div class="v{" bad" if k == "bad lines" and bad_total else ""}">{esc(v)}</div></div>'
        for k, v in kpis
    )
    body = [f'<section class="kpis">{kpi_html}</section>']
    for side, label in (("in", "Inbound"), ("out", "Outbound")):
        series = report.charts.get(f"peers_{side}")
        if series is not None:
            body.append(
                f'<section class="card"><h2>{label} traffic per neighbor AS (stacked, Mbps)</h2>'
                f"{stacked_area(f'chart-peers-{side}', series, f'{label} traffic per neighbor AS')}</section>"
            )
    links = report.tables.get("links")
    if links is not None and links.rows:
        items = [
            (
                f"{r['link']} ({r['kind']})",
                [r["usage_cost"], r["fixed_cost"]],
                f"{r['monthly_cost']:,.0f} {cur}"
                + (f" · {r['cost_per_mbps']:,.2f}/Mbps" if r.get("cost_per_mbps") else ""),
            )
            for r in links.rows
        ]
        body.append(
            f'<section class="card"><h2>Monthly cost per link ({esc(cur)})</h2>'
            f"{hbars('chart-link-cost', items, ['traffic (p95 or commit x price)', 'fixed fees'], 'cost per link')}</section>"
        )
    cands = report.tables.get("candidates")
    if cands is not None:
        limit = min(top_n or 15, 15)
        items = [
            (
                f"AS{r['asn']} {r['as_name']}".strip(),
                [r["p95_mbps"]],
                f"{fmt_mbps(r['p95_mbps'])} Mbps"
                + (
                    f" · save {r['saving']:,.0f} {cur} via {r['option'].upper()}"
                    if r.get("saving") is not None
                    else ""
                ),
            )
            for r in cands.rows[:limit]
        ]
        body.append(
            f'<section class="card"><h2>Top peering candidates (p{m.get("percentile", 95):g} Mbps over transit)</h2>'
            f"{hbars('chart-candidates', items, ['Mbps'], 'peering candidates', '{:,.0f}')}</section>"
        )
    for name in HUMAN_TABLES:
        table = report.tables.get(name)
        if table is not None:
            body.append(html_table(table, top_n if top_n is not None else table.display_limit))
    inputs = m.get("inputs", [])
    if inputs:
        rows = "".join(
            f"<tr><td>{esc(i['path'])}</td><td>{esc(i['format'])}</td><td>{esc(i['attribution'])}</td>"
            f'<td class="num">{i["lines"]:,}</td><td class="num">{i["records"]:,}</td>'
            f'<td class="num{" bad" if i["bad_lines"] else ""}">{i["bad_lines"]:,}</td>'
            f'<td class="num">{i["outside_window"]:,}</td></tr>'
            for i in inputs
        )
        body.append(
            '<section class="table"><h2>Inputs</h2><div class="scroll"><table><thead><tr><th>file</th><th>format</th>'
            '<th>attribution</th><th class="num">lines</th><th class="num">records</th><th class="num">bad lines</th>'
            f'<th class="num">outside window</th></tr></thead><tbody>{rows}</tbody></table></div></section>'
        )
    examples = m.get("bad_lines", {}).get("examples", [])[:20]
    if examples:
        items_html = "".join(
            f"<li><code>{esc(b['file'])}:{b['line']}</code> {esc(b['reason'])}</li>"
            for b in examples
        )
        body.append(
            f'<section class="card"><h2>Bad lines (first {len(examples)})</h2><ul>{items_html}</ul></section>'
        )
    generated = esc(m.get("generated_at", ""))
    footer = f"""<footer><dl>
<dt>Billing percentile</dt><dd>Per {m.get("bucket_seconds", 300) // 60}-minute bucket: Mbps = bytes &times; 8 / {m.get("bucket_seconds", 300)} / 10<sup>6</sup>.
Samples of the period sorted ascending, buckets without traffic count as 0; the value at rank &lceil;{m.get("percentile", 95):g}% &times; n&rceil;.
In and out are computed separately; a link is billed on the higher of the two unless configured otherwise.</dd>
<dt>Direction</dt><dd>In = arrives on a configured external link (else: only the destination is ours); out = leaves on one
(else: only the source is ours); through = in on one link and out on another; internal/unknown are shown, not dropped.</dd>
<dt>Volumes</dt><dd>Bytes and packets multiplied by each record's sampling rate, or the exporter's configured default.</dd>
<dt>Generated</dt><dd>{generated} from {esc(m.get("config") or "no config")}</dd></dl></footer>"""
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f'<body data-rendered="0"><header><h1>{esc(title)}</h1><p>{esc(sub)}</p></header>'
        f"<main>{''.join(body)}</main>{footer}<script>{JS}</script></body></html>\n"
    )
