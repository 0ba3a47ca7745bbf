"""Raw BGP messages for tests and fuzzing: a tiny packer, and seeded hostile UPDATEs.

The packer writes BGP bytes from plain values (RFC 4271 / 4760 / 6793 / 7911
layouts spelled out here, independently of ``ribd.rawupdate``), and wraps
them in the ``packets`` API lines ExaBGP writes. ``fuzz_raw`` feeds mutated
UPDATE bodies (and mutated lines around them) through ``ExabgpParser.parse``
into a RIB: only ``FeedError`` may escape, and the RIB's snapshot must load.
"""

from __future__ import annotations

import random
import socket
import struct
import time

import orjson

from bench.fuzz import FUZZ_LIMITS, Report, _budget, check_snapshot_round_trip
from bench.fuzz_mutate import mutate_bytes, mutate_line
from ribd.parser import ExabgpParser, FeedError
from ribd.rib import Rib

PEER = "127.0.0.2"


def attr(code: int, value: bytes, flags: int | None = None) -> bytes:
    """One path attribute; well-known ones transitive, others optional (transitive when
    RFC says so), extended length when the value needs it."""
    if flags is None:
        flags = 0x40 if code in (1, 2, 3, 5, 6) else 0x80 if code in (4, 9, 10, 14, 15) else 0xC0
    if len(value) > 255:
        return struct.pack("!BBH", flags | 0x10, code, len(value)) + value
    return struct.pack("!BBB", flags, code, len(value)) + value


