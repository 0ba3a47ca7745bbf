"""The interner's per-core index (``ribd.interner_index``) against the scan it replaced,
and the compiled ``intern`` against the Python reference, on whole state.

Three interners take the same steps: the compiled one, the Python reference
(both indexed) and the Python reference with the index switched off (the
scan of before). After every phase: the same sets returned (identity as first
met), the same core lists in the same order, the same overflow, crowd,
counters and caches; the compiled and the Python index equal slot by slot;
every index that covers its list finds each set's router part at the first
set holding it. Random routers (1-70) carry shared cores with their own
router parts, some parts equal across routers; sets are collected and
interned again; a snapshot is written, loaded three times and every row
interned again (the restart's refresh over BGP).
"""

from __future__ import annotations

import contextlib
import importlib
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ribd import interner_index
from ribd.attributes import AS_SEQUENCE, AttributeInterner, PathAttributes
from ribd.events import RoutesAnnounced, SessionState
from ribd.rib import Rib
from ribd.snapshot import load_snapshot, write_snapshot
from tests.ribd.test_intern_compiled import picture, random_rows

interner_module = importlib.import_module("ribd.interner")
pytestmark = pytest.mark.skipif(not interner_module.COMPILED, reason="ribd._intern is not built")

V4 = "ipv4 unicast"
Intern = Callable[[AttributeInterner, tuple], PathAttributes]


@contextlib.contextmanager
def scanning() -> Iterator[None]:
    """The Python reference without its index: every list scanned, as before it."""
    saved = interner_module.INDEX_PAST, interner_index.INDEX_PAST
    interner_module.INDEX_PAST = interner_index.INDEX_PAST = 1 << 30
    try:
        yield
    finally:
        interner_module.INDEX_PAST, interner_index.INDEX_PAST = saved


def py_intern(interner: AttributeInterner, row: tuple) -> PathAttributes:
    return AttributeInterner.py_intern(interner, row)


def scan_intern(interner: AttributeInterner, row: tuple) -> PathAttributes:
    with scanning():
        return AttributeInterner.py_intern(interner, row)


VARIANTS: dict[str, Intern] = {
    "compiled": interner_module._compiled_intern,
    "python": py_intern,
    "scan": scan_intern,
}


def index_picture(interner: AttributeInterner) -> dict:
    return {key: list(ix) for key, ix in interner._index.items()}


def assert_index_sound(interner: AttributeInterner) -> int:
    """Every index that covers its list finds each set's part at the first set
    with an equal part; returns how many lists are indexed so."""
    covering = 0
    for key, ix in interner._index.items():
        held = interner._cores[key]
        m = len(ix) - 1
        assert m >= interner_index.FIRST_SLOTS and not interner_index.full(ix[0] - 1, m)
        if ix[0] != len(held):
            continue
        covering += 1
        for a in held[1:]:
            first = next(b for b in held[1:] if b.own == a.own)
            assert interner_index.get(ix, held, hash(a.own), a.own) is first
    return covering


def assert_alike(interners: dict[str, AttributeInterner], results: dict[str, list]) -> None:
    """The three interners' whole state and results alike (index: compiled and python)."""
    want = picture(interners["python"], results["python"])
    assert picture(interners["scan"], results["scan"]) == want
    assert picture(interners["compiled"], results["compiled"]) == want
    assert index_picture(interners["compiled"]) == index_picture(interners["python"])
    assert not interners["scan"]._index
    assert_index_sound(interners["python"])


def router_rows(rng: random.Random, routers: int, cores: int) -> list[list[tuple]]:
    """Each router's rows: shared cores (most carried by every router, some by a
    few), the router's own next hops and local-prefs, some parts equal across
    routers (a shared next hop with the same communities and policy)."""
    paths = [((AS_SEQUENCE, (3356, 64500 + c, 15169 + c % 7)),) for c in range(cores)]
    comms = [(), (65536 * 3356 + 7,), (1, 2)]
    out = []
    for k in range(1, routers + 1):
        hops = [f"10.{k}.0.{j}" for j in range(3)] + ["192.0.2.1"]
        rows = []
        for c, path in enumerate(paths):
            if c % 5 == 4 and rng.random() < 0.7:
                continue  # a core only some routers carry
            for _ in range(rng.choice([1, 1, 2])):
                hop = rng.choice(hops)
                pref = 100 if hop == "192.0.2.1" else rng.choice([100, 200, 70_000 + k])
                comm = comms[0] if hop == "192.0.2.1" else rng.choice(comms)
                row = (path, "igp", hop, pref, None, comm, (), (), "", (), False, "")
                rows.append(row)
        rng.shuffle(rows)
        out.append(rows)
    return out


