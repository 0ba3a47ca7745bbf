"""The compiled decoder's memos (``ribd/_rawattrs_memo.pxi``) against their
reference (``ribd.decoder_memo``), and what the decoders hand through them.

A memo must hand, for the same octets, the very value decoded before, and
never a value for other octets: slot by slot as the reference, on random keys,
keys that take one slot, hostile lengths; the decoders' events stay the
reference decoder's (tests/ribd/test_raw_compiled.py compares them on random
and hostile bodies too) with the memo's slots taken by colliding values
between them.
"""

from __future__ import annotations

import random
import socket
import struct
import sys

import pytest

from bench.fuzz_raw import as_path, attr, basic_attributes, mp_reach, prefix, update
from ribd import rawupdate
from ribd.attributes import AttributeInterner
from ribd.decoder_memo import MEMO_BITS, MEMO_KINDS, DirectMemo, memo_hash, memos
from ribd.rawopen import SessionCaps
from ribd.rawupdate import PyUpdateDecoder, UpdateDecoder, UpdateError

pytestmark = pytest.mark.skipif(not rawupdate.COMPILED, reason="ribd._rawdecode is not built here")
PEER = "127.0.0.2"
CAPS = SessionCaps(asn4=True)


def _compiled():
    from ribd import _rawattrs

    return _rawattrs


def _keys(rng: random.Random, n: int) -> list[bytes]:
    """Random keys of every length up to 300 octets, word edges and runs of one octet."""
    out = [b"", b"\0", b"\0" * 8, b"\xff" * 8, b"\0" * 9, b"\xff" * 300]
    for _ in range(n):
        size = rng.choice((4, 8, 12, 16, 7, 9, rng.randrange(301)))
        out.append(bytes(rng.randrange(256) for _ in range(size)))
    return out


def _colliding(bits: int, size: int, rng: random.Random, count: int, make=None) -> list[bytes]:
    """``count`` distinct keys of ``size`` octets (or made by ``make(rng)``) that
    take one slot of a memo of ``2**bits``."""
    by_slot: dict[int, list[bytes]] = {}
    while True:
        key = make(rng) if make else bytes(rng.randrange(256) for _ in range(size))
        keys = by_slot.setdefault(memo_hash(key) & ((1 << bits) - 1), [])
        if key not in keys:
            keys.append(key)
        if len(keys) == count:
            return keys


@pytest.mark.skipif(sys.byteorder != "little", reason="the C hash reads native words")
def test_the_hash_is_the_reference_hash() -> None:
    c = _compiled()
    for key in _keys(random.Random(36), 3000):
        assert c.memo_hash_of(key) == memo_hash(key), key.hex()


def test_the_memos_hold_what_the_reference_holds_slot_by_slot() -> None:
    """Random probes, keys met again, keys that share a slot, values kept or
    not: the same hit or miss, the very value, and at the end the same slots."""
    c = _compiled()
    rng = random.Random(3600)
    c.memo_counts(clear=True)
    ref = memos()
    assert list(ref) == list(MEMO_KINDS) == list(c.memo_counts())
    for name, bits in zip(MEMO_KINDS, MEMO_BITS, strict=True):
        pool = _keys(rng, 400) + _colliding(bits, rng.choice((4, 16, 20)), rng, 5)
        values: dict[bytes, object] = {}
        for _ in range(4000):
            key = rng.choice(pool)
            value = None if rng.random() < 0.1 else values.setdefault(key, (name, key))
            want = ref[name].probe(key, value)
            got = c.memo_probe(name, key, value)
            assert got is want, (name, key.hex())
        assert c.memo_items(name) == ref[name].items()
        assert all(a[2] is b[2] for a, b in zip(c.memo_items(name), ref[name].items(), strict=True))
    counts = c.memo_counts()
    assert counts == {name: (m.hits, m.misses) for name, m in ref.items()}
    assert all(h > 0 and m > 0 for h, m in counts.values())


