"""Bring a compiled lookup view up to date by patching what changed.

A full build (``attribution.viewbuild.build_view``) costs 1-2.3 CPU-s for a
today-sized table; under normal churn every changed view was rebuilt every
60 s, which took more than a core at ~25 routers. A minute of churn touches a
few hundred prefixes, and a prefix's change can only move the answers of the
addresses it was or is the longest match for. So for each changed prefix X,
shortest first, in X's address range: every interval whose route is X
itself, a shorter one or none now answers with X's route, or, if X has none
for this router any more, with the longest route covering X. Intervals of
longer prefixes inside X keep their answer (a changed one among them comes
later). X's ends are first made interval bounds, carrying the old answer, so
that a prefix new to the view gets intervals of its own.

New routes are appended to the view's route columns, so route numbers the
old view handed out keep their meaning (caches keyed by them stay right).
Appended routes no interval uses are garbage: past PATCH_GARBAGE of the
view's routes, or past PATCH_MAX_CHANGES changes, the caller builds the view
afresh instead.
"""

from __future__ import annotations

import dataclasses
import gc
import socket
import time

import numpy as np

from attribution.routecache import RouteCache
from attribution.viewanswers import id_dtype
from attribution.viewfamily import plain
from attribution.viewpack import squeeze
from ribd.attributes import PathAttributes
from ribd.events import IPV4_UNICAST
from ribd.rib import Rib, slot_value

try:  # in C where compiled (attribution._viewbuild); without it the list stays tracked
    from attribution._viewbuild import untrack_set_list as _untrack_set_list
except ImportError:
    _untrack_set_list = None

PATCH_MAX_CHANGES = 20_000  # changed prefixes up to which a view is patched
PATCH_GARBAGE = 0.5  # appended routes, as a share of all, past which a view is rebuilt
_BGP, _LOCAL, _DEFAULT = 1, 3, 4  # provenance codes, as in attribution.viewbuild


