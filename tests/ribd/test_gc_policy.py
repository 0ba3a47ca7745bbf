"""The cyclic collector and the RIB: settled loads frozen (``ribd.gcpolicy``), own values untracked.

The audit that freezing loses nothing (what is frozen and later dropped is
freed without the collector) runs a whole service: tests/attribution/
test_gc_policy.py.
"""

from __future__ import annotations

import gc

import pytest

import ribd.rib
from ribd import _wide, gcpolicy
from ribd.entries import OVERLAY_SLOTS, Overlay
from ribd.events import EndOfRib, RoutesAnnounced, SessionState
from ribd.rib import Rib
from tests.ribd.test_wide_entries import V4, Model, _neighbor


@pytest.fixture
def policy(monkeypatch):
    """The policy on, a low threshold; the process's freezes undone after."""
    monkeypatch.setattr(gcpolicy, "FREEZE_AFTER", 50)
    was = gcpolicy.enabled()
    gcpolicy.enable()
    yield
    gcpolicy.enable(was)
    gc.unfreeze()


def _load(rib: Rib, neighbor: str, n: int, eor: bool) -> None:
    from ribd.attributes import make_attributes

    rib.apply(SessionState(neighbor, "up"))
    for k in range(n // 10):
        attrs = make_attributes(((2, (65001, 64000 + k)),), next_hop="192.0.2.1")
        prefixes = tuple(f"10.{k}.{p}.0/24" for p in range(10))
        rib.apply(RoutesAnnounced(neighbor, V4, prefixes, None, attrs))
    if eor:
        rib.apply(EndOfRib(neighbor, V4))


def _young(o: object) -> bool:
    return any(x is o for x in gc.get_objects())


def test_a_settled_load_is_frozen(policy):
    """Once a table's End-of-RIB came and nothing streams in, the objects the
    load left (its router's state here) leave the collector's generations: a
    later router's collections do not walk them. Fails before: no policy."""
    rib = Rib()
    _load(rib, "127.0.0.2", 200, eor=True)
    state = rib.routers["127.0.0.2"].families[V4]
    assert gc.is_tracked(state) and _young(state)
    before = gcpolicy.freezes()
    while rib.maintenance():
        pass
    assert gcpolicy.freezes() == before + 1
    assert not _young(state)  # frozen (the permanent generation is not listed)
    # Nothing written since: no second freeze.
    while rib.maintenance():
        pass
    assert gcpolicy.freezes() == before + 1


def test_a_table_streaming_in_is_not_frozen(policy):
    """No End-of-RIB yet and writes within MERGE_QUIET: the load goes on, its
    objects stay young (a freeze mid-load would freeze what the load replaces)."""
    rib = Rib()
    _load(rib, "127.0.0.2", 200, eor=False)
    before = gcpolicy.freezes()
    while rib.maintenance():
        pass
    assert gcpolicy.freezes() == before
    rib.apply(EndOfRib("127.0.0.2", V4))
    while rib.maintenance():
        pass
    assert gcpolicy.freezes() == before + 1


def test_off_unless_enabled(monkeypatch):
    """A library user's process (no ``tune_gc``) keeps CPython's defaults."""
    monkeypatch.setattr(gcpolicy, "FREEZE_AFTER", 50)
    was = gcpolicy.enabled()
    gcpolicy.enable(False)
    try:
        rib = Rib()
        _load(rib, "127.0.0.2", 200, eor=True)
        before = gcpolicy.freezes()
        while rib.maintenance():
            pass
        assert gcpolicy.freezes() == before
    finally:
        gcpolicy.enable(was)


def test_own_values_are_out_of_the_cyclic_gc(monkeypatch):
    """An Overlay's own values the compiled wide path makes ((slot, attribute
    set) pairs: ints and ``gc=False`` sets) are untracked when made, as its
    moved rows are: CPython untracks such a tuple only in the first collection
    that finds it, after walking it (the refresh's young collections each
    walked ~80 k of them). Fails before: they were tracked. Own values holding
    an ADD-PATH set (a tuple subclass, tracked) stay tracked."""
    monkeypatch.setattr(ribd.rib, "announce_wide", ribd.rib.COMPILED_WIDE)
    monkeypatch.setattr(ribd.rib, "ANNOUNCE_LOOP", ribd.rib.COMPILED_LOOP)
    routers = OVERLAY_SLOTS + 4
    m = Model(23, routers)
    rib = Rib()
    plain, held = [], []
    seen: set[int] = set()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for k in range(routers):
            for ev in [SessionState(_neighbor(k), "up"), *m.table(k)]:
                before = _wide.direct_updates()
                rib.apply_many([ev])
                if _wide.direct_updates() == before:
                    continue
                for t in rib.tables.values():
                    s = t.store
                    for e in [*s.values.tolist(), *s.delta.values()]:
                        if type(e) is Overlay and id(e.over) not in seen:
                            seen.add(id(e.over))
                            items_tracked = any(
                                v is not None and gc.is_tracked(v) for v in e.over[1::2]
                            )
                            (held if items_tracked else plain).append(
                                (e.over, gc.is_tracked(e.over))
                            )
            rib.compact()
    finally:
        if enabled:
            gc.enable()
    assert len(plain) > 20
    assert not [over for over, tracked in plain if tracked]
    assert all(tracked for _, tracked in held)
