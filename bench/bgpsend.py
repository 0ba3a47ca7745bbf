"""A fast UPDATE sender: a minimal BGP speaker that replays tables over real sessions.

Made for load benchmarks (``bench.vs_pmacct``): the sender must cost little
and send exactly the bytes a router would, so that the receiver's work is
all that is measured. One ``Session`` per router, each from its own loopback
address (127.0.0.x), all started together.

What it speaks (RFC 4271 framing: 16-byte marker, length, type):

* OPEN with the capabilities the table needs: multiprotocol (RFC 4760) per
  family, 4-octet AS numbers (RFC 6793) when the UPDATEs carry 4-byte AS
  paths, route refresh, and ADD-PATH send (RFC 7911) only when asked;
  then KEEPALIVEs (every hold time / 3, between chunks of a load too).
* The UPDATEs, from one of two sources:

  - ``mrt_updates``: the BGP messages of an MRT file (RFC 6396 BGP4MP /
    BGP4MP_ET, MESSAGE or MESSAGE_AS4), taken byte for byte as the router
    packed them. ``MESSAGE_AS4`` records hold messages of a session that
    negotiated 4-octet AS numbers, so the OPEN offers that capability (and
    only then). ``with_next_hops`` gives router k its own NEXT_HOP values
    (the same length, every other byte untouched), so that routers' tables
    differ the way real routers' do.
  - ``bench.bgpwire.encode_json_update``: ExaBGP 5 JSON UPDATE lines (``bench.synth``,
    ``bench.realistic``) packed by us: IPv4 in the classic NLRI / withdrawn
    fields with NEXT_HOP, IPv6 in MP_REACH_NLRI / MP_UNREACH_NLRI, attributes
    in type order, AS paths as 4-byte segments of at most 255 ASes, UPDATEs
    split so that none exceeds 4096 bytes.

* End-of-RIB per family (RFC 4724: an empty UPDATE for IPv4 unicast, an
  MP_UNREACH_NLRI with only AFI/SAFI for the others), then keepalives until
  ``close()``.

Only loopback addresses are used; anything else is refused.

``python -m bench.bgpsend --connect 127.0.0.1:PORT --routers 2 --source mrt``
sends and keeps the sessions up until stdin closes or SIGTERM, printing one
JSON line when every table is sent.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import ipaddress
import json
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.bgpwire import (
    KEEPALIVE,
    KEEPALIVE_TYPE,
    MARKER,
    NOTIFICATION,
    OPEN,
    UPDATE,
    end_of_rib,
    json_updates,
    open_message,
)
from bench.common import SHARED_DATA

MRT = SHARED_DATA / "bgp" / "pch-as3856-fulltable-2015.mrt.gz"
MRT_AS = 3856  # the PCH collector's session was iBGP in AS 3856
CHUNK = 256 * 1024  # bytes of whole messages per send; keepalives go between chunks


# -- MRT --------------------------------------------------------------------------


@dataclass(slots=True)
class MrtTable:
    """The UPDATE messages of one MRT file (one BGP session), as sent."""

    updates: list[bytes]
    four_octet: bool
    peer_as: int
    families: tuple[str, ...] = ("ipv4 unicast",)


def mrt_updates(path: Path = MRT, limit: int | None = None) -> MrtTable:
    """Every BGP UPDATE of a BGP4MP(_ET) MRT file, whole (marker included).

    End-of-RIB markers inside the file are left out (the sender sends its
    own after the table); a file mixing 2- and 4-octet AS records, or
    several peers, is refused: one session cannot have sent both.
    """
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    out: list[bytes] = []
    kinds: set[int] = set()
    peers: set[int] = set()
    at = 0
    while at + 12 <= len(data):
        _, kind, subtype, length = struct.unpack_from("!IHHI", data, at)
        body = data[at + 12 : at + 12 + length]
        at += 12 + length
        if kind == 17:  # BGP4MP_ET: a microsecond field first (RFC 6396 3)
            body = body[4:]
        elif kind != 16:
            continue
        if subtype not in (1, 4):  # BGP4MP_MESSAGE, BGP4MP_MESSAGE_AS4
            continue
        as_bytes = 4 if subtype == 4 else 2
        peer_as = struct.unpack_from("!I" if as_bytes == 4 else "!H", body, 0)[0]
        afi = struct.unpack_from("!H", body, 2 * as_bytes + 2)[0]
        ip = 4 if afi == 1 else 16
        msg = body[2 * as_bytes + 4 + 2 * ip :]
        if len(msg) < 19 or msg[:16] != MARKER or msg[18] != UPDATE:
            continue
        if len(msg) != struct.unpack_from("!H", msg, 16)[0]:
            raise ValueError(f"{path}: an UPDATE whose length field is not its record's size")
        if len(msg) == 23:  # IPv4 End-of-RIB (empty UPDATE)
            continue
        kinds.add(subtype)
        peers.add(peer_as)
        out.append(bytes(msg))
        if limit is not None and len(out) >= limit:
            break
    if len(kinds) > 1 or len(peers) > 1:
        raise ValueError(f"{path}: records of more than one session ({kinds}, peers {peers})")
    if not out:
        raise ValueError(f"{path}: no BGP UPDATE messages")
    return MrtTable(out, four_octet=kinds == {4}, peer_as=peers.pop())


def _attributes_span(msg: bytes) -> tuple[int, int]:
    withdrawn = struct.unpack_from("!H", msg, 19)[0]
    start = 21 + withdrawn + 2
    return start, start + struct.unpack_from("!H", msg, start - 2)[0]


def with_next_hops(updates: Iterable[bytes], k: int) -> list[bytes]:
    """Router k's variant: each distinct IPv4 NEXT_HOP mapped to 10.k.x.y (its index).

    Only the 4 value bytes of the NEXT_HOP attribute change, so every
    message keeps its length and packing.
    """
    hops: dict[bytes, bytes] = {}
    out = []
    for msg in updates:
        at, end = _attributes_span(msg)
        buf = None
        while at < end:
            flags, code = msg[at], msg[at + 1]
            if flags & 0x10:
                size, head = struct.unpack_from("!H", msg, at + 2)[0], 4
            else:
                size, head = msg[at + 2], 3
            if code == 3 and size == 4:
                old = msg[at + head : at + head + 4]
                new = hops.get(old)
                if new is None:
                    i = len(hops)
                    new = hops[old] = bytes((10, k & 255, (i >> 8) & 255, i & 255))
                buf = bytearray(msg)
                buf[at + head : at + head + 4] = new
                break
            at += head + size
        out.append(bytes(buf) if buf is not None else msg)
    return out


# -- sessions ---------------------------------------------------------------------


class SessionError(RuntimeError):
    pass


def _read_message(sock: socket.socket) -> tuple[int, bytes]:
    head = _recv_exact(sock, 19)
    if head[:16] != MARKER:
        raise SessionError("the peer sent a message without the BGP marker")
    length, kind = struct.unpack_from("!HB", head, 16)
    if not 19 <= length <= 65535:
        raise SessionError(f"the peer sent a message of length {length}")
    return kind, _recv_exact(sock, length - 19)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        got = sock.recv(n - len(buf))
        if not got:
            raise SessionError("the peer closed the connection")
        buf += got
    return buf


def _notification_text(body: bytes) -> str:
    if len(body) < 2:
        return "NOTIFICATION (truncated)"
    return f"NOTIFICATION code {body[0]} subcode {body[1]} data {body[2:].hex() or '-'}"


def _peer_capabilities(body: bytes) -> dict[int, list[bytes]]:
    """Capability code -> values, from an OPEN's optional parameters."""
    caps: dict[int, list[bytes]] = {}
    at = 10
    end = 10 + body[9]
    while at + 2 <= end:
        ptype, plen = body[at], body[at + 1]
        value = body[at + 2 : at + 2 + plen]
        at += 2 + plen
        if ptype != 2:
            continue
        i = 0
        while i + 2 <= len(value):
            code, clen = value[i], value[i + 1]
            caps.setdefault(code, []).append(value[i + 2 : i + 2 + clen])
            i += 2 + clen
    return caps


