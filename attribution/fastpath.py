"""Vectorised longest-prefix match for bulk resolution.

A per-flow Python loop of RIB lookups tops out near 0.15 M flows/s; the
bulk path needs several times that. So each (router, family) RIB is also
*compiled*: flattened into sorted, disjoint address intervals, each pointing at
the route that is the longest match there, and a whole batch is answered with
one ``numpy.searchsorted``.

Never older than the RIB: a compiled view records the RIB's change number
when it was built and the router's slot layout. At lookup time, every address
inside a prefix changed since then is answered by the exact per-flow path
instead, and a view whose router changed layout (session lost, purged, stale
generation retired) is not used at all. Views are rebuilt in the background
(``CompiledViews.refresh``); a batch never waits for a build.

IPv6: intervals are keyed by the upper 64 bits. Prefixes longer than /64 are
rare; addresses under one of them take the exact path.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter

import numpy as np

from attribution.changedranges import ChangedRanges as ChangedRanges  # re-exported
from attribution.viewanswers import AnswerTable, answer_rows
from attribution.viewfamily import NO_HOLES, effective, renumber
from attribution.viewpatch import (
    Pack,
    one_axis,
    pack,
    patch_view,
    share_columns,
    squeeze,
    unchanged,
)
from ribd.attributes import PathAttributes
from ribd.events import IPV4_UNICAST
from ribd.rib import Rib, RouteMatch, RouterRib, slot_value

try:  # the build's loops in C (setup.py builds them where a C compiler is): same results
    from attribution._viewbuild import flatten_sorted as _compiled_flatten
    from attribution._viewbuild import identity_codes as _compiled_identity_codes
except ImportError:
    _compiled_identity_codes = _compiled_flatten = None

# Provenance codes, as in attribution.resolver / the proto.
_BGP, _LOCAL, _DEFAULT = 1, 3, 4
REBUILD_AFTER_CHANGES = 20_000  # changed prefixes before a view is rebuilt
# Rebuild a view with any changes after this long. A full-table build costs
# ~2 s of CPU; under steady churn, rebuilding often starved the feed.
REBUILD_AFTER_SECONDS = 60.0
MADE_ROUTES = 65_536  # RouteMatch objects a view keeps for reuse (then starts again)
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


def view_signature(r: RouterRib, family: str) -> tuple:
    fs = r.families[family]
    return (fs.slot, fs.stale_slot, r.current_stale)


@dataclass(slots=True)
class CompiledView:
    neighbor: str
    family: str
    signature: tuple
    seq: int  # RIB change number at build start
    built_at: float
    starts: np.ndarray  # sorted interval starts (uint32 v4, uint64 v6 upper half)
    leaf: np.ndarray  # int32 per interval: route index or -1
    # Routes are columns, not RouteMatch objects (a full table's worth of
    # objects cost ~250 bytes per prefix); ``route(i)`` makes one on demand.
    nets: np.ndarray  # per route: network (uint32 v4, uint64 upper half v6)
    nets_low: np.ndarray  # per route: lower half of an IPv6 network (empty for v4)
    lengths: np.ndarray  # uint8 per route
    path_ids: np.ndarray  # uint32 per route
    attribute_index: np.ndarray  # int32 per route, into attribute_sets
    attribute_sets: list[PathAttributes]
    # Per route, the id of its answer (origin, peer, provenance, flags) in
    # ``answers``, a table the family's views share (``attribution.viewanswers``).
    answer: np.ndarray  # uint16 (a table of <= 65,536 rows) or uint32
    answers: AnswerTable
    long_v6: np.ndarray  # uint64 upper halves of IPv6 prefixes longer than /64
    changed: ChangedRanges  # replaced (under the RIB lock) as changes come in
    made: dict[int, RouteMatch] = field(default_factory=dict)  # recent route(i) results
    patched_routes: int = 0  # routes appended by patches (attribution.viewpatch)
    # The family's columns packed into one array each (viewpatch.pack): this
    # view's columns are slices of ``pack.pools`` at ``pack.offsets[name][pack_row]``.
    # None: not packed (a build or patch since); replaced views drop it.
    pack: Pack | None = None
    pack_row: int = 0
    # Leaf values (family route numbers, ``viewfamily.renumber``) at which
    # this router answers with another route of its own (``hole_to``, -1:
    # none): sorted, empty while the view numbers its routes alone.
    holes: np.ndarray = field(default_factory=lambda: NO_HOLES)
    hole_to: np.ndarray = field(default_factory=lambda: NO_HOLES)
    # Leading routes numbered by the family's last ``viewfamily.renumber``
    # (patches append past them; 0: a build's own numbering).
    numbered: int = 0

    # The answer columns per route, made from the table (tests, explain):
    # the bulk path reads ``answer`` and ``answers`` instead.
    @property
    def origin_as(self) -> np.ndarray:
        return self.answers.rows["origin_as"][self.answer]

    @property
    def origin_as_highest(self) -> np.ndarray:
        return self.answers.rows["origin_as_highest"][self.answer]

    @property
    def peer_as(self) -> np.ndarray:
        return self.answers.rows["peer_as"][self.answer]

    @property
    def peer_as_highest(self) -> np.ndarray:  # as_set_policy "highest": 0 for a leading AS_SET
        return self.answers.rows["peer_as_highest"][self.answer]

    @property
    def provenance(self) -> np.ndarray:  # bgp / local / default
        return self.answers.rows["provenance"][self.answer]

    @property
    def from_set(self) -> np.ndarray:
        return self.answers.rows["from_set"][self.answer]

    @property
    def stale(self) -> np.ndarray:
        return self.answers.rows["stale"][self.answer]

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Route index (or -1) for each key."""
        return self.own(self.leaf[np.searchsorted(self.starts, keys, side="right") - 1])

    def own(self, leaf: np.ndarray) -> np.ndarray:
        """``leaf`` values as the numbers of this router's own routes (-1:
        none): a hole of the family's numbering becomes the route the router
        answers with there (``viewfamily``); what reads routes (``route``,
        the route dictionaries) takes these."""
        return effective(self.holes, self.hole_to, leaf)

    def __len__(self) -> int:
        """Number of routes."""
        return len(self.lengths)

    def same_routes(self, other: CompiledView) -> bool:
        """Whether this view numbers ``other``'s routes alike (it may have
        more): a view moved onto another interval axis (``one_axis``) keeps
        its route columns, and one renumbered with its family
        (``viewfamily.renumber``) after others changed keeps its numbers and
        gets new ones past them, so caches keyed by route number stay right
        (grown to ``len(self)``)."""
        if other is self:
            return True
        if other.attribute_sets is not self.attribute_sets:
            return False
        if (
            other.attribute_index is self.attribute_index
            and other.nets is self.nets
            and other.nets_low is self.nets_low
            and other.path_ids is self.path_ids
        ):
            return True
        n = len(other)
        if n > len(self):
            return False
        return all(
            np.array_equal(getattr(self, name)[:n], getattr(other, name))
            for name in ("nets", "lengths", "path_ids", "attribute_index")
        ) and (
            (self.family == IPV4_UNICAST or np.array_equal(self.nets_low[:n], other.nets_low))
            and np.array_equal(self.stale[:n], other.stale)
        )

    def route(self, i: int) -> RouteMatch:
        m = self.made.get(i)
        if m is None:
            if len(self.made) >= MADE_ROUTES:
                self.made.clear()
            m = self.made[i] = self._make_route(i)
        return m

    def _make_route(self, i: int) -> RouteMatch:
        length = int(self.lengths[i])
        if self.family == IPV4_UNICAST:
            text = socket.inet_ntoa(int(self.nets[i]).to_bytes(4, "big"))
        else:
            packed = int(self.nets[i]).to_bytes(8, "big") + int(self.nets_low[i]).to_bytes(8, "big")
            text = socket.inet_ntop(socket.AF_INET6, packed)
        return RouteMatch(
            f"{text}/{length}",
            length,
            self.attribute_sets[self.attribute_index[i]],
            int(self.path_ids[i]),
            bool(self.answers.rows["stale"][self.answer[i]]),
        )


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


