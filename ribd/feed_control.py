"""Relay control lines and the re-reads they trigger: the feed's recovery logic.

Relay control lines (see ``ribd.relay``) tell us what the plain ExaBGP stream
cannot:

* ``eof``: ExaBGP closed the API pipe (stopped or died). Every router's
  routes become stale for ``exabgp_gone_hold_time``, as the supervisor does in
  supervised mode, so an operator-managed ExaBGP gets the same treatment.
* ``lost`` (the relay's spool overflowed, marked where the lines were
  dropped), or a relay we never saw that already delivered lines elsewhere
  (we restarted), or a replacement relay under the same ExaBGP (ExaBGP
  respawned it; respawns get no replay): lines are missing, withdrawals
  included. The re-read is exact: every established router's routes become
  stale at that point (``Rib.mark_gap``), each relay is asked to
  ``resync *`` (ExaBGP sends ROUTE-REFRESH to every established router), the
  router answers BoRR, its table, EoRR (enhanced route refresh, RFC 7313),
  and EoRR sweeps what it did not send again. A router that does not begin
  within ``refresh_timeout`` (no enhanced route refresh) has its session
  reset (``reset <ip>``): it reconnects, and End-of-RIB does the same sweep.
  Requests are coalesced and spaced out (2 s, doubling to 2 min while gaps
  keep coming), so an overloaded service is not flooded with tables.

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
from ribd.rib import Rib

if TYPE_CHECKING:
    from ribd.feed import _Connection

log = logging.getLogger("ribd.feed")

REFRESH_TIMEOUT = 30.0  # seconds for a router to begin a re-read (BoRR) before a reset
RESYNC_INTERVAL_MIN, RESYNC_INTERVAL_MAX = 2.0, 120.0  # spacing of re-read requests
CONTROL_PREFIX = b'{"type":"ribd-relay"'


@dataclass(slots=True)
class RelayInfo:
    """One relay process, as identified by its hello."""

    pid: int
    started: float
    exabgp_pid: int
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
    _resync_pending: bool
    _resync_interval: float
    _next_resync: float
    _last_gap: float

    # -- requests to relays --

    def resync(self, neighbor: str = "*") -> int:
        """Ask ExaBGP (via each connected relay) for a route refresh; returns relays told."""
        if neighbor != "*":
            socket.inet_pton(socket.AF_INET6 if ":" in neighbor else socket.AF_INET, neighbor)
        with self._lock:
            conns = [c for c in self._connections if c.relay is not None]
        told = sum(1 for c in conns if c.send(f"resync {neighbor}\n".encode()))
        self.resyncs_requested += told
        if told:
            log.info("asked %d relay(s) for a route refresh of %s", told, neighbor)
        return told

    def reset_session(self, neighbor: str) -> int:
        """Ask ExaBGP (via each connected relay) to reset one router's session."""
        socket.inet_pton(socket.AF_INET6 if ":" in neighbor else socket.AF_INET, neighbor)
        with self._lock:
            conns = [c for c in self._connections if c.relay is not None]
        told = sum(1 for c in conns if c.send(f"reset {neighbor}\n".encode()))
        self.session_resets_requested += told
        return told

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
            self._lines_missing(f"the relay's spool overflowed: {lines} line(s) dropped")
        elif event == "eof":
            if conn.relay is not None:
                conn.relay.eof = True
            self._exabgp_gone("ExaBGP closed the feed (stopped or died)")
        else:
            log.warning("unknown relay control event %s", show(event))
        if self.on_control is not None:
            self.on_control(msg)

    def _hello(self, conn: _Connection, msg: dict, line: bytes) -> None:
        try:
            key = (int(msg["pid"]), float(msg["started"]))
            exabgp_pid = int(msg.get("ppid", 0))
            delivered = int(msg.get("delivered", 0))
        except (KeyError, TypeError, ValueError):
            self._bad_log.bad_line(conn.counters, line, "malformed relay hello")
            return
        missing = ""
        gone = ""
        with self._lock:
            relay = self._relays.get(key)
            if relay is None:
                relay = self._relays[key] = RelayInfo(key[0], key[1], exabgp_pid)
                if delivered:
                    missing = f"relay {key[0]} delivered {delivered} lines before we started"
                for other in self._relays.values():
                    if other is relay or other.eof or other.connected:
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
            "relay pid %d (ExaBGP pid %d) connected, connection #%d",
            relay.pid,
            exabgp_pid,
            relay.connections,
        )
        if gone:
            self._exabgp_gone(gone)
        if missing:
            self._lines_missing(missing)

    def _exabgp_gone(self, reason: str) -> None:
        self.exabgp_gone_events += 1
        # A stop we asked for is news, not a problem.
        level = logging.INFO if self.expecting_exabgp_stop else logging.WARNING
        log.log(level, "%s: routes kept stale for %.0fs", reason, self.exabgp_gone_hold_time)
        self.rib.with_lock_exabgp_gone(reason, self.exabgp_gone_hold_time)

    def _lines_missing(self, reason: str) -> None:
        """Routes may be missing or outdated: mark the gap, re-read the tables."""
        with self.rib.lock:
            marked = self.rib.mark_gap()
        self.relay_gaps += 1
        now = time.monotonic()
        if now - self._last_gap > 2 * RESYNC_INTERVAL_MAX:  # gaps are rare: ask at once
            self._resync_interval = RESYNC_INTERVAL_MIN
            self._next_resync = 0.0
        self._last_gap = now
        log.warning(
            "feed gap: %s; %d router(s) marked stale until their tables are re-read%s",
            reason,
            len(marked),
            "" if self.resync_on_loss else " (resync disabled)",
        )
        if self.resync_on_loss:
            self._resync_pending = True
            self._resync_wanted.set()

    def _resync_loop(self) -> None:
        """Send coalesced, spaced re-read requests; reset routers that do not begin."""
        while not self._stop.is_set():
            self._resync_wanted.wait(1.0)
            self._resync_wanted.clear()
            if self._stop.is_set():
                return
            now = time.monotonic()
            if self._resync_pending and now >= self._next_resync and self.resync("*"):
                self._resync_pending = False
                with self.rib.lock:
                    self.rib.note_refresh_asked()
                self._next_resync = now + self._resync_interval
                self._resync_interval = min(self._resync_interval * 2, RESYNC_INTERVAL_MAX)
            if self._resync_pending or not self.resync_on_loss:
                continue  # not asked (yet): nothing can be overdue
            with self.rib.lock:
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
