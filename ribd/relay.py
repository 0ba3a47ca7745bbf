"""``ribd-feed``: ExaBGP's API process, relaying its lines to the service.

ExaBGP writes to its API process with blocking writes: if we stop reading,
ExaBGP freezes, misses keepalives and every session drops. So stdin is read
by a thread that never waits on anything else; lines go into an in-memory
spool bounded by bytes (``--spool-bytes``), and a second thread delivers them
to the service's Unix socket, reconnecting with backoff while the service is
away. There is no flow control back to ExaBGP (it would freeze the sessions):
what does not fit is dropped, and the gap is marked in the stream.

Protocol towards the service (one JSON object or ExaBGP line per ``\\n``):

* ``{"type":"ribd-relay","event":"hello",...}`` first on every connection:
  ``pid``/``started`` identify this relay (a new pair = a new ExaBGP or a
  respawned relay, whose earlier lines are gone), ``ppid`` is ExaBGP's pid,
  ``delivered`` the lines handed to any service before this connection,
  ``worker`` the ExaBGP worker it relays for (``--worker``; 0: the only one).
* ``{"type":"ribd-relay","event":"lost","lines":N,"bytes":B}`` where the spool
  overflowed: N lines were dropped at this point of the stream. The service
  re-reads every router's table from there (``ribd.feed``).
* ``{"type":"ribd-relay","event":"eof"}`` when ExaBGP closed our stdin
  (ExaBGP stopped or died), after every line read before it.
* ExaBGP's lines, unchanged.

The service may send ``resync <neighbor-ip|*>`` lines back; we write
``neighbor <ip> announce route-refresh <afi> unicast`` for IPv4 and IPv6 to
stdout, which ExaBGP executes (the session must have the route-refresh
capability, as ``ribd.exabgp`` configures it). ``reset <neighbor-ip>``
becomes ``neighbor <ip> teardown 4`` (Cease, Administrative Reset), for
routers that do not answer a refresh with BoRR/EoRR.

Delivery is at-least-once: a batch interrupted by a broken connection is sent
again in full on the next one (re-applying an UPDATE is harmless).

Exit: on stdin EOF (and SIGTERM, which ExaBGP sends when it stops) we keep
delivering until the spool is empty or the service made no progress for
``--grace`` seconds, then exit 0.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator

from ribd.spool import Spool, control_line

log = logging.getLogger("ribd.relay")

try:  # newlines counted with memchr (``bytes.count`` looks at one octet at a time)
    from ribd._lines import count_lines
except ImportError:  # pragma: no cover - without a C compiler

    def count_lines(data: bytes) -> int:
        return data.count(b"\n")


DEFAULT_SPOOL_BYTES = 256 << 20  # [bgp] relay_spool_bytes; a full table is ~100-200 MB of lines
DEFAULT_GRACE = 1.5  # seconds; ExaBGP SIGKILLs its API process 2 s after SIGTERM
READ_SIZE = 1 << 20
BATCH_BYTES = 1 << 20
MAX_PARTIAL_LINE = 64 << 20  # a "line" this long without a newline is dropped
RECONNECT_MIN, RECONNECT_MAX = 0.05, 2.0
# ExaBGP writes one line per message: read as it comes, the relay paid a
# read, a spool hand-over and a wake-up of the sender per line (5-6.6 CPU-s
# per full table, BENCHMARKS.md). After a short read we wait SHORT_COALESCE
# so that the pipe gathers lines for the next read, and the sender waits as
# long after a small batch. During a load (a read or batch of at least
# COALESCE_MIN_LINES lines) both wait COALESCE_SECONDS instead: at 2 ms the
# relay still woke ~3,000 times a real table (ExaBGP writes ~7 MB/s of
# packets lines, ~15 KB per 2 ms) and so did the service's feed thread, each
# wake ~0.1-0.2 ms of CPU beyond the bytes (BENCHMARKS, raw mode, ninth pass).
# 50 ms of ExaBGP's output is ~400 KB (ExaBGP 5's own lines, ~8 MB/s): the
# reader waits that long only when the pipe was enlarged to PIPE_BYTES, so
# ExaBGP's writes never block on it (at 20 ms: relay 0.14-0.16 CPU-s a real
# table, at 50 ms 0.09-0.10, BENCHMARKS raw mode, twelfth pass). The socket's
# send buffer is enlarged to SEND_BYTES so that a batch that size goes to the
# service in one piece. A lone UPDATE is never held back by the longer wait.
SHORT_COALESCE = 0.002
COALESCE_SECONDS = 0.05
SEND_BYTES = 1 << 20
COALESCE_MIN_LINES = 16
COALESCE_BELOW = 64 * 1024
PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux), not exported before Python 3.10 everywhere
_F_GETPIPE_SZ = 1032
FAMILIES = ("ipv4", "ipv6")


def recv_lines(sock: socket.socket) -> Iterator[bytes]:
    """Lines received on ``sock`` until it closes or fails; a partial last line is dropped."""
    buf = b""
    while True:
        try:
            data = sock.recv(65536)
        except OSError:
            return
        if not data:
            return
        buf += data
        *lines, buf = buf.split(b"\n")
        yield from lines


class Relay:
    def __init__(
        self,
        socket_path: str,
        *,
        spool_bytes: int = DEFAULT_SPOOL_BYTES,
        stdin_fd: int = 0,
        stdout_fd: int = 1,
        worker: int = 0,
    ) -> None:
        self.socket_path = socket_path
        self.worker = worker
        self.spool = Spool(spool_bytes)
        self.stdin_fd = stdin_fd
        self.stdout_fd = stdout_fd
        self.started = time.time()
        self.delivered = 0  # lines handed to a service (this process's lifetime)
        self.lines_read = 0
        self.eof = threading.Event()
        self.done = threading.Event()  # everything, eof marker included, delivered
        self._stop = threading.Event()
        self._stdout_lock = threading.Lock()
        # The wait after a short read or a small batch during a load
        # (COALESCE_SECONDS; tests set it).
        self.coalesce_seconds = COALESCE_SECONDS
        self.reads = 0  # stdin reads that returned bytes
        self.sends = 0  # batches written to a service

    # -- stdin --

    def read_stdin(self) -> None:
        """Read ExaBGP's output as fast as it comes; never wait on the service."""
        tail = b""
        # One buffer for every read: ``os.read(fd, READ_SIZE)`` made a 1 MiB
        # bytes object per read (malloc's mmap, the pages faulted in, shrunk
        # to the ~150 KB read, unmapped again): ~8k page faults and most of the
        # relay's system time per table. Each chunk is copied out of it once.
        buf = bytearray(READ_SIZE)
        view = memoryview(buf)
        readv = os.readv
        fd = self.stdin_fd
        # The load's longer wait only where the pipe holds that much of ExaBGP's output.
        long_wait = self.coalesce_seconds if _enlarge_pipe(fd) >= PIPE_BYTES else SHORT_COALESCE
        while True:
            try:
                size = readv(fd, (view,))
            except InterruptedError:
                continue
            except OSError as exc:
                log.warning("reading stdin failed: %s", exc)
                size = 0
            if not size:
                break
            self.reads += 1
            end = buf.rfind(b"\n", 0, size)
            if end < 0:
                tail += view[:size]
                if len(tail) > MAX_PARTIAL_LINE:
                    log.error("dropping a line longer than %d bytes", MAX_PARTIAL_LINE)
                    self.spool.drop(1, len(tail))
                    tail = b""
                continue
            chunk = tail + view[: end + 1] if tail else bytes(view[: end + 1])
            tail = bytes(view[end + 1 : size])
            lines = count_lines(chunk)
            self.lines_read += lines
            self.spool.put(chunk, lines)
            if size < COALESCE_BELOW:
                time.sleep(long_wait if lines >= COALESCE_MIN_LINES else SHORT_COALESCE)
        if tail:
            self.spool.put(tail + b"\n", 1)
        self.spool.close(control_line("eof", lines_read=self.lines_read))
        self.eof.set()

    # -- the service --

    def _connect(self) -> socket.socket | None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(OSError):  # (capped by net.core.wmem_max: then as it allows)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BYTES)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            return None
        return sock

    def send_loop(self) -> None:
        delay = RECONNECT_MIN
        announced_missing = False
        while not self._stop.is_set():
            sock = self._connect()
            if sock is None:
                if not announced_missing:
                    log.warning("service socket %s not reachable; spooling", self.socket_path)
                    announced_missing = True
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            delay = RECONNECT_MIN
            announced_missing = False
            log.info("connected to %s", self.socket_path)
            try:
                self._serve(sock)
            finally:
                sock.close()

    def _serve(self, sock: socket.socket) -> None:
        hello = control_line(
            "hello",
            pid=os.getpid(),
            ppid=os.getppid(),
            started=self.started,
            delivered=self.delivered,
            spooled=len(self.spool),
            worker=self.worker,
        )
        try:
            sock.sendall(hello)
        except OSError:
            return
        commands = threading.Thread(target=self._read_commands, args=(sock,), daemon=True)
        commands.start()
        while not self._stop.is_set():
            batch = self.spool.take(BATCH_BYTES, 0.5)
            if not batch:
                if self.spool.closed and self.spool.empty():
                    self.done.set()
                    self._stop.wait(0.5)
                if not commands.is_alive():
                    return  # the service closed the connection
                continue
            try:
                sock.sendall(b"".join(c for c, _ in batch))
            except OSError as exc:
                log.warning("service connection lost (%s); reconnecting", exc)
                self.spool.give_back(batch)
                return
            self.sends += 1
            lines = sum(n for _, n in batch)
            self.delivered += lines
            if sum(len(c) for c, _ in batch) < COALESCE_BELOW:
                long = lines >= COALESCE_MIN_LINES
                self._stop.wait(self.coalesce_seconds if long else SHORT_COALESCE)

    def _read_commands(self, sock: socket.socket) -> None:
        """Commands from the service (``resync <neighbor|*>``), until it hangs up."""
        for line in recv_lines(sock):
            self._command(line.decode("ascii", "replace").strip())

    def _command(self, text: str) -> None:
        words = text.split()
        if len(words) == 2 and words[0] == "resync" and _neighbor_ok(words[1]):
            out = "".join(
                f"neighbor {words[1]} announce route-refresh {afi} unicast\n" for afi in FAMILIES
            )
            self.write_stdout(out.encode())
            log.info("asked ExaBGP for a route refresh from %s", words[1])
        elif len(words) == 2 and words[0] == "reset" and words[1] != "*" and _neighbor_ok(words[1]):
            # Cease, subcode 4 (Administrative Reset): the router reconnects
            # and sends its whole table again, End-of-RIB at the end.
            self.write_stdout(f"neighbor {words[1]} teardown 4\n".encode())
            log.info("asked ExaBGP to reset the session with %s", words[1])
        elif text:
            log.warning("ignoring unknown command from the service: %.100r", text)

    def write_stdout(self, data: bytes) -> None:
        with self._stdout_lock:
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(self.stdout_fd, view) :]
                except InterruptedError:
                    continue
                except OSError as exc:  # ExaBGP went away
                    log.warning("cannot write to ExaBGP: %s", exc)
                    return

    # -- lifetime --

    def run(self, grace: float = DEFAULT_GRACE) -> int:
        reader = threading.Thread(target=self.read_stdin, name="stdin", daemon=True)
        sender = threading.Thread(target=self.send_loop, name="sender", daemon=True)
        reader.start()
        sender.start()
        self.eof.wait()
        # Keep delivering while the service makes progress; give up after
        # ``grace`` seconds without any.
        progress, last_progress = self.delivered, time.monotonic()
        while not self.done.wait(0.05):
            if self.delivered != progress:
                progress, last_progress = self.delivered, time.monotonic()
            elif time.monotonic() - last_progress >= grace:
                log.warning(
                    "exiting with %d undelivered lines (service at %s not reading)",
                    len(self.spool),
                    self.socket_path,
                )
                break
        self._stop.set()
        return 0


