"""A packets line read against the form of an earlier line (``ribd/_rawform.pxi``)
against ``shaped`` and the generic walk.

Since stop 37 (decode7) ``ribd._rawline.line_update`` first tries the forms of
lines ``shaped`` read before: their fixed octets compared where they lie, their
number and string values read with the walk's own functions. A form must never
read a line otherwise than ``shaped`` (and the walk) do: every line a form
takes, both take to the same values (kinds and places); a line no form takes
goes to ``shaped`` as before. The events of whole lines against the reference
parser (orjson) are test_rawline.py's, run here again with the forms on and off.
"""

from __future__ import annotations

import random

import pytest

from bench.fuzz_mutate import mutate_bytes, mutate_line
from bench.fuzz_raw import PEER, exabgp_packets_line, packets_line, seed_updates

_rawline = pytest.importorskip("ribd._rawline", reason="ribd._rawline is not built here")


@pytest.fixture(autouse=True)
def _fresh_forms():
    """Each test starts with no form kept and leaves the forms on."""
    _rawline.forms(False)
    _rawline.forms(True)
    yield
    _rawline.forms(False)
    _rawline.forms(True)


def _lines(rng: random.Random, count: int) -> list[bytes]:
    """Lines of the forms the feed meets: orjson's and ExaBGP's, with and without
    a router id, IPv4 and IPv6 peers, their values varying line to line."""
    bodies = seed_updates()
    out = []
    for _k in range(count):
        body = rng.choice(bodies)
        peer = rng.choice((PEER, "10.9.8.7", "2001:db8::2", "192.0.2.200"))
        roll = rng.random()
        if roll < 0.4:
            out.append(
                packets_line(body, peer=peer, time_=rng.choice((1.0, 17, 1796177918.705422)))
            )
        else:
            out.append(
                exabgp_packets_line(
                    body,
                    peer=peer,
                    counter=rng.randrange(1, 10**7),
                    router_id=None if roll < 0.6 else rng.choice(("127.0.0.1", "10.255.0.1")),
                )
            )
    return out


def test_a_line_read_by_the_shape_gives_a_form_that_takes_the_next_lines() -> None:
    """Fails before stop 37 (no forms): after the first line of each form, the
    next lines of that form are read by it, to ``shaped``'s and the walk's values."""
    rng = random.Random(37)
    lines = _lines(rng, 3000)
    taken = 0
    for line in lines:
        shaped = _rawline.scan_fields(line, True)
        assert shaped is not None and shaped == _rawline.scan_fields(line, False)
        got = _rawline.form_fields(line)
        if got is None:
            assert _rawline.form_fields(line, keep=True) == shaped
        else:
            taken += 1
            assert got == shaped, line[:300]
        assert 1 <= _rawline.forms() <= 4
    assert taken > 2900


def _hostile_variants(line: bytes) -> list[bytes]:
    """Values of other kinds and forms where a form has its holes, and octets
    changed where it has fixed ones."""
    out = []
    swaps = [
        (b'"counter": ', b'"counter": "7"'),
        (b'"pid" : ', b'"pid" : true'),
        (b'"time": ', b'"time": "now"'),
        (b'"time": ', b'"time": 1.5e9'),
        (b'"time": ', b'"time": 123456789012345678'),
        (b'"time": ', b'"time": -0.5'),
        (b'"time": ', b'"time": 01'),
        (b'"time": ', b'"time": 1.'),
        (b'"time": ', b'"time": -'),
    ]
    for key, replacement in swaps:
        at = line.find(key)
        if at >= 0:
            stop = line.find(b",", at)
            out.append(line[:at] + replacement + line[stop:])
    for old, new in (
        (b'"peer": "', b'"peer": "\\u0031'),
        (b'"peer": "', b'"peer": "\x00'),
        (b'"peer": "', b'"peer": "\xc3\xa9'),
        (b'"host" : "', b'"host" : "\\"'),
        (b'"receive"', b'"send"'),
        (b'"receive"', b'"receivE"'),
        (b'"category": 2', b'"category": 3'),
        (b'"category": 2', b'"category": 2.0'),
        (b'"category": 2', b'"category": 20'),
        (b'"body": "', b'"body": "\\"'),
        (b'"body": "', b'"body": "ab\\'),
        (b'"header": "', b'"header": "\t'),
        (b'"asn": {', b'"asn": [{'),
        (b'"type": "update"', b'"type": ["update"]'),
    ):
        if old in line:
            out.append(line.replace(old, new, 1))
    out += [line + b" ", line + b"x", line[:-1], line[:-2] + b"}", b" " + line, line + b"\n"]
    out += [line[:k] for k in range(0, len(line), 37)]
    return out


def test_a_form_never_reads_a_line_otherwise_than_the_shape() -> None:
    """Random mutations (JSON-aware and octet-level) and hostile variants of lines
    whose forms are kept: wherever a form takes a line, ``shaped`` and the walk
    take it to the same values; nothing a form takes is refused by them."""
    rng = random.Random(20261203)
    base = _lines(rng, 200)
    for line in base:
        _rawline.form_fields(line, keep=True)
    taken = changed = 0
    candidates = [v for line in base[:40] for v in _hostile_variants(line)]
    for _ in range(40000):
        line = original = rng.choice(base)
        roll = rng.random()
        if roll < 0.35:
            line = mutate_bytes(rng, line)
        elif roll < 0.7:
            line = mutate_line(rng, line)
        elif roll < 0.8:
            at = rng.randrange(len(line))
            line = line[:at] + rng.choice((b" ", b"\t", b"0", b'"', b"-", b".", b"9")) + line[at:]
        elif roll < 0.9:
            line = rng.choice(candidates)
        got = _rawline.form_fields(line)
        if got is not None:
            taken += 1
            changed += line != original
            assert got == _rawline.scan_fields(line, True), line[:300]
            assert got == _rawline.scan_fields(line, False), line[:300]
    assert taken > 5000 and changed > 1000
    for line in candidates:
        got = _rawline.form_fields(line)
        if got is not None:
            assert got == _rawline.scan_fields(line, True) == _rawline.scan_fields(line, False)


def test_more_forms_than_kept_still_read_alike() -> None:
    """Lines cycling over more forms than are kept: each read as ``shaped`` reads
    it, at most four forms kept."""
    bodies = seed_updates()
    forms = [
        packets_line(bodies[0]),
        exabgp_packets_line(bodies[0]),
        exabgp_packets_line(bodies[0], router_id=None),
        packets_line(bodies[0]).replace(b",", b", "),
        packets_line(bodies[0]).replace(b":", b" :"),
        exabgp_packets_line(bodies[0]).replace(b"  ", b" "),
    ]
    for line in forms * 5:
        line = line.replace(b"5.0.0", b"5.0.1")
        # (the line's own fields through line_update's order: a form, else the shape)
        got = _rawline.form_fields(line, keep=True)
        assert got == _rawline.scan_fields(line, True) == _rawline.scan_fields(line, False)
        assert _rawline.forms() <= 4


@pytest.mark.parametrize("on", [True, False])
def test_the_rawline_suite_passes_with_the_forms_on_and_off(on: bool) -> None:
    from tests.ribd import test_rawline as suite

    _rawline.forms(on)
    suite.test_well_formed_lines_take_the_fast_path_and_give_the_same_events()
    suite.test_the_fast_path_refuses_what_it_must_and_the_reference_decides()
    suite.test_lines_it_may_take_despite_odd_form()
    suite.test_time_stamps_read_as_orjson_reads_them()
    suite.test_random_hostile_lines_alike()
    assert (_rawline.forms() > 0) == on
