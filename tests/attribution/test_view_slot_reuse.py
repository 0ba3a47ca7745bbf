"""A view must not come back to use after its router's slots were released and
allocated again: the sweep that clears a released slot logs no change, so a view
built over the slot's earlier routes cannot tell which of them are gone."""

from __future__ import annotations

from attribution.resolver import Resolver, pack_address
from ribd.events import EndOfRib, RoutesAnnounced, SessionState
from ribd.rib import Rib
from tests.attribution.helpers import EDGE1, build_world

V4 = "ipv4 unicast"
GONE = ("172.16.0.0/12", "0.0.0.0/0")  # edge1 does not send these again


def flap(rib: Rib, keep: list) -> None:
    """edge1's session lost (routes kept stale), back, its table re-sent less GONE,
    End-of-RIB; the stale slot swept."""
    rib.apply(SessionState(EDGE1, "down"))
    rib.apply(SessionState(EDGE1, "up"))
    for prefix, a in keep:
        rib.apply(RoutesAnnounced(EDGE1, V4, (prefix,), None, a))
    rib.apply(EndOfRib(EDGE1, V4))
    while rib.maintenance():
        pass


def test_a_view_built_before_two_flaps_does_not_answer_a_route_swept_since():
    rib, config = build_world()
    rib.stale_hold_time = 600.0
    resolver = Resolver(rib, config, build_views_inline=False)
    exact = Resolver(rib, config, build_views_inline=False)
    resolver.views.usable(EDGE1, V4)
    assert resolver.views.refresh() == 1
    fs = rib.routers[EDGE1].families[V4]
    built_over = (fs.slot, fs.stale_slot)
    keep = [(r.prefix, r.attributes) for r in rib.routes(EDGE1, V4) if r.prefix not in GONE]
    # Two flaps before the maintenance gets to the view (builds wait while
    # tables stream in, up to VIEWS_WAIT_MAX): no lookup asks meanwhile.
    flap(rib, keep)
    flap(rib, keep)
    assert (fs.slot, fs.stale_slot) == built_over  # the slot came back
    assert not set(GONE) & {r.prefix for r in rib.routes(EDGE1, V4)}
    src = pack_address("10.0.0.1")
    dst = pack_address("172.16.1.1")
    a = resolver.resolve_columns(["127.0.1.1"], [0], src, dst)
    b = exact.resolve_columns(["127.0.1.1"], [0], src, dst)
    assert list(a.dst_origin_as) == list(b.dst_origin_as)
