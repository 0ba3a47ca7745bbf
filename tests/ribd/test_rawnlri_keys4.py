"""The table load's IPv4 keys and peers (stop 38, decode8): ``ribd._rawnlri.nlri4_keys``
against the reference text decoder, the keys' shared int objects, the delta's
prefetch hint, and ``ribd._rawline.peer_of``'s cache with many routers."""

from __future__ import annotations

import gc
import random
import re
import sys

import pytest

from ribd.checks import canonical_address
from ribd.prefix_keys import py_int_key
from ribd.rawnlri import NlriError, ipv4_prefixes

rawnlri = pytest.importorskip("ribd._rawnlri")
rawline = pytest.importorskip("ribd._rawline")
intdelta = pytest.importorskip("ribd._intdelta")


def _reference(field: bytes) -> list[int] | str:
    """The keys of ``ribd.rawnlri``'s texts, or its error's message."""
    try:
        texts, _ = ipv4_prefixes(field, False)
    except NlriError as exc:
        return str(exc)
    return [py_int_key(t) for t in texts]


def _compiled(field: bytes) -> list[int] | str:
    from ribd.rawattrs import UpdateError

    try:
        return rawnlri.ipv4_nlri_keys(field)
    except UpdateError as exc:
        return str(exc)


def _prefix(rng: random.Random, length: int) -> bytes:
    """One NLRI prefix of ``length`` whose octets carry random bits past it too."""
    octets = (length + 7) >> 3
    return bytes([length]) + bytes(rng.randrange(256) for _ in range(octets))


def test_keys_equal_the_reference_on_random_and_hostile_fields() -> None:
    """Random fields of /0-/32 (bits past the length set, every field tail
    shorter than a word after its last length octet), then the same cut short,
    a length past 32 put in, octets appended: the keys or the error's text."""
    rng = random.Random(38)
    checked = errors = 0
    lengths = (0, 1, 7, 8, 9, 16, 23, 24, 25, 31, 32)
    for _ in range(4000):
        field = b"".join(
            _prefix(rng, rng.choice((*lengths, rng.randrange(33))))
            for _ in range(rng.randrange(12))
        )
        variants = [field]
        if field:
            variants.append(field[: rng.randrange(len(field))])
            cut = bytearray(field)
            cut[rng.randrange(len(cut))] = rng.choice((33, 64, 128, 255, rng.randrange(256)))
            variants.append(bytes(cut))
        variants.append(field + bytes([rng.randrange(256) for _ in range(rng.randrange(5))]))
        for v in variants:
            want, got = _reference(v), _compiled(v)
            assert got == want, (v.hex(), got, want)
            checked += 1
            errors += type(want) is str
    assert checked > 10_000 and errors > 1_000  # (both ways exercised)


def test_every_length_and_the_field_edges() -> None:
    for length in range(33):
        for fill in (0x00, 0xFF, 0xA5):
            one = bytes([length]) + bytes([fill]) * ((length + 7) >> 3)
            for field in (one, one + one, bytes([24, 1, 2, 3]) + one, one + bytes([0])):
                assert _compiled(field) == _reference(field), field.hex()
    for field, message in (
        (bytes([33]) + bytes(5), "IPv4 NLRI: prefix length 33 at octet 0 exceeds 32"),
        (bytes([24, 1, 2]), "IPv4 NLRI: the last prefix runs past the field of 3 octets"),
        (bytes([8, 10, 32, 1, 2, 3]), "IPv4 NLRI: the last prefix runs past the field of 6 octets"),
    ):
        assert _compiled(field) == message == _reference(field)
    assert _compiled(b"") == [] and _compiled(bytes([0])) == [1]


