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

Relay control lines (``eof``, ``lost``, ``hello``) and the re-reads they
trigger are ``ribd.feed_control``'s (``RelayControl``, a mixin of
``FeedServer``); what is counted and how bad lines are logged is
``ribd.feed_counters``'s. Several relays may connect at once, one per ExaBGP
worker (``ribd.workers``): ``worker_scopes`` tells which routers each
worker's relay speaks for, so one worker's ``eof`` or gap marks only its
routers' routes stale.
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
from typing import Any

from ribd.events import EndOfRib, ExabgpShutdown, RoutesAnnounced, RoutesWithdrawn
from ribd.feed_control import (
    CONTROL_PREFIX,
    REFRESH_TIMEOUT,
    REREAD_STALL_TIMEOUT,
    REREAD_WAVE,
    RESYNC_INTERVAL_MAX,
    RESYNC_INTERVAL_MIN,
    RelayControl,
    RelayInfo,
)
from ribd.feed_counters import (
    BAD_LINES_LOGGED_IN_FULL,
    LOGGED_LINE_CHARS,
    BadLineLog,
    FeedCounters,
    bad_line_category,
)
from ribd.lines import LineSplitter
from ribd.parser import MAX_LINE_BYTES, ExabgpParser, FeedError, UnseenSession
from ribd.reread_waves import RereadWaves
from ribd.rib import Rib

# Names other modules and tests import from here.
__all__ = [
    "BAD_LINES_LOGGED_IN_FULL",
    "CONTROL_PREFIX",
    "LOGGED_LINE_CHARS",
    "REFRESH_TIMEOUT",
    "RESYNC_INTERVAL_MAX",
    "RESYNC_INTERVAL_MIN",
    "FeedCounters",
    "FeedServer",
    "RelayInfo",
    "RibMaintenance",
    "bad_line_category",
]

log = logging.getLogger(__name__)

_compiled_lines = None
_compiled_buffer = None
with contextlib.suppress(ImportError):  # the compiled loop, where setup.py built it
    from ribd._feedloop import buffer_in as _compiled_buffer
    from ribd._feedloop import lines_in as _compiled_lines

READ_SIZE = 1 << 20
# A table streams in at ExaBGP's pace, and the relay hands it on in small
# batches (what came in ~2 ms, ~15 KB of a real table's packets lines). Read
# as it came, the feed's thread woke ~3,000 times a table, and each wake cost
# ~0.1-0.2 ms of CPU beyond its lines' parse + apply (the caches cold after
# ExaBGP and the relay ran): ~0.5 CPU-s a table, a third of the feed's cost in
# a session (BENCHMARKS, raw mode, ninth pass). So after a read of at least
# COALESCE_MIN_LINES lines (a load, not a lone UPDATE) that was short of
# COALESCE_BELOW bytes, the thread waits COALESCE_SECONDS before the next
# read, and the socket gathers the lines meanwhile. A lone UPDATE is never
# held back; during a load a line waits at most that much longer.
COALESCE_SECONDS = 0.02
COALESCE_BELOW = 128 * 1024
COALESCE_MIN_LINES = 16
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


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


