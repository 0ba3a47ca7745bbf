"""The compiled interner's own steps against what they stand for (``ribd/_intern_new.pxi``,
``ribd/_intern.pyx``, stop 37).

* A PathCore, PathAttributes or RouterPart built at its slots' offsets is the
  object the type's call builds: same type, the very field values, the same
  bytes encoded, hash and equality, repr, reference counts back where they were
  once dropped; on random and hostile values (None, ints past a C long, floats,
  lists, objects of no known type). A type that is not plain (GC-tracked, a
  ``__post_init__``, other fields) is called instead.
* ``SCAN_VARIANTS``, kept while ``ribd.interner``'s dict is unchanged, is read
  again once it changes (lowered, raised, another global written): the compiled
  interner still equals the reference slot by slot.
* The count of sets past small ints and past a Py_ssize_t.
"""

from __future__ import annotations

import importlib
import random
import sys

import msgspec
import pytest

from ribd.attributes import AS_SEQUENCE, AttributeInterner, PathAttributes, PathCore, RouterPart

interner_module = importlib.import_module("ribd.interner")
pytestmark = pytest.mark.skipif(not interner_module.COMPILED, reason="ribd._intern is not built")

from tests.ribd.test_intern_compiled import Reference, picture, random_rows  # noqa: E402


class Odd:
    """A value of no type the Structs expect (the Structs do not check types)."""


def core_values(rng: random.Random) -> tuple:
    pool = [
        None,
        0,
        -1,
        2**63,
        2**70,
        1.5,
        "",
        "igp",
        (),
        ((AS_SEQUENCE, (3356, 2**40)),),
        [1, 2],
        Odd(),
        True,
        False,
        b"x",
        (("a", 1),),
    ]
    return tuple(rng.choice(pool) for _ in range(13))


def encoded(o: object) -> bytes | None:
    try:
        return msgspec.msgpack.encode(o)
    except (TypeError, OverflowError, msgspec.EncodeError):
        return None


def test_the_plain_types_are_built_at_offsets() -> None:
    from ribd._intern import built_at_offsets

    assert built_at_offsets() == (True, True, True)


def test_built_at_offsets_is_the_types_call() -> None:
    from ribd._intern import new_objects

    rng = random.Random(37)
    for _ in range(3000):
        fields = core_values(rng)
        own = (rng.choice(["192.0.2.1", "", "2001:db8::1"]), rng.choice([(), (1, 2**33)]), None)
        own = (own[0], own[1], rng.choice([(100, "", ()), (None, "10.0.0.1", ("1.1.1.1",)), [1]]))
        values = [Odd(), 2**70 + 1, (object(),)]  # fresh: counted exactly
        fields = (*fields[:12], rng.choice(values))
        own = (rng.choice(values), *own[1:])
        before = [sys.getrefcount(v) for v in values]
        core, part, attrs = new_objects(fields, own)
        ref_core = PathCore(*fields)
        ref_part = RouterPart(*own)
        ref_attrs = PathAttributes(ref_core, ref_part)
        assert type(core) is PathCore and type(part) is RouterPart and type(attrs) is PathAttributes
        got = msgspec.structs.astuple(core)
        assert all(a is b for a, b in zip(got, fields, strict=True))
        assert all(a is b for a, b in zip(msgspec.structs.astuple(part), own, strict=True))
        assert attrs.core is core and attrs.own is part
        assert encoded(core) == encoded(ref_core) and encoded(attrs) == encoded(ref_attrs)
        try:
            h = hash(ref_part)
        except TypeError:
            with pytest.raises(TypeError):
                hash(part)
        else:
            assert hash(part) == h and part == ref_part
        assert repr(core) == repr(ref_core) and repr(part) == repr(ref_part)
        del core, part, attrs, got, ref_core, ref_part, ref_attrs
        assert [sys.getrefcount(v) for v in values] == before


def test_types_not_plain_are_called() -> None:
    from ribd._intern import direct_for

    class Tracked(msgspec.Struct):
        a: int
        b: int

    class Posted(msgspec.Struct, gc=False):
        a: int
        b: int

        def __post_init__(self) -> None:
            pass

    class Plain(msgspec.Struct, gc=False):
        a: int
        b: int

    assert direct_for(Plain, ("a", "b"))
    assert not direct_for(Tracked, ("a", "b"))
    assert not direct_for(Posted, ("a", "b"))
    assert not direct_for(Plain, ("b", "a")) and not direct_for(Plain, ("a",))
    assert direct_for(RouterPart, ("next_hop", "communities", "policy"))


def variants(n: int, start: int = 0) -> list:
    path = ((AS_SEQUENCE, (3356, 64500)),)
    return [
        (path, "igp", f"192.0.2.{k % 251}", 1000 + k, None, (), (), (), "", (), False, "")
        for k in range(start, start + n)
    ]


def test_scan_variants_is_read_again_once_changed(monkeypatch) -> None:
    """Interned at 256, then the limit lowered, another global written, raised
    back: both interners alike at every step (the compiled one keeps the value
    read while the module's dict is unchanged)."""
    rows = [variants(40), variants(40, 40), variants(40, 80), variants(40, 120)]
    interners = (Reference(), AttributeInterner())
    got: list[list] = [[], []]

    def step(batch: list) -> None:
        for k, interner in enumerate(interners):
            got[k].extend(interner.intern(r) for r in batch)
        assert picture(interners[0], got[0]) == picture(interners[1], got[1])

    step(rows[0] + random_rows(1, 300))
    monkeypatch.setattr(interner_module, "SCAN_VARIANTS", 8)
    step(rows[1])
    assert len(interners[1]._overflow) > 0
    monkeypatch.setattr(interner_module, "_unrelated_global_for_a_test", 1, raising=False)
    step(rows[2] + rows[0])
    monkeypatch.setattr(interner_module, "SCAN_VARIANTS", 256)
    step(rows[3] + rows[1] + random_rows(2, 300))


@pytest.mark.parametrize("start", [0, 255, 2**30 - 1, 2**62, sys.maxsize - 1, sys.maxsize, 2**70])
def test_the_count_past_any_size(start: int) -> None:
    counts = []
    for interner in (Reference(), AttributeInterner()):
        interner._count = start
        for r in variants(5) + variants(5):
            interner.intern(r)
        counts.append(interner._count)  # (len() cannot say past a Py_ssize_t)
    assert counts == [start + 5, start + 5]
