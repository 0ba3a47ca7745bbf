"""Attribute sets split into a core all routers share and a small per-router part.

Routers of one network carry the same paths with their own next hops (and
local-pref, route reflector attributes): each router gets its own set, but
the AS path, communities and derived AS numbers live once, in a shared core.
These tests pin that sharing through the parser and the RIB, and that the
RIB's operations and garbage collection keep answering each router's own
values.
"""

from __future__ import annotations

import json

from ribd.attributes import AS_SEQUENCE, AttributeInterner
from ribd.events import RoutesWithdrawn, SessionState
from ribd.parser import ExabgpParser
from ribd.rib import Rib

V4 = "ipv4 unicast"
R1, R2 = "192.0.2.1", "192.0.2.2"


def line(neighbor, prefixes, asns, next_hop, *, local_pref=None, communities=((3356, 901),)):
    attribute = {
        "origin": "igp",
        "as-path": {"0": {"element": "as-sequence", "value": list(asns)}},
        "community": [list(c) for c in communities],
        "originator-id": "10.0.0.1",
        "cluster-list": [f"10.0.{neighbor[-1]}.9"],
    }
    if local_pref is not None:
        attribute["local-preference"] = local_pref
    update = {
        "attribute": attribute,
        "announce": {V4: {next_hop: [{"nlri": p} for p in prefixes]}},
    }
    msg = {"address": {"peer": neighbor}, "message": {"update": update}}
    return json.dumps({"type": "update", "neighbor": msg}).encode()


def feed(rib, parser, *lines):
    for raw in lines:
        rib.apply_many(parser.parse(raw))


def loaded_rib():
    """Two routers, the same paths, each with its own next hop and cluster list."""
    rib = Rib()
    parser = ExabgpParser(rib.interner)
    for r in (R1, R2):
        rib.apply(SessionState(r, "up"))
    prefixes = ["10.0.0.0/8", "10.1.0.0/16"]
    feed(
        rib,
        parser,
        line(R1, prefixes, (3356, 1299, 64500), "192.0.2.101"),
        line(R2, prefixes, (3356, 1299, 64500), "192.0.2.102", local_pref=200),
        line(R1, ["11.0.0.0/8"], (174, 64501), "192.0.2.101"),
        line(R2, ["11.0.0.0/8"], (174, 64501), "192.0.2.102"),
    )
    return rib, parser


def drain(rib):
    while rib.maintenance():
        pass


def test_two_routers_with_the_same_path_share_one_core_and_keep_their_own_next_hop():
    rib, _ = loaded_rib()
    a = rib.lookup(R1, V4, "10.1.2.3").attributes
    b = rib.lookup(R2, V4, "10.1.2.3").attributes
    assert a is not b
    assert a.core is b.core
    assert a.as_path is b.as_path
    assert (a.next_hop, b.next_hop) == ("192.0.2.101", "192.0.2.102")
    assert (a.local_pref, b.local_pref) == (None, 200)
    assert (a.cluster_list, b.cluster_list) == (("10.0.1.9",), ("10.0.2.9",))
    assert a.origin_as == b.origin_as == 64500 and a.peer_as == b.peer_as == 3356
    assert a.communities is b.communities == ((3356 << 16) | 901,)
    # 4 per-router sets over 2 shared cores.
    assert (len(rib.interner), rib.interner.cores()) == (4, 2)


def test_routers_with_their_own_communities_still_share_the_core():
    """A region tag of each router's own: communities are per-router values."""
    interner = AttributeInterner()
    parser = ExabgpParser(interner)
    (x,) = parser.parse(line(R1, ["10.0.0.0/8"], (3356, 1299, 64500), "192.0.2.1"))
    (y,) = parser.parse(
        line(R2, ["10.0.0.0/8"], (3356, 1299, 64500), "192.0.2.2", communities=((1, 2),))
    )
    assert x.attributes.core is y.attributes.core
    assert (x.attributes.communities, y.attributes.communities) == (
        ((3356 << 16) | 901,),
        ((1 << 16) | 2,),
    )


