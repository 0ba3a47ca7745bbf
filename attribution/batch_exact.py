"""The bulk path's exact answers: RIB lookups for what a compiled view cannot answer.

Flows in prefixes changed since their router's view was built, under IPv6
prefixes longer than /64, or with a next hop to match, are looked up in the
RIB one by one, memoised per batch, under the RIB lock one CHUNK at a time so
the feed is never held up long. A mixin of ``attribution.batch.Batch``, whose
answer columns (``so``, ``do``, ``prov``, ``flags``, ...) it fills; split out
so the vectorised view path reads apart from the per-flow one.
"""

from __future__ import annotations

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
from attribution.lookup import answer, answer_by_next_hop
from attribution.routing import Routing

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
        with that next hop (``lookup.path_by_next_hop``), memoised per batch."""
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
        """Answers of flows ``fi`` from RIB lookups (one side), memoised per batch."""
        raw = words.astype(">u8").tobytes()  # 16 bytes per flow
        lo = 12 if v4 else 0

        def key_of(k: int) -> tuple:
            return (neighbor, raw[16 * k + lo : 16 * k + 16])

        def compute(key: tuple) -> tuple:
            return answer(resolver.rib, neighbor, family, key[1], self.routing, self.routes)

        answers = self._memoised(resolver, len(fi), key_of, compute)
        self._store_answers(fi, dst, answers)

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
