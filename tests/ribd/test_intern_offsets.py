"""The compiled interner's reads at slot offsets, a new core's list of two, hashes kept.

``ribd._intern`` reads the sets' ``own``, the cores' and router parts' fields
and the interner's own slots at their offsets when the object is of the exact
type (AttributeInterner, PathAttributes, PathCore, RouterPart), through
getattr otherwise. A new core's list is made with its first set (two slots,
not the eight an append leaves), and a RouterPart's hash is computed once
(``cache_hash``). Three interners take the same rows: the compiled one (offsets),
the compiled one on a subclass (getattr), the Python reference: the same whole
state (``test_intern_compiled.picture``) and the same indexes, on random and
hostile rows (lists, colliding core hashes, ints past a C long) and on routers
loaded one after another past the index's threshold (collections between
them: ``test_intern_index``, which compares the exact type's reads with the
reference; the collection itself reads no field here).
"""

from __future__ import annotations

import importlib
import random
import sys

import pytest

from ribd.attributes import AS_SEQUENCE, AttributeInterner, PathAttributes, RouterPart
from tests.ribd.test_intern_compiled import Reference, picture, random_rows
from tests.ribd.test_intern_index import assert_index_sound, index_picture, router_rows

interner_module = importlib.import_module("ribd.interner")
pytestmark = pytest.mark.skipif(not interner_module.COMPILED, reason="ribd._intern is not built")


class Sub(AttributeInterner):
    """The compiled intern on another type: every slot read through getattr."""

    __slots__ = ()


def test_the_compiled_intern_reads_fields_at_offsets() -> None:
    from ribd import _intern

    assert _intern.fields_at_offsets() == (True, True, True, True)
    assert Sub.intern is AttributeInterner.intern is interner_module._compiled_intern


def test_router_parts_keep_their_hash() -> None:
    assert RouterPart.__struct_config__.cache_hash
    a = RouterPart("192.0.2.1", (1, 2), (100, "", ()))
    b = RouterPart("".join(["192.0.2.", "1"]), (1, 2), (100, "", ()))
    assert a == b and hash(a) == hash(b) == hash(a)


@pytest.mark.parametrize("make", [AttributeInterner, Reference, Sub])
def test_a_core_carried_by_one_set_holds_two_slots(make: type) -> None:
    """A new core's list holds the core and its first set in two slots (before:
    the core's list of one, appended to: eight slots, 48 bytes more a core)."""
    interner = make()
    tail = ((), (), (), "", (), False, "")
    rows = [
        (((AS_SEQUENCE, (3356, 64500 + k)),), "igp", "192.0.2.1", 100, None, *tail)
        for k in range(50)
    ]
    for r in rows:
        interner.intern(r)
    two = sys.getsizeof([None, None])
    sizes = {sys.getsizeof(held) for held in interner._cores.values()}
    assert sizes == {two}, sizes
    # Another router's set on each: appended as before.
    for r in rows:
        interner.intern((r[0], r[1], "192.0.2.2", *r[3:]))
    assert all(len(held) == 3 for held in interner._cores.values())


def _alike(rows_in_phases: list[list[tuple]]) -> list:
    interners = {"compiled": AttributeInterner(), "getattr": Sub(), "python": Reference()}
    results: dict[str, list] = {name: [] for name in interners}
    covering = []
    for rows in rows_in_phases:
        for name, interner in interners.items():
            results[name] += [interner.intern(r) for r in rows]
            results[name] += [interner.intern(r) for r in rows[: len(rows) // 3]]
        want = picture(interners["python"], results["python"])
        assert picture(interners["compiled"], results["compiled"]) == want
        assert picture(interners["getattr"], results["getattr"]) == want
        assert index_picture(interners["compiled"]) == index_picture(interners["python"])
        assert index_picture(interners["getattr"]) == index_picture(interners["python"])
        covering.append(assert_index_sound(interners["compiled"]))
    return covering


@pytest.mark.parametrize("seed", range(4))
def test_random_and_hostile_rows_alike(seed: int) -> None:
    rows = random_rows(100 + seed, 1200)
    _alike([rows[:400], rows[400:800], rows[800:]])


@pytest.mark.parametrize(("seed", "routers"), [(1, 12), (2, 30)])
def test_routers_one_after_another_alike(seed: int, routers: int) -> None:
    tables = router_rows(random.Random(seed), routers, 20)
    covering = _alike(tables)
    assert covering[-1] > 3  # cores past INDEX_PAST sets: looked up through their index


def test_sets_of_other_types_are_read_through_getattr() -> None:
    """A core's list holding a set of another type (a subclass: never made by the
    interner, but a list is plain data) is read through getattr, not at an offset."""

    class Other(PathAttributes):
        pass

    interner = AttributeInterner()
    path = ((AS_SEQUENCE, (3356, 64500)),)
    tail = ((), (), (), "", (), False, "")
    rows = [(path, "igp", f"10.0.0.{k}", 100, None, *tail) for k in range(12)]
    got = [interner.intern(r) for r in rows]
    (held,) = interner._cores.values()
    held[3] = Other(got[2].core, got[2].own)  # an equal set, another type
    interner._index.clear()
    assert interner.intern(rows[2]) is held[3]  # found through the index, read by getattr
    held.pop()  # the list shortened behind the index: rebuilt, then found by scan
    interner._index.clear()
    assert interner.intern(rows[5]) is got[5]
