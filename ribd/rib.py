"""Per-router BGP RIBs over one shared Patricia trie per address family. No I/O.

Layout (why it looks like this):

* Each router (BGP neighbor) has its own RIB: a lookup for router A never
  answers with router B's routes. Physically, all routers of a family share
  one pytricia trie of prefixes; the value at a prefix is an *entry*, a tuple
  indexed by per-router *slot*, holding that router's path(s) or None. A
  second pytricia per router would cost ~146 bytes per prefix again; a slot
  costs nothing when routers carry the same paths, because entries are
  interned (identical tuples are stored once).
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
* Tries hold only validated, normalised prefixes (see ribd.prefixes) and a
  32-bit trie never sees an IPv6 address.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import repeat

import pytricia

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
    RoutesAnnounced,
    RoutesWithdrawn,
    SessionState,
    UpdateTime,
)

SWEEP_CHUNK = 4096  # prefixes rewritten per maintenance step, under the lock
MAX_CHANGE_LOG = 262_144  # changed prefixes remembered for compiled lookup tables (~17 MB)


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

    @property
    def stale(self) -> bool:
        return self.stale_until > 0

    @property
    def current_stale(self) -> bool:
        """Routes in the current slot are kept from a session that is gone."""
        return self.stale_until > 0 and self.session != "up"


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """A router's route for an address or prefix."""

    prefix: str
    length: int
    attributes: PathAttributes
    path_id: int
    stale: bool


