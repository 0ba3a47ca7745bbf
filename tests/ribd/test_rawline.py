"""The compiled fast path for ``packets`` UPDATE lines (``ribd._rawline``) against the
reference (orjson, ``RawMessages.events``, ``a2b_hex``).

Two parsers share one interner, one with the fast path and one without
(``parser.fast = None``): every line must give the same events (the same set
objects) or the same FeedError (class and text). Lines the fast path must not
take are listed, and a test fails if it takes any of them: it is narrow on
purpose, and leaves every doubtful line to the reference, which alone words
the errors. Through two real FeedServers (Unix sockets) the counters and the
RIBs come out the same.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

import orjson
import pytest

from bench.fuzz_mutate import mutate_bytes, mutate_line
from bench.fuzz_raw import (
    PEER,
    basic_attributes,
    packets_line,
    prefix,
    seed_updates,
    session_lines,
    update,
)
from ribd.events import UpdateTime
from ribd.feed import FeedServer
from ribd.parser import ExabgpParser, FeedError
from ribd.rawlines import MAX_BODY_HEX, raw_scanner
from ribd.rib import Rib
from ribd.speaker import wait_until

MRT = Path(__file__).resolve().parents[3] / "shared" / "data" / "bgp"
MRT = MRT / "pch-as3856-fulltable-2015.mrt.gz"
PEER6 = "2001:db8::2"
BODY = update(attributes=basic_attributes([64496, 64511]), nlri=prefix("198.51.100.0/24"))

pytestmark = pytest.mark.skipif(
    raw_scanner(ExabgpParser().raw) is None, reason="ribd._rawline is not built here"
)


def exabgp_line(body: bytes, peer: str = PEER, stamp: str = "1700000000.123456") -> bytes:
    """The line as ExaBGP 5.0.15 writes it (reactor/api/response/json.py: its spacing,
    upper-case hex with 0x, ``host``/``pid``/``counter``), not as orjson would."""
    header = "0x" + ("FF" * 16) + f"{19 + len(body):04X}02"
    return (
        f'{{ "exabgp": "5.0.0", "time": {stamp}, "host" : "box", "pid" : 41, "ppid" : 1, '
        f'"counter": 7, "type": "update", "neighbor": {{ "address": {{ "local": "127.0.0.1", '
        f'"peer": "{peer}" }}, "asn": {{ "local": 64500, "peer": 64500 }} , '
        f'"direction": "receive", "message": {{ "category": 2, "header": "{header}", '
        f'"body": "0x{body.hex().upper()}" }}  }} }}'
    ).encode()


def parsers() -> tuple[ExabgpParser, ExabgpParser]:
    """(fast, reference), one interner, both sessions of PEER and PEER6 open."""
    fast = ExabgpParser()
    reference = ExabgpParser(fast.interner)
    reference.fast = None
    assert fast.fast is not None
    for line in session_lines() + session_lines(PEER6, asn4=False, add_path=True):
        fast.parse(line)
        reference.parse(line)
    return fast, reference


def outcome(parser: ExabgpParser, line: bytes):
    try:
        return parser.parse(line)
    except FeedError as exc:
        return (type(exc).__name__, str(exc))


def assert_alike(lines: list[bytes]) -> int:
    """Every line alike through both parsers; returns how many the fast path took."""
    fast, reference = parsers()
    taken = 0
    for line in lines:
        taken += fast.fast(line) is not None  # its own call: what parse() would do
        assert outcome(fast, line) == outcome(reference, line), line[:300]
    return taken


def test_well_formed_lines_take_the_fast_path_and_give_the_same_events() -> None:
    lines = [packets_line(b, peer=p) for b in seed_updates() for p in (PEER, PEER6)]
    lines += [exabgp_line(b, peer=p) for b in seed_updates() for p in (PEER, PEER6)]
    taken = assert_alike(lines)
    fast, _ = parsers()
    refused = [ln for ln in lines if fast.fast(ln) is None]
    # Only UPDATEs the decoder refuses (UpdateError) are left to the reference here.
    for line in refused:
        with pytest.raises(FeedError, match="malformed raw UPDATE"):
            fast.parse(line)
    assert taken == len(lines) - len(refused) > len(lines) * 0.8
    stamp, routes = fast.parse(exabgp_line(BODY))
    assert stamp == UpdateTime(PEER, 1700000000.123456)
    assert routes.prefixes == ("198.51.100.0/24",)


def must_refuse() -> list[bytes]:
    """Lines the fast path must leave to the reference: each is malformed, or its
    meaning rests on something this path does not decide (a repeated key, an
    escape, a number orjson might read otherwise)."""
    good = packets_line(BODY)
    peer = f'"peer":"{PEER}"'.encode()
    body = f'"body":"0x{BODY.hex().upper()}"'.encode()
    other = update(attributes=basic_attributes([64496, 1]), nlri=prefix("203.0.113.0/24"))
    other_body = f'"body":"0x{other.hex().upper()}"'.encode()
    swaps = [
        # the values it reads, of the wrong type or content
        (peer, b'"peer":5'),
        (peer, b'"peer":null'),
        (peer, b'"peer":"not an address"'),
        (peer, b'"peer":"127.0.0.99"'),  # no OPEN of that session seen
        (peer, b'"peer":"127.0.0.2\\u0000"'),
        (peer, '"peer":"127.0.0.2é"'.encode()),
        (b'"category":2', b'"category":"2"'),
        (b'"category":2', b'"category":2.0'),
        (b'"category":2', b'"category":02'),
        (b'"category":2', b'"category":-2'),
        (b'"category":2', b'"category":2e0'),
        (b'"category":2', b'"category":4'),
        (b'"category":2', b'"category":true'),
        (b'"direction":"receive"', b'"direction":"send"'),
        (b'"direction":"receive"', b'"direction":5'),
        (b'"direction":"receive",', b""),
        (body, body[:-1] + b'F"'),  # odd hex
        (body, body[:-3] + b'ZZ"'),
        (body, b'"body":"0x"'),
        (body, b'"body":""'),
        (body, b'"body":1234'),
        (body, b'"body":["0x00"]'),
        (body, b'"body":"0x' + b"00" * (MAX_BODY_HEX // 2) + b'"'),
        (body, b'"body":"\\u0030x' + body[10:]),
        (body, b'"body":"0x0000FFFF"'),  # the decoder's UpdateError
        (body, body[:12] + b'\\"' + body[12:]),  # an escaped quote inside the hex
        (body, body[:12] + b"\\\\" + body[12:]),
        (body, body[:12] + b"\x01" + body[12:]),
        (body, body[:12] + "é".encode() + body[12:]),
        (b'"time":1.5', b'"time":1e9'),
        (b'"time":1.5', b'"time":123456789012345678'),  # 18 digits
        (b'"time":1.5', b'"time":1.23456789012345678'),
        (b'"time":1.5', b'"time":NaN'),
        (b'"time":1.5', b'"time":-'),
        # the keys it reads, twice: orjson keeps the last
        (body, body + b"," + other_body),
        (peer, peer + b',"peer":"127.0.0.3"'),
        (b'"category":2', b'"category":2,"category":2'),
        (b'"direction":"receive"', b'"direction":"receive","direction":"receive"'),
        (b'"time":1.5', b'"time":1.5,"time":1.5'),
        (b'"message":{', b'"message":{},"message":{'),
        (b'"address":{', b'"address":{},"address":{'),
        (b'"neighbor":{', b'"neighbor":{},"neighbor":{'),
        # JSON it does not read itself
        (b'"host":"h"', b'"host":"a\\"b"'),
        (b'"host":"h"', '"host":"hé"'.encode()),
        (b'"host":"h"', b'"host":"h\xff"'),
        (b'"host":"h"', b'"host":"h\tx"'),
        (b'"host":"h"', b'"host":' + b"[" * 17 + b"]" * 17),
        (b'"host":"h"', b'"host":' + b"[" * 600 + b"]" * 600),
        (b'"host":"h"', b'"host":1e5'),
        (b'"host":"h"', b'"host":Infinity'),
        (b'"host":"h"', b'"host":tru'),
        (b'"host":"h"', b'"host":"h",'),
        (b'"pid":1', b'"pid":99999999999999999999999'),
        (b'"pid":1', b'"pid":01'),
        (b'"pid":1', b"'pid':1"),
    ]
    lines = []
    for old, new in swaps:
        assert old in good, old
        lines.append(good.replace(old, new, 1))
    lines += [
        good + b"x",
        good + b"}",
        b"[" + good + b"]",
        b"\xef\xbb\xbf" + good,  # a UTF-8 byte order mark
        good[:-1],
        b'"category"',
    ]
    lines += [good[:n] for n in range(0, len(good), 7)]
    return lines


def test_the_fast_path_refuses_what_it_must_and_the_reference_decides() -> None:
    fast, _ = parsers()
    for line in must_refuse():
        assert fast.fast(line) is None, line[:300]
    assert assert_alike(must_refuse()) == 0


def test_lines_it_may_take_despite_odd_form() -> None:
    """Valid JSON around the same UPDATE: taken, and the same events as the reference."""
    good = packets_line(BODY)
    variants = [
        good + b"  \r",
        b" \t" + good,
        good.replace(b'"host":"h"', b'"host":"h","host":{"a":[1,-2.5,true,false,null,[]]}'),
        good.replace(b'"time":1.5', b'"time":0'),
        good.replace(b'"time":1.5', b'"time":-0.0'),
        good.replace(b'"time":1.5', b'"time":-3'),  # out of range: no UpdateTime
        good.replace(b'"time":1.5', b'"time":253402300800'),
        good.replace(b'"time":1.5', b'"time":"1.5"'),
        good.replace(b'"time":1.5,', b""),
        good.replace(b'"time":1.5', b'"time":1700000001.2345678'),
        good.replace(b"0x" + BODY.hex().upper().encode(), BODY.hex().encode()),  # no 0x, lower
        good.replace(b'"pid":1', b'"pid":{}'),
    ]
    assert assert_alike(variants) == len(variants)


def test_time_stamps_read_as_orjson_reads_them() -> None:
    """Numbers of up to 17 digits, integer and fraction, read to the same float as
    orjson's (correctly rounded both), in range or not."""
    rng = random.Random(3)
    good = packets_line(BODY)
    lines = []
    for _ in range(2000):
        digits = rng.randint(1, 17)
        text = str(rng.randrange(10**digits))
        if rng.random() < 0.7:
            point = rng.randint(1, len(text))
            text = text[:point] + "." + (text[point:] or "0")
            text = text.lstrip("0") or "0"
            if text.startswith("."):
                text = "0" + text
        if rng.random() < 0.1:
            text = "-" + text
        lines.append(good.replace(b'"time":1.5', b'"time":' + text.encode()))
    assert assert_alike(lines) > 1500


