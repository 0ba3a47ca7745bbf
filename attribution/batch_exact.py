"""The bulk path's exact answers: RIB lookups for what a compiled view cannot answer.

Flows in prefixes changed since their router's view was built, under IPv6
prefixes longer than /64, or with a next hop to match, are looked up in the
RIB, under the RIB lock one CHUNK at a time so the feed is never held up
long. A chunk's routes are read at once (``exact_routes.covering_routes``)
and made answers by the views' rules; per flow (``lookup``, memoised per
batch) only what needs a RouteMatch: batches that ask for routes, and
flows whose next hop chooses among a prefix's ADD-PATH paths. A mixin of
``attribution.batch.Batch``, whose answer columns (``so``, ``do``,
``prov``, ``flags``, ...) it fills; split out so the vectorised view path
reads apart from the exact one.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from attribution.answers import (
    DEFAULT,
    DST_NEXT_HOP_MISMATCH,
    DST_ORIGIN_AS_SET,
    DST_STALE,
    NONE,
    SRC_ORIGIN_AS_SET,
    SRC_STALE,
    SRC_UNROUTED,
    RouteDictionary,
)
from attribution.exact_routes import CoveringRoutes, covering_routes
from attribution.lookup import answer_by_next_hop
from attribution.routing import Routing
from attribution.viewbuild import answers_of_routes, set_fields
from ribd.table import RouteMatch

if TYPE_CHECKING:
    from attribution.resolver import Resolver

CHUNK = 2048  # flows resolved per hold of the RIB lock


class ExactAnswers:
    """Per-flow RIB answers stored into a batch's columns (see ``Batch``)."""

    # Set by Batch.__init__: the answer columns and the per-batch state.
    routing: Routing
    routes: RouteDictionary | None
    memo: dict[tuple, tuple]
    next_hops: np.ndarray | None
    so: np.ndarray
    sp: np.ndarray
    do: np.ndarray
    dp: np.ndarray
    prov: np.ndarray
    flags: np.ndarray
    sroute: np.ndarray
    droute: np.ndarray

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
        with that next hop (``lookup.path_by_next_hop``).

        A prefix with one path answers with it whatever the next hop, so
        only flows whose route has several (ADD-PATH) are matched path by
        path (memoised per batch); the others are answered as any exact flow."""
        several = self._exact_routes(
            resolver, neighbor, family, v4, fi, d_words[fi], True, leave_several=True
        )
        if not several.any():
            return
        fi = fi[several]
        raw = d_words[fi].astype(">u8").tobytes()
        hops = self.next_hops[fi].tobytes()  # type: ignore[index]
        lo = 12 if v4 else 0

        def key_of(k: int) -> tuple:
            return (neighbor, raw[16 * k + lo : 16 * k + 16], hops[16 * k : 16 * k + 16])

        def compute(key: tuple) -> tuple:
            return answer_by_next_hop(
                resolver.rib, neighbor, family, key[1], key[2], self.routing, self.routes
            )

        pairs = self._memoised(resolver, len(fi), key_of, compute)
        answers = [a for a, _ in pairs]
        mismatch = [m for _, m in pairs]
        self._store_answers(fi, True, answers)
        flagged = fi[np.array(mismatch, dtype=bool)]
        self.flags[flagged] |= DST_NEXT_HOP_MISMATCH

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
        """Answers of flows ``fi`` (their addresses ``words``) from RIB lookups (one side)."""
        self._exact_routes(resolver, neighbor, family, v4, fi, words, dst)

    def _exact_routes(
        self,
        resolver: Resolver,
        neighbor: str,
        family: str,
        v4: bool,
        fi: np.ndarray,
        words: np.ndarray,
        dst: bool,
        leave_several: bool = False,
    ) -> np.ndarray:
        """One side of flows ``fi`` answered from their routes, read a CHUNK at
        a time under the RIB lock; returns, per flow, whether its route has
        several paths. ``leave_several``: those flows are left unanswered (the
        caller chooses their path by next hop)."""
        packed = words.astype(">u8").view(np.uint8).reshape(len(fi), 16)
        if v4:
            packed = packed[:, 12:]
        packed = np.ascontiguousarray(packed)
        name = self.routing.names.get(neighbor, neighbor)
        several = np.zeros(len(fi), dtype=bool)
        for start in range(0, len(fi), CHUNK):
            stop = min(start + CHUNK, len(fi))
            chunk = packed[start:stop]
            with resolver.rib.lock:
                found = covering_routes(resolver.rib, neighbor, family, chunk.tobytes())
            many = found.paths > 1
            several[start:stop] = many
            keep = ~many if leave_several and many.any() else slice(None)
            self._store_routes(fi[start:stop][keep], dst, found, keep, name, chunk[keep])
        return several

    def _store_routes(
        self,
        fi: np.ndarray,
        dst: bool,
        found: CoveringRoutes,
        keep: np.ndarray | slice,
        name: str,
        packed: np.ndarray,
    ) -> None:
        """One side of flows ``fi`` from ``found`` (their routes, ``keep`` of
        them), made answers by the views' rules (``viewbuild.answers_of_routes``);
        ``packed``: the flows' addresses (a row each), for their routes' prefixes."""
        set_of, stale, lengths = found.set_of[keep], found.stale[keep], found.lengths[keep]
        ok = set_of >= 0
        aid = np.zeros(len(set_of), dtype=np.int64)
        table = None
        route = None
        if ok.any():
            by_set = set_fields(found.attribute_sets)
            ids, answers = answers_of_routes(set_of[ok], lengths[ok] == 0, stale[ok], by_set)
            aid[ok] = ids
            table = answers.columns
        if self.routes is not None:
            route = np.full(len(set_of), -1, dtype=np.int32)
            if ok.any():
                route[ok] = self._route_ids(
                    name,
                    found,
                    packed[ok],
                    set_of[ok],
                    found.path_ids[keep][ok],
                    stale[ok],
                    lengths[ok],
                )
        self.store_view_answers(fi, dst, set_of, aid, table, route)  # type: ignore[attr-defined]

    def _route_ids(
        self,
        name: str,
        found: CoveringRoutes,
        packed: np.ndarray,
        set_of: np.ndarray,
        path_ids: np.ndarray,
        stale: np.ndarray,
        lengths: np.ndarray,
    ) -> np.ndarray:
        """Each flow's index in the batch's route dictionary: one RouteMatch
        per distinct prefix matched (the address cut to its length), numbered
        in the order the flows first meet them, as the per-flow lookups did."""
        size = packed.shape[1]
        bits = np.unpackbits(packed, axis=1)
        bits[np.arange(8 * size) >= lengths[:, None].astype(np.int64)] = 0
        cut = np.packbits(bits, axis=1)
        keyed = np.concatenate([cut, lengths[:, None]], axis=1)
        keys = np.ascontiguousarray(keyed).view(f"V{size + 1}").ravel()
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")  # distinct prefixes as first met
        ids = np.empty(len(first), dtype=np.int32)
        af = socket.AF_INET if size == 4 else socket.AF_INET6
        routes, sets = self.routes, found.attribute_sets
        for u in order.tolist():
            i = int(first[u])
            length = int(lengths[i])
            prefix = f"{socket.inet_ntop(af, cut[i].tobytes())}/{length}"
            m = RouteMatch(prefix, length, sets[set_of[i]], int(path_ids[i]), bool(stale[i]))
            ids[u] = routes.from_match(name, m)  # type: ignore[union-attr]
        return ids[inverse.ravel()]

    def _memoised(
        self,
        resolver: Resolver,
        n: int,
        key_of: Callable[[int], tuple],
        compute: Callable[[tuple], Any],
    ) -> list:
        """Flows 0..n-1's answers, each key computed once per batch (``memo``),
        under the RIB lock one CHUNK at a time so the feed is never held up long."""
        memo, out = self.memo, []
        for start in range(0, n, CHUNK):
            with resolver.rib.lock:
                for k in range(start, min(start + CHUNK, n)):
                    key = key_of(k)
                    a = memo.get(key)
                    if a is None:
                        a = memo[key] = compute(key)
                    out.append(a)
        return out

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
