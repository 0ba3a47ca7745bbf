"""The bulk path's exact answers: RIB lookups for what a compiled view cannot answer.

Flows in prefixes changed since their router's view was built, under IPv6
prefixes longer than /64, of a router without a view yet (loading), or with
a next hop to match are looked up in the RIB, under the RIB lock one CHUNK
at a time so the feed is never held up long. A chunk's routes are read at
once in C (``exact_routes.covering_routes``) and made answers by the views'
rules (``viewbuild.answers_of_routes``); Python runs per distinct prefix
only for the batch's route dictionary, and per distinct (ADD-PATH paths,
next hop) for the path a next hop chooses. A mixin of
``attribution.batch.Batch``, whose answer columns (``so``, ``do``,
``prov``, ``flags``, ...) it fills; split out so the vectorised view path
reads apart from the exact one.

Per flow, each of these was a ``Rib.lookup`` (the covering walk, the
prefix's text, a RouteMatch) and ``lookup.answer_of``'s tuple: ~20 us a
flow against ~0.3 on a view, so a load with flows cost the service more
than the load, and every flow carrying a next hop paid it (BENCHMARKS.md,
stop 45).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

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
from attribution.lookup import packed_hop
from attribution.routing import Routing
from attribution.viewbuild import answers_of_routes, set_fields
from ribd.table import RouteMatch

if TYPE_CHECKING:
    from attribution.resolver import Resolver

CHUNK = 2048  # flows resolved per hold of the RIB lock


@dataclass(slots=True)
class _Exact:
    """One side of a (router, family) group's flows queued for ``answer_exact``."""

    neighbor: str
    family: str
    packed: np.ndarray  # the addresses, a row of 4 or 16 octets each
    fi: np.ndarray  # the flows' indexes in the batch
    dst: bool
    hops: np.ndarray | None  # the flows' next hops (V16), dst only


def _no_hops(n: int) -> np.ndarray:
    return np.zeros(n, dtype="V16")


class ExactAnswers:
    """Exact RIB answers stored into a batch's columns (see ``Batch``)."""

    # Set by Batch.__init__: the answer columns and the per-batch state.
    _queued: list[_Exact]
    routing: Routing
    routes: RouteDictionary | None
    next_hops: np.ndarray | None
    so: np.ndarray
    sp: np.ndarray
    do: np.ndarray
    dp: np.ndarray
    prov: np.ndarray
    flags: np.ndarray
    sroute: np.ndarray
    droute: np.ndarray

    def exact_later(
        self,
        neighbor: str,
        family: str,
        v4: bool,
        fi: np.ndarray,
        words: np.ndarray,
        dst: bool,
        hops: np.ndarray | None = None,
    ) -> None:
        """Queue one side of flows ``fi`` of one (router, family) group (their
        addresses ``words``; ``hops``: their next hops, dst only) for
        ``answer_exact``, which answers every group's at once."""
        packed = words.astype(">u8").view(np.uint8).reshape(len(fi), 16)
        self._queued.append(
            _Exact(neighbor, family, packed[:, 12:] if v4 else packed, fi, dst, hops)
        )

    def answer_exact(self, resolver: Resolver) -> None:
        """The queued flows answered from their routes, a family at a time,
        read a CHUNK at a time under the RIB lock.

        One read for every group: a batch spread over 64 exporters answered
        group by group paid a dozen numpy calls per group and side, ~3.5x the
        exact path's cost a flow with one exporter (stop 45)."""
        by_family: dict[str, list[_Exact]] = {}
        for q in self._queued:
            by_family.setdefault(q.family, []).append(q)
        self._queued = []
        for family, work in by_family.items():  # (in the order met: the routes' numbering too)
            packed = np.ascontiguousarray(np.concatenate([q.packed for q in work]))
            fi = np.concatenate([q.fi for q in work])
            sizes = [len(q.fi) for q in work]
            item = np.repeat(np.arange(len(work), dtype=np.int32), sizes)
            dst = np.repeat(np.array([q.dst for q in work], dtype=bool), sizes)
            hops = None
            if any(q.hops is not None for q in work):
                hops = np.concatenate(
                    [q.hops if q.hops is not None else _no_hops(len(q.fi)) for q in work]
                )
                has_hop = np.repeat(np.array([q.hops is not None for q in work]), sizes)
            names = self.routing.names
            router_of = [names.get(q.neighbor, q.neighbor) for q in work]
            for start in range(0, len(fi), CHUNK):
                at = slice(start, min(start + CHUNK, len(fi)))
                items, counts = np.unique(item[at], return_counts=True)  # runs, in order
                neighbors = [work[k].neighbor for k in items.tolist()]
                with resolver.rib.lock:
                    found = covering_routes(
                        resolver.rib, family, packed[at].tobytes(), neighbors, counts.tolist()
                    )
                if hops is not None:
                    mismatch = by_next_hop(found, hops[at], has_hop[at])
                    if mismatch is not None:
                        self.flags[fi[at][mismatch]] |= DST_NEXT_HOP_MISMATCH
                self._store_routes(fi[at], dst[at], found, item[at], router_of, packed[at])

    def _store_routes(
        self,
        fi: np.ndarray,
        dst: np.ndarray,
        found: CoveringRoutes,
        item: np.ndarray,
        router_of: list[str],
        packed: np.ndarray,
    ) -> None:
        """Flows ``fi`` (``dst``: which side each is) from their routes
        ``found``, made answers by the views' rules; ``item``, ``router_of``:
        each flow's router name (the route dictionary's), ``packed`` its
        address (a row each), for its route's prefix when routes are numbered."""
        set_of, stale, lengths = found.set_of, found.stale, found.lengths
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
                route[ok] = self._route_ids(found, ok, item[ok], router_of, packed[ok])
        for side in (True, False):
            on = dst if side else ~dst
            if on.any():
                self.store_view_answers(  # type: ignore[attr-defined]
                    fi[on], side, set_of[on], aid[on], table, None if route is None else route[on]
                )

    def _route_ids(
        self,
        found: CoveringRoutes,
        ok: np.ndarray,
        item: np.ndarray,
        router_of: list[str],
        packed: np.ndarray,
    ) -> np.ndarray:
        """The index in the batch's route dictionary of each flow of ``ok``:
        one RouteMatch per distinct (router, prefix, path) matched, numbered
        in the order the flows first meet them, as the per-flow lookups did."""
        lengths = found.lengths[ok]
        set_of, path_ids, stale = found.set_of[ok], found.path_ids[ok], found.stale[ok]
        size = packed.shape[1]
        bits = np.unpackbits(packed, axis=1)
        bits[np.arange(8 * size) >= lengths[:, None].astype(np.int64)] = 0
        cut = np.packbits(bits, axis=1)  # the address cut to its prefix's length
        # A prefix's path (ADD-PATH: chosen by next hop) is part of the route.
        keyed = np.concatenate(
            [
                cut,
                lengths[:, None],
                path_ids.astype("<u4").view(np.uint8).reshape(-1, 4),
                item.astype("<u4").view(np.uint8).reshape(-1, 4),
            ],
            axis=1,
        )
        keys = np.ascontiguousarray(keyed).view(f"V{size + 9}").ravel()
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        ids = np.empty(len(first), dtype=np.int32)
        af = socket.AF_INET if size == 4 else socket.AF_INET6
        routes, sets = self.routes, found.attribute_sets
        for u in np.argsort(first, kind="stable").tolist():  # as first met
            i = int(first[u])
            length = int(lengths[i])
            prefix = f"{socket.inet_ntop(af, cut[i].tobytes())}/{length}"
            m = RouteMatch(prefix, length, sets[set_of[i]], int(path_ids[i]), bool(stale[i]))
            ids[u] = routes.from_match(router_of[item[i]], m)  # type: ignore[union-attr]
        return ids[inverse.ravel()]

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


