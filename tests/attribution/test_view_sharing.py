"""Compiled views of routers with the same prefixes share their arrays, and
still answer each router's own routes (attribution.viewbuild.build_view)."""

from __future__ import annotations

import ipaddress

import numpy as np

from attribution.fastpath import CompiledViews
from ribd.attributes import AS_SEQUENCE, AttributeInterner
from ribd.events import RoutesAnnounced, SessionState
from ribd.rib import Rib

V4 = "ipv4 unicast"
R1, R2 = "192.0.2.1", "192.0.2.2"
PREFIXES = [f"10.{i}.0.0/16" for i in range(40)] + ["10.0.0.0/8", "0.0.0.0/0"]


def row(asns, next_hop):
    path = ((AS_SEQUENCE, asns),)
    return (path, "igp", next_hop, None, None, (), (), (), "", (), False, "")


def two_routers():
    """R1 and R2 hold the same prefixes, each with its own next hop; R2 sends
    10.7.0.0/16 through another AS."""
    rib = Rib()
    interner = rib.interner
    for r, hop in ((R1, "192.0.2.101"), (R2, "192.0.2.102")):
        rib.apply(SessionState(r, "up"))
        for k in range(4):
            chosen = tuple(PREFIXES[k::4])
            attrs = interner.intern(row((3356, 64500 + k), hop))
            rib.apply(RoutesAnnounced(r, V4, chosen, None, attrs))
    rib.apply(
        RoutesAnnounced(R2, V4, ("10.7.0.0/16",), None, interner.intern(row((174, 64999), "x")))
    )
    views = CompiledViews(rib)
    with rib.lock:
        views.want_missing([])
        views._wanted.update({(R1, V4), (R2, V4)})
    assert views.refresh() == 2
    by = {v.neighbor: v for v in views.current()}
    return rib, views, by[R1], by[R2]


def answer(view, address):
    key = np.array([int(ipaddress.ip_address(address))], dtype=np.uint32)
    i = int(view.lookup(key)[0])
    m = view.route(i)
    return m.prefix, m.attributes.next_hop, int(view.origin_as[i]), int(view.peer_as[i])


def test_views_of_routers_with_the_same_prefixes_share_their_arrays():
    _, _, a, b = two_routers()
    for name in ("starts", "leaf", "nets", "lengths", "answers"):
        assert getattr(a, name) is getattr(b, name), name
    # R2's other path for one prefix: its answers are its own.
    assert a.answer is not b.answer and not np.array_equal(a.answer, b.answer)
    # Constant columns take no memory per route; answers are 2-byte ids into
    # one table of distinct rows.
    assert a.path_ids.strides == (0,)
    assert a.answer.dtype == np.uint16 and len(a.answers) < len(a)


def test_shared_views_answer_each_routers_own_routes():
    rib, _, a, b = two_routers()
    for address in ("10.3.1.1", "10.7.0.1", "10.200.0.1", "11.0.0.1"):
        for view, r in ((a, R1), (b, R2)):
            m = rib.lookup(r, V4, address)
            origin = 0 if m.length == 0 else m.attributes.origin_as  # a default route: none
            want = (m.prefix, m.attributes.next_hop, origin, m.attributes.peer_as)
            assert answer(view, address) == want, (r, address)
    assert answer(a, "10.7.0.1")[1:3] == ("192.0.2.101", 64503)
    assert answer(b, "10.7.0.1")[1:3] == ("x", 64999)


def test_a_patched_view_leaves_the_views_it_shared_with_unchanged():
    rib, views, _, b = two_routers()
    before = {name: getattr(b, name).copy() for name in ("starts", "leaf", "nets", "origin_as")}
    other = AttributeInterner().intern(row((6939, 65123), "192.0.2.101"))
    rib.apply(RoutesAnnounced(R1, V4, ("10.3.0.0/16", "10.3.3.0/24"), None, other))
    views._wanted.add((R1, V4))
    assert views.refresh() == 1 and views.patches == 1
    patched = next(v for v in views.current() if v.neighbor == R1)
    assert answer(patched, "10.3.3.3")[:3] == ("10.3.3.0/24", "192.0.2.101", 65123)
    assert answer(patched, "10.3.1.1")[2] == 65123
    for name, column in before.items():
        assert np.array_equal(getattr(b, name), column), name
    assert answer(b, "10.3.1.1")[:3] == ("10.3.0.0/16", "192.0.2.102", 64503)


def test_a_view_moved_onto_the_shared_axis_keeps_its_route_numbers_in_streams():
    """Patching R1 moves R2's view onto the new common axis: a new object
    with the same routes. A stream's route dictionary keeps its numbers for
    it (no route sent twice) and its answers do not change."""
    from attribution.wire import RouteEncoder, WireRoutes

    rib, views, _, b = two_routers()
    routes = WireRoutes(RouteEncoder(), 64500, False)
    leaves = b.lookup(np.array([int(ipaddress.ip_address("10.3.1.1"))], dtype=np.uint32))
    first = routes.from_view("r2", b, leaves)
    sent = routes.take_new()[1]
    assert len(sent) == 1
    other = AttributeInterner().intern(row((6939, 65123), "192.0.2.101"))
    rib.apply(RoutesAnnounced(R1, V4, ("10.3.3.0/24",), None, other))  # a new bound
    views._wanted.add((R1, V4))
    views.refresh()
    moved = next(v for v in views.current() if v.neighbor == R2)
    patched = next(v for v in views.current() if v.neighbor == R1)
    assert moved is not b and moved.same_routes(b) and moved.starts is patched.starts
    again = moved.lookup(np.array([int(ipaddress.ip_address("10.3.1.1"))], dtype=np.uint32))
    assert routes.from_view("r2", moved, again).tolist() == first.tolist()
    assert routes.take_new()[1] == []
    assert answer(moved, "10.3.1.1") == answer(b, "10.3.1.1")


def test_a_path_change_keeps_the_routers_leaf_shared():
    """A prefix whose route changes (not added, not withdrawn) keeps its
    route number, new values in place: the patched router's leaf stays the
    one all routers share, so churn that moves paths costs no leaf per
    router and a spread batch reads one leaf."""
    rib, views, a, b = two_routers()
    other = AttributeInterner().intern(row((6939, 65123), "192.0.2.101"))
    rib.apply(RoutesAnnounced(R1, V4, ("10.3.0.0/16", "10.0.0.0/8"), None, other))
    views._wanted.add((R1, V4))
    assert views.refresh() == 1 and views.patches == 1
    by = {v.neighbor: v for v in views.current()}
    patched, moved = by[R1], by[R2]
    assert patched.leaf is moved.leaf and patched.starts is moved.starts
    assert len(patched) == len(a)  # nothing appended
    assert answer(patched, "10.3.1.1") == ("10.3.0.0/16", "192.0.2.101", 65123, 6939)
    assert answer(patched, "10.99.0.1") == ("10.0.0.0/8", "192.0.2.101", 65123, 6939)
    assert answer(moved, "10.3.1.1") == answer(b, "10.3.1.1")
    for address in ("10.3.1.1", "10.7.0.1", "10.99.0.1", "11.0.0.1"):
        m = rib.lookup(R1, V4, address)
        origin = 0 if m.length == 0 else m.attributes.origin_as
        assert answer(patched, address) == (
            m.prefix,
            m.attributes.next_hop,
            origin,
            m.attributes.peer_as,
        )
