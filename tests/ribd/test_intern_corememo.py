"""The compiled interner's memo of cores met before, by the AS path object
(``ribd/_intern_corememo.pxi``).

Routers loading together carry most paths in all of them, and the raw decoder
hands the very path tuple for the same bytes, which the core keeps. The memo
names the core's list by that object, so a row whose path is the one a core
keeps finds the list without hashing the fields or probing ``_cores``. It is
taken only where it is what the reference finds: these tests feed the
compiled interner and the Python reference the same rows, through
collections that drop cores (their lists out of ``_cores``, addresses
reused), two interners on the same path objects, an interner's slots moved
to another (a snapshot's start-up swap), random and hostile rows: the same
whole state (``picture``) after every phase.
"""

from __future__ import annotations

import gc
import importlib
import random

import pytest

from ribd.attributes import AS_SEQUENCE, AttributeInterner
from ribd.interner import share_numbers
from tests.ribd.test_intern_compiled import Reference, picture, random_rows

interner_module = importlib.import_module("ribd.interner")
pytestmark = pytest.mark.skipif(not interner_module.COMPILED, reason="ribd._intern is not built")


def _memo():
    from ribd import _intern

    return _intern


def templates(rng: random.Random, routers: int, cores: int) -> list[tuple]:
    """(core number, router, MED, communities) per row: each core carried by most
    routers, round-robin as sessions loading together send; some cores with
    another MED (two cores on one path)."""
    out = []
    for c in range(cores):
        for k in range(1, routers + 1):
            if rng.random() < 0.15:
                continue
            med = None if c % 4 else rng.choice([None, 500])
            out.append((c, k, med, rng.choice([(), (65536 * 3356 + 7,)])))
    return out


def rows_for(interner: AttributeInterner, temps: list[tuple], cores: int) -> list[tuple]:
    """Rows as a raw decoder hands them to ``interner``: one path object per
    core, its numbers taken through the interner's cache (``share_numbers``)."""
    paths = [
        share_numbers(interner._ints, ((AS_SEQUENCE, (3356, 64500 + c, 15169 + c % 7)),))
        for c in range(cores)
    ]
    return [
        (paths[c], "igp", f"10.{k}.0.1", 100, med, comms, (), (), "", (), False, None)
        for c, k, med, comms in temps
    ]


def test_cores_met_before_are_found_through_the_memo() -> None:
    """Fails before the memo (no ``core_memo_counts``; every row hashed and probed)."""
    temps = templates(random.Random(1), 16, 300)
    ref, compiled = Reference(), AttributeInterner()
    want = [ref.intern(r) for r in rows_for(ref, temps, 300)]
    hits0, _ = _memo().core_memo_counts()
    got = [compiled.intern(r) for r in rows_for(compiled, temps, 300)]
    hits = _memo().core_memo_counts()[0] - hits0
    assert picture(compiled, got) == picture(ref, want)
    assert hits >= len(temps) - 3 * 300, (hits, len(temps))


def test_cores_dropped_by_the_collection_are_not_taken() -> None:
    """Every set dropped, every core with it (its list out of ``_cores``): no
    list the memo names is one dropped; the same path objects again make new
    lists, as the reference does."""
    rng = random.Random(2)
    temps = templates(rng, 12, 200)
    pair = (Reference(), AttributeInterner())
    rows = {id(i): rows_for(i, temps, 200) for i in pair}
    results: dict = {id(i): [] for i in pair}
    for _phase in range(3):
        for interner in pair:
            results[id(interner)] += [interner.intern(r) for r in rows[id(interner)]]
        assert picture(pair[1], results[id(pair[1])]) == picture(pair[0], results[id(pair[0])])
        dropped = list(pair[1]._cores.values())
        for interner in pair:
            results[id(interner)].clear()
            interner.collect_unused(set())
            interner.collect_shared_values()
            assert interner.cores() == 0
        named = {id(held) for held in _memo().core_memo_lists()}
        assert not named & {id(held) for held in dropped}
        del dropped
        gc.collect()
        litter = [[(k, "x"), k] for k in range(3000)]  # new lists, likely at freed addresses
        del litter


