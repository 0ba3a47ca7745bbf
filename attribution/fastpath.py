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
(``CompiledViews.refresh``); a batch never waits for a build, and a router
re-sending its table over a stale copy is built when lookups ask, as a
loading one (``refreshing``).

IPv6: intervals are keyed by the upper 64 bits. Prefixes longer than /64 are
rare; addresses under one of them take the exact path.

This module keeps the views fresh; the view itself is
``attribution.compiledview``, a full build ``attribution.viewbuild``, a patch
``attribution.viewpatch``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from attribution.changedranges import ChangedRanges as ChangedRanges  # re-exported
from attribution.compiledview import CompiledView as CompiledView  # re-exported
from attribution.compiledview import slot_layout, view_signature
from attribution.viewbuild import FamilyRead, read_family
from attribution.viewbuild import build_view as build_view  # re-exported
from attribution.viewfamily import renumber
from attribution.viewpack import most_held_buffers, one_axis, pack
from attribution.viewpatch import advanced as advanced_view
from attribution.viewpatch import patch_view, unchanged
from ribd.rib import Rib, RouterRib
from ribd.table import REFRESH_ASKED, FamilyState

REBUILD_AFTER_CHANGES = 20_000  # changed prefixes before a view is rebuilt
# Views built from one read of the store (``viewbuild.read_family``) at most:
# the read holds each router's routes per prefix until its build (9 bytes a
# prefix: ~5.2 MB a router over the real table's 578 k prefixes).
READ_BATCH = 8
# Rebuild a view with any changes after this long. A full-table build costs
# ~2 s of CPU; under steady churn, rebuilding often starved the feed.
REBUILD_AFTER_SECONDS = 60.0
# A view its router's routes moved past is brought current of the
# maintenance's own accord (``want_missing``, the refresh's sweep) only once
# that router has written nothing to the family for this long. "Converged"
# is not enough: a router whose End-of-RIB is inferred (no graceful restart)
# was marked so mid-load when its share of a busy ExaBGP was slow, and 63 such
# routers' views were rebuilt every refresh, ~300 CPU-s over one load
# (BENCHMARKS.md, stop 42). A table still growing is no longer inferred
# converged (``ribd.sessions``, stop 43); one that pauses, then goes on, can be.
VIEW_SETTLE_SECONDS = 5.0
# A loading router's view that lookups ask for (built once the wait for loads,
# ``VIEWS_WAIT_MAX``, is over), whose table has grown by more than
# REBUILD_AFTER_CHANGES since, is built again mid-load only once the table has
# grown this many times over, or the view is LOADING_VIEW_MAX_AGE old. Rebuilt
# at every wait's end instead, 63 loading routers' views were built ~3 times
# over one load at 20 k flows/s: 43-46 CPU-s where the load's feed took 59
# (BENCHMARKS.md, stop 44). By growth, a load's builds cost at most about
# twice its final one.
LOADING_VIEW_GROWTH = 2.0
LOADING_VIEW_MAX_AGE = 300.0


def as_is(view: CompiledView, r: RouterRib, fs: FamilyState, table, seq: int) -> bool | None:
    """Whether ``view`` answers for its router as it is, read under rib.lock:
    None when it was built from another slot layout of the router's family
    state ``fs`` (``view_signature``: session lost, purged, stale generation
    retired; a rebuild is wanted), True when nothing changed since it was
    built or only other routers' slots did (``table``'s change number
    ``seq``, ``viewpatch.unchanged``), False when its changes must be caught
    up. The one check ``usable_many`` and the flat path
    (``batch_flat._plan``) make."""
    if slot_layout(r, fs, table) != view.signature:
        return None
    return (view.seq == seq and view.changed.seq == seq) or unchanged(table, view)


def refreshing(r: RouterRib, fs: FamilyState) -> bool:
    """Whether the router is re-sending its table of this family over a stale
    copy: its session is up (back, or re-reading after a feed gap with BoRR
    sent) and its End-of-RIB (EoRR) has not come. Call under rib.lock.

    Every route it re-sends changes that prefix's answer (stale to fresh),
    so by its end the whole view has changed and is built again, as after a
    first load. Such a router is loading as far as views go: the
    maintenance does not ask for its view of its own accord
    (``want_missing``: 16 routers re-sending at once built every view once
    or twice mid-refresh, 4.9-6.5 CPU-s where a first load spends 0.25;
    BENCHMARKS.md, stop 39, viewkeep), nor rebuilds it beside the other
    views of its family; one lookups ask for is built once the wait for
    loads allows (``ribd.maintenance.views_may_wait``), as a loading
    router's: mid-refresh the exact path answered ~6x fewer flows per CPU-s
    than such a view. A re-read asked for and not begun (``REFRESH_ASKED``:
    its turn may come late) is not refreshing: its view answers its stale
    routes meanwhile."""
    return (
        r.session == "up"
        and fs.stale_slot is not None
        and not fs.converged
        and fs.refresh != REFRESH_ASKED
    )