def patch_view(rib: Rib, old, changed_ranges, signature_of, memo: dict | None = None):
    """``old`` (a CompiledView) plus the RIB's changes since it was built, or
    None when a full build is due (layout changed, too many changes, the log
    no longer reaches back, too much garbage). ``changed_ranges``
    (ChangedRanges) and ``signature_of`` come from attribution.fastpath
    (passed in: no import cycle). ``memo``: one dict for the patches of one
    refresh, which then read each changed prefix's entry and covering
    prefixes from the store once for all routers (the change log is the
    family's: every router's view sees every change; 64 views read each
    ~64 times, most of a refresh's CPU)."""
    family = old.family
    table = rib.tables[family]
    v4 = family == IPV4_UNICAST
    bits = 32 if v4 else 64
    with rib.lock:  # none of its router's routes changed: the same view, current
        r = rib.routers.get(old.neighbor)
        same = r is not None and signature_of(r, family, table) == old.signature
        if same and unchanged(table, old):
            return advanced(old, table.change_seq, changed_ranges)
    old = plain(old)  # its router's own leaf (a family numbering's holes resolved)
    if old.patched_routes > PATCH_GARBAGE * max(len(old), 1):
        return None
    rib.merge_now(family)
    with rib.lock:
        r = rib.routers.get(old.neighbor)
        if r is None or signature_of(r, family, table) != old.signature:
            return None
        changes = table.changes_since(old.seq)
        if changes is None or len(changes) > PATCH_MAX_CHANGES:
            return None
        seq = table.change_seq
        store = table.store
        reads = _reads(memo, family, seq, store)
        slot, stale_slot, current_stale = old.signature[:3]
        patches = []  # (length, prefix text, replacement route or None, network)
        for prefix in set(changes):
            read = reads.get(prefix)
            if read is None:  # [entry, network, covering prefixes (when asked)]
                read = reads[prefix] = [store.get(prefix), _net(prefix, v4), None]
            length = int(prefix.rpartition("/")[2])
            entry = read[0]
            value, is_stale = (
                slot_value(entry, slot, stale_slot, current_stale) if entry else (None, False)
            )
            if value is not None:
                repl = (*read[1], length, value, is_stale)
            else:
                if read[2] is None:
                    read[2] = _covering(store, prefix, length, v4)
                repl = _covering_route(read[2], slot, stale_slot, current_stale)
            patches.append((length, prefix, repl, read[1]))
    patches.sort(key=lambda p: p[0])
    new_routes: list[tuple] = []  # each replacement route once
    # A prefix that had a route of its own keeps its number, new values in
    # place: its intervals keep their leaf, which then stays equal to (and
    # shared with, ``one_axis``) the other routers' leaf under churn that
    # changes paths rather than prefixes.
    rewritten: dict[int, tuple] = {}
    numbers: dict[tuple, int] = {}
    base = len(old)
    long_highs = []
    axis = []  # (start, last, length, route number or -1)
    top = (1 << bits) - 1
    for length, _prefix, repl, (high, _) in patches:
        if length > bits:  # IPv6 longer than /64: answered by the exact path
            long_highs.append(high)
            continue
        number = -1
        if repl is not None and repl[2] == length:  # the prefix's own route
            number = _own_route(old, high, repl[1], length, bits)
            if number >= 0:  # it had one: new values in its place
                rewritten[number] = repl
        if repl is not None and number < 0:
            key = (repl[0], repl[1], repl[2], id(repl[3]), repl[4])
            number = numbers.get(key, -1)
            if number < 0:
                number = numbers[key] = base + len(new_routes)
                new_routes.append(repl)
        last = top if length == 0 else high + (1 << (bits - length)) - 1
        axis.append((high, last, length, number))
    columns = _columns(old, new_routes, rewritten)
    all_lengths = columns["lengths"].astype(np.int16)
    starts = old.starts.astype(np.uint64)
    leaf = old.leaf
    if axis:  # bounds at every changed prefix's ends, carrying the old answer
        ends = np.array(
            [a[0] for a in axis] + [a[1] + 1 for a in axis if a[1] < top], dtype=np.uint64
        )
        ends = np.unique(ends)
        at = np.minimum(starts.searchsorted(ends), len(starts) - 1)
        ends = ends[starts[at] != ends]  # not a bound yet (np.isin: a hash of all bounds)
        carried = leaf[np.searchsorted(starts, ends, side="right") - 1]
        starts = np.concatenate([starts, ends])
        leaf = np.concatenate([leaf, carried])
        order = np.argsort(starts, kind="stable")
        starts, leaf = starts[order], leaf[order]
    leaf = leaf.astype(np.int32)  # a copy: the old view is read meanwhile
    # (a view with no routes yet: every leaf -1, nothing to index)
    lengths = np.full(len(leaf), -1, dtype=np.int16)
    if len(all_lengths):
        lengths = np.where(leaf >= 0, all_lengths[np.maximum(leaf, 0)], -1).astype(np.int16)
    # Each changed prefix's intervals, all found in two searches (the loop
    # below changes leaves, never bounds).
    firsts = starts.searchsorted(np.array([a[0] for a in axis], dtype=np.uint64)).tolist()
    stops = starts.searchsorted(np.array([a[1] for a in axis], dtype=np.uint64), side="right")
    for (_, _, length, number), i0, i1 in zip(axis, firsts, stops.tolist(), strict=True):
        seg_lengths = lengths[i0:i1]
        hit = seg_lengths <= length
        if hit.any():
            leaf[i0:i1][hit] = number
            seg_lengths[hit] = all_lengths[number] if number >= 0 else -1
    keep = np.ones(len(leaf), dtype=bool)
    keep[1:] = leaf[1:] != leaf[:-1]
    long_v6 = old.long_v6
    if long_highs:
        long_v6 = np.union1d(long_v6, np.array(long_highs, dtype=np.uint64))
    return dataclasses.replace(
        old,
        pack=None,
        made=RouteCache(),  # routes rewritten in place: RouteMatch objects made before are stale
        seq=seq,
        built_at=time.monotonic(),
        starts=starts[keep].astype(old.starts.dtype),
        leaf=leaf[keep],
        long_v6=long_v6,
        changed=changed_ranges.empty(v4, seq),
        patched_routes=old.patched_routes + len(new_routes),
        **columns,
    )


def unchanged(table, view) -> bool:
    """Whether no change of ``view``'s router's slots was logged in ``table``
    (ribd.table.FamilyTable) since the view's change number: it then answers
    as a patch would, whatever other routers changed (the change log is the
    family's). Call under the RIB lock, with the view's signature checked."""
    slot, stale_slot = view.signature[:2]
    return not table.slots_changed_since(view.seq, slot, stale_slot)


def advanced(view, seq: int, changed_ranges):
    """``view`` (``unchanged``) as current at ``seq``: the same arrays, route
    numbers and pack, so streams' route dictionaries and the family's pack
    survive a refresh that patched other routers' views."""
    if view.seq == seq and view.changed.seq == seq:
        return view
    return dataclasses.replace(
        view, seq=seq, changed=changed_ranges.empty(view.family == IPV4_UNICAST, seq)
    )


def _net(prefix: str, v4: bool) -> tuple[int, int]:
    """A prefix's network as (the IPv4 address or upper 64 bits, lower 64 bits)."""
    packed = socket.inet_pton(socket.AF_INET if v4 else socket.AF_INET6, prefix.split("/")[0])
    if v4:
        return int.from_bytes(packed, "big"), 0
    return int.from_bytes(packed[:8], "big"), int.from_bytes(packed[8:], "big")


def _reads(memo: dict | None, family: str, seq: int, store) -> dict:
    """The memo of one refresh's store reads for ``family``, valid while
    the table's change number and store are the ones read under the lock."""
    if memo is None:
        return {}
    held = memo.get(family)
    if held is None or held[0] != seq or held[1] is not store:
        held = memo[family] = (seq, store, {})
    return held[2]