def py_identity_codes(entries: list) -> tuple[np.ndarray, list[int]]:
    """The entries' objects numbered by identity in first-seen order: (the
    number of each entry, int32; the index where each number first occurs).
    The reference for ``attribution._viewbuild.identity_codes``, which a
    build uses when compiled (a dict probe per prefix here)."""
    code_of: dict[int, int] = {}  # id(entry) -> code
    setdefault = code_of.setdefault
    codes = np.fromiter(
        (setdefault(id(e), len(code_of)) for e in entries), dtype=np.int32, count=len(entries)
    )
    return codes, np.unique(codes, return_index=True)[1].tolist()


def identity_codes(entries: list) -> tuple[np.ndarray, list[int]]:
    """``py_identity_codes``, in C when ``attribution._viewbuild`` was built."""
    if _compiled_identity_codes is None:
        return py_identity_codes(entries)
    codes, first = _compiled_identity_codes(entries)
    return np.frombuffer(codes, dtype=np.int32), np.frombuffer(first, dtype=np.int64).tolist()


def _read_store(rib: Rib, neighbor: str, family: str) -> tuple | None:
    """(signature, change seq, the store's keys, key width, its entries as a
    list) for a build, or None when the router is gone: the one place a build
    reads the RIB's store (kept small: the store's layout is the RIB's)."""
    table = rib.tables[family]
    # Most of the merge with the lock free (a table just loaded is all in the
    # delta: merging it under the lock held it for seconds); under the lock,
    # only what came in meanwhile.
    rib.merge_now(family)
    with rib.lock:
        r = rib.routers.get(neighbor)
        if r is None:
            return None
        signature = view_signature(r, family)
        seq = table.change_seq
        table.store.merge()
        keys = table.store.keys  # never mutated: a new array per merge
        return signature, seq, keys, table.store.width, table.store.values.tolist()