def ready(r: RouterRib, fs: FamilyState) -> bool:
    """Whether the router's table of this family is complete enough to be
    compiled of the maintenance's own accord: converged, or kept stale and not
    being re-sent (``refreshing``). A loading router's view is built only
    when lookups ask (``views_may_wait`` allowing), and neither swept nor
    asked for by ``want_missing``: every route it sends changes the view,
    and its End-of-RIB asks for it again. Call under rib.lock."""
    return fs.converged or (fs.stale_slot is not None and not refreshing(r, fs))


def due(view: CompiledView, seq: int, now: float) -> bool:
    """Whether ``view``, whose router's routes changed since it was built, is
    to be patched or rebuilt rather than caught up per lookup: past
    REBUILD_AFTER_CHANGES changes of its family (the change number ``seq``)
    or REBUILD_AFTER_SECONDS. Lookups ask for it then (``_catch_up``), and so
    does ``want_missing`` when no lookup comes: a view built mid-load stayed
    behind its router's routes until a refresh swept it, and the 64th
    router's End-of-RIB swept 63 such views and rebuilt them all (BENCHMARKS.md,
    stop 42)."""
    changes = seq - view.seq
    return changes > 0 and (
        changes > REBUILD_AFTER_CHANGES or now - view.built_at > REBUILD_AFTER_SECONDS
    )


class HeldViews(dict):
    """The views by (neighbor, family), with a change number every write
    bumps (``generation``): a plan kept across batches (``batch_keep``)
    compares it instead of reading every view again."""

    def __init__(self) -> None:
        super().__init__()
        self.generation = 0

    def __setitem__(self, key, value) -> None:
        self.generation += 1
        super().__setitem__(key, value)

    def __delitem__(self, key) -> None:
        self.generation += 1
        super().__delitem__(key)

    def __ior__(self, other):
        self.generation += 1
        return super().__ior__(other)

    def pop(self, *args):
        self.generation += 1
        return super().pop(*args)

    def popitem(self):
        self.generation += 1
        return super().popitem()

    def clear(self) -> None:
        self.generation += 1
        super().clear()

    def update(self, *args, **kwargs) -> None:
        self.generation += 1
        super().update(*args, **kwargs)

    def setdefault(self, key, default=None):
        self.generation += 1
        return super().setdefault(key, default)


