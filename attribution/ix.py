"""The IX learner: keeps each ``[[ix]]``'s learned table current, in a thread.

Each round (every ``ROUND`` seconds): every IX whose ``refresh_interval`` has
passed reads its neighbor table (SNMP or a file) and its PeeringDB file (when
that file changed); every IX router's RIB next hops are brought up to date
from the RIB's change log (``ix_table.NextHops``: the prefixes that changed,
not the table); an IX whose facts changed gets its table rebuilt
(``ix_table.build_table``), and the resolver's ``IxLookup`` is replaced whole.
No flow batch ever waits for any of it.

A source that fails (SNMP timeout, unreadable file, not JSON) keeps the last
good table of that source, and the failure is counted and shown (``ix
show``, metrics, one log line per change of error). Entries a source sends
that are unusable are counted by reason and skipped (``ix_inputs``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from attribution.config import Config
from attribution.ix_config import IxConfig
from attribution.ix_inputs import (
    MAX_INPUT_BYTES,
    NEIGHBOR_PARSERS,
    Read,
    parse_peeringdb,
    parse_snmp_rows,
)
from attribution.ix_resolve import IxLookup, IxPort
from attribution.ix_snmp import SnmpError, walk_neighbors
from attribution.ix_table import MacEntry, Networks, NextHops, build_table
from ribd.rib import Rib

log = logging.getLogger(__name__)
ROUND = 1.0  # seconds between rounds: RIB next hops checked, due sources read


@dataclass(slots=True)
class SourceState:
    """One input of an IX (its neighbor table, or its PeeringDB file)."""

    kind: str  # "snmp", "ip-json", "csv", "peeringdb"
    where: str  # target or path
    last: Read | None = None  # the last good read
    read_at: float = 0.0  # when ``last`` was read (unix seconds)
    error: str = ""  # the last attempt's failure, "" when it worked
    reads: int = 0
    failures: int = 0
    bad: Counter[str] = field(default_factory=Counter)  # refused entries, summed over reads
    mtime: float | None = None  # files: modification time of ``last``
    last_bad: dict[str, int] = field(default_factory=dict)  # the last read's refusals (logged once)


@dataclass(slots=True)
class IxState:
    config: IxConfig
    networks: Networks
    neighbors: SourceState | None
    peeringdb: SourceState | None
    next_hops: dict[str, NextHops]  # router neighbor address -> tracker
    manual: tuple[tuple[bytes, int, str], ...]
    table: dict[bytes, MacEntry] = field(default_factory=dict)
    built_at: float = 0.0
    builds: int = 0
    due: float = 0.0  # monotonic time of the next neighbor table read


def ix_neighbors(config: Config, ix: IxConfig) -> tuple[str, ...]:
    """The routers (neighbor addresses) whose RIBs give this IX's next hops:
    its ``router``, else the routers its exporters map to."""
    if ix.router:
        r = config.router_by_name(ix.router)
        return (r.neighbor,) if r else ()
    out = []
    for r in config.routers:
        keys = {r.neighbor, r.router_id, *r.exporters}
        if keys & set(ix.exporters):
            out.append(r.neighbor)
    return tuple(out)


def manual_rules(config: Config, ix: IxConfig) -> tuple[tuple[bytes, int, str], ...]:
    """MAC-qualified ``[[overrides]]`` on the IX's ports: (MAC, AS, rule name)."""
    ports = {(e, n) for e in ix.exporters for n in ix.in_if}
    return tuple(
        (o.src_mac, o.peer_as, o.name)
        for o in config.overrides
        if o.src_mac is not None and (o.exporter, o.in_if) in ports
    )