@dataclass
class Session:
    """One router's BGP session to ``peer`` (host, port), from ``local_address``."""

    peer: tuple[str, int]
    local_address: str
    asn: int
    families: tuple[str, ...] = ("ipv4 unicast",)
    four_octet: bool = True
    add_path: tuple[str, ...] = ()
    hold: int = 180
    sock: socket.socket | None = None
    error: str = ""
    first_update_at: float = 0.0
    sent_at: float = 0.0
    bytes_sent: int = 0
    _send_lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _last_keepalive: float = 0.0

    def __post_init__(self) -> None:
        for a in (self.local_address, self.peer[0]):
            if not ipaddress.ip_address(a).is_loopback:
                raise ValueError(f"{a} is not a loopback address; bench.bgpsend stays on loopback")

    def connect(self, timeout: float = 60.0) -> None:
        """TCP (retried until the listener is up), OPENs, KEEPALIVEs: Established."""
        deadline = time.monotonic() + timeout
        while True:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((self.local_address, 0))
                s.settimeout(max(1.0, deadline - time.monotonic()))
                s.connect(self.peer)
                s.sendall(
                    open_message(
                        self.asn,
                        self.local_address,
                        hold=self.hold,
                        families=self.families,
                        four_octet=self.four_octet,
                        add_path=self.add_path,
                    )
                )
                kind, body = _read_message(s)
            except (OSError, SessionError) as e:
                s.close()
                if time.monotonic() > deadline:
                    raise SessionError(
                        f"{self.local_address}: no session to {self.peer}: {e}"
                    ) from e
                time.sleep(0.2)
                continue
            break
        if kind == NOTIFICATION:
            s.close()
            raise SessionError(f"{self.local_address}: OPEN refused: {_notification_text(body)}")
        if kind != OPEN:
            s.close()
            raise SessionError(f"{self.local_address}: expected OPEN, got type {kind}")
        caps = _peer_capabilities(body)
        if self.four_octet and 65 not in caps:
            s.close()
            raise SessionError("the peer does not offer 4-octet AS numbers; the UPDATEs need them")
        s.sendall(KEEPALIVE)
        kind, body = _read_message(s)
        if kind != KEEPALIVE_TYPE:
            s.close()
            what = _notification_text(body) if kind == NOTIFICATION else f"type {kind}"
            raise SessionError(f"{self.local_address}: session not established: {what}")
        s.settimeout(None)
        self.sock = s
        self._last_keepalive = time.monotonic()
        threading.Thread(
            target=self._reader, name=f"bgpsend-read-{self.local_address}", daemon=True
        ).start()
        threading.Thread(
            target=self._keepalives, name=f"bgpsend-ka-{self.local_address}", daemon=True
        ).start()

    def _reader(self) -> None:
        """Drain the peer's messages; a NOTIFICATION or close ends the session."""
        assert self.sock is not None
        try:
            while not self._stop.is_set():
                kind, body = _read_message(self.sock)
                if kind == NOTIFICATION:
                    self.error = _notification_text(body)
                    return
        except (OSError, SessionError) as e:
            if not self._stop.is_set():
                self.error = self.error or str(e)

    def _keepalives(self) -> None:
        interval = max(1.0, self.hold / 3)
        while not self._stop.wait(1.0):
            if time.monotonic() - self._last_keepalive >= interval:
                self._send(KEEPALIVE)

    def _send(self, data: bytes) -> None:
        assert self.sock is not None
        with self._send_lock:
            self.sock.sendall(data)
            self._last_keepalive = time.monotonic()
        self.bytes_sent += len(data)

    def send_table(self, updates: Sequence[bytes], families: Sequence[str] | None = None) -> None:
        """Every UPDATE, then End-of-RIB per family; in chunks of whole messages,
        so a keepalive never lands inside a message."""
        chunk: list[bytes] = []
        size = 0
        self.first_update_at = time.monotonic()
        for msg in updates:
            chunk.append(msg)
            size += len(msg)
            if size >= CHUNK:
                self._send(b"".join(chunk))
                chunk, size = [], 0
        chunk += [end_of_rib(f) for f in (families or self.families)]
        self._send(b"".join(chunk))
        self.sent_at = time.monotonic()

    def close(self) -> None:
        self._stop.set()
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()


