"""Per-router BGP RIBs over one shared prefix store per address family. No I/O.

Layout (why it looks like this):

* Each router (BGP neighbor) has its own RIB: a lookup for router A never
  answers with router B's routes. Physically, all routers of a family share
  one prefix store (``ribd.store``: sorted arrays plus a trie of new
  prefixes); the value at a prefix is an *entry*, a tuple indexed by
  per-router *slot*, holding that router's path(s) or None. A store per
  router would cost its bytes per prefix again; a slot costs nothing when
  routers carry the same paths, because entries are interned (identical
  tuples are stored once).
* A slot value is the shared ``PathAttributes`` when the router sent one path
  with path id 0, else a ``PathSet`` of (path id, attributes), best first
  (ADD-PATH: the RIB key is (prefix, path id)).
* Purging a router is O(1) for readers: the router gets a fresh, empty slot
  and the old one is cleared by ``maintenance()`` in small chunks. Keeping
  routes stale after a session loss works the same way: the old slot stays
  readable (marked stale) behind the new one until End-of-RIB or hold expiry.
* ``lock`` is held while one event (one UPDATE's worth of prefixes) is
  applied and by readers for one batch of lookups, so a reader never sees
  half an UPDATE and is never held up by more than one UPDATE of a full
  table load.
* Stores hold only validated, normalised prefixes (see ribd.prefixes) and
  the IPv4 store never sees an IPv6 address.

Where the parts live (one job each; this module re-exports their public
names, so ``from ribd.rib import ...`` keeps working):

* ``ribd.table``: the per-family table (store, slots, change log, merge
  scheduling) and the per-router state records; the tuning constants.
* ``ribd.entries``: with 16 routers or more, an entry is a row shared by the
  prefixes of a set plus a prefix's own few values (``Overlay``), and the
  write loop for that layout (``announce_wide``).
* ``ribd.sessions``: session up/down, stale generations, re-reads after
  lost feed lines, convergence (mixed into ``Rib``).
* ``ribd.maintenance``: stale expiry, slot sweeps, the store merge (whose
  ``MERGE_UNLOCKED`` threshold tests tune on that module) and garbage
  collection in steps (mixed into ``Rib``).
* ``ribd.reads``: lookup, exact, routes and the slot helpers compiled lookup
  tables share (mixed into ``Rib``).
* ``ribd.withdraw``: withdrawing a router's paths (mixed into ``Rib``).
* Here: ``Rib`` itself, applying UPDATEs (the ingest hot loop).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable
from itertools import repeat

from ribd.addpath import MAX_PATHS_PER_PREFIX, log_over_limit, with_path
from ribd.attributes import AttributeInterner
from ribd.attributes import PathAttributes as PathAttributes
from ribd.entries import OVERLAY_SLOTS, announce_wide
from ribd.events import (
    FAMILIES,
    IPV4_UNICAST,
    IPV6_UNICAST,
    EndOfRib,
    Event,
    ExabgpShutdown,
    Notification,
    OpenReceived,
    RouteRefreshMarker,
    RoutesAnnounced,
    RoutesWithdrawn,
    SessionState,
    UpdateTime,
)
from ribd.maintenance import Collection, Maintenance
from ribd.observe import new_notes
from ribd.prefix_limit import PrefixLimits, apply_limits, refuse_past_limit
from ribd.reads import Reads, all_matches, route_match, slot_value
from ribd.ribload import (
    entry_of,
    first_repeat,
    insert_new,
    one_entry,
    probe,
    runs_without_repeats,
)
from ribd.sessions import SessionHandling
from ribd.store import COMPILED_FIND
from ribd.table import (
    GC_PER_STEP,
    GROWING_PREFIXES_PER_SECOND,
    MAX_CHANGE_LOG,
    MAX_DELTA,
    MERGE_BACKOFF,
    MERGE_EVERY,
    MERGE_QUIET,
    QUIET_PREFIXES_PER_SECOND,
    REFRESH_ASKED,
    REFRESH_NONE,
    REFRESH_RUNNING,
    RELEASE_AFTER,
    SWEEP_CHUNK,
    FamilyState,
    FamilyTable,
    PathSet,
    RouteMatch,
    RouterRib,
    preference_key,
)
from ribd.withdraw import Withdrawals

# ``announce_wide`` compiled (ribd/_wide.pyx) where setup.py built it; the
# Python one in ribd.entries stays the reference (tests/ribd/test_wide_compiled.py).
WIDE_ANNOUNCE: Callable | None = None  # ribd._wide.wide_announce: from the keys on, in C
with contextlib.suppress(ImportError):
    from ribd._wide import announce_wide
    from ribd._wide import wide_announce as WIDE_ANNOUNCE
COMPILED_WIDE = announce_wide  # (tests replace ``announce_wide``: then no direct call)

# Prefixes of one UPDATE, from this many, that ``Rib._announce_shared`` tries
# to write at once. Its checks and writes are C loops now (ribd._ribload):
# even one prefix costs less there than in the general loop (the real table
# as two routers interleaved, apply in process: 0.87-0.92 CPU-s at 4,
# 0.75-0.85 at 1; most UPDATEs of a real table carry 1-3 prefixes).
SHARED_AT_LEAST = 1


class Rib(SessionHandling, Maintenance, Reads, Withdrawals):
    """All routers' RIBs. Apply events with ``apply``; look up with ``lookup``."""

    # The fields every UPDATE of a load reads are slots, read at their offsets by
    # the compiled loaders (ribd._loadline, ribd._apply) where a lookup by name
    # in the instance dict took ~110 instructions each (stop 57). Every other
    # field stays in the instance's dict (the mixins give it one).
    __slots__ = ("lock", "neighbors", "routers", "shared_writes", "tables")

    def __init__(
        self,
        *,
        stale_hold_time: float = 0.0,
        restart_hold_time: float = 300.0,
        router_names: dict[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tables = {f: FamilyTable(f) for f in FAMILIES}
        self.routers: dict[str, RouterRib] = {}
        self.interner = AttributeInterner()
        self.lock = threading.Lock()
        self.stale_hold_time = stale_hold_time
        self.restart_hold_time = restart_hold_time
        self.stale_hold_by_neighbor: dict[str, float] = {}
        self.router_names = dict(router_names or {})
        # Neighbors that may have a RIB (the configured routers); None accepts
        # every neighbor (tools, tests). The service always sets it, so forged
        # lines for made-up neighbors cannot grow the store.
        self.neighbors: frozenset[str] | None = None
        self.unknown_neighbor_events = 0
        self.clock = clock
        self.treated_as_withdraw = 0
        self.shared_writes = 0  # prefixes written by _announce_shared
        self.notifications: list[Notification] = []
        self._pathsets: dict[PathSet, PathSet] = {}
        # ADD-PATH paths a router's prefix keeps ([bgp] max_paths_per_prefix), and
        # how many were not kept for it (ribd.addpath).
        self.max_paths = MAX_PATHS_PER_PREFIX
        self.paths_over_limit = 0
        # Prefixes a router's family may hold, and the new ones refused at its
        # limit, all routers (ribd.prefix_limit). Empty (tools, tests): no limit.
        self.prefix_limits = PrefixLimits()
        self.prefixes_refused = 0
        self._attributes_at_last_gc = 0
        self._collection: Collection | None = None  # a garbage collection under way
        # Set by the owner before it stops ExaBGP on purpose: the sessions
        # ExaBGP reports down as it exits are kept stale (restart hold), not
        # purged, so the snapshot written next still holds them.
        self.stopping = False
        # Session and table events for the operator's log (ribd.observe),
        # drained by the service outside the lock.
        self.notes = new_notes()
        # A family of an up session that gets no End-of-RIB counts as
        # converged (inferred) after this long without UPDATEs; 0: never.
        self.converge_quiet_time = 0.0
        # (neighbor, family) -> (start, fs.writes and fs.prefixes then) of the
        # quiet window being watched, for families of up sessions that have
        # not converged.
        self._quiet_windows: dict[tuple[str, str], tuple[float, int, int]] = {}

    # -- routers -------------------------------------------------------------

    def router(self, neighbor: str) -> RouterRib:
        r = self.routers.get(neighbor)
        if r is None:
            r = RouterRib(neighbor=neighbor, name=self.router_names.get(neighbor, neighbor))
            limits = self.prefix_limits
            for family, table in self.tables.items():
                r.families[family] = FamilyState(
                    slot=table.alloc_slot(), max_prefixes=limits.of(neighbor, family)
                )
            self.routers[neighbor] = r
        return r

    def set_prefix_limits(self, limits: PrefixLimits) -> None:
        """Apply ``limits`` to every router now and to routers met later."""
        with self.lock:
            self.prefix_limits = limits
            apply_limits(limits, self.routers)

    def hold_time_for(self, neighbor: str) -> float:
        return self.stale_hold_by_neighbor.get(neighbor, self.stale_hold_time)

    # -- applying events -----------------------------------------------------

    def apply(self, event: Event) -> None:
        with self.lock:
            self._apply(event)

    def apply_many(self, events: list[Event]) -> None:
        """Apply the events of one ExaBGP line atomically."""
        with self.lock:
            allowed = self.neighbors
            routers = self.routers
            for event in events:
                kind = type(event)
                if kind is RoutesAnnounced:  # most events: skip a dispatch call
                    if allowed is not None and event.neighbor not in allowed:
                        self.unknown_neighbor_events += 1
                        continue
                    self._announce(event)
                elif kind is UpdateTime:  # one per raw UPDATE: as _apply does it, inline
                    if allowed is not None and event.neighbor not in allowed:
                        self.unknown_neighbor_events += 1
                        continue
                    r = routers.get(event.neighbor) or self.router(event.neighbor)
                    r.last_update = event.time
                else:
                    self._apply(event)

    def _apply(self, event: Event) -> None:
        kind = type(event)
        allowed = self.neighbors
        if allowed is not None and kind is not ExabgpShutdown and event.neighbor not in allowed:  # type: ignore[union-attr]
            self.unknown_neighbor_events += 1
            return
        if kind is RoutesAnnounced:
            self._announce(event)  # type: ignore[arg-type]
        elif kind is RoutesWithdrawn:
            if event.reason:  # type: ignore[union-attr]
                self.treated_as_withdraw += len(event.prefixes)  # type: ignore[union-attr]
            self._withdraw(event)  # type: ignore[arg-type]
        elif kind is UpdateTime:
            self.router(event.neighbor).last_update = event.time  # type: ignore[union-attr]
        elif kind is EndOfRib:
            self._end_of_rib(event)  # type: ignore[arg-type]
        elif kind is OpenReceived:
            if event.graceful_restart:  # type: ignore[union-attr]
                families = self.router(event.neighbor).families  # type: ignore[union-attr]
                for family in event.families:  # type: ignore[union-attr]
                    if family in families:
                        families[family].sends_end_of_rib = True
        elif kind is RouteRefreshMarker:
            self._refresh_marker(event)  # type: ignore[arg-type]
        elif kind is SessionState:
            self._session(event)  # type: ignore[arg-type]
        elif kind is ExabgpShutdown:
            self.exabgp_gone("ExaBGP shut down", neighbors=event.neighbors)  # type: ignore[union-attr]
        elif kind is Notification:
            self.notifications = [*self.notifications[-99:], event]  # type: ignore[list-item]

    def _announce(self, ev: RoutesAnnounced, keys: list | None = None) -> None:
        """Install one UPDATE's prefixes. The per-prefix hot loop of ingest.

        A prefix no router has yet (all of them, on a table load) only gets
        the entry holding this one path, built and interned once per UPDATE.
        The store's layers are used directly here (see ribd.store): the
        delta trie for prefixes the arrays lack, the arrays in place.
        ``keys``: the prefixes as the store's keys already (``ribd._loadline``
        decodes an IPv4 load's NLRI into them; ``ev.prefixes`` is then not read).
        """
        r = self.routers.get(ev.neighbor) or self.router(ev.neighbor)
        fs = r.families[ev.family]
        table = self.tables[ev.family]
        store = table.store
        delta = store.delta  # by prefix key (ribd.intdelta: IntDelta, IPv6 IntDelta6)
        # Indexes in the store's arrays, all at once (``PrefixStore.find_many``);
        # a prefix the arrays hold is never in the delta.
        # (Few prefixes: one scalar find each; numpy's call overhead is ~10 us.)
        # The store's keys (IPv4: ints, ribd.prefix_keys), made once here.
        prefixes = store.keys_of(ev.prefixes) if keys is None else keys
        count = len(prefixes)
        path_ids = ev.path_ids
        limit = fs.max_prefixes  # (ribd.prefix_limit; 0: none)
        if limit and fs.prefixes + count > limit:
            if count > 1 and first_repeat(prefixes) < count:  # (new ones counted once)
                self._announce_runs(ev, prefixes, path_ids)
                return
            # New prefixes past the router's limit: refused before anything is written.
            prefixes, path_ids = refuse_past_limit(self, r, ev.family, prefixes, path_ids)
            count = len(prefixes)
            if not count:
                return
        entries = table._entries
        intern = entries.setdefault
        slot, stale = fs.slot, fs.stale_slot
        attrs = ev.attributes
        fresh: tuple | None = None  # the entry for a new prefix, path id 0
        added = 0  # new prefixes (one path each)
        compiled = ANNOUNCE_LOOP is not None and ANNOUNCE_LOOP is COMPILED_LOOP
        wide = table._next_slot >= OVERLAY_SLOTS
        if wide and compiled and WIDE_ANNOUNCE is not None and announce_wide is COMPILED_WIDE:
            # Wide entries, from the keys on in C (ribd._wide.wide_parts), whether
            # the arrays hold keys or not: routers that come up together load
            # before the first merge (merges wait for a quiet store).
            WIDE_ANNOUNCE(self, table, fs, prefixes, path_ids, attrs, count)
            return
        if wide and count > 1 and first_repeat(prefixes) < count:
            self._announce_runs(ev, prefixes, path_ids)  # (wide writes read all first)
            return
        if not len(store.keys) and not wide:
            found: object = repeat(-1)
            if path_ids is None:
                # Nothing in the arrays (a table load before its merge), narrow
                # entries (wide ones take announce_wide, as after a merge): a prefix
                # the delta lacks only gets the entry of this one path, inserted
                # in a tight loop; the others take the general loop below.
                got, missing = probe(delta, prefixes)  # one probe each (ribd.ribload)
                if missing:
                    # (built only when used: an unused one stayed interned)
                    fresh = entry_of(slot, attrs)
                    fresh = intern(fresh, fresh)
                    if missing == len(got):
                        unheld, prefixes = prefixes, ()
                    else:
                        unheld = [p for p, e in zip(prefixes, got, strict=True) if e is None]
                        prefixes = [p for p, e in zip(prefixes, got, strict=True) if e is not None]
                    # (a prefix twice in the UPDATE is added once)
                    added = insert_new(delta, unheld, fresh, table.changes)
                elif stale is None and self._announce_shared(table, fs, prefixes, got, attrs):
                    prefixes = ()
                del got
                if not prefixes:  # all taken above: the tally at the end, and no loop set up
                    fs.prefixes += added
                    fs.paths += added
                    table.writes += count
                    fs.writes += count
                    table.note_slots(slot)
                    table.forget_changes_if_behind()
                    return
                found = repeat(-2)  # every prefix left is in the delta
        elif compiled and not wide:
            # The compiled loop searches the packed keys itself (found None).
            ANNOUNCE_LOOP(self, table, fs, prefixes, path_ids, None, attrs, None, 0, count)
            return
        elif len(prefixes) >= 8 or COMPILED_FIND:  # compiled: one call for any count
            # (No short cut for prefixes in the arrays: with numpy's per-call cost,
            # a group in the arrays was written no faster than by the loop below.)
            found = store.find_many(prefixes)
        else:
            found = map(store.find, prefixes)
        if ANNOUNCE_LOOP is not None and table._next_slot < OVERLAY_SLOTS:
            # The loop below compiled (ribd/_announce.pyx): the same writes and counts.
            ANNOUNCE_LOOP(self, table, fs, prefixes, path_ids, found, attrs, fresh, added, count)
            return
        get, values, log_change = delta.get, store.values, table.changes.append
        interned, getrefcount = entries.get, sys.getrefcount
        ids = repeat(0) if path_ids is None else path_ids  # endless, or one per prefix
        if table._next_slot >= OVERLAY_SLOTS:  # wide entries: a shared row and overrides
            # (the prefixes new to the store come back: the loop below inserts them)
            prefixes, ids, found = announce_wide(self, table, fs, prefixes, ids, found, attrs)
        last_entry: object = None  # the entry last replaced with attrs added, and its new one
        last_new: tuple = ()
        for prefix, path_id, at in zip(prefixes, ids, found, strict=False):
            entry = values[at] if at >= 0 else get(prefix)  # at >= 0: index in the arrays
            if entry is None:
                if path_id != 0:
                    new_entry = (*((None,) * slot), self._with_path(None, path_id, attrs)[0])
                    new_entry = intern(new_entry, new_entry)
                else:
                    if fresh is None:
                        fresh = entry_of(slot, attrs)
                        fresh = intern(fresh, fresh)
                    new_entry = fresh
                if at >= 0:
                    store.set_at(at, new_entry)
                else:
                    delta.insert(prefix, new_entry)
                log_change(prefix)
                added += 1
                continue
            n = len(entry)
            old = entry[slot] if slot < n else None
            new, added_paths = self._with_path(old, path_id, attrs, fs)
            if old is None:
                fs.prefixes += 1
            fs.paths += added_paths
            if stale is not None and stale < n and entry[stale] is not None:
                # The route is back: its stale copy is no longer needed.
                fs.stale_prefixes -= 1
                table.put(prefix, entry, slot, new, at=at, clear=stale)
                continue
            if old is new:
                continue
            if entry is last_entry and new is attrs:
                # Prefixes another router sent in one UPDATE mostly share one
                # entry: built and interned once for all of them.
                new_entry = last_new
            else:
                # ``new`` is never None and ``entry`` is canonical (no trailing
                # None), so the new entry is canonical too: no trimming needed.
                if slot < n:
                    new_entry = (*entry[:slot], new, *entry[slot + 1 :])
                else:
                    new_entry = (*entry, *((None,) * (slot - n)), new)
                new_entry = intern(new_entry, new_entry)
                if new is attrs:
                    last_entry, last_new = entry, new_entry
            if at >= 0:
                values[at] = new_entry  # entry was not None: no hole filled
            else:
                delta.insert(prefix, new_entry)
            log_change(prefix)
            # The replaced entry, if no prefix holds it any more, leaves the
            # intern dict now rather than at the next collection: every router
            # loaded rebuilds each prefix's entry one slot wider, and the
            # replaced ones (~0.5 KB each at 64 routers) piled up until the
            # dict grew by half, a third of the entries' bytes, and were then
            # freed scattered among live objects (heap fragmentation).
            # References: the dict's key and value, ``entry``, getrefcount's
            # argument, and ``last_entry`` or ``fresh`` when it is one of them.
            if (
                getrefcount(entry) <= 4 + (entry is last_entry) + (entry is fresh)
                and interned(entry) is entry
            ):
                del entries[entry]
        fs.prefixes += added
        fs.paths += added
        table.writes += count
        fs.writes += count
        table.note_slots(slot)  # (its stale slot: noted by table.put's clear)
        table.forget_changes_if_behind()

    def _announce_runs(self, ev: RoutesAnnounced, keys: list, path_ids: list | None) -> None:
        """An UPDATE with a prefix twice, as its runs without repeats in order
        (``ribd.ribload.runs_without_repeats``): each applied over what the one
        before it wrote, as the narrow loop does prefix by prefix."""
        for run, ids in runs_without_repeats(keys, path_ids):
            self._announce(RoutesAnnounced(ev.neighbor, ev.family, (), ids, ev.attributes), run)

    def _announce_shared(
        self,
        table: FamilyTable,
        fs: FamilyState,
        prefixes: tuple[str, ...] | list[str],
        held: list,
        attrs: PathAttributes,
    ) -> bool:
        """Add this router's one path (id 0) to ``prefixes``, all in the delta,
        in a few C loops, if they all hold one entry ``held[0]`` (``held``: their
        entries) without a route of the router; else False, and nothing was
        written (the general loop takes them).

        The common write of every router after the first while tables load
        (before the merge): its UPDATE carries the prefixes another router's
        UPDATE did, so one new entry replaces one old one for all of them.
        No stale slot (the caller checks), no wide entries, no prefix twice
        (it would count twice).
        """
        n = len(prefixes)
        if n < SHARED_AT_LEAST or table._next_slot >= OVERLAY_SLOTS:
            return False
        entry = held[0]
        if type(entry) is not tuple or not one_entry(held, prefixes):
            return False
        slot = fs.slot
        width = len(entry)
        if slot < width and entry[slot] is not None:
            return False
        if slot < width:
            new_entry = (*entry[:slot], attrs, *entry[slot + 1 :])
        else:
            new_entry = (*entry, *((None,) * (slot - width)), attrs)
        entries = table._entries
        new_entry = entries.setdefault(new_entry, new_entry)
        insert_new(table.store.delta, prefixes, new_entry, table.changes)
        fs.prefixes += n  # (the caller counts the writes)
        self.shared_writes += n
        fs.paths += n
        # The replaced entry leaves the intern dict if no prefix holds it any
        # more (see _announce). References: the dict's key and value,
        # ``entry`` and getrefcount's argument, once ``held`` lets go.
        held.clear()  # the caller's list
        if sys.getrefcount(entry) <= 4 and entries.get(entry) is entry:
            del entries[entry]
        return True

    def _with_path(
        self, old: object, path_id: int, attrs: PathAttributes, fs: FamilyState | None = None
    ) -> tuple[object, int]:
        """The value a router's slot takes when an UPDATE announces ``attrs`` with
        ``path_id`` over ``old`` (None, one set, or an ADD-PATH ``PathSet``), and
        how many paths that adds. Path id 0 over nothing or over one set is the
        common case: ``attrs`` itself, no list (the compiled loops inline that
        test: ``ribd/_new_value.pxi``). ADD-PATH sets: ``ribd.addpath``, at most
        ``max_paths`` paths a prefix, those not kept counted (on the router's
        family state ``fs`` too)."""
        new, added, dropped = with_path(self._pathsets, old, path_id, attrs, self.max_paths)
        if dropped:
            self.paths_over_limit += dropped
            if fs is not None:
                fs.paths_over_limit += dropped
            log_over_limit(self.paths_over_limit, self.max_paths, self.routers, fs)
        return new, added


# ``apply_many`` compiled (ribd/_apply.pyx: a table load's two short paths in C)
# where setup.py built it; the method above stays the reference and fallback.
PY_APPLY_MANY = Rib.apply_many
with contextlib.suppress(ImportError):
    from ribd._apply import apply_many as _compiled_apply_many

    Rib.apply_many = _compiled_apply_many  # type: ignore[method-assign]
APPLY_COMPILED = Rib.apply_many is not PY_APPLY_MANY
# ``Rib._announce``'s general loop compiled (ribd/_announce.pyx) for narrow
# entries; None: the Python loop (the reference; tests set it to compare).
ANNOUNCE_LOOP: Callable | None = None
with contextlib.suppress(ImportError):
    from ribd._announce import announce_loop as ANNOUNCE_LOOP
COMPILED_LOOP = ANNOUNCE_LOOP  # (None where not built; tests set ANNOUNCE_LOOP)

__all__ = [
    "GC_PER_STEP",
    "GROWING_PREFIXES_PER_SECOND",
    "IPV4_UNICAST",
    "IPV6_UNICAST",
    "MAX_CHANGE_LOG",
    "MAX_DELTA",
    "MERGE_BACKOFF",
    "MERGE_EVERY",
    "MERGE_QUIET",
    "QUIET_PREFIXES_PER_SECOND",
    "REFRESH_ASKED",
    "REFRESH_NONE",
    "REFRESH_RUNNING",
    "RELEASE_AFTER",
    "SWEEP_CHUNK",
    "FamilyState",
    "FamilyTable",
    "PathAttributes",
    "PathSet",
    "Rib",
    "RouteMatch",
    "RouterRib",
    "all_matches",
    "preference_key",
    "route_match",
    "slot_value",
]
