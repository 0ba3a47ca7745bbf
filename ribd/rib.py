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
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import repeat

from ribd.attributes import AS_CONFED_SEQUENCE, AS_CONFED_SET, AS_SET, AttributeInterner
from ribd.attributes import PathAttributes as PathAttributes
from ribd.events import (
    FAMILIES,
    IPV4_UNICAST,
    IPV6_UNICAST,
    EndOfRib,
    Event,
    ExabgpShutdown,
    Notification,
    RouteRefreshMarker,
    RoutesAnnounced,
    RoutesWithdrawn,
    SessionState,
    UpdateTime,
)
from ribd.observe import SessionDown, SessionUp, StaleExpired, TableLoaded, new_notes
from ribd.store import PrefixStore, release_memory

SWEEP_CHUNK = 4096  # prefixes rewritten per maintenance step, under the lock
MAX_DELTA = 1_048_576  # new prefixes held in the store's trie before a merge is forced
RELEASE_AFTER = 65_536  # prefixes merged after which freed C heap is given back to the OS
MERGE_UNLOCKED = 65_536  # new prefixes from which a merge reads and encodes them unlocked
MERGE_EVERY = 60.0  # seconds: the longest the store's trie waits for a merge under churn
MERGE_QUIET = 1.0  # seconds without a write after which a store's new prefixes are merged
MERGE_BACKOFF = 1.0  # seconds before retrying a merge writes overtook; doubles per retry
MERGE_LOCKED_AFTER = 3  # merges overtaken in a row, after which one runs under the lock
GC_PER_STEP = 4  # interned objects a garbage collection step checks per prefix of budget
# Inferred convergence: a family is quiet below this many prefix changes a
# second (see Rib._infer_convergence).
QUIET_PREFIXES_PER_SECOND = 500
MAX_CHANGE_LOG = 262_144  # changed prefixes remembered for compiled lookup tables (~17 MB)
# A family's re-read after lost feed lines (FamilyState.refresh):
REFRESH_NONE = 0  # nothing pending
REFRESH_ASKED = 1  # routes marked stale at the gap; a ROUTE-REFRESH was asked for
REFRESH_RUNNING = 2  # the router sent BoRR: what it re-sends until EoRR is the table


class PathSet(tuple):
    """ADD-PATH paths of one router for one prefix: ((path_id, attrs), ...), best first."""

    __slots__ = ()


_ORIGIN_RANK = {"igp": 0, "egp": 1, "incomplete": 2}


def _path_length(attrs: PathAttributes) -> int:
    n = 0
    for kind, asns in attrs.as_path:
        if kind == AS_SET:
            n += 1
        elif kind not in (AS_CONFED_SEQUENCE, AS_CONFED_SET):
            n += len(asns)
    return n


def preference_key(item: tuple[int, PathAttributes]) -> tuple:
    """BGP decision process, as far as the received attributes allow.

    IGP cost and router-id tie-breaks are invisible to us; the lowest path id
    makes the pick deterministic.
    """
    path_id, a = item
    return (
        -(a.local_pref if a.local_pref is not None else 100),
        _path_length(a),
        _ORIGIN_RANK.get(a.origin, 3),
        a.med if a.med is not None else 0,
        path_id,
    )


@dataclass(slots=True)
class FamilyState:
    """One router's view of one address family."""

    slot: int
    stale_slot: int | None = None
    prefixes: int = 0
    paths: int = 0
    stale_prefixes: int = 0
    converged: bool = False
    # Prefixes announced or withdrawn, ever: how busy the family is (inferred
    # convergence compares it over time).
    writes: int = 0
    # Converged without End-of-RIB: the peer was quiet for converge_quiet_time.
    # Meaningful only while ``converged``.
    inferred: bool = False
    refresh: int = REFRESH_NONE


@dataclass(slots=True)
class RouterRib:
    neighbor: str
    name: str
    peer_as: int = 0
    router_id: str = ""
    session: str = "idle"  # idle | connected | up | down
    last_reason: str = ""
    session_since: float = 0.0
    last_update: float = 0.0
    stale_until: float = 0.0  # 0: not stale
    families: dict[str, FamilyState] = field(default_factory=dict)
    refresh_asked: float = 0.0  # when a re-read was last asked for (0: none pending)
    resetting: bool = False  # we asked ExaBGP to reset the session (keep routes stale)

    @property
    def stale(self) -> bool:
        return self.stale_until > 0

    @property
    def current_stale(self) -> bool:
        """Routes in the current slot are kept from a session that is gone."""
        return self.stale_until > 0 and self.session != "up"

    def stale_prefixes(self, fs: FamilyState) -> int:
        """Prefixes of ``fs`` served stale: the generation kept from before a
        session restart, plus the current routes while their session is gone.
        (``fs.stale_prefixes`` counts only the former.)"""
        return fs.stale_prefixes + (fs.prefixes if self.current_stale else 0)


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """A router's route for an address or prefix."""

    prefix: str
    length: int
    attributes: PathAttributes
    path_id: int
    stale: bool