def router_address(k: int) -> str:
    """Router k's (k >= 1) source address: 127.0.0.(k + 1)."""
    if not 1 <= k <= 250:
        raise ValueError("routers are numbered 1..250")
    return f"127.0.0.{k + 1}"


def send_parallel(sessions: Sequence[Session], tables: Sequence[Sequence[bytes]]) -> float:
    """Send each session its table at the same moment (one thread each); the
    monotonic time of the first UPDATE. Raises if a session failed."""
    start = threading.Barrier(len(sessions) + 1)
    errors: list[str] = []

    def run(s: Session, table: Sequence[bytes]) -> None:
        start.wait()
        try:
            s.send_table(table)
        except OSError as e:
            errors.append(f"{s.local_address}: {e} {s.error}")

    threads = [
        threading.Thread(target=run, args=(s, t), daemon=True)
        for s, t in zip(sessions, tables, strict=True)
    ]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    start.wait()
    for t in threads:
        t.join()
    if errors:
        raise SessionError("; ".join(errors))
    return min((s.first_update_at for s in sessions), default=t0)


@dataclass(slots=True)
class Tables:
    """What to send: one UPDATE list per router, and how the sessions must be opened."""

    per_router: list[list[bytes]]
    families: tuple[str, ...]
    four_octet: bool
    asn: int
    prefixes: dict[str, int]  # family -> prefixes per router (announced, converged)


