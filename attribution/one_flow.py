"""The one-flow path: one record answered with plain RIB lookups, no numpy.

The one-flow RPC is about latency, not throughput: building columns and
consulting compiled views would cost more than the lookups themselves. It
follows the same rules as the bulk path (``batch``), through the same router
choice (``routing``), lookups (``lookup``) and overrides (``overriding``); a
test compares the two paths' answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from attribution.addresses import V4_MAPPED
from attribution.answers import (
    DEFAULT,
    DST_NEXT_HOP_MISMATCH,
    DST_ORIGIN_AS_SET,
    DST_STALE,
    FALLBACK,
    NONE,
    SRC_ORIGIN_AS_SET,
    SRC_STALE,
    SRC_UNROUTED,
    BatchRoutes,
    FlowAnswer,
)
from attribution.ix_resolve import ix_answer
from attribution.lookup import answer, answer_by_next_hop
from attribution.overriding import override_answer
from attribution.records import BadRecord, next_hop_of, validate_row
from attribution.routing import chain_for, pick_router, unknown_exporter
from ribd.events import IPV4_UNICAST, IPV6_UNICAST

if TYPE_CHECKING:
    from attribution.resolver import Resolver


def resolve_one(resolver: Resolver, flow: dict) -> FlowAnswer:
    """One flow record -> its answer (``Resolver.resolve_one``); counted."""
    try:
        exporter, s16, d16, in_if, mac = validate_row(flow)
        nh = next_hop_of(flow)
    except BadRecord as exc:
        resolver.count(0, (exc.code,))
        return FlowAnswer(error=(exc.code, exc.message))
    v4 = s16[:12] == V4_MAPPED
    if v4 != (d16[:12] == V4_MAPPED):
        resolver.count(0, ("family_mismatch",))
        return FlowAnswer(error=("family_mismatch", "src_addr and dst_addr are not of one family"))
    routing = resolver.routing
    family = IPV4_UNICAST if v4 else IPV6_UNICAST
    out = FlowAnswer()
    chain, own = chain_for(routing, resolver.rib.routers, exporter)
    rib = resolver.rib
    with rib.lock:
        neighbor, is_fallback = pick_router(rib.routers, chain, own, family)
        if neighbor is not None:
            routes = BatchRoutes()
            dkey = d16[12:] if v4 else d16
            mismatch = False
            if nh is None:
                d = answer(rib, neighbor, family, dkey, routing, routes)
            else:
                d, mismatch = answer_by_next_hop(rib, neighbor, family, dkey, nh, routing, routes)
            s = answer(rib, neighbor, family, s16[12:] if v4 else s16, routing, routes)
    if neighbor is None and not own:
        error = unknown_exporter(exporter, family, routing)
        resolver.count(0, (error[0],))
        return FlowAnswer(error=error)
    if neighbor is not None:
        out.router = routing.names.get(neighbor, neighbor)
        out.dst_origin_as, out.dst_peer_as = d[0], d[1]
        out.src_origin_as, out.src_peer_as = s[0], s[1]
        out.provenance = [s[2], s[2], d[2], d[2]]
        flags = FALLBACK if is_fallback else 0
        if d[5]:
            flags |= DST_STALE
        if s[5]:
            flags |= SRC_STALE
        if d[6]:
            flags |= DST_ORIGIN_AS_SET
        if s[6]:
            flags |= SRC_ORIGIN_AS_SET
        if s[2] in (NONE, DEFAULT):
            flags |= SRC_UNROUTED
        if mismatch:
            flags |= DST_NEXT_HOP_MISMATCH
        out.flags = flags
        out.dst_route = routes.routes[d[4]] if d[4] >= 0 else None
        out.src_route = routes.routes[s[4]] if s[4] >= 0 else None
    override_answer(out, routing, exporter, in_if, mac)
    if routing.ix is not None:
        ix_answer(out, routing.ix, exporter, in_if, mac)
    resolver.count(1, ())
    return out
