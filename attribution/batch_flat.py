"""The bulk path without groups: a batch whose every flow its router's view answers.

``batch_plan`` groups a batch by (exporter, family) and ``Batch.answer_groups``
answers it group by group: a sort of the flows by group, a ``Group`` per
(exporter, family), per-group slot ranges for the lookups and a scatter back
to flow order. Spread over 64 exporters that per-group work was most of
what such a batch paid over one router's batch of the same flows (~0.3 ms
in the plan, ~0.3 ms in the grouped lookups and ~0.1 ms in the group loop
of a ~2.5 ms batch at 64 routers on 10% tables, issue 11).

Most batches need none of it: no next hops, every exporter's router has
a view with nothing changed since it was built, and the family's views
are packed on one axis (``viewpack.pack``). Such a batch is answered here
in flow order: each exporter's router and column offsets picked once,
each flow's offset read from its exporter's, every key of the family
searched in the one axis (IPv4 keys sorted first, as one router's batch
is) and its leaf and answer id read from the packed pools with its
router's offset. What the batch pays over one router's is then a take of
the exporters' offsets per flow and an add per key. With routes asked,
each key's route (its leaf through its router's holes) is numbered for
the whole batch at once, in the order the grouped path's per-group calls
number them (``batch_routes.number_views``): with routes, a batch spread
over 64 routers paid ~50% of its time in 128 per-group numbering calls.
Anything else (next hops, changed prefixes, long IPv6, an exporter without
a usable view, override rules or IX ports to apply) takes the grouped
path, which answers the same (``tests/attribution/test_batch_flat.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from attribution import batch_keep
from attribution.answers import FALLBACK
from attribution.batch_routes import number_views
from attribution.batch_views import _take
from attribution.fastpath import as_is
from attribution.routing import Routing, pick
from ribd.events import IPV4_UNICAST, IPV6_UNICAST

if TYPE_CHECKING:
    from attribution.batch import Batch
    from attribution.compiledview import CompiledView
    from attribution.resolver import Resolver

ENABLED = True  # tests turn it off to compare with the grouped path


def answer_flat(
    resolver: Resolver,
    batch: Batch,
    canon: list[str | None],
    ex: np.ndarray,
    good: np.ndarray,
    d_v4: np.ndarray,
    s_words: np.ndarray,
    d_words: np.ndarray,
    routing: Routing,
) -> bool:
    """Answer the good flows of ``batch`` without grouping them, if it can
    (see the module docstring); False: nothing was written, group it."""
    if not ENABLED or batch.next_hops is not None:
        return False
    every = bool(good.all())
    flows = None if every else np.flatnonzero(good)
    if flows is not None and not len(flows):
        return False
    code = ex * 2 if every else ex[flows] * 2
    code += ~d_v4 if every else ~d_v4[flows]  # IPv4 first: the grouped path's order
    present = np.flatnonzero(np.bincount(code)).tolist()
    plan = _kept_plan(resolver, canon, present, routing)
    if plan is None:
        return False
    sources, routers, viewed = plan.sources, plan.picked, plan.viewed
    # Each family's flows, and its IPv6 keys checked against the views'
    # prefixes longer than /64 (the exact path's), before anything is written.
    todo = []
    for v4, source in sources.items():
        if every and len(sources) == 1:
            fi: np.ndarray | slice = slice(None)
            fex = ex
        else:
            fi = np.flatnonzero(good & (d_v4 if v4 else ~d_v4))
            fex = ex[fi]
        if not v4 and source.long_v6:
            upper = np.concatenate([d_words[fi, 0], s_words[fi, 0]])
            if any(np.isin(upper, long).any() for long in source.long_v6):
                return False
        todo.append((v4, source, fi, fex))
    # The router column and flags, per family: the plan's (``batch_keep.make``),
    # routers numbered in code order as the grouped path numbers its groups.
    size = len(canon)
    remap = None
    if batch.routers:  # (a batch starts with none: never so far)
        remap = np.array([batch.router_index(name) for name in plan.names], dtype=np.int32)
    else:
        batch.routers.update(plan.names)
    looked = []
    for v4, source, fi, fex in todo:
        column = plan.index[v4].take(fex)
        batch.router[fi] = column if remap is None else remap.take(column)
        falls = plan.falls[v4]
        if falls is not None:
            fb = falls.take(fex)
            batch.flags[fi] |= np.where(fb, FALLBACK, 0).astype(batch.flags.dtype)
        looked.append((fi, fex, v4, *_look_family(source, fex, v4, fi, s_words, d_words)))
    route = None
    if batch.routes is not None:
        route = _number(batch, routing, present, routers, viewed, looked, size)
    for k, (fi, fex, _, leaf, aid, table) in enumerate(looked):
        n = len(fex)
        dst_route = src_route = None
        if route is not None:
            dst_route, src_route = route[k][:n], route[k][n:]
        batch.store_view_answers(fi, True, leaf[:n], aid[:n], table, dst_route)
        batch.store_view_answers(fi, False, leaf[n:], aid[n:], table, src_route)
    return True


def _number(
    batch: Batch,
    routing: Routing,
    present: list[int],
    routers: list[str],
    viewed: list,
    looked: list,
    size: int,
) -> list[np.ndarray]:
    """Per family of ``looked``, the route dictionary index of its keys
    (dst then src, flow order; -1: none), numbered as the grouped path
    numbers them: per (exporter, family) group in code order, dst then
    src, each route of a router's view once (``batch_routes.number_views``).
    A view's leaf holds family route numbers: a router's holes map to the
    route it really answers with (``CompiledView.own``)."""
    names = routing.names
    distinct: dict[int, int] = {}  # id(view) -> its number in the batch
    views: list[CompiledView] = []
    labels: list[str] = []
    view_of = np.zeros(2 * size, dtype=np.int64)  # code -> view number
    rank_of = np.zeros(2 * size, dtype=np.int64)  # code -> rank in code order
    for q, (c, neighbor, view) in enumerate(zip(present, routers, viewed, strict=True)):
        j = distinct.get(id(view))
        if j is None:
            j = distinct[id(view)] = len(views)
            views.append(view)
            labels.append(names.get(neighbor, neighbor))
        view_of[c] = j
        rank_of[c] = q
    holes = _holes(views)
    rs, owns, calls, sizes = [], [], [], []
    for _, fex, v4, leaf, _, _ in looked:
        code = fex * 2 + (0 if v4 else 1)
        r = view_of.take(code)
        q = rank_of.take(code)
        q *= 2
        r2 = np.concatenate([r, r])
        own = leaf
        if holes is not None:  # keys at a family number that is some view's hole
            hk, ht, some = holes
            maybe = np.flatnonzero(some.take(leaf, mode="clip") & (leaf >= 0) & (leaf < len(some)))
            if len(maybe):  # ... and a hole of the key's own router's view
                key = (r2[maybe] << np.int64(32)) + leaf[maybe]
                at = np.minimum(hk.searchsorted(key), len(hk) - 1)
                hit = hk[at] == key
                if hit.any():
                    own = np.array(leaf, dtype=np.int32)
                    own[maybe[hit]] = ht[at[hit]]
        rs.append(r2)
        owns.append(own)
        calls.append(np.concatenate([q, q + 1]))
        sizes.append(len(leaf))
    ids = number_views(
        batch.routes,  # type: ignore[arg-type]
        labels,
        views,
        np.concatenate(rs),
        np.concatenate(owns),
        np.concatenate(calls),
    )
    return np.split(ids, np.cumsum(sizes)[:-1])


# The batch's views' holes as one sorted array, for the last few sets of
# views (a set's key: each view's number in the batch and its holes array,
# whose id cannot be reused while the entry holds the array).
_HOLES: dict[tuple, tuple] = {}


def _holes(views: list[CompiledView]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(view number << 32 + hole, sorted; the route each hole maps to; per
    family number, whether it is a hole of any of ``views``), or None: no
    view has holes. Kept across batches: rebuilt per batch, the 64 views'
    holes after churn were ~2 ms of a ~8 ms spread batch with routes (10%
    tables), ~40% of what such a batch paid over a fresh one."""
    held = [(j, v.holes, v.hole_to) for j, v in enumerate(views) if len(v.holes)]
    if not held:
        return None
    key = tuple((j, id(h)) for j, h, _ in held)
    hit = _HOLES.get(key)
    if hit is not None:  # (the entry holds the arrays: their ids name them)
        return hit[1]
    hk = np.concatenate([(np.int64(j) << np.int64(32)) + h for j, h, _ in held])
    ht = np.concatenate([t for _, _, t in held])
    some = np.zeros(max(int(h[-1]) for _, h, _ in held) + 1, dtype=bool)
    for _, h, _ in held:
        some[h] = True
    if len(_HOLES) >= 8:
        _HOLES.clear()
    _HOLES[key] = ([h for _, h, _ in held], (hk, ht, some))
    return hk, ht, some


