"""A fake ``ribd-feed`` relay: pushes ExaBGP lines into a service's feed socket.

Run as its own process (``python -m bench.feeder``), as the real relay is, so
the sending never competes with the service for the GIL. The wire protocol is
``ribd.relay``'s: a ``hello`` control line, then ExaBGP's lines unchanged,
newline-separated. We never send ``eof`` (that would mark every route stale:
ExaBGP gone), and every feeder of one benchmark presents the same relay
identity (pid, started), so the service sees one relay reconnecting, not a
respawned one (which would trigger a route-refresh request and mark routers
not converged).

Handshake with the parent on stdin/stdout so that preparation (decompressing,
rewriting peers) is never timed: we print ``ready``, wait for ``go``, send,
then print one JSON object: ``start``, ``end`` (monotonic seconds) and
``progress``, a list of [monotonic time, lines handed to the socket so far]
after each chunk. SIGTERM stops the sending early (the JSON is still
printed), for a benchmark with a time budget.

A marker line ends every feed: an End-of-RIB from ``MARKER_NEIGHBOR`` stamped
with ``time = token``. The service applies a connection's lines in order, so
when ListRouters shows that router with ``last_update == token`` every line
before it has been applied.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import signal
import socket
import sys
import time

import orjson

MARKER_NEIGHBOR = "192.0.2.254"
RELAY_PID = 4242  # fake relay identity shared by every feeder of a run
RELAY_PPID = 4241
SEND_CHUNK = 64 << 10  # small, so that "lines sent" tracks "lines read" closely

_PEER_FIELD = re.compile(rb'"peer":"[^"]*"')


def hello(started: float) -> bytes:
    return (
        orjson.dumps(
            {
                "type": "ribd-relay",
                "event": "hello",
                "pid": RELAY_PID,
                "ppid": RELAY_PPID,
                "started": started,
                "delivered": 0,
            }
        )
        + b"\n"
    )


def marker_line(token: float, neighbor: str = MARKER_NEIGHBOR) -> bytes:
    return orjson.dumps(
        {
            "exabgp": "5.0.0",
            "time": token,
            "type": "update",
            "neighbor": {
                "address": {"local": "127.0.0.1", "peer": neighbor},
                "asn": {"local": 64500, "peer": 64500},
                "direction": "receive",
                "message": {"eor": {"afi": "ipv4", "safi": "unicast"}},
            },
        }
    )


def wait_marker(rib, token: float, timeout: float = 120.0, poll: float = 0.005) -> float:
    """Poll a ``Rib`` in this process until the marker router shows ``token``
    (every line before the marker applied); return the monotonic time then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = rib.routers.get(MARKER_NEIGHBOR)
        if r is not None and r.last_update == token:
            return time.monotonic()
        time.sleep(poll)
    raise TimeoutError("the feed did not deliver the marker line")


def state_up_line(peer: str) -> bytes:
    """ExaBGP announces the session before its routes; so do we."""
    return orjson.dumps(
        {
            "exabgp": "5.0.0",
            "time": time.time(),
            "type": "state",
            "neighbor": {
                "address": {"local": "127.0.0.1", "peer": peer},
                "asn": {"local": 3856, "peer": 3856},
                "router-id": peer,
                "state": "up",
            },
        }
    )


def prepare(
    path: str, remap_all_to: str | None, state_up: str | None, token: float, repeat: int
) -> bytes:
    with gzip.open(path, "rb") as f:
        data = f.read()
    if remap_all_to:
        # Only the neighbor's address field (a string); the "asn" object's
        # "peer" is a number and never matches.
        data = _PEER_FIELD.sub(b'"peer":"' + remap_all_to.encode() + b'"', data)
    if not data.endswith(b"\n"):
        data += b"\n"
    head = state_up_line(state_up) + b"\n" if state_up else b""
    return head + data * repeat + marker_line(token) + b"\n"


class Stopped(Exception):
    """SIGTERM: stop sending now."""


def _stop(signum: int, frame: object) -> None:
    raise Stopped


_TIME = re.compile(rb'"time":([0-9.]+)')


def paced_chunks(payload: bytes, speed: float):
    """Yield (monotonic send time offset, chunk): the lines grouped by their
    ExaBGP time stamp, due ``(stamp - first stamp) / speed`` seconds after start,
    so the stream is replayed at its recorded pace (``speed`` 1.0)."""
    first = None
    group: list[bytes] = []
    due = 0.0
    for line in payload.splitlines(keepends=True):
        m = _TIME.search(line)
        if m is not None:  # a stamp earlier than the current group's joins it
            stamp = float(m.group(1))
            first = stamp if first is None else first
            at = (stamp - first) / speed
            if at > due and group:
                yield due, b"".join(group)
                group = []
            due = max(due, at)
        group.append(line)
    if group:
        yield due, b"".join(group)


def send(
    socket_path: str, started: float, payload: bytes, pace: float = 0.0
) -> list[tuple[float, int]]:
    """Send everything (or until SIGTERM); returns [(time, lines sent so far)].

    ``pace``: 0 = as fast as the service reads; else replay at this multiple
    of the recorded speed (by the lines' time stamps).
    """
    progress: list[tuple[float, int]] = []
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(socket_path)
    sock.sendall(hello(started))
    lines = 0
    if pace:
        chunks = paced_chunks(payload, pace)
    else:
        view = memoryview(payload)
        chunks = ((0.0, view[i : i + SEND_CHUNK]) for i in range(0, len(view), SEND_CHUNK))
    t0 = time.monotonic()
    try:
        for due, chunk in chunks:
            delay = t0 + due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sock.sendall(chunk)
            lines += bytes(chunk).count(b"\n")
            progress.append((time.monotonic(), lines))
        # Half-close and wait for the service to hang up: it reads everything
        # we sent before it sees EOF.
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(600)
        while sock.recv(65536):
            pass
    except (Stopped, OSError):
        pass
    finally:
        sock.close()
    return progress


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.feeder")
    p.add_argument("--socket", required=True)
    p.add_argument("--file", required=True, help="ExaBGP JSON lines, gzip")
    p.add_argument("--remap-all-to", help="rewrite every neighbor peer address to this one")
    p.add_argument("--state-up", metavar="PEER", help="send a session 'up' line for PEER first")
    p.add_argument("--token", type=float, required=True, help="time stamp of the marker line")
    p.add_argument("--started", type=float, default=1.0, help="relay identity (hello)")
    p.add_argument("--repeat", type=int, default=1, help="send the file this many times")
    p.add_argument("--no-wait", action="store_true", help="send at once, no ready/go")
    p.add_argument(
        "--pace", type=float, default=0.0, help="replay at this multiple of the recorded speed"
    )
    args = p.parse_args()
    payload = prepare(args.file, args.remap_all_to, args.state_up, args.token, args.repeat)
    if not args.no_wait:
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            return 1
    signal.signal(signal.SIGTERM, _stop)
    start = time.monotonic()
    progress = send(args.socket, args.started, payload, args.pace)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    print(json.dumps({"start": start, "end": time.monotonic(), "progress": progress}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
