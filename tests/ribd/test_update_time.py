"""An UPDATE's time stamp (``UpdateTime``, one per raw UPDATE) lands as
``Rib._apply`` lands it, whichever way it is applied: ``apply_many`` (the
feed's, which handles it inline) and ``apply`` (the dispatch)."""

from __future__ import annotations

import pytest

from ribd.events import UpdateTime
from ribd.rib import Rib


@pytest.mark.parametrize("way", ["apply_many", "apply"])
def test_update_time_sets_last_update_and_counts_unknown_neighbors(way: str) -> None:
    rib = Rib()
    rib.neighbors = frozenset({"127.0.0.2"})

    def send(event: UpdateTime) -> None:
        if way == "apply_many":
            rib.apply_many([event])
        else:
            rib.apply(event)

    send(UpdateTime("127.0.0.2", 12.5))
    assert rib.routers["127.0.0.2"].last_update == 12.5  # made on first sight
    send(UpdateTime("127.0.0.2", 13.0))
    assert rib.routers["127.0.0.2"].last_update == 13.0
    send(UpdateTime("127.0.0.9", 14.0))  # not a configured router
    assert "127.0.0.9" not in rib.routers and rib.unknown_neighbor_events == 1
    rib.neighbors = None  # no list: every neighbor is taken
    send(UpdateTime("127.0.0.9", 15.0))
    assert rib.routers["127.0.0.9"].last_update == 15.0 and rib.unknown_neighbor_events == 1
