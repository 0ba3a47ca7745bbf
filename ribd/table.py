"""The per-family table of the RIB: one prefix store shared by all routers. No I/O.

Split out of ``ribd.rib`` so the storage layout (entries indexed by router
slot, interning, the change log compiled lookup tables read, and when a
store's new prefixes are due for a merge) can be read apart from the rules
that decide what goes into it. ``ribd.rib`` re-exports every public name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from sys import getrefcount

from ribd.attributes import AS_CONFED_SEQUENCE, AS_CONFED_SET, AS_SET, PathAttributes
from ribd.entries import (
    OVERLAY_SLOTS,
    Overlay,
    canonical,
    cleared,
    drop_dead_rows,
    row_of,
    with_values,
)
from ribd.events import IPV4_UNICAST
from ribd.store import PrefixStore

SWEEP_CHUNK = 4096  # prefixes rewritten per maintenance step, under the lock
MAX_DELTA = 1_048_576  # new prefixes held in the store's trie before a merge is forced
COUNT_DELTA_EVERY = MAX_DELTA // 8  # writes between two counts of the delta by merge_due
RELEASE_AFTER = 65_536  # prefixes merged after which freed C heap is given back to the OS
MERGE_UNLOCKED = 65_536  # new prefixes from which a merge reads and encodes them unlocked
MERGE_EVERY = 60.0  # seconds: the longest the store's trie waits for a merge under churn
MERGE_QUIET = 1.0  # seconds without a write after which a store's new prefixes are merged
MERGE_BACKOFF = 1.0  # seconds before retrying a merge writes overtook; doubles per retry
MERGE_LOCKED_AFTER = 3  # merges overtaken in a row, after which one runs under the lock
# A wide table's rows are interned again (``FamilyTable.rows_due``) after
# ROWS_INTERN_STORES times its store's prefixes in route writes, and never after
# fewer than ROWS_INTERN_WRITES. A pass over the real table's entries costs ~0.35
# CPU-s at 32 routers (memory-bound: each entry, its row, the row's sets), ~20%
# of a late router's load: so once after a load of many routers together, and
# after every 16th table loaded alone or under churn, not after each.
ROWS_INTERN_WRITES = 65536
ROWS_INTERN_STORES = 16
GC_PER_STEP = 4  # interned objects a garbage collection step checks per prefix of budget
# Inferred convergence: a family is quiet below this many prefix changes a
# second (see Rib._infer_convergence).
QUIET_PREFIXES_PER_SECOND = 500
# ... and its table grew by fewer than this many prefixes a second. A table
# arriving slower than the quiet rate (63 routers through one ExaBGP: ~300 a
# second each) is still loading while it grows; churn changes prefixes the
# table holds, and the Internet's table grows by a few a day per router.
GROWING_PREFIXES_PER_SECOND = 10
# A router known to send End-of-RIB is inferred converged only after this many
# quiet times since its session came up: End-of-RIB is the signal, the quiet
# spell a last resort for one that never comes (a table arriving slower than
# QUIET_PREFIXES_PER_SECOND would otherwise pass for converged half loaded).
END_OF_RIB_WAIT_QUIET_TIMES = 10
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
    pref = a.own.policy[0]  # local_pref, without the properties' calls
    return (
        -(pref if pref is not None else 100),
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
    # The router sends End-of-RIB for this family: its OPEN offered graceful
    # restart and the family, or it sent one before (kept across sessions).
    # Its convergence is then not inferred early from a quiet spell
    # (Rib._infer_convergence).
    sends_end_of_rib: bool = False
    # ADD-PATH paths not kept: the prefix already held [bgp] max_paths_per_prefix
    # better ones (ribd.addpath). Counted since the process started (not in snapshots).
    paths_over_limit: int = 0
    # The most prefixes this family may hold ([bgp] / [[routers]] max_prefixes_ipv4
    # and _ipv6; 0: no limit), and the new prefixes refused at it, counted since
    # the process started (ribd.prefix_limit).
    max_prefixes: int = 0
    prefixes_refused: int = 0


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

    @property
    def label(self) -> str:
        """How log lines name the router: "name (neighbor)", or the neighbor alone."""
        if self.name and self.name != self.neighbor:
            return f"{self.name} ({self.neighbor})"
        return self.neighbor

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

    # The fields every UPDATE reads or writes are slots: the compiled loaders
    # (ribd._apply, ribd._announce, ribd._wide) read them at their offsets
    # (ribd._slots.get_at), where a lookup by name in the instance dict took
    # ~110 instructions each, ten or more an UPDATE. The rest stay in the
    # instance's dict (tests also put their own attributes there).
    __slots__ = (
        "__dict__",
        "_entries",
        "_next_slot",
        "changes",
        "changes_start",
        "slot_seq",
        "store",
        "writes",
    )

    def __init__(self, family: str) -> None:
        self.family = family
        self.bits = 32 if family == IPV4_UNICAST else 128
        self.store = PrefixStore(self.bits)
        self._entries: dict[tuple, tuple] = {}
        self._entries_at_last_gc = 0
        self._next_slot = 0
        self._free_slots: list[int] = []
        # Each slot's allocation number. A released slot is cleared without a
        # logged change (nobody reads it), so a slot allocated again holds
        # another generation of routes than one a compiled view was built
        # over: views and the IX table sign with the births of the slots they
        # read (``attribution.compiledview.view_signature``), never the slot
        # numbers alone, or a router that flapped twice while its view waited
        # got the view's answers back for routes swept since.
        self.slot_births: dict[int, int] = {}
        self._births = 0
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
        # Per router slot, the change number past the last logged change of
        # that slot (``note_slots``): a view of a router none of whose slots
        # changed since its own number is current, however many changes other
        # routers logged (attribution.viewpatch.unchanged).
        self.slot_seq: dict[int, int] = {}
        self.writes = 0  # prefixes written; the maintenance merges once it stops moving
        # ``writes`` when the maintenance last interned this table's rows
        # (``ribd.maintenance.Collection``'s rows phase): the wide rows an
        # UPDATE moves are not interned when made (``entries.moved_row``).
        self.rows_interned_at = 0
        # Merge scheduling (merge_due): the writes count and when it last
        # moved, when unmerged work was first seen, the back-off after
        # overtaken merges. Counters for stats and tests.
        self._writes_at_check = 0
        self._writes_moved_at: float | None = None
        self._pending_since: float | None = None
        self._writes_at_merge = 0
        self._writes_at_count = -COUNT_DELTA_EVERY  # when merge_due last counted the delta
        self._retry_at = 0.0
        self.merges_overtaken_in_row = 0
        self.merge_attempts = 0
        self.merges_overtaken = 0

    @property
    def change_seq(self) -> int:
        """Number of the next change: a table compiled now has seen every change before it."""
        return self.changes_start + len(self.changes)

    def changes_since(self, seq: int) -> list[str] | None:
        """Prefixes changed since ``seq``, as texts; None if the log no longer
        reaches back. (The log holds the store's keys: an IPv4 store's are
        ints, ``ribd.store``, made texts here for the readers.)"""
        if seq < self.changes_start:
            return None
        return self.store.texts_of(self.changes[seq - self.changes_start :])

    def note_slots(self, *slots: int | None) -> None:
        """The changes logged so far include changes of ``slots`` (None: skipped)."""
        seq = self.change_seq
        for s in slots:
            if s is not None:
                self.slot_seq[s] = seq

    def slots_changed_since(self, seq: int, slot: int, stale_slot: int | None) -> bool:
        """Whether a change of ``slot`` or ``stale_slot`` was logged past ``seq``."""
        get = self.slot_seq.get
        return get(slot, 0) > seq or (stale_slot is not None and get(stale_slot, 0) > seq)

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

    @property
    def wide(self) -> bool:
        """Whether entries here can be wide (``ribd.entries``): the table has had
        OVERLAY_SLOTS router slots, so UPDATEs take ``announce_wide``."""
        return self._next_slot >= OVERLAY_SLOTS

    def rows_due(self) -> bool:
        """Whether the rows moved since the last pass should be interned now: a
        wide table written ROWS_INTERN_STORES times its prefixes (at least
        ROWS_INTERN_WRITES) since. Until then an equal row made by another UPDATE stays a copy and
        ``distinct_entries`` does not count the rows moved meanwhile."""
        return self.wide and self.writes - self.rows_interned_at >= max(
            ROWS_INTERN_WRITES, ROWS_INTERN_STORES * len(self.store)
        )

    def alloc_slot(self) -> int:
        if self._free_slots:
            slot = self._free_slots.pop()
        else:
            slot = self._next_slot
            self._next_slot += 1
        self._births += 1
        self.slot_births[slot] = self._births
        return slot

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
        rows: dict = {}  # id(row) -> (row, cleared): prefixes sharing a row share the result
        for i in range(start, stop):
            entry = values[i]
            if entry is None:
                continue
            if type(entry) is Overlay:
                row = entry.row
                if any(entry.get(s) is not None or (s < len(row) and row[s] is not None)
                       for s in slots):  # fmt: skip
                    store.set_at(i, cleared(entry, slots, rows, intern))
                continue
            n = len(entry)
            if not any(s < n and entry[s] is not None for s in slots):
                continue
            # A released slot is read by nobody: not a change to log.
            new = list(entry)
            for s in slots:
                if s < n:
                    new[s] = None
            if n >= OVERLAY_SLOTS:
                store.set_at(i, cleared(entry, slots, rows, intern))
            else:
                store.set_at(i, _canonical(new, intern))
        entry = row = None
        drop_dead_rows(rows, self._entries)
        self._sweep_at = stop
        if stop >= len(values):
            self._free_slots.extend(slots)
            self._sweeps = []
            self._sweep_keys = None
        return max(stop - start, 1)

    def put(
        self,
        prefix: str,
        entry: tuple,
        slot: int,
        value: object,
        log: bool = True,
        at: int = -1,
        clear: int | None = None,
    ) -> None:
        """Store ``value`` for ``slot`` at ``prefix`` (``entry`` is the current one).

        ``at``: the prefix's index in the store's arrays when the caller has
        found it already (``Rib._announce`` finds an UPDATE's prefixes at
        once); finding it again cost a refresh over stale routes (every
        prefix of a restarted router) a fifth of its CPU.
        ``clear``: a slot emptied in the same write (a returning route's stale
        copy), so that ``entry`` itself is what is replaced, and leaves the
        intern dict when no prefix holds it any more.
        """
        if log:
            self.changes.append(prefix)
            self.note_slots(slot, clear)
            self.forget_changes_if_behind()
        self.writes += 1
        if type(entry) is Overlay or len(entry) >= OVERLAY_SLOTS:
            changes = {slot: value}
            if clear is not None:
                changes[clear] = None
            self._put_wide(prefix, entry, at, with_values(entry, changes, self.intern))
            return
        n = len(entry)
        if slot < n:
            new = [*entry[:slot], value, *entry[slot + 1 :]]
        else:
            new = [*entry, *((None,) * (slot - n)), value]
        if clear is not None and clear < len(new):
            new[clear] = None
        if at >= 0:
            self.store.set_at(at, _canonical(new, self.intern))
        else:
            self.store.set(prefix, _canonical(new, self.intern))
        del new
        # ``entry`` no prefix holds any more leaves the intern dict now (see
        # Rib._announce). References: the dict's key and value, the caller's
        # variable, this parameter and getrefcount's argument.
        if getrefcount(entry) <= 5 and self._entries.get(entry) is entry:
            del self._entries[entry]

    def _put_wide(self, prefix: str, entry: object, at: int, new: object) -> None:
        """Store ``new`` (``ribd.entries``' layout) in place of ``entry``; the row
        ``entry`` held leaves the intern dict when no prefix holds it any more."""
        if at >= 0:
            self.store.set_at(at, new)
        else:
            self.store.set(prefix, new)
        del new
        row = row_of(entry)
        plain = row is entry
        del entry
        # References: the dict's key and value, ``row``, getrefcount's argument
        # and: a plain entry, the caller's variable and ``put``'s parameter; an
        # Overlay's row, its field.
        if getrefcount(row) <= 5 + plain and self._entries.get(row) is row:
            del self._entries[row]

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
        # last merge; only then is counting it (a walk of the trie, ~50 ms at
        # 1 M prefixes) worth it, and only again after COUNT_DELTA_EVERY more
        # writes: several routers' tables pass MAX_DELTA writes long before
        # their delta holds that many prefixes, and a walk per maintenance
        # round (10 a second) took a tenth of the service's CPU.
        if self.writes - self._writes_at_merge < MAX_DELTA:
            return False
        if self.writes - self._writes_at_count < COUNT_DELTA_EVERY:
            return False
        self._writes_at_count = self.writes
        return self.delta_size() >= MAX_DELTA

    def delta_size(self) -> int:
        """Prefixes in the store's delta (a walk of the trie)."""
        return len(self.store.delta)

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


_canonical = canonical  # (its name here before ribd.entries)