def test_a_key_met_again_is_the_one_int_while_its_slot_keeps_it() -> None:
    rawnlri.key_int_counts(clear=True)
    field = bytes([24, 10, 1, 2, 24, 10, 1, 3, 32, 192, 0, 2, 1])
    first = rawnlri.ipv4_nlri_keys(field)
    again = rawnlri.ipv4_nlri_keys(field)
    want = [py_int_key(t) for t in ("10.1.2.0/24", "10.1.3.0/24", "192.0.2.1/32")]
    assert first == again == want
    assert all(a is b for a, b in zip(first, again, strict=True))
    assert rawnlri.key_int_counts() == (3, 3)
    # Many keys: those sharing a slot take it in turn, every value still right.
    rng = random.Random(5)
    keys = [rng.randrange(1 << 24) for _ in range(200_000)]
    field = b"".join(bytes([24]) + k.to_bytes(3, "big") for k in keys)
    for _ in range(2):
        step = 4 * 500
        got = [rawnlri.ipv4_nlri_keys(field[i : i + step]) for i in range(0, len(field), step)]
        assert [k for part in got for k in part] == [(1 << 24) | k for k in keys]
    hits, misses = rawnlri.key_int_counts()
    assert hits + misses == 6 + 2 * len(keys) and misses > len(keys)  # (more keys than slots)


def test_the_key_table_rests_while_keys_are_new_and_comes_back() -> None:
    """A first router's keys are all new: windows of 4,096 keys that found
    fewer than 55% leave the next 15 windows to plain new ints; then
    the table is tried again, and keys met again are found."""
    rawnlri.key_int_counts(clear=True)
    new = b"".join(bytes([24]) + k.to_bytes(3, "big") for k in range(40 * 4096))
    for i in range(0, len(new), 4 * 400):
        rawnlri.ipv4_nlri_keys(new[i : i + 4 * 400])
    assert rawnlri.key_int_counts()[0] == 0
    again = b"".join(bytes([24]) + k.to_bytes(3, "big") for k in range(1000))
    for _ in range(17 * 5):  # 17 windows of the same 1,000 keys: the table back in use
        rawnlri.ipv4_nlri_keys(again[: 4 * 500])
        rawnlri.ipv4_nlri_keys(again[4 * 500 :])
    hits, misses = rawnlri.key_int_counts()
    assert hits > 4096 and hits + misses == 40 * 4096 + 85_000


def test_the_key_table_drops_its_references_when_cleared() -> None:
    rawnlri.key_int_counts(clear=True)
    key = rawnlri.ipv4_nlri_keys(bytes([32, 198, 51, 100, 7]))[0]
    held = sys.getrefcount(key)
    rawnlri.key_int_counts(clear=True)
    assert sys.getrefcount(key) == held - 1
    assert rawnlri.key_int_counts() == (0, 0)
    assert rawnlri.ipv4_nlri_keys(bytes([32, 198, 51, 100, 7]))[0] is not key


def test_the_prefetch_hint_follows_the_last_table_and_never_a_freed_one() -> None:
    from ribd._intdelta import IntDelta

    a = IntDelta()
    a.add(py_int_key("10.0.0.0/8"), "x")
    a.get(py_int_key("10.0.0.0/8"))  # (a typed probe)
    assert intdelta.hot_table() is a
    b = IntDelta()
    b.get(py_int_key("10.0.0.0/8"))
    assert intdelta.hot_table() is b
    # An empty table (no slots) is no hint; the keys are made as ever.
    assert rawnlri.ipv4_nlri_keys(bytes([8, 10])) == [py_int_key("10.0.0.0/8")]
    del b
    gc.collect()
    assert intdelta.hot_table() is None
    assert rawnlri.ipv4_nlri_keys(bytes([8, 10])) == [py_int_key("10.0.0.0/8")]
    a.get(1)
    assert intdelta.hot_table() is a
    for i in range(1, 5000):  # a hint on a table growing under it
        a.add((1 << 32) | i, i)
        assert rawnlri.ipv4_nlri_keys(bytes([32]) + i.to_bytes(4, "big")) == [(1 << 32) | i]
    del a
    gc.collect()
    assert intdelta.hot_table() is None


