"""Bring a compiled lookup view up to date by patching what changed.

A full build (``attribution.fastpath.build_view``) costs 1-2.3 CPU-s for a
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
import socket
import time

import numpy as np

from attribution.viewanswers import AnswerTable, id_dtype, merge
from attribution.viewfamily import plain
from ribd.attributes import PathAttributes
from ribd.events import IPV4_UNICAST
from ribd.rib import Rib, slot_value

PATCH_MAX_CHANGES = 20_000  # changed prefixes up to which a view is patched
PATCH_GARBAGE = 0.5  # appended routes, as a share of all, past which a view is rebuilt
_BGP, _LOCAL, _DEFAULT = 1, 3, 4  # provenance codes, as in attribution.fastpath


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
        if r is not None and signature_of(r, family) == old.signature and unchanged(table, old):
            return advanced(old, table.change_seq, changed_ranges)
    old = plain(old)  # its router's own leaf (a family numbering's holes resolved)
    if old.patched_routes > PATCH_GARBAGE * max(len(old), 1):
        return None
    rib.merge_now(family)
    with rib.lock:
        r = rib.routers.get(old.neighbor)
        if r is None or signature_of(r, family) != old.signature:
            return None
        changes = table.changes_since(old.seq)
        if changes is None or len(changes) > PATCH_MAX_CHANGES:
            return None
        seq = table.change_seq
        store = table.store
        reads = _reads(memo, family, seq, store)
        slot, stale_slot, current_stale = old.signature
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
        made={},  # routes rewritten in place: RouteMatch objects made before are stale
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
    slot, stale_slot, _ = view.signature
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


def one_axis(views: list) -> list:
    """``views`` (one family's, every router's) moved onto one interval axis.

    The bulk path searches a batch's keys once in an axis all its routers'
    views share (``attribution.batch``), then reads each router's leaf.
    A patch gives its view an axis of its own (the changed prefixes' ends
    added, equal neighbours merged), so under churn the routers drifted off
    the shared axis until a full rebuild of all of them. Here every view's
    leaf is carried onto the union of the axes (a split interval keeps its
    answer), and bounds at which no router's answer changes are dropped
    again: the result is the coarsest axis that answers as each view did.
    Leaves that end up equal are one array. Returns the views, those that
    moved replaced by copies (the old ones stay valid for batches reading
    them); an empty or single-axis family comes back as it was.
    """
    axes = {id(v.starts): v.starts for v in views}
    if len(axes) < 2:
        return views
    # The axes are mostly the same bounds: each one's bounds new to the
    # first are found by a search (sorted input), and only those sorted in
    # (np.unique over 64 full axes sorted ~78 M bounds per refresh).
    first, *rest = axes.values()
    fresh = []
    for a in rest:
        at = np.minimum(first.searchsorted(a), len(first) - 1)
        fresh.append(a[first[at] != a])
    union = np.union1d(first, np.concatenate(fresh)) if fresh else first
    leaves: dict[tuple[int, int], np.ndarray] = {}  # (id(starts), id(leaf)) -> leaf on union
    for v in views:
        key = (id(v.starts), id(v.leaf))
        if key not in leaves:
            at = v.starts.searchsorted(union, side="right") - 1
            leaves[key] = v.leaf[at]
    keep = np.zeros(len(union), dtype=bool)
    keep[0] = True
    for leaf in leaves.values():
        keep[1:] |= leaf[1:] != leaf[:-1]
    starts = union[keep]
    starts.flags.writeable = False
    distinct: dict[bytes, list[np.ndarray]] = {}  # a sample of the leaf -> leaves with it
    for key, leaf in leaves.items():
        leaf = leaf[keep]
        sample = leaf[:: max(1, len(leaf) // 64)].tobytes()
        for seen in distinct.setdefault(sample, []):
            if np.array_equal(seen, leaf):
                leaf = seen
                break
        else:
            leaf.flags.writeable = False
            distinct[sample].append(leaf)
        leaves[key] = leaf
    return [
        dataclasses.replace(v, starts=starts, leaf=leaves[(id(v.starts), id(v.leaf))], pack=None)
        for v in views
    ]


# Columns the bulk path reads per key, packed per family (the answers
# through ``answer``, ids into the family's one ``AnswerTable``).
PACKED = ("leaf", "answer")


SHARED = ("nets", "nets_low", "lengths")


def _one_of_each(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """``arrays`` with equal ones replaced by one of them, the one most
    views already hold (its identity is what caches of unchanged views
    compare); constant broadcasts are left alone (they take no memory)."""
    held: dict[int, int] = {}
    by_id: dict[int, np.ndarray] = {}
    for a in arrays:
        held[id(a)] = held.get(id(a), 0) + 1
        by_id[id(a)] = a
    seen: dict[tuple, list[np.ndarray]] = {}
    canonical: dict[int, np.ndarray] = {}
    for i in sorted(held, key=held.__getitem__, reverse=True):
        a = by_id[i]
        if a.strides == (0,) or not len(a):
            canonical[i] = a
            continue
        key = (len(a), a.dtype.str, a[:: max(1, len(a) // 64)].tobytes())
        same = seen.setdefault(key, [])
        canonical[i] = next((b for b in same if np.array_equal(b, a)), a)
        if canonical[i] is a:
            same.append(a)
    return [canonical[id(a)] for a in arrays]


class Pack:
    """One array per column for all views of a family (``pack``).

    ``pools[name]``: the column of every view, one after the other (a
    column all views share is that one array; a constant one a broadcast);
    ``offsets[name][row]``: where view ``row``'s column starts in it;
    ``answers``: the table every packed view's ``answer`` ids point into.
    """

    __slots__ = ("answers", "offsets", "pools")

    def __init__(
        self, pools: dict[str, np.ndarray], offsets: dict[str, np.ndarray], answers: AnswerTable
    ) -> None:
        self.pools = pools
        self.offsets = offsets
        self.answers = answers


def pack(views: list) -> list:
    """``views`` (one family's, on one axis) with their per-key columns packed.

    A batch spread over 64 routers read each router's columns with a take
    of its own (6 per router: ~400 numpy calls per batch after churn, when
    every patched view has its own arrays). Packed, a column of every
    router is one array and a batch reads it with one take, each key's
    index shifted by its router's offset. Each view's column becomes its
    slice of the pool (no copy kept: the old arrays go with the old views).
    """
    if len(views) < 2 or len({id(v.starts) for v in views}) > 1:
        return views
    pools: dict[str, np.ndarray] = {}
    offsets: dict[str, np.ndarray] = {}
    columns: list[dict[str, np.ndarray]] = [{} for _ in views]
    # Columns not read per key, equal across routers (after a patch each
    # view has its own copies): one array again.
    for name in SHARED:
        arrays = _one_of_each([getattr(v, name) for v in views])
        for c, a, v in zip(columns, arrays, views, strict=True):
            if a is not getattr(v, name):
                c[name] = a
    answers, answer = _one_table(views)
    for c, a, t in zip(columns, answer, views, strict=True):
        c["answers"] = answers
        if a is not t.answer:
            c["answer"] = a
    zero = np.zeros(len(views), dtype=np.int64)
    for name in PACKED:
        arrays = _one_of_each(
            [c.get(name, getattr(v, name)) for c, v in zip(columns, views, strict=True)]
        )
        first = arrays[0]
        if all(a is first for a in arrays):
            pools[name], offsets[name] = first, zero
            continue
        if all(a.strides == (0,) and len(a) and a[0] == first[0] for a in arrays) and len(first):
            longest = max(len(a) for a in arrays)  # constant: read as one value
            pools[name], offsets[name] = np.broadcast_to(first[:1], (longest,)), zero
            continue
        at: dict[int, int] = {}
        parts, total = [], 0
        for a in arrays:
            if id(a) not in at:
                at[id(a)] = total
                parts.append(a)
                total += len(a)
        pool = np.concatenate(parts)
        pool.flags.writeable = False
        pools[name] = pool
        offsets[name] = np.fromiter((at[id(a)] for a in arrays), dtype=np.int64, count=len(arrays))
        for c, a, off in zip(columns, arrays, offsets[name].tolist(), strict=True):
            c[name] = pool[off : off + len(a)]
    packed = Pack(pools, offsets, answers)
    return [
        dataclasses.replace(v, pack=packed, pack_row=row, **columns[row])
        for row, v in enumerate(views)
    ]


def _one_table(views: list) -> tuple[AnswerTable, list[np.ndarray]]:
    """The family's one answer table for ``views`` and each view's ``answer``
    ids into it (the same array for views whose ids map alike)."""
    tables = list({id(v.answers): v.answers for v in views}.values())
    table, remaps = merge(tables)
    remap_of = {id(t): r for t, r in zip(tables, remaps, strict=True)}
    dtype = id_dtype(len(table))
    out: dict[tuple[int, int], np.ndarray] = {}
    for v in views:
        key = (id(v.answers), id(v.answer))
        if key not in out:
            remap = remap_of[key[0]]
            same = len(remap) == len(v.answers) == len(table) and v.answer.dtype == dtype
            if same and np.array_equal(remap, np.arange(len(remap))):
                out[key] = v.answer  # the same ids in the same table
            else:
                out[key] = remap.astype(dtype)[v.answer]
    return table, [out[(id(v.answers), id(v.answer))] for v in views]


def squeeze(column: np.ndarray) -> np.ndarray:
    """``column``, or, when every value is the same, a read-only broadcast of
    one value (no memory per route): path ids are 0 and stale flags all one
    value for most views."""
    if len(column) > 1 and (column[1:] == column[0]).all():
        return np.broadcast_to(column[:1].copy(), column.shape)  # a copy: not a view of it
    return column


def share_columns(columns: dict, others: list) -> dict:
    """``columns`` with each array that equals the same column of a view in
    ``others`` replaced by that view's array (read-only, so sharing is safe).

    Routers of one network mostly carry the same prefixes: their views then
    have the same intervals, the same route order and networks, and mostly
    the same AS numbers; only the attribute index (each router has its own
    sets) always differs. A view patched since its build has its own arrays
    again (patches concatenate).
    """
    out = dict(columns)
    for other in others:  # an equal answer table: one object (``pack`` merges less)
        if other.answers is not columns["answers"] and np.array_equal(
            other.answers.rows, columns["answers"].rows
        ):
            out["answers"] = other.answers
            break
    for name, column in columns.items():
        if type(column) is not np.ndarray:
            continue
        for other in others:
            theirs = getattr(other, name)
            if (
                theirs is not column
                and theirs.shape == column.shape
                and theirs.dtype == column.dtype
                and np.array_equal(theirs, column)
            ):
                out[name] = theirs
                break
    return out


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
        "attribute_sets": sets,
        "answer": cat(old.answer.astype(id_dtype(len(answers)), copy=False), ids),
        "answers": answers,
    }
    columns["path_ids"] = squeeze(columns["path_ids"])
    return columns
