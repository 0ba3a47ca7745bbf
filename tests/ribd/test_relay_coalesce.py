"""The relay's longer wait during a load (``Relay.coalesce_seconds``): ExaBGP's
lines written one at a time are read and handed on in a few big pieces, and a
lone UPDATE is never held back. A real pipe in, a real Unix socket out."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

from ribd.relay import COALESCE_MIN_LINES, Relay


def _line(k: int) -> bytes:
    return b'{"exabgp": "5.0.0", "type": "update", "n": %d}\n' % k


class _Service:
    """A listening socket that collects every line it receives."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)
        self.data = b""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            while chunk := conn.recv(1 << 20):
                self.data += chunk

    def wait_lines(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while (got := self.data.count(b"\n")) < count + 1:  # + the hello
            assert time.monotonic() < deadline, f"{got} lines of {count + 1}"
            time.sleep(0.005)


def _relay(tmp: Path, coalesce: float) -> tuple[Relay, int, _Service]:
    service = _Service(tmp / "feed.sock")
    r, w = os.pipe()
    relay = Relay(str(tmp / "feed.sock"), stdin_fd=r)
    relay.coalesce_seconds = coalesce
    for target in (relay.read_stdin, relay.send_loop):
        threading.Thread(target=target, daemon=True).start()
    return relay, w, service


def test_a_load_written_line_by_line_is_read_and_sent_in_few_pieces(short_tmp: Path) -> None:
    # 40 bursts of COALESCE_MIN_LINES lines, one write a line, 2 ms apart (>= 80
    # ms in all). With the 2 ms wait both threads woke about once a burst; with
    # a 1 s wait during a load the relay reads and sends them in a handful.
    relay, w, service = _relay(short_tmp, coalesce=1.0)
    try:
        n = 0
        for _ in range(40):
            for _ in range(COALESCE_MIN_LINES):
                os.write(w, _line(n))
                n += 1
            time.sleep(0.002)
        service.wait_lines(n)
        got = service.data.split(b"\n")[1:-1]
        assert got == [_line(k)[:-1] for k in range(n)]
        assert relay.reads <= 6, relay.reads
        assert relay.sends <= 6, relay.sends
    finally:
        relay._stop.set()
        os.close(w)


def test_a_lone_update_is_not_held_back(short_tmp: Path) -> None:
    # An hour's wait during a load: reads and batches of fewer than
    # COALESCE_MIN_LINES lines wait only the short 2 ms, so each line is
    # delivered while the next is still to come.
    relay, w, service = _relay(short_tmp, coalesce=3600.0)
    try:
        for k in range(5):
            os.write(w, _line(k))
            service.wait_lines(k + 1)
        os.write(w, b"".join(_line(10 + k) for k in range(COALESCE_MIN_LINES - 1)))
        service.wait_lines(5 + COALESCE_MIN_LINES - 1)
        os.write(w, _line(99))
        service.wait_lines(5 + COALESCE_MIN_LINES)
    finally:
        relay._stop.set()
        os.close(w)
