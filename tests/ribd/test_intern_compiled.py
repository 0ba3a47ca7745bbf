"""``ribd._intern.intern`` against its Python reference ``AttributeInterner.py_intern``.

The same rows into two interners, one through each: the same sets (equal
values), the same sharing (which results, cores, paths, policies, AS numbers
... are one object), the same counters and the same caches, slot by slot. On
the real table (as two routers, then again) when ../shared/data is there, and
on random rows: lists where the JSON path hands lists, colliding core hashes,
ints past a C long, a core past SCAN_VARIANTS.
"""

from __future__ import annotations

import importlib
import random
import shutil
import sysconfig
from pathlib import Path

import pytest

from ribd.attributes import (
    AS_CONFED_SEQUENCE,
    AS_SEQUENCE,
    AS_SET,
    AttributeInterner,
    PathAttributes,
    PathCore,
    attribute_row,
)

# (after ribd.attributes: imported first, ribd.interner would meet its own
# import back from the end of ribd.attributes half done)
interner_module = importlib.import_module("ribd.interner")

pytestmark = pytest.mark.skipif(not interner_module.COMPILED, reason="ribd._intern is not built")

MRT = Path(__file__).resolve().parents[3] / "shared" / "data" / "bgp"
MRT = MRT / "pch-as3856-fulltable-2015.mrt.gz"
CACHES = ("_ints", "_tuples", "_communities", "_paths", "_policies", "_owns")


class Reference(AttributeInterner):
    """An interner whose ``intern`` is the Python reference."""

    __slots__ = ()
    intern = AttributeInterner.py_intern


def test_built_where_a_c_compiler_is() -> None:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    assert shutil.which(cc) is None or interner_module.COMPILED
    assert AttributeInterner.intern is not AttributeInterner.py_intern


def labels(objects: list) -> list[int]:
    """Which of ``objects`` are one object: each one's first position."""
    first: dict[int, int] = {}
    return [first.setdefault(id(o), len(first)) for o in objects]


def picture(interner: AttributeInterner, results: list) -> dict:
    """Everything one can see of the interner and what it returned, with identity."""
    objects: list = list(results)
    for a in results:
        c = a.core
        objects += [c, c.as_path, a.own, a.policy, a.communities, a.next_hop, c.med]
        objects += [c.large_communities, c.extended_communities, *a.policy]
        objects += [n for _, numbers in c.as_path for n in numbers]
        objects += [segment for segment in c.as_path]
    for key, held in interner._cores.items():
        objects += [key, *held]
    objects += list(interner._overflow.values())
    for name in CACHES:
        objects += getattr(interner, name)
    objects += list(interner._texts)
    derived = [
        (a.peer_as, a.origin_as, a.origin_as_highest, a.origin_from_set, a.empty_path)
        for a in results
    ]
    return {
        "rows": [attribute_row(a) for a in results],
        "derived": derived,
        "labels": labels(objects),
        "counts": (len(interner), interner.cores(), interner.shared_values()),
        "overflow": list(interner._overflow),
        "crowd": set(interner._crowd),
        "keys": list(interner._cores),
        "values": [list(getattr(interner, name)) for name in CACHES],
        "texts": list(interner._texts),
        "tags": list(interner._path_tags),
    }


def assert_alike(rows: list) -> tuple[AttributeInterner, AttributeInterner]:
    ref, compiled = Reference(), AttributeInterner()
    want = [ref.intern(r) for r in rows]
    got = [compiled.intern(r) for r in rows]
    assert picture(compiled, got) == picture(ref, want)
    return ref, compiled