class CompiledViews:
    """The compiled views of every (router, family), kept fresh in the background."""

    def __init__(self, rib: Rib) -> None:
        self.rib = rib
        self._views: HeldViews = HeldViews()  # (neighbor, family) -> view
        # The flat path's plan kept across batches (``batch_keep``): held
        # here so that a refresh that writes views lets it go with them
        # (a kept plan holds its views' packed pools, up to ~150 MiB a
        # family at 64 full tables, which would otherwise outlive a repack).
        self.kept_plan: object = None
        self._wanted: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        # family -> (ranges, the same extended to the table's change_seq): see usable
        self._extended: dict[str, tuple[ChangedRanges, ChangedRanges]] = {}
        self.builds = 0
        self.patches = 0
        self.advanced = 0  # views made current without a patch (viewpatch.advanced)
        # (neighbor, family) -> (its FamilyState.writes, when they last moved,
        # by the RIB's clock), noted by ``want_missing``: see ``_settled``.
        self._writes: dict[tuple[str, str], tuple[int, float]] = {}
        # (neighbor, family) -> its router's prefixes when its view was last
        # built or patched: see ``_loading_waits``.
        self._built_size: dict[tuple[str, str], int] = {}

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
            known = per_family.get(family)
            if known is None:
                table = tables[family]
                known = per_family[family] = (table, table.changes_start, table.change_seq)
            table, changes_start, seq = known
            state = as_is(view, r, r.families[family], table, seq)
            if state is None:  # built from another slot layout
                self._wanted.add(key)
                out.append(None)
                continue
            if state:  # nothing of its router changed since
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
        if due(view, seq, time.monotonic()):
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
        first flows arrive, which then would take the slow exact path. Not
        while the router re-sends its table over the stale copy
        (``refreshing``), as not while it loads (``ready``). A view its
        router's routes moved past is asked for when lookups would ask for it
        (``due``) and its router has settled (``_settled``): one built
        mid-load is so once the rest of the table is in. A router whose
        convergence was inferred from a slow spell (no End-of-RIB) is asked
        for nothing until it settles: at 63 routers through one ExaBGP, every
        one was "converged" a third of the way through its table, and its view
        built then was rebuilt after.
        """
        tables, writes = self.rib.tables, self._writes
        now, at = time.monotonic(), self.rib.clock()
        for neighbor in neighbors:
            r = self.rib.routers.get(neighbor)
            if r is None:
                continue
            for family, fs in r.families.items():
                key = (neighbor, family)
                seen = writes.get(key)
                if seen is None or seen[0] != fs.writes:
                    writes[key] = (fs.writes, at)
                if not ready(r, fs) or not (fs.prefixes or fs.stale_prefixes):
                    continue
                settled = self._settled(key, at)
                if fs.converged and fs.inferred and not settled:
                    continue  # "converged" by a slow spell, maybe mid-load: wait for quiet
                table = tables[family]
                view = self._views.get(key)
                if (
                    view is None
                    or view.signature != view_signature(r, family, table)
                    or (settled and due(view, table.change_seq, now) and not unchanged(table, view))
                ):
                    self._wanted.add(key)

    def _settled(self, key: tuple[str, str], at: float) -> bool:
        """Whether the router has written nothing to the family for
        VIEW_SETTLE_SECONDS, as ``want_missing`` last saw it (a key it never
        saw: settled, as far as is known)."""
        seen = self._writes.get(key)
        return seen is None or at - seen[1] >= VIEW_SETTLE_SECONDS

    def current(self) -> list[CompiledView]:
        """The views lookups use now."""
        return list(self._views.values())

    def refresh(self) -> int:
        """Build the views lookups asked for; returns how many were built."""
        with self._lock:
            generation = self._views.generation
            try:
                return self._refresh()
            finally:
                if self._views.generation != generation:
                    self.kept_plan = None  # it read views replaced now

    def _refresh(self) -> int:
        """``refresh`` under its lock."""
        wanted, self._wanted = self._wanted, set()
        waiting = self._loading_waits(wanted)
        wanted -= waiting
        self._wanted |= waiting  # asked again at the next refresh
        # Views of the same families whose routers changed nothing are
        # made current (``viewpatch.advanced``), so the change log trims;
        # those whose routers did are patched with them, if their routers
        # are done (``ready``, ``_settled``): a router loading or re-sending
        # its table would have its view rebuilt for nothing.
        families = {f for _, f in wanted}
        swept = {k for k in self._views if k[1] in families} - wanted
        busy = self._busy(swept)
        wanted |= swept - busy
        built, advanced = 0, self._advance(busy)
        memo: dict = {}  # the store read once per changed prefix for all patches
        to_build = []
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
                to_build.append((neighbor, family))
            else:
                self._views[(neighbor, family)] = view
                built += 1
        # Several views of a family to build (every router after a restart or
        # a refresh): the store read and its entries numbered once for all.
        reads: dict[tuple[str, str], FamilyRead] = {}
        for i, (neighbor, family) in enumerate(to_build):
            if (neighbor, family) not in reads:
                batch = [n for n, f in to_build[i:] if f == family][:READ_BATCH]
                if len(batch) > 1:
                    read = read_family(self.rib, family, batch)
                    reads.update(((n, family), read) for n in batch)
                    del read
            others = [v for (n, f), v in self._views.items() if f == family and n != neighbor]
            view = build_view(
                self.rib, neighbor, family, others[-2:], reads.pop((neighbor, family), None)
            )
            if view is not None:
                self._views[(neighbor, family)] = view
                built += 1
            else:
                self._views.pop((neighbor, family), None)
        self._note_sizes(wanted)
        self.builds += built
        self.advanced += advanced
        if built or advanced:
            for family in {f for _, f in wanted}:
                self._one_axis(family)
            self._trim()
        return built

    def _loading_waits(self, wanted: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """Those of ``wanted`` whose view is not to be built again yet: their
        router is still loading or re-sending the family (not ``ready``), has
        a view still of its slot layout, and its table has grown since that
        view by more than REBUILD_AFTER_CHANGES prefixes (a load; churn
        changes prefixes without adding them, and is patched as before) but
        less than LOADING_VIEW_GROWTH times over, the view being younger than
        LOADING_VIEW_MAX_AGE.
        Flows go on being answered exactly in the prefixes changed since; the
        router's End-of-RIB (or its inferred convergence) asks for the view
        once its table is complete."""
        now, out = time.monotonic(), set()
        with self.rib.lock:
            for key in wanted:
                view, size = self._views.get(key), self._built_size.get(key)
                r, fs = self._state(key)
                if view is None or size is None or fs is None or ready(r, fs):
                    continue
                if view.signature != view_signature(r, key[1], self.rib.tables[key[1]]):
                    continue  # unusable as it is (session lost, slots moved): rebuilt
                grown = fs.prefixes - size
                if (
                    grown > REBUILD_AFTER_CHANGES  # growth, not churn: a load
                    and fs.prefixes < LOADING_VIEW_GROWTH * size
                    and now - view.built_at < LOADING_VIEW_MAX_AGE
                ):
                    out.add(key)
        return out

    def _note_sizes(self, keys: set[tuple[str, str]]) -> None:
        """Note the prefixes of each of ``keys``' routers now, for those that
        have a view (``_loading_waits``); forget views gone."""
        sizes = self._built_size
        with self.rib.lock:
            for key in keys:
                _, fs = self._state(key)
                if key in self._views and fs is not None:
                    sizes[key] = fs.prefixes
                else:
                    sizes.pop(key, None)

    def _state(self, key: tuple[str, str]) -> tuple[RouterRib | None, FamilyState | None]:
        """The router of a (neighbor, family) key and its state of that
        family; None for either that is gone. Call under rib.lock."""
        r = self.rib.routers.get(key[0])
        return r, (r.families.get(key[1]) if r is not None else None)

    def _busy(self, keys: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """Those of ``keys`` whose router loads, re-sends or still writes
        that family (not ``ready`` or not ``_settled``). A router gone is not
        among them: its view is dropped."""
        routers, at = self.rib.routers, self.rib.clock()
        with self.rib.lock:
            return {
                (n, f)
                for n, f in keys
                if (r := routers.get(n)) is not None
                and (fs := r.families.get(f)) is not None
                and not (ready(r, fs) and self._settled((n, f), at))
            }

    def _advance(self, keys: set[tuple[str, str]]) -> int:
        """Make those of ``keys`` current whose router changed nothing since
        their view (``viewpatch.advanced``); returns how many."""
        count = 0
        with self.rib.lock:
            for key in keys:  # (a router gone since ``_busy``: its view left to the next refresh)
                view = self._views.get(key)
                r, fs = self._state(key)
                if view is None or fs is None:
                    continue
                table = self.rib.tables[key[1]]
                if as_is(view, r, fs, table, table.change_seq):
                    new = advanced_view(view, table.change_seq, ChangedRanges)
                    if new is not view:
                        self._views[key] = new
                        count += 1
        return count

    def _one_axis(self, family: str) -> None:
        """Every view of ``family`` onto one interval axis (``viewpatch.one_axis``),
        their columns packed (``viewpack.pack``).

        Views are replaced whole (a batch holding the old one keeps reading
        it); their routes, seq and changed ranges are the same objects, so
        caches keyed by route number stay right.
        """
        keys = [k for k in self._views if k[1] == family]
        views = [self._views[k] for k in keys]
        if views and views[0].pack is not None and all(v.pack is views[0].pack for v in views):
            return  # nothing changed since the last pack
        # (one_axis and renumber drop the views' pack: its buffers are named here)
        moved = pack(renumber(one_axis(views)), most_held_buffers(views))
        # Views that saw the same changes share one ChangedRanges (see usable).
        ranges: dict[tuple[int, int], ChangedRanges] = {}
        for k, v in zip(keys, moved, strict=True):
            v.changed = ranges.setdefault((v.seq, v.changed.seq), v.changed)
            self._views[k] = v

    def _trim(self) -> None:
        """Let the RIB forget changes every view has seen (and the writes
        noted for routers gone)."""
        with self.rib.lock:
            routers = self.rib.routers
            if any(n not in routers for n, _ in self._writes):
                self._writes = {k: v for k, v in self._writes.items() if k[0] in routers}
            for family, table in self.rib.tables.items():
                seqs = [v.seq for (_, f), v in self._views.items() if f == family]
                if seqs:
                    table.trim_changes(min(seqs))