def _texts(n: int) -> list[bytes]:
    v4 = [f"127.0.{k // 200}.{k % 200 + 1}".encode() for k in range(n)]
    v6 = [f"2001:db8::{k:x}".encode() for k in range(n // 4)]
    odd = [b"not an address", b"300.1.1.1", b"", b"1" * 60, b"2001:DB8::1", b"::ffff:10.0.0.1"]
    return v4 + v6 + odd


def test_peer_texts_give_the_canonical_address_and_stay_cached_for_many_routers() -> None:
    """Texts of 64 routers met round-robin (IPv4, IPv6, upper case, texts that are
    no address, one longer than the cache keeps): the canonical address (None:
    not one) every time, and from the second round on the cache answers."""
    texts = _texts(64)
    want = {t: canonical_address(t.decode("ascii")) for t in texts}
    assert want[b"not an address"] is None and want[b"2001:DB8::1"] == "2001:db8::1"
    peers: dict = {}
    rawline.peer_cache_counts(clear=True)
    for _ in range(20):
        for t in texts:
            assert rawline.peer_text(t, peers) == want[t]
    hits, misses = rawline.peer_cache_counts()
    assert hits + misses == 20 * len(texts)
    # (each text's first meeting, the long one's every time, and a set of two
    # taken by three texts: a few misses a round; the ring of 8 missed every one)
    assert misses <= 2 * len(texts) + 20
    # A text put in place of another in the same line: never the other's answer.
    rng = random.Random(1)
    for _ in range(2000):
        t = rng.choice(texts)
        mutated = bytearray(t)
        if mutated:
            mutated[rng.randrange(len(mutated))] = rng.choice(b"0123456789abcdef.:")
        m = bytes(mutated)
        try:
            expected = canonical_address(m.decode("ascii"))
        except Exception:  # (the reference's own error: not reached by these octets)
            continue
        assert rawline.peer_text(m, peers) == expected
        assert rawline.peer_text(t, peers) == want[t]


def test_the_peer_dict_is_bounded_as_before() -> None:
    peers: dict = {}
    for k in range(5000):
        rawline.peer_text(f"10.{k // 256 % 256}.{k % 256}.1".encode(), peers)
    assert len(peers) <= 4096
    assert re.fullmatch(r"\d+", str(len(peers)))


class _Sub(int):
    pass


def test_key_of_reads_an_exact_ints_digits_as_the_generic_path_does() -> None:
    """``key_of``'s digit path (exact ints of one or two 30-bit digits) against
    the reference table on every digit edge and hostile key: the same values,
    the same errors (types and texts) for what it leaves to the generic path."""
    from ribd._intdelta import IntDelta

    from ribd.intdelta import PyIntDelta

    edges = [1, 2, (1 << 30) - 1, 1 << 30, (1 << 30) + 1, (1 << 32) | 5, (1 << 33) - 1]
    hostile = [0, -1, -(1 << 30), -(1 << 31), 1 << 33, (1 << 33) + 1, (1 << 60) - 1, 1 << 60]
    hostile += [1 << 90, True, False, _Sub(5), _Sub(1 << 31), _Sub(0), 1.0, "1", None]
    rng = random.Random(3)
    keys = edges + hostile + [rng.randrange(1, 1 << 33) for _ in range(3000)]
    t, ref = IntDelta(), PyIntDelta()

    def outcome(call, *args):  # type: ignore[no-untyped-def]
        try:
            return "ok", call(*args)
        except Exception as exc:
            return type(exc).__name__, str(exc)

    for i, k in enumerate(keys):
        assert outcome(t.insert, k, i) == outcome(ref.insert, k, i), k
    for k in keys:
        assert outcome(t.get, k, "absent") == outcome(ref.get, k, "absent"), k
        assert outcome(t.delete, k) == outcome(ref.delete, k), k
    assert len(t) == len(ref) == 0
