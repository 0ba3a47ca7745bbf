"""One router's compiled view of one family: its routes as columns and the
disjoint address intervals that answer a longest-prefix match by one
``numpy.searchsorted``.

The type is what the bulk path reads (``attribution.batch_views``,
``attribution.wire``); how a view is made is ``attribution.viewbuild`` (a
full build) and ``attribution.viewpatch`` (a patch), and how views are kept
fresh is ``attribution.fastpath.CompiledViews``.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import not_

import numpy as np

from attribution import routecache
from attribution.changedranges import ChangedRanges
from attribution.routecache import RouteCache
from attribution.viewanswers import AnswerTable
from attribution.viewfamily import NO_HOLES, effective
from attribution.viewpack import Pack
from ribd.attributes import PathAttributes
from ribd.events import IPV4_UNICAST
from ribd.rib import RouteMatch, RouterRib
from ribd.table import FamilyState

MADE_ROUTES = 65_536  # RouteMatch objects a view keeps for reuse (then starts again)
# (and all views together at most routecache.ROUTE_CACHE_BUDGET)
_NO_LEAVES = np.zeros(0, dtype=np.int32)
_NO_PAIRS = np.zeros(0, dtype=object)


def view_signature(r: RouterRib, family: str, table) -> tuple:
    """The router's slot layout a view of ``family`` is built over (``slot_layout``
    of its family state)."""
    return slot_layout(r, r.families[family], table)


def slot_layout(r: RouterRib, fs: FamilyState, table) -> tuple:
    """The slot layout of the router's family state ``fs``: its slot, stale slot,
    whether its current routes are stale, and the two slots' births (``table``:
    the family's ``ribd.table.FamilyTable``). The births tell a slot released and
    allocated again from the one a view read: its sweep logged no change, so only
    a new signature keeps the view from answering swept routes."""
    births = table.slot_births
    slot, stale = fs.slot, fs.stale_slot
    return (slot, stale, r.current_stale, births.get(slot), births.get(stale))


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
    # Recent route(i) results and the route dictionaries' pairs (``pairs``),
    # shared by views copied from this one; a patch gives a new one.
    made: RouteCache = field(default_factory=RouteCache)
    patched_routes: int = 0  # routes appended by patches (attribution.viewpatch)
    # The family's columns packed into one array each (viewpack.pack): this
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
        made = self.made
        made.touch()
        m = made.get(i)
        if m is None:
            m = self._make_route(i)
            if made.admits(1, len(made), MADE_ROUTES):
                made[i] = m
                routecache.BUDGET.added(made, 1)
        return m

    def routes(self, leaves: list[int]) -> list[RouteMatch]:
        """``route`` of each of ``leaves`` (distinct), read in one ``map``:
        a batch with routes names thousands, and a ``route`` call each was
        most of the route dictionary's cost (``batch_routes``). New routes
        are kept while the view's and the process's room allow
        (``routecache``)."""
        made = self.made
        made.touch()
        out = list(map(made.get, leaves))
        missing = list(compress(leaves, map(not_, out)))  # (not: no __eq__ calls)
        if missing:
            make = self._make_route
            if made.admits(len(missing), len(made), MADE_ROUTES):
                for i in missing:
                    made[i] = make(i)
                routecache.BUDGET.added(made, len(missing))
                # (made.get or make: another request's thread may have emptied made)
                out = [m or made.get(i) or make(i) for m, i in zip(out, leaves, strict=True)]
            else:
                out = [m or make(i) for m, i in zip(out, leaves, strict=True)]
        return out

    def pairs(self, name: str, leaves: np.ndarray) -> np.ndarray:
        """``(name, route(i))`` of each of ``leaves`` (sorted, distinct,
        int32), an object array: what a route dictionary lists a batch's
        routes as. The pairs are kept in a sorted array of route numbers
        beside an object array of pairs: a batch spread over 64 routers
        names ~9,700 routes, and making a tuple each, or fetching each from
        a dict, was most of what numbering them cost (``batch_routes``);
        here a view pays a search and a take, Python only for new routes.
        Kept in ``made`` (a patch's routes start again), per name (a renamed
        router starts again), while the view's and the process's room allow
        (``routecache``); a batch replaces them, never changes arrays
        another thread's batch may read."""
        cache = self.made
        cache.touch()
        read = held = cache.named
        if held is None or held[0] != name:
            held = (name, _NO_LEAVES, _NO_PAIRS)
        keys, objs = held[1], held[2]
        at = keys.searchsorted(leaves)
        found = keys.take(at, mode="clip") == leaves if len(keys) else np.zeros(len(leaves), bool)
        if found.all():
            return objs.take(at)
        new = leaves[~found]
        made = np.fromiter(
            zip(repeat(name), self.routes(new.tolist())), dtype=object, count=len(new)
        )
        out = np.empty(len(leaves), dtype=object)
        out[found] = objs.take(at[found])
        out[~found] = made
        # Emptied or replaced meanwhile (by ``routes`` above, or another
        # thread): what ``keys`` held is gone, so this call's pairs start again.
        gone = cache.named is not read
        if cache.admits(*((len(leaves), 0) if gone else (len(new), len(keys))), MADE_ROUTES):
            if gone or cache.named is not read:  # (admits itself may have emptied it)
                keys, objs, kept = leaves.copy(), out.copy(), len(leaves)
            else:
                keys, objs = np.insert(keys, at[~found], new), np.insert(objs, at[~found], made)
                kept = len(new)
            cache.named = (name, keys, objs)
            routecache.BUDGET.added(cache, kept)
        return out

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