class FeedServer(RelayControl):
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
        reread_wave: int = REREAD_WAVE,
        coalesce_seconds: float = COALESCE_SECONDS,
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
        # Each read's lines through ribd._feedloop (compiled) where built; False:
        # through ``_lines``, the reference (tests compare them).
        self.compiled_lines = _compiled_lines is not None
        # With it, a table load's common line goes from its bytes to the store in
        # one call (ribd._loadline) where built; False: every line parsed, then
        # applied, as ``_lines`` does (tests compare them).
        self.fused_load = True
        self._loader: tuple | None = None  # (parser, rib, LineLoader)
        # The wait after a short read during a load (0: read as lines come).
        self.coalesce_seconds = coalesce_seconds
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._connections: list[_Connection] = []
        self._closed_totals = FeedCounters()
        self._relays: dict[tuple[int, float], RelayInfo] = {}
        self._bad_log = BadLineLog()
        self.relay_lost_lines = 0
        self.relay_gaps = 0  # times lines went missing (each followed by a resync)
        self.relay_connections = 0
        self.resyncs_requested = 0
        self.exabgp_gone_events = 0
        self.expecting_exabgp_stop = False  # set by the owner before it stops ExaBGP
        self.refresh_timeout = refresh_timeout
        self.session_resets_requested = 0
        self._resync_wanted = threading.Event()
        self._resync_thread: threading.Thread | None = None
        self._resync_interval = RESYNC_INTERVAL_MIN
        self._next_resync = 0.0
        self._last_gap = -1e9
        self._unseen_resets: dict[str, float] = {}  # neighbor -> when we last reset it
        # ExaBGP worker number -> the neighbors it holds (set by the owner,
        # ribd.workers.ExabgpWorkers.scopes); a worker not named here, or a
        # relay without a worker, speaks for every router.
        self.worker_scopes: dict[int, frozenset[str]] = {}
        # Routers whose tables await a re-read after a gap, asked a wave at
        # a time (``reread_wave`` per worker: [bgp] reread_wave).
        self.rereads = RereadWaves(reread_wave, REREAD_STALL_TIMEOUT)
        self._gap_since_wave = False
        self._resync_all: set[int] = set()  # workers whose gap found no router known yet

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

    # -- state --

    def stats(self) -> dict:
        with self._lock:
            totals = FeedCounters()
            totals.add(self._closed_totals)
            for c in self._connections:
                totals.add(c.counters)
            connected = sum(1 for c in self._connections if c.relay is not None)
            by_worker: dict[int, int] = {}
            for c in self._connections:
                if c.relay is not None:
                    by_worker[c.relay.worker] = by_worker.get(c.relay.worker, 0) + 1
        return {
            "lines": totals.lines,
            "updates": totals.updates,
            "prefixes_announced": totals.prefixes_announced,
            "prefixes_withdrawn": totals.prefixes_withdrawn,
            "treated_as_withdraw": totals.treated_as_withdraw,
            "end_of_rib": totals.end_of_rib,
            "bad_lines": totals.bad_lines,
            "bad_lines_by_category": dict(totals.bad_by_category),
            "reads": totals.reads,
            "relay_lost_lines": self.relay_lost_lines,
            "relay_gaps": self.relay_gaps,
            "relay_connections": self.relay_connections,
            "relays_connected": connected,
            "relays_connected_by_worker": by_worker,
            "refused_connections": self.refused_connections,
            "resyncs_requested": self.resyncs_requested,
            "rereads_waiting": len(self.rereads.waiting),
            "rereads_running": len(self.rereads.running),
            "rereads_running_peak": self.rereads.peak,
            "rereads_stalled": self.rereads.stalled,
            "session_resets_requested": self.session_resets_requested,
            "exabgp_gone_events": self.exabgp_gone_events,
            "fused_lines": self._loader[2].taken if self._loader is not None else 0,
        }

    def line_loader(self, parser: ExabgpParser, rib: Rib) -> Any:
        """The fused path's ``ribd._loadline.LineLoader`` for this parser and RIB
        (one for every connection: its peer texts are remembered across reads)."""
        from ribd._loadline import LineLoader

        held = self._loader
        if held is None or held[0] is not parser or held[1] is not rib:
            self._loader = held = (parser, rib, LineLoader(parser, rib))
        return held[2]

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
        buf = bytearray(READ_SIZE)  # one buffer for every read (ribd.lines says why)
        recv_into, view = conn.sock.recv_into, memoryview(buf)
        c = conn.counters
        splitter = LineSplitter(self.max_line_bytes)
        # The compiled loop over a read's lines where built (and not turned off).
        lines_in = _compiled_lines if self.compiled_lines else FeedServer._lines
        coalesce = self.coalesce_seconds
        # Where compiled, the read's whole lines are handled where they lie in
        # ``buf`` (``_feedloop.buffer_in`` says what that saves); otherwise each
        # becomes a bytes object first.
        buffer_in = _compiled_buffer if self.compiled_lines else None
        while True:
            size = recv_into(buf)
            if not size:
                break
            c.reads += 1
            if buffer_in is not None:
                lines, too_long, start, end = splitter.split_region(buf, size)
                self._too_long(c, too_long)
                if lines:
                    lines_in(self, conn, lines)
                count = len(lines) + buffer_in(self, conn, buf, start, end, self.max_line_bytes)
            else:
                lines, too_long = splitter.split(view[:size])
                self._too_long(c, too_long)
                lines_in(self, conn, lines)
                count = len(lines)
            if splitter.max_held > self.max_held_bytes:
                self.max_held_bytes = splitter.max_held
            if coalesce and count >= COALESCE_MIN_LINES and size < COALESCE_BELOW:
                time.sleep(coalesce)  # a load streams in: let the socket gather more
        if splitter.pending:
            # A connection cut mid-line: the relay re-sends the whole batch.
            log.debug("discarding %d bytes of an incomplete line", splitter.pending)

    def _too_long(self, c: FeedCounters, too_long: list[tuple[bytes, int]]) -> None:
        """Lines over ``max_line_bytes`` (their heads and sizes) counted and logged."""
        for head, long in too_long:
            c.lines += 1
            self._bad_log.bad_line(c, head, f"line of {long} bytes exceeds {self.max_line_bytes}")

    def _lines(self, conn: _Connection, lines: list[bytes]) -> None:
        """Each line of one read: parsed, checked, applied (``rib.lock`` per line,
        in ``apply_many``) and counted, in order. The reference of
        ``ribd._feedloop.lines_in`` (the same steps compiled)."""
        parse = self.parser.parse
        apply_many = self.rib.apply_many
        rib = self.rib
        c = conn.counters
        for line in lines:
            if line.startswith(CONTROL_PREFIX):
                self._control(conn, line)
                continue
            c.lines += 1
            try:
                events = parse(line)
            except UnseenSession as exc:
                self._bad_log.bad_line(c, line, str(exc))
                self._unseen_session(exc.neighbor)
                continue
            except FeedError as exc:
                self._bad_log.bad_line(c, line, str(exc))
                continue
            except Exception as exc:  # a parser bug must not take the connection down
                self._bad_log.bad_line(
                    c, line, f"parser failed: {type(exc).__name__}: {exc!s:.200}"
                )
                continue
            if not events:
                continue
            first = events[0]
            if type(first) is ExabgpShutdown:
                if conn.relay is not None and conn.relay.worker:
                    # That worker's ExaBGP is going: its routers only.
                    events = [ExabgpShutdown(self._scope(conn.relay.worker))]
            elif (
                rib.neighbors is not None and first.neighbor not in rib.neighbors  # type: ignore[union-attr]
            ):
                self._bad_log.bad_line(
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
                        self._bad_log.treat_as_withdraw(ev)  # type: ignore[arg-type]
                    else:
                        c.prefixes_withdrawn += len(ev.prefixes)  # type: ignore[union-attr]
                elif kind is EndOfRib:
                    c.end_of_rib += 1
                    route_events = True
            if route_events:
                c.updates += 1


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
