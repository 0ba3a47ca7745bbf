"""The compiled interner's core key hashed item by item, its path's hash kept.

``ribd._intern`` computes a core's key (``hash()`` of its fields' tuple) as
CPython 3.11's tuple hash, item by item, and keeps the first item's (the AS
path's) hash for ``_make_core``'s path-cache slot instead of hashing the path
twice; ``_make_core`` reads a one-sequence path's tuples in place. Keys,
slots and cores must be exactly what ``hash()`` and the reference give: the
hash against ``hash()`` on random and hostile tuples, the whole interner
against the reference on random rows (``test_intern_compiled``'s picture).
"""

from __future__ import annotations

import importlib
import random
import sys

import pytest

from ribd.attributes import AS_SEQUENCE, AS_SET, AttributeInterner
from tests.ribd.test_intern_compiled import Reference, picture, random_rows

interner_module = importlib.import_module("ribd.interner")
pytestmark = pytest.mark.skipif(not interner_module.COMPILED, reason="ribd._intern is not built")


class _Unhashable:
    __hash__ = None  # type: ignore[assignment]


class _MinusOne:
    """An object whose ``__hash__`` returns -1 (CPython makes it -2)."""

    def __hash__(self) -> int:
        return -1


def _value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.choice((0, -1, -2, 1 << 61, (1 << 61) - 1, 2**64 + 5, -(2**70), 7))
    if kind == 1:
        return rng.choice(("", "igp", "incomplete", "192.0.2.1", "é", "x" * 300))
    if kind == 2:
        return rng.choice((None, True, False, 1.5, float("-inf"), b"", b"\x00\xff"))
    if kind == 3:
        return rng.randrange(-(2**40), 2**40)
    if kind == 4:
        return _MinusOne()
    if kind == 5:
        return frozenset(rng.randrange(10) for _ in range(rng.randrange(4)))
    return tuple(_value(rng, depth + 1) for _ in range(rng.randrange(8)))


def test_the_key_hash_is_hash() -> None:
    from ribd import _intern

    assert _intern.own_tuple_hash() == (
        sys.implementation.name == "cpython" and sys.version_info[:2] == (3, 11)
    )
    rng = random.Random(3611)
    tuples = [(), ((),), ((2, (64496,)),), tuple(range(300))]
    tuples += [tuple(_value(rng) for _ in range(rng.randrange(10))) for _ in range(5000)]
    for t in tuples:
        want = (hash(t), hash(t[0]) if t else -1)
        assert _intern.tuple_hash(t) == want, t


def test_an_unhashable_item_raises_as_hash_does() -> None:
    from ribd import _intern

    for t in [(1, []), ([], 1), (1, (2, [3])), (_Unhashable(),), ("a", {1: 2})]:
        with pytest.raises(TypeError):
            hash(t)
        with pytest.raises(TypeError):
            _intern.tuple_hash(t)


def _path_rows(seed: int, n: int) -> list:
    """Rows whose paths take every shape ``_make_core``'s reads meet: one
    sequence (short, long, one AS), a set, sequences and sets, an empty path,
    segments as lists, a sequence's kind equal to AS_SEQUENCE but not an int."""
    rng = random.Random(seed)
    shapes = [
        lambda: (
            (AS_SEQUENCE, tuple(rng.randrange(1, 70000) for _ in range(rng.randrange(1, 9)))),
        ),
        lambda: ((AS_SEQUENCE, (rng.choice((64496, 4_200_000_000, 2**40)),)),),
        lambda: ((AS_SET, (1, 2, 3)),),
        lambda: ((AS_SEQUENCE, (64496, 3356)), (AS_SET, (rng.randrange(9), 65000))),
        lambda: (),
        lambda: [[AS_SEQUENCE, [64496, rng.randrange(100)]]],
        lambda: ((float(AS_SEQUENCE), (64496, rng.randrange(100))),),
        lambda: ((AS_SEQUENCE, ()),),
    ]
    rows = []
    for _ in range(n):
        path = rng.choice(shapes)()
        med = rng.choice((None, 0, 10, 1000))
        rows.append(
            (path, "igp", f"192.0.2.{rng.randrange(4)}", 100, med, (), (), (), "", (), False, "")
        )
    return rows


def test_cores_and_keys_are_the_references() -> None:
    """The compiled interner against the reference on random and hostile rows and
    on every path shape: the same picture (values, identities, every cache slot)."""
    rows = random_rows(36, 3000) + _path_rows(36, 2000)
    random.Random(1).shuffle(rows)
    compiled, reference = AttributeInterner(), Reference()
    got, want = [], []
    for row in rows:
        for interner, out in ((compiled, got), (reference, want)):
            try:
                out.append(interner.intern(row))
            except (TypeError, ValueError) as exc:
                out.append(type(exc))
    assert [type(a) for a in got] == [type(a) for a in want]
    assert picture(compiled, [a for a in got if not isinstance(a, type)]) == picture(
        reference, [a for a in want if not isinstance(a, type)]
    )