def _covering(store, prefix: str, length: int, v4: bool) -> list[tuple]:
    """(network, length, entry) of every prefix strictly covering ``prefix``,
    longest first."""
    if length == 0:
        return []
    return [
        (_net(covering, v4), plen, entry)
        for covering, plen, entry in store.covering(prefix)
        if plen < length
    ]


def _covering_route(covering: list[tuple], slot, stale_slot, current_stale):
    """The router's longest route among ``covering`` (``_covering``), as a
    new route (high, low, length, value, stale), or None."""
    for net, plen, entry in covering:
        value, is_stale = slot_value(entry, slot, stale_slot, current_stale)
        if value is not None:
            return (*net, plen, value, is_stale)
    return None


def _own_route(old, high: int, low: int, length: int, bits: int) -> int:
    """The number of the route of exactly this prefix in view ``old``, if an
    interval answers with it (-1: none, or covered whole by longer ones)."""
    top = (1 << bits) - 1
    last = top if length == 0 else high + (1 << (bits - length)) - 1
    i0 = max(int(old.starts.searchsorted(high, side="right")) - 1, 0)
    i1 = int(old.starts.searchsorted(last, side="right"))
    seg = old.leaf[i0:i1]
    seg = seg[seg >= 0]
    if not len(seg):
        return -1
    hit = (old.lengths[seg] == length) & (old.nets[seg] == high)
    if old.family != IPV4_UNICAST:
        hit &= old.nets_low[seg] == low
    found = seg[hit]
    return int(found[0]) if len(found) else -1


def _kept_out_of_gc(sets: list, old_sets: list) -> list:
    """``sets`` (the old view's sets and the patch's new ones) untracked by the
    cyclic collector when the old list was and no new set is, as a built
    view's list is (``attribution._viewbuild.slot_routes``): while tracked, the
    young collections after each patch read every set's header until the
    list reached the oldest generation."""
    if _untrack_set_list is not None and not gc.is_tracked(old_sets):
        _untrack_set_list(sets, len(old_sets))
    return sets


def _columns(old, new_routes: list, rewritten: dict[int, tuple] | None = None) -> dict:
    """The old view's route columns with ``new_routes`` appended and the
    routes numbered in ``rewritten`` given their new values."""
    rewritten = rewritten or {}
    at = list(rewritten)
    sets = list(old.attribute_sets)
    numbers: dict[int, int] = {}
    index, path_ids, rows = [], [], []
    for _, _, length, value, is_stale in [*new_routes, *rewritten.values()]:
        if type(value) is PathAttributes:
            attrs, path_id = value, 0
        else:
            path_id, attrs = value[0]  # ADD-PATH: best first
        number = numbers.get(id(attrs))
        if number is None:
            number = numbers[id(attrs)] = len(sets)
            sets.append(attrs)
        index.append(number)
        path_ids.append(path_id)
        default = length == 0
        empty = attrs.empty_path and not default
        bgp = not default and not empty
        rows.append(  # in viewanswers.ROW order
            (
                attrs.origin_as if bgp else 0,
                attrs.origin_as_highest if bgp else 0,
                attrs.peer_as if default or bgp else 0,
                attrs.peer_as_highest if default or bgp else 0,
                _DEFAULT if default else _LOCAL if empty else _BGP,
                bool(is_stale),
                bool(bgp and attrs.origin_from_set),
            )
        )
    answers, ids = old.answers.ids_of(rows)
    word = old.nets.dtype

    nets = [rt[0] for rt in new_routes]
    lows = [rt[1] for rt in new_routes]
    lengths = [rt[2] for rt in new_routes]
    n = len(new_routes)

    def cat(column: np.ndarray, values: list) -> np.ndarray:
        out = np.concatenate([column, np.array(values[:n], dtype=column.dtype)])
        if at:  # a copy (concatenate): the old view is read meanwhile
            out[at] = values[n:]
        return out

    columns = {
        "nets": np.concatenate([old.nets, np.array(nets, dtype=np.uint64).astype(word)])
        if n
        else old.nets,
        "nets_low": old.nets_low
        if old.family == IPV4_UNICAST
        else np.concatenate([old.nets_low, np.array(lows, dtype=np.uint64)])
        if n
        else old.nets_low,
        "lengths": np.concatenate([old.lengths, np.array(lengths, old.lengths.dtype)])
        if n
        else old.lengths,
        "path_ids": cat(old.path_ids, path_ids),
        "attribute_index": cat(old.attribute_index, index),
        "attribute_sets": _kept_out_of_gc(sets, old.attribute_sets),
        "answer": cat(old.answer.astype(id_dtype(len(answers)), copy=False), ids),
        "answers": answers,
    }
    columns["path_ids"] = squeeze(columns["path_ids"])
    return columns