def test_a_slot_taken_by_another_key_never_hands_its_value() -> None:
    c = _compiled()
    c.memo_counts(clear=True)
    keys = _colliding(MEMO_BITS[0], 4, random.Random(1), 3)
    ref = DirectMemo(MEMO_BITS[0])
    for key in keys:
        assert c.memo_probe("hops", key, key.hex()) is None is ref.probe(key, key.hex())
    # the last one holds the slot; the others miss (and are not handed its value)
    assert c.memo_probe("hops", keys[-1]) == keys[-1].hex()
    assert c.memo_probe("hops", keys[0]) is None
    assert c.memo_items("hops") == ref.items() == [(ref.items()[0][0], keys[-1], keys[-1].hex())]


def test_a_memo_keeps_its_values_alive_and_lets_them_go() -> None:
    """A slot holds one reference to its key and one to its value, dropped when
    another value takes the slot or the memos are cleared."""
    c = _compiled()
    c.memo_counts(clear=True)
    key, other = _colliding(MEMO_BITS[3], 12, random.Random(2), 2)
    value = tuple(range(1000, 1003))
    before = sys.getrefcount(value)
    c.memo_probe("communities", key, value)
    assert sys.getrefcount(value) == before + 1
    c.memo_probe("communities", other, (1,))
    assert sys.getrefcount(value) == before
    c.memo_probe("communities", key, value)
    c.memo_counts(clear=True)
    assert sys.getrefcount(value) == before
    assert c.memo_items("communities") == []


def _v6_body(hop: str, net: str, path: list[int]) -> bytes:
    attrs = basic_attributes(path, next_hop="") + mp_reach(
        2, socket.inet_pton(socket.AF_INET6, hop), prefix(net)
    )
    return update(attributes=attrs)


class _Recording:
    """An interner that keeps every row it is handed (so no text of them is
    freed and its address reused), then interns it as the real one does."""

    def __init__(self) -> None:
        self.real = AttributeInterner()
        self.rows: list[tuple] = []

    def intern(self, row):
        self.rows.append(row)
        return self.real.intern(row)


def test_an_ipv6_next_hop_met_before_is_the_same_text() -> None:
    """The IPv6 next hop of MP_REACH_NLRI comes through a memo as IPv4's NEXT_HOP
    does: the same text object for the same octets (before: a new text each
    UPDATE, so the interner's router-part memo, keyed by that object, missed
    every IPv6 UPDATE and built, hashed and dropped a part for each)."""
    from ribd import _intern

    c = _compiled()
    c.memo_counts(clear=True)
    interner = _Recording()
    decoder = UpdateDecoder(interner)
    _intern.part_memo(clear=True)
    for k in range(40):
        body = _v6_body("2001:db8::1", f"2001:db8:{k}::/48", [64496, 64500 + k])
        (event,) = decoder.decode(PEER, body, CAPS)
        assert event.attributes.next_hop == "2001:db8::1"
    hops = [row[2] for row in interner.rows]
    assert hops == ["2001:db8::1"] * 40
    assert all(hop is hops[0] for hop in hops)
    assert c.memo_counts()["hops6"] == (39, 1)
    # and the interner found the router part through its memo from the second on
    assert _intern.part_memo() == (39, 1)


def test_repeated_attributes_are_decoded_once() -> None:
    """The next hop, AS path, communities and cluster list of an UPDATE met
    before come from the memos (hits), each once per UPDATE."""
    c = _compiled()
    c.memo_counts(clear=True)
    attrs = (
        basic_attributes([64496, 64497])
        + attr(8, struct.pack("!II", 7, 3))
        + attr(10, socket.inet_aton("10.0.0.1"))
    )
    decoder = UpdateDecoder(AttributeInterner())
    for k in range(10):
        decoder.decode(PEER, update(attributes=attrs, nlri=prefix(f"10.{k}.0.0/16")), CAPS)
    counts = c.memo_counts()
    for name in ("hops", "paths4", "communities", "clusters"):
        assert counts[name] == (9, 1), (name, counts)


