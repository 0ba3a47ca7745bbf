"""Cost arithmetic and peering-candidate ranking (pure functions, no I/O).

Link cost per month, the same formula for every kind:
    billable = max(billed_mbps, commit_mbps)
    monthly  = billable * price_per_mbps + monthly_fee
where billed_mbps comes from the in/out percentiles by the link's billing rule
(default ``max``: the higher of inbound and outbound, the usual transit rule).
IX/PNI links usually have no commit, so they cost fee + price * percentile.
For ``customer`` links the same figure is revenue, not cost.

A candidate's saving:
    transit_cost = p95 * transit_price        (its byte-weighted transit price)
    ix_cost      = p95 * ix_price_per_mbps + ix_monthly_fee
    pni_cost     = pni_monthly_fee + p95 * pni_price_per_mbps  (only if p95 >= pni_min_mbps)
    option       = the cheaper configured one (IX on a tie)
    saving       = transit_cost - option_cost
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from attribution.reports.config import LinkConfig, PeeringConfig


def billed_mbps(p_in: float, p_out: float, rule: str = "max") -> float:
    if rule == "max":
        return max(p_in, p_out)
    if rule == "in":
        return p_in
    if rule == "out":
        return p_out
    if rule == "sum":
        return p_in + p_out
    raise ValueError(f"unknown billing rule {rule!r}")


@dataclass(frozen=True)
class LinkCost:
    billed_mbps: float
    billable_mbps: float
    usage_cost: float
    fixed_cost: float
    monthly_cost: float
    cost_per_mbps: float | None  # effective: monthly cost / billed Mbps
    below_commit: bool


def link_cost(link: LinkConfig, p_in: float, p_out: float) -> LinkCost:
    billed = billed_mbps(p_in, p_out, link.billing)
    billable = max(billed, link.commit_mbps)
    usage = billable * link.price_per_mbps
    total = usage + link.monthly_fee
    return LinkCost(
        billed_mbps=billed,
        billable_mbps=billable,
        usage_cost=usage,
        fixed_cost=link.monthly_fee,
        monthly_cost=total,
        cost_per_mbps=total / billed if billed > 0 else None,
        below_commit=billed < link.commit_mbps,
    )


def weighted_price(bytes_by_link: Mapping[int, float], price_by_link: Mapping[int, float]) -> float:
    """Byte-weighted mean price over the transit links a network's traffic uses."""
    total = sum(b for lid, b in bytes_by_link.items() if lid in price_by_link)
    if total <= 0:
        return 0.0
    return (
        sum(b * price_by_link[lid] for lid, b in bytes_by_link.items() if lid in price_by_link)
        / total
    )


@dataclass(frozen=True)
class CandidateInput:
    asn: int
    p95_in: float
    p95_out: float
    origin_p95_in: float
    origin_p95_out: float
    transit_bytes: float
    transit_price: float


@dataclass(frozen=True)
class Candidate:
    rank: int
    asn: int
    p95_in: float
    p95_out: float
    p95_mbps: float
    origin_p95_mbps: float
    transit_bytes: float
    transit_price: float
    transit_cost: float
    option: str | None  # "ix" | "pni" | None when no alternative price is configured
    option_cost: float | None
    saving: float | None


def choose_option(p95: float, peering: PeeringConfig) -> tuple[str | None, float | None]:
    """The cheaper of IX and PNI; PNI only from ``pni_min_mbps`` up."""
    options: list[tuple[float, int, str]] = []
    if peering.ix_price_per_mbps is not None:
        options.append((p95 * peering.ix_price_per_mbps + peering.ix_monthly_fee, 0, "ix"))
    if peering.pni_monthly_fee is not None and p95 >= peering.pni_min_mbps:
        options.append((peering.pni_monthly_fee + p95 * peering.pni_price_per_mbps, 1, "pni"))
    if not options:
        return None, None
    cost, _, name = min(options)
    return name, cost


def rank_candidates(
    inputs: Iterable[CandidateInput],
    peering: PeeringConfig,
    excluded: Iterable[int],
    rule: str = "max",
) -> list[Candidate]:
    """Networks reaching us over transit, biggest billing-percentile volume first.

    ASes we already connect to (any configured link's peer, ``already_peered``,
    our own) and AS 0 (unknown) are not candidates.
    """
    skip = set(excluded) | {0}
    rows: list[Candidate] = []
    for c in inputs:
        if c.asn in skip:
            continue
        p95 = billed_mbps(c.p95_in, c.p95_out, rule)
        transit_cost = p95 * c.transit_price
        option, option_cost = choose_option(p95, peering)
        rows.append(
            Candidate(
                rank=0,
                asn=c.asn,
                p95_in=c.p95_in,
                p95_out=c.p95_out,
                p95_mbps=p95,
                origin_p95_mbps=billed_mbps(c.origin_p95_in, c.origin_p95_out, rule),
                transit_bytes=c.transit_bytes,
                transit_price=c.transit_price,
                transit_cost=transit_cost,
                option=option,
                option_cost=option_cost,
                saving=None if option_cost is None else transit_cost - option_cost,
            )
        )
    rows.sort(key=lambda r: (-r.p95_mbps, -r.transit_bytes, r.asn))
    return [Candidate(**{**r.__dict__, "rank": i}) for i, r in enumerate(rows, start=1)]
