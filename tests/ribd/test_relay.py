"""ribd-feed (ribd.relay) as a real process: stdin in, Unix socket out."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson

from ribd.relay import Spool


def relay_args(sock: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ribd.relay", "--socket", str(sock), *extra]


def listen(path: Path) -> socket.socket:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    server.settimeout(10)
    return server


def read_lines(conn: socket.socket, count: int, timeout: float = 10.0) -> list[bytes]:
    conn.settimeout(timeout)
    buf = b""
    while buf.count(b"\n") < count:
        data = conn.recv(65536)
        if not data:
            break
        buf += data
    return buf.split(b"\n")[:count]


def test_exits_on_stdin_eof_even_without_service(short_tmp: Path, processes) -> None:
    proc = processes(relay_args(short_tmp / "absent.sock", "--grace", "0.3"), stdin=subprocess.PIPE)
    proc.stdin.write(b'{"type":"update"}\n')
    proc.stdin.close()
    assert proc.wait(10) == 0


def test_writer_never_blocks_while_service_is_absent(short_tmp: Path, processes) -> None:
    proc = processes(relay_args(short_tmp / "absent.sock", "--grace", "0.3"), stdin=subprocess.PIPE)
    line = b'{"exabgp": "5.0.0", "type": "update", "padding": "' + b"x" * 200 + b'"}\n'
    payload = line * 100_000  # ~21 MB, far beyond a pipe buffer
    done = threading.Event()

    def write() -> None:
        proc.stdin.write(payload)
        proc.stdin.flush()
        done.set()

    threading.Thread(target=write, daemon=True).start()
    assert done.wait(20), "writing to the relay blocked while the service was absent"
    assert proc.poll() is None  # still running, spooling
    proc.stdin.close()
    assert proc.wait(10) == 0


def test_overflow_drops_oldest_and_reports_the_loss_on_connect(short_tmp: Path, processes) -> None:
    sock = short_tmp / "feed.sock"
    proc = processes(relay_args(sock, "--spool-limit", "100"), stdin=subprocess.PIPE)
    proc.stdin.write(b"".join(b'{"n": %d}\n' % i for i in range(1000)))
    proc.stdin.flush()
    time.sleep(0.5)  # let the relay read everything while nobody listens
    server = listen(sock)
    conn, _ = server.accept()
    lines = read_lines(conn, 2 + 100)
    hello, lost = orjson.loads(lines[0]), orjson.loads(lines[1])
    assert hello["type"] == "ribd-relay" and hello["event"] == "hello"
    assert hello["pid"] == proc.pid and hello["delivered"] == 0
    assert lost == {"type": "ribd-relay", "event": "lost", "lines": 900}
    assert [orjson.loads(x)["n"] for x in lines[2:]] == list(range(900, 1000))  # the newest
    proc.stdin.close()
    eof = orjson.loads(read_lines(conn, 1)[0])
    assert eof["event"] == "eof"
    assert proc.wait(10) == 0
    conn.close()
    server.close()


def test_hello_on_every_connection_and_no_line_lost_across_reconnects(
    short_tmp: Path, processes
) -> None:
    sock = short_tmp / "feed.sock"
    server = listen(sock)
    proc = processes(relay_args(sock), stdin=subprocess.PIPE)
    proc.stdin.write(b'{"n": 1}\n')
    proc.stdin.flush()
    conn, _ = server.accept()
    first = read_lines(conn, 2)
    hello1 = orjson.loads(first[0])
    assert hello1["event"] == "hello" and first[1] == b'{"n": 1}'
    conn.close()  # the service goes away; the relay must reconnect
    proc.stdin.write(b'{"n": 2}\n')
    proc.stdin.flush()
    conn, _ = server.accept()
    second = read_lines(conn, 2)
    hello2 = orjson.loads(second[0])
    assert hello2["event"] == "hello"
    assert (hello2["pid"], hello2["started"]) == (hello1["pid"], hello1["started"])
    assert hello2["delivered"] >= 1
    assert second[1] == b'{"n": 2}'
    proc.stdin.close()
    assert proc.wait(10) == 0
    conn.close()
    server.close()


def test_resync_request_becomes_route_refresh_commands_for_exabgp(
    short_tmp: Path, processes
) -> None:
    sock = short_tmp / "feed.sock"
    server = listen(sock)
    proc = processes(relay_args(sock), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    conn, _ = server.accept()
    read_lines(conn, 1)  # hello
    conn.sendall(b"resync 127.0.0.2\nresync not-an-ip\nresync *\n")
    out = b""
    deadline = time.monotonic() + 10
    while out.count(b"\n") < 4 and time.monotonic() < deadline:
        out += proc.stdout.read1(4096)
    assert out.decode().splitlines() == [
        "neighbor 127.0.0.2 announce route-refresh ipv4 unicast",
        "neighbor 127.0.0.2 announce route-refresh ipv6 unicast",
        "neighbor * announce route-refresh ipv4 unicast",
        "neighbor * announce route-refresh ipv6 unicast",
    ]
    proc.stdin.close()
    assert proc.wait(10) == 0
    conn.close()
    server.close()


def test_spool_bounds_lines_not_chunks() -> None:
    spool = Spool(limit=3)
    spool.put(b"a\nb\n", 2)
    spool.put(b"c\nd\ne\n", 3)
    assert len(spool) == 3 and spool.take_lost() == 2
    assert b"".join(c for c, _ in spool.take(1 << 20, 0)) == b"c\nd\ne\n"
    spool.put(b"f\ng\nh\ni\nj\n", 5)  # one chunk larger than the limit is cut
    assert spool.take_lost() == 2
    assert b"".join(c for c, _ in spool.take(1 << 20, 0)) == b"h\ni\nj\n"