def _answers(
    codes: np.ndarray,
    default: np.ndarray,
    code_set: np.ndarray,
    code_stale: np.ndarray,
    by_set: np.ndarray,
) -> tuple[np.ndarray, AnswerTable]:
    """Each route's answer id and the answer table (``viewanswers.answer_rows``).

    A route's answer follows from its entry (``codes``: its attribute set and
    stale flag, per distinct entry) and whether it is the default route (at
    most one route: length 0). So the rows are made per *kind*, a distinct
    entry some non-default route holds, plus the default route's own, and
    the routes take their kind's id: numpy over ~one kind per attribute set
    instead of over every route (``answer_rows`` sorted all routes' keys).
    The table is the same (``intern`` sorts the distinct rows).
    """
    at_default = np.flatnonzero(default)
    used = np.zeros(len(code_set), dtype=bool)
    used[np.delete(codes, at_default) if len(at_default) else codes] = True
    kinds = np.flatnonzero(used)
    is_default = np.zeros(len(kinds) + len(at_default), dtype=bool)  # per kind
    is_default[len(kinds) :] = True
    kind_codes = np.concatenate([kinds, codes[at_default]])
    index = code_set[kind_codes]
    empty = (by_set[index, 4] != 0) & ~is_default
    bgp = ~is_default & ~empty
    # Default route: peer only; empty path: origin is our local AS (config,
    # filled in per batch), peer 0; otherwise both from the path.
    u32 = np.uint32
    origin = np.where(bgp, by_set[index, 0], 0).astype(u32)
    highest = np.where(bgp, by_set[index, 1], 0).astype(u32)
    peer = np.where(is_default | bgp, by_set[index, 2], 0).astype(u32)
    peer_highest = np.where(is_default | bgp, by_set[index, 3], 0).astype(u32)
    prov = np.select([is_default, empty], [_DEFAULT, _LOCAL], _BGP).astype(np.uint8)
    from_set = bgp & (by_set[index, 5] != 0)
    kind_answer, answers = answer_rows(
        index,
        is_default,
        code_stale[kind_codes],
        (origin, highest, peer, peer_highest, prov, from_set),
    )
    number = np.zeros(len(code_set), dtype=np.intp)
    number[kinds] = np.arange(len(kinds))
    answer = kind_answer[number[codes]]
    answer[at_default] = kind_answer[len(kinds) :]
    return answer, answers


