"""The raw decoder's path memo given the interner's path (stop 39, late17).

The interner keeps one AS path object per core. A path whose memo slot other
octets had taken is decoded again into a new, equal object; the interner
finds its core (the path compared item by item) and, since this change, hands
the core's path back to the decoder's memo slot for those octets, so that the
next UPDATE with them carries the very path the core holds: the interner's
memo of cores by the path object (``ribd/_intern_corememo.pxi``) finds it.

What must hold: a slot is only ever given a path equal to the one decoded
from its own octets (never another slot's, never one for other octets), the
decoded events stay the reference decoder's, and the interner's state is the
reference interner's.
"""

from __future__ import annotations

import random

import pytest

from bench.fuzz_raw import as_path, attr, basic_attributes, prefix, update
from ribd import rawupdate
from ribd.attributes import AttributeInterner
from ribd.decoder_memo import MEMO_BITS, memo_hash
from ribd.rawopen import SessionCaps
from ribd.rawupdate import PyUpdateDecoder, UpdateDecoder
from tests.ribd.test_decoder_memo import _Recording  # an interner keeping its rows

pytestmark = pytest.mark.skipif(not rawupdate.COMPILED, reason="ribd._rawdecode is not built here")
PEER = "127.0.0.2"
CAPS = SessionCaps(asn4=True)


def _modules():
    from ribd import _intern, _rawattrs

    return _rawattrs, _intern


def _body(path: list[int], net: str, med: int | None = None) -> bytes:
    attrs = basic_attributes(path)
    if med is not None:
        attrs += attr(4, med.to_bytes(4, "big"))
    return update(attributes=attrs, nlri=prefix(net))


def _path_octets(path: list[int]) -> bytes:
    return as_path((2, path))


def _memo_paths() -> dict[bytes, tuple]:
    c, _ = _modules()
    return {key: value for _, key, value in c.memo_items("paths4")}


def test_a_path_decoded_again_is_handed_the_cores_path() -> None:
    """The memo emptied (as other octets taking the slot do), the path is
    decoded into a new object; after that row is interned, the slot holds the
    core's path, and the next UPDATE carries it and is found through the
    interner's core memo. Before: the new object stayed in the slot, so every
    later UPDATE with those octets missed the core memo."""
    c, intern_c = _modules()
    interner = AttributeInterner()
    decoder = UpdateDecoder(interner)
    path = [64496, 64511, 3356]
    c.memo_counts(clear=True)
    (first,) = decoder.decode(PEER, _body(path, "10.1.0.0/16"), CAPS)
    held = first.attributes.core.as_path
    c.memo_counts(clear=True)  # the slot lost (another path took it)
    (again,) = decoder.decode(PEER, _body(path, "10.2.0.0/16", med=5), CAPS)
    (more,) = decoder.decode(PEER, _body(path, "10.3.0.0/16", med=5), CAPS)
    assert again.attributes.core.as_path is held
    assert _memo_paths()[_path_octets(path)] is held
    hits = intern_c.core_memo_counts()[0]
    (last,) = decoder.decode(PEER, _body(path, "10.4.0.0/16", med=5), CAPS)
    assert last.attributes.core is more.attributes.core
    assert last.attributes.core.as_path is held
    assert intern_c.core_memo_counts()[0] == hits + 1
    assert c.path_handbacks() >= 1


def test_a_row_not_from_the_memo_changes_no_slot() -> None:
    """Rows whose path is not the memo's object (another equal tuple, lists:
    the JSON form) leave every slot as it was."""
    c, _ = _modules()
    interner = _Recording()
    decoder = UpdateDecoder(interner)
    c.memo_counts(clear=True)
    decoder.decode(PEER, _body([64496, 1], "10.0.0.0/8"), CAPS)
    (row,) = interner.rows
    before = [(slot, key, id(value)) for slot, key, value in c.memo_items("paths4")]
    kept = [value for _, _, value in c.memo_items("paths4")]
    equal = tuple((kind, tuple(numbers)) for kind, numbers in row[0])
    assert equal == row[0] and equal is not row[0]
    interner.real.intern((equal, *row[1:4], 7, *row[5:]))
    interner.real.intern(
        ([[kind, list(numbers)] for kind, numbers in row[0]], *row[1:4], 8, *row[5:])
    )
    after = [(slot, key, id(value)) for slot, key, value in c.memo_items("paths4")]
    assert after == before
    assert kept  # (held, so no id above was reused)


def test_colliding_paths_never_take_each_others_values() -> None:
    """Paths whose octets share one memo slot, decoded in turn with the memo
    emptied now and then: every slot's value equals the path its own octets
    decode to, the events equal the reference decoder's, and the compiled
    interner's sets equal a reference interner's fed the same rows."""
    c, _ = _modules()
    rng = random.Random(39017)
    mask = (1 << MEMO_BITS[1]) - 1
    by_slot: dict[int, list[list[int]]] = {}
    while True:
        path = [rng.randrange(1 << 32), rng.randrange(1 << 16)]
        keys = by_slot.setdefault(memo_hash(_path_octets(path)) & mask, [])
        keys.append(path)
        if len(keys) == 3:
            colliding = keys
            break
    others = [[64496, rng.randrange(1 << 32)] for _ in range(6)]
    interner = AttributeInterner()  # (one for both: the events' sets compare by identity)
    compiled, py = UpdateDecoder(interner), PyUpdateDecoder(interner)
    c.memo_counts(clear=True)
    for k in range(800):
        path = rng.choice(colliding if rng.random() < 0.7 else others)
        body = _body(path, f"10.{k % 200}.{k // 200}.0/24", med=rng.choice((None, 1, 2)))
        got, want = compiled.decode(PEER, body, CAPS), py.decode(PEER, body, CAPS)
        assert got == want, k
        assert got[0].attributes.core.as_path == ((2, tuple(path)),)
        if rng.random() < 0.05:
            c.memo_counts(clear=True)
        for key, value in _memo_paths().items():
            want_value = (
                (
                    2,
                    tuple(int.from_bytes(key[2 + 4 * i : 6 + 4 * i], "big") for i in range(key[1])),
                ),
            )
            assert value == want_value, k
    assert c.path_handbacks() > 0


def test_without_the_hand_back_the_memo_keeps_the_decoded_path() -> None:
    """``set_path_handback(None)`` (an interner built without the decoder)
    leaves the slot as decoded: the switch the hand-back hangs on."""
    c, intern_c = _modules()
    interner = AttributeInterner()
    decoder = UpdateDecoder(interner)
    path = [64496, 64512, 174]
    (first,) = decoder.decode(PEER, _body(path, "10.1.0.0/16"), CAPS)
    c.memo_counts(clear=True)
    try:
        intern_c.set_path_handback(None)
        (again,) = decoder.decode(PEER, _body(path, "10.2.0.0/16"), CAPS)
        assert again.attributes.core is first.attributes.core
        decoded = _memo_paths()[_path_octets(path)]
        assert decoded == first.attributes.core.as_path
        assert decoded is not first.attributes.core.as_path
    finally:
        c.install_path_handback()
    (last,) = decoder.decode(PEER, _body(path, "10.3.0.0/16"), CAPS)
    assert _memo_paths()[_path_octets(path)] is first.attributes.core.as_path
    assert last.attributes.core.as_path is first.attributes.core.as_path
