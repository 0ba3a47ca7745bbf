"""ribd-feed (ribd.relay) as a real process: stdin in, Unix socket out."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson

from ribd.spool import Spool


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


def test_overflow_drops_lines_and_marks_each_gap_where_it_is(short_tmp: Path, processes) -> None:
    sock = short_tmp / "feed.sock"
    proc = processes(relay_args(sock, "--spool-bytes", "2000"), stdin=subprocess.PIPE)
    for i in range(1000):
        proc.stdin.write(b'{"n": %d}\n' % i)
        if i % 50 == 0:
            proc.stdin.flush()
    proc.stdin.close()  # everything is read before anyone listens
    time.sleep(0.5)
    server = listen(sock)
    conn, _ = server.accept()
    conn.settimeout(10)
    buf = b""
    while b'"event":"eof"' not in buf:
        data = conn.recv(65536)
        assert data, "connection closed before eof"
        buf += data
    messages = [orjson.loads(x) for x in buf.split(b"\n") if x]
    assert messages[0]["event"] == "hello" and messages[-1]["event"] == "eof"
    kept = [m["n"] for m in messages if "n" in m]
    gaps = [m for m in messages if m.get("event") == "lost"]
    assert kept == sorted(kept) and gaps, "lines in order, and the overflow marked"
    assert len(kept) + sum(g["lines"] for g in gaps) == 1000, "every dropped line counted"
    # Each marker stands where its lines were: between the kept lines around it.
    seen, at = 0, 0
    for m in messages[1:-1]:
        if "n" in m:
            assert m["n"] == seen + at
            seen += 1
        else:
            at += m["lines"]
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


def test_spool_is_bounded_by_bytes_and_marks_a_gap_once_there_is_room() -> None:
    spool = Spool(limit_bytes=400)
    spool.put(b"a" * 99 + b"\n", 1)
    spool.put(b"b" * 299 + b"\n", 1)  # 400 bytes: full
    spool.put(b"c\n", 1)  # dropped
    spool.put(b"d\n", 1)  # dropped: the gap is still open
    assert spool.bytes == 400 and spool.lost_total == 2
    assert b"".join(c for c, _ in spool.take(150, 0)) == b"a" * 99 + b"\n"
    spool.put(b"c2\n", 1)  # 300 + 3 fit, but not with room for the marker: dropped too
    assert b"".join(c for c, _ in spool.take(1 << 20, 0)) == b"b" * 299 + b"\n"
    spool.put(b"e\n", 1)  # room for the marker and the line: marker first
    spool.close(b"end\n")
    out = b"".join(c for c, _ in spool.take(1 << 20, 0)).split(b"\n")
    assert orjson.loads(out[0]) == {"type": "ribd-relay", "event": "lost", "lines": 3, "bytes": 7}
    assert out[1:] == [b"e", b"end", b""]


def test_a_gap_still_open_at_the_end_is_marked_before_the_last_line() -> None:
    spool = Spool(limit_bytes=10)
    spool.put(b"0123456789\n", 1)  # 11 bytes: does not fit
    spool.close(b"eof\n")
    out = b"".join(c for c, _ in spool.take(1 << 20, 0)).split(b"\n")
    assert orjson.loads(out[0])["lines"] == 1 and out[1] == b"eof"


def test_help_says_closing_stdin_marks_every_route_stale() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ribd.relay", "--help"], capture_output=True, text=True, timeout=30
    ).stdout
    assert "marks EVERY" in out and "route of EVERY router stale" in out
    assert "--spool-bytes" in out