def mrt_tables(routers: int, limit: int | None = None, path: Path = MRT) -> Tables:
    """The real table for each router, router k with its own next hops."""
    t = mrt_updates(path, limit)
    per = [with_next_hops(t.updates, k) for k in range(1, routers + 1)]
    return Tables(per, t.families, t.four_octet, t.peer_as, {})


def synth_tables(routers: int, v4: int | None = None, v6: int | None = None) -> Tables:
    """The synthetic today-sized table (``bench.synth``), routers as ``bench.realistic``
    derives them (own next hops, ~30% other paths, local-pref and communities varying)."""
    from bench import realistic, synth

    kw = {k: v for k, v in (("v4", v4), ("v6", v6)) if v is not None}
    lines, _ = synth.generate(**kw)
    return realistic_tables(realistic.model_from_lines("synth", lines), routers)


def realistic_tables(model, routers: int) -> Tables:
    """Routers 1..``routers`` derived from ``model`` (a ``bench.realistic.Model``:
    own next hops, ~30% other paths, local-pref and communities varying), packed
    into UPDATEs as ``json_updates`` packs them."""
    from bench import realistic

    per: list[list[bytes]] = []
    families: tuple[str, ...] = ()
    for k in range(1, routers + 1):
        rl, _ = realistic.router_lines(model, k)
        msgs, families = json_updates(rl)
        per.append(msgs)
    counts = {f: model.family_prefixes(f) for f in families}
    return Tables(per, families, True, 64500, counts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.bgpsend",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--connect", required=True, help="HOST:PORT of the BGP listener (loopback)")
    p.add_argument("--routers", type=int, default=1)
    p.add_argument("--source", choices=("mrt", "synth"), default="mrt")
    p.add_argument("--limit", type=int, help="mrt: only the first N UPDATEs")
    p.add_argument("--v4", type=int, help="synth: IPv4 prefixes")
    p.add_argument("--v6", type=int, help="synth: IPv6 prefixes")
    args = p.parse_args(argv)
    host, _, port = args.connect.rpartition(":")
    tables = (
        mrt_tables(args.routers, args.limit)
        if args.source == "mrt"
        else synth_tables(args.routers, args.v4, args.v6)
    )
    sessions = [
        Session(
            (host, int(port)), router_address(k), tables.asn, tables.families, tables.four_octet
        )
        for k in range(1, args.routers + 1)
    ]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        for s in sessions:
            s.connect()
        print(json.dumps({"established": len(sessions)}), flush=True)
        t0 = send_parallel(sessions, tables.per_router)
        print(
            json.dumps(
                {
                    "first_update_at": t0,
                    "sent_at": [s.sent_at for s in sessions],
                    "bytes": [s.bytes_sent for s in sessions],
                    "updates": [len(t) for t in tables.per_router],
                }
            ),
            flush=True,
        )
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
        while not stop.wait(1.0):
            bad = [f"{s.local_address}: {s.error}" for s in sessions if s.error]
            if bad:
                print(json.dumps({"error": bad}), flush=True)
                return 1
    finally:
        for s in sessions:
            s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
