"""Routers that come up together load before the store's first merge: merges
wait for a quiet store (``ribd.maintenance``), so the arrays stay empty and every
prefix is in the delta while they send their tables. Once the table is wide
(``OVERLAY_SLOTS`` routers), those UPDATEs take the compiled wide path
(``ribd._wide.wide_parts``) as they do after a merge, not ``Rib._announce``'s
Python prologue, and leave the state the Python references leave."""

from __future__ import annotations

import random
from itertools import zip_longest

import pytest

import ribd.rib
from ribd.entries import OVERLAY_SLOTS
from ribd.events import EndOfRib, RoutesAnnounced, RoutesWithdrawn, SessionState
from tests.ribd.test_wide_compiled import _compare_direct, restored  # noqa: F401
from tests.ribd.test_wide_entries import V4, V6, Model, _neighbor

pytestmark = pytest.mark.skipif(
    ribd.rib.COMPILED_LOOP is None or ribd.rib.WIDE_ANNOUNCE is None,
    reason="ribd/_announce.pyx or ribd/_wide.pyx not built",
)


def _together(seed: int, routers: int) -> list[tuple]:
    """Every router up at once, their tables interleaved a few UPDATEs at a time
    (as sessions loading together), with prefixes new to the store, a prefix twice
    in an UPDATE, ADD-PATH UPDATEs, withdrawals and one router's restart, all
    before any merge; the merge and one more round at the end."""
    m = Model(seed, routers)
    rnd = random.Random(seed)
    steps: list[tuple] = [("events", [SessionState(_neighbor(k), "up") for k in range(routers)])]
    events: list = []
    for group in zip_longest(*(m.table(k) for k in range(routers))):
        events.extend(ev for ev in group if ev is not None)
    for i, ev in enumerate(events):
        r = rnd.random()
        if r < 0.05:
            events[i] = RoutesAnnounced(
                ev.neighbor, ev.family, (*ev.prefixes, ev.prefixes[0]), None, ev.attributes
            )
        elif r < 0.10 and ev.family == V4:
            extra = tuple(f"10.250.{i % 256}.{j * 32}/27" for j in range(3))
            events[i] = RoutesAnnounced(
                ev.neighbor, ev.family, (*ev.prefixes, *extra), None, ev.attributes
            )
        elif r < 0.13:
            events[i] = RoutesAnnounced(
                ev.neighbor, ev.family, ev.prefixes[:1], (rnd.randrange(1, 4),), ev.attributes
            )
    for i in range(0, len(events), 7):
        steps.append(("events", events[i : i + 7]))
    n = _neighbor(3)
    prefixes = [p for f, p in m.some(10) if f == V4]
    steps.append(("events", [RoutesWithdrawn(n, V4, tuple(prefixes), None)]))
    steps.append(("events", [SessionState(n, "down", reason="test")]))
    table = m.table(3)
    steps.append(("events", [SessionState(n, "up"), *table[: len(table) // 2]]))
    steps.append(("events", [*table[len(table) // 2 :], EndOfRib(n, V4), EndOfRib(n, V6)]))
    steps.append(("merge",))
    steps.append(("events", m.table(routers - 1)))
    return steps


@pytest.mark.usefixtures("restored")
@pytest.mark.parametrize("seed", range(3))
def test_routers_loading_together_take_the_compiled_wide_path_before_a_merge(seed):
    routers = OVERLAY_SLOTS + 1 + seed * 5
    steps = _together(200 + seed, routers)
    unmerged = steps[: steps.index(("merge",))]
    assert _compare_direct(unmerged) > 0  # none before: Rib._announce's Python prologue
    assert _compare_direct(steps) > 0