def run_routers(seed: int, routers: int, cores: int = 24) -> dict[str, AttributeInterner]:
    """Routers loaded one after another, each phase compared; a collection every
    few routers, then the collected rows interned again."""
    rng = random.Random(seed)
    tables = router_rows(rng, routers, cores)
    interners = {name: AttributeInterner() for name in VARIANTS}
    results: dict[str, list] = {name: [] for name in VARIANTS}
    for k, rows in enumerate(tables, 1):
        for name, intern in VARIANTS.items():
            results[name] += [intern(interners[name], r) for r in rows]
            results[name] += [intern(interners[name], r) for r in rows[: len(rows) // 3]]
        if k % 7 == 0:  # the maintenance's collection: a random third of the sets unused
            drop = {i for i in range(len(results["python"])) if rng.random() < 0.3}
            for name in VARIANTS:
                kept = [a for i, a in enumerate(results[name]) if i not in drop]
                results[name] = kept
                interners[name].collect_unused({id(a) for a in kept})
            again = [r for t in tables[:k] for r in t if rng.random() < 0.2]
            for name, intern in VARIANTS.items():
                results[name] += [intern(interners[name], r) for r in again]
        assert_alike(interners, results)
    return interners


@pytest.mark.parametrize(("seed", "routers"), [(1, 1), (2, 9), (3, 10), (4, 17), (5, 40), (6, 70)])
def test_routers_loaded_one_after_another_intern_alike(seed: int, routers: int) -> None:
    interners = run_routers(seed, routers)
    if routers >= 17:  # cores past INDEX_PAST sets: looked up through their index
        assert assert_index_sound(interners["compiled"]) > 5


def test_past_scan_variants_the_index_and_the_overflow_intern_alike(monkeypatch) -> None:
    monkeypatch.setattr(interner_module, "SCAN_VARIANTS", 20)
    interners = run_routers(7, 45, cores=8)
    assert interners["compiled"]._overflow and interners["compiled"]._index


def test_a_list_past_what_an_index_holds_is_scanned_alike(monkeypatch) -> None:
    """Past POS_MASK positions a list has no index (dropped at the next set)."""
    monkeypatch.setattr(interner_module, "SCAN_VARIANTS", 600)
    path = ((AS_SEQUENCE, (3356, 64500)),)
    rows = [
        (path, "igp", f"10.{k >> 8}.{k & 255}.1", 100, None, (), (), (), "", (), False, "")
        for k in range(560)
    ]
    interners = {name: AttributeInterner() for name in VARIANTS}
    results = {n: [f(interners[n], r) for r in rows + rows[::-1]] for n, f in VARIANTS.items()}
    assert_alike(interners, results)
    assert not interners["compiled"]._index and len(interners["compiled"]) == 560


def test_random_rows_with_colliding_cores_intern_alike(monkeypatch) -> None:
    """random_rows: lists, colliding core hashes (digest keys), ints past a C long,
    few distinct next hops: cores past INDEX_PAST with the parts of test_intern_compiled."""
    monkeypatch.setattr(interner_module, "SCAN_VARIANTS", 40)
    modulus = (1 << 61) - 1  # an int hashes to itself modulo this
    same = [7 + j * modulus for j in range(3)]
    paths = [((AS_SEQUENCE, (3356, a, b)),) for a in same for b in same]
    colliding = [
        (p, "igp", f"10.0.{k}.1", 100, None, (), (), (), "", (), False, "")
        for k in range(14)
        for p in paths
    ]
    random.Random(5).shuffle(colliding)
    # (apart: a digest cannot take random_rows' ints past 64 bits)
    for rows in [*(random_rows(seed, 1500) for seed in range(4)), colliding]:
        interners = {name: AttributeInterner() for name in VARIANTS}
        results = {n: [f(interners[n], r) for r in rows + rows] for n, f in VARIANTS.items()}
        assert_alike(interners, results)
    # cores under a digest (colliding hashes) are indexed under it too
    assert sum(type(k) is bytes for k in interners["compiled"]._index) == 8


def test_a_restart_then_the_refresh_interns_alike(tmp_path: Path) -> None:
    """Sets written to a snapshot and loaded (core lists of up to 40 sets, no
    index): every row interned again finds the loaded set, through a built
    index alike in all three; new rows after it too."""
    rng = random.Random(9)
    tables = router_rows(rng, 40, 12)
    rib = Rib()
    for k, rows in enumerate(tables, 1):
        router = f"192.0.2.{k}"
        rib.apply(SessionState(router, "up", peer_as=64500))
        for i, r in enumerate(rows):
            attrs = rib.interner.intern(r)
            prefix = f"10.{k}.{i}.0/24"
            rib.apply(RoutesAnnounced(router, V4, (prefix,), None, attrs))
    path = tmp_path / "rib.snapshot"
    write_snapshot(rib, path)
    loaded = {}
    for name in VARIANTS:
        loaded[name] = Rib()
        load_snapshot(loaded[name], path, hold_time=60)
    interners = {name: r.interner for name, r in loaded.items()}
    assert not any(i._index for i in interners.values())
    before = {name: i.sets() for name, i in interners.items()}
    refresh = [r for rows in tables for r in rows]
    results = {n: [f(interners[n], r) for r in refresh] for n, f in VARIANTS.items()}
    for name in VARIANTS:  # every row found: the loaded sets, none new
        assert len(interners[name]) == len(before[name])
        assert {id(a) for a in results[name]} <= {id(a) for a in before[name]}
    assert_alike(interners, results)
    assert assert_index_sound(interners["compiled"]) > 5
    more = router_rows(random.Random(10), 50, 12)[40:]
    for name, intern in VARIANTS.items():
        results[name] += [intern(interners[name], r) for r in (r for t in more for r in t)]
    assert_alike(interners, results)


def test_a_planted_difference_fails_the_comparison(monkeypatch) -> None:
    """An index that notes a new set without entering it: lookups miss it, the
    Python reference makes a second equal set, and the comparison says so."""

    def forgetful(ix, held, attrs) -> bool:
        ix[0] = len(held)
        return True

    monkeypatch.setattr(interner_index, "added", forgetful)
    with pytest.raises(AssertionError):
        run_routers(4, 17)
