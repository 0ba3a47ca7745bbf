"""Attribute sets: equal values are shared between sets, and forgotten when unused."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ribd.attributes import (
    AS_CONFED_SEQUENCE,
    AS_SEQUENCE,
    AS_SET,
    ATTRIBUTE_FIELDS,
    DERIVED_FIELDS,
    SHARE_SLOTS,
    AttributeInterner,
    make_attributes,
)
from ribd.parser import ExabgpParser

FIELDS = ATTRIBUTE_FIELDS + DERIVED_FIELDS  # every field a reader sees


def fresh(value):
    """An equal copy that is a distinct object, as a newly decoded UPDATE gives."""
    if type(value) is int:
        return int(str(value))
    if type(value) is str:
        return "".join(list(value))
    return tuple(fresh(v) for v in value)


# Values a set shares. Strings are shared through a dict; ints and int tuples
# through caches, where these take distinct slots (their hashes are the same
# in every run), so none evicts another.
SHARED = {
    "origin": "igp",
    "next_hop": "192.0.2.1",
    "local_pref": 1000,
    "med": 5000,
    "communities": ((3356 << 16) | 901, (3356 << 16) | 2011),
    "large_communities": ((64500, 1, 2),),
    "extended_communities": ("target:64500:100",),
    "originator_id": "10.0.0.1",
    "cluster_list": ("10.0.0.2", "10.0.0.3"),
    "atomic_aggregate": False,
    "aggregator": "64500:10.0.0.1",
}
OTHER = SHARED | {
    "local_pref": 2000,
    "med": 7000,
    "communities": (7,),
    "large_communities": (),
    "extended_communities": (),
    "originator_id": "10.9.9.8",
    "cluster_list": ("10.9.9.9",),
}


def row(*asns: int, kind: int = AS_SEQUENCE, values: dict = SHARED, **kw) -> tuple:
    """An attribute row (make_attributes' order) made of fresh objects."""
    fields = {"as_path": ((kind, asns),)} | values | kw
    return tuple(v if type(v) is bool else fresh(v) for v in fields.values())


def test_identical_values_are_shared_between_sets():
    interner = AttributeInterner()
    a = interner.intern(row(3356, 1299, 64500))
    b = interner.intern(row(174, 1299, 64500, next_hop="192.0.2.9"))
    assert (a.communities, a.originator_id) == (SHARED["communities"], SHARED["originator_id"])
    assert a is not b
    assert a.as_path[0][1][1] is b.as_path[0][1][1]  # AS 1299
    assert a.origin_as is b.origin_as is b.as_path[0][1][-1]
    assert a.peer_as is a.as_path[0][1][0]
    for name in (
        "local_pref",
        "med",
        "communities",
        "large_communities",
        "extended_communities",
        "originator_id",
        "cluster_list",
    ):
        assert getattr(a, name) is getattr(b, name), name


def test_shared_sets_equal_unshared_ones():
    interner = AttributeInterner()
    rows = [
        row(3356, 1299, 64500),
        row(64500, kind=AS_SET),
        row(64500, 64501, kind=AS_SET),
        row(as_path=((AS_CONFED_SEQUENCE, (65001,)), (AS_SEQUENCE, (3356, 64500))), origin="egp"),
        row(as_path=((AS_SEQUENCE, (3356, 1299)), (AS_SET, (64500, 64501))), next_hop=""),
        row(as_path=()),
        row(3356, 4_200_000_000, local_pref=100, med=0, communities=(), cluster_list=()),
    ]
    for r in rows:
        got, want = interner.intern(r), make_attributes(*r)
        assert [getattr(got, f) for f in FIELDS] == [getattr(want, f) for f in FIELDS]
        # and of the same types: a shared value never changes a field's type
        assert [type(getattr(got, f)) for f in FIELDS] == [type(getattr(want, f)) for f in FIELDS]


def test_interned_sets_are_found_by_their_row():
    """The row a loaded snapshot holds finds the set the parser interned."""
    interner = AttributeInterner()
    r = row(3356, 1299, 64500)
    assert interner.find(r) is None
    got = interner.intern(r)
    assert interner.find(row(3356, 1299, 64500)) is got
    assert interner.intern(row(3356, 1299, 64500)) is got
    assert len(interner) == 1


def test_colliding_values_evict_and_stay_correct():
    interner = AttributeInterner()
    # AS numbers one cache size apart take the same slot.
    asns = [70_000 + k * SHARE_SLOTS for k in range(50)]
    sets = [interner.intern(row(a, a + 1)) for a in asns * 2]
    assert [s.as_path[0][1] for s in sets] == [(a, a + 1) for a in asns * 2]
    assert [s.origin_as for s in sets] == [a + 1 for a in asns * 2]


def test_collecting_forgets_values_no_set_uses():
    interner = AttributeInterner()
    kept = interner.intern(row(3356, 1299, 64500))
    gone = interner.intern(row(6939, 64999, values=OTHER))
    assert interner.shared_values() > 0
    del gone
    assert interner.collect_unused({id(kept)}) == 1
    assert len(interner) == 1
    # Only kept's values are left: 3 AS numbers, MED, LOCAL_PREF, 2 community
    # tuples, extended communities, originator id, cluster list, its AS path,
    # its next hop, its policy (local-pref, originator id, cluster list) and its
    # router part (next hop, communities, policy).
    assert interner.shared_values() == 3 + 2 + 2 + 3 + 2 + 1 + 1
    # ... and still shared with new sets: the whole router part, as its values are equal.
    again = interner.intern(row(3356, 1299, 64501))
    assert again.communities is kept.communities and again.policy is kept.policy
    assert again.own is kept.own
    assert again.as_path[0][1][0] is kept.as_path[0][1][0]
    del kept, again
    interner.collect_unused(set())
    assert (len(interner), interner.shared_values()) == (0, 0)


def test_collecting_keeps_values_a_set_outside_the_interner_still_uses():
    interner = AttributeInterner()
    held = interner.intern(row(3356, 1299, 64500))
    interner.collect_unused(set())  # the interner forgets the set, a caller holds it
    assert len(interner) == 0
    assert interner.intern(row(3356, 1299, 64501)).communities is held.communities


def test_adopted_sets_share_values():
    """Sets built elsewhere (a snapshot load) get the shared values when added."""
    interner = AttributeInterner()
    parsed = interner.intern(row(3356, 1299, 64500))
    loaded = make_attributes(*row(174, 1299, 64500))
    before = [getattr(loaded, f) for f in FIELDS]
    assert interner.add(loaded) is loaded
    assert [getattr(loaded, f) for f in FIELDS] == before
    assert loaded.communities is parsed.communities
    assert loaded.as_path[0][1][1] is parsed.as_path[0][1][1]
    assert loaded.origin_as is parsed.origin_as
    # A set already held is kept; the other is left alone.
    other = make_attributes(*row(174, 1299, 64500))
    assert interner.add(other) is loaded
    assert other.communities is not parsed.communities


def test_parsed_updates_share_values():
    def line(asns, nh):
        attribute = {
            "origin": "igp",
            "as-path": {"0": {"element": "as-sequence", "value": asns}},
            "community": [[3356, 901]],
            "originator-id": "10.0.0.1",
            "cluster-list": ["10.0.0.2"],
        }
        update = {
            "attribute": attribute,
            "announce": {"ipv4 unicast": {nh: [{"nlri": "10.0.0.0/8"}]}},
        }
        neighbor = {"address": {"peer": "127.0.0.1"}, "message": {"update": update}}
        return json.dumps({"type": "update", "neighbor": neighbor}).encode()

    parser = ExabgpParser()
    (a,) = parser.parse(line([3356, 1299, 64500], "192.0.2.1"))
    (b,) = parser.parse(line([174, 1299, 64501], "192.0.2.2"))
    x, y = a.attributes, b.attributes
    assert x is not y
    assert x.as_path[0][1][1] is y.as_path[0][1][1]
    assert (x.communities, x.originator_id, x.cluster_list) == (
        (3356 << 16 | 901,),
        "10.0.0.1",
        ("10.0.0.2",),
    )
    assert x.communities is y.communities
    assert x.originator_id is y.originator_id
    assert x.cluster_list is y.cluster_list


@pytest.mark.parametrize(
    "first",
    ["ribd.interner", "ribd.attributes", "ribd.interner_keys", "ribd.interner_load", "ribd.rib"],
)
def test_interner_and_attributes_import_in_any_order(first: str) -> None:
    """``ribd.attributes`` re-exports the interner lazily: importing the interner's
    modules first used to fail half-initialised (the two imported each other)."""
    code = (
        f"import {first}\n"
        "from ribd.attributes import AttributeInterner, SCAN_VARIANTS, core_key\n"
        "import ribd.interner\n"
        "assert AttributeInterner is ribd.interner.AttributeInterner\n"
        "assert SCAN_VARIANTS == ribd.interner.SCAN_VARIANTS\n"
        "assert core_key is ribd.interner.core_key\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_attributes_unknown_name_is_an_attribute_error() -> None:
    import ribd.attributes

    with pytest.raises(AttributeError, match="no_such_thing"):
        ribd.attributes.no_such_thing  # noqa: B018
