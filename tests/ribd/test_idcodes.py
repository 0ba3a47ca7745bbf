"""The compiled table of ids (``ribd._idcodes``) answers as the numpy versions it
replaces (``ribd.idcodes``): the same code for every id held, not found for every
other, the same numbers in order of first use, and the same snapshot of a RIB."""

from __future__ import annotations

import numpy as np
import pytest

import ribd.idcodes
from ribd import snapshot_capture, snapshot_v2
from ribd.entries import OVERLAY_SLOTS, Overlay
from ribd.rib import Rib
from tests.ribd.test_wide_entries import Clock, _decoded, _entries, _script

idcodes = pytest.importorskip("ribd._idcodes")


def _ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """Distinct pointer-like ids: 16-byte aligned, in runs, as pymalloc hands them out."""
    runs = rng.integers(1 << 40, 1 << 44, max(1, n // 50)) * 16
    ids = np.unique((runs[:, None] + 32 * np.arange(50)[None, :]).reshape(-1))
    return rng.permutation(ids)[:n]


@pytest.mark.parametrize("n", [0, 1, 7, 1000, 200_000])
def test_the_table_finds_every_id_held_and_no_other_as_the_sorted_arrays_do(n):
    rng = np.random.default_rng(n)
    ids = _ids(rng, n + 5000)
    held, other = ids[:n], ids[n:]
    codes = rng.integers(-1, 1 << 31, n)
    table = idcodes.IdCodes(held, codes)
    sorted_ = ribd.idcodes.SortedIdCodes(held, codes)
    needles = rng.permutation(np.concatenate([held, held[: n // 3], other, [0, 1, -16]]))
    got, found = table.lookup(needles)
    want, want_found = sorted_.lookup(needles) if n else (None, np.zeros(len(needles), bool))
    assert found.tolist() == want_found.tolist()
    assert found.sum() == n + n // 3
    if n:
        assert got[found].tolist() == want[want_found].tolist()
        by_id = dict(zip(held.tolist(), codes.tolist(), strict=True))
        assert got[found].tolist() == [by_id[i] for i in needles[found].tolist()]


def test_the_table_refuses_a_repeated_id_an_id_of_zero_and_codes_that_do_not_match():
    with pytest.raises(ValueError, match="twice"):
        idcodes.IdCodes(np.array([16, 32, 16]), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="id 0"):
        idcodes.IdCodes(np.array([16, 0]), np.array([0, 1]))
    with pytest.raises(ValueError, match="codes"):
        idcodes.IdCodes(np.array([16, 32]), np.array([0]))


@pytest.mark.parametrize("n", [0, 1, 5, 1000, 300_000])
def test_first_use_numbers_ids_in_order_of_first_use_as_the_two_sorts_do(n):
    rng = np.random.default_rng(n + 1)
    distinct = _ids(rng, max(1, n // 4))
    ids = distinct[rng.integers(0, len(distinct), n)] if n else np.zeros(0, np.int64)
    numbers, firsts = idcodes.first_use(ids)
    want_numbers, want_firsts = ribd.idcodes.sorted_first_use(ids)
    assert numbers.tolist() == want_numbers.tolist()
    assert firsts.tolist() == want_firsts.tolist()
    # and what that means, checked without either: a dict in order of first use
    order: dict[int, int] = {}
    for k, i in enumerate(ids.tolist()):
        order.setdefault(i, k)
    assert firsts.tolist() == list(order.values())
    rank = {i: m for m, i in enumerate(order)}
    assert numbers.tolist() == [rank[i] for i in ids.tolist()]


def test_first_use_refuses_an_id_of_zero():
    with pytest.raises(ValueError, match="id 0"):
        idcodes.first_use(np.array([16, 0, 16]))


@pytest.mark.parametrize("compiled", [True, False])
def test_codes_are_marked_and_renumbered_in_place_through_the_shifted_table(compiled):
    rng = np.random.default_rng(7)
    shift, sets = 4, 50  # ADD-PATH sets -2..-4, none -1, sets 0..49
    codes = rng.integers(-shift, sets, (300, 9))
    before = codes.copy()
    used = np.zeros(shift + sets, bool)
    ribd.idcodes.mark_codes(codes, shift, used, compiled=compiled)
    assert used.tolist() == [
        c - shift in set(before.reshape(-1).tolist()) for c in range(len(used))
    ]
    lut = rng.integers(-(1 << 40), 1 << 40, shift + sets)
    ribd.idcodes.recode(codes, lut, shift, compiled=compiled)
    assert codes.tolist() == [[int(lut[c + shift]) for c in row] for row in before.tolist()]


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("bad", [-5, 50, 1 << 40])
def test_a_code_outside_the_table_is_refused_and_nothing_is_marked(compiled, bad):
    codes = np.array([[0, 1, -1], [2, bad, 3]], np.int64)
    used = np.zeros(4 + 50, bool)
    with pytest.raises(ValueError, match=f"code {bad} at 4 is outside"):
        ribd.idcodes.mark_codes(codes, 4, used, compiled=compiled)
    assert not used.any()
    with pytest.raises(ValueError, match=f"code {bad} at 4 is outside"):
        ribd.idcodes.recode(codes, np.arange(54), 4, compiled=compiled)


@pytest.mark.parametrize("seed", range(3))
def test_a_snapshot_with_the_tables_equals_one_with_the_sorts(seed, monkeypatch):
    """Capture and file: the compiled tables and the numpy versions give the same
    codes, the same sets in the same order, the same bytes."""
    routers = OVERLAY_SLOTS + 2 + seed
    rib = Rib(stale_hold_time=300.0, clock=Clock())
    loads = [s for s in _script(seed, routers) if s[0] == "events"]
    for step in loads[: routers + seed]:
        for ev in step[1]:
            rib.apply(ev)
    while rib.maintenance():
        pass
    assert any(type(e) is Overlay for e in _entries(rib))
    assert ribd.idcodes._CompiledIdCodes is idcodes.IdCodes
    with_table = snapshot_capture.capture(rib, chunk=7)
    file_with_table = snapshot_v2.encode_v2(with_table)
    monkeypatch.setattr(ribd.idcodes, "_CompiledIdCodes", None)
    monkeypatch.setattr(ribd.idcodes, "_compiled_first_use", None)
    monkeypatch.setattr(ribd.idcodes, "_compiled_mark", None)
    monkeypatch.setattr(ribd.idcodes, "_compiled_recode", None)
    with_sorted = snapshot_capture.capture(rib, chunk=7)
    assert _decoded(with_table) == _decoded(with_sorted)
    assert [id(s) for s in with_table.sets] == [id(s) for s in with_sorted.sets]
    assert np.array_equal(with_table.entries, with_sorted.entries)
    assert with_table.pathsets == with_sorted.pathsets
    assert snapshot_v2.encode_v2(with_sorted) == file_with_table
