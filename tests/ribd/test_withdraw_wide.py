"""A withdraw reads a wide entry's slots where they lie, not by rebuilding the entry.

An ``Overlay`` answers ``len`` and ``[i]`` by building its whole value list (and a
tuple for ``[i]``), as wide as the routers. The withdraw loop asked it for its
length and slots two to four times a prefix, so a withdraw on a table of many
routers cost O(routers) a prefix: the fuzzer's UPDATEs that withdraw one held
prefix thousands of times (RFC 7606 treat-as-withdraw of a long NLRI) stalled
the feed 0.1-0.5 s each (stop 58, ``bench.fuzz --targets raw --seed 58``).
"""

from __future__ import annotations

import pytest

import ribd.entries
import ribd.rib
import ribd.table
from ribd.entries import OVERLAY_SLOTS, Overlay
from ribd.events import RoutesWithdrawn, SessionState
from ribd.rib import Rib
from tests.ribd.test_wide_entries import Model, _neighbor

V4 = "ipv4 unicast"
ROUTERS = OVERLAY_SLOTS + 4
MODEL = Model(1, ROUTERS)
TABLES = [MODEL.table(k) for k in range(ROUTERS)]  # (drawn once: both layouts load the same)


def _wide_rib() -> tuple[Rib, list[tuple[str, str]]]:
    """ROUTERS realistic routers' tables (``test_wide_entries.Model``: groups of
    prefixes, each router sending some another way), merged as a settled service
    holds them; and the (router, prefix) pairs whose IPv4 entry is an Overlay
    and whose router holds a route there."""
    rib = Rib()
    for k in range(ROUTERS):
        rib.apply_many([SessionState(_neighbor(k), "up"), *TABLES[k]])
    while rib.maintenance():
        pass
    table = rib.tables[V4]
    held = []
    for family, prefix in (p for g in MODEL.groups for p in g):
        entry = table.store.get(table.store.keys_of((prefix,))[0]) if family == V4 else None
        if type(entry) is Overlay:
            for k in range(ROUTERS):
                if entry.get(rib.routers[_neighbor(k)].families[V4].slot) is not None:
                    held.append((_neighbor(k), prefix))
    return rib, held


@pytest.fixture
def values_calls(monkeypatch) -> list[int]:
    """How often an Overlay built its value list."""
    calls = [0]
    real = Overlay.values

    def counted(self):
        calls[0] += 1
        return real(self)

    monkeypatch.setattr(ribd.entries.Overlay, "values", counted)
    return calls


def test_withdrawing_a_held_prefix_many_times_does_not_rebuild_its_wide_entry(
    values_calls,
) -> None:
    rib, held = _wide_rib()
    assert held  # the layout under test is there
    neighbor, prefix = held[0]
    values_calls[0] = 0
    rib.apply_many([RoutesWithdrawn(neighbor, V4, (prefix,) * 2000, None)])
    assert values_calls[0] < 20  # was 4,000: two builds a repeat once the route is gone
    entry = rib.tables[V4].store.get(rib.tables[V4].store.keys_of((prefix,))[0])
    slot = rib.routers[neighbor].families[V4].slot
    assert entry is None or ribd.entries.value_at(entry, slot) is None  # withdrawn


def _withdraw_all(monkeypatch, overlays: bool) -> tuple:
    if not overlays:
        for module in (ribd.entries, ribd.rib, ribd.table):
            monkeypatch.setattr(module, "OVERLAY_SLOTS", 10**9)
    rib, held = _wide_rib()
    if overlays:
        assert held
    v4 = [p for g in MODEL.groups for f, p in g if f == V4]
    for k in (0, 3, 7):
        # Twice each, and an unknown prefix: only the first withdraw of a prefix counts.
        rib.apply_many(
            [RoutesWithdrawn(_neighbor(k), V4, (*v4[k : k + 6] * 2, "10.250.0.0/24"), None)]
        )
    counts = {
        (n, f): (fs.prefixes, fs.paths, fs.writes, fs.stale_prefixes)
        for n, r in rib.routers.items()
        for f, fs in r.families.items()
    }
    routes = {
        n: sorted(
            (r.prefix, r.length, r.attributes.as_path, r.attributes.next_hop, r.path_id, r.stale)
            for r in rib.routes(n, V4)
        )
        for n in rib.routers
    }
    return counts, routes


def test_a_withdraw_leaves_with_wide_entries_what_it_leaves_with_whole_tuples(monkeypatch) -> None:
    with_overlays = _withdraw_all(monkeypatch, True)
    whole = _withdraw_all(monkeypatch, False)
    assert with_overlays == whole