def test_cores_that_differ_beyond_the_path_share_the_as_path():
    interner = AttributeInterner()
    a = interner.intern((((AS_SEQUENCE, (3356, 64500)),), "igp", "h", None, 10, (), (), (), "", (),
                         False, ""))  # fmt: skip
    b = interner.intern((((AS_SEQUENCE, (3356, 64500)),), "igp", "h", None, 20, (), (), (), "", (),
                         False, ""))  # fmt: skip
    assert a.core is not b.core and (a.med, b.med) == (10, 20)
    assert a.as_path is b.as_path


def test_withdraw_replace_and_purge_of_one_router_leave_the_other_its_shared_routes():
    rib, parser = loaded_rib()
    shared = rib.lookup(R2, V4, "10.1.2.3").attributes.core
    rib.apply(RoutesWithdrawn(R1, V4, ("10.1.0.0/16",), None))
    assert rib.lookup(R1, V4, "10.1.2.3").prefix == "10.0.0.0/8"
    assert rib.lookup(R2, V4, "10.1.2.3").prefix == "10.1.0.0/16"
    # R1 replaces its route with another path: R2 keeps the shared one.
    feed(rib, parser, line(R1, ["10.0.0.0/8"], (6939, 64500), "192.0.2.101"))
    assert rib.lookup(R1, V4, "10.9.9.9").attributes.as_path == ((AS_SEQUENCE, (6939, 64500)),)
    assert rib.lookup(R2, V4, "10.9.9.9").attributes.core is shared
    # R1's session goes down: purged; R2 answers as before, next hop its own.
    rib.apply(SessionState(R1, "down", reason="test"))
    drain(rib)
    assert rib.lookup(R1, V4, "10.9.9.9") is None
    b = rib.lookup(R2, V4, "10.9.9.9").attributes
    assert (b.core, b.next_hop) == (shared, "192.0.2.102")


def test_stale_routes_keep_their_sets_while_the_other_router_shares_the_core():
    rib, parser = loaded_rib()
    rib.stale_hold_time = 60.0
    before = rib.lookup(R1, V4, "10.1.2.3").attributes
    rib.apply(SessionState(R1, "down", reason="test"))
    rib.collect_garbage()
    m = rib.lookup(R1, V4, "10.1.2.3")
    assert m.stale and m.attributes is before and m.attributes.next_hop == "192.0.2.101"
    # The session is back and re-announces the same path: the same set again.
    rib.apply(SessionState(R1, "up"))
    feed(rib, parser, line(R1, ["10.1.0.0/16"], (3356, 1299, 64500), "192.0.2.101"))
    again = rib.lookup(R1, V4, "10.1.2.3")
    assert not again.stale and again.attributes is before


def test_garbage_collection_drops_unused_sets_then_cores_no_router_uses():
    rib, _ = loaded_rib()
    interner = rib.interner
    shared = rib.lookup(R2, V4, "11.0.0.1").attributes.core
    rib.apply(RoutesWithdrawn(R1, V4, ("11.0.0.0/8",), None))
    rib.collect_garbage()
    # R1's set on that core is gone, the core stays: R2 still uses it.
    assert (len(interner), interner.cores()) == (3, 2)
    assert rib.lookup(R2, V4, "11.0.0.1").attributes.core is shared
    del shared
    rib.apply(RoutesWithdrawn(R2, V4, ("11.0.0.0/8",), None))
    rib.collect_garbage()
    assert (len(interner), interner.cores()) == (2, 1)
    for r in (R1, R2):
        rib.apply(RoutesWithdrawn(r, V4, ("10.0.0.0/8", "10.1.0.0/16"), None))
    rib.collect_garbage()
    assert (len(interner), interner.cores()) == (0, 0)


def test_a_set_interned_again_after_collection_is_rebuilt_equal():
    rib, parser = loaded_rib()
    for r in (R1, R2):
        rib.apply(RoutesWithdrawn(r, V4, ("10.0.0.0/8", "10.1.0.0/16", "11.0.0.0/8"), None))
    rib.collect_garbage()
    feed(rib, parser, line(R2, ["10.0.0.0/8"], (3356, 1299, 64500), "192.0.2.102"))
    b = rib.lookup(R2, V4, "10.0.0.1").attributes
    assert (b.next_hop, b.as_path, b.origin_as) == (
        "192.0.2.102",
        ((AS_SEQUENCE, (3356, 1299, 64500)),),
        64500,
    )
    assert (len(rib.interner), rib.interner.cores()) == (1, 1)


