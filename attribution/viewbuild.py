"""A full build of one router's compiled view of one family.

A build reads the RIB's store once (under its lock only the merge and a
copy of the entry references), reads the router's route out of each
prefix's entry, flattens the nested prefix ranges into disjoint intervals
and makes the answers: vectorised per prefix, and per entry and per
attribute set in C. Over wide entries
(16 routers or more) nearly every prefix's entry is distinct, so those loops
run per prefix: in Python they made a build ~0.9 CPU-s at 16 realistic
routers, 0.3 in C (BENCHMARKS.md, stop 32, refresh1). The loops that were a
build's cost are in C where compiled (``attribution._viewbuild``); their
numpy and Python versions here are the reference and the fallback. A full
build costs ~0.3-0.45 CPU-s for a real table; ``attribution.viewpatch``
patches a view instead when few prefixes changed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter

import numpy as np

from attribution.changedranges import ChangedRanges
from attribution.compiledview import CompiledView, view_signature
from attribution.viewanswers import ROW, AnswerTable, answer_rows, id_dtype, intern
from attribution.viewpack import share_columns, squeeze
from ribd.attributes import PathAttributes
from ribd.events import IPV4_UNICAST
from ribd.rib import Rib, slot_value

try:  # the build's loops in C (setup.py builds them where a C compiler is): same results
    from attribution._viewbuild import flatten_sorted as _compiled_flatten
    from attribution._viewbuild import set_fields as _compiled_set_fields
    from attribution._viewbuild import slot_routes as _compiled_slot_routes
except ImportError:
    _compiled_flatten = _compiled_set_fields = _compiled_slot_routes = None

# Provenance codes, as in attribution.resolver / the proto.
_BGP, _LOCAL, _DEFAULT = 1, 3, 4
# What a view reads of each attribute set (``PathAttributes``), in this order.
_SET_FIELDS = (
    "origin_as",
    "origin_as_highest",
    "peer_as",
    "peer_as_highest",
    "empty_path",
    "origin_from_set",
)
_set_fields = attrgetter(*_SET_FIELDS)


def flatten(
    starts: np.ndarray, lasts: np.ndarray, lengths: np.ndarray, bits: int
) -> tuple[np.ndarray, np.ndarray]:
    """Nested prefix ranges -> disjoint interval starts and the longest route there.

    ``starts``/``lasts`` (inclusive) are uint64 on a ``bits``-wide axis, one
    per route (index = route number); ranges of prefixes nest or are
    disjoint. The result covers the whole axis: starts[0] == 0, route -1
    where nothing matches. Vectorised: routes are painted onto the
    elementary intervals shortest length first, so the longest wins.
    """
    top = (1 << bits) - 1
    if _compiled_flatten is not None:  # one sweep, when the routes are in key order
        swept = _compiled_flatten(
            np.ascontiguousarray(starts, dtype=np.uint64),
            np.ascontiguousarray(lasts, dtype=np.uint64),
            top,
        )
        if swept is not None:
            return np.frombuffer(swept[0], dtype=np.uint64), np.frombuffer(swept[1], dtype=np.int32)
    return py_flatten(starts, lasts, lengths, bits)


def py_flatten(
    starts: np.ndarray, lasts: np.ndarray, lengths: np.ndarray, bits: int
) -> tuple[np.ndarray, np.ndarray]:
    """``flatten`` in numpy, for routes in any order: the reference of the
    compiled sweep (``attribution._viewbuild.flatten_sorted``)."""
    top = (1 << bits) - 1
    after = lasts[lasts < top] + np.uint64(1)
    bounds = np.sort(np.concatenate([np.zeros(1, dtype=np.uint64), starts, after]))
    bounds = bounds[np.concatenate([[True], bounds[1:] != bounds[:-1]])]
    leaf = np.full(len(bounds), -1, dtype=np.int32)
    first = np.searchsorted(bounds, starts)
    stop = np.searchsorted(bounds, lasts, side="right")  # intervals first..stop-1
    for length in np.unique(lengths).tolist():
        routes = np.nonzero(lengths == length)[0]  # disjoint: one length at a time
        spans = stop[routes] - first[routes]
        total = int(spans.sum())
        offsets = np.repeat(first[routes] - (np.cumsum(spans) - spans), spans)
        leaf[offsets + np.arange(total)] = np.repeat(routes.astype(np.int32), spans)
    keep = np.ones(len(leaf), dtype=bool)
    keep[1:] = leaf[1:] != leaf[:-1]
    return bounds[keep], leaf[keep]


# One router's route per prefix: (its attribute set's number, -1 none; path
# id; stale flag) by prefix, and the sets numbered by identity in first-seen order.
SlotRoutes = tuple[np.ndarray, np.ndarray, np.ndarray, list[PathAttributes]]


def py_slot_routes(
    entries: list, slot: int, stale_slot: int | None, current_stale: bool
) -> SlotRoutes:
    """Per entry (one per prefix, in store order), the router's best route in it
    (``slot_value``: its slot, else its stale slot): its attribute set's number
    (-1: no route), its path id and its stale flag, and the attribute sets
    numbered by identity in first-seen order. The reference for
    ``attribution._viewbuild.slot_routes``."""
    set_of = np.full(len(entries), -1, dtype=np.int32)
    path_ids = np.zeros(len(entries), dtype=np.uint32)
    stale = np.zeros(len(entries), dtype=bool)
    attribute_sets: list[PathAttributes] = []
    set_numbers: dict[int, int] = {}  # id(PathAttributes) -> index in attribute_sets
    for i, entry in enumerate(entries):
        if entry is None:
            continue
        value, is_stale = slot_value(entry, slot, stale_slot, current_stale)
        if value is None:
            continue
        if type(value) is PathAttributes:
            attrs, path_id = value, 0
        else:
            path_id, attrs = value[0]  # type: ignore[index]  # ADD-PATH: best first
        number = set_numbers.get(id(attrs))
        if number is None:
            number = set_numbers[id(attrs)] = len(attribute_sets)
            attribute_sets.append(attrs)
        set_of[i] = number
        path_ids[i] = path_id
        stale[i] = is_stale
    return set_of, path_ids, stale, attribute_sets


def slot_routes(
    entries: list, slot: int, stale_slot: int | None, current_stale: bool
) -> SlotRoutes:
    """``py_slot_routes``, in C when ``attribution._viewbuild`` was built."""
    if _compiled_slot_routes is None:
        return py_slot_routes(entries, slot, stale_slot, current_stale)
    stale = -1 if stale_slot is None else stale_slot
    set_of, path_ids, stale_of, attribute_sets = _compiled_slot_routes(
        entries, slot, stale, current_stale
    )
    return (
        np.frombuffer(set_of, dtype=np.int32),
        np.frombuffer(path_ids, dtype=np.uint32),
        np.frombuffer(stale_of, dtype=bool),
        attribute_sets,
    )


def py_set_fields(attribute_sets: list[PathAttributes]) -> np.ndarray:
    """The sets' answer fields in one pass (six list comprehensions were a
    fifth of a build): int64, one row per set, in _SET_FIELDS order. The
    reference for ``attribution._viewbuild.set_fields``."""
    return np.fromiter(
        chain.from_iterable(map(_set_fields, attribute_sets)),
        dtype=np.int64,
        count=len(_SET_FIELDS) * len(attribute_sets),
    ).reshape(-1, len(_SET_FIELDS))


def set_fields(attribute_sets: list[PathAttributes]) -> np.ndarray:
    """``py_set_fields``, in C (read from each set's core) when compiled."""
    if _compiled_set_fields is None:
        return py_set_fields(attribute_sets)
    packed = _compiled_set_fields(attribute_sets, _SET_FIELDS)
    return np.frombuffer(packed, dtype=np.int64).reshape(-1, len(_SET_FIELDS))


@dataclass(slots=True)
class FamilyRead:
    """One read of a family's store for several routers' builds (``read_family``):
    per router its signature and its route per prefix (``slot_routes``), all
    as of change ``seq``."""

    seq: int
    keys: np.ndarray
    width: int
    routes: dict[str, tuple[tuple, SlotRoutes]]  # neighbor -> (signature, slot_routes)


def read_family(rib: Rib, family: str, neighbors: list[str]) -> FamilyRead:
    """Read the store once for the views of ``neighbors`` (routers gone are left out).

    A batch of builds (every router's view after a restart or a refresh: 16
    at once) read the store and copied its entry references once per
    router: ~50 ms each over a full table of wide entries. The entry list is
    held only until every router's routes are read out of it (references to
    it keep replaced rows interned until then). Views built from one read are
    snapshots at one change number, as a view built alone is at its own; the
    change log brings each up to date.

    Each router's routes are its slot of each prefix's entry, read in one
    compiled pass (``slot_routes``). They were read per distinct entry, the
    entries first numbered by identity: over wide entries (16 routers and
    more) nearly every prefix's entry is its own, so that numbered every
    prefix again for nothing, and a late router's build alone paid for the
    numbering of a store every router shares (BENCHMARKS.md, stop 41,
    lone41). The one place a build reads the RIB's store (kept small: the
    store's layout is the RIB's).
    """
    table = rib.tables[family]
    # Most of the merge with the lock free (a table just loaded is all in the
    # delta: merging it under the lock held it for seconds); under the lock,
    # only what came in meanwhile.
    rib.merge_now(family)
    with rib.lock:
        signatures = {}
        for neighbor in neighbors:
            r = rib.routers.get(neighbor)
            if r is not None:
                signatures[neighbor] = view_signature(r, family, table)
        seq = table.change_seq
        table.store.merge()
        keys = table.store.keys  # never mutated: a new array per merge
        width = table.store.width
        entries = table.store.values.tolist()
    routes = {
        n: (sig, slot_routes(entries, sig[0], sig[1], sig[2])) for n, sig in signatures.items()
    }
    del entries
    return FamilyRead(seq, keys, width, routes)


def answers_of_routes(
    index: np.ndarray, default: np.ndarray, stale: np.ndarray, by_set: np.ndarray
) -> tuple[np.ndarray, AnswerTable]:
    """Each route's answer id and the answer table (``viewanswers.answer_rows``),
    from each route's attribute set number ``index``, default flag (length 0)
    and stale flag, and the sets' fields ``by_set``.

    A route's answer follows from those three, so the rows are made once per
    *combination* (set, default, stale) some route has, numbered by a dense
    array of all four per set (no sort), and the routes take their
    combination's id. It was per distinct entry, then ``np.unique`` over
    those: over wide entries every prefix is its own entry (an Overlay), so
    that sorted ~every route, and computed six columns per route: the
    largest part of a build after the compiled loops (BENCHMARKS.md, stop
    33, refresh2). The table is the same (``intern`` sorts the distinct rows).
    """
    if not len(index):
        return answer_rows(
            np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=bool),
            np.zeros(0, dtype=bool),
            tuple(np.zeros(0, dtype=np.uint32) for _ in range(6)),
        )
    combo = (index.astype(np.int64) << 2) | stale
    combo[np.flatnonzero(default)] |= 2
    width = 4 * len(by_set)
    if int(combo.max()) >= width or int(combo.min()) < 0:
        raise IndexError("answers_of_routes: a route's attribute set is past the sets' fields")
    seen = np.zeros(width, dtype=bool)
    seen[combo] = True
    kinds = np.flatnonzero(seen)  # the combinations, ascending
    place = np.zeros(width, dtype=np.intp)
    place[kinds] = np.arange(len(kinds))
    index = kinds >> 2
    is_default = (kinds & 2) != 0
    stale = (kinds & 1) != 0
    fields = by_set[index]
    empty = (fields[:, 4] != 0) & ~is_default
    bgp = ~is_default & ~empty
    # Default route: peer only; empty path: origin is our local AS (config,
    # filled in per batch), peer 0; otherwise both from the path.
    u32 = np.uint32
    rows = np.zeros(len(kinds), dtype=ROW)
    rows["origin_as"] = np.where(bgp, fields[:, 0], 0).astype(u32)
    rows["origin_as_highest"] = np.where(bgp, fields[:, 1], 0).astype(u32)
    rows["peer_as"] = np.where(is_default | bgp, fields[:, 2], 0).astype(u32)
    rows["peer_as_highest"] = np.where(is_default | bgp, fields[:, 3], 0).astype(u32)
    rows["provenance"] = np.select([is_default, empty], [_DEFAULT, _LOCAL], _BGP)
    rows["stale"] = stale
    rows["from_set"] = bgp & (fields[:, 5] != 0)
    ids, distinct = intern(rows)
    answer = ids.astype(id_dtype(len(distinct)))[place[combo]]
    return answer, AnswerTable(distinct)


