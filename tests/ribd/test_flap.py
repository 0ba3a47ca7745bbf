"""Session flaps (bench/flap.py, bounded): every RIB exact after each flap."""

from __future__ import annotations

import pytest

from bench.flap import run


@pytest.mark.bgp
def test_twenty_flaps_leave_every_rib_exact_and_converged() -> None:
    report = run(sessions=3, routes=300, flaps=20, settle=60.0, time_budget=300.0)
    assert report.flaps >= 20
    assert report.incomplete == [], report.incomplete
    assert report.exact == report.checks > 0
    assert report.bad_lines == 0 and report.exabgp_restarts == 0