def test_random_hostile_lines_alike() -> None:
    rng = random.Random(20261201)
    bodies = seed_updates()
    lines = []
    for _ in range(3000):
        body = rng.choice(bodies)
        if rng.random() < 0.3:
            body = mutate_bytes(rng, body)
        peer = rng.choice((PEER, PEER6))
        line = rng.choice((packets_line, exabgp_line))(body, peer=peer)
        roll = rng.random()
        if roll < 0.3:
            line = mutate_line(rng, line)
        elif roll < 0.5:
            line = mutate_bytes(rng, line)
        lines.append(line)
    taken = assert_alike(lines)
    assert 0 < taken < len(lines)


def test_json_api_lines_are_never_taken() -> None:
    """The JSON API's lines (no packets line mark, or a "category" key elsewhere)
    return None at once and go on to the JSON parser."""
    fast, _ = parsers()
    update = {
        "exabgp": "5.0.0",
        "time": 1.5,
        "type": "update",
        "neighbor": {
            "address": {"local": "127.0.0.1", "peer": PEER},
            "direction": "receive",
            "message": {"update": {"announce": {"ipv4 unicast": {"192.0.2.1": []}}}},
        },
    }
    assert fast.fast(orjson.dumps(update)) is None
    update["neighbor"]["category"] = 2  # the mark, in the wrong place
    assert fast.fast(orjson.dumps(update)) is None
    update["neighbor"]["message"]["category"] = 2  # no body
    assert fast.fast(orjson.dumps(update)) is None
    line = orjson.dumps(update)
    assert (
        outcome(fast, line)
        == outcome(parsers()[1], line)
        == (
            "FeedError",
            f"malformed raw UPDATE from {PEER}: "
            "UPDATE of 0 octets is shorter than its two length fields",
        )
    )