class FamilyTable:
    """The shared prefix store of one family and its slot bookkeeping."""

    def __init__(self, family: str) -> None:
        self.family = family
        self.bits = 32 if family == IPV4_UNICAST else 128
        self.store = PrefixStore(self.bits)
        self._entries: dict[tuple, tuple] = {}
        self._entries_at_last_gc = 0
        self._next_slot = 0
        self._free_slots: list[int] = []
        # Slots being cleared, and where in the store's arrays the sweep is;
        # a merge (new arrays) starts the sweep over (clearing is idempotent).
        self._sweeps: list[int] = []
        self._sweep_at = 0
        self._sweep_keys: object = None
        # Prefixes whose entry changed, in order, so compiled lookup tables
        # (attribution.fastpath) know what they no longer answer for.
        # changes[0] is change number changes_start.
        self.changes: list[str] = []
        self.changes_start = 0
        self.writes = 0  # prefixes written; the maintenance merges once it stops moving
        # Merge scheduling (merge_due): the writes count and when it last
        # moved, when unmerged work was first seen, the back-off after
        # overtaken merges. Counters for stats and tests.
        self._writes_at_check = 0
        self._writes_moved_at: float | None = None
        self._pending_since: float | None = None
        self._writes_at_merge = 0
        self._retry_at = 0.0
        self.merges_overtaken_in_row = 0
        self.merge_attempts = 0
        self.merges_overtaken = 0

    @property
    def change_seq(self) -> int:
        """Number of the next change: a table compiled now has seen every change before it."""
        return self.changes_start + len(self.changes)

    def changes_since(self, seq: int) -> list[str] | None:
        """Prefixes changed since ``seq``; None if the log no longer reaches back."""
        if seq < self.changes_start:
            return None
        return self.changes[seq - self.changes_start :]

    def forget_changes_if_behind(self) -> None:
        """Past MAX_CHANGE_LOG changes, compiled tables are rebuilt rather than patched."""
        if len(self.changes) > MAX_CHANGE_LOG:
            self.changes_start += len(self.changes)
            self.changes.clear()

    def trim_changes(self, upto: int) -> None:
        """Forget changes before ``upto`` (every compiled table has caught up)."""
        drop = min(upto, self.change_seq) - self.changes_start
        if drop > 0:
            del self.changes[:drop]
            self.changes_start += drop

    def intern(self, entry: tuple) -> tuple:
        return self._entries.setdefault(entry, entry)

    def alloc_slot(self) -> int:
        if self._free_slots:
            return self._free_slots.pop()
        self._next_slot += 1
        return self._next_slot - 1

    def release_slot(self, slot: int) -> None:
        """Queue ``slot`` for clearing; readers must already have stopped using it."""
        self._sweeps.append(slot)
        self._sweep_keys = None  # start over, with this slot too

    def sweep_step(self, budget: int) -> int:
        """Clear up to ``budget`` prefixes of released slots; return work done.

        The delta is merged first, so the arrays hold every prefix; released
        slots are cleared in one pass over them, in place.
        """
        if not self._sweeps:
            return 0
        store = self.store
        if self._sweep_keys is not store.keys or store.has_delta():
            store.merge()
            self.merged()
            self._sweep_keys, self._sweep_at = store.keys, 0
        slots = self._sweeps
        values = store.values
        start = self._sweep_at
        stop = min(start + budget, len(values))
        intern = self.intern
        for i in range(start, stop):
            entry = values[i]
            if entry is None:
                continue
            n = len(entry)
            if not any(s < n and entry[s] is not None for s in slots):
                continue
            # A released slot is read by nobody: not a change to log.
            new = list(entry)
            for s in slots:
                if s < n:
                    new[s] = None
            store.set_at(i, _canonical(new, intern))
        self._sweep_at = stop
        if stop >= len(values):
            self._free_slots.extend(slots)
            self._sweeps = []
            self._sweep_keys = None
        return max(stop - start, 1)

    def put(self, prefix: str, entry: tuple, slot: int, value: object, log: bool = True) -> None:
        """Store ``value`` for ``slot`` at ``prefix`` (``entry`` is the current one)."""
        if log:
            self.changes.append(prefix)
            self.forget_changes_if_behind()
        self.writes += 1
        n = len(entry)
        if slot < n:
            new = [*entry[:slot], value, *entry[slot + 1 :]]
        else:
            new = [*entry, *((None,) * (slot - n)), value]
        self.store.set(prefix, _canonical(new, self.intern))

    def merge_due(self, now: float) -> bool:
        """Whether to merge the store's new prefixes into its arrays now.

        A merge is a pass over the arrays and, past MERGE_UNLOCKED new
        prefixes, an encoding of all of them outside the lock that any write
        meanwhile makes useless. So: not while a table streams in, but once
        writes have paused for MERGE_QUIET seconds; under endless writes, at
        least MERGE_EVERY seconds after the work appeared, and at once past
        MAX_DELTA prefixes; never before the back-off of an overtaken merge
        (``merge_overtaken``) is over. Lookups are right whatever the timing
        (they read both layers); merging only saves memory and lookup time.
        """
        if self.writes != self._writes_at_check or self._writes_moved_at is None:
            self._writes_at_check = self.writes
            self._writes_moved_at = now
        store = self.store
        if not store.holes and not store.has_delta():
            self._pending_since = None
            return False
        if self._pending_since is None:
            self._pending_since = now
        if now < self._retry_at:
            return False
        if now - self._writes_moved_at >= MERGE_QUIET or now - self._pending_since >= MERGE_EVERY:
            return True
        # The delta holds at most as many prefixes as were written since the
        # last merge; only then is counting it (a walk of the trie) worth it.
        return self.writes - self._writes_at_merge >= MAX_DELTA and len(store.delta) >= MAX_DELTA

    def merge_overtaken(self, now: float) -> None:
        """A merge was overtaken by writes: retry after a back-off, doubling
        per retry up to MERGE_EVERY (``Rib._merge`` runs the merge under the
        lock after MERGE_LOCKED_AFTER in a row)."""
        self.merges_overtaken += 1
        self.merges_overtaken_in_row += 1
        backoff = MERGE_BACKOFF * 2 ** (self.merges_overtaken_in_row - 1)
        self._retry_at = now + min(backoff, MERGE_EVERY)

    def merged(self) -> None:
        """The store's delta was merged (by the maintenance or a reader)."""
        self._pending_since = None
        self._writes_at_merge = self.writes
        self._retry_at = 0.0
        self.merges_overtaken_in_row = 0

    def collected(self, dropped: int) -> None:
        """A collection went through this table's entries and dropped ``dropped``."""
        if dropped > len(self._entries):
            # A dict never shrinks its table: after a whole table's worth of
            # replaced entries, a copy is half the size (a C-speed copy).
            self._entries = self._entries.copy()
        self._entries_at_last_gc = len(self._entries)

    @property
    def distinct_entries(self) -> int:
        return len(self._entries)


