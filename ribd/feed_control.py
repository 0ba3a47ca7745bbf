"""Relay control lines and the re-reads they trigger: the feed's recovery logic.

Relay control lines (see ``ribd.relay``) tell us what the plain ExaBGP stream
cannot:

* ``eof``: ExaBGP closed the API pipe (stopped or died). Every router's
  routes become stale for ``exabgp_gone_hold_time``, as the supervisor does in
  supervised mode, so an operator-managed ExaBGP gets the same treatment.

With several ExaBGP workers (``ribd.workers``) each relay names its worker
in its hello, and everything below is scoped to that worker's routers
(``worker_scopes``): its eof, its lost lines, its respawns, the re-reads
asked of its relay. A relay without a worker (0: the only ExaBGP, or one
run by the operator) speaks for every router, as before workers existed.
* ``lost`` (the relay's spool overflowed, marked where the lines were
  dropped), or a relay we never saw that already delivered lines elsewhere
  (we restarted), or a replacement relay under the same ExaBGP (ExaBGP
  respawned it; respawns get no replay): lines are missing, withdrawals
  included. The re-read is exact: every router's routes (of that worker)
  become stale at that point (``Rib.mark_gap``), and each is asked for its
  table with ``resync <ip>`` (ExaBGP sends it a ROUTE-REFRESH): the router
  answers BoRR, its table, EoRR (enhanced route refresh, RFC 7313), and
  EoRR sweeps what it did not send again. A router that does not begin
  within ``refresh_timeout`` (no enhanced route refresh) has its session
  reset (``reset <ip>``): it reconnects, and End-of-RIB does the same sweep.
  The re-reads go in waves (``ribd.reread_waves``): at most ``reread_wave``
  routers of a worker at a time, so that their tables fit the relay's
  spool; all at once, they overflowed it again, and the gap re-read them all
  again. The first wave after a gap is spaced out (2 s, doubling to 2 min
  while gaps keep coming), so an overloaded service is not flooded with
  tables; routers waiting for their turn answer from their routes, stale.

``RelayControl`` is ``FeedServer``'s half that handles this; the connection
reading half (``ribd.feed``) hands it the control lines it finds.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from ribd.checks import show, too_deep
from ribd.feed_counters import BadLineLog
from ribd.reread_waves import RereadWaves
from ribd.rib import Rib

if TYPE_CHECKING:
    from ribd.feed import _Connection

log = logging.getLogger("ribd.feed")

REFRESH_TIMEOUT = 30.0  # seconds for a router to begin a re-read (BoRR) before a reset
RESYNC_INTERVAL_MIN, RESYNC_INTERVAL_MAX = 2.0, 120.0  # spacing of re-reads after gaps
REREAD_WAVE = 4  # routers of one worker re-read at once: 4 full tables fit 256 MiB of spool
REREAD_STALL_TIMEOUT = 120.0  # a re-read without progress this long frees its turn
CONTROL_PREFIX = b'{"type":"ribd-relay"'


@dataclass(slots=True)
class RelayInfo:
    """One relay process, as identified by its hello."""

    pid: int
    started: float
    exabgp_pid: int
    worker: int = 0  # the ExaBGP worker it relays for (0: the only one)
    connections: int = 0
    connected: bool = False
    eof: bool = False


class RelayControl:
    """Relay requests (resync, reset), control lines (hello, lost, eof) and the
    resync loop. A mixin of ``FeedServer``, which owns the state below."""

    rib: Rib
    exabgp_gone_hold_time: float
    resync_on_loss: bool
    refresh_timeout: float
    on_control: Callable[[dict], None] | None
    expecting_exabgp_stop: bool
    relay_lost_lines: int
    relay_gaps: int
    resyncs_requested: int
    session_resets_requested: int
    exabgp_gone_events: int
    _stop: threading.Event
    _lock: threading.Lock
    _connections: list[_Connection]
    _relays: dict[tuple[int, float], RelayInfo]
    _bad_log: BadLineLog
    _resync_wanted: threading.Event
    _resync_interval: float
    _next_resync: float
    _last_gap: float
    _unseen_resets: dict[str, float]
    worker_scopes: dict[int, frozenset[str]]
    rereads: RereadWaves
    _resync_all: set[int]
    _gap_since_wave: bool

    # -- workers --

    def _scope(self, worker: int) -> frozenset[str] | None:
        """The routers a relay of ``worker`` speaks for (None: every router)."""
        return self.worker_scopes.get(worker) if worker else None

    def _relays_for(self, worker: int | None = None, neighbor: str = "*") -> list[_Connection]:
        """Connected relays of ``worker`` (None: any), or, for one ``neighbor``,
        those whose worker holds it (all of them when none is known to)."""
        with self._lock:
            conns = [c for c in self._connections if c.relay is not None]
        if worker is not None:
            return [c for c in conns if c.relay.worker == worker]  # type: ignore[union-attr]
        if neighbor != "*":
            own = [
                c
                for c in conns
                if neighbor in (self._scope(c.relay.worker) or ())  # type: ignore[union-attr]
            ]
            return own or conns
        return conns

    # -- requests to relays --

    def resync(self, neighbor: str = "*", worker: int | None = None) -> int:
        """Ask ExaBGP (via each connected relay; of ``worker`` only when given,
        else for one neighbor its worker's) for a route refresh; returns relays told."""
        if neighbor != "*":
            socket.inet_pton(socket.AF_INET6 if ":" in neighbor else socket.AF_INET, neighbor)
        conns = self._relays_for(worker, neighbor)
        told = sum(1 for c in conns if c.send(f"resync {neighbor}\n".encode()))
        self.resyncs_requested += told
        if told:
            log.info(
                "asked %d relay(s)%s for a route refresh of %s",
                told,
                f" of ExaBGP worker {worker}" if worker else "",
                neighbor,
            )
        return told

    def reset_session(self, neighbor: str) -> int:
        """Ask ExaBGP (via the relay of the router's worker) to reset one router's session."""
        socket.inet_pton(socket.AF_INET6 if ":" in neighbor else socket.AF_INET, neighbor)
        conns = self._relays_for(None, neighbor)
        told = sum(1 for c in conns if c.send(f"reset {neighbor}\n".encode()))
        self.session_resets_requested += told
        return told

    def _unseen_session(self, neighbor: str) -> None:
        """Raw messages of a session whose OPENs we never saw (an ExaBGP run by
        the operator whose sessions were up before we started): reset it once,
        so that it opens again and re-sends its table; again at most every
        RESYNC_INTERVAL_MAX if the lines keep coming (no relay, a reset refused).
        Its routes kept from before are stale meanwhile, not swept."""
        allowed = self.rib.neighbors
        if allowed is not None and neighbor not in allowed:
            return  # not a configured router: counted, never reset
        now = time.monotonic()
        with self._lock:
            last = self._unseen_resets.get(neighbor)
            if last is not None and now - last < RESYNC_INTERVAL_MAX:
                return
            if len(self._unseen_resets) >= 65536:
                self._unseen_resets.clear()
            self._unseen_resets[neighbor] = now
        told = self.reset_session(neighbor)
        log.warning(
            "router %s: raw messages of a session whose OPEN was not seen (it came up "
            "before the service started); %s",
            neighbor,
            "resetting it so that it opens again" if told else "no relay connected to reset it",
        )

    # -- relay control lines --

    def _control(self, conn: _Connection, line: bytes) -> None:
        try:
            msg = orjson.loads(line)
        except orjson.JSONDecodeError:
            msg = None
        if type(msg) is not dict or too_deep(msg) or type(msg.get("event")) is not str:
            self._bad_log.bad_line(conn.counters, line, "malformed relay control line")
            return
        event = msg["event"]
        if event == "hello":
            self._hello(conn, msg, line)
        elif event == "lost":
            lines = msg.get("lines", 0)
            if type(lines) is not int or lines < 0:
                reason = f"malformed relay control line: lines {show(lines)}"
                self._bad_log.bad_line(conn.counters, line, reason)
                return
            self.relay_lost_lines += lines
            self._lines_missing(
                f"the relay's spool overflowed: {lines} line(s) dropped",
                conn.relay.worker if conn.relay is not None else 0,
            )
        elif event == "eof":
            worker = 0
            if conn.relay is not None:
                conn.relay.eof = True
                worker = conn.relay.worker
            self._exabgp_gone("ExaBGP closed the feed (stopped or died)", worker)
        else:
            log.warning("unknown relay control event %s", show(event))
        if self.on_control is not None:
            self.on_control(msg)

    def _hello(self, conn: _Connection, msg: dict, line: bytes) -> None:
        try:
            key = (int(msg["pid"]), float(msg["started"]))
            exabgp_pid = int(msg.get("ppid", 0))
            delivered = int(msg.get("delivered", 0))
            worker = int(msg.get("worker", 0))
            if worker < 0:
                raise ValueError(worker)
        except (KeyError, TypeError, ValueError):
            self._bad_log.bad_line(conn.counters, line, "malformed relay hello")
            return
        missing = ""
        gone = ""
        with self._lock:
            relay = self._relays.get(key)
            if relay is None:
                relay = self._relays[key] = RelayInfo(key[0], key[1], exabgp_pid, worker)
                if delivered:
                    missing = f"relay {key[0]} delivered {delivered} lines before we started"
                for other in self._relays.values():
                    # (another worker's relay says nothing of this one's ExaBGP)
                    if other is relay or other.eof or other.connected or other.worker != worker:
                        continue
                    other.eof = True  # settled: it will not come back
                    if other.exabgp_pid == exabgp_pid:
                        missing = f"ExaBGP {exabgp_pid} respawned its API process"
                    else:
                        gone = f"ExaBGP {other.exabgp_pid} was replaced without a clean exit"
                # Forget relays that are settled; keep the table small.
                for k in [k for k, r in self._relays.items() if r.eof and r is not relay]:
                    del self._relays[k]
            relay.connections += 1
            relay.connected = True
            conn.relay = relay
        log.info(
            "relay pid %d (ExaBGP%s pid %d) connected, connection #%d",
            relay.pid,
            f" worker {relay.worker}" if relay.worker else "",
            exabgp_pid,
            relay.connections,
            extra={"event": "relay_connected", "worker": relay.worker},
        )
        if gone:
            self._exabgp_gone(gone, worker)
        if missing:
            self._lines_missing(missing, worker)

    def _exabgp_gone(self, reason: str, worker: int = 0) -> None:
        self.exabgp_gone_events += 1
        # A stop we asked for is news, not a problem.
        level = logging.INFO if self.expecting_exabgp_stop else logging.WARNING
        scope = self._scope(worker)
        log.log(
            level,
            "%s%s: routes kept stale for %.0fs",
            f"ExaBGP worker {worker}: " if worker else "",
            reason,
            self.exabgp_gone_hold_time,
            extra={"event": "exabgp_gone", "worker": worker},
        )
        self.rib.with_lock_exabgp_gone(reason, self.exabgp_gone_hold_time, scope)

    def _lines_missing(self, reason: str, worker: int = 0) -> None:
        """Routes may be missing or outdated: mark the gap, re-read the tables
        (of ``worker``'s routers, asked of its relay; 0: every router)."""
        scope = self._scope(worker)
        if scope is None:
            worker = 0
        with self.rib.lock:
            marked = self.rib.mark_gap(scope, asked=not self.resync_on_loss)
        self.relay_gaps += 1
        now = time.monotonic()
        if now - self._last_gap > 2 * RESYNC_INTERVAL_MAX:  # gaps are rare: ask at once
            self._resync_interval = RESYNC_INTERVAL_MIN
            self._next_resync = 0.0
        self._last_gap = now
        log.warning(
            "feed gap%s: %s; %d router(s) marked stale until their tables are re-read%s",
            f" (ExaBGP worker {worker})" if worker else "",
            reason,
            len(marked),
            "" if self.resync_on_loss else " (resync disabled)",
            extra={"event": "feed_gap", "worker": worker},
        )
        if self.resync_on_loss:
            with self._lock:
                if marked:
                    self.rereads.gap(marked, worker)
                else:  # no router known yet (we just started): ask them all
                    self._resync_all.add(worker)
                self._gap_since_wave = True
            self._resync_wanted.set()

    def _ask_wave(self, now: float) -> bool:
        """Ask the re-reads whose turn it is (``ribd.reread_waves``), one
        ``resync <router>`` each through its worker's relay; returns whether
        any was asked. A router whose relay is not connected keeps its turn."""
        rib = self.rib
        with rib.lock, self._lock:
            for neighbor in self.rereads.retire(now, rib.reread_status):
                log.warning(
                    "router %s: its table re-read made no progress for %.0fs; the next "
                    "router's re-read goes ahead (its routes stay stale)",
                    neighbor,
                    self.rereads.stall_timeout,
                )
            turns, drop = self.rereads.turns(rib.reread_status)
            self.rereads.drop(drop)
        asked = False
        with self._lock:
            everyone = sorted(self._resync_all)
        for worker in everyone:
            if self.resync("*", worker or None):
                asked = True
                with self._lock:
                    self._resync_all.discard(worker)
        for neighbor, worker in turns:
            try:
                told = self.resync(neighbor, worker or None)
            except (OSError, ValueError):  # not an address: nothing ExaBGP could refresh
                log.warning("router %s: not an address, no re-read asked", show(neighbor))
                with self._lock:
                    self.rereads.drop((neighbor,))
                continue
            if not told:
                continue
            asked = True
            with rib.lock, self._lock:
                rib.note_refresh_asked(frozenset((neighbor,)))
                self.rereads.started(neighbor, now, rib.reread_status(neighbor))
        return asked

    def _resync_loop(self) -> None:
        """Ask re-reads a wave at a time; reset routers that do not begin.

        The first wave after a gap waits for ``_next_resync`` (2 s, doubling
        to 2 min while gaps keep coming); later waves go as slots free up.
        """
        while not self._stop.is_set():
            self._resync_wanted.wait(1.0)
            self._resync_wanted.clear()
            if self._stop.is_set():
                return
            if not self.resync_on_loss:
                continue
            now = time.monotonic()
            with self._lock:
                waiting = bool(self.rereads.waiting or self.rereads.running or self._resync_all)
                after_gap = self._gap_since_wave
            due = waiting and (not after_gap or now >= self._next_resync)
            if due and self._ask_wave(now) and after_gap:
                with self._lock:
                    self._gap_since_wave = False
                self._next_resync = now + self._resync_interval
                self._resync_interval = min(self._resync_interval * 2, RESYNC_INTERVAL_MAX)
            with self.rib.lock:  # (routers waiting for their turn are not overdue)
                resets = self.rib.overdue_refreshes(self.refresh_timeout)
            for neighbor in resets:
                told = self.reset_session(neighbor)
                log.warning(
                    "router %s did not re-send its table within %.0fs of a route refresh "
                    "(no enhanced route refresh?): %s its session",
                    neighbor,
                    self.refresh_timeout,
                    "resetting" if told else "no relay connected to reset",
                )