def by_next_hop(found: CoveringRoutes, hops: np.ndarray, has_hop: np.ndarray) -> np.ndarray | None:
    """The path chosen by its next hop (``hops``, 16 bytes each) of each flow
    of ``has_hop`` whose route has several (ADD-PATH), written into ``found``
    (set number and path id); returns the flows none of whose paths has their
    next hop (they keep the best path), or None when no route had several.

    ``lookup.path_by_next_hop``'s rule, once per distinct (paths, next hop):
    the first path, best first, with that next hop. A prefix with one path
    answers with it whatever the next hop (no choice to make)."""
    several = np.flatnonzero((found.value_of >= 0) & has_hop)
    if not len(several):
        return None
    keyed = np.empty((len(several), 20), dtype=np.uint8)
    keyed[:, :4] = found.value_of[several].astype("<i4").view(np.uint8).reshape(-1, 4)
    keyed[:, 4:] = hops[several].view(np.uint8).reshape(-1, 16)
    _, first, inverse = np.unique(keyed.view("V20").ravel(), return_index=True, return_inverse=True)
    sets = found.attribute_sets
    numbers = {id(s): k for k, s in enumerate(sets)}
    chosen = np.empty(len(first), dtype=np.int32)
    chosen_id = np.empty(len(first), dtype=np.uint32)
    missed = np.zeros(len(first), dtype=bool)
    for u, i in enumerate(first.tolist()):
        paths = found.path_sets[int(found.value_of[several[i]])]
        (path_id, attrs), missed[u] = _path_with_hop(paths, keyed[i, 4:].tobytes())
        number = numbers.get(id(attrs))
        if number is None:
            number = numbers[id(attrs)] = len(sets)
            sets.append(attrs)
        chosen[u], chosen_id[u] = number, path_id
    inverse = inverse.ravel()
    found.set_of[several] = chosen[inverse]
    found.path_ids[several] = chosen_id[inverse]
    mismatch = np.zeros(len(found.value_of), dtype=bool)
    mismatch[several] = missed[inverse]
    return mismatch


def _path_with_hop(paths: tuple, hop: bytes) -> tuple[tuple, bool]:
    """The first of ``paths`` ((path id, attributes), best first) whose next
    hop is ``hop``, and False; else the best and True."""
    for path in paths:
        if packed_hop(path[1].next_hop) == hop:
            return path, False
    return paths[0], True