def test_extended_communities_met_before_are_the_same_tuple() -> None:
    """EXTENDED_COMMUNITIES come through a memo as COMMUNITIES do (stop 38): the
    same tuple of texts for the same octets, decoded once, equal to the
    reference decoder's (before: the shared Python helper made new texts for
    every UPDATE that had them); octets sharing a slot evict each other."""
    c = _compiled()
    c.memo_counts(clear=True)
    rng = random.Random(16)
    values = [
        bytes([0x00, 0x02, 0xFD, 0xE8, 0, 0, 0, 100]),  # target:65000:100
        bytes([0x01, 0x03, 192, 0, 2, 1, 0, 7]),  # origin:192.0.2.1:7
        bytes([0x02, 0x02, 0, 1, 0, 0, 0, 9]),  # target:65536:9
        bytes([0x43, 0x0C, 1, 2, 3, 4, 5, 6]),  # another kind: its hex
    ]
    interner = AttributeInterner()
    py, compiled = PyUpdateDecoder(interner), UpdateDecoder(interner)
    seen = []
    for k in range(12):
        ext = attr(16, b"".join(values))
        attrs = basic_attributes([64496, 64500 + k]) + ext  # (another set each time)
        body = update(attributes=attrs, nlri=prefix(f"10.{k}.0.0/16"))
        (event,) = compiled.decode(PEER, body, CAPS)
        assert [event] == py.decode(PEER, body, CAPS)
        seen.append(event.attributes.extended_communities)
    assert all(e is seen[0] for e in seen)
    assert seen[0] == (
        "target:65000:100",
        "origin:192.0.2.1:7",
        "target:65536:9",
        "0x430C010203040506",
    )
    assert c.memo_counts()["extended"] == (11, 1)
    colliding = _colliding(MEMO_BITS[MEMO_KINDS.index("extended")], 16, rng, 3)
    for k in range(60):
        value = rng.choice(colliding)
        body = update(
            attributes=basic_attributes([64496]) + attr(16, value), nlri=prefix("10.0.0.0/8")
        )
        assert compiled.decode(PEER, body, CAPS) == py.decode(PEER, body, CAPS), k
    assert c.memo_counts()["extended"][1] > 4


def test_decoders_agree_while_colliding_values_take_each_others_slots() -> None:
    """AS paths, communities and next hops whose octets share a memo slot,
    decoded in turn (each evicting the other) with hostile bodies between:
    the compiled decoder's events are the reference's every time."""
    rng = random.Random(20261203)

    def two_as(r: random.Random) -> bytes:
        return as_path((2, [r.randrange(1 << 32), r.randrange(1 << 16)]))

    paths = _colliding(MEMO_BITS[1], 0, rng, 2, two_as)
    comms = _colliding(MEMO_BITS[3], 8, rng, 2)
    hops = _colliding(MEMO_BITS[0], 4, rng, 3)
    hops6 = _colliding(MEMO_BITS[5], 16, rng, 3)
    interner = AttributeInterner()
    py, compiled = PyUpdateDecoder(interner), UpdateDecoder(interner)
    _compiled().memo_counts(clear=True)
    for k in range(600):
        path, comm = rng.choice(paths), rng.choice(comms)
        attrs = attr(1, b"\0") + attr(2, path) + attr(8, comm)
        if rng.random() < 0.5:
            body = update(attributes=attrs + attr(3, rng.choice(hops)), nlri=prefix("10.0.0.0/8"))
        else:
            reach = mp_reach(2, rng.choice(hops6), prefix("2001:db8::/32"))
            body = update(attributes=attrs + reach)
        if rng.random() < 0.2:
            cut = rng.randrange(len(body))
            body = body[:cut] + bytes([rng.randrange(256)]) + body[cut + 1 :]
        for caps in (CAPS, SessionCaps(asn4=False)):
            try:
                want = py.decode(PEER, body, caps)
            except UpdateError as exc:
                want = ("UpdateError", str(exc))
            try:
                got = compiled.decode(PEER, body, caps)
            except UpdateError as exc:
                got = ("UpdateError", str(exc))
            assert got == want, (k, body.hex())
    counts = _compiled().memo_counts()
    assert counts["paths4"][0] > 0 and counts["paths4"][1] > 3  # hits, and evictions' misses
    assert counts["hops6"][0] > 0 and counts["hops6"][1] > 3