@pytest.mark.fulltable
@pytest.mark.skipif(not MRT.exists(), reason="../shared/data is absent")
def test_every_update_of_the_real_table_takes_the_fast_path_alike() -> None:
    from bench.bgpsend import mrt_updates, with_next_hops

    table = mrt_updates(MRT).updates
    lines = [packets_line(m[19:], peer=PEER, time_=1.0) for m in table]
    lines += [exabgp_line(m[19:]) for m in with_next_hops(table, 2)[::5]]  # ExaBGP's spacing
    assert assert_alike(lines) == len(lines) > 89_000


def feed_stats(server: FeedServer) -> dict:
    stats = server.stats()
    return {k: stats[k] for k in ("lines", "bad_lines", "bad_lines_by_category", "updates")} | {
        k: stats[k] for k in ("treated_as_withdraw", "prefixes_announced", "prefixes_withdrawn")
    }


def test_two_feeds_count_alike_and_hold_the_same_routes(short_tmp: Path) -> None:
    """Real FeedServers over Unix sockets, the fast path on in one: the same counters
    (bad lines by category, treat-as-withdraw, prefixes) and the same RIB."""
    rng = random.Random(11)
    lines = session_lines() + session_lines(PEER6, asn4=False, add_path=True)
    lines += must_refuse()[3:]  # not the unseen session: the feed resets it (no relay here)
    for _ in range(800):
        line = packets_line(mutate_bytes(rng, rng.choice(seed_updates())), peer=PEER)
        lines.append(mutate_line(rng, line) if rng.random() < 0.2 else line)
    lines = [ln for ln in lines if ln and b"\n" not in ln and b"127.0.0.99" not in ln]
    servers = []
    for fast in (True, False):
        rib = Rib()
        parser = ExabgpParser(rib.interner)
        if not fast:
            parser.fast = None
        server = FeedServer(str(short_tmp / f"feed{int(fast)}.sock"), rib, parser)
        server.start()
        servers.append(server)
    try:
        for server in servers:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(server.socket_path)
                s.sendall(b"\n".join(lines) + b"\n")
        for server in servers:
            wait_until(lambda s=server: s.stats()["lines"] == len(lines), 20, what="all lines")
        with_fast, reference = (feed_stats(s) for s in servers)
        assert with_fast == reference
        assert reference["bad_lines"] > 50 and reference["treated_as_withdraw"] > 0
        ribs = [s.rib for s in servers]
        for family in ("ipv4 unicast", "ipv6 unicast"):
            got = [
                sorted((m.prefix, m.path_id, m.attributes.as_path) for m in r.routes(PEER, family))
                for r in ribs
            ]
            assert got[0] == got[1]
    finally:
        for server in servers:
            server.stop()
