"""The bulk path: one batch's answer columns, filled group by group.

A batch is answered per (router, family) group: addresses the router's
compiled view can answer are gathered from it in numpy, the rest (prefixes
changed since the view was built, long IPv6 prefixes, flows with a next hop)
take exact RIB lookups, memoised per batch and read under the RIB lock one
chunk at a time so the feed is never held up long. The answer columns are
views into one RECORD_DTYPE array, so the packed answer needs no copy.
``resolver.Resolver.resolve_columns`` validates the batch and drives this.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from attribution.addresses import NO_NEXT_HOP, V4_ZERO
from attribution.answers import (
    DEFAULT,
    DST_NEXT_HOP_MISMATCH,
    DST_ORIGIN_AS_SET,
    DST_STALE,
    LOCAL,
    NONE,
    RECORD_DTYPE,
    SRC_ORIGIN_AS_SET,
    SRC_STALE,
    SRC_UNROUTED,
    BatchRoutes,
    Resolution,
    RouteDictionary,
)
from attribution.fastpath import CompiledView
from attribution.lookup import answer, answer_by_next_hop
from attribution.routing import Routing

if TYPE_CHECKING:
    from attribution.resolver import Resolver

CHUNK = 2048  # flows resolved per hold of the RIB lock


class Batch:
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
        self.memo: dict[tuple, tuple] = {}
        self.next_hops: np.ndarray | None = None  # V16 per flow, when any flow has one

    def router_index(self, name: str) -> int:
        return self.routers.setdefault(name, len(self.routers))

    def answer_group(
        self,
        resolver: Resolver,
        neighbor: str,
        family: str,
        v4: bool,
        idx: np.ndarray,
        s_words: np.ndarray,
        d_words: np.ndarray,
    ) -> None:
        """Answer flows ``idx`` from ``neighbor``'s RIB.

        The RIB lock is held only to read the change log and for the exact
        lookups; the compiled view is immutable and is read without it.
        """
        if v4:
            skeys = (s_words[idx, 1] & np.uint64(0xFFFFFFFF)).astype(np.uint32)
            dkeys = (d_words[idx, 1] & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        else:
            skeys, dkeys = s_words[idx, 0], d_words[idx, 0]
        with resolver.rib.lock:
            usable = resolver.views.usable(neighbor, family)
        name = self.routing.names.get(neighbor, neighbor)
        d_idx = idx
        if self.next_hops is not None:
            # Flows with a next hop: their dst path is chosen by it, exactly.
            has = self.next_hops[idx] != np.void(NO_NEXT_HOP)
            if has.any():
                self._exact_by_next_hop(resolver, neighbor, family, v4, idx[has], d_words)
                d_idx, dkeys = idx[~has], dkeys[~has]
        # src and dst separately: an address in a changed prefix takes the
        # exact path, the other end of its flow still the compiled view.
        sides = ((True, d_idx, dkeys, d_words), (False, idx, skeys, s_words))
        for dst, fi, keys, words in sides:
            if not len(fi):
                continue
            if usable is None:
                slow = np.ones(len(fi), dtype=bool)
            else:
                view, changed = usable
                slow = changed.mask(keys)
                if not v4 and len(view.long_v6):
                    slow |= np.isin(keys, view.long_v6)
                fast = ~slow
                if fast.any():
                    self._gather(view, name, fi[fast], view.lookup(keys[fast]), dst)
            if slow.any():
                self._exact(resolver, neighbor, family, v4, fi[slow], words[fi[slow]], dst)

    def _exact_by_next_hop(
        self,
        resolver: Resolver,
        neighbor: str,
        family: str,
        v4: bool,
        fi: np.ndarray,
        d_words: np.ndarray,
    ) -> None:
        """dst answers of flows ``fi`` (each with a next hop) from the path
        with that next hop (``lookup.path_by_next_hop``), memoised per batch."""
        raw = d_words[fi].astype(">u8").tobytes()
        hops = self.next_hops[fi].tobytes()  # type: ignore[index]
        answers, mismatch = [], []
        for start in range(0, len(fi), CHUNK):
            with resolver.rib.lock:
                for k in range(start, min(start + CHUNK, len(fi))):
                    key = raw[16 * k + 12 : 16 * k + 16] if v4 else raw[16 * k : 16 * k + 16]
                    hop = hops[16 * k : 16 * k + 16]
                    memo_key = (neighbor, key, hop)
                    a = self.memo.get(memo_key)
                    if a is None:
                        a = self.memo[memo_key] = answer_by_next_hop(
                            resolver.rib, neighbor, family, key, hop, self.routing, self.routes
                        )
                    answers.append(a[0])
                    mismatch.append(a[1])
        self._store_answers(fi, True, answers)
        flagged = fi[np.array(mismatch, dtype=bool)]
        self.flags[flagged] |= DST_NEXT_HOP_MISMATCH

    def _gather(
        self, view: CompiledView, name: str, fi: np.ndarray, leaf: np.ndarray, dst: bool
    ) -> None:
        """Answers of flows ``fi`` from the compiled view (one side)."""
        if not len(view):
            if not dst:
                self.flags[fi] |= SRC_UNROUTED
            return
        ok = leaf >= 0
        lk = np.where(ok, leaf, 0)
        prov = np.where(ok, view.provenance[lk], NONE).astype(np.uint8)
        origins = view.origin_as_highest if self.routing.highest_as_set else view.origin_as
        origin = np.where(ok, origins[lk], 0)
        origin = np.where(prov == LOCAL, self.routing.local_as, origin)
        peers = view.peer_as_highest if self.routing.highest_as_set else view.peer_as
        peer = np.where(ok, peers[lk], 0)
        stale = ok & view.stale[lk]
        from_set = ok & view.from_set[lk]
        route = None
        if self.routes is not None and ok.any():
            route = np.full(len(leaf), -1, dtype=np.int32)
            route[ok] = self.routes.from_view(name, view, leaf[ok])
        self._store(fi, dst, origin, peer, prov, stale, from_set, route)

    def _exact(
        self,
        resolver: Resolver,
        neighbor: str,
        family: str,
        v4: bool,
        fi: np.ndarray,
        words: np.ndarray,
        dst: bool,
    ) -> None:
        """Answers of flows ``fi`` from RIB lookups (one side), memoised per batch."""
        raw = words.astype(">u8").tobytes()  # 16 bytes per flow
        memo = self.memo
        answers = []
        for start in range(0, len(fi), CHUNK):
            with resolver.rib.lock:  # per chunk: the feed is never held up long
                for k in range(start, min(start + CHUNK, len(fi))):
                    key = raw[16 * k + 12 : 16 * k + 16] if v4 else raw[16 * k : 16 * k + 16]
                    a = memo.get((neighbor, key))
                    if a is None:
                        a = memo[(neighbor, key)] = answer(
                            resolver.rib, neighbor, family, key, self.routing, self.routes
                        )
                    answers.append(a)
        self._store_answers(fi, dst, answers)

    def _store_answers(self, fi: np.ndarray, dst: bool, answers: list) -> None:
        """Answers of flows ``fi`` given as ``lookup.Answer`` tuples (one side)."""
        a = np.array(answers, dtype=np.int64).reshape(len(answers), 7)
        self._store(
            fi,
            dst,
            origin=a[:, 0].astype(np.uint32),
            peer=a[:, 1].astype(np.uint32),
            prov=a[:, 2].astype(np.uint8),
            stale=a[:, 5] != 0,
            from_set=a[:, 6] != 0,
            route=a[:, 4].astype(np.int32) if self.routes is not None else None,
        )

    def _store(
        self,
        fi: np.ndarray,
        dst: bool,
        origin: np.ndarray,
        peer: np.ndarray,
        prov: np.ndarray,
        stale: np.ndarray,
        from_set: np.ndarray,
        route: np.ndarray | None,
    ) -> None:
        if dst:
            self.do[fi], self.dp[fi] = origin, peer
            self.prov[fi, 2] = prov
            self.prov[fi, 3] = prov
            self.flags[fi] |= np.where(stale, DST_STALE, 0).astype(np.uint32)
            self.flags[fi] |= np.where(from_set, DST_ORIGIN_AS_SET, 0).astype(np.uint32)
            if route is not None:
                self.droute[fi] = route
        else:
            self.so[fi], self.sp[fi] = origin, peer
            self.prov[fi, 0] = prov
            self.prov[fi, 1] = prov
            self.flags[fi] |= np.where(stale, SRC_STALE, 0).astype(np.uint32)
            self.flags[fi] |= np.where(from_set, SRC_ORIGIN_AS_SET, 0).astype(np.uint32)
            unrouted = (prov == NONE) | (prov == DEFAULT)
            self.flags[fi] |= np.where(unrouted, SRC_UNROUTED, 0).astype(np.uint32)
            if route is not None:
                self.sroute[fi] = route

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
