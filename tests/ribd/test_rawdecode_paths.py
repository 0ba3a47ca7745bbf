"""AS paths as the compiled decoder builds them (``ribd._rawattrs._segments``)
against the Python reference, on random and hostile paths.

Since stop 37 (decode7) a new path's tuples are made at their sizes and filled
in place (no list per segment), and the fused path's attribute row is made as
one tuple with its next hop (``attribute_row``). What must not change: the
events and errors of every body (the reference's), the numbers taken through
the interner's AS-number cache (the very objects in its slots), the tuples out
of the cyclic GC, and no reference gained or lost per path.
"""

from __future__ import annotations

import gc
import random
import socket
import sys

import pytest

from bench.fuzz_raw import attr, prefix, update
from ribd.attributes import AttributeInterner
from ribd.events import RoutesWithdrawn
from ribd.rawopen import SessionCaps
from ribd.rawupdate import PyUpdateDecoder, UpdateDecoder, UpdateError

_rawattrs = pytest.importorskip("ribd._rawattrs", reason="ribd._rawattrs is not built here")
_rawdecode = pytest.importorskip("ribd._rawdecode", reason="ribd._rawdecode is not built here")

PEER = "127.0.0.2"


def _path(rng: random.Random, size: int) -> bytes:
    """A random AS_PATH value: 0-6 segments of any kind and 1-255 ASes (mostly
    short), now and then cut or with a bad kind or count."""
    out = b""
    for _ in range(rng.choice((0, 1, 1, 1, 2, 3, 6))):
        kind = rng.choice((1, 2, 2, 2, 3, 4))
        count = rng.choice((1, 2, 3, 5, 8, rng.randint(1, 255)))
        top = 1 << (8 * size)
        asns = [rng.choice((0, 1, 65535, top - 1, 23456, rng.randrange(top))) for _ in range(count)]
        out += bytes((kind, count)) + b"".join(a.to_bytes(size, "big") for a in asns)
    roll = rng.random()
    if roll < 0.05 and out:
        out = out[: rng.randrange(len(out))]
    elif roll < 0.08 and out:
        out = bytes((rng.choice((0, 5, 255)),)) + out[1:]
    elif roll < 0.1 and out:
        out = out[:1] + b"\x00" + out[2:]
    return out


def _body(path: bytes) -> bytes:
    attrs = attr(1, b"\0") + attr(2, path) + attr(3, socket.inet_aton("192.0.2.1"))
    return update(attributes=attrs, nlri=prefix("10.1.0.0/16") + prefix("10.2.0.0/24"))


def _outcome(decoder, body: bytes, caps: SessionCaps):
    try:
        return decoder.decode(PEER, body, caps)
    except UpdateError as exc:  # (none here: a bad path is an attribute fault)
        return [("UpdateError", str(exc))]


@pytest.mark.parametrize("asn4", [True, False])
def test_random_and_hostile_paths_decode_as_the_reference(asn4: bool) -> None:
    rng = random.Random(3700 + asn4)
    caps = SessionCaps(asn4=asn4)
    interner = AttributeInterner()
    py, compiled = PyUpdateDecoder(interner), UpdateDecoder(interner)
    refused = 0
    for k in range(3000):
        if k % 500 == 0:
            _rawattrs.memo_counts(clear=True)  # new paths again: built, not found
        body = _body(_path(rng, 4 if asn4 else 2))
        want = _outcome(py, body, caps)
        got = _outcome(compiled, body, caps)
        assert got == want, body.hex()
        (event,) = got
        if type(event) is RoutesWithdrawn:  # a malformed path: treat-as-withdraw
            assert event.reason.startswith("bad attributes: AS_PATH")
            refused += 1
        else:
            path = event.attributes.as_path
            assert path == want[0].attributes.as_path
            held = [path, *path, *(s[1] for s in path)]
            assert not any(map(gc.is_tracked, held))
    assert 30 < refused < 1000


def test_a_new_paths_numbers_are_the_interners_and_no_reference_is_lost() -> None:
    """The fused path's decode (``load_update``) of new paths: each number the
    very object in the interner's cache slot, the row one tuple with its next
    hop, and the reference counts of the cached numbers unchanged by decoding
    (and dropping) the same paths again and again."""
    rng = random.Random(37)
    interner = AttributeInterner()
    bodies = [_body(_path(rng, 4)) for _ in range(300)]
    ints = interner._ints  # type: ignore[attr-defined]
    rows = []
    checked = 0
    for body in bodies:
        _rawattrs.memo_counts(clear=True)
        got = _rawdecode.load_update_test(body, True, interner)
        if got is None:
            continue
        _keys, row = got
        assert len(row) == 12 and row[2] == "192.0.2.1" and row[1] == "igp"
        numbers = [n for _kind, asns in row[0] for n in asns]
        slots = {n & (len(ints) - 1): n for n in numbers}
        if len(slots) == len(set(numbers)):  # (no slot taken twice by this path)
            checked += 1
            assert all(ints[n & (len(ints) - 1)] is n for n in numbers)
        rows.append(row)
    assert len(rows) > 200 and checked > 100
    sample = [n for row in rows[:50] for _kind, asns in row[0] for n in asns[:3]]
    before = [sys.getrefcount(n) for n in sample]
    for _ in range(3):
        for body in bodies:
            _rawattrs.memo_counts(clear=True)
            _rawdecode.load_update_test(body, True, interner)
    assert [sys.getrefcount(n) for n in sample] == before