def prefix(text: str, path_id: int | None = None) -> bytes:
    address, _, length = text.partition("/")
    n = int(length)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    packed = socket.inet_pton(family, address)[: (n + 7) // 8]
    head = b"" if path_id is None else struct.pack("!I", path_id)
    return head + bytes([n]) + packed


def as_path(*segments: tuple[int, list[int]], size: int = 4) -> bytes:
    fmt = "!I" if size == 4 else "!H"
    return b"".join(
        bytes([kind, len(asns)]) + b"".join(struct.pack(fmt, a) for a in asns)
        for kind, asns in segments
    )


def update(withdrawn: bytes = b"", attributes: bytes = b"", nlri: bytes = b"") -> bytes:
    """An UPDATE body (after the 19-octet header)."""
    return (
        struct.pack("!H", len(withdrawn))
        + withdrawn
        + struct.pack("!H", len(attributes))
        + attributes
        + nlri
    )


def mp_reach(afi: int, next_hop: bytes, nlri: bytes, safi: int = 1) -> bytes:
    return attr(14, struct.pack("!HBB", afi, safi, len(next_hop)) + next_hop + b"\0" + nlri)


def mp_unreach(afi: int, nlri: bytes, safi: int = 1) -> bytes:
    return attr(15, struct.pack("!HB", afi, safi) + nlri)


def basic_attributes(path: list[int], next_hop: str = "192.0.2.1", size: int = 4) -> bytes:
    return (
        attr(1, b"\0")
        + attr(2, as_path((2, path), size=size) if path else b"")
        + (attr(3, socket.inet_aton(next_hop)) if next_hop else b"")
        + attr(5, struct.pack("!I", 100))
    )


def open_body(
    asn: int,
    asn4: bool = True,
    add_path: dict[tuple[int, int], int] | None = None,
    graceful_restart: bool = False,
) -> bytes:
    caps = b"\x01\x04\x00\x01\x00\x01\x01\x04\x00\x02\x00\x01"  # IPv4 and IPv6 unicast
    if graceful_restart:  # RFC 4724: restart time 120 s, IPv4 unicast forwarding kept
        caps += b"\x40\x06\x00\x78\x00\x01\x01\x80"
    if asn4:
        caps += b"\x41\x04" + struct.pack("!I", asn)
    if add_path:
        value = b"".join(struct.pack("!HBB", a, s, m) for (a, s), m in add_path.items())
        caps += bytes([69, len(value)]) + value
    params = bytes([2, len(caps)]) + caps
    my_as = asn if asn < 65536 else 23456
    return (
        struct.pack("!BHH4sB", 4, my_as, 180, socket.inet_aton("192.0.2.9"), len(params)) + params
    )


def packets_line(
    body: bytes, category: int = 2, direction: str = "receive", peer: str = PEER, time_: float = 1.5
) -> bytes:
    """The line ExaBGP 5's ``packets`` API writes for one message."""
    header = b"\xff" * 16 + struct.pack("!HB", 19 + len(body), category)
    message = {"category": category, "header": "0x" + header.hex().upper()}
    message["body"] = "0x" + body.hex().upper()
    return orjson.dumps(
        {
            "exabgp": "5.0.0",
            "time": time_,
            "host": "h",
            "pid": 1,
            "ppid": 1,
            "counter": 1,
            "type": "update" if category == 2 else "open" if category == 1 else "other",
            "neighbor": {
                "address": {"local": "127.0.0.1", "peer": peer},
                "asn": {"local": 64500, "peer": 64500},
                "direction": direction,
                "message": message,
            },
        }
    )


def exabgp_packets_line(
    body: bytes,
    category: int = 2,
    direction: str = "receive",
    peer: str = PEER,
    time_: float = 1796177918.705422,
    counter: int = 1,
    router_id: str | None = "127.0.0.1",
) -> bytes:
    """The line as ExaBGP 5.0.15 itself writes it (``reactor/api/response/json.py``,
    ``JSON.packets``: its spacing, the ``router-id`` where configured, ``host``, ``pid``,
    ``counter``, a ``time.time()`` float), where ``packets_line`` writes orjson's
    compact form. tests/ribd/test_rawline_shape.py checks it against ExaBGP's class."""
    header = b"\xff" * 16 + struct.pack("!HB", 19 + len(body), category)
    kind = "update" if category == 2 else "open" if category == 1 else "other"
    rid = f', "router-id": "{router_id}"' if router_id else ""
    return (
        f'{{ "exabgp": "5.0.0", "time": {time_!r}, "host" : "vm", "pid" : 22074, '
        f'"ppid" : 22072, "counter": {counter}, "type": "{kind}", "neighbor": {{ "address": '
        f'{{ "local": "127.0.0.1", "peer": "{peer}" }}, "asn": {{ "local": 64500, "peer": 64500 }}'
        f'{rid} , "direction": "{direction}", "message": {{ "category": {category}, '
        f'"header": "0x{header.hex().upper()}", "body": "0x{body.hex().upper()}" }}  }} }}'
    ).encode()


def session_lines(
    peer: str = PEER, asn4: bool = True, add_path: bool = False, graceful_restart: bool = False
) -> list[bytes]:
    """Our OPEN and the router's, as the packets API reports them."""
    families = {(1, 1): 1, (2, 1): 1} if add_path else None
    theirs = {(1, 1): 2, (2, 1): 2} if add_path else None
    return [
        packets_line(open_body(64500, True, families), 1, "send", peer),
        packets_line(open_body(64500, asn4, theirs, graceful_restart), 1, "receive", peer),
    ]


def seed_updates() -> list[bytes]:
    """Valid UPDATE bodies covering every attribute and NLRI kind the decoder reads."""
    v6_hop = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    rich = (
        basic_attributes([64496, 64511])
        + attr(4, struct.pack("!I", 7))
        + attr(6, b"")
        + attr(7, struct.pack("!I", 64496) + socket.inet_aton("192.0.2.7"))
        + attr(8, struct.pack("!II", (64496 << 16) | 1, (64496 << 16) | 2))
        + attr(9, socket.inet_aton("192.0.2.8"))
        + attr(10, socket.inet_aton("192.0.2.9") * 2)
        + attr(16, bytes([0, 2]) + struct.pack("!HI", 64496, 5))
        + attr(32, struct.pack("!III", 64496, 1, 2))
    )
    return [
        update(attributes=rich, nlri=prefix("198.51.100.0/24") + prefix("10.0.0.0/8")),
        update(withdrawn=prefix("203.0.113.0/24") + prefix("0.0.0.0/0")),
        update(
            attributes=basic_attributes([64496], next_hop="")
            + mp_reach(2, v6_hop, prefix("2001:db8:1::/48") + prefix("2001:db8::/32"))
        ),
        update(attributes=mp_unreach(2, prefix("2001:db8:2::/48"))),
        update(
            attributes=basic_attributes([64496, 23456], size=4)
            + attr(17, as_path((2, [64496, 4200000000])))
        ),
        update(attributes=basic_attributes([]), nlri=prefix("192.0.2.0/25")),
        b"\0\0\0\0",
        update(attributes=mp_unreach(2, b"")),
    ]


def fuzz_raw(
    seed: int, count: int | None = None, seconds: float | None = None, hang: float = float("inf")
) -> Report:
    """Hostile raw UPDATEs (and lines) through ``ExabgpParser.parse`` into a RIB."""
    rng = random.Random(seed)
    rib = Rib()
    rib.set_prefix_limits(FUZZ_LIMITS)  # (the limit's path gets hostile input too)
    parser = ExabgpParser(rib.interner)
    for line in session_lines() + session_lines("2001:db8::2", asn4=False, add_path=True):
        rib.apply_many(parser.parse(line))
    bodies = seed_updates()
    report = Report("raw")
    started = time.perf_counter()
    for _ in _budget(count, seconds):
        peer = rng.choice((PEER, "2001:db8::2"))
        if rng.random() < 0.05:  # a mangled OPEN (either side), a refresh, a notification
            category = rng.choice((1, 1, 3, 5))
            base = {1: open_body(64500, True, {(1, 1): 3}), 3: b"\x06\x02bye", 5: b"\0\1\1\1"}
            line = packets_line(
                mutate_bytes(rng, base[category]), category, rng.choice(("send", "receive")), peer
            )
        else:  # orjson's compact form, or ExaBGP's own (the scan reads it in its key order)
            form = packets_line if rng.random() < 0.5 else exabgp_packets_line
            line = form(mutate_bytes(rng, rng.choice(bodies)), peer=peer)
        if rng.random() < 0.1:
            line = mutate_line(rng, line)

        def call(line: bytes = line) -> bool:
            try:
                events = parser.parse(line)
            except FeedError:
                return True
            rib.apply_many(events)
            return False

        report.run(line, call, hang)
    report.seconds = time.perf_counter() - started
    check_snapshot_round_trip(rib, report)
    return report
