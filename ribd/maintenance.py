"""RIB upkeep run between writes: stale expiry, slot sweeps, merges, garbage collection.

Split out of ``ribd.rib``: none of this changes what a lookup answers, it
only bounds memory and the store's trie, in steps of a bounded budget so the
RIB lock is free between them. ``Maintenance`` is mixed into ``ribd.rib.Rib``
and uses its state (``lock``, ``tables``, ``routers``, ``interner``, ``clock``,
``notes``). The merge itself (``Maintenance._merge``, moved here from
``ribd.rib``) reads its threshold ``MERGE_UNLOCKED`` from this module (tests
tune it here).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ribd import gcpolicy
from ribd.entries import intern_delta_rows, intern_rows
from ribd.heap import release_memory
from ribd.observe import StaleExpired
from ribd.table import (
    GC_PER_STEP,
    MERGE_LOCKED_AFTER,
    MERGE_QUIET,
    MERGE_UNLOCKED,
    RELEASE_AFTER,
    SWEEP_CHUNK,
    FamilyTable,
)

if TYPE_CHECKING:
    from ribd.rib import Rib

# Route writes that may have left something unused (replacements, withdrawals)
# since the last collection, from which growth alone starts one.
GC_CHURN = 1024
# The longest compiled lookup views wait for tables that are streaming in
# (``Maintenance.views_may_wait``), so endless loads cannot postpone them for ever.
VIEWS_WAIT_MAX = 60.0


class Collection:
    """One garbage collection, run in steps by ``Rib.maintenance``.

    Walking every interned entry, path set and attribute set at once held the
    RIB lock for seconds (~2 us per set: 15-17 s at 64 routers); flow batches
    and the feed stalled meanwhile. In steps, the lock is free between them
    and writes go on. Phases: each table's rows interned (``_rows_step``) and
    its entries, then path sets (entries dropped first release theirs), then
    attribute sets, then the interner's shared values. A wide table's rows are
    also interned alone, in a collection of rows phases only, when
    ``FamilyTable.rows_due``. Each phase walks a list of the keys taken when it
    starts; an object is dropped only if, when its turn comes (under the lock),
    nothing but its intern dict refers to it, so a write between steps that
    starts using it again keeps it. Objects that fall out of use after their
    turn wait for the next collection; objects interned meanwhile, for the
    next one too.
    """

    def __init__(self, rib: Rib, rows_only: list[FamilyTable] | None = None) -> None:
        self.rib = rib
        self.tables = dict(rib.tables)
        self.interner = rib.interner
        self._phases: list[tuple[str, FamilyTable | None]]
        if rows_only is not None:  # the rows of these tables interned, nothing dropped
            self._phases = [("rows", t) for t in rows_only]
        else:
            self._phases = [
                *(p for t in self.tables.values() for p in (("rows", t), ("entries", t))),
                ("pathsets", None),
                ("attributes", None),
                ("values", None),
            ]
        self._phase = 0
        self._keys: list | None = None  # this phase's keys
        self._at = 0
        self._phase_dropped = 0
        self.dropped = 0
        self.shared_rows = 0  # entries put onto an equal row interned before (rows phases)
        self.steps = 0

    @property
    def done(self) -> bool:
        return self._phase >= len(self._phases)

    def step(self, budget: int) -> bool:
        """Check up to ``budget`` objects (call under the lock); True while work remains."""
        rib = self.rib
        if rib.interner is not self.interner or rib.tables != self.tables:
            self._phase = len(self._phases)  # a snapshot was loaded: start over later
            return False
        self.steps += 1
        kind, table = self._phases[self._phase]
        if kind == "values":
            self.interner.collect_shared_values()
            rib._attributes_at_last_gc = len(self.interner)
            self._phase += 1
            return False
        if kind == "rows":
            return self._rows_step(table, budget)  # type: ignore[arg-type]
        keys = self._keys
        if keys is None:
            if kind == "entries":
                keys = list(table._entries)  # type: ignore[union-attr]
            elif kind == "pathsets":
                keys = list(rib._pathsets)
            else:
                keys = self.interner.keys()
            self._keys, self._at = keys, 0
        start = self._at
        stop = min(start + max(budget, 1), len(keys))
        if kind == "attributes":
            dropped = self.interner.drop_unreferenced(keys, start, stop)
        else:
            interned = table._entries if table is not None else rib._pathsets
            dropped = _drop_unreferenced(interned, keys, start, stop)
        self.dropped += dropped
        self._phase_dropped += dropped
        self._at = stop
        if stop >= len(keys):
            if table is not None:
                table.collected(self._phase_dropped)
            self._keys, self._phase_dropped = None, 0
            self._phase += 1
        return not self.done

    def _rows_step(self, table: FamilyTable, budget: int) -> bool:
        """Intern up to ``budget`` of ``table``'s entries' rows (``intern_rows``):
        the wide rows an UPDATE moved are not interned when made. Skipped while a
        table streams in (its rows keep moving) and for tables never wide; ends
        early if a merge replaced the store's arrays (the next pass does the rest);
        the store's delta last, in one step."""
        values = self._keys
        if values is None:
            if not table.wide or table.family in self.rib.streaming():
                self._phase += 1
                return not self.done
            values = self._keys = table.store.values
            self._at = 0
            table.rows_interned_at = table.writes
        start = self._at
        stop = min(start + max(budget, 1), len(values))
        if table.store.values is values:
            self.shared_rows += intern_rows(table._entries, values, start, stop)
        else:
            stop = len(values)
        self._at = stop
        if stop >= len(values):
            self.shared_rows += intern_delta_rows(table._entries, table.store.delta)
            self._keys = None
            self._phase += 1
        return not self.done


