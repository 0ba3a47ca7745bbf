"""One route numbering for a family's views, so that churn keeps one shared leaf.

A view's leaf holds, per interval, the number of its route there, and its
route columns are read at that number. Fresh views of routers with the
same prefixes number their routes alike (store order), so they share one
leaf and one set of prefix columns and only the per-route answer ids and
attribute indexes are a router's own (``viewpack.share_columns``). A
patch appends the routes it adds (new prefixes, the covering route of a
withdrawn one) after the old ones, and every router got other changes: after
churn each router had its own numbering, so its own leaf (4 B per
interval) and prefix columns, twice the views' bytes (issue 11).

``renumber`` (run by the refresh after patches, before packing) puts the
views of a family back on one numbering: the family's prefixes (every
prefix some router's leaf answers with), one leaf for all routers that
holds at each interval the longest of those prefixes there, and per router
the answer id and attribute index of *its* route at each family number.
At an interval whose family prefix q a router lacks, its own answer is its
longest route covering q (the same one on every interval of q: the family
prefixes covering such an interval are exactly q and q's ancestors), so
the router's columns at q hold that route's values and the router keeps a
short sorted list of such numbers, its ``holes``, each with the number of
the route it really answers with (``hole_to``, -1 for none, whose answer id
is the table's "no route" row). The bulk path reads the shared leaf and the
router's answer id as before; what needs the route itself (the route
dictionary, a patch, ``CompiledView.lookup``) maps a leaf through
``effective``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from attribution.routecache import RouteCache
from attribution.viewanswers import id_dtype, merge, most_held
from ribd.events import IPV4_UNICAST

# The answer row of no route (provenance NONE, attribution.answers): what
# the bulk path stores for a key without a leaf too.
NONE_ROW = (0, 0, 0, 0, 5, False, False)
NO_HOLES = np.zeros(0, dtype=np.int32)
NO_HOLES.flags.writeable = False


def effective(holes: np.ndarray, hole_to: np.ndarray, leaf: np.ndarray) -> np.ndarray:
    """``leaf`` values (family numbers, -1 none) as the numbers of the
    routes the view's router answers with: each hole replaced by its
    route (-1: the router has none there)."""
    if not len(holes) or not len(leaf):
        return leaf
    at = np.minimum(holes.searchsorted(leaf), len(holes) - 1)
    hit = holes[at] == leaf
    if not hit.any():
        return leaf
    out = np.array(leaf, dtype=np.int32)
    out[hit] = hole_to[at[hit]]
    return out


def plain(view):
    """``view`` with its leaf its router's own (holes resolved): the form
    a patch works on (``viewpatch.patch_view``)."""
    if not len(view.holes):
        return view
    leaf = effective(view.holes, view.hole_to, view.leaf)
    return dataclasses.replace(view, leaf=leaf, holes=NO_HOLES, hole_to=NO_HOLES, pack=None)


def _keys(nets: np.ndarray, lows: np.ndarray, lengths: np.ndarray, v4: bool) -> np.ndarray:
    """One comparable key per route's prefix."""
    if v4:
        key = nets.astype(np.uint64) << np.uint64(8)
        key |= lengths.astype(np.uint64)
        return key
    n = len(nets)
    raw = np.empty((n, 17), dtype=np.uint8)
    raw[:, :8] = nets.astype(">u8").view(np.uint8).reshape(n, 8)
    raw[:, 8:16] = lows.astype(">u8").view(np.uint8).reshape(n, 8)
    raw[:, 16] = lengths.astype(np.uint8) + np.uint8(1)  # never a trailing NUL
    return raw.view("S17").reshape(n)


def _same_head(v, base: tuple, v4: bool) -> bool:
    """Whether ``v``'s first routes are the prefixes ``base`` (nets, lows,
    lengths) numbers (a patch keeps them: it rewrites a route in place
    only with its own prefix, and appends)."""
    nets, lows, lengths = base
    n = len(lengths)
    if len(v) < n:
        return False
    if v.nets is nets and v.lengths is lengths and v.nets_low is lows:
        return True
    return (
        np.array_equal(v.nets[:n], nets)
        and np.array_equal(v.lengths[:n], lengths)
        and (v4 or np.array_equal(v.nets_low[:n], lows))
    )


def _base(views: list, v4: bool) -> tuple:
    """The routes most views start with, as (nets, lows, lengths): the
    numbering of the last ``renumber`` (``numbered`` routes of each view
    since, patches appending past them), else the route columns most views
    share (fresh builds of routers with the same prefixes), else the
    shortest view's."""
    numbered = [v for v in views if v.numbered]
    if numbered:
        ref = max(numbered, key=lambda v: v.numbered)
        n = ref.numbered
    else:
        held: dict[int, list] = {}
        for v in views:
            held.setdefault(id(v.nets), []).append(v)
        most = max(held.values(), key=len)
        ref = most[0] if len(most) > 1 else min(views, key=len)
        n = len(ref)
    if n == len(ref):
        return ref.nets, ref.nets_low, ref.lengths
    return ref.nets[:n], ref.nets_low if v4 else ref.nets_low[:n], ref.lengths[:n]


