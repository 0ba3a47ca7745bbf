"""The wide path's counters summed in C (``ribd._wide``'s ``_plus``: a counter
plus an UPDATE's part made as one int from the C sum when it fits in 62 bits,
Python's ``+`` otherwise) and each delta prefix's key made once an UPDATE: the
state stays the Python references' on hostile counters (past 62 and 64 bits,
negative, at the fallback's edges) and change-log limits (small, the largest
64-bit one, negative; ``ribd._announce``'s general loop, which the wide path
calls for prefixes new to the store, takes the limit as a C integer), for
routers loading together before a merge and after it."""

from __future__ import annotations

import pytest

import ribd.rib
import ribd.table
from ribd.entries import OVERLAY_SLOTS
from tests.ribd.test_wide_compiled import (
    PY,
    C,
    Clock,
    Rib,
    _run_step,
    _state,
    restored,  # noqa: F401
)
from tests.ribd.test_wide_unmerged import _together

pytestmark = pytest.mark.skipif(
    ribd.rib.COMPILED_LOOP is None or ribd.rib.WIDE_ANNOUNCE is None,
    reason="ribd/_announce.pyx or ribd/_wide.pyx not built",
)

EDGE = 1 << 62
# (table.writes, table.changes_start, fs.writes, fs.prefixes, fs.paths, fs.stale_prefixes)
HOSTILE = [
    (1 << 70, EDGE - 3, -(1 << 65), EDGE - 2, -EDGE + 1, 1 << 64),
    (EDGE - 1, -(1 << 63), EDGE, -EDGE - 1, (1 << 63) - 1, -(1 << 70)),
    (0, 0, -1, EDGE - 1, EDGE + 1, -EDGE),
]


def _poke(rib: Rib, values: tuple) -> None:
    """Every table's and router family's counters set to ``values``."""
    tw, start, fw, prefixes, paths, stale = values
    for t in rib.tables.values():
        t.writes, t.changes_start = tw, start
    for r in rib.routers.values():
        for fs in r.families.values():
            fs.writes, fs.prefixes, fs.paths, fs.stale_prefixes = fw, prefixes, paths, stale


@pytest.mark.usefixtures("restored")
@pytest.mark.parametrize("case", range(len(HOSTILE)))
@pytest.mark.parametrize("most", [40, 262_144, (1 << 63) - 1, -5])
def test_hostile_counters_and_log_limits_as_the_references(case, most, monkeypatch):
    monkeypatch.setattr(ribd.table, "MAX_CHANGE_LOG", most)
    steps = _together(300 + case, OVERLAY_SLOTS + 1 + case)
    clocks = Clock(), Clock()
    ribs = [Rib(stale_hold_time=300.0, clock=c) for c in clocks]
    sides = ((C, ribd.rib.COMPILED_LOOP), (PY, None))
    poke_at = len(steps) // 3
    for i, step in enumerate(steps):
        for rib, clock, (wide, loop) in zip(ribs, clocks, sides, strict=True):
            ribd.rib.announce_wide, ribd.rib.ANNOUNCE_LOOP = wide, loop
            if i == poke_at:
                _poke(rib, HOSTILE[case])
            _run_step(rib, clock, step, lambda ev, rib=rib: rib.apply_many([ev]))
        assert _state(ribs[0]) == _state(ribs[1]), f"step {i} ({step[0]}) differs"
