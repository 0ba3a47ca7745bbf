"""``ribd-feed``: ExaBGP's API process, relaying its lines to the service.

ExaBGP writes to its API process with blocking writes: if we stop reading,
ExaBGP freezes, misses keepalives and every session drops. So stdin is read
by a thread that never waits on anything else; lines go into an in-memory
queue bounded by a line count, and a second thread delivers them to the
service's Unix socket, reconnecting with backoff while the service is away.

Protocol towards the service (one JSON object or ExaBGP line per ``\\n``):

* ``{"type":"ribd-relay","event":"hello",...}`` first on every connection:
  ``pid``/``started`` identify this relay (a new pair = a new ExaBGP or a
  respawned relay, whose earlier lines are gone), ``ppid`` is ExaBGP's pid,
  ``delivered`` the lines handed to any service before this connection.
* ``{"type":"ribd-relay","event":"lost","lines":N}`` after the hello when the
  queue overflowed (oldest lines dropped): the RIB may be incomplete.
* ``{"type":"ribd-relay","event":"eof"}`` when ExaBGP closed our stdin
  (ExaBGP stopped or died), after every line read before it.
* ExaBGP's lines, unchanged.

The service may send ``resync <neighbor-ip|*>`` lines back; we write
``neighbor <ip> announce route-refresh <afi> unicast`` for IPv4 and IPv6 to
stdout, which ExaBGP executes (the session must have the route-refresh
capability, as ``ribd.exabgp`` configures it).

Delivery is at-least-once: a batch interrupted by a broken connection is sent
again in full on the next one (re-applying an UPDATE is harmless).

Exit: on stdin EOF (and SIGTERM, which ExaBGP sends when it stops) we keep
delivering until the spool is empty or the service made no progress for
``--grace`` seconds, then exit 0.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator

import orjson

log = logging.getLogger("ribd.relay")

DEFAULT_SPOOL_LIMIT = 1_000_000  # lines; a full table is ~90k UPDATE lines of ~0.7-2 KB
DEFAULT_GRACE = 1.5  # seconds; ExaBGP SIGKILLs its API process 2 s after SIGTERM
READ_SIZE = 1 << 20
BATCH_BYTES = 1 << 20
MAX_PARTIAL_LINE = 64 << 20  # a "line" this long without a newline is dropped
RECONNECT_MIN, RECONNECT_MAX = 0.05, 2.0
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


def control_line(event: str, **fields: object) -> bytes:
    return orjson.dumps({"type": "ribd-relay", "event": event, **fields}) + b"\n"


class Spool:
    """Chunks of whole lines, bounded by line count; overflow drops the oldest."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._chunks: collections.deque[tuple[bytes, int]] = collections.deque()
        self._lines = 0
        self._cond = threading.Condition()
        self.lost = 0  # dropped lines not yet reported to a service
        self.lost_total = 0
        self.closed = False  # no more input will come

    def put(self, chunk: bytes, lines: int) -> None:
        with self._cond:
            self._chunks.append((chunk, lines))
            self._lines += lines
            while self._lines > self.limit:
                oldest, n = self._chunks[0]
                excess = self._lines - self.limit
                if n <= excess:
                    self._chunks.popleft()
                    dropped = n
                else:  # cut the oldest lines off the front of the chunk
                    cut = 0
                    for _ in range(excess):
                        cut = oldest.index(b"\n", cut) + 1
                    self._chunks[0] = (oldest[cut:], n - excess)
                    dropped = excess
                self._lines -= dropped
                self.lost += dropped
                self.lost_total += dropped
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def take(self, max_bytes: int, timeout: float) -> list[tuple[bytes, int]]:
        """Up to ``max_bytes`` of chunks (at least one), or [] after ``timeout``."""
        with self._cond:
            if not self._chunks:
                self._cond.wait(timeout)
            batch: list[tuple[bytes, int]] = []
            size = 0
            while self._chunks and (not batch or size + len(self._chunks[0][0]) <= max_bytes):
                chunk, n = self._chunks.popleft()
                self._lines -= n
                batch.append((chunk, n))
                size += len(chunk)
            return batch

    def give_back(self, batch: list[tuple[bytes, int]]) -> None:
        """Return an undelivered batch to the front (it is re-sent first)."""
        with self._cond:
            for chunk, n in reversed(batch):
                self._chunks.appendleft((chunk, n))
                self._lines += n

    def drop(self, lines: int) -> None:
        """Count lines lost without queueing them (undeliverable, or a failed report)."""
        with self._cond:
            self.lost += lines
            self.lost_total += lines

    def requeue_lost(self, lines: int) -> None:
        with self._cond:
            self.lost += lines

    def take_lost(self) -> int:
        with self._cond:
            lost, self.lost = self.lost, 0
            return lost

    def __len__(self) -> int:
        with self._cond:
            return self._lines

    def empty(self) -> bool:
        with self._cond:
            return not self._chunks


