"""The billing percentile and billing periods, defined once (pure, no I/O).

Rule (the usual transit "95th percentile", nearest rank):

* each bucket's rate is ``bytes * 8 / bucket_seconds / 1e6`` Mbps;
* a period of n buckets includes empty buckets as 0 Mbps;
* sort ascending, k = ceil(p/100 * n) (1-based), the percentile is the k-th
  value: i.e. drop the top (n - k) samples and take the highest remaining.

The SQL in :mod:`attribution.reports.sql` implements the same rule; tests pin
both to hand-computed series.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction


def mbps(bytes_in_bucket: float, bucket_seconds: int) -> float:
    return bytes_in_bucket * 8 / bucket_seconds / 1e6


def rank_k(n: int, percentile: float = 95.0) -> int:
    """1-based ascending rank of the percentile sample among n (exact arithmetic)."""
    if n <= 0:
        return 0
    k = math.ceil(Fraction(str(percentile)) * n / 100)
    return max(1, min(n, k))


def pick_from_top(n: int, percentile: float = 95.0) -> int:
    """The same sample counted from the top: n - k + 1 (what the SQL ranks by)."""
    return n - rank_k(n, percentile) + 1 if n > 0 else 0


def nearest_rank(samples: Sequence[float], percentile: float = 95.0, n: int | None = None) -> float:
    """Reference implementation: percentile of ``samples`` padded with zeros to ``n``."""
    total = len(samples) if n is None else n
    if total < len(samples):
        raise ValueError("n is smaller than the number of samples")
    if total == 0:
        return 0.0
    ordered = sorted([0.0] * (total - len(samples)) + list(samples))
    return ordered[rank_k(total, percentile) - 1]


@dataclass(frozen=True)
class Period:
    """A billing period: [start, end) in unix seconds and how much of it has data."""

    period_id: int
    label: str
    start: int
    end: int
    n: int  # buckets of the period inside the covered window
    full_n: int  # buckets of the whole period

    @property
    def coverage(self) -> float:
        return self.n / self.full_n if self.full_n else 0.0

    def row(self, percentile: float) -> tuple[int, int, int, int, int]:
        return (self.period_id, self.start, self.end, self.n, pick_from_top(self.n, percentile))


def align_down(ts: int, bucket: int) -> int:
    return ts - ts % bucket


def align_up(ts: int, bucket: int) -> int:
    return ts if ts % bucket == 0 else ts - ts % bucket + bucket


def whole_period(start: int, end: int, bucket: int) -> Period:
    """The report window as one period (for rankings and per-peer percentiles)."""
    n = max(0, (end - start) // bucket)
    return Period(0, "report", start, end, n, n)


def month_periods(start: int, end: int, bucket: int) -> list[Period]:
    """Calendar months (UTC) that intersect [start, end): how transit is invoiced."""
    periods: list[Period] = []
    if end <= start:
        return periods
    d = datetime.fromtimestamp(start, UTC)
    month = datetime(d.year, d.month, 1, tzinfo=UTC)
    pid = 0
    while int(month.timestamp()) < end:
        nxt = datetime(month.year + (month.month == 12), month.month % 12 + 1, 1, tzinfo=UTC)
        m_start, m_end = int(month.timestamp()), int(nxt.timestamp())
        lo, hi = max(m_start, start), min(m_end, end)
        periods.append(
            Period(
                pid,
                month.strftime("%Y-%m"),
                m_start,
                m_end,
                max(0, (hi - lo) // bucket),
                (m_end - m_start) // bucket,
            )
        )
        pid += 1
        month = nxt
    return periods