class _Source:
    """Where one family's keys are read: the axis, the leaf and answer
    columns (a view's own, or the family's packed pools) and, per exporter
    index of the batch, the offset of its router's column in each."""

    __slots__ = ("answer", "answer_off", "leaf", "leaf_off", "long_v6", "starts", "table")

    def __init__(self, view, packed, rows: dict[int, int], size: int, long_v6: list) -> None:
        self.starts = view.starts
        self.long_v6 = long_v6  # the views' upper halves of IPv6 prefixes longer than /64
        if packed is None:  # one view: its own columns
            self.leaf, self.answer, self.table = view.leaf, view.answer, view.answers
            self.leaf_off = self.answer_off = None
            return
        self.table = packed.answers
        self.leaf = packed.pools["leaf"]
        self.answer = packed.pools["answer"]
        self.leaf_off = _offsets(packed, "leaf", rows, size)
        self.answer_off = _offsets(packed, "answer", rows, size)


def _offsets(packed, name: str, rows: dict[int, int], size: int) -> np.ndarray | None:
    """Per exporter index, its router's offset in pool ``name`` (None: all 0)."""
    pool, offsets = packed.pools[name], packed.offsets[name]
    if pool.strides == (0,) or not offsets.any():
        return None
    out = np.zeros(size, dtype=np.int64)
    out[list(rows)] = offsets[list(rows.values())]
    return out if out.any() else None


