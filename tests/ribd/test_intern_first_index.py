"""A core's first index sized for 17 sets, and ``_index`` read once a new set.

Why (stop 38, internc): 16 routers loading together carry most cores in all 16;
a core's first index was built at its 9th set with 16 slots and built again at
its 15th (7/8 full), a second pass over every set's cold router part. With 20
slots it takes 17 sets (a 17th router too) in the same array. And the compiled
``intern`` read ``_index[key]`` twice for a new set of an indexed core (to find
the set, then to enter it); it now keeps the array it read while ``_index``'s
version tag is unchanged, and reads the dict again otherwise, as the reference
does (here: a value whose ``==`` empties ``_index`` between the two steps).
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable

import pytest

from ribd import interner_index
from ribd.attributes import AS_SEQUENCE, AttributeInterner, PathAttributes
from tests.ribd.test_intern_compiled import picture, random_rows

interner_module = importlib.import_module("ribd.interner")
pytestmark = pytest.mark.skipif(not interner_module.COMPILED, reason="ribd._intern is not built")

Intern = Callable[[AttributeInterner, tuple], PathAttributes]


def py_intern(interner: AttributeInterner, row: tuple) -> PathAttributes:
    return AttributeInterner.py_intern(interner, row)


VARIANTS: dict[str, Intern] = {"compiled": interner_module._compiled_intern, "python": py_intern}
PATH = ((AS_SEQUENCE, (3356, 64500, 15169)),)


def row(router: int, comms: object = (), path: tuple = PATH) -> tuple:
    """make_attributes' order: one core, router ``router``'s own next hop."""
    return (path, "igp", f"10.0.{router}.1", 100, None, comms, (), (), "", (), False, None)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_core_of_9_to_17_routers_keeps_its_first_index(variant: str) -> None:
    """The index built at the 9th set covers sets 10..17 in place (before: built
    again, a new array, at the 15th)."""
    intern = VARIANTS[variant]
    interner = AttributeInterner()
    for k in range(1, 11):
        intern(interner, row(k))
    ((key, first),) = interner._index.items()
    assert len(first) - 1 == interner_index.FIRST_SLOTS == 20
    for k in range(11, 18):
        intern(interner, row(k))
        assert interner._index[key] is first, k
        assert first[0] == len(interner._cores[key]) == k + 1
    intern(interner, row(18))  # past 7/8 of 20 slots: a larger one
    assert interner._index[key] is not first
    assert len(interner._index[key]) - 1 == interner_index.slots_for(18)
    for k in range(1, 19):  # every set found again, none added
        assert intern(interner, row(k)) is interner._cores[key][k]
    assert len(interner) == 18


def test_the_compiled_build_sizes_as_the_reference() -> None:
    """``_build``'s slots in C are ``slots_for``'s, for every list length indexed."""
    compiled, python = AttributeInterner(), AttributeInterner()
    for k in range(1, 300):
        a = interner_module._compiled_intern(compiled, row(k))
        b = py_intern(python, row(k))
        assert [list(ix) for ix in compiled._index.values()] == [
            list(ix) for ix in python._index.values()
        ], k
        assert a.own == b.own


class Emptying(tuple):
    """Communities whose ``==`` empties the interner's ``_index`` (Python code run
    between the compiled ``intern``'s find and hold steps)."""

    target: AttributeInterner | None = None
    calls = 0

    def __eq__(self, other: object) -> bool:
        if Emptying.target is not None:
            Emptying.calls += 1
            Emptying.target._index.clear()
        return tuple.__eq__(self, other)

    __hash__ = tuple.__hash__


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_an_index_dropped_between_find_and_hold_is_not_entered(variant: str) -> None:
    """The dict changed between the two steps: the compiled ``intern`` reads it
    again (nothing there: nothing entered, as the reference)."""
    intern = VARIANTS[variant]
    interner = AttributeInterner()
    for k in range(1, 12):
        intern(interner, row(k, Emptying((k, 7))))
    ((key, _),) = interner._index.items()
    Emptying.target, Emptying.calls = interner, 0
    try:
        # A new set: the index read, then router 1's equal communities met in the
        # shared values' cache (compared: emptied), then the set entered.
        intern(interner, row(12, Emptying((1, 7))))
        assert Emptying.calls and not interner._index
        assert len(interner._cores[key]) == 13
        intern(interner, row(3, Emptying((3, 7))))  # held: found, compared, emptied
    finally:
        Emptying.target = None
    assert not interner._index
    intern(interner, row(13))
    ((key, ix),) = interner._index.items()
    assert ix[0] == len(interner._cores[key]) == 14


def both(rows: list) -> tuple[dict, dict]:
    out = {}
    for name, intern in VARIANTS.items():
        interner = AttributeInterner()
        results = [intern(interner, r) for r in rows]
        out[name] = (picture(interner, results), [list(ix) for ix in interner._index.values()])
    return out["compiled"], out["python"]


def test_many_routers_random_and_hostile_rows_intern_alike() -> None:
    """Cores carried by 1-40 routers (indexes built, entered, outgrown) with random
    and hostile rows between (lists, colliding cores, ints past a C long): the
    compiled state equals the reference's, indexes slot by slot."""
    rng = random.Random(38)
    paths = [((AS_SEQUENCE, (3356, 64500 + c)),) for c in range(12)]
    rows = [
        row(rng.randrange(1, 41), rng.choice([(), (1, 2)]), rng.choice(paths)) for _ in range(2500)
    ]
    hostile = random_rows(38, 600)
    mixed = rows[:1000] + hostile[:300] + rows[1000:] + hostile[300:] + rows
    compiled, python = both(mixed)
    assert compiled == python
