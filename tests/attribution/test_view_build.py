"""The view build's compiled parts give what their Python references give.

``build_view`` reads the router's route out of each prefix's entry
(``slot_routes``: compiled in ``attribution._viewbuild``, the reference
``py_slot_routes``) and reads each attribute set's answer fields once
(``set_fields``). These tests pin that the compiled route reading gives the
Python one's columns and set numbering (tuples, Overlays, ADD-PATH sets,
stale slots, the set table's growth, more entries than one chunk between
the GIL's offers, bad input refused), and that a whole build with them gives
the same columns, column by column, as a build with the Python loops: on
routers with ADD-PATH, stale routes, IPv6 (prefixes longer than /64 too) and
wide (``Overlay``) entries. That the views answer as the RIB does is pinned by
``test_view_answers``.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from attribution import viewbuild
from ribd.attributes import AS_CONFED_SEQUENCE, AS_SEQUENCE, AS_SET, make_attributes
from ribd.entries import Overlay
from ribd.events import IPV4_UNICAST, IPV6_UNICAST, EndOfRib, RoutesAnnounced, SessionState
from ribd.rib import Rib
from ribd.table import PathSet
from tests.attribution.test_bulk_many_exporters import neighbor, world

compiled = pytest.importorskip("attribution._viewbuild")

COLUMNS = ("starts", "leaf", "nets", "nets_low", "lengths", "path_ids", "attribute_index")
COLUMNS += ("answer", "long_v6")


def _builds(rib: Rib, monkeypatch) -> int:
    """Build every router's views of both families with the compiled grouping
    and with the Python one; the columns must be equal. Returns views compared."""
    compared = 0
    for router in list(rib.routers):
        for family in (IPV4_UNICAST, IPV6_UNICAST):
            fast = viewbuild.build_view(rib, router, family)
            loops = ("_compiled_slot_routes", "_compiled_set_fields")
            for off in [*((name,) for name in loops), loops]:
                with monkeypatch.context() as m:
                    for name in off:
                        m.setattr(viewbuild, name, None)
                    slow = viewbuild.build_view(rib, router, family)
                assert (fast is None) == (slow is None)
                if fast is None:
                    continue
                for name in COLUMNS:
                    a, b = getattr(fast, name), getattr(slow, name)
                    assert a.dtype == b.dtype and np.array_equal(a, b), (router, family, name)
                assert [id(a) for a in fast.attribute_sets] == [id(a) for a in slow.attribute_sets]
                assert np.array_equal(fast.answers.rows, slow.answers.rows)
            compared += fast is not None
    return compared


@pytest.mark.parametrize("seed", range(2))
def test_a_build_with_compiled_grouping_equals_the_python_build(seed: int, monkeypatch) -> None:
    rib, _, _, v6 = world(seed)  # ADD-PATH (router 3), stale (router 4), IPv6
    n = "127.0.9.1"
    rib.apply(SessionState(n, "up"))
    long_v6 = ["2001:db8:1:2:3::/80", "2001:db8:1:2::/64", "::/0"]
    path = ((AS_SEQUENCE, (64512, 65001)),)
    attrs = make_attributes(path)
    rib.apply(RoutesAnnounced(n, IPV6_UNICAST, tuple(v6[:50] + long_v6), None, attrs))
    rib.apply(EndOfRib(n, IPV6_UNICAST))
    views = _builds(rib, monkeypatch)
    assert views >= 10
    stale = viewbuild.build_view(rib, neighbor(4), IPV4_UNICAST)  # the world's stale router
    assert stale is not None and stale.stale.all() and len(stale)
    wide = viewbuild.build_view(rib, n, IPV6_UNICAST)
    assert wide is not None and 0x20010DB800010002 in wide.long_v6.tolist()  # the /80


def test_a_build_over_wide_entries_equals_the_python_build(monkeypatch) -> None:
    """20 routers: entries become ``Overlay`` rows (a shared row plus a prefix's
    own slots), which the build reads per distinct entry."""
    rng = random.Random(7)
    rib = Rib()
    routers = [f"127.0.5.{k + 1}" for k in range(20)]
    prefixes = [f"10.{i >> 4}.{(i & 15) << 4}.0/20" for i in range(300)] + ["0.0.0.0/0"]
    for k, n in enumerate(routers):
        rib.apply(SessionState(n, "up"))
        path = ((AS_SEQUENCE, (64512 + k % 3, 65000)),)
        shared = make_attributes(path, next_hop=f"127.0.6.{k + 1}")
        rib.apply(RoutesAnnounced(n, IPV4_UNICAST, tuple(prefixes), None, shared))
        for p in rng.sample(prefixes, 20):
            own = make_attributes(((AS_SEQUENCE, (64512, 66000 + k)),), next_hop="127.0.6.99")
            rib.apply(RoutesAnnounced(n, IPV4_UNICAST, (p,), None, own))
        rib.apply(EndOfRib(n, IPV4_UNICAST))
    rib.apply(SessionState(routers[3], "down", reason="test"))
    with rib.lock:
        rib.tables[IPV4_UNICAST].store.merge()
        entries = rib.tables[IPV4_UNICAST].store.values.tolist()
    assert any(type(e) is Overlay for e in entries)
    assert _builds(rib, monkeypatch) == 40  # both families of each router


def _random_entries(rng: random.Random, count: int) -> list:
    """Entries as the store holds them: None, plain tuples (trimmed or not),
    Overlays (values of their own in the router's slot or stale slot, or
    None there over a row's value), ADD-PATH sets; attribute sets shared."""
    sets = [
        make_attributes(((AS_SEQUENCE, (64512, 65000 + i)),), next_hop=f"127.0.6.{i % 250 + 1}")
        for i in range(rng.choice((3, 40, 1500)))
    ]

    def value() -> object:
        roll = rng.random()
        if roll < 0.3:
            return None
        if roll < 0.4:  # ADD-PATH: ((path_id, attrs), ...) best first
            ids = rng.sample(range(1, 1 << 32), rng.randint(1, 3))
            return PathSet((i, rng.choice(sets)) for i in ids)
        return rng.choice(sets)

    rows = [tuple(value() for _ in range(rng.randint(0, 24))) for _ in range(rng.randint(1, 60))]
    out: list = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.05:
            out.append(None)
        elif roll < 0.45:
            out.append(rng.choice(rows))
        elif roll < 0.55 and out:
            out.append(rng.choice(out))  # the same object again
        else:
            own = sorted(rng.sample(range(24), rng.randint(1, 4)))
            over = tuple(x for s in own for x in (s, value()))
            out.append(Overlay(rng.choice(rows), over))
    return out


@pytest.mark.parametrize("seed", range(12))
def test_compiled_slot_routes_read_what_the_python_reference_reads(seed: int) -> None:
    """Every prefix's route as ``slot_value`` reads it (its slot, else its stale
    slot), the sets numbered by identity in first-seen order; through the set
    table's growth (1,500 sets), more entries than one chunk between the
    GIL's offers (16,384), slots past a row's end, with and without a stale slot."""
    rng = random.Random(seed)
    entries = _random_entries(rng, rng.choice((0, 1, 50, 4000, 40_000)))
    cases = [(0, None, False), (3, 7, False), (23, 2, True), (30, 5, True), (5, 40, False)]
    cases.append((rng.randint(0, 25), rng.randint(0, 25), seed % 2 == 1))
    for slot, stale, current in cases:
        want = viewbuild.py_slot_routes(entries, slot, stale, current)
        set_of, path_ids, stale_of, attribute_sets = compiled.slot_routes(
            entries, slot, -1 if stale is None else stale, current
        )
        got = (
            np.frombuffer(set_of, dtype=np.int32),
            np.frombuffer(path_ids, dtype=np.uint32),
            np.frombuffer(stale_of, dtype=bool),
        )
        for a, b in zip(got, want[:3], strict=True):
            assert a.dtype == b.dtype and a.tolist() == b.tolist(), (seed, slot, stale)
        assert [id(a) for a in attribute_sets] == [id(a) for a in want[3]]
        wrapped = viewbuild.slot_routes(entries, slot, stale, current)
        assert all(np.array_equal(a, b) for a, b in zip(wrapped[:3], want[:3], strict=True))
        if len(entries) > 1000:
            assert (got[0] >= 0).any() and (got[0] < 0).any() and got[1].any()


def test_compiled_slot_routes_refuse_what_is_not_an_entry() -> None:
    """An entry that is neither a tuple nor an Overlay, an Overlay whose own
    values name no slot, an ADD-PATH set whose best path is not (path id, set)
    or whose path id is not 32-bit: an error, never a crash or a wrong column."""
    attrs = make_attributes(((AS_SEQUENCE, (64512,)),))
    for entries in (
        ["not an entry"],
        [(PathSet(("x",)),)],
        [(PathSet(((1 << 32, attrs),)),)],
        [(PathSet(((-1, attrs),)),)],
        [Overlay((attrs,), ("not a slot", attrs))],
    ):
        with pytest.raises((TypeError, OverflowError, ValueError)):
            compiled.slot_routes(entries, 0, -1, False)
    set_of, _, stale, found = compiled.slot_routes([None, (attrs,), (None, attrs)], 0, 1, False)
    assert np.frombuffer(set_of, dtype=np.int32).tolist() == [-1, 0, 0] and found == [attrs]
    assert bytes(stale) == b"\x00\x00\x01"  # the last one's from its stale slot


@pytest.mark.parametrize("seed", range(3))
def test_compiled_set_fields_read_what_the_properties_read(seed: int) -> None:
    """AS numbers past 2**31, AS_SETs at either end, empty paths, confederation
    segments: each set's six fields as its properties give them, in order."""
    rng = random.Random(seed)
    paths = [
        (),
        ((AS_SEQUENCE, (4_200_000_000, 65001)),),
        ((AS_SEQUENCE, (64512,)), (AS_SET, (65010, 4_294_967_295))),
        ((AS_SET, (64600, 64500)), (AS_SEQUENCE, (65002,))),
        ((AS_CONFED_SEQUENCE, (64999,)), (AS_SEQUENCE, (64512, 64513))),
    ]
    sets = [make_attributes(p) for p in paths] if seed else []
    sets += [make_attributes(rng.choice(paths)) for _ in range(seed * 1000)]
    want = viewbuild.py_set_fields(sets)
    got = np.frombuffer(compiled.set_fields(sets, viewbuild._SET_FIELDS), dtype=np.int64)
    assert got.tolist() == want.reshape(-1).tolist()
    assert viewbuild.set_fields(sets).tolist() == want.tolist()
    if sets:
        assert want[:, 4].any() and (want[:, 2] >= 1 << 31).any()  # empty paths, big ASes
    with pytest.raises(AttributeError):
        compiled.set_fields([object()], viewbuild._SET_FIELDS)


def _answers_per_route(codes, default, code_set, code_stale, by_set):
    """The answers as the build made them before ``answers_of_routes``: every column
    per route, then ``answer_rows`` over all routes (the reference)."""
    from attribution.viewanswers import answer_rows

    index = code_set[codes]
    empty = (by_set[index, 4] != 0) & ~default
    bgp = ~default & ~empty
    origin = np.where(bgp, by_set[index, 0], 0).astype(np.uint32)
    highest = np.where(bgp, by_set[index, 1], 0).astype(np.uint32)
    peer = np.where(default | bgp, by_set[index, 2], 0).astype(np.uint32)
    peer_highest = np.where(default | bgp, by_set[index, 3], 0).astype(np.uint32)
    prov = np.select([default, empty], [4, 3], 1).astype(np.uint8)
    from_set = bgp & (by_set[index, 5] != 0)
    columns = (origin, highest, peer, peer_highest, prov, from_set)
    return answer_rows(index, default, code_stale[codes], columns)


@pytest.mark.parametrize("seed", range(6))
def test_answers_made_per_kind_equal_answers_made_per_route(seed: int) -> None:
    """Including a default route whose entry no other route holds, one whose
    entry others hold, and none; empty paths and AS_SET origins."""
    rng = np.random.default_rng(seed)
    sets = int(rng.integers(1, 300))
    by_set = np.column_stack(
        [rng.integers(0, 5, sets) * 1000 + 64512 for _ in range(4)]
        + [rng.random(sets) < 0.1, rng.random(sets) < 0.1]
    ).astype(np.int64)
    distinct = int(rng.integers(1, 400))
    code_set = rng.integers(0, sets, distinct).astype(np.int32)
    code_stale = rng.random(distinct) < 0.2
    routes = int(rng.integers(0, 3000))
    codes = rng.integers(0, distinct, routes).astype(np.int32)
    default = np.zeros(routes, dtype=bool)
    if routes and seed % 3:
        at = int(rng.integers(0, routes))
        default[at] = True
        if seed % 3 == 1:  # the default route's entry is its own
            codes[codes == distinct - 1] = 0
            codes[at] = distinct - 1
    got, table = viewbuild.answers_of_routes(code_set[codes], default, code_stale[codes], by_set)
    want, want_table = _answers_per_route(codes, default, code_set, code_stale, by_set)
    assert got.dtype == want.dtype and got.tolist() == want.tolist()
    assert np.array_equal(table.rows, want_table.rows)


def _nested_routes(rng: random.Random, bits: int, count: int) -> tuple:
    """Distinct prefixes on a ``bits``-wide axis, in the store's key order
    ((network, length): a prefix before those it covers), as starts, lasts
    and lengths; /0 and full-length prefixes included."""
    prefixes = set()
    for _ in range(count):
        length = rng.choice((0, 1, 2, 8, bits // 2, bits - 8, bits - 1, bits, rng.randint(0, bits)))
        net = rng.getrandbits(bits) >> (bits - length) << (bits - length) if length else 0
        prefixes.add((net, length))
    ordered = sorted(prefixes)
    starts = np.array([n for n, _ in ordered], dtype=np.uint64)
    lengths = np.array([n for _, n in ordered], dtype=np.uint8)
    lasts = np.array([n + (1 << (bits - k)) - 1 for n, k in ordered], dtype=np.uint64)
    return starts, lasts, lengths


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("bits", [32, 64])
def test_compiled_sweep_flattens_as_numpy_does(seed: int, bits: int) -> None:
    rng = random.Random(seed * 100 + bits)
    starts, lasts, lengths = _nested_routes(rng, bits, rng.choice((0, 1, 5, 300, 5000)))
    top = (1 << bits) - 1
    swept = compiled.flatten_sorted(starts, lasts, top)
    assert swept is not None
    bounds, leaf = np.frombuffer(swept[0], dtype=np.uint64), np.frombuffer(swept[1], np.int32)
    want_bounds, want_leaf = viewbuild.py_flatten(starts, lasts, lengths, bits)
    assert bounds.tolist() == want_bounds.tolist()
    assert leaf.tolist() == want_leaf.tolist()
    got = viewbuild.flatten(starts, lasts, lengths, bits)  # the build's entry point
    assert got[0].tolist() == want_bounds.tolist() and got[1].tolist() == want_leaf.tolist()


@pytest.mark.parametrize("seed", range(4))
def test_compiled_sweep_refuses_routes_out_of_order_or_overlapping(seed: int) -> None:
    """Anything but key-ordered, nested-or-disjoint ranges within the axis is
    refused (None), and ``flatten`` then gives numpy's answer."""
    rng = random.Random(seed)
    starts, lasts, lengths = _nested_routes(rng, 32, 400)
    top = (1 << 32) - 1
    cases = []
    order = list(range(len(starts)))
    rng.shuffle(order)
    cases.append((starts[order], lasts[order], lengths[order]))  # shuffled
    overlap_starts = np.array([0, 10], dtype=np.uint64)  # [0, 20] and [10, 30]
    cases.append((overlap_starts, np.array([20, 30], dtype=np.uint64), np.array([27, 27])))
    same = np.array([0, 0], dtype=np.uint64)  # one range twice
    cases.append((same, np.array([255, 255], dtype=np.uint64), np.array([24, 24])))
    wrong = np.array([5], dtype=np.uint64)  # last before start
    cases.append((wrong, np.array([4], dtype=np.uint64), np.array([32])))
    for case_starts, case_lasts, _ in cases:
        assert compiled.flatten_sorted(case_starts, case_lasts, top) is None
    assert compiled.flatten_sorted(starts, lasts[:-1], top) is None  # lengths differ
    assert lasts.max() > top >> 1  # (/0 is among them)
    assert compiled.flatten_sorted(starts, lasts, top >> 1) is None  # past the axis
    shuffled = cases[0]
    got = viewbuild.flatten(*shuffled, 32)
    want = viewbuild.py_flatten(*shuffled, 32)
    assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist()


def test_answers_of_no_routes_and_of_a_set_past_the_fields() -> None:
    """No routes: the reference's empty table and ids; a route whose set has no
    fields row (a corrupt build) is refused, not read past the array."""
    by_set = np.zeros((3, 6), dtype=np.int64)
    no = np.zeros(0, dtype=np.int32)
    got, table = viewbuild.answers_of_routes(
        no, np.zeros(0, dtype=bool), np.zeros(0, dtype=bool), by_set
    )
    want, want_table = _answers_per_route(
        no, np.zeros(0, dtype=bool), no, np.zeros(0, dtype=bool), by_set
    )
    assert got.dtype == want.dtype and len(got) == 0 and len(table) == len(want_table) == 0
    codes = np.array([0, 1], dtype=np.int32)
    code_set = np.array([0, 3], dtype=np.int32)  # set 3 of 3
    with pytest.raises(IndexError):
        viewbuild.answers_of_routes(
            code_set[codes], np.zeros(2, dtype=bool), np.zeros(2, dtype=bool), by_set
        )


@pytest.mark.parametrize("seed", range(4))
def test_answer_rows_interned_with_take_equal_fancy_indexing(seed: int) -> None:
    """``viewanswers.intern`` picks the distinct rows with ``np.take`` (fancy
    indexing of the packed rows was ~30x slower): the same rows, bytes and ids."""
    from attribution.viewanswers import ROW, _keys, intern

    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 5000))
    rows = np.zeros(n, dtype=ROW)
    for name in ROW.names:
        rows[name] = rng.integers(0, 4, n) * (1 << 31 if name.endswith("as") else 1)
    ids, distinct = intern(rows)
    assert np.array_equal(distinct[ids], rows)
    # The reference: the former last line, fancy indexing.
    a, b, c = _keys(rows)
    order = np.lexsort((c, b, a))
    first = np.ones(n, dtype=bool)
    first[1:] = (np.diff(a[order]) != 0) | (np.diff(b[order]) != 0) | (np.diff(c[order]) != 0)
    want = rows[order[first]] if n else rows[:0]
    assert distinct.dtype == ROW and distinct.tobytes() == want.tobytes()
    assert len(distinct) == len(set(rows.tolist()))