def _kept_plan(
    resolver: Resolver, canon: list[str | None], present: list[int], routing: Routing
) -> batch_keep.Kept | None:
    """The plan of the last batch if nothing it read changed since
    (``batch_keep``), else a new one (kept for the next batch); None when
    a flow needs the grouped path."""
    rib, views = resolver.rib, resolver.views
    if resolver.build_views_inline and views._wanted:
        return None  # the grouped path builds what is wanted first
    kept = resolver.flat_plan
    with rib.lock:
        if (
            kept is not None
            and batch_keep.ENABLED
            and batch_keep.still(resolver, kept, canon, present, routing)
        ):
            resolver.flat_plans_kept += 1
            return kept
        watch: list = []
        families: set[str] = set()
        plan = _plan(resolver, canon, present, routing, watch, families)
        if plan is None:
            return None
        kept = batch_keep.make(resolver, canon, present, routing, plan, watch, families)
    resolver.flat_plan = kept
    return kept


def _plan(
    resolver: Resolver,
    canon: list[str | None],
    present: list[int],
    routing: Routing,
    watch: list,
    families: set[str],
) -> tuple[dict[bool, _Source], list[str], list[bool], list[CompiledView]] | None:
    """Each present (exporter, family) code's router, and per family the
    source its keys are read from; None when a flow needs the grouped path.
    Call under rib.lock. ``watch`` gets (router, family state, its table's
    slot change numbers) of each router the picks consulted, ``families``
    the families read: what ``batch_keep`` reads again to reuse the plan.

    The router pick (``routing.pick``) and the view check
    (``fastpath.as_is``: a view current at the table's change number, or
    whose router changed nothing since) are the ones ``batch_plan.plan``
    and ``CompiledViews.usable_many`` make; here a view must also have no
    changed ranges."""
    rib, views = resolver.rib, resolver.views
    chains = resolver._chains
    kept = chains.kept(routing)
    routers_of = rib.routers
    tables = rib.tables
    held_views = views._views
    picked: list[str] = []
    fallback: list[bool] = []
    viewed: list[CompiledView] = []
    by_family: dict[bool, list[tuple[int, object]]] = {}
    seqs: dict[str, int] = {}
    watched: set[tuple[str, str]] = set()
    for c in present:
        exporter = canon[c >> 1]
        if exporter is None:
            return None
        chain = kept.get((exporter, exporter in routers_of))
        if chain is None:
            chain = chains.get(routing, routers_of, exporter)
        family = IPV6_UNICAST if c & 1 else IPV4_UNICAST
        hit = pick(routers_of, chain[0], chain[1], family)
        if hit is None:
            return None
        neighbor, is_fallback, r, fs = hit
        if (neighbor, family) not in watched or is_fallback:  # the routers pick read
            _watch(watch, watched, routers_of, chain[0], neighbor, family, tables[family])
        picked.append(neighbor)
        fallback.append(is_fallback)
        view = held_views.get((neighbor, family))
        if view is None:
            return None
        seq = seqs.get(family)
        if seq is None:
            seq = seqs[family] = tables[family].change_seq
            families.add(family)
        if not as_is(view, r, fs, tables[family], seq) or len(view.changed.starts):
            return None  # changed ranges: the grouped path's exact lookups
        by_family.setdefault(not c & 1, []).append((c >> 1, view))
        viewed.append(view)
    # Per family: one view, or views of one pack on one axis.
    sources: dict[bool, _Source] = {}
    size = len(canon)
    for v4, held in by_family.items():
        first = held[0][1]
        long_v6 = [] if v4 else [v.long_v6 for _, v in held if len(v.long_v6)]  # type: ignore[attr-defined]
        if long_v6:  # each distinct array once
            long_v6 = list({id(a): a for a in long_v6}.values())
        if all(v is first for _, v in held):
            sources[v4] = _Source(first, None, {}, size, long_v6)
            continue
        packed = first.pack  # type: ignore[attr-defined]
        if packed is None or not all(
            v.pack is packed and v.starts is first.starts  # type: ignore[attr-defined]
            for _, v in held
        ):
            return None
        rows = {j: v.pack_row for j, v in held}  # type: ignore[attr-defined]
        sources[v4] = _Source(first, packed, rows, size, long_v6)
    return sources, picked, fallback, viewed