def test_two_interners_on_the_same_path_objects_keep_their_own_cores() -> None:
    """One memo for the process: two interners given the very same path objects
    (both keep them) find their own lists, as two references do."""
    temps = templates(random.Random(3), 8, 150)
    comps = (AttributeInterner(), AttributeInterner())
    refs = (Reference(), Reference())
    rows = rows_for(comps[0], temps, 150)
    for other in (comps[1], *refs):
        for r in rows:  # the same number objects in every interner's cache
            share_numbers(other._ints, r[0])
    out: dict = {k: [] for k in range(4)}
    kept = 0
    for k, r in enumerate(rows):
        side = k % 3 == 0
        out[side].append(refs[side].intern(r))
        out[2 + side].append(comps[side].intern(r))
        kept += out[2 + side][-1].core.as_path is r[0]
    for side in (0, 1):
        assert picture(comps[side], out[2 + side]) == picture(refs[side], out[side])
    assert kept == len(rows)  # both keep the very path objects (the memo's case)
    assert not {id(a.core) for a in out[2]} & {id(a.core) for a in out[3]}


def test_slots_moved_to_another_interner_go_on_alike() -> None:
    """A snapshot's start-up swap (``ribd.snapshot``: every slot set on the RIB's
    interner from the loaded one's), then the same paths again."""
    temps = templates(random.Random(4), 10, 120)
    pictures = []
    for cls in (Reference, AttributeInterner):
        first = cls()
        rows = rows_for(first, temps, 120)
        got = [first.intern(r) for r in rows[: len(rows) // 2]]
        second = cls()
        second.intern(rows[-1])  # something of its own, replaced by the swap
        for name in AttributeInterner.__slots__:
            setattr(second, name, getattr(first, name))
        got += [second.intern(r) for r in rows]
        got += [first.intern(r) for r in rows[:50]]  # the old one still in use too
        pictures.append(picture(second, got))
    assert pictures[0] == pictures[1]


@pytest.mark.parametrize("seed", range(3))
def test_random_and_hostile_rows_between_alike(seed: int) -> None:
    """Decoder rows, random and hostile rows (lists, colliding cores under
    digests, ints past a C long), the decoder rows again, a collection of a
    part of the sets between: the same state as the reference."""
    rng = random.Random(seed)
    temps = templates(rng, 6, 150)
    hostile = random_rows(80 + seed, 700)
    ref, compiled = Reference(), AttributeInterner()
    out: dict = {id(ref): [], id(compiled): []}
    mine = {id(i): rows_for(i, temps, 150) for i in (ref, compiled)}
    for step in range(4):
        for interner in (ref, compiled):
            rows = mine[id(interner)]
            got = out[id(interner)]
            got += [interner.intern(r) for r in (rows if step % 2 == 0 else hostile)]
            kept = got[::3]
            interner.collect_unused({id(a) for a in kept})
            got[:] = kept
        assert picture(compiled, out[id(compiled)]) == picture(ref, out[id(ref)])


def test_an_interner_without_a_tag_interns_alike() -> None:
    """An interner whose ``_memo_tag`` slot is empty (made without ``__init__``,
    its slots filled by hand) is served without the memo."""
    model = AttributeInterner()
    bare = AttributeInterner.__new__(AttributeInterner)
    for name in AttributeInterner.__slots__:
        if name != "_memo_tag":
            setattr(bare, name, getattr(AttributeInterner(), name))
    temps = templates(random.Random(5), 4, 50)
    ref = Reference()
    want = [ref.intern(r) for r in rows_for(ref, temps, 50)]
    got = [bare.intern(r) for r in rows_for(bare, temps, 50)]
    assert picture(bare, got) == picture(ref, want)
    assert model._memo_tag is not None