def _enlarge_pipe(fd: int) -> int:
    """A larger stdin pipe (Linux): room for ExaBGP's lines while we coalesce
    reads. Returns the pipe's size after (0: not a pipe, or not known)."""
    try:
        import fcntl
    except ImportError:
        return 0
    # Not a pipe, or above /proc/sys/fs/pipe-max-size: the default will do.
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_BYTES)
    try:
        return fcntl.fcntl(fd, _F_GETPIPE_SZ)
    except OSError:
        return 0


def _neighbor_ok(text: str) -> bool:
    if text == "*":
        return True
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, text)
            return True
        except OSError:
            continue
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ribd-feed",
        description="ExaBGP API process: relay ExaBGP's JSON lines to the ribd service socket.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""\
Closing our stdin means ExaBGP stopped or died: the service then marks EVERY
route of EVERY router stale (kept for [bgp] restart_hold_time) until each
session is back and has sent End-of-RIB. Run ribd-feed only as ExaBGP's API
process, and do not restart it by hand.

Lines are never lost silently: when the spool is full (the service is away or
slower than ExaBGP), new lines are dropped and a "lost" marker takes their
place; the service then marks every established router's routes stale and
re-reads their tables (ROUTE-REFRESH with BoRR/EoRR, else a session reset),
so the RIB ends equal to the routers' tables again.""",
    )
    parser.add_argument("--socket", required=True, help="the service's feed socket (Unix)")
    parser.add_argument(
        "--spool-bytes",
        type=int,
        default=DEFAULT_SPOOL_BYTES,
        help="bytes of ExaBGP lines kept in memory while the service is away or behind "
        "([bgp] relay_spool_bytes; default %(default)s); beyond, lines are dropped and the "
        "gap is marked for an exact re-read",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE,
        help="after ExaBGP closes our stdin, give up delivering after this many seconds "
        "without progress (default %(default)s)",
    )
    parser.add_argument(
        "--worker",
        type=int,
        default=0,
        help="the ExaBGP worker this relay serves (set by the service; default 0: the only one)",
    )
    args = parser.parse_args(argv)
    # What start-up made lives as long as we do: out of the cyclic GC's walks
    # (they were ~15% of the relay's samples during a table load, perf).
    gc.freeze()
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="ribd-feed[%(process)d] %(message)s"
    )
    relay = Relay(args.socket, spool_bytes=args.spool_bytes, worker=max(0, args.worker))

    def on_term(signum: int, frame: object) -> None:
        # ExaBGP stopping: it has written its last lines; deliver them, then go.
        threading.Thread(target=_close_stdin, args=(relay,), daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    return relay.run(args.grace)


def _close_stdin(relay: Relay) -> None:
    # Wait briefly for the pipe's remaining bytes, then treat it as EOF.
    time.sleep(0.2)
    if not relay.eof.is_set():
        relay.spool.close(control_line("eof", lines_read=relay.lines_read, signal=True))
        relay.eof.set()


if __name__ == "__main__":
    sys.exit(main())
