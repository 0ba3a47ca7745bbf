"""The compiled interner's memo of router parts met before (``ribd/_intern_memo.pxi``).

A decoder hands the same next-hop, community and cluster objects for the same
bytes (its memos), so ``ribd._intern`` finds a row's router part through a memo
slot picked from those objects instead of building a part and hashing it by
value. The memo is a hint: a part is taken from it only when it is the one
``_owns`` holds at its hash's slot (what ``_share_own`` would return) and its
fields equal the row's. These tests feed the compiled interner and the Python
reference the same rows, with the decoder's objects reused, equal objects
made anew, parts dropped by the collection (their addresses reused), parts
swapped in ``_owns`` behind the memo, two interners sharing the process's memo,
and random and hostile rows: the same whole state (``picture``: values,
identities, every cache slot, counters) after every phase.
"""

from __future__ import annotations

import gc
import importlib
import random

import pytest

from ribd.attributes import AS_SEQUENCE, AttributeInterner, RouterPart
from tests.ribd.test_intern_compiled import Reference, picture, random_rows

interner_module = importlib.import_module("ribd.interner")
pytestmark = pytest.mark.skipif(not interner_module.COMPILED, reason="ribd._intern is not built")


def _memo():
    from ribd import _intern

    return _intern


def decoder_rows(rng: random.Random, n: int, hops: int = 6, lists: int = 12) -> list[tuple]:
    """Rows as a raw decoder hands them: next hops, community lists and
    cluster lists drawn from pools of the same objects (its memos), local-prefs
    made anew past 256 (ints from bytes), originator ids made anew, paths new."""
    hop_pool = [f"192.0.2.{k}" for k in range(1, hops + 1)]
    comm_pool = [()] + [
        tuple(sorted(rng.sample(range(1, 1 << 32), rng.randrange(1, 8)))) for _ in range(lists)
    ]
    cluster_pool = [(), (), ("10.0.0.1",), ("10.0.0.1", "10.0.0.2")]
    rows = []
    for _ in range(n):
        pref = rng.choice([None, 100, 200, 300, 70_000])
        if pref is not None:
            pref = int(str(pref))  # a new object, as a decoder's
        orig = rng.choice(["", "", "".join(["192.0.2.", "99"])])
        path = ((AS_SEQUENCE, (3356, 64500 + rng.randrange(n // 2 + 1))),)
        rows.append(
            (
                path,
                "igp",
                rng.choice(hop_pool),
                pref,
                None,
                rng.choice(comm_pool),
                (),
                (),
                orig,
                rng.choice(cluster_pool),
                False,
                "",
            )
        )
    return rows


def _pair_alike(phases: list[list[tuple]], between=None) -> tuple[list, list]:
    """The compiled interner and the reference through the same phases."""
    ref, compiled = Reference(), AttributeInterner()
    want: list = []
    got: list = []
    for k, rows in enumerate(phases):
        if between is not None and k:
            between(ref, want)
            between(compiled, got)
        want += [ref.intern(r) for r in rows]
        got += [compiled.intern(r) for r in rows]
        assert picture(compiled, got) == picture(ref, want)
    return want, got


def test_parts_met_before_are_found_through_the_memo() -> None:
    """Fails before the memo (no ``part_memo``; every row built its part)."""
    m = _memo()
    m.part_memo(clear=True)
    rows = decoder_rows(random.Random(1), 3000)
    _pair_alike([rows])
    hits, misses = m.part_memo()
    distinct = len({(r[2], r[3], r[5], r[8], r[9]) for r in rows})
    assert hits + misses == len(rows)
    assert misses <= 2 * distinct and hits >= len(rows) - 2 * distinct, (hits, misses, distinct)


@pytest.mark.parametrize("seed", range(4))
def test_decoder_rows_and_equal_new_objects_alike(seed: int) -> None:
    """The decoder's objects reused, then the same values as new objects (a
    decoder's memo cleared), then random and hostile rows, then the first again."""
    rng = random.Random(seed)
    rows = decoder_rows(rng, 1500)
    anew = [
        (*r[:2], "".join(r[2]), *r[3:5], tuple(list(r[5])), *r[6:9], tuple(list(r[9])), *r[10:])
        for r in rows
    ]
    assert all(a == r and a[2] is not r[2] for a, r in zip(anew, rows, strict=True))
    hostile = random_rows(50 + seed, 800)
    _pair_alike([rows[:700], anew, hostile, rows])


def test_parts_dropped_by_the_collection_are_not_read() -> None:
    """Every set dropped and the shared values collected: the memo's parts are
    freed, their addresses free for new objects; the same rows again."""
    rng = random.Random(7)
    rows = decoder_rows(rng, 1200)

    def drop_all(interner: AttributeInterner, results: list) -> None:
        results.clear()
        interner.collect_unused(set())
        interner.collect_shared_values()
        gc.collect()
        # New RouterParts and tuples, likely at the freed addresses.
        litter = [RouterPart(f"x{k}", (k,), (k, "", ())) for k in range(2000)]
        del litter

    _pair_alike([rows, rows, decoder_rows(rng, 600)], between=drop_all)


def test_the_collection_counts_no_reference_of_the_memo() -> None:
    """The memo holds no reference: a part no set holds any more leaves the
    cache at the collection, as in the reference."""
    rows = decoder_rows(random.Random(3), 400)
    counts = []
    for interner in (Reference(), AttributeInterner()):
        kept = [interner.intern(r) for r in rows][:50]
        interner.collect_unused({id(a) for a in kept})
        interner.collect_shared_values()
        counts.append((len(interner), interner.shared_values()))
    assert counts[0] == counts[1]


def test_a_part_swapped_in_behind_the_memo_is_the_one_returned() -> None:
    """An equal part written into ``_owns`` (a loaded snapshot's, ``share_loaded``)
    after the memo named another: the new one, as the reference returns it."""
    rows = decoder_rows(random.Random(5), 600)

    def swap(interner: AttributeInterner, _results: list) -> None:
        parts = [o for o in interner._owns if type(o) is RouterPart]
        copies = [
            RouterPart("".join(p.next_hop), tuple(list(p.communities)), p.policy) for p in parts
        ]
        interner.share_loaded([], [], [], owns=copies)

    moved = [(((AS_SEQUENCE, (3356, 10_000 + r[0][0][1][1])),), *r[1:]) for r in rows]
    _, got = _pair_alike([rows, moved], between=swap)  # new cores: new sets
    fresh = {id(a.own) for a in got[600:]}
    assert not fresh & {id(a.own) for a in got[:600]}  # the swapped-in parts, not the memo's


def test_two_interners_share_the_memo_not_their_parts() -> None:
    """One memo for the process: rows interleaved into two interners (with the
    same decoder objects) give each its own parts, as two references do."""
    rows = decoder_rows(random.Random(9), 1200)
    refs = (Reference(), Reference())
    comps = (AttributeInterner(), AttributeInterner())
    out: dict = {k: [] for k in range(4)}
    for k, r in enumerate(rows):
        side = k % 3 == 0
        out[side].append(refs[side].intern(r))
        out[2 + side].append(comps[side].intern(r))
    for side in (0, 1):
        assert picture(comps[side], out[2 + side]) == picture(refs[side], out[side])
    assert not {id(a.own) for a in out[2]} & {id(a.own) for a in out[3]}


def test_equal_values_of_other_types_alike() -> None:
    """A local-pref given as True where 1 was met (equal, equal hash), str and
    tuple subclasses: found or built as the reference does."""

    class Text(str):
        pass

    class Numbers(tuple):
        pass

    hop, comms = "192.0.2.1", (65536 * 3356 + 7,)
    path = ((AS_SEQUENCE, (3356, 64500)),)
    tail = ((), (), "", (), False, "")
    rows = [
        (path, "igp", hop, 1, None, comms, *tail),
        (path, "egp", hop, True, None, comms, *tail),
        (path, "incomplete", Text(hop), 1, None, Numbers(comms), *tail),
        (((AS_SEQUENCE, (3356, 64501)),), "igp", hop, 1.0, None, comms, *tail),
        (((AS_SEQUENCE, (3356, 64502)),), "igp", hop, 1, None, list(comms), *tail),
    ]
    for k in range(len(rows)):
        try:
            _pair_alike([rows[: k + 1], rows[: k + 1]])
        except TypeError:  # (an unhashable field: both raise; checked below)
            for make in (Reference, AttributeInterner):
                with pytest.raises(TypeError):
                    interner = make()
                    for r in rows[: k + 1]:
                        interner.intern(r)