def _drop_unreferenced(interned: dict, keys: list, start: int, stop: int) -> int:
    """Drop the objects of ``keys[start:stop]`` that only ``interned`` (as key
    and value) refers to; each key's reference in ``keys`` is dropped first."""
    getrefcount = sys.getrefcount
    dropped = 0
    for i in range(start, stop):
        obj = keys[i]
        keys[i] = None
        # References: the dict's key and value, ``obj`` and getrefcount's argument.
        if getrefcount(obj) <= 4 and interned.get(obj) is obj:
            del interned[obj]
            dropped += 1
    return dropped


class Maintenance:
    """The periodic upkeep of ``ribd.rib.Rib`` (a mixin: see the module docstring)."""

    def maintenance(self, budget: int = SWEEP_CHUNK) -> bool:
        """Expire stale routes, clear released slots, merge stores, collect garbage.

        Does at most ``budget`` prefixes of work under the lock; returns True
        while work remains, so a caller can loop with pauses in between.
        """
        with self.lock:
            now = self.clock()
            for r in self.routers.values():
                if r.stale_until and now >= r.stale_until:
                    r.last_reason = r.last_reason or "stale hold time expired"
                    self.notes.append(
                        StaleExpired(
                            r.neighbor,
                            r.name,
                            sum(
                                fs.stale_prefixes if r.session == "up" else fs.prefixes
                                for fs in r.families.values()
                            ),
                        )
                    )
                    if r.session == "up":
                        # Session is back but End-of-RIB never came: drop the
                        # old generation only.
                        for family, fs in r.families.items():
                            if fs.stale_slot is not None:
                                self.tables[family].release_slot(fs.stale_slot)
                                fs.stale_slot = None
                                fs.stale_prefixes = 0
                        r.stale_until = 0.0
                    else:
                        self._purge(r)
            if self.converge_quiet_time > 0:
                self._infer_convergence(now)
            done = 0
            for table in self.tables.values():
                done += table.sweep_step(budget - done)
                if done >= budget:
                    return True
            # Churn leaves entries, path sets and attribute sets nobody uses;
            # collect when any has grown by half since the last collection and
            # something can have fallen out of use (``_garbage_possible``), in
            # steps (Collection) with the lock free between them.
            collected = False
            collection = self._collection
            if (
                collection is None
                and (
                    len(self.interner) > 1.5 * self._attributes_at_last_gc + 1024
                    or any(
                        len(t._entries) > 1.5 * t._entries_at_last_gc + 1024
                        for t in self.tables.values()
                    )
                )
                and self._garbage_possible()
            ):
                collection = self._collection = Collection(self)
                self._gc_marks = self._garbage_marks()
            elif collection is None:
                rows_due = [t for t in self.tables.values() if t.rows_due()]
                if rows_due:
                    streaming = self.streaming(now)
                    rows_due = [t for t in rows_due if t.family not in streaming]
                if rows_due:
                    collection = self._collection = Collection(self, rows_only=rows_due)
            if collection is not None:
                if collection.step(budget * GC_PER_STEP):
                    return True
                self._collection = None
                collected = True
            self._defer_merges_while_streaming(now)
            due = [t for t in self.tables.values() if t.merge_due(now)]
            quiet_writes = self._quiet_writes(now) if gcpolicy.enabled() else -1
        merged = sum(self._merge(table) for table in due)
        if collected or merged >= RELEASE_AFTER:  # both free large blocks
            release_memory()
        if quiet_writes >= 0 and gcpolicy.load_settled(quiet_writes, self._writes_at_freeze):
            self._writes_at_freeze = quiet_writes
        return False

    # Route writes (all tables) when ``ribd.gcpolicy`` last froze a settled load.
    _writes_at_freeze = 0

    def _quiet_writes(self, now: float) -> int:
        """Route writes now (all tables) if they are ``gcpolicy.FREEZE_AFTER``
        past the last freeze and no table streams in (a load has settled), else
        -1. Call under the lock."""
        writes = sum(t.writes for t in self.tables.values())
        if writes - self._writes_at_freeze < gcpolicy.FREEZE_AFTER or self.streaming(now):
            return -1
        return writes

    # What the last collection started from (``_garbage_marks``); None: none yet.
    _gc_marks: tuple[int, int, int, dict] | None = None

    def _garbage_marks(self) -> tuple[int, int, int, dict]:
        """(route writes that did not add a prefix, route writes, attribute sets,
        every router's slots) now: what ``_garbage_possible`` compares."""
        writes = kept = 0
        slots = {}
        for r in self.routers.values():
            for family, fs in r.families.items():
                writes += fs.writes
                kept += fs.prefixes
                slots[(r.neighbor, family)] = (fs.slot, fs.stale_slot)
        return writes - kept, writes, len(self.interner), slots

    def _garbage_possible(self) -> bool:
        """Whether an interned entry or set can have fallen out of use since the
        last collection started.

        Growth alone started one each time the interner grew by half: ~10 times
        during a first table load, walking every set and freeing nothing (~4%
        of the service's CPU through real sessions). Something is freed only
        after a route is replaced or withdrawn (a write that adds no prefix),
        a router's slot is released (purge, stale generation retired), or
        sets were interned for UPDATEs whose routes never landed (more new
        sets than route writes: e.g. lines of neighbors that are no router).
        """
        marks = self._gc_marks
        if marks is None:
            marks = self._gc_marks = (0, 0, 0, {})
        churn, writes, sets, slots = self._garbage_marks()
        if churn - marks[0] >= GC_CHURN or sets - marks[2] > writes - marks[1]:
            return True
        # A slot released or swapped (a router added since has nothing to free).
        return any(slots.get(key) != held for key, held in marks[3].items())

    def streaming(self, now: float | None = None) -> set[str]:
        """The families into which a router's table is streaming now: a family
        of an up session, not converged, written in the last MERGE_QUIET
        seconds. Call under the lock."""
        now = self.clock() if now is None else now
        sums: dict[str, int] = {}
        for r in self.routers.values():
            if r.session == "up":
                for family, fs in r.families.items():
                    if not fs.converged and fs.writes:
                        sums[family] = sums.get(family, 0) + fs.writes
        held = self._streams
        self._streams = seen = {}
        out = set()
        for family, writes in sums.items():
            last = held.get(family)
            moved_at = now if last is None or last[0] != writes else last[1]
            seen[family] = (writes, moved_at)
            if now - moved_at < MERGE_QUIET:
                out.add(family)
        return out

    _streams: dict[str, tuple[int, float]] = {}  # a class default: replaced, never mutated
    _views_waiting_since: float | None = None

    def views_may_wait(self, now: float | None = None) -> bool:
        """Whether compiling lookup views should wait: a router's table is
        streaming in (``streaming``). Call under the lock.

        A view built then costs its build (1-2 CPU-s per full table), merges
        the store under the lock mid-load, holds up the feed's next UPDATEs,
        and the next router's End-of-RIB asks for another anyway. Lookups use
        the exact path meanwhile. Waits at most VIEWS_WAIT_MAX at a time, so
        endless loads cannot postpone views for ever. (A router re-sending
        its table over a stale copy counts as loading:
        ``attribution.fastpath.refreshing``.)
        """
        now = self.clock() if now is None else now
        if not self.streaming(now):
            self._views_waiting_since = None
            return False
        since = self._views_waiting_since
        if since is None:
            self._views_waiting_since = now
        elif now - since >= VIEWS_WAIT_MAX:
            self._views_waiting_since = now  # build now, then wait again
            return False
        return True

    def _defer_merges_while_streaming(self, now: float) -> None:
        """A store into which a table streams is not merged for MERGE_EVERY
        (its clock restarts while the load goes on); MAX_DELTA still bounds
        its delta, and MERGE_QUIET merges it once the load pauses.

        MERGE_EVERY bounds the delta under endless churn. A load that took
        longer (two today-sized tables at once: ~100 s) met it half way: a
        merge the load's writes overtook, retried, then run under the lock
        for seconds while the feed waited, and the rest of the load went
        through the arrays' slower path; the service's CPU for two synthetic
        tables was 3.2x one table's.
        """
        streaming = self.streaming(now)
        for family, table in self.tables.items():
            if family in streaming and table._pending_since is not None:
                table._pending_since = now  # merge_due's MERGE_EVERY clock

    def merge_now(self, family: str) -> int:
        """Merge one store's new prefixes now, the bulk with the lock free
        (a reader about to copy the arrays, e.g. a view build); returns
        prefixes moved (0 if writes overtook it: the caller merges the rest
        under the lock)."""
        return self._merge(self.tables[family])

    def compact(self) -> int:
        """Merge every store's new prefixes into its arrays now; returns prefixes moved."""
        merged = 0
        with self.lock:
            for t in self.tables.values():
                merged += t.store.merge()
                t.merged()
        if merged >= RELEASE_AFTER:
            release_memory()
        return merged

    def start_collection(self) -> None:
        """Start a garbage collection now, if none is under way; ``maintenance``
        runs it in steps."""
        with self.lock:
            if self._collection is None:
                self._collection = Collection(self)

    def collect_garbage(self) -> int:
        """Drop interned entries, path sets and attributes nothing uses, in
        steps with the lock free between them; returns how many were dropped."""
        collection = Collection(self)
        while True:
            with self.lock:
                if not collection.step(SWEEP_CHUNK * GC_PER_STEP):
                    return collection.dropped

    def _collect_garbage(self) -> int:
        """A whole collection at once, with the lock already held."""
        collection = Collection(self)
        while collection.step(1 << 62):
            pass
        return collection.dropped

    # -- merging a store's new prefixes (maintenance and view builds) -------

    def _merge(self, table: FamilyTable) -> int:
        """Fold a store's delta into its arrays, holding the lock only to
        fold: encoding the delta's keys (~0.3 s for a full table) runs with
        the lock free, on a copy of the delta taken in one C call (no write
        lands inside it; the writes count, checked under the lock, says
        whether any landed after it).

        If anything is written meanwhile, the work is dropped and the table
        backs off (``FamilyTable.merge_overtaken``); after MERGE_LOCKED_AFTER
        such merges in a row, the next one runs under the lock, so endless
        writes cannot postpone it for ever.
        """
        with self.lock:
            table.merge_attempts += 1
            store, writes = table.store, table.writes
            delta = store.delta
            if (
                table.merges_overtaken_in_row >= MERGE_LOCKED_AFTER
                or writes - table._writes_at_merge < MERGE_UNLOCKED  # bounds the delta
                or not store.has_delta()
            ):
                return self._merge_locked(table)
        if len(delta) < MERGE_UNLOCKED:
            with self.lock:
                return self._merge_locked(table)  # small: a pass over the arrays
        texts, values = store.read_delta()  # (an IPv4 store's keys are ints)
        keys = store.encode(texts)
        with self.lock:
            if table.writes != writes or table.store is not store or store.delta is not delta:
                if store.delta is not delta and table.store is store:
                    table.merged()  # a reader merged it meanwhile (e.g. a view build)
                else:
                    table.merge_overtaken(self.clock())
                return 0
            store.fold(delta, keys, values)
            table.merged()
        return len(texts)

    @staticmethod
    def _merge_locked(table: FamilyTable) -> int:
        moved = table.store.merge()
        table.merged()
        return moved
