"""The interner takes AS paths as tuples of tuples (the raw decoders') without copying
them, and still accepts the lists other decoders hand it."""

from __future__ import annotations

from ribd.attributes import AS_SEQUENCE, AS_SET, AttributeInterner


def row(path, hop: str = "192.0.2.1") -> tuple:
    return (path, "igp", hop, 100, None, (), (), (), "", (), False, "")


def test_a_path_given_as_lists_and_as_tuples_is_one_core_of_tuples() -> None:
    interner = AttributeInterner()
    as_lists = interner.intern(row([[AS_SEQUENCE, [64496, 64511]], [AS_SET, [1, 2]]]))
    as_tuples = interner.intern(row(((AS_SEQUENCE, (64496, 64511)), (AS_SET, (1, 2)))))
    assert as_tuples is as_lists
    assert as_lists.as_path == ((AS_SEQUENCE, (64496, 64511)), (AS_SET, (1, 2)))
    assert all(type(seg) is tuple and type(seg[1]) is tuple for seg in as_lists.as_path)
    assert (as_lists.origin_as, as_lists.peer_as) == (64511, 64496)


def test_routers_with_equal_paths_share_one_path_object() -> None:
    interner = AttributeInterner()
    a = interner.intern(row(((AS_SEQUENCE, (64496, 64511)),), hop="192.0.2.1"))
    b = interner.intern(row(((AS_SEQUENCE, (64496, 64511)),), hop="192.0.2.2"))
    c = interner.intern(row([(AS_SEQUENCE, [64496, 64511])], hop="192.0.2.3"))
    assert a is not b and a.core is b.core is c.core
    assert a.as_path is c.as_path
