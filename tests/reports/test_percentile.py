"""The billing percentile: nearest rank over all buckets, empty buckets = 0."""

from __future__ import annotations

import pytest
from conftest import by, row, run_rows

from attribution.reports.config import ReportConfig, load_report_config
from attribution.reports.percentile import month_periods, nearest_rank, rank_k

T0 = 1709251200  # 2024-03-01T00:00:00Z
MBPS_BYTES = 37_500_000  # bytes in a 5-minute bucket that make exactly 1 Mbps

# 20 buckets, hand-shuffled 1..20 Mbps.
SERIES_20 = [5, 1, 9, 3, 7, 2, 8, 4, 6, 10, 12, 11, 15, 14, 13, 20, 18, 17, 19, 16]


def test_rank_is_ceil_of_p_times_n_one_based():
    assert rank_k(20) == 19  # 0.95 * 20 = 19 exactly: no float rounding up to 20
    assert rank_k(100) == 95
    assert rank_k(30) == 29  # ceil(28.5)
    assert rank_k(10) == 10  # ceil(9.5): under 20 samples p95 is the maximum
    assert rank_k(8640) == 8208  # 30 days of 5-minute buckets
    assert rank_k(1) == 1


def test_nearest_rank_drops_top_5_percent_and_takes_highest_remaining():
    assert nearest_rank(SERIES_20) == 19
    # 30 samples 1..30: drop the top ceil-complement (1 sample), take 29
    assert nearest_rank(list(range(1, 31))) == 29
    # 100 samples: the top 5 are discarded
    assert nearest_rank(list(range(1, 101))) == 95


def test_empty_buckets_count_as_zero():
    # 20 busy buckets in a 40-bucket period: k = 38 -> 20 zeros + 18th of 1..20
    assert nearest_rank(SERIES_20, n=40) == 18
    # a burst in 1 of 100 buckets bills nothing
    assert nearest_rank([500.0], n=100) == 0.0


def _transit_config() -> ReportConfig:
    return load_report_config(
        {
            "report": {
                "local_as": 65000,
                "links": [
                    {
                        "name": "t",
                        "exporter": "192.0.2.1",
                        "if_index": 10,
                        "kind": "transit",
                        "peer_as": 64500,
                        "price_per_mbps": 1.0,
                    }
                ],
            }
        },
        "t.toml",
    )


def test_sql_percentile_matches_hand_computed_series():
    rows = [row(T0 + 300 * i, 10, 5, mbps * MBPS_BYTES) for i, mbps in enumerate(SERIES_20)]
    report = run_rows(rows, _transit_config())
    link = by(report.tables["links"].rows, "link")["t"]
    assert link["p95_in_mbps"] == pytest.approx(19.0)
    assert link["peak_in_mbps"] == pytest.approx(20.0)
    assert link["mean_in_mbps"] == pytest.approx(10.5)
    assert link["p95_out_mbps"] == 0.0


def test_sql_percentile_counts_buckets_without_traffic_in_the_window():
    # the same 20 samples inside a 40-bucket --from/--to window
    rows = [row(T0 + 300 * i, 10, 5, mbps * MBPS_BYTES) for i, mbps in enumerate(SERIES_20)]
    report = run_rows(rows, _transit_config(), start=T0, end=T0 + 40 * 300)
    assert report.meta["buckets"] == 40
    link = by(report.tables["links"].rows, "link")["t"]
    assert link["p95_in_mbps"] == pytest.approx(18.0)


def test_flows_in_one_bucket_are_summed_before_ranking():
    # two flows of 10 Mbps each in the same bucket are one 20 Mbps sample
    rows = [row(T0 + 10, 10, 5, 10 * MBPS_BYTES), row(T0 + 299, 10, 5, 10 * MBPS_BYTES)]
    report = run_rows(rows, _transit_config())
    assert report.tables["links"].rows[0]["p95_in_mbps"] == pytest.approx(20.0)


def test_inbound_and_outbound_percentiles_are_separate_and_billed_on_the_max():
    rows = [row(T0 + 300 * i, 10, 5, 3 * MBPS_BYTES) for i in range(20)]
    rows += [row(T0 + 300 * i, 5, 10, 7 * MBPS_BYTES) for i in range(20)]
    link = run_rows(rows, _transit_config()).tables["links"].rows[0]
    assert (link["p95_in_mbps"], link["p95_out_mbps"]) == pytest.approx((3.0, 7.0))
    assert link["billed_mbps"] == pytest.approx(7.0)
    assert link["monthly_cost"] == pytest.approx(7.0)


def test_peer_percentile_uses_the_same_rule():
    rows = [
        row(T0 + 300 * i, 10, 5, mbps * MBPS_BYTES, src_peer_as=64500)
        for i, mbps in enumerate(SERIES_20)
    ]
    peers = by(run_rows(rows, _transit_config()).tables["peers"].rows, "peer_as")
    assert peers[64500]["p95_in_mbps"] == pytest.approx(19.0)


def test_months_are_billed_separately():
    feb_end = 1709251200  # 2024-03-01T00:00:00Z
    rows = [row(feb_end - 300 * (i + 1), 10, 5, 50 * MBPS_BYTES) for i in range(20)]
    rows += [row(feb_end + 300 * i, 10, 5, 5 * MBPS_BYTES) for i in range(20)]
    months = run_rows(rows, _transit_config()).tables["link_months"].rows
    assert [(m["month"], round(m["p95_in_mbps"], 6)) for m in months] == [
        ("2024-02", 50.0),
        ("2024-03", 5.0),
    ]


def test_month_periods_cover_partial_months():
    periods = month_periods(T0 - 86400, T0 + 86400, 300)
    assert [(p.label, p.n, p.full_n) for p in periods] == [
        ("2024-02", 288, 29 * 288),
        ("2024-03", 288, 31 * 288),
    ]
