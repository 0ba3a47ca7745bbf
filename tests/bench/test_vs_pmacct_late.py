"""bench.vs_pmacct --late: router n's load is measured alone, after the others answer.

The mode exists because a router that comes up after the others' tables were
merged takes other code paths than a table loaded into an empty store; its
figures must be router n's alone. Run for real: a supervised ExaBGP, real BGP
sessions on loopback, a small derived table.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import bgpsend, realistic, synth
from bench.vs_load import Load, last_unique_prefix
from bench.vs_pmacct import cpu_share, rows_late
from bench.vs_service import run_service


def _small_load(routers: int) -> Load:
    lines, _ = synth.generate(v4=3000, v6=500)
    tables = bgpsend.realistic_tables(realistic.model_from_lines("synth", lines), routers)
    return Load("small", tables, last_unique_prefix(tables.per_router[0]), dict(tables.prefixes))


def test_the_last_router_is_loaded_and_measured_after_the_first_ones_answer(
    tmp_path: Path,
) -> None:
    load = _small_load(3)
    res = run_service(load, tmp_path, timeout=120.0, late=True)
    assert res.seconds is not None, res.note
    # Two phases, each with ExaBGP's CPU of its own: routers 1-2 together, then router 3.
    assert set(res.cpu_first) == set(res.cpu) == {"service", "exabgp", "relay"}
    assert res.cpu_first_idle["exabgp"] >= res.cpu_first["exabgp"] > 0
    assert res.cpu_idle["service"] >= res.cpu["service"]
    rows = rows_late(load, res)
    shares = [r for r in rows if "/ ExaBGP CPU" in r.figure]
    assert [r.figure.rsplit(", ", 1)[1] for r in shares] == ["at answering", "once idle"]
    assert shares[0].value == pytest.approx(cpu_share(res.cpu) * 100)
    assert shares[0].baseline == pytest.approx(cpu_share(res.cpu_first) * 100)
    assert all("router 3 after 2 merged" in r.figure for r in rows)


def test_the_share_is_relay_and_service_over_exabgp() -> None:
    assert cpu_share({"exabgp": 4.0, "relay": 0.2, "service": 0.8}) == pytest.approx(0.25)
    assert cpu_share({"relay": 0.2, "service": 0.8}) is None
