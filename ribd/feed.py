"""The service's end of the feed: relays connect here and their lines reach the RIB.

``FeedServer`` listens on a Unix socket. Each relay connection (``ribd.relay``)
gets a reader thread that reads big chunks, splits lines, parses them with
``ExabgpParser`` and applies each line's events with ``rib.apply_many`` (so
``rib.lock`` is held for one line at most and readers are never held up by a
table load). A bad line is counted by category and logged (truncated); the
lines around it are applied as usual.

Whoever can write to the socket writes into the RIB, so: the socket is 0600
in a directory only we can write, each connection's peer credentials must be
our uid or root, a line is buffered only up to ``max_line_bytes`` (a longer
one is skipped to its newline), and lines for a neighbor not in
``rib.neighbors`` (the configured routers) are counted, not applied.

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

One ExaBGP per service is assumed: ``eof`` marks every router's routes stale.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from ribd.checks import show, too_deep
from ribd.events import EndOfRib, ExabgpShutdown, RoutesAnnounced, RoutesWithdrawn
from ribd.lines import LineSplitter
from ribd.parser import MAX_LINE_BYTES, ExabgpParser, FeedError
from ribd.rib import Rib

log = logging.getLogger(__name__)

READ_SIZE = 1 << 20
REFRESH_TIMEOUT = 30.0  # seconds for a router to begin a re-read (BoRR) before a reset
RESYNC_INTERVAL_MIN, RESYNC_INTERVAL_MAX = 2.0, 120.0  # spacing of re-read requests
CONTROL_PREFIX = b'{"type":"ribd-relay"'
LOGGED_LINE_CHARS = 200
BAD_LINES_LOGGED_IN_FULL = 100  # then one in every 1000
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def bad_line_category(reason: str) -> str:
    """A short, stable name for a FeedError reason, for counters."""
    if reason.startswith("not JSON") or reason == "not a JSON object":
        return "json"
    if reason.startswith("unknown message type"):
        return "unknown_type"
    if "prefix" in reason or "NLRI" in reason or "path-information" in reason:
        return "prefix"
    if reason.startswith("line of"):
        return "too_long"
    if reason.startswith("nested"):
        return "too_deep"
    if reason.startswith("bad value"):
        return "value"
    if reason.startswith("unknown neighbor"):
        return "unknown_neighbor"
    if reason.startswith("parser failed"):
        return "internal"
    if reason.startswith(("malformed", "no neighbor", "update ", "withdraw ", "announce ")):
        return "malformed"
    return "other"


@dataclass(slots=True)
class FeedCounters:
    lines: int = 0
    updates: int = 0
    prefixes_announced: int = 0
    prefixes_withdrawn: int = 0
    treated_as_withdraw: int = 0
    end_of_rib: int = 0
    bad_lines: int = 0
    bad_by_category: dict[str, int] = field(default_factory=dict)

    def add(self, other: FeedCounters) -> None:
        self.lines += other.lines
        self.updates += other.updates
        self.prefixes_announced += other.prefixes_announced
        self.prefixes_withdrawn += other.prefixes_withdrawn
        self.treated_as_withdraw += other.treated_as_withdraw
        self.end_of_rib += other.end_of_rib
        self.bad_lines += other.bad_lines
        for k, v in other.bad_by_category.items():
            self.bad_by_category[k] = self.bad_by_category.get(k, 0) + v


@dataclass(slots=True)
class RelayInfo:
    """One relay process, as identified by its hello."""

    pid: int
    started: float
    exabgp_pid: int
    connections: int = 0
    connected: bool = False
    eof: bool = False


class _Connection:
    __slots__ = ("counters", "relay", "sock", "thread", "write_lock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.counters = FeedCounters()
        self.relay: RelayInfo | None = None
        self.thread: threading.Thread | None = None
        self.write_lock = threading.Lock()

    def send(self, data: bytes) -> bool:
        with self.write_lock:
            try:
                self.sock.sendall(data)
                return True
            except OSError:
                return False


class FeedServer:
    """Accepts relay connections on ``socket_path`` and applies their lines to ``rib``."""

    def __init__(
        self,
        socket_path: str,
        rib: Rib,
        parser: ExabgpParser | None = None,
        *,
        exabgp_gone_hold_time: float = 300.0,
        resync_on_loss: bool = True,
        socket_mode: int = 0o600,
        on_control: Callable[[dict], None] | None = None,
        max_line_bytes: int = MAX_LINE_BYTES,
        allowed_uids: frozenset[int] | None = None,
        refresh_timeout: float = REFRESH_TIMEOUT,
    ) -> None:
        self.socket_path = socket_path
        self.rib = rib
        self.parser = parser if parser is not None else ExabgpParser(rib.interner)
        self.exabgp_gone_hold_time = exabgp_gone_hold_time
        self.resync_on_loss = resync_on_loss
        self.socket_mode = socket_mode
        self.on_control = on_control
        # A longer line is skipped up to its newline while reading, never buffered whole.
        self.max_line_bytes = max_line_bytes
        # Who may deliver lines (SO_PEERCRED): our own user and root by default.
        self.allowed_uids = (
            allowed_uids if allowed_uids is not None else frozenset({os.geteuid(), 0})
        )
        self.refused_connections = 0
        self.max_held_bytes = 0  # the most bytes of one unfinished line held (for tests)
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._connections: list[_Connection] = []
        self._closed_totals = FeedCounters()
        self._relays: dict[tuple[int, float], RelayInfo] = {}
        self._bad_logged = 0
        self.relay_lost_lines = 0
        self.relay_gaps = 0  # times lines went missing (each followed by a resync)
        self.relay_connections = 0
        self.resyncs_requested = 0
        self.exabgp_gone_events = 0
        self.expecting_exabgp_stop = False  # set by the owner before it stops ExaBGP
        self.refresh_timeout = refresh_timeout
        self.session_resets_requested = 0
        self._resync_wanted = threading.Event()
        self._resync_pending = False
        self._resync_thread: threading.Thread | None = None
        self._resync_interval = RESYNC_INTERVAL_MIN
        self._next_resync = 0.0
        self._last_gap = -1e9

    # -- lifetime --

    def start(self) -> None:
        """Listen on ``socket_path``: a socket of mode ``socket_mode`` (0600) in a
        directory nobody else can write (made 0700 if missing).

        Anyone who can connect feeds routes into the RIB, so the directory is
        checked (a writable one would let another user replace the socket) and
        every connection's credentials are checked again in ``_accept_loop``.
        """
        path = self.socket_path
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, mode=0o700, exist_ok=True)
        st = os.stat(directory)
        if st.st_mode & 0o022 or st.st_uid not in (os.geteuid(), 0):
            raise PermissionError(
                f"feed socket directory {directory} is writable by other users "
                f"(mode {stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid}): "
                "use a directory only this user can write"
            )
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)  # left behind by an earlier run
            else:
                raise FileExistsError(f"{path} exists and is not a socket")
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        os.chmod(path, self.socket_mode)
        listener.listen(16)
        listener.settimeout(0.2)
        self._listener = listener
        self._stop.clear()
        self._accept_thread = threading.Thread(target=self._accept_loop, name="feed-accept")
        self._accept_thread.daemon = True
        self._accept_thread.start()
        self._resync_thread = threading.Thread(
            target=self._resync_loop, name="feed-resync", daemon=True
        )
        self._resync_thread.start()
        log.info("feed listening on %s", path)

    def stop(self) -> None:
        self._stop.set()
        self._resync_wanted.set()
        if self._resync_thread is not None:
            self._resync_thread.join(5.0)
            self._resync_thread = None
        if self._accept_thread is not None:
            self._accept_thread.join(5.0)
            self._accept_thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket_path)
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
        for conn in conns:
            if conn.thread is not None:
                conn.thread.join(5.0)

    def __enter__(self) -> FeedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

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

    # -- state --

    def stats(self) -> dict:
        with self._lock:
            totals = FeedCounters()
            totals.add(self._closed_totals)
            for c in self._connections:
                totals.add(c.counters)
            connected = sum(1 for c in self._connections if c.relay is not None)
        return {
            "lines": totals.lines,
            "updates": totals.updates,
            "prefixes_announced": totals.prefixes_announced,
            "prefixes_withdrawn": totals.prefixes_withdrawn,
            "treated_as_withdraw": totals.treated_as_withdraw,
            "end_of_rib": totals.end_of_rib,
            "bad_lines": totals.bad_lines,
            "bad_lines_by_category": dict(totals.bad_by_category),
            "relay_lost_lines": self.relay_lost_lines,
            "relay_gaps": self.relay_gaps,
            "relay_connections": self.relay_connections,
            "relays_connected": connected,
            "refused_connections": self.refused_connections,
            "resyncs_requested": self.resyncs_requested,
            "session_resets_requested": self.session_resets_requested,
            "exabgp_gone_events": self.exabgp_gone_events,
        }

    # -- connections --

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(0.1)
                continue
            if not self._trusted(sock):
                sock.close()
                continue
            sock.settimeout(None)
            conn = _Connection(sock)
            conn.thread = threading.Thread(
                target=self._serve, args=(conn,), name="feed-conn", daemon=True
            )
            with self._lock:
                self._connections.append(conn)
                self.relay_connections += 1
            conn.thread.start()

    def _trusted(self, sock: socket.socket) -> bool:
        """Whether the connecting process runs as an allowed user (SO_PEERCRED)."""
        try:
            pid, uid, _ = _PEERCRED.unpack(
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
            )
        except OSError:
            pid, uid = 0, -1
        if uid in self.allowed_uids:
            return True
        self.refused_connections += 1
        if self.refused_connections <= BAD_LINES_LOGGED_IN_FULL or not (
            self.refused_connections % 1000
        ):
            log.warning(
                "refused feed connection from pid %d, uid %d: only uid(s) %s may deliver lines",
                pid,
                uid,
                ", ".join(map(str, sorted(self.allowed_uids))),
            )
        return False

    def _serve(self, conn: _Connection) -> None:
        try:
            self._read(conn)
        except Exception:
            log.exception("feed connection failed")
        finally:
            conn.sock.close()
            with self._lock:
                self._connections.remove(conn)
                self._closed_totals.add(conn.counters)
                if conn.relay is not None:
                    conn.relay.connected = False
            if conn.relay is not None:
                log.info("relay pid %d disconnected", conn.relay.pid)

    def _read(self, conn: _Connection) -> None:
        """The ingest hot loop: big reads, whole lines, one rib.lock per line.

        A line is held until its newline only up to ``max_line_bytes``; a
        longer one is skipped and counted as one ``too_long`` bad line
        (``ribd.lines``), so no line costs more memory than the limit.
        """
        recv = conn.sock.recv
        parse = self.parser.parse
        apply_many = self.rib.apply_many
        rib = self.rib
        c = conn.counters
        splitter = LineSplitter(self.max_line_bytes)
        while True:
            data = recv(READ_SIZE)
            if not data:
                break
            lines, too_long = splitter.split(data)
            for head, size in too_long:
                c.lines += 1
                self._bad_line(c, head, f"line of {size} bytes exceeds {self.max_line_bytes}")
            if splitter.max_held > self.max_held_bytes:
                self.max_held_bytes = splitter.max_held
            for line in lines:
                if line.startswith(CONTROL_PREFIX):
                    self._control(conn, line)
                    continue
                c.lines += 1
                try:
                    events = parse(line)
                except FeedError as exc:
                    self._bad_line(c, line, str(exc))
                    continue
                except Exception as exc:  # a parser bug must not take the connection down
                    self._bad_line(c, line, f"parser failed: {type(exc).__name__}: {exc!s:.200}")
                    continue
                if not events:
                    continue
                first = events[0]
                if (
                    rib.neighbors is not None
                    and type(first) is not ExabgpShutdown
                    and first.neighbor not in rib.neighbors  # type: ignore[union-attr]
                ):
                    self._bad_line(
                        c,
                        line,
                        f"unknown neighbor {first.neighbor}: not a configured router",  # type: ignore[union-attr]
                    )
                    continue
                apply_many(events)
                route_events = False
                for ev in events:
                    kind = type(ev)
                    if kind is RoutesAnnounced:
                        c.prefixes_announced += len(ev.prefixes)  # type: ignore[union-attr]
                        route_events = True
                    elif kind is RoutesWithdrawn:
                        route_events = True
                        if ev.reason:  # type: ignore[union-attr]
                            c.treated_as_withdraw += len(ev.prefixes)  # type: ignore[union-attr]
                            self._log_treat_as_withdraw(ev)  # type: ignore[arg-type]
                        else:
                            c.prefixes_withdrawn += len(ev.prefixes)  # type: ignore[union-attr]
                    elif kind is EndOfRib:
                        c.end_of_rib += 1
                        route_events = True
                if route_events:
                    c.updates += 1
        if splitter.pending:
            # A connection cut mid-line: the relay re-sends the whole batch.
            log.debug("discarding %d bytes of an incomplete line", splitter.pending)

    def _bad_line(self, c: FeedCounters, line: bytes, reason: str) -> None:
        category = bad_line_category(reason)
        c.bad_lines += 1
        c.bad_by_category[category] = c.bad_by_category.get(category, 0) + 1
        self._bad_logged += 1
        if self._bad_logged <= BAD_LINES_LOGGED_IN_FULL or self._bad_logged % 1000 == 0:
            text = line[:LOGGED_LINE_CHARS].decode("utf-8", "replace")
            more = f"... ({len(line)} bytes)" if len(line) > LOGGED_LINE_CHARS else ""
            log.warning("bad feed line (%s): %s: %s%s", category, reason, text, more)

    def _log_treat_as_withdraw(self, ev: RoutesWithdrawn) -> None:
        self._bad_logged += 1
        if self._bad_logged <= BAD_LINES_LOGGED_IN_FULL or self._bad_logged % 1000 == 0:
            log.warning(
                "treat-as-withdraw: %d prefix(es) from %s (%s), first %s",
                len(ev.prefixes),
                ev.neighbor,
                ev.reason[:LOGGED_LINE_CHARS],
                ev.prefixes[0],
            )

    # -- relay control lines --

    def _control(self, conn: _Connection, line: bytes) -> None:
        try:
            msg = orjson.loads(line)
        except orjson.JSONDecodeError:
            msg = None
        if type(msg) is not dict or too_deep(msg) or type(msg.get("event")) is not str:
            self._bad_line(conn.counters, line, "malformed relay control line")
            return
        event = msg["event"]
        if event == "hello":
            self._hello(conn, msg, line)
        elif event == "lost":
            lines = msg.get("lines", 0)
            if type(lines) is not int or lines < 0:
                reason = f"malformed relay control line: lines {show(lines)}"
                self._bad_line(conn.counters, line, reason)
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
            self._bad_line(conn.counters, line, "malformed relay hello")
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


class RibMaintenance:
    """Calls ``rib.maintenance()`` periodically (stale expiry, slot sweeps).

    The service may run its own loop instead; this one is for tools and tests.
    """

    def __init__(self, rib: Rib, interval: float = 0.1) -> None:
        self.rib = rib
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rib-maintenance", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            while self.rib.maintenance() and not self._stop.is_set():
                time.sleep(0.001)