def random_row(rng: random.Random, pool: dict) -> tuple:
    """A row of make_attributes' fields; often values equal to earlier ones as
    new objects (a decoder's), sometimes lists (the JSON path's)."""
    asns = pool["asns"]

    def number() -> int:
        n = rng.choice(asns)
        return int(str(n)) if rng.random() < 0.5 else n  # equal, another object

    def segment() -> tuple:
        kind = rng.choice([AS_SEQUENCE] * 6 + [AS_SET, AS_CONFED_SEQUENCE])
        numbers = tuple(number() for _ in range(rng.choice([0, 1, 1, 2, 3, 5])))
        return (kind, list(numbers) if rng.random() < 0.1 else numbers)

    if pool["paths"] and rng.random() < 0.6:
        path = rng.choice(pool["paths"])
    else:
        path = tuple(segment() for _ in range(rng.choice([0, 1, 1, 1, 2, 3])))
        pool["paths"].append(path)
    if rng.random() < 0.05:
        path = [list(s) for s in path]  # the JSON path's lists
    large = tuple((number(), rng.randrange(3), rng.randrange(2)) for _ in range(rng.randrange(3)))
    if large and rng.random() < 0.1:
        large = [list(x) for x in large]
    ext = tuple(rng.sample(["target:1:1", "origin:2:2", "0x1234"], rng.randrange(3)))
    return (
        path,
        rng.choice(["igp", "egp", "incomplete"]),
        rng.choice(pool["hops"]),
        rng.choice([None, 100, 200, 300, 70_000, 70_000 + (1 << 14), 2**70]),
        rng.choice([None, 0, 5, 257, 1 << 31, 2**64 + 3, -7]),
        tuple(rng.sample([1, 2, 65536 * 3356 + 7, 65536 * 174 + 1], rng.randrange(3))),
        large,
        list(ext) if ext and rng.random() < 0.1 else ext,
        rng.choice(["", "", "192.0.2.9", "192.0.2.10"]),
        rng.choice([(), (), ("192.0.2.9",), ("10.0.0.1", "10.0.0.2")]),
        rng.random() < 0.1,
        rng.choice(["", "", "64500:192.0.2.1"]),
    )


def random_rows(seed: int, n: int) -> list:
    rng = random.Random(seed)
    modulus = (1 << 61) - 1  # an int hashes to itself modulo this: colliding cores
    pool = {
        "asns": [1, 2, 255, 256, 257, 3356, 64500, 4_200_000_000, 2**40, 2**70, -3]
        + [7 + j * modulus for j in range(4)]
        + [70_000 + k * (1 << 14) for k in range(6)],  # one int cache slot
        "paths": [],
        "hops": ["192.0.2.1", "192.0.2.2", "".join(["192.0.2.", "1"]), "2001:db8::1"],
    }
    return [random_row(rng, pool) for _ in range(n)]


def test_random_rows_intern_alike() -> None:
    for seed in range(6):
        assert_alike(random_rows(seed, 1500))


def test_colliding_cores_intern_alike() -> None:
    modulus = (1 << 61) - 1
    same = [7 + j * modulus for j in range(5)]
    paths = [((AS_SEQUENCE, (3356, a, b)),) for a in same for b in same]
    rows = [
        (p, "igp", hop, None, None, (), (), (), "", (), False, "")
        for hop in ("192.0.2.1", "192.0.2.2", "192.0.2.1")
        for p in paths
    ]
    _ref, compiled = assert_alike(rows)
    assert compiled._crowd and compiled.cores() == 25


def test_past_scan_variants_intern_alike(monkeypatch) -> None:
    monkeypatch.setattr(interner_module, "SCAN_VARIANTS", 3)
    path = ((AS_SEQUENCE, (3356, 64500)),)
    rows = [
        (path, "igp", f"192.0.2.{k % 9}", 1000 + k % 5, None, (), (), (), "", (), False, "")
        for k in range(60)
    ]
    _ref, compiled = assert_alike(rows + random_rows(11, 800))
    assert len(compiled._overflow) > 0


def test_a_collection_between_interns_leaves_them_alike() -> None:
    """Sets dropped by the collection, then interned again: found or rebuilt alike."""
    rows = random_rows(3, 1200)
    pictures = []
    for interner in (Reference(), AttributeInterner()):
        kept = [interner.intern(r) for r in rows[:600]][::3]
        interner.collect_unused({id(a) for a in kept})
        again = [interner.intern(r) for r in rows]
        pictures.append(picture(interner, kept + again))
    assert pictures[0] == pictures[1]


