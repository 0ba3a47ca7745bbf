"""A wide row that nothing but one UPDATE's prefixes holds is set in place by
the compiled wide announce (ribd/_wide.pyx, ``_alone``), not copied: the RIB
ends as the Python reference leaves it (rows compared by value and by which
prefixes share them), and a row or an Overlay that anything else holds (a
reader: a view build, the snapshot's capture) is left exactly as it was."""

from __future__ import annotations

import pytest

import ribd.rib
from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.entries import OVERLAY_SLOTS, Overlay
from ribd.events import RoutesAnnounced, SessionState
from ribd.rib import Rib
from tests.ribd.test_wide_compiled import (
    _compare_direct,
    _script,
    restored,  # noqa: F401
)
from tests.ribd.test_wide_entries import V4, Model, _entries, _neighbor

_wide = pytest.importorskip("ribd._wide", reason="ribd/_wide.pyx not built")
pytestmark = [
    pytest.mark.skipif(ribd.rib.COMPILED_LOOP is None, reason="ribd/_announce.pyx not built"),
    pytest.mark.skipif(not _wide.ROWS_IN_PLACE, reason="tuples cache their hash here"),
]


@pytest.fixture
def compiled(monkeypatch):
    """The compiled loops in use (other modules' tests swap in the references)."""
    monkeypatch.setattr(ribd.rib, "announce_wide", _wide.announce_wide)
    monkeypatch.setattr(ribd.rib, "ANNOUNCE_LOOP", ribd.rib.COMPILED_LOOP)


@pytest.mark.usefixtures("restored")
@pytest.mark.parametrize("seed", range(3))
def test_rows_set_in_place_leave_the_state_the_python_references_do(seed):
    """Random streams (ADD-PATH, restarts, withdrawals, merges) on 16-35 routers:
    rows set in place, plain prefixes' rows and rows Overlays were on, and after
    every step the same state as the references' (``_compare_direct``)."""
    before = _wide.reused_rows()
    _compare_direct(_script(200 + seed, OVERLAY_SLOTS + 4 + 6 * seed))
    plain, overlaid = (a - b for a, b in zip(_wide.reused_rows(), before, strict=True))
    assert plain > overlaid > 0


def _loaded(routers: int, merged: bool = True) -> tuple[Model, Rib]:
    """``routers`` tables; ``merged``: the store's delta merged into its arrays
    (which interns the rows that stay: none of those is set in place)."""
    m = Model(17, routers)
    rib = Rib()
    for k in range(routers):
        rib.apply_many([SessionState(_neighbor(k), "up"), *m.table(k)])
    if merged:
        rib.compact()
    return m, rib


def _resend(m: Model, k: int, kind: int) -> list[RoutesAnnounced]:
    """Router ``k``'s IPv4 prefixes again, each group in one UPDATE with its set ``kind``."""
    return [
        RoutesAnnounced(_neighbor(k), V4, prefixes, None, m.sets[k, g, kind])
        for g, members in enumerate(m.groups)
        if (prefixes := tuple(p for f, p in members if f == V4))
    ]


def test_a_row_a_reader_holds_is_not_set_in_place(compiled):
    """Every other row held by a reader: those rows keep their values, the
    others are set in place, and each prefix reads the new set either way."""
    routers = OVERLAY_SLOTS + 4
    m, rib = _loaded(routers)
    rows = {id(r): r for e in _entries(rib) if e is not None for r in [getattr(e, "row", e)]}
    held = list(rows.values())[::2]
    seen = [list(r) for r in held]  # (``tuple(r)`` is ``r``: a reference)
    rows = None
    before = _wide.reused_rows()[0]
    k = routers - 1
    rib.apply_many(_resend(m, k, 3))
    assert _wide.reused_rows()[0] > before
    for row, values in zip(held, seen, strict=True):
        assert list(row) == values  # not changed under its reader
    for g, members in enumerate(m.groups):
        for f, p in members:
            if f == V4:
                assert rib.exact(_neighbor(k), V4, p)[0].attributes is m.sets[k, g, 3]


def test_a_row_under_an_overlay_a_reader_holds_is_not_set_in_place(compiled):
    """Overlays held by a reader: their rows and own values stay as they were
    while the rows under the others' Overlays are set in place."""
    routers = OVERLAY_SLOTS + 4
    m, rib = _loaded(routers)
    overlays = [e for e in _entries(rib) if type(e) is Overlay]
    assert len(overlays) >= 10
    held = overlays[::2]
    seen = [(list(e.row), e.over) for e in held]  # (copies: ``tuple(e.row)`` is the row)
    overlays = None
    before = _wide.reused_rows()[1]
    for k in range(routers):
        rib.apply_many(_resend(m, k, 2))
    assert _wide.reused_rows()[1] > before
    for e, (row, over) in zip(held, seen, strict=True):
        assert list(e.row) == row and e.over is over


@pytest.mark.usefixtures("restored")
def test_turned_off_every_moved_row_is_a_new_one():
    """With ``rows_in_place(False)`` no row is set in place (the switch the
    in-process A/B uses), and the state is the references' as before."""
    old = _wide.rows_in_place(False)
    try:
        before = _wide.reused_rows()
        _compare_direct(_script(210, OVERLAY_SLOTS + 8))
        assert _wide.reused_rows() == before
    finally:
        _wide.rows_in_place(old)


def test_a_prefix_sent_twice_does_not_hide_a_holder_outside_the_update(compiled):
    """Two prefixes on one row, and an UPDATE naming one of them twice: the
    twice-counted prefix makes the reference count a row held only by the
    UPDATE would have, so the prefixes are checked distinct (``_distinct``)
    and the other prefix keeps its value. Both named once: set in place."""
    routers = OVERLAY_SLOTS + 4
    rib = Rib()
    pairs = [(f"10.1.{n}.0/24", f"10.2.{n}.0/24") for n in range(3)]

    def sent(k: int, kind: int) -> object:
        return make_attributes(
            ((AS_SEQUENCE, (64500 + k, 65000 + kind)),), next_hop=f"198.51.{k}.{kind}"
        )

    for k in range(routers):
        rib.apply_many([SessionState(_neighbor(k), "up")])
        rib.apply_many([RoutesAnnounced(_neighbor(k), V4, ps, None, sent(k, 0)) for ps in pairs])
    k = routers - 1
    fresh = sent(k, 1)
    before = _wide.reused_rows()[0]
    for one, other in pairs[:2]:
        kept = rib.exact(_neighbor(k), V4, other)[0].attributes
        rib.apply_many([RoutesAnnounced(_neighbor(k), V4, (one, one), None, fresh)])
        assert rib.exact(_neighbor(k), V4, one)[0].attributes is fresh
        assert rib.exact(_neighbor(k), V4, other)[0].attributes is kept
    assert _wide.reused_rows()[0] == before  # copied
    rib.apply_many([RoutesAnnounced(_neighbor(k), V4, pairs[2], None, fresh)])
    assert _wide.reused_rows()[0] == before + 1
    for p in pairs[2]:
        assert rib.exact(_neighbor(k), V4, p)[0].attributes is fresh