class FamilyTable:
    """The shared trie of one family and its slot bookkeeping."""

    def __init__(self, family: str) -> None:
        self.family = family
        self.bits = 32 if family == IPV4_UNICAST else 128
        self.trie = pytricia.PyTricia(self.bits)
        self._entries: dict[tuple, tuple] = {}
        self._entries_at_last_gc = 0
        self._next_slot = 0
        self._free_slots: list[int] = []
        # Slots being cleared: (slot, remaining keys to visit).
        self._sweeps: list[tuple[int, list[str]]] = []
        # Prefixes whose entry changed, in order, so compiled lookup tables
        # (attribution.fastpath) know what they no longer answer for.
        # changes[0] is change number changes_start.
        self.changes: list[str] = []
        self.changes_start = 0

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
        self._sweeps.append((slot, self.trie.keys()))

    def sweep_step(self, budget: int) -> int:
        """Clear up to ``budget`` prefixes of released slots; return work done."""
        done = 0
        while self._sweeps and done < budget:
            slot, keys = self._sweeps[-1]
            trie = self.trie
            while keys and done < budget:
                key = keys.pop()
                done += 1
                if not trie.has_key(key):
                    continue
                entry = trie.get(key)
                if slot < len(entry) and entry[slot] is not None:
                    # A released slot is read by nobody: not a change to log.
                    self.put(key, entry, slot, None, log=False)
            if not keys:
                self._sweeps.pop()
                self._free_slots.append(slot)
        return done

    def put(self, prefix: str, entry: tuple, slot: int, value: object, log: bool = True) -> None:
        """Store ``value`` for ``slot`` at ``prefix`` (``entry`` is the current one)."""
        if log:
            self.changes.append(prefix)
            self.forget_changes_if_behind()
        n = len(entry)
        if slot < n:
            new = (*entry[:slot], value, *entry[slot + 1 :])
        else:
            new = (*entry, *((None,) * (slot - n)), value)
        # Canonical form: no trailing None, so equal contents intern together.
        end = len(new)
        while end and new[end - 1] is None:
            end -= 1
        if end == 0:
            self.trie.delete(prefix)
            return
        self.trie.insert(prefix, self.intern(new[:end] if end != len(new) else new))

    def collect_garbage(self) -> int:
        """Forget interned entries no prefix uses any more (after churn)."""
        getrefcount = sys.getrefcount
        # An unused entry is referenced only by the dict (as key and value),
        # the comprehension variable and getrefcount's argument: 4.
        dead = [e for e in self._entries if getrefcount(e) <= 4]
        for e in dead:
            del self._entries[e]
        self._entries_at_last_gc = len(self._entries)
        return len(dead)

    @property
    def distinct_entries(self) -> int:
        return len(self._entries)


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
        self.clock = clock
        self.treated_as_withdraw = 0
        self.notifications: list[Notification] = []
        self._pathsets: dict[PathSet, PathSet] = {}
        self._attributes_at_last_gc = 0

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
            for event in events:
                if type(event) is RoutesAnnounced:  # most events: skip a dispatch call
                    self._announce(event)
                else:
                    self._apply(event)

    def _apply(self, event: Event) -> None:
        kind = type(event)
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
        """
        r = self.routers.get(ev.neighbor) or self.router(ev.neighbor)
        fs = r.families[ev.family]
        table = self.tables[ev.family]
        trie = table.trie
        has_key, get, insert = trie.has_key, trie.get, trie.insert
        intern = table._entries.setdefault
        log_change = table.changes.append
        slot, stale = fs.slot, fs.stale_slot
        attrs = ev.attributes
        path_ids = ev.path_ids
        fresh: tuple | None = None  # the entry for a new prefix, path id 0
        added = 0  # new prefixes (one path each)
        ids = repeat(0) if path_ids is None else path_ids  # endless, or one per prefix
        for prefix, path_id in zip(ev.prefixes, ids, strict=False):
            if not has_key(prefix):
                if path_id != 0:
                    new_entry = (*((None,) * slot), self._with_path(None, path_id, attrs)[0])
                    insert(prefix, intern(new_entry, new_entry))
                else:
                    if fresh is None:
                        fresh = (*((None,) * slot), attrs)
                        fresh = intern(fresh, fresh)
                    insert(prefix, fresh)
                log_change(prefix)
                added += 1
                continue
            entry = get(prefix)
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
            insert(prefix, intern(new_entry, new_entry))
            log_change(prefix)
        fs.prefixes += added
        fs.paths += added
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
        table = self.tables[ev.family]
        trie = table.trie
        slot, stale = fs.slot, fs.stale_slot
        path_ids = ev.path_ids
        for i, prefix in enumerate(ev.prefixes):
            if not trie.has_key(prefix):
                continue
            entry = trie.get(prefix)
            if stale is not None and stale < len(entry) and entry[stale] is not None:
                fs.stale_prefixes -= 1
                table.put(prefix, entry, stale, None)
                if not trie.has_key(prefix):
                    continue
                entry = trie.get(prefix)
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
        fs = r.families[ev.family]
        fs.converged = True
        if fs.stale_slot is not None:
            self.tables[ev.family].release_slot(fs.stale_slot)
            fs.stale_slot = None
            fs.stale_prefixes = 0
        if all(f.stale_slot is None for f in r.families.values()):
            r.stale_until = 0.0

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
            r.session, r.session_since = "up", now
        elif ev.state == "down":
            r.last_reason = ev.reason
            if r.session != "down":
                self._lose_session(r, self.hold_time_for(r.neighbor))
            r.session, r.session_since = "down", now
        elif ev.state == "connected":
            r.session, r.session_since = "connected", now

    def _start_session(self, r: RouterRib) -> None:
        """A (re)started session: current routes become the stale generation.

        Routes already marked stale stay so; whatever the router sends now
        goes into a fresh slot and shadows them until End-of-RIB.
        """
        for family, fs in r.families.items():
            table = self.tables[family]
            fs.converged = False
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

    def _lose_session(self, r: RouterRib, hold_time: float) -> None:
        """Session gone: purge now, or keep routes stale for ``hold_time``."""
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
            self._lose_session(r, hold)

    def with_lock_exabgp_gone(self, reason: str, hold_time: float | None = None) -> None:
        with self.lock:
            self.exabgp_gone(reason, hold_time)

    # -- maintenance (called periodically by the service) ---------------------

    def maintenance(self, budget: int = SWEEP_CHUNK) -> bool:
        """Expire stale routes, clear released slots, collect garbage.

        Does at most ``budget`` prefixes of work under the lock; returns True
        while work remains, so a caller can loop with pauses in between.
        """
        with self.lock:
            now = self.clock()
            for r in self.routers.values():
                if r.stale_until and now >= r.stale_until:
                    r.last_reason = r.last_reason or "stale hold time expired"
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
            done = 0
            for table in self.tables.values():
                done += table.sweep_step(budget - done)
                if done >= budget:
                    return True
            # Churn leaves entries, path sets and attribute sets nobody uses;
            # collect when any has grown by half since the last collection.
            if len(self.interner) > 1.5 * self._attributes_at_last_gc + 1024 or any(
                len(t._entries) > 1.5 * t._entries_at_last_gc + 1024 for t in self.tables.values()
            ):
                self._collect_garbage()
            return False

    def collect_garbage(self) -> None:
        """Drop interned entries, path sets and attributes nothing uses."""
        with self.lock:
            self._collect_garbage()

    def _collect_garbage(self) -> None:
        """collect_garbage with the lock already held."""
        for table in self.tables.values():
            table.collect_garbage()
        getrefcount = sys.getrefcount
        dead = [p for p in self._pathsets if getrefcount(p) <= 4]
        for p in dead:
            del self._pathsets[p]
        in_use: set[int] = set()
        for table in self.tables.values():
            for entry in table._entries:
                for v in entry:
                    if type(v) is PathAttributes:
                        in_use.add(id(v))
                    elif v is not None:
                        in_use.update(id(a) for _, a in v)
        self.interner.collect_unused(in_use)
        self._attributes_at_last_gc = len(self.interner)

    # -- reading -------------------------------------------------------------

    def lookup(self, neighbor: str, family: str, key: str | bytes) -> RouteMatch | None:
        """Longest-prefix match of an address (text or packed) in one router's RIB."""
        r = self.routers.get(neighbor)
        if r is None:
            return None
        fs = r.families[family]
        trie = self.tables[family].trie
        prefix = trie.get_key(key)
        slot, stale, current_stale = fs.slot, fs.stale_slot, r.current_stale
        while prefix is not None:
            value, is_stale = slot_value(trie.get(prefix), slot, stale, current_stale)
            if value is not None:
                return route_match(prefix, value, is_stale)
            prefix = trie.parent(prefix)
        return None

    def exact(self, neighbor: str, family: str, prefix: str) -> list[RouteMatch]:
        """All paths a router has for exactly ``prefix`` (normalised), best first."""
        r = self.routers.get(neighbor)
        trie = self.tables[family].trie
        if r is None or not trie.has_key(prefix):
            return []
        fs = r.families[family]
        value, is_stale = slot_value(trie.get(prefix), fs.slot, fs.stale_slot, r.current_stale)
        return [] if value is None else all_matches(prefix, value, is_stale)

    def routes(self, neighbor: str, family: str) -> Iterator[RouteMatch]:
        """Every best route of one router (current, then stale-only), for dumps and tests."""
        r = self.routers.get(neighbor)
        if r is None:
            return
        fs = r.families[family]
        trie = self.tables[family].trie
        for prefix in trie.keys():  # noqa: SIM118 (a snapshot: the trie may change)
            value, is_stale = slot_value(trie.get(prefix), fs.slot, fs.stale_slot, r.current_stale)
            if value is not None:
                yield route_match(prefix, value, is_stale)

    def stats(self) -> dict:
        return {
            "routers": len(self.routers),
            "attribute_sets": len(self.interner),
            "distinct_entries": {f: t.distinct_entries for f, t in self.tables.items()},
            "prefixes_in_tries": {f: len(t.trie) for f, t in self.tables.items()},
            "treated_as_withdraw": self.treated_as_withdraw,
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


def route_match(prefix: str, value: object, stale: bool) -> RouteMatch:
    """The best route of a slot value (one path, or an ADD-PATH set best first)."""
    if type(value) is PathAttributes:
        attrs, path_id = value, 0
    else:
        path_id, attrs = value[0]  # type: ignore[index]
    return RouteMatch(prefix, int(prefix.rpartition("/")[2]), attrs, path_id, stale)


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
