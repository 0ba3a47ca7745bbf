"""The bulk path: one batch's answer columns, filled group by group.

A batch is answered per (router, family) group: addresses the router's
compiled view can answer are gathered from it in numpy, the rest (prefixes
changed since the view was built, long IPv6 prefixes, flows with a next hop)
take exact RIB lookups (``batch_exact``), read a chunk of flows at a time
under the RIB lock so the feed is never held up long. The answer columns are
views into one RECORD_DTYPE array, so the packed answer needs no copy.
``resolver.Resolver.resolve_columns`` validates the batch and drives this.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from attribution.addresses import NO_NEXT_HOP, V4_ZERO
from attribution.answers import (
    FALLBACK,
    LOCAL,
    NONE,
    RECORD_DTYPE,
    BatchRoutes,
    Resolution,
    RouteDictionary,
)
from attribution.batch_exact import CHUNK as CHUNK  # re-exported (resolver)
from attribution.batch_exact import ExactAnswers
from attribution.batch_plan import Group as Group  # re-exported (resolver)
from attribution.batch_views import lookup_views
from attribution.routing import Routing

if TYPE_CHECKING:
    from attribution.resolver import Resolver


class Batch(ExactAnswers):
    """Answer columns of one batch being resolved (numpy), and its dictionaries."""

    def __init__(self, n: int, routing: Routing, routes: RouteDictionary | None) -> None:
        self.routing = routing
        self.routes = routes
        self.rec = rec = np.zeros(n, dtype=RECORD_DTYPE)
        self.router = rec["router"]
        self.so = rec["src_origin_as"]
        self.sp = rec["src_peer_as"]
        self.do = rec["dst_origin_as"]
        self.dp = rec["dst_peer_as"]
        self.prov = rec["provenance"]  # (n, 4): s_origin, s_peer, d_origin, d_peer
        self.flags = rec["flags"]
        self.sroute = rec["src_route"]
        self.droute = rec["dst_route"]
        self.override = rec["override"]
        for column in (self.router, self.sroute, self.droute, self.override):
            column.fill(-1)
        self.prov.fill(NONE)
        self.routers: dict[str, int] = {}
        self.overrides: dict[str, int] = {}
        self.next_hops: np.ndarray | None = None  # V16 per flow, when any flow has one
        self._queued = []  # exact lookups of the groups (``batch_exact``), answered together

    def router_index(self, name: str) -> int:
        return self.routers.setdefault(name, len(self.routers))

    def answer_groups(
        self,
        resolver: Resolver,
        order: np.ndarray,
        groups: list[Group],
        s_words: np.ndarray,
        d_words: np.ndarray,
    ) -> None:
        """Answer the flows of ``groups`` (slices of ``order``) from their routers.

        A batch spread over many exporters used to pay a pass over the whole
        batch, a lock round and a dozen numpy calls per (exporter, family)
        group: 0.23x of one router's rate at 64 routers (issue 11). Here the
        keys are laid out once so that each group's dst and src keys are one
        contiguous run (``batch_views.lookup_views``); a group costs a sort, one
        ``searchsorted`` and a few ``take`` into preallocated columns, and
        everything else (provenance, local AS, flags, scattering back to
        flow order) is done once per batch. Exact lookups (changed prefixes,
        long IPv6, next hops, no view) are queued per group and side, then
        read for every group of a family at once (``batch_exact``); routes are
        numbered in the dictionary as met (views' per group, then exact ones).
        """
        ng = len(order)
        if not ng:
            return
        starts = np.fromiter((g.start for g in groups), dtype=np.int64, count=len(groups))
        stops = np.fromiter((g.stop for g in groups), dtype=np.int64, count=len(groups))
        sizes = stops - starts
        at = np.arange(ng, dtype=np.int64)
        pos_dst = at + np.repeat(starts, sizes)  # group g: dst keys at [2s, s+e), src at [s+e, 2e)
        pos_src = at + np.repeat(stops, sizes)
        k32 = k64 = None
        if any(g.v4 for g in groups):
            k32 = np.empty(2 * ng, dtype=np.uint32)
            k32[pos_dst] = d_words[order, 1] & np.uint64(0xFFFFFFFF)
            k32[pos_src] = s_words[order, 1] & np.uint64(0xFFFFFFFF)
        if not all(g.v4 for g in groups):
            k64 = np.empty(2 * ng, dtype=np.uint64)
            k64[pos_dst] = d_words[order, 0]
            k64[pos_src] = s_words[order, 0]
        cols = lookup_views(groups, k32, k64, 2 * ng)
        leaf = cols[0]
        # Per group, in one pass: its router, whether that is a fallback, and
        # "on the view" for every key of a group that has one (repeated per
        # flow below); the groups with something more to do than the view's
        # answers (exact lookups, routes, next hops) are kept for the loop
        # after it.
        names = self.routing.names
        router_index = self.router_index
        route = np.full(2 * ng, -1, dtype=np.int32) if self.routes is not None else None
        plain = route is None and self.next_hops is None
        group_router, group_fallback, group_fast = [], [], []
        work = []
        for g in groups:
            n = g.neighbor
            usable = g.usable
            group_fast.append(usable is not None)
            if n is None:
                group_router.append(-1)
                group_fallback.append(False)
                continue
            group_router.append(router_index(names.get(n, n)))
            group_fallback.append(g.is_fallback)
            if (
                plain
                and usable is not None
                and not len(usable[1].starts)
                and (g.v4 or not len(usable[0].long_v6))
            ):
                continue  # every flow on the view: done above
            work.append(g)
        router = np.repeat(np.array(group_router, dtype=np.int32), sizes)
        fallback = np.repeat(np.array(group_fallback, dtype=bool), sizes)
        fast = np.repeat(np.array(group_fast, dtype=bool), 2 * sizes)  # answered by the view here
        for g in work:
            s, e = g.start, g.stop
            name = names.get(g.neighbor, g.neighbor)
            idx = order[s:e]
            seg = slice(2 * s, 2 * e)
            nh = None  # flows with a next hop: their dst path is chosen by it, exactly
            if self.next_hops is not None:
                nh = self.next_hops[idx] != np.void(NO_NEXT_HOP)
                if nh.any():
                    at = idx[nh]
                    hops = self.next_hops[at]
                    self.exact_later(g.neighbor, g.family, g.v4, at, d_words[at], True, hops)
                else:
                    nh = None
            view = None
            every = False  # every flow of the group on the view
            if g.usable is not None:
                view, changed = g.usable
                every = True
                if len(changed.starts):  # an address in a changed prefix: exact
                    keys = (k32 if g.v4 else k64)[seg]  # type: ignore[index]
                    fast[seg] = ~changed.mask(keys)
                    every = False
                if not g.v4 and len(view.long_v6):
                    fast[seg] &= ~np.isin(k64[seg], view.long_v6)  # type: ignore[index]
                    every = False
                if nh is not None:
                    fast[2 * s : s + e][nh] = False
                    every = False
            if every and route is None:
                continue
            for dst, side, words in (
                (True, slice(2 * s, s + e), d_words),
                (False, slice(s + e, 2 * e), s_words),
            ):
                on_view = fast[side]
                if route is not None and view is not None:
                    own = view.own(leaf[side])  # holes of a family numbering: the router's route
                    hit = on_view & (own >= 0)
                    if hit.any():
                        route[side][hit] = self.routes.from_view(name, view, own[hit])  # type: ignore[union-attr]
                if every:
                    continue
                slow = ~on_view
                if nh is not None and dst:
                    slow &= ~nh
                if slow.any():
                    fi = idx[slow]
                    self.exact_later(g.neighbor, g.family, g.v4, fi, words[fi], dst)
        self.answer_exact(resolver)
        self.router[order] = router
        self.flags[order[fallback]] |= FALLBACK
        self._scatter(order, fast, *cols, route, pos_dst, pos_src)

    def _scatter(
        self,
        order: np.ndarray,
        fast: np.ndarray,
        leaf: np.ndarray,
        aid: np.ndarray,
        table: dict[str, np.ndarray] | None,
        route: np.ndarray | None,
        pos_dst: np.ndarray,
        pos_src: np.ndarray,
    ) -> None:
        """The view answers (group layout) into the flows' columns, once per
        batch: each side's answer rows read from the batch's table."""
        for dst, pos in ((True, pos_dst), (False, pos_src)):
            on = fast[pos]
            if not on.any():
                continue
            p = pos[on]
            route_p = route[p] if route is not None else None
            self.store_view_answers(order[on], dst, leaf[p], aid[p], table, route_p)

    def store_view_answers(
        self,
        fi: np.ndarray | slice,
        dst: bool,
        leaf: np.ndarray,
        aid: np.ndarray,
        table: dict[str, np.ndarray] | None,
        route: np.ndarray | None = None,
    ) -> None:
        """One side of flows ``fi`` from their view leaf (-1: no route) and
        answer id, the rows read from ``table`` (``AnswerTable.columns``)."""
        ok = leaf >= 0
        n = len(leaf)
        if table is None or not ok.any():
            zero = np.zeros(n, dtype=np.uint32)
            no = np.zeros(n, dtype=bool)
            prov = np.full(n, NONE, dtype=np.uint8)
            origin, peer, stale, from_set = zero, zero.copy(), no, no
        else:
            highest = self.routing.highest_as_set
            o = table["origin_as_highest" if highest else "origin_as"].take(aid, mode="wrap")
            origin = np.where(ok, o, np.uint32(0))
            prov = np.where(ok, table["provenance"].take(aid, mode="wrap"), np.uint8(NONE))
            origin[prov == LOCAL] = self.routing.local_as
            pe = table["peer_as_highest" if highest else "peer_as"].take(aid, mode="wrap")
            peer = np.where(ok, pe, np.uint32(0))
            stale = ok & table["stale"].take(aid, mode="wrap")
            from_set = ok & table["from_set"].take(aid, mode="wrap")
        self._store(fi, dst, origin, peer, prov, stale, from_set, route)

    def finish(self) -> Resolution:
        return Resolution(
            routers=list(self.routers),
            router=self.router,
            src_origin_as=self.so,
            src_peer_as=self.sp,
            dst_origin_as=self.do,
            dst_peer_as=self.dp,
            provenance=self.prov.tobytes(),
            flags=self.flags,
            routes=self.routes.routes if isinstance(self.routes, BatchRoutes) else [],
            src_route=self.sroute,
            dst_route=self.droute,
            overrides=list(self.overrides),
            override=self.override,
            records=self.rec,
        )


def next_hop_column(next_hop: bytes | None, n: int) -> np.ndarray | None:
    """V16 per flow, 0.0.0.0 and :: as none; None when no flow has a next hop."""
    if not next_hop or not n:
        return None
    hops = np.frombuffer(next_hop, dtype="V16").copy()
    hops[hops == np.void(V4_ZERO)] = np.void(NO_NEXT_HOP)
    if (hops == np.void(NO_NEXT_HOP)).all():
        return None
    return hops