@pytest.mark.fulltable
@pytest.mark.skipif(not MRT.exists(), reason="../shared/data is absent")
def test_the_real_table_as_two_routers_interns_alike() -> None:
    """Every UPDATE of the real table decoded, its rows interned as one router,
    then as a second with its own next hops and local-pref (cores found, sets
    new), then the first again (every set found)."""
    from bench.exabgp_log import updates
    from ribd.rawopen import SessionCaps
    from ribd.rawupdate import UpdateDecoder

    rows: list = []

    class Recorder(AttributeInterner):
        __slots__ = ()

        def intern(self, row):  # type: ignore[override]
            rows.append(row)
            return self.py_intern(row)

    decoder = UpdateDecoder(Recorder())
    caps = SessionCaps(asn4=True)
    for message in updates(MRT):
        decoder.decode("192.0.2.250", message[19:], caps)
    assert len(rows) > 89_000
    second = [(r[0], r[1], f"10.1.{sum(r[2].encode()) & 255}.1", 120, *r[4:]) for r in rows]
    assert_alike(rows + second + rows)


def test_the_compiled_path_leaves_acyclic_containers_out_of_the_gc() -> None:
    """What the compiled intern leaves untracked by the cyclic GC can hold no
    cycle: each core's list holds gc=False Structs only, each new AS path tuples
    of ints only. (The reference leaves them tracked; the GC would untrack the
    paths itself at its first pass over them, and walk the lists at every pass.)"""
    import gc

    interner = AttributeInterner()
    for row in random_rows(2, 1500):
        interner.intern(row)
    plain_paths = 0
    for held in interner._cores.values():
        assert not gc.is_tracked(held)
        assert type(held[0]) is PathCore and all(type(a) is PathAttributes for a in held[1:])
        assert not any(map(gc.is_tracked, held))
        path = held[0].as_path
        if all(type(k) is int and all(type(n) is int for n in s) for k, s in path):
            plain_paths += 1
            assert not gc.is_tracked(path) and not any(map(gc.is_tracked, path)), path
    assert plain_paths > 100


def test_paths_a_decoder_shared_are_kept_alike() -> None:
    """Rows whose AS paths were made as the raw decoders make them, the numbers
    taken through the interner's own cache (``share_numbers``), each interner
    its own: the same picture, and each new such path is the very object handed
    in (kept, not built again); a path whose number lost its slot meanwhile (a
    MED or local-pref of the same slot shared before it) is built again alike."""
    from ribd.interner import share_numbers

    rows = random_rows(5, 1500)
    pictures, kept = [], []
    for interner in (Reference(), AttributeInterner()):
        got, handed = [], []
        for r in rows:
            path = r[0]
            if type(path) is tuple and all(type(s[1]) is tuple for s in path):
                path = share_numbers(interner._ints, path)
            handed.append(path)
            got.append(interner.intern((path, *r[1:])))
        pictures.append(picture(interner, got))
        kept.append([a.core.as_path is p for a, p in zip(got, handed, strict=True)])
    assert pictures[0] == pictures[1]
    assert kept[0] == kept[1] and sum(kept[1]) > 300


def test_a_shared_path_whose_number_lost_its_slot_is_built_again() -> None:
    from ribd.interner import share_numbers
    from ribd.interner_keys import SHARE_SLOTS

    for interner in (Reference(), AttributeInterner()):
        path = share_numbers(interner._ints, ((AS_SEQUENCE, (64500, 70_000)),))
        # The MED is shared first (slot 70_000 & mask): the path's 70_000 is evicted.
        med = 70_000 + SHARE_SLOTS
        a = interner.intern((path, "igp", "192.0.2.1", None, med, (), (), (), "", (), False, ""))
        assert a.core.as_path == path and a.core.as_path is not path
        assert a.core.as_path[0][1][1] is interner._ints[70_000 & (SHARE_SLOTS - 1)]
        fresh = share_numbers(interner._ints, ((AS_SEQUENCE, (64500, 64511)),))
        b = interner.intern((fresh, "igp", "192.0.2.1", None, None, (), (), (), "", (), False, ""))
        assert b.core.as_path is fresh