def test_a_core_with_more_sets_than_a_scan_takes_still_finds_and_forgets_each(monkeypatch):
    """Past SCAN_VARIANTS sets on one core (a peer sending endless variants of
    one path), further sets are found by a digest of their row, not a longer scan."""
    import ribd.interner

    monkeypatch.setattr(ribd.interner, "SCAN_VARIANTS", 4)
    interner = AttributeInterner()
    path = ((AS_SEQUENCE, (3356, 64500)),)

    def row(pref):
        return (path, "igp", "192.0.2.1", pref, None, (), (), (), "", (), False, "")

    sets = [interner.intern(row(1000 + i)) for i in range(12)]
    assert len({id(s) for s in sets}) == 12 and len(interner) == 12
    assert interner.cores() == 1 and len(interner._overflow) == 8
    assert [interner.intern(row(1000 + i)) for i in range(12)] == sets
    assert [interner.find(row(1000 + i)) for i in range(12)] == sets
    del sets
    interner.collect_unused(set())
    assert (len(interner), interner.cores(), len(interner._overflow)) == (0, 0, 0)


def test_cores_whose_hashes_collide_stay_distinct_and_are_keyed_by_digest():
    """Cores are looked up by ``hash()`` of their fields, which a peer can make
    collide (an int hashes to itself modulo 2**61 - 1). A core under a hash
    another core holds is compared, then keyed by its digest: colliding cores
    never merge, never make a lookup scan, and go when no route uses them."""
    modulus = (1 << 61) - 1
    same = [7 + j * modulus for j in range(7)]  # within 64 bits: orjson's range
    paths = [((AS_SEQUENCE, (3356, a, b)),) for a in same for b in same]
    assert len({hash(p) for p in paths}) == 1  # all 49 collide

    def row(path, hop="192.0.2.1"):
        return (path, "igp", hop, None, None, (), (), (), "", (), False, "")

    interner = AttributeInterner()
    sets = [interner.intern(row(p)) for p in paths]
    assert [s.as_path for s in sets] == paths  # none merged with another
    assert interner.cores() == 49 and len({id(s.core) for s in sets}) == 49
    # One core under the hash, the other 48 each under its own 20-byte digest.
    keys = list(interner._cores)
    assert sum(type(k) is int for k in keys) == 1
    assert sorted({len(k) for k in keys if type(k) is bytes}) == [20]
    assert [interner.intern(row(p)) for p in paths] == sets
    assert [interner.find(row(p)) for p in paths] == sets
    # Another router's sets land on the same (colliding) cores.
    others = [interner.intern(row(p, "192.0.2.2")) for p in paths]
    assert [o.core for o in others] == [s.core for s in sets] and len(interner) == 98
    # The core under the hash goes first: the others are still found, not rebuilt.
    first = sets[0]
    del sets, others
    interner.collect_unused({id(first)})
    assert (len(interner), interner.cores()) == (1, 1)
    assert interner.intern(row(paths[0])) is first
    again = [interner.intern(row(p)) for p in paths[1:]]
    assert interner.cores() == 49 and [a.as_path for a in again] == paths[1:]
    del first, again
    interner.collect_unused(set())
    assert (len(interner), interner.cores(), interner._crowd) == (0, 0, set())


def test_a_loaded_core_that_collides_with_a_held_one_is_held_apart():
    """Snapshot loads hand cores with their hash (``load_core``): an equal core
    is shared, a colliding unequal one kept apart, as ``intern`` does."""
    from ribd.interner import core_key

    def row(asn, hop):
        return (
            ((AS_SEQUENCE, (3356, asn)),),
            "igp",
            hop,
            None,
            None,
            (),
            (),
            (),
            "",
            (),
            False,
            "",
        )

    collides = 7 + (1 << 61) - 1
    interner = AttributeInterner()
    held = interner.intern(row(7, "192.0.2.1"))
    equal = AttributeInterner().intern(row(7, "192.0.2.9")).core
    other = AttributeInterner().intern(row(collides, "192.0.2.9")).core
    h = core_key(row(7, ""))
    assert h == core_key(row(collides, ""))
    assert interner.load_core(h, equal)[0] is held.core
    assert interner.load_core(h, other)[0] is other and interner.cores() == 2
    assert interner.load_core(h, other)[0] is other and interner.cores() == 2