class Relay:
    def __init__(
        self,
        socket_path: str,
        *,
        spool_limit: int = DEFAULT_SPOOL_LIMIT,
        stdin_fd: int = 0,
        stdout_fd: int = 1,
    ) -> None:
        self.socket_path = socket_path
        self.spool = Spool(spool_limit)
        self.stdin_fd = stdin_fd
        self.stdout_fd = stdout_fd
        self.started = time.time()
        self.delivered = 0  # lines handed to a service (this process's lifetime)
        self.lines_read = 0
        self.eof = threading.Event()
        self.done = threading.Event()  # everything, eof marker included, delivered
        self._stop = threading.Event()
        self._stdout_lock = threading.Lock()

    # -- stdin --

    def read_stdin(self) -> None:
        """Read ExaBGP's output as fast as it comes; never wait on the service."""
        tail = b""
        read = os.read
        fd = self.stdin_fd
        while True:
            try:
                data = read(fd, READ_SIZE)
            except InterruptedError:
                continue
            except OSError as exc:
                log.warning("reading stdin failed: %s", exc)
                data = b""
            if not data:
                break
            end = data.rfind(b"\n")
            if end < 0:
                tail += data
                if len(tail) > MAX_PARTIAL_LINE:
                    log.error("dropping a line longer than %d bytes", MAX_PARTIAL_LINE)
                    self.spool.drop(1)
                    tail = b""
                continue
            chunk = tail + data[: end + 1] if tail else data[: end + 1]
            tail = data[end + 1 :]
            lines = chunk.count(b"\n")
            self.lines_read += lines
            self.spool.put(chunk, lines)
        if tail:
            self.spool.put(tail + b"\n", 1)
        self.spool.put(control_line("eof", lines_read=self.lines_read), 1)
        self.eof.set()
        self.spool.close()

    # -- the service --

    def _connect(self) -> socket.socket | None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
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
        )
        lost = self.spool.take_lost()
        try:
            sock.sendall(hello + (control_line("lost", lines=lost) if lost else b""))
        except OSError:
            self.spool.requeue_lost(lost)
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
            self.delivered += sum(n for _, n in batch)
            lost = self.spool.take_lost()
            if lost:
                try:
                    sock.sendall(control_line("lost", lines=lost))
                except OSError:
                    self.spool.requeue_lost(lost)
                    return

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
    )
    parser.add_argument("--socket", required=True, help="the service's feed socket (Unix)")
    parser.add_argument(
        "--spool-limit",
        type=int,
        default=DEFAULT_SPOOL_LIMIT,
        help="lines kept in memory while the service is unreachable; beyond, the oldest "
        "are dropped and reported (default %(default)s, roughly 1-2 GB at worst)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE,
        help="after ExaBGP closes our stdin, give up delivering after this many seconds "
        "without progress (default %(default)s)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="ribd-feed[%(process)d] %(message)s"
    )
    relay = Relay(args.socket, spool_limit=args.spool_limit)

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
        relay.spool.put(control_line("eof", lines_read=relay.lines_read, signal=True), 1)
        relay.eof.set()
        relay.spool.close()


if __name__ == "__main__":
    sys.exit(main())
