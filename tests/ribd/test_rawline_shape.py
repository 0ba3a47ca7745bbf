"""The scan's reading of ExaBGP's own shape (``ribd._rawline._shaped``) and its value
readings (``ribd._rawhex``) against the whole walk and the references.

``_shaped`` reads a packets line in the key order ExaBGP 5 writes, and must
never read a line otherwise than the generic walk (``_scan``) does: every line
it takes, the walk takes to the same values (kinds and places), and a line it
refuses goes to the walk. ``unhex`` must give ``bytes.fromhex``'s octets (None
where that fails or the count is odd), and ``number_value`` ``float()`` of the
token, bit for bit. The lines' events against the reference parser (orjson)
are test_rawline.py's, run here again with the shape turned off and on.
"""

from __future__ import annotations

import math
import random
import re
import struct

import pytest

from bench.fuzz_mutate import mutate_bytes, mutate_line
from bench.fuzz_raw import PEER, exabgp_packets_line, packets_line, seed_updates

_rawline = pytest.importorskip("ribd._rawline", reason="ribd._rawline is not built here")
_rawhex = pytest.importorskip("ribd._rawhex", reason="ribd._rawhex is not built here")


def test_exabgp_packets_line_is_what_exabgp_writes() -> None:
    """bench.fuzz_raw's line against ExaBGP 5.0.15's own encoder (json.py's
    ``JSON.packets``), the host, pids and time put in as it wrote them."""
    json_mod = pytest.importorskip("exabgp.reactor.api.response.json")

    class Neighbor(dict):
        uid = "n"

    body = bytes(range(40))
    header = b"\xff" * 16 + struct.pack("!HB", 19 + len(body), 2)
    for rid in ("127.0.0.1", None):
        neighbor = Neighbor(
            {
                "local-address": "127.0.0.1",
                "peer-address": PEER,
                "local-as": 64500,
                "peer-as": 64500,
                "router-id": rid,
            }
        )
        encoder = json_mod.JSON("5.0.0")
        encoder.time = lambda _now: 1796177918.705422
        encoder._count = {}  # (a class-wide dict: every line its neighbor's first)
        theirs = encoder.packets(neighbor, "receive", 2, None, header, body)
        ours = exabgp_packets_line(body, router_id=rid).decode()
        # the host, pid and ppid of this process, not the line's
        same = re.compile(r'"(host|pid|ppid)" : ("[^"]*"|\d+)')
        theirs, ours = (same.sub(r'"\1" : X', text) for text in (theirs, ours))
        assert ours == theirs


def lines_of_every_form() -> list[bytes]:
    lines = []
    for k, body in enumerate(seed_updates()):
        for peer in (PEER, "2001:db8::2"):
            lines.append(packets_line(body, peer=peer))
            lines.append(exabgp_packets_line(body, peer=peer, counter=k))
            lines.append(exabgp_packets_line(body, peer=peer, router_id=None))
    return lines


def test_the_shape_reads_exabgps_lines_and_orjsons() -> None:
    for line in lines_of_every_form():
        shaped = _rawline.scan_fields(line, True)
        assert shaped is not None, line[:200]
        assert shaped == _rawline.scan_fields(line, False)


def test_the_shape_never_reads_a_line_otherwise_than_the_walk() -> None:
    """Random mutations of both forms (JSON-aware and octet-level): wherever the
    shape takes a line, the walk takes it to the same values."""
    rng = random.Random(20261202)
    base = lines_of_every_form()
    taken = refused_by_shape_only = 0
    for _ in range(30000):
        line = rng.choice(base)
        roll = rng.random()
        if roll < 0.4:
            line = mutate_bytes(rng, line)
        elif roll < 0.7:
            line = mutate_line(rng, line)
        elif roll < 0.85:  # white space where JSON allows it, or not
            at = rng.randrange(len(line))
            line = line[:at] + rng.choice((b" ", b"\t", b"\r\n", b"  ")) + line[at:]
        shaped = _rawline.scan_fields(line, True)
        walked = _rawline.scan_fields(line, False)
        if shaped is not None:
            taken += 1
            assert shaped == walked, line[:300]
        elif walked is not None:
            refused_by_shape_only += 1
    assert taken > 3000 and refused_by_shape_only > 100