def _watch(watch: list, watched: set, routers_of, chain, neighbor: str, family: str, table) -> None:
    """Add the routers of ``chain`` up to ``neighbor`` (the ones ``pick``
    read; absent ones: the routers mapping's size) to ``watch``, once each."""
    for n in chain:
        if (n, family) not in watched:
            r = routers_of.get(n)
            if r is not None:
                watched.add((n, family))
                watch.append((r, r.families[family], table.slot_seq))
        if n == neighbor:
            return


def _look_family(
    source: _Source,
    fex: np.ndarray,
    v4: bool,
    fi: np.ndarray | slice,
    s_words: np.ndarray,
    d_words: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(leaf, answer id, answer table columns) of one family's flows ``fi``
    (exporter indexes ``fex``): dst keys then src keys, in flow order."""
    n = len(fex)
    perm = None
    if v4:  # sorted keys: numpy's search walks them ~2x faster (see lookup_views)
        comp = np.empty(2 * n, dtype=np.uint64)
        comp[:n] = d_words[fi, 1]
        comp[n:] = s_words[fi, 1]
        comp <<= np.uint64(32)  # the address's 32 bits on top (the upper half drops out)
        comp |= np.arange(2 * n, dtype=np.uint64)
        comp.sort()
        keys: np.ndarray = (comp >> np.uint64(32)).astype(np.uint32)
        perm = (comp & np.uint64(0xFFFFFFFF)).astype(np.intp)  # sorted slot -> position
    else:  # native words (the flows' are big-endian)
        keys = np.empty(2 * n, dtype=np.uint64)
        keys[:n] = d_words[fi, 0]
        keys[n:] = s_words[fi, 0]

    def per_key(off: np.ndarray | None) -> np.ndarray | None:
        if off is None:
            return None
        flow = off.take(fex)
        both = np.concatenate([flow, flow])
        return both if perm is None else both.take(perm)

    found = source.starts.searchsorted(keys, side="right")
    found -= 1
    off = per_key(source.leaf_off)
    if off is not None:
        found = found + off
    leaf = _take(source.leaf, found)
    off = per_key(source.answer_off)
    aid = _take(source.answer, leaf if off is None else leaf + off)
    if perm is not None:  # back to flow order: dst keys first, then src
        placed_leaf = np.empty_like(leaf)
        placed_leaf[perm] = leaf
        placed_aid = np.empty_like(aid)
        placed_aid[perm] = aid
        leaf, aid = placed_leaf, placed_aid
    return leaf, aid, source.table.columns
