"""One address in one router's RIB -> the answer tuple, and next-hop path choice.

The rules that turn a route into AS numbers and provenance (empty path ->
local, default route -> default, AS_SET handling) live here once; the bulk
path uses them for addresses its compiled view cannot answer, the one-flow
path and explain for everything. A flow's BGP next hop picks the dst path
among a prefix's ADD-PATH paths. Callers hold the RIB lock.
"""

from __future__ import annotations

import functools

from attribution.addresses import pack_address
from attribution.answers import BGP, DEFAULT, LOCAL, NONE, RouteDictionary
from attribution.routing import Routing
from ribd.attributes import PathAttributes
from ribd.rib import Rib, RouteMatch

# (origin, peer, origin prov, peer prov, route index, stale, origin from AS_SET)
Answer = tuple[int, int, int, int, int, bool, bool]
NO_ANSWER: Answer = (0, 0, NONE, NONE, -1, False, False)


def answer(
    rib: Rib,
    neighbor: str,
    family: str,
    key: bytes,
    routing: Routing,
    routes: RouteDictionary | None,
) -> Answer:
    """(origin, peer, origin prov, peer prov, route index, stale, origin from AS_SET)."""
    return answer_of(rib.lookup(neighbor, family, key), neighbor, routing, routes)


def answer_by_next_hop(
    rib: Rib,
    neighbor: str,
    family: str,
    key: bytes,
    next_hop: bytes,
    routing: Routing,
    routes: RouteDictionary | None,
) -> tuple[Answer, bool]:
    """``answer`` from the path whose next hop is the flow's, and whether
    none of the prefix's paths had it (then: the best path)."""
    m, mismatch = path_by_next_hop(rib, neighbor, family, key, next_hop)
    return answer_of(m, neighbor, routing, routes), mismatch


def path_by_next_hop(
    rib: Rib, neighbor: str, family: str, key: bytes, next_hop: bytes
) -> tuple[RouteMatch | None, bool]:
    """The longest-prefix match's path whose BGP next hop is ``next_hop``
    (16 bytes); (best path, True) when it has several and none has it.
    A prefix with one path answers with it, unflagged: there is no choice
    to make, and a next hop rewritten on the way (next-hop-self, route
    reflectors) is no sign of a wrong answer. Caller holds the RIB lock."""
    m = rib.lookup(neighbor, family, key)
    if m is None or _same_hop(m, next_hop):
        return m, False
    paths = rib.exact(neighbor, family, m.prefix)
    if len(paths) < 2:
        return m, False
    for p in paths:
        if _same_hop(p, next_hop):
            return p, False
    return m, True


def answer_of(
    m: RouteMatch | None,
    neighbor: str,
    routing: Routing,
    routes: RouteDictionary | None,
) -> Answer:
    """The answer tuple of route ``m`` (None: no route) of ``neighbor``."""
    if m is None:
        return NO_ANSWER
    a: PathAttributes = m.attributes
    idx = -1
    if routes is not None:
        idx = routes.from_match(routing.names.get(neighbor, neighbor), m)
    peer = a.peer_as_highest if routing.highest_as_set else a.peer_as
    if m.length == 0:
        return (0, peer, DEFAULT, DEFAULT, idx, m.stale, False)
    if a.empty_path:
        return (routing.local_as, 0, LOCAL, LOCAL, idx, m.stale, False)
    origin = a.origin_as_highest if routing.highest_as_set else a.origin_as
    return (origin, peer, BGP, BGP, idx, m.stale, a.origin_from_set)


@functools.lru_cache(maxsize=4096)
def packed_hop(text: str) -> bytes:
    """A route's next hop text as a flow carries it (16 octets, IPv4 mapped);
    b"" for one that is not an address (matches no flow's)."""
    try:
        return pack_address(text)
    except ValueError:
        return b""


def _same_hop(m: RouteMatch, next_hop: bytes) -> bool:
    return packed_hop(m.attributes.next_hop) == next_hop
