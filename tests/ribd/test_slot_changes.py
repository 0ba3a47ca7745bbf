"""The per-slot change record beside a family's change log (``FamilyTable.note_slots``).

Compiled views (attribution.viewpatch.unchanged) patch only routers whose
slots changed since a view's change number; a write that changed a slot
without noting it would leave that router's view answering with old routes.
"""

from __future__ import annotations

from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.entries import OVERLAY_SLOTS
from ribd.events import EndOfRib, RoutesAnnounced, RoutesWithdrawn, SessionState
from ribd.rib import Rib

V4 = "ipv4 unicast"
R1, R2 = "127.0.3.1", "127.0.3.2"
PATH = make_attributes(((AS_SEQUENCE, (65001, 64500)),), next_hop="127.0.3.254")
OTHER = make_attributes(((AS_SEQUENCE, (65002,)),), next_hop="127.0.3.254")


def _rib() -> Rib:
    rib = Rib()
    for r in (R1, R2):
        rib.apply(SessionState(r, "up"))
        rib.apply(RoutesAnnounced(r, V4, ("10.0.0.0/8", "10.1.0.0/16"), None, PATH))
        rib.apply(EndOfRib(r, V4))
    return rib


def _changed(rib: Rib, router: str, seq: int) -> bool:
    fs = rib.routers[router].families[V4]
    return rib.tables[V4].slots_changed_since(seq, fs.slot, fs.stale_slot)


def test_an_announcement_or_withdrawal_notes_its_router_only():
    rib = _rib()
    table = rib.tables[V4]
    seq = table.change_seq
    assert not _changed(rib, R1, seq) and not _changed(rib, R2, seq)
    rib.apply(RoutesAnnounced(R1, V4, ("10.1.0.0/16", "10.2.0.0/16"), None, OTHER))
    assert _changed(rib, R1, seq) and not _changed(rib, R2, seq)
    seq = table.change_seq
    rib.apply(RoutesWithdrawn(R2, V4, ("10.1.0.0/16",), None))
    assert _changed(rib, R2, seq) and not _changed(rib, R1, seq)
    seq = table.change_seq
    # Many prefixes in one UPDATE (the shared-entry and wide-entry paths of
    # Rib._announce log without table.put).
    many = tuple(f"10.9.{i}.0/24" for i in range(64))
    rib.apply(RoutesAnnounced(R2, V4, many, None, OTHER))
    assert _changed(rib, R2, seq) and not _changed(rib, R1, seq)


def test_a_route_back_after_a_restart_notes_the_stale_slot_it_empties():
    rib = _rib()
    rib.stale_hold_by_neighbor[R1] = 600
    rib.apply(SessionState(R1, "down", reason="test"))
    rib.apply(SessionState(R1, "up"))
    table = rib.tables[V4]
    fs = rib.routers[R1].families[V4]
    assert fs.stale_slot is not None
    seq = table.change_seq
    rib.apply(RoutesAnnounced(R1, V4, ("10.0.0.0/8",), None, PATH))  # its stale copy emptied
    assert table.slots_changed_since(seq, fs.stale_slot, None)
    assert not _changed(rib, R2, seq)


def test_a_second_feed_gap_notes_the_slots_folded_into_stale_ones():
    rib = _rib()
    table = rib.tables[V4]
    rib.mark_gap(frozenset({R1}))  # the first: slots rotated (the views' signatures change)
    rib.apply(RoutesAnnounced(R1, V4, ("10.3.0.0/16",), None, OTHER))
    fs = rib.routers[R1].families[V4]
    slot, stale = fs.slot, fs.stale_slot
    seq = table.change_seq
    rib.mark_gap(frozenset({R1}))  # the second: routes since folded into the stale slot
    assert (fs.slot, fs.stale_slot) == (slot, stale)
    assert table.slots_changed_since(seq, slot, None)
    assert table.slots_changed_since(seq, stale, None)
    assert not _changed(rib, R2, seq)


def test_writes_to_wide_entries_note_their_router_only():
    """Past OVERLAY_SLOTS routers entries are a shared row plus overrides
    (``ribd.entries.announce_wide``), written without ``table.put``."""
    rib = Rib()
    routers = [f"127.0.5.{k + 1}" for k in range(OVERLAY_SLOTS + 2)]
    prefixes = tuple(f"10.{i}.0.0/16" for i in range(12))
    for r in routers:
        rib.apply(SessionState(r, "up"))
        rib.apply(RoutesAnnounced(r, V4, prefixes, None, PATH))
        rib.apply(EndOfRib(r, V4))
    table = rib.tables[V4]
    assert table._next_slot >= OVERLAY_SLOTS
    for k, r in ((0, routers[0]), (OVERLAY_SLOTS + 1, routers[-1])):
        for event in (
            RoutesAnnounced(r, V4, prefixes[:1], None, OTHER),  # one prefix off the row
            RoutesAnnounced(r, V4, prefixes[2:], None, OTHER),  # most of them
            RoutesWithdrawn(r, V4, prefixes[1:2], None),
        ):
            seq = table.change_seq
            rib.apply(event)
            changed = [_changed(rib, x, seq) for x in routers]
            assert changed == [x == r for x in routers], (k, event)