def _canonical(values: list, intern: Callable[[tuple], tuple]) -> tuple | None:
    """The interned entry for per-slot ``values``: no trailing None, None if empty.

    Equal contents must intern together, hence the trimming.
    """
    end = len(values)
    while end and values[end - 1] is None:
        end -= 1
    if end == 0:
        return None
    return intern(tuple(values[:end]))


class Collection:
    """One garbage collection, run in steps by ``Rib.maintenance``.

    Walking every interned entry, path set and attribute set at once held the
    RIB lock for seconds (~2 us per set: 15-17 s at 64 routers); flow batches
    and the feed stalled meanwhile. In steps, the lock is free between them
    and writes go on. Phases: each table's entries, then path sets (entries
    dropped first release theirs), then attribute sets, then the interner's
    shared values. Each phase walks a list of the keys taken when it starts;
    an object is dropped only if, when its turn comes (under the lock),
    nothing but its intern dict refers to it, so a write between steps that
    starts using it again keeps it. Objects that fall out of use after their
    turn wait for the next collection; objects interned meanwhile, for the
    next one too.
    """

    def __init__(self, rib: Rib) -> None:
        self.rib = rib
        self.tables = dict(rib.tables)
        self.interner = rib.interner
        self._phases: list[tuple[str, FamilyTable | None]] = [
            *(("entries", t) for t in self.tables.values()),
            ("pathsets", None),
            ("attributes", None),
            ("values", None),
        ]
        self._phase = 0
        self._keys: list | None = None  # this phase's keys
        self._at = 0
        self._phase_dropped = 0
        self.dropped = 0
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