def build_view(
    rib: Rib,
    neighbor: str,
    family: str,
    others: list[CompiledView] | None = None,
    read: FamilyRead | None = None,
) -> CompiledView | None:
    """Compile one router's routes of one family.

    Under the RIB lock only the store's merge (new prefixes into its arrays)
    and a copy of its entry references; the rest works on those, vectorised
    per prefix and in Python only per distinct entry.

    Memory: a column whose values are all the same (path ids, stale flags) is
    a broadcast of one value; pmacct's "highest" AS columns are the plain ones
    when equal (no AS_SET changes them); and a column equal to the same
    column of a view in ``others`` (other routers' views of the family) is
    that view's array: routers with the same prefixes share their intervals,
    networks and mostly their AS numbers (``viewpatch.share_columns``).

    ``read``: the family's store as ``read_family`` read it for a batch of
    builds (used, and ``neighbor``'s part taken out of it, when it holds
    ``neighbor``; else the store is read here).
    """
    v4 = family == IPV4_UNICAST
    if read is None or neighbor not in read.routes:
        read = read_family(rib, family, [neighbor])
        if neighbor not in read.routes:
            return None  # the router is gone
    seq, keys, width = read.seq, read.keys, read.width
    # This router's best path per prefix, if any (its columns freed after this build).
    signature, (set_of, path_of, stale_of, attribute_sets) = read.routes.pop(neighbor)
    routed = np.flatnonzero(set_of >= 0)
    index, path_ids, stale = set_of[routed], path_of[routed], stale_of[routed]
    raw = keys.view(np.uint8).reshape(len(keys), width)[routed]
    all_lengths = raw[:, -1] - np.uint8(1)
    if v4:
        net_arr = raw[:, :4].copy().view(">u4").reshape(-1).astype(np.uint64)
        nets_low = np.zeros(0, dtype=np.uint64)
        long_v6 = np.zeros(0, dtype=np.uint64)
        short = slice(None)
    else:
        high = raw[:, :8].copy().view(">u8").reshape(-1).astype(np.uint64)
        low = raw[:, 8:16].copy().view(">u8").reshape(-1).astype(np.uint64)
        is_long = all_lengths > 64
        long_v6 = high[is_long]
        short = ~is_long
        net_arr, nets_low = high[short], low[short]
    length_arr = all_lengths[short]
    index, path_ids, stale = index[short], path_ids[short], stale[short]
    bits = 32 if v4 else 64
    span = np.left_shift(np.uint64(1), (bits - length_arr.astype(np.uint64)) % np.uint64(64))
    last_arr = np.where(length_arr == 0, np.uint64((1 << bits) - 1), net_arr + span - np.uint64(1))
    starts, leafs = flatten(net_arr, last_arr, length_arr, bits)
    by_set = set_fields(attribute_sets)  # six answer fields per set
    if not len(attribute_sets):
        by_set = np.zeros((1, len(_SET_FIELDS)), dtype=np.int64)
    answer, answers = answers_of_routes(index, length_arr == 0, stale, by_set)
    word = np.uint32 if v4 else np.uint64
    columns = {
        "starts": starts.astype(word),
        "leaf": leafs,
        "nets": net_arr.astype(word),
        "nets_low": nets_low,
        "lengths": length_arr,
        "path_ids": squeeze(path_ids),
        "attribute_index": index,
        "answer": answer,
        "answers": answers,
        "long_v6": np.unique(long_v6),
    }
    if others:
        columns = share_columns(columns, others)
    return CompiledView(
        neighbor=neighbor,
        family=family,
        signature=signature,
        seq=seq,
        built_at=time.monotonic(),
        attribute_sets=attribute_sets,
        changed=ChangedRanges.empty(v4, seq),
        **columns,
    )