class IxLearner:
    def __init__(
        self,
        rib: Rib,
        lookup: IxLookup,
        config: Config,
        *,
        snmp_walk: Callable = walk_neighbors,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rib = rib
        self.lookup = lookup
        self.snmp_walk = snmp_walk
        self.clock = clock
        self.states: dict[str, IxState] = {}
        self._lock = threading.Lock()  # one round at a time; reconfigure between rounds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reconfigure(config)

    # -- config ----------------------------------------------------------------

    def reconfigure(self, config: Config) -> None:
        """Adopt a new config: IXes whose entry is unchanged keep what they learned."""
        with self._lock:
            states: dict[str, IxState] = {}
            for ix in config.ix:
                old = self.states.get(ix.name)
                neighbors = ix_neighbors(config, ix)
                manual = manual_rules(config, ix)
                if old is not None and old.config == ix and tuple(old.next_hops) == neighbors:
                    old.manual = manual
                    old.table = self._build(old)
                    states[ix.name] = old
                    continue
                nets = Networks(ix.prefixes)
                states[ix.name] = IxState(
                    config=ix,
                    networks=nets,
                    neighbors=_neighbor_source(ix),
                    peeringdb=SourceState("peeringdb", ix.peeringdb_file)
                    if ix.peeringdb_file
                    else None,
                    next_hops={n: NextHops(n, nets) for n in neighbors},
                    manual=manual,
                )
            self.states = states
            self._publish()

    # -- the rounds --------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None and self.states:
            self._thread = threading.Thread(target=self._run, name="ix-learner", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # never let a learner bug end learning for good
                log.exception("IX learning round failed")
            self._stop.wait(ROUND)

    def refresh(self, force: bool = False) -> bool:
        """One round; ``force`` reads every source now. True when a table changed."""
        with self._lock:
            changed = False
            now = time.monotonic()
            for st in self.states.values():
                inputs = False
                for tracker in st.next_hops.values():
                    inputs |= tracker.update(self.rib)
                if force or now >= st.due:
                    st.due = now + st.config.refresh_interval
                    if st.neighbors is not None:
                        inputs |= self._read_neighbors(st)
                    if st.peeringdb is not None:
                        inputs |= self._read_peeringdb(st)
                if inputs or not st.builds:
                    table = self._build(st)
                    if table != st.table:
                        changed = True
                    st.table = table
            if changed:
                self._publish()
            return changed

    def _build(self, st: IxState) -> dict[bytes, MacEntry]:
        hops: dict[str, dict[int, int]] = {}
        for tracker in st.next_hops.values():
            for nh, ases in tracker.next_hops().items():
                merged = hops.setdefault(nh, {})
                for asn, n in ases.items():
                    merged[asn] = merged.get(asn, 0) + n
        neighbors = st.neighbors.last.macs if st.neighbors and st.neighbors.last else {}
        pdb = st.peeringdb.last.ases if st.peeringdb and st.peeringdb.last else {}
        table = build_table(st.networks, hops, pdb, neighbors, st.manual)
        st.built_at = self.clock()
        st.builds += 1
        return table

    def _publish(self) -> None:
        """The resolver's view: exporter -> in_if -> usable MACs, replaced whole."""
        ports: dict[str, dict[int, IxPort]] = {}
        for st in self.states.values():
            usable = {m: e.peer_as for m, e in st.table.items() if e.usable}
            port = IxPort.build(st.config.name, usable, st.table)
            for exporter in st.config.exporters:
                for n in st.config.in_if:
                    ports.setdefault(exporter, {})[n] = port
        self.lookup.ports = ports

    # -- sources -----------------------------------------------------------------

    def _read_neighbors(self, st: IxState) -> bool:
        src = st.neighbors
        assert src is not None
        ix = st.config
        try:
            if ix.snmp is not None:
                read = parse_snmp_rows(self.snmp_walk(ix.snmp))
            else:
                data, mtime = _read_file(ix.neighbors_file)
                src.mtime = mtime
                read = NEIGHBOR_PARSERS[ix.neighbors_format](data)
        except (OSError, SnmpError) as exc:
            return self._failed(st, src, str(exc) if isinstance(exc, SnmpError) else _os(exc))
        return self._took(st, src, read)

    def _read_peeringdb(self, st: IxState) -> bool:
        src = st.peeringdb
        assert src is not None
        try:
            mtime = os.stat(src.where).st_mtime
            if src.last is not None and mtime == src.mtime and not src.error:
                return False  # unchanged since the last good read
            data, mtime = _read_file(src.where)
        except OSError as exc:
            return self._failed(st, src, _os(exc))
        src.mtime = mtime
        return self._took(st, src, parse_peeringdb(data))

    def _took(self, st: IxState, src: SourceState, read: Read) -> bool:
        src.bad.update(read.bad)
        usable = read.macs or read.ases or not read.bad
        if not usable:  # nothing usable and refusals: keep the last good table
            return self._failed(st, src, read.errors[0] if read.errors else "nothing usable")
        src.reads += 1
        if read.bad and dict(read.bad) != src.last_bad:  # logged when it changes, not each read
            log.warning(
                "IX %s: %s %s: %d entries refused (%s); first: %s",
                st.config.name,
                src.kind,
                src.where,
                read.bad.total(),
                ", ".join(f"{k} {v}" for k, v in sorted(read.bad.items())),
                read.errors[0] if read.errors else "",
            )
        src.last_bad = dict(read.bad)
        if src.error:
            log.info("IX %s: %s %s readable again", st.config.name, src.kind, src.where)
        src.error = ""
        old = src.last
        src.last, src.read_at = read, self.clock()
        return old is None or (old.macs, old.ases) != (read.macs, read.ases)

    def _failed(self, st: IxState, src: SourceState, error: str) -> bool:
        src.failures += 1
        if error != src.error:
            log.error(
                "IX %s: cannot read %s %s (%s); %s",
                st.config.name,
                src.kind,
                src.where,
                error,
                "keeping the last good table" if src.last else "nothing learned from it yet",
            )
        src.error = error
        return False

    # -- reading the state ---------------------------------------------------------

    def status(self) -> list[IxState]:
        """The IXes now (a round may be under way: it never blocks on a slow SNMP agent)."""
        return list(self.states.values())


def _neighbor_source(ix: IxConfig) -> SourceState | None:
    if ix.snmp is not None:
        return SourceState("snmp", f"{ix.snmp.host}:{ix.snmp.port}")
    if ix.neighbors_file:
        return SourceState(ix.neighbors_format, ix.neighbors_file)
    return None


def _read_file(path: str) -> tuple[bytes, float]:
    with open(path, "rb") as f:
        mtime = os.fstat(f.fileno()).st_mtime
        return f.read(MAX_INPUT_BYTES + 1), mtime


def _os(exc: OSError) -> str:
    name = f" {exc.filename}" if exc.filename else ""
    return f"cannot read{name}: {exc.strerror or exc}"