class Rib:
    """All routers' RIBs. Apply events with ``apply``; look up with ``lookup``."""

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
        self.notifications: list[Notification] = []
        self._pathsets: dict[PathSet, PathSet] = {}
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
        # (neighbor, family) -> (start, fs.writes then) of the quiet window
        # being watched, for families of up sessions that have not converged.
        self._quiet_windows: dict[tuple[str, str], tuple[float, int]] = {}

    # -- routers -------------------------------------------------------------

    def router(self, neighbor: str) -> RouterRib:
        r = self.routers.get(neighbor)
        if r is None:
            r = RouterRib(neighbor=neighbor, name=self.router_names.get(neighbor, neighbor))
            for family, table in self.tables.items():
                r.families[family] = FamilyState(slot=table.alloc_slot())
            self.routers[neighbor] = r
        return r

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
            for event in events:
                if type(event) is RoutesAnnounced:  # most events: skip a dispatch call
                    if allowed is not None and event.neighbor not in allowed:
                        self.unknown_neighbor_events += 1
                        continue
                    self._announce(event)
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
        elif kind is RouteRefreshMarker:
            self._refresh_marker(event)  # type: ignore[arg-type]
        elif kind is SessionState:
            self._session(event)  # type: ignore[arg-type]
        elif kind is ExabgpShutdown:
            self.exabgp_gone("ExaBGP shut down")
        elif kind is Notification:
            self.notifications = [*self.notifications[-99:], event]  # type: ignore[list-item]

    def _announce(self, ev: RoutesAnnounced) -> None:
        """Install one UPDATE's prefixes. The per-prefix hot loop of ingest.

        A prefix no router has yet (all of them, on a table load) only gets
        the entry holding this one path, built and interned once per UPDATE.
        The store's layers are used directly here (see ribd.store): the
        delta trie for prefixes the arrays lack, the arrays in place.
        """
        r = self.routers.get(ev.neighbor) or self.router(ev.neighbor)
        fs = r.families[ev.family]
        table = self.tables[ev.family]
        store = table.store
        delta = store.delta
        has_key, get, insert = delta.has_key, delta.get, delta.insert
        find = store.find if len(store.keys) else None
        values = store.values
        intern = table._entries.setdefault
        log_change = table.changes.append
        slot, stale = fs.slot, fs.stale_slot
        attrs = ev.attributes
        path_ids = ev.path_ids
        fresh: tuple | None = None  # the entry for a new prefix, path id 0
        added = 0  # new prefixes (one path each)
        ids = repeat(0) if path_ids is None else path_ids  # endless, or one per prefix
        for prefix, path_id in zip(ev.prefixes, ids, strict=False):
            at = -1  # index in the store's arrays, if there
            if has_key(prefix):
                entry = get(prefix)
            else:
                entry = None
                if find is not None:
                    at = find(prefix)
                    if at >= 0:
                        entry = values[at]
            if entry is None:
                if path_id != 0:
                    new_entry = (*((None,) * slot), self._with_path(None, path_id, attrs)[0])
                    new_entry = intern(new_entry, new_entry)
                else:
                    if fresh is None:
                        fresh = (*((None,) * slot), attrs)
                        fresh = intern(fresh, fresh)
                    new_entry = fresh
                if at >= 0:
                    store.set_at(at, new_entry)
                else:
                    insert(prefix, new_entry)
                log_change(prefix)
                added += 1
                continue
            n = len(entry)
            old = entry[slot] if slot < n else None
            if path_id == 0 and (old is None or type(old) is PathAttributes):
                new: object = attrs
                added_paths = 0 if old is not None else 1
            else:
                new, added_paths = self._with_path(old, path_id, attrs)
            if old is None:
                fs.prefixes += 1
            fs.paths += added_paths
            if stale is not None and stale < n and entry[stale] is not None:
                # The route is back: its stale copy is no longer needed.
                fs.stale_prefixes -= 1
                table.put(prefix, (*entry[:stale], None, *entry[stale + 1 :]), slot, new)
                continue
            if old is new:
                continue
            # ``new`` is never None and ``entry`` is canonical (no trailing
            # None), so the new entry is canonical too: no trimming needed.
            if slot < n:
                new_entry = (*entry[:slot], new, *entry[slot + 1 :])
            else:
                new_entry = (*entry, *((None,) * (slot - n)), new)
            new_entry = intern(new_entry, new_entry)
            if at >= 0:
                values[at] = new_entry  # entry was not None: no hole filled
            else:
                insert(prefix, new_entry)
            log_change(prefix)
        fs.prefixes += added
        fs.paths += added
        table.writes += len(ev.prefixes)
        fs.writes += len(ev.prefixes)
        table.forget_changes_if_behind()

    def _with_path(self, old: object, path_id: int, attrs: PathAttributes) -> tuple[object, int]:
        if old is None:
            paths: list[tuple[int, PathAttributes]] = []
        elif type(old) is PathAttributes:
            paths = [(0, old)]
        else:
            paths = list(old)  # type: ignore[call-overload]
        before = len(paths)
        paths = [p for p in paths if p[0] != path_id]
        paths.append((path_id, attrs))
        added = len(paths) - before
        if len(paths) == 1 and path_id == 0:
            return attrs, added
        paths.sort(key=preference_key)
        ps = PathSet(paths)
        return self._pathsets.setdefault(ps, ps), added

    def _withdraw(self, ev: RoutesWithdrawn) -> None:
        r = self.routers.get(ev.neighbor) or self.router(ev.neighbor)
        fs = r.families[ev.family]
        fs.writes += len(ev.prefixes)
        table = self.tables[ev.family]
        get = table.store.get
        slot, stale = fs.slot, fs.stale_slot
        path_ids = ev.path_ids
        for i, prefix in enumerate(ev.prefixes):
            entry = get(prefix)
            if entry is None:
                continue
            if stale is not None and stale < len(entry) and entry[stale] is not None:
                fs.stale_prefixes -= 1
                table.put(prefix, entry, stale, None)
                entry = get(prefix)
                if entry is None:
                    continue
            old = entry[slot] if slot < len(entry) else None
            if old is None:
                continue
            path_id = 0 if path_ids is None else path_ids[i]
            if type(old) is PathAttributes:
                if path_id != 0:
                    continue
                new: object = None
            else:
                remaining = [p for p in old if p[0] != path_id]  # type: ignore[attr-defined]
                if len(remaining) == len(old):  # type: ignore[arg-type]
                    continue
                if not remaining:
                    new = None
                elif len(remaining) == 1 and remaining[0][0] == 0:
                    new = remaining[0][1]
                else:
                    ps = PathSet(remaining)
                    new = self._pathsets.setdefault(ps, ps)
            fs.paths -= 1
            if new is None:
                fs.prefixes -= 1
            table.put(prefix, entry, slot, new)

    def _end_of_rib(self, ev: EndOfRib) -> None:
        r = self.router(ev.neighbor)
        if r.families[ev.family].refresh != REFRESH_NONE:
            # Lines were lost since the session started: what was not sent
            # again since then is not known to be gone; the re-read decides.
            return
        self._converge(r, ev.family, inferred=False)

    def _converge(self, r: RouterRib, family: str, inferred: bool) -> None:
        """The router's table of ``family`` is complete: retire the stale generation."""
        fs = r.families[family]
        if not fs.converged:
            # For the log: a re-read after a feed gap counts from when it was asked.
            reread = fs.refresh != REFRESH_NONE
            since = r.refresh_asked if reread and r.refresh_asked else r.session_since
            self.notes.append(
                TableLoaded(
                    r.neighbor,
                    r.name,
                    family,
                    fs.prefixes,
                    fs.paths,
                    max(0.0, self.clock() - since) if since else 0.0,
                    inferred,
                    self.converge_quiet_time if inferred else 0.0,
                    how=(
                        "route refresh"
                        if fs.refresh == REFRESH_RUNNING
                        else "nothing to re-read"
                        if reread
                        else ""
                    ),
                )
            )
        fs.converged = True
        fs.inferred = inferred
        fs.refresh = REFRESH_NONE
        if fs.stale_slot is not None:
            self.tables[family].release_slot(fs.stale_slot)
            fs.stale_slot = None
            fs.stale_prefixes = 0
        if all(f.stale_slot is None for f in r.families.values()):
            r.stale_until = 0.0
        if all(f.refresh == REFRESH_NONE for f in r.families.values()):
            r.refresh_asked = 0.0

    def _rotate(self, r: RouterRib, family: str, fs: FamilyState) -> None:
        """The family's current routes become its stale generation.

        They stay readable (stale) behind the fresh slot; what the router
        sends from now on shadows them, and the next End-of-RIB or EoRR
        drops those it did not send again. A stale generation already there
        (a re-read or a session start that never finished) is dropped: the
        routes it held alone are missing until the router sends them again.
        """
        if fs.prefixes == 0:
            return
        table = self.tables[family]
        if fs.stale_slot is not None:
            table.release_slot(fs.stale_slot)
        fs.stale_slot = fs.slot
        fs.stale_prefixes = fs.prefixes
        fs.slot = table.alloc_slot()
        fs.prefixes = fs.paths = 0
        if not r.stale_until:
            # Expire the stale copies if the re-read never finishes.
            r.stale_until = self.clock() + max(self.hold_time_for(r.neighbor), 300.0)

    # -- exact re-reads after lost feed lines ----------------------------------

    def mark_gap(self) -> list[str]:
        """Feed lines were lost: announcements *and* withdrawals may be missing.

        Every router's routes become stale and each family awaits a re-read
        (ROUTE-REFRESH answered with BoRR ... EoRR, RFC 7313, or a session
        reset): routes not sent again by its end are swept, so the RIB ends
        up equal to the router's table. Routers we think down are marked too:
        should one in fact be up (its "up" line was lost), its BoRR says so
        and its End-of-RIB alone cannot be trusted; one really down keeps its
        routes stale until its hold expires or its session comes back.
        Returns the routers marked.
        """
        now = self.clock()
        asked = []
        for r in self.routers.values():
            for family, fs in r.families.items():
                self._rotate(r, family, fs)
                fs.converged = False
                fs.refresh = REFRESH_ASKED
            r.refresh_asked = now
            asked.append(r.neighbor)
        return asked

    def note_refresh_asked(self) -> None:
        """The re-read was just asked for: the wait for BoRR starts now."""
        now = self.clock()
        for r in self.routers.values():
            if any(fs.refresh == REFRESH_ASKED for fs in r.families.values()):
                r.refresh_asked = now

    def _refresh_marker(self, ev: RouteRefreshMarker) -> None:
        r = self.router(ev.neighbor)
        fs = r.families[ev.family]
        if ev.begin:
            if r.session != "up":  # only an established session sends BoRR
                r.session, r.session_since = "up", self.clock()
            if fs.refresh != REFRESH_ASKED:  # not marked at a gap: mark now (RFC 7313)
                self._rotate(r, ev.family, fs)
            fs.refresh = REFRESH_RUNNING
            fs.converged = False
        elif fs.refresh == REFRESH_RUNNING:
            self._converge(r, ev.family, inferred=False)
        # An EoRR without its BoRR (lost, or from before a gap) proves nothing.

    def overdue_refreshes(self, timeout: float) -> list[str]:
        """Routers whose re-read was asked ``timeout`` seconds ago and never began.

        A family without stale routes needs nothing re-read (what it holds
        came after the gap): it is converged. One with stale routes needs a
        session reset (the peer did not answer with BoRR: no enhanced route
        refresh, or nothing left to send): returned for the caller to ask
        ExaBGP; the reset keeps the routes stale meanwhile.
        """
        now = self.clock()
        resets = []
        for r in self.routers.values():
            if not r.refresh_asked or now - r.refresh_asked < timeout:
                continue
            need_reset = False
            for family, fs in r.families.items():
                if fs.refresh != REFRESH_ASKED:
                    continue
                if fs.stale_slot is None or not fs.stale_prefixes:
                    self._converge(r, family, inferred=False)
                else:
                    need_reset = True
            if need_reset and r.session == "up":
                r.resetting = True
                r.refresh_asked = now  # asked again if the reset does not happen
                resets.append(r.neighbor)
            elif not need_reset and all(f.refresh == REFRESH_NONE for f in r.families.values()):
                r.refresh_asked = 0.0
        return resets

    def _session(self, ev: SessionState) -> None:
        r = self.router(ev.neighbor)
        now = self.clock()
        if ev.peer_as:
            r.peer_as = ev.peer_as
        if ev.router_id:
            r.router_id = ev.router_id
        if ev.state == "up":
            if r.session != "up":
                self._start_session(r)
                self.notes.append(SessionUp(r.neighbor, r.name, r.peer_as))
            r.session, r.session_since = "up", now
        elif ev.state == "down":
            r.last_reason = ev.reason
            if r.session != "down":
                hold = self._down_hold(r)
                self._note_down(r, ev.reason, hold)
                self._lose_session(r, hold)
            r.session, r.session_since = "down", now
        elif ev.state == "connected":
            r.session, r.session_since = "connected", now

    def _down_hold(self, r: RouterRib) -> float:
        """How long a session that went down keeps its routes (0: purge).

        The router's own hold, except when the loss is ours (ExaBGP being
        stopped for a restart, or a reset to re-read the table), where the
        restart hold applies as when ExaBGP dies.
        """
        hold = self.hold_time_for(r.neighbor)
        if self.stopping or r.resetting:  # a reset we asked for: the same
            hold = max(hold, self.restart_hold_time)
        return hold

    def _start_session(self, r: RouterRib) -> None:
        """A (re)started session: current routes become the stale generation.

        Routes already marked stale stay so; whatever the router sends now
        goes into a fresh slot and shadows them until End-of-RIB.
        """
        r.refresh_asked = 0.0
        r.resetting = False
        for family, fs in r.families.items():
            table = self.tables[family]
            fs.converged = False
            fs.refresh = REFRESH_NONE  # the new session's End-of-RIB is exact
            if fs.prefixes == 0:
                continue
            if fs.stale_slot is not None:
                # A session that never reached End-of-RIB flapped again: its
                # partial routes are newer than the older stale generation.
                table.release_slot(fs.stale_slot)
            fs.stale_slot = fs.slot
            fs.stale_prefixes = fs.prefixes
            fs.slot = table.alloc_slot()
            fs.prefixes = fs.paths = 0
        if any(f.stale_slot is not None for f in r.families.values()) and not r.stale_until:
            # Routes kept from before without a hold window (first start after
            # a snapshot, say) expire if no End-of-RIB comes.
            r.stale_until = self.clock() + max(self.hold_time_for(r.neighbor), 300.0)

    def _note_down(self, r: RouterRib, reason: str, hold_time: float) -> None:
        routes = "purged" if hold_time <= 0 else f"kept stale for {hold_time:.0f} s"
        self.notes.append(SessionDown(r.neighbor, r.name, reason, routes))

    def _lose_session(self, r: RouterRib, hold_time: float) -> None:
        """Session gone: purge now, or keep routes stale for ``hold_time``."""
        r.refresh_asked = 0.0
        r.resetting = False
        for fs in r.families.values():
            fs.refresh = REFRESH_NONE
        if hold_time <= 0:
            self._purge(r)
            return
        r.stale_until = self.clock() + hold_time
        for fs in r.families.values():
            fs.converged = False

    def _purge(self, r: RouterRib) -> None:
        for family, fs in r.families.items():
            table = self.tables[family]
            if fs.prefixes:
                table.release_slot(fs.slot)
                fs.slot = table.alloc_slot()
            if fs.stale_slot is not None:
                table.release_slot(fs.stale_slot)
                fs.stale_slot = None
            fs.prefixes = fs.paths = fs.stale_prefixes = 0
            fs.converged = False
        r.stale_until = 0.0

    def exabgp_gone(self, reason: str, hold_time: float | None = None) -> None:
        """ExaBGP stopped or died: every session it held is gone.

        Routes stay readable, marked stale, for ``hold_time`` (default: the
        restart hold time) so that a restart costs no answers; each router's
        End-of-RIB after the restart replaces them. Routers whose session was
        already down keep the state that loss gave them.
        """
        hold = self.restart_hold_time if hold_time is None else hold_time
        now = self.clock()
        for r in self.routers.values():
            if r.session == "down":
                continue
            r.last_reason = reason
            r.session, r.session_since = "down", now
            self._note_down(r, reason, hold)
            self._lose_session(r, hold)

    def with_lock_exabgp_gone(self, reason: str, hold_time: float | None = None) -> None:
        with self.lock:
            self.exabgp_gone(reason, hold_time)

    # -- maintenance (called periodically by the service) ---------------------

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
            # collect when any has grown by half since the last collection, in
            # steps (Collection) with the lock free between them.
            collected = False
            collection = self._collection
            if collection is None and (
                len(self.interner) > 1.5 * self._attributes_at_last_gc + 1024
                or any(
                    len(t._entries) > 1.5 * t._entries_at_last_gc + 1024
                    for t in self.tables.values()
                )
            ):
                collection = self._collection = Collection(self)
            if collection is not None:
                if collection.step(budget * GC_PER_STEP):
                    return True
                self._collection = None
                collected = True
            due = [t for t in self.tables.values() if t.merge_due(now)]
        merged = sum(self._merge(table) for table in due)
        if collected or merged >= RELEASE_AFTER:  # both free large blocks
            release_memory()
        return False

    def _infer_convergence(self, now: float) -> None:
        """Peers that never send End-of-RIB (no graceful restart capability,
        e.g. gobgpd's default): a family of an up session is converged,
        marked inferred, once it has been quiet for ``converge_quiet_time``:
        fewer than QUIET_PREFIXES_PER_SECOND prefixes announced or withdrawn
        per second over that time. Not "no UPDATE at all": a full-table peer
        is never silent for a minute (RIS, 2019: the busiest peers' longest
        pause was 4 to 31 s), while a table loads at thousands of prefixes a
        second and churn runs at a few to a hundred.

        Windows are counted per family from the first round that sees it
        unconverged with its session up (session start, or a re-read that
        ended without EoRR), and start over while the family is busy.
        """
        quiet = self.converge_quiet_time
        windows = self._quiet_windows
        for r in self.routers.values():
            for family, fs in r.families.items():
                key = (r.neighbor, family)
                if fs.converged or r.session != "up" or fs.refresh != REFRESH_NONE:
                    windows.pop(key, None)  # (a re-read ends with EoRR or a reset)
                    continue
                window = windows.get(key)
                if window is None or window[0] < r.session_since:
                    windows[key] = (max(now, r.session_since), fs.writes)
                    continue
                started, writes = window
                if now - started < quiet:
                    continue
                if fs.writes - writes < QUIET_PREFIXES_PER_SECOND * (now - started):
                    windows.pop(key, None)
                    self._converge(r, family, inferred=True)
                else:
                    windows[key] = (now, fs.writes)  # busy: a new window

    def _merge(self, table: FamilyTable) -> int:
        """Fold a store's delta into its arrays, holding the lock only to
        fold: listing and encoding the delta's keys and reading its entries
        (~1 s for a full table) run with the lock free. (Each pytricia call
        holds the GIL throughout, so no write lands inside one; the writes
        count, checked under the lock, says whether any landed between them.)

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
        texts = delta.keys()
        if len(texts) < MERGE_UNLOCKED:
            with self.lock:
                return self._merge_locked(table)  # small: a pass over the arrays
        keys = store.encode(texts)
        values = store.values_of(delta, texts)  # each get() is atomic; checked below
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

    # -- reading -------------------------------------------------------------

    def lookup(self, neighbor: str, family: str, key: str | bytes) -> RouteMatch | None:
        """Longest-prefix match of an address (text or packed) in one router's RIB."""
        r = self.routers.get(neighbor)
        if r is None:
            return None
        fs = r.families[family]
        slot, stale, current_stale = fs.slot, fs.stale_slot, r.current_stale
        for prefix, length, entry in self.tables[family].store.covering(key):
            value, is_stale = slot_value(entry, slot, stale, current_stale)  # type: ignore[arg-type]
            if value is not None:
                return route_match(prefix, value, is_stale, length)
        return None

    def exact(self, neighbor: str, family: str, prefix: str) -> list[RouteMatch]:
        """All paths a router has for exactly ``prefix`` (normalised), best first."""
        r = self.routers.get(neighbor)
        if r is None:
            return []
        entry = self.tables[family].store.get(prefix)
        if entry is None:
            return []
        fs = r.families[family]
        value, is_stale = slot_value(entry, fs.slot, fs.stale_slot, r.current_stale)  # type: ignore[arg-type]
        return [] if value is None else all_matches(prefix, value, is_stale)

    def routes(self, neighbor: str, family: str) -> Iterator[RouteMatch]:
        """Every best route of one router (current, then stale-only), for dumps and tests."""
        r = self.routers.get(neighbor)
        if r is None:
            return
        fs = r.families[family]
        with self.lock:
            items = self.tables[family].store.items()
        for prefix, entry in items:
            value, is_stale = slot_value(entry, fs.slot, fs.stale_slot, r.current_stale)  # type: ignore[arg-type]
            if value is not None:
                yield route_match(prefix, value, is_stale)

    def stats(self) -> dict:
        return {
            "routers": len(self.routers),
            "attribute_sets": len(self.interner),
            "distinct_entries": {f: t.distinct_entries for f, t in self.tables.items()},
            "prefixes_stored": {f: len(t.store) for f, t in self.tables.items()},
            "treated_as_withdraw": self.treated_as_withdraw,
            "unknown_neighbor_events": self.unknown_neighbor_events,
        }


