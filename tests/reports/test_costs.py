"""Cost arithmetic per link and peering-candidate ranking."""

from __future__ import annotations

import pytest

from attribution.reports.config import LinkConfig, PeeringConfig
from attribution.reports.costs import (
    CandidateInput,
    billed_mbps,
    choose_option,
    link_cost,
    rank_candidates,
    weighted_price,
)

TRANSIT = LinkConfig(
    name="t",
    exporter="192.0.2.1",
    if_index=10,
    kind="transit",
    peer_as=(64500,),
    price_per_mbps=0.35,
    commit_mbps=1000,
    monthly_fee=500,
)


def test_transit_below_commit_pays_the_commit():
    cost = link_cost(TRANSIT, 400, 300)
    assert cost.billed_mbps == 400
    assert cost.billable_mbps == 1000
    assert cost.monthly_cost == pytest.approx(1000 * 0.35 + 500)  # 850
    assert cost.cost_per_mbps == pytest.approx(850 / 400)
    assert cost.below_commit


def test_transit_above_commit_pays_the_percentile():
    cost = link_cost(TRANSIT, 1200, 1500)
    assert cost.billed_mbps == 1500
    assert cost.monthly_cost == pytest.approx(1500 * 0.35 + 500)  # 1025
    assert cost.cost_per_mbps == pytest.approx(1025 / 1500)
    assert not cost.below_commit


def test_ix_port_costs_fee_plus_optional_usage():
    ix = LinkConfig(name="ix", exporter="192.0.2.1", if_index=20, kind="ix", monthly_fee=1200)
    assert link_cost(ix, 300, 100).monthly_cost == 1200
    assert link_cost(ix, 300, 100).cost_per_mbps == pytest.approx(4.0)
    metered = LinkConfig(
        name="ix2",
        exporter="192.0.2.1",
        if_index=21,
        kind="ix",
        monthly_fee=1200,
        price_per_mbps=0.5,
    )
    assert link_cost(metered, 300, 100).monthly_cost == pytest.approx(1350)


def test_idle_link_has_no_effective_price():
    assert link_cost(TRANSIT, 0, 0).cost_per_mbps is None


def test_billing_rules():
    assert billed_mbps(3, 7, "max") == 7
    assert billed_mbps(3, 7, "in") == 3
    assert billed_mbps(3, 7, "out") == 7
    assert billed_mbps(3, 7, "sum") == 10


def test_weighted_transit_price_follows_bytes():
    assert weighted_price({0: 300.0, 1: 100.0}, {0: 0.4, 1: 0.8}) == pytest.approx(0.5)
    assert weighted_price({2: 100.0}, {0: 0.4}) == 0.0  # not a transit link


PEERING = PeeringConfig(ix_price_per_mbps=0.10, pni_monthly_fee=800, pni_min_mbps=1000)


def test_option_is_ix_below_the_pni_threshold_even_if_pni_were_cheaper():
    assert choose_option(900, PeeringConfig(ix_price_per_mbps=1.0, pni_monthly_fee=10)) == (
        "ix",
        pytest.approx(900.0),
    )


def test_option_is_pni_when_large_and_cheaper():
    option, cost = choose_option(12000, PEERING)  # IX 1200 vs PNI 800
    assert (option, cost) == ("pni", 800)


def test_option_is_ix_when_large_but_ix_cheaper():
    option, cost = choose_option(5000, PEERING)  # IX 500 vs PNI 800
    assert (option, cost) == ("ix", pytest.approx(500))


def test_no_alternative_price_means_no_saving_estimate():
    assert choose_option(5000, PeeringConfig()) == (None, None)


def _cand(asn, p_in, p_out=0.0, price=0.35, nbytes=1.0):
    return CandidateInput(asn, p_in, p_out, p_in, p_out, nbytes, price)


def test_candidates_ranked_by_percentile_volume_with_saving():
    ranked = rank_candidates(
        [_cand(2906, 800), _cand(13335, 100, 2500), _cand(3356, 800, nbytes=5.0)],
        PEERING,
        excluded=set(),
    )
    assert [c.asn for c in ranked] == [13335, 3356, 2906]  # tie on p95 broken by bytes
    assert [c.rank for c in ranked] == [1, 2, 3]
    top = ranked[0]
    assert top.p95_mbps == 2500  # max of in/out
    assert top.transit_cost == pytest.approx(2500 * 0.35)  # 875
    assert top.option == "ix"  # IX 250 beats PNI 800
    assert top.option_cost == pytest.approx(250)
    assert top.saving == pytest.approx(625)


def test_candidates_exclude_connected_and_unknown_ases():
    ranked = rank_candidates(
        [_cand(0, 900), _cand(64500, 800), _cand(15169, 700), _cand(2906, 10)],
        PEERING,
        excluded={64500, 15169},
    )
    assert [c.asn for c in ranked] == [2906]


def test_candidate_saving_can_be_negative_and_is_still_listed():
    ranked = rank_candidates(
        [_cand(2906, 10, price=0.05)], PeeringConfig(ix_price_per_mbps=0.1), set()
    )
    assert ranked[0].saving == pytest.approx(10 * 0.05 - 10 * 0.1)