def renumber(views: list) -> list:
    """``views`` (one family's, on one interval axis) on one route numbering
    with one shared leaf (see the module's docstring); views already on one
    come back as they were. Copies: the old views stay valid for batches
    reading them."""
    if len(views) < 2 or len({id(v.starts) for v in views}) > 1:
        return views
    first = views[0]
    if all(
        v.leaf is first.leaf
        and v.nets is first.nets
        and v.nets_low is first.nets_low
        and v.lengths is first.lengths
        for v in views
    ):
        return views
    v4 = first.family == IPV4_UNICAST
    # The family's prefixes: the shortest view's routes, numbered as there
    # (most views start with them: a view that did not change keeps its
    # route numbers, and so the caches keyed by them, ``same_routes``), then
    # the prefixes of other views' routes past those (patches' additions).
    base_nets, base_lows, base_lengths = base_routes = _base(views, v4)
    n0 = len(base_lengths)
    bodies: dict[tuple[int, int, int], tuple[int, int]] = {}  # -> (head, offset of the rest)
    parts, rest, total = [], [], 0
    for v in views:
        body = (id(v.nets), id(v.nets_low), id(v.lengths))
        if body in bodies:
            continue
        head = n0 if _same_head(v, base_routes, v4) else 0
        bodies[body] = (head, total)
        lows = v.nets_low if v4 else v.nets_low[head:]
        parts.append((v.nets[head:], lows, v.lengths[head:]))
        total += len(v) - head
    base = _keys(base_nets, base_lows, base_lengths, v4)
    if parts:
        nets = np.concatenate([p[0] for p in parts])
        lows = nets[:0] if v4 else np.concatenate([p[1] for p in parts])
        lengths = np.concatenate([p[2] for p in parts])
        rest = _keys(nets, lows, lengths, v4)
    number = np.full(total, -1, dtype=np.int32)  # of each route past a head
    fam_nets, nets_low, fam_lengths = base_nets, base_lows, base_lengths
    if total:
        order = np.argsort(base, kind="stable")
        at = np.minimum(base[order].searchsorted(rest), max(n0 - 1, 0))
        known = base[order][at] == rest if n0 else np.zeros(total, dtype=bool)
        number[known] = order[at[known]]
        new = np.flatnonzero(~known)
        if len(new):
            _, first_at, inverse = np.unique(rest[new], return_index=True, return_inverse=True)
            number[new] = n0 + inverse.reshape(-1)
            pick = new[first_at]
            fam_nets = np.concatenate([base_nets, nets[pick]])
            if not v4:
                nets_low = np.concatenate([base_lows, lows[pick]])
            fam_lengths = np.concatenate([base_lengths, lengths[pick]])
    family_size = len(fam_lengths)
    if not family_size:
        return views
    if not v4:
        nets_low = np.ascontiguousarray(nets_low)
    for a in (fam_nets, nets_low, fam_lengths):
        a.flags.writeable = False
    identity = np.arange(n0, dtype=np.int32)

    def numbering(v) -> np.ndarray:
        """Family number of each of ``v``'s routes, then -1 (for leaf -1)."""
        head, offset = bodies[(id(v.nets), id(v.nets_low), id(v.lengths))]
        return np.concatenate(
            [identity[:head], number[offset : offset + len(v) - head], np.full(1, -1, np.int32)]
        )

    # The shared leaf: the longest family prefix of any router per interval.
    long = np.append(fam_lengths.astype(np.int16), np.int16(-1))
    best = np.full(len(first.starts), -1, dtype=np.int16)
    leaf = np.full(len(first.starts), -1, dtype=np.int32)
    done: set[tuple[int, ...]] = set()
    for v in views:
        key = (id(v.leaf), id(v.holes), id(v.nets), id(v.nets_low), id(v.lengths))
        if key in done:
            continue
        done.add(key)
        g = numbering(v)[effective(v.holes, v.hole_to, v.leaf)]
        gl = long[g]
        deeper = gl > best
        best[deeper] = gl[deeper]
        leaf[deeper] = g[deeper]
    deep, at = np.unique(leaf, return_index=True)  # family numbers with intervals, each's first
    if len(deep) and deep[0] < 0:
        deep, at = deep[1:], at[1:]
    leaf.flags.writeable = False
    # One answer table (the family's, plus the no-route row).
    tables = most_held([v.answers for v in views])
    table, remaps = merge(tables)
    remap_of = {id(t): r for t, r in zip(tables, remaps, strict=True)}
    table, (none_id,) = table.ids_of([NONE_ROW])
    dtype = id_dtype(len(table))
    out = []
    for v in views:
        own_leaf = effective(v.holes, v.hole_to, v.leaf)
        used = np.zeros(len(v) + 1, dtype=bool)
        used[own_leaf] = True  # -1 marks the spare last
        routes = np.flatnonzero(used[:-1]).astype(np.int32)
        fmap = numbering(v)
        own = np.full(family_size + 1, -1, dtype=np.int32)  # family number -> own route
        every = np.arange(len(v), dtype=np.int32)
        mapped = fmap[:-1] >= 0
        own[fmap[:-1][mapped]] = every[mapped]  # unused ones too (numbers kept alike)
        own[fmap[routes]] = routes  # a used one where two have one prefix
        theirs = fmap[own_leaf[at]]  # the family number the router answers with there
        src = own[:-1].copy()
        src[deep] = own[theirs]
        hole = theirs != deep
        holes = deep[hole].astype(np.int32)
        hole_to = theirs[hole].astype(np.int32)
        ids = np.append(remap_of[id(v.answers)].astype(dtype)[v.answer], dtype(none_id))
        index = np.append(v.attribute_index, np.int32(0))
        path_ids = v.path_ids
        if path_ids.strides == (0,) and len(path_ids):  # one value (viewpack.squeeze)
            path_ids = np.broadcast_to(path_ids[:1], (family_size,))
        else:
            path_ids = np.append(path_ids, np.uint32(0))[src]
        out.append(
            dataclasses.replace(
                v,
                leaf=leaf,
                nets=fam_nets,
                nets_low=nets_low,
                lengths=fam_lengths,
                path_ids=path_ids,
                attribute_index=index[src],
                answer=ids[src],
                answers=table,
                holes=holes,
                hole_to=hole_to,
                made=RouteCache(),
                numbered=family_size,
                pack=None,
            )
        )
    return out