def slot_value(
    entry: tuple, slot: int, stale_slot: int | None, current_stale: bool
) -> tuple[object, bool]:
    """A router's value in ``entry`` and whether it is stale: its current slot,
    else the stale generation kept behind it."""
    value = entry[slot] if slot < len(entry) else None
    if value is None and stale_slot is not None and stale_slot < len(entry):
        return entry[stale_slot], True
    return value, current_stale


def route_match(prefix: str, value: object, stale: bool, length: int = -1) -> RouteMatch:
    """The best route of a slot value (one path, or an ADD-PATH set best first)."""
    if type(value) is PathAttributes:
        attrs, path_id = value, 0
    else:
        path_id, attrs = value[0]  # type: ignore[index]
    if length < 0:
        length = int(prefix.rpartition("/")[2])
    return RouteMatch(prefix, length, attrs, path_id, stale)


def all_matches(prefix: str, value: object, stale: bool) -> list[RouteMatch]:
    length = int(prefix.rpartition("/")[2])
    if type(value) is PathAttributes:
        return [RouteMatch(prefix, length, value, 0, stale)]
    return [RouteMatch(prefix, length, a, pid, stale) for pid, a in value]  # type: ignore[attr-defined]


__all__ = [
    "IPV4_UNICAST",
    "IPV6_UNICAST",
    "FamilyState",
    "PathSet",
    "Rib",
    "RouteMatch",
    "RouterRib",
]