def build_view(
    rib: Rib, neighbor: str, family: str, others: list[CompiledView] | None = None
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
    """
    v4 = family == IPV4_UNICAST
    read = _read_store(rib, neighbor, family)
    if read is None:
        return None
    signature, seq, keys, width, entries = read
    slot, stale_slot, current_stale = signature
    # Per distinct entry: this router's best path, if any.
    codes, first_seen = identity_codes(entries)
    distinct = len(first_seen)
    # Per distinct entry with a route: its code, set number, path id, stale
    # flag, gathered in lists and stored in one numpy call each (an item
    # assignment per entry cost more than the loop's own work).
    routed_codes: list[int] = []
    numbers: list[int] = []
    path_id_of: list[int] = []
    stale_of: list[bool] = []
    attribute_sets: list[PathAttributes] = []
    set_numbers: dict[int, int] = {}  # id(PathAttributes) -> index in attribute_sets
    for code, at in enumerate(first_seen):
        entry = entries[at]
        if entry is None:
            continue
        value, is_stale = slot_value(entry, slot, stale_slot, current_stale)  # type: ignore[arg-type]
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
        routed_codes.append(code)
        numbers.append(number)
        path_id_of.append(path_id)
        stale_of.append(is_stale)
    has_route = np.zeros(distinct, dtype=bool)
    code_set = np.zeros(distinct, dtype=np.int32)
    code_path_id = np.zeros(distinct, dtype=np.uint32)
    code_stale = np.zeros(distinct, dtype=bool)
    has_route[routed_codes] = True
    code_set[routed_codes] = numbers
    code_path_id[routed_codes] = path_id_of
    code_stale[routed_codes] = stale_of
    del entries
    routed = np.flatnonzero(has_route[codes]) if len(codes) else np.zeros(0, dtype=np.intp)
    codes = codes[routed]
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
    codes = codes[short]
    length_arr = all_lengths[short]
    index = code_set[codes]
    path_ids = code_path_id[codes]
    bits = 32 if v4 else 64
    span = np.left_shift(np.uint64(1), (bits - length_arr.astype(np.uint64)) % np.uint64(64))
    last_arr = np.where(length_arr == 0, np.uint64((1 << bits) - 1), net_arr + span - np.uint64(1))
    starts, leafs = flatten(net_arr, last_arr, length_arr, bits)
    # The sets' answer fields in one pass (six list comprehensions were a
    # fifth of a build): flat, six per set, in _SET_FIELDS order.
    by_set = np.fromiter(
        chain.from_iterable(map(_set_fields, attribute_sets)),
        dtype=np.int64,
        count=len(_SET_FIELDS) * len(attribute_sets),
    ).reshape(-1, len(_SET_FIELDS))
    if not len(attribute_sets):
        by_set = np.zeros((1, len(_SET_FIELDS)), dtype=np.int64)
    answer, answers = _answers(codes, length_arr == 0, code_set, code_stale, by_set)
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


class CompiledViews:
    """The compiled views of every (router, family), kept fresh in the background."""

    def __init__(self, rib: Rib) -> None:
        self.rib = rib
        self._views: dict[tuple[str, str], CompiledView] = {}
        self._wanted: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        # family -> (ranges, the same extended to the table's change_seq): see usable
        self._extended: dict[str, tuple[ChangedRanges, ChangedRanges]] = {}
        self.builds = 0
        self.patches = 0
        self.advanced = 0  # views made current without a patch (viewpatch.advanced)

    def usable(self, neighbor: str, family: str) -> tuple[CompiledView, ChangedRanges] | None:
        """A view and the ranges changed since it was built; call under rib.lock."""
        return self.usable_many([(neighbor, family)])[0]

    def usable_many(
        self, wants: list[tuple[str, str]]
    ) -> list[tuple[CompiledView, ChangedRanges] | None]:
        """``usable`` of each (neighbor, family) of a batch; call under rib.lock.
        What is per family (its table's change numbers) is read once: a
        batch spread over 64 routers asks 64 times."""
        views, routers, tables = self._views, self.rib.routers, self.rib.tables
        per_family: dict[str, tuple] = {}
        out: list[tuple[CompiledView, ChangedRanges] | None] = []
        for key in wants:
            view = views.get(key)
            r = routers.get(key[0])
            if view is None or r is None:
                self._wanted.add(key)
                out.append(None)
                continue
            family = key[1]
            fs = r.families[family]
            if (fs.slot, fs.stale_slot, r.current_stale) != view.signature:  # view_signature
                self._wanted.add(key)
                out.append(None)
                continue
            known = per_family.get(family)
            if known is None:
                table = tables[family]
                known = per_family[family] = (table, table.changes_start, table.change_seq)
            table, changes_start, seq = known
            if view.seq == seq and view.changed.seq == seq:  # nothing changed since
                out.append((view, view.changed))
                continue
            if unchanged(table, view):  # changes of other routers only
                out.append((view, view.changed))
                continue
            if view.seq < changes_start:  # the log no longer reaches back
                self._wanted.add(key)
                out.append(None)
                continue
            out.append(self._catch_up(view, family, table, seq))
        return out

    def _catch_up(
        self, view: CompiledView, family: str, table, seq: int
    ) -> tuple[CompiledView, ChangedRanges]:
        """``view`` and its changed ranges extended to ``seq``; asks for a
        rebuild past the limits."""
        changes = seq - view.seq
        if changes and (
            changes > REBUILD_AFTER_CHANGES
            or time.monotonic() - view.built_at > REBUILD_AFTER_SECONDS
        ):
            self._wanted.add((view.neighbor, family))
        changed = view.changed
        if changed.seq < seq:
            # Views refreshed together share their ranges (``_one_axis``):
            # the first to see new changes extends them, the others reuse
            # that, so a batch over 64 routers under churn pays one extend.
            last = self._extended.get(family)
            if last is not None and last[0] is changed and last[1].seq == seq:
                changed = last[1]
            else:
                new = changed.extend(table.changes_since(changed.seq) or [], seq)
                self._extended[family] = (changed, new)
                changed = new
            view.changed = changed
        return view, changed

    def want_missing(self, neighbors: Iterable[str]) -> None:
        """Ask for views that routers with a usable table lack; call under rib.lock.

        Lets the daemon compile a router's view once its table is complete
        (End-of-RIB, or kept stale across a restart) instead of when the
        first flows arrive, which then would take the slow exact path.
        """
        for neighbor in neighbors:
            r = self.rib.routers.get(neighbor)
            if r is None:
                continue
            for family, fs in r.families.items():
                ready = fs.converged or fs.stale_slot is not None
                if not ready or not (fs.prefixes or fs.stale_prefixes):
                    continue
                view = self._views.get((neighbor, family))
                if view is None or view.signature != view_signature(r, family):
                    self._wanted.add((neighbor, family))

    def current(self) -> list[CompiledView]:
        """The views lookups use now."""
        return list(self._views.values())

    def refresh(self) -> int:
        """Build the views lookups asked for; returns how many were built."""
        with self._lock:
            wanted, self._wanted = self._wanted, set()
            # Views of the same families whose routers changed nothing are
            # made current (``viewpatch.advanced``), so the change log trims.
            families = {f for _, f in wanted}
            wanted |= {k for k in self._views if k[1] in families}
            built = advanced = 0
            memo: dict = {}  # the store read once per changed prefix for all patches
            for neighbor, family in sorted(wanted):
                old = self._views.get((neighbor, family))
                view = None
                if old is not None:  # the changed ranges only, if that is enough
                    view = patch_view(self.rib, old, ChangedRanges, view_signature, memo)
                    if view is not None and view.leaf is old.leaf and view.answer is old.answer:
                        self._views[(neighbor, family)] = view  # its router changed nothing
                        advanced += 1
                        continue
                    self.patches += view is not None
                if view is None:
                    others = [
                        v for (n, f), v in self._views.items() if f == family and n != neighbor
                    ]
                    view = build_view(self.rib, neighbor, family, others[-2:])
                if view is not None:
                    self._views[(neighbor, family)] = view
                    built += 1
                else:
                    self._views.pop((neighbor, family), None)
            self.builds += built
            self.advanced += advanced
            if built or advanced:
                for family in {f for _, f in wanted}:
                    self._one_axis(family)
                self._trim()
            return built

    def _one_axis(self, family: str) -> None:
        """Every view of ``family`` onto one interval axis (``viewpatch.one_axis``),
        their columns packed (``viewpatch.pack``).

        Views are replaced whole (a batch holding the old one keeps reading
        it); their routes, seq and changed ranges are the same objects, so
        caches keyed by route number stay right.
        """
        keys = [k for k in self._views if k[1] == family]
        views = [self._views[k] for k in keys]
        if views and views[0].pack is not None and all(v.pack is views[0].pack for v in views):
            return  # nothing changed since the last pack
        moved = pack(renumber(one_axis(views)))
        # Views that saw the same changes share one ChangedRanges (see usable).
        ranges: dict[tuple[int, int], ChangedRanges] = {}
        for k, v in zip(keys, moved, strict=True):
            v.changed = ranges.setdefault((v.seq, v.changed.seq), v.changed)
            self._views[k] = v

    def _trim(self) -> None:
        """Let the RIB forget changes every view has seen."""
        with self.rib.lock:
            for family, table in self.rib.tables.items():
                seqs = [v.seq for (_, f), v in self._views.items() if f == family]
                if seqs:
                    table.trim_changes(min(seqs))