def test_what_the_shape_refuses_is_left_to_the_walk() -> None:
    """Another key order, a key more, a "negotiated" object, a repeated key: the
    shape refuses; the walk decides (takes the first three, refuses the last)."""
    good = exabgp_packets_line(seed_updates()[0])
    moved = good.replace(b'"host" : "vm", ', b"").replace(b'"ppid"', b'"host" : "vm", "ppid"')
    extra = good.replace(b'"type": "update", ', b'"type": "update", "x": [1, {"y": null}], ')
    negotiated = good.replace(b" }  } }", b' }, "negotiated": {"asn4": true}  } }')
    twice = good.replace(b'"category": 2, ', b'"category": 2, "category": 2, ')
    for line in (moved, extra, negotiated, twice):
        assert line != good
        assert _rawline.scan_fields(line, True) is None
    for line in (moved, extra, negotiated):
        assert _rawline.scan_fields(line, False) is not None
    assert _rawline.scan_fields(twice, False) is None


@pytest.mark.parametrize("shape", [True, False])
def test_the_rawline_suite_passes_with_the_shape_on_and_off(shape: bool) -> None:
    from tests.ribd import test_rawline as suite

    was = _rawline.use_shape(shape)
    try:
        suite.test_well_formed_lines_take_the_fast_path_and_give_the_same_events()
        suite.test_the_fast_path_refuses_what_it_must_and_the_reference_decides()
        suite.test_lines_it_may_take_despite_odd_form()
        suite.test_time_stamps_read_as_orjson_reads_them()
        suite.test_random_hostile_lines_alike()
    finally:
        _rawline.use_shape(was)


def test_unhex_is_fromhex() -> None:
    rng = random.Random(5)
    digits = "0123456789abcdefABCDEF"
    for _ in range(20000):
        size = rng.choice((0, 1, 2, 3, 7, 8, 9, 15, 16, 17, rng.randrange(400)))
        text = "".join(rng.choice(digits) for _ in range(size))
        if rng.random() < 0.4 and text:
            at = rng.randrange(len(text))
            text = text[:at] + chr(rng.randrange(256)) + text[at + 1 :]
        raw = text.encode("latin-1")
        try:
            want = bytes.fromhex(text) if len(text) % 2 == 0 and " " not in text else None
        except ValueError:
            want = None
        if want is not None and any(c not in digits for c in text):
            want = None  # fromhex takes more than hex digits (white space): the scan does not
        assert _rawhex.unhex_text(raw) == want, raw


def number_texts(rng: random.Random) -> list[str]:
    texts = ["0", "-0", "0.0", "-0.0", "1", "1.5", "9007199254740993", "9007199254740995"]
    texts += ["1796177918.705422", "1796177973.7487893", "99999999999999999", "0.1", "0.3"]
    texts += ["4503599627370497.5", "9007199254740992.5", "1.00000000000000011102230246251565"[:18]]
    for _ in range(200000):
        digits = rng.randint(1, 17)
        text = str(rng.randrange(10**digits))
        if rng.random() < 0.8:
            point = rng.randint(1, len(text))
            text = text[:point] + "." + (text[point:] or "0")
            text = text.lstrip("0") or "0"
            if text.startswith("."):
                text = "0" + text
        if rng.random() < 0.2:
            text = "-" + text
        texts.append(text)
    # time.time() reprs, 16 and 17 digits, and decimal neighbours of halfway points
    for _ in range(50000):
        texts.append(repr(rng.uniform(1.6e9, 2.1e9)))
        x = rng.uniform(1, 2**53)
        mid = (x + math.nextafter(x, math.inf)) / 2
        texts.append(f"{mid:.17g}" if "e" not in f"{mid:.17g}" else "1.5")
    return [t for t in texts if sum(c.isdigit() for c in t) <= 17]


def test_number_value_is_float_bit_for_bit() -> None:
    for text in number_texts(random.Random(7)):
        got = _rawhex.number_text(text.encode())
        want = float(text)
        if text.lstrip("-").replace(".", "").strip("0") == "" and "." not in text:
            want = 0.0  # an integer's zero has no sign (as <double> of a C integer)
        assert struct.pack("<d", got) == struct.pack("<d", want), text
