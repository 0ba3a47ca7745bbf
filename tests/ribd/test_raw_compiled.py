"""The compiled raw decoder (``ribd._rawdecode``) against the Python reference.

Both decoders share one attribute interner, so equal rows are the same set
object and their events compare equal field by field. Every outcome must be
the same: the same events, or an ``UpdateError`` with the same message (which
the feed counts as one bad line either way). Anything else escaping either
decoder fails the test.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import struct
import sysconfig
from pathlib import Path

import pytest

from bench.fuzz_mutate import mutate_bytes
from bench.fuzz_raw import (
    as_path,
    attr,
    basic_attributes,
    mp_reach,
    mp_unreach,
    packets_line,
    prefix,
    seed_updates,
    session_lines,
    update,
)
from ribd import rawupdate
from ribd.attributes import AttributeInterner, attribute_row
from ribd.events import RoutesAnnounced
from ribd.parser import ExabgpParser, FeedError
from ribd.rawopen import SessionCaps
from ribd.rawupdate import PyUpdateDecoder, UpdateDecoder, UpdateError
from ribd.rib import Rib

PEER = "127.0.0.2"
V4, V6 = "ipv4 unicast", "ipv6 unicast"
CAPS = [
    SessionCaps(asn4=True),
    SessionCaps(asn4=False),
    SessionCaps(asn4=True, add_path=frozenset({V4, V6})),
    SessionCaps(asn4=False, add_path=frozenset({V6})),
]
MRT = Path(__file__).resolve().parents[3] / "shared" / "data" / "bgp"
MRT = MRT / "pch-as3856-fulltable-2015.mrt.gz"


def outcome(decoder, body: bytes, caps: SessionCaps):
    try:
        return decoder.decode(PEER, body, caps)
    except UpdateError as exc:
        return ("UpdateError", str(exc))


def pair() -> tuple[PyUpdateDecoder, UpdateDecoder]:
    interner = AttributeInterner()
    return PyUpdateDecoder(interner), UpdateDecoder(interner)


def assert_alike(bodies, caps: SessionCaps) -> int:
    """Every body decodes alike; returns how many were refused (UpdateError)."""
    py, compiled = pair()
    refused = 0
    for body in bodies:
        want = outcome(py, body, caps)
        assert outcome(compiled, body, caps) == want, (body.hex(), caps)
        refused += type(want) is tuple
    return refused


def test_the_compiled_decoder_was_built_where_a_c_compiler_is() -> None:
    """In CI (a fresh ``pip install -e .``, gcc present) the compiled decoder must be
    the one in use. A checkout installed before the .pyx existed skips, saying how to
    build it, rather than failing everyone's suite until they reinstall."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc}): the Python decoder runs, as designed")
    if not rawupdate.COMPILED and not os.environ.get("CI"):
        pytest.skip("ribd._rawdecode is not built here: `pip install -e .` builds it")
    assert rawupdate.COMPILED, (
        f"{cc} is here but ribd._rawdecode was not built: `pip install -e .` (setup.py) "
        "failed to compile it"
    )
    assert rawupdate.UpdateDecoder is not PyUpdateDecoder
    # and the received UPDATE lines' scan (ribd._rawline), built from the same setup.py
    assert ExabgpParser().fast is not None, "ribd._rawline was not built"


@pytest.mark.fulltable
@pytest.mark.skipif(not MRT.exists(), reason="../shared/data is absent")
def test_every_update_of_the_real_table_decodes_to_the_same_events() -> None:
    from bench.exabgp_log import updates

    bodies = [m[19:] for m in updates(MRT)]
    assert len(bodies) > 89_000
    assert assert_alike(bodies, SessionCaps(asn4=True)) == 0
    # The same bytes read as another session negotiated them: 2-octet AS numbers
    # (AS_PATH mostly malformed), path ids (NLRI mostly refused).
    assert_alike(bodies[::7], SessionCaps(asn4=False))
    assert assert_alike(bodies[::7], SessionCaps(asn4=True, add_path=frozenset({V4}))) > 0


def test_every_truncation_of_every_seed_update_fails_or_decodes_alike() -> None:
    bodies = [seed[:n] for seed in seed_updates() + crafted() for n in range(len(seed) + 1)]
    for caps in CAPS:
        assert assert_alike(bodies, caps) > 0


def test_random_hostile_updates_decode_alike() -> None:
    rng = random.Random(20261130)
    bodies = []
    for _ in range(4000):
        body = random_update(rng)
        if rng.random() < 0.3:
            body = mutate_bytes(rng, body)
        bodies.append(body)
    refused = {str(caps): assert_alike(bodies, caps) for caps in CAPS}
    assert all(0 < n < len(bodies) for n in refused.values()), refused


def test_hostile_lines_give_the_same_feed_errors_and_the_same_rib() -> None:
    """Through the parser into a RIB: the same FeedError texts (counted as bad
    lines), the same treat-as-withdraw count, the same routes."""
    rng = random.Random(7)
    ribs, parsers = [], []
    for decoder in (PyUpdateDecoder, UpdateDecoder):
        rib = Rib()
        parser = ExabgpParser(rib.interner)
        parser.raw.decoder = decoder(rib.interner)
        for line in session_lines() + session_lines("2001:db8::2", asn4=False, add_path=True):
            rib.apply_many(parser.parse(line))
        ribs.append(rib)
        parsers.append(parser)
    for _ in range(1500):
        peer = rng.choice((PEER, "2001:db8::2"))
        line = packets_line(random_update(rng), peer=peer)
        got = []
        for rib, parser in zip(ribs, parsers, strict=True):
            try:
                events = parser.parse(line)
            except FeedError as exc:
                got.append(str(exc))
                continue
            rib.apply_many(events)
            got.append(None)
        assert got[0] == got[1], line
    py, compiled = ribs
    assert py.treated_as_withdraw == compiled.treated_as_withdraw > 0
    assert sorted(py.routers) == sorted(compiled.routers)
    for neighbor in py.routers:
        for family in (V4, V6):
            want = [route_key(m) for m in py.routes(neighbor, family)]
            assert sorted([route_key(m) for m in compiled.routes(neighbor, family)]) == sorted(want)
    assert sum(len(list(py.routes(n, f))) for n in py.routers for f in (V4, V6)) > 0


def route_key(match) -> tuple:
    return (match.prefix, match.path_id, match.stale, tuple(attribute_row(match.attributes)))


# -- a generator of UPDATEs, mostly well formed, every part sometimes wrong ----------------


def crafted() -> list[bytes]:
    """UPDATEs for the paths the seeds miss: AS4 merges, ADD-PATH, End-of-RIB of IPv6."""
    v6_hop = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    link_local = socket.inet_pton(socket.AF_INET6, "fe80::1")
    return [
        update(
            attributes=basic_attributes([65001, 23456, 23456], size=2)
            + attr(7, struct.pack("!H", 23456) + socket.inet_aton("192.0.2.7"))
            + attr(17, as_path((2, [4200000000, 4200000001])))
            + attr(18, struct.pack("!I", 4200000001) + socket.inet_aton("192.0.2.7")),
            nlri=prefix("198.51.100.0/24", 7) + prefix("10.0.0.0/8", 9),
        ),
        update(
            attributes=basic_attributes([64496])
            + mp_reach(2, v6_hop + link_local, prefix("2001:db8:1::/48", 3))
        ),
        update(attributes=mp_unreach(2, b"")),
        update(attributes=mp_unreach(1, prefix("192.0.2.0/24", 2))),
    ]


def random_prefix(rng: random.Random, v6: bool, ids: bool) -> bytes:
    bits = 128 if v6 else 32
    n = rng.choice((0, 1, 7, 8, 9, 16, 23, 24, 25, 31, 32, 48, 64, 127, 128, 129, 200))
    if rng.random() < 0.97:
        n = min(n, bits)
    body = bytes([n]) + bytes(rng.randrange(256) for _ in range(min(n + 7, 135) // 8))
    return (struct.pack("!I", rng.randrange(1 << 32)) if ids else b"") + body


def random_path(rng: random.Random, size: int) -> bytes:
    segments = []
    for _ in range(rng.randint(0, 3)):
        kind = rng.choice((1, 2, 2, 2, 2, 2, 2, 3, 4, 0, 5))
        count = rng.choice((0, 1, 2, 3, 6))
        segments.append((kind, [rng.choice((23456, 64496, 4200000000 % (1 << (8 * size))))
                                for _ in range(count)]))  # fmt: skip
    return as_path(*segments, size=size)


def random_attribute(rng: random.Random) -> bytes:
    size = rng.choice((2, 4))
    code, value = rng.choice(
        [
            (1, bytes([rng.randrange(4)])),
            (2, random_path(rng, size)),
            (3, socket.inet_aton("192.0.2.1")),
            (4, struct.pack("!I", rng.randrange(1 << 32))),
            (5, struct.pack("!I", 100)),
            (6, b""),
            (7, struct.pack("!H" if size == 2 else "!I", 23456) + socket.inet_aton("192.0.2.9")),
            (8, b"".join(struct.pack("!I", rng.randrange(1 << 32)) for _ in range(3))),
            (9, socket.inet_aton("192.0.2.8")),
            (10, socket.inet_aton("192.0.2.9") * rng.randint(1, 3)),
            (16, bytes([rng.randrange(4), rng.choice((2, 3, 9))]) + bytes(6)),
            (17, random_path(rng, 4)),
            (18, struct.pack("!I", 4200000000) + socket.inet_aton("192.0.2.9")),
            (32, struct.pack("!III", 64496, 1, rng.randrange(9)) * rng.randint(1, 2)),
            (99, b"\1\2"),
            (rng.randrange(256), bytes(rng.randrange(6))),
        ]
    )
    if rng.random() < 0.1:  # a wrong length
        value = value[: rng.randrange(len(value) + 1)] + bytes(rng.randrange(3))
    flags = None
    if rng.random() < 0.1:
        flags = rng.choice((0x00, 0x40, 0x80, 0xC0, 0xE0))
    out = attr(code, value, flags)
    if rng.random() < 0.1:  # extended length where it is not needed
        out = struct.pack("!BBH", out[0] | 0x10, code, len(value)) + value
    return out


def random_update(rng: random.Random) -> bytes:
    ids = rng.random() < 0.3
    withdrawn = b"".join(random_prefix(rng, False, ids) for _ in range(rng.choice((0, 0, 1, 3))))
    attributes = b""
    if rng.random() < 0.8:
        attributes = basic_attributes(
            [64496, rng.choice((23456, 64511))], size=rng.choice((2, 4)), next_hop="192.0.2.1"
        )
    for _ in range(rng.choice((0, 1, 2, 4))):
        attributes += random_attribute(rng)
    if rng.random() < 0.3:
        v6 = rng.random() < 0.6
        nlri = b"".join(random_prefix(rng, v6, ids) for _ in range(rng.randint(0, 3)))
        if rng.random() < 0.5:
            hop = rng.choice((4, 16, 32, 5, 0))
            attributes += mp_reach(2 if v6 else 1, bytes(range(1, hop + 1)), nlri)
        else:
            attributes += mp_unreach(rng.choice((1, 2, 2, 3)), nlri, safi=rng.choice((1, 1, 2)))
    if rng.random() < 0.1:  # a duplicate
        attributes += attributes[: rng.randrange(len(attributes) + 1)]
    nlri = b"".join(random_prefix(rng, False, ids) for _ in range(rng.choice((0, 1, 1, 5))))
    return update(withdrawn, attributes, nlri)


@pytest.mark.skipif(not rawupdate.COMPILED, reason="ribd._rawdecode is not built here")
def test_the_compiled_decoders_memoised_tuples_are_out_of_the_cyclic_gc() -> None:
    """The AS path, communities and cluster list tuples the compiled decoder
    keeps in its memos (up to 65,536 each) hold ints and texts only: left to the
    GC, every new one was walked by the next collection during a table load.
    They must be untracked, and equal to what the reference decodes."""
    import gc

    from ribd import _rawattrs

    path = as_path((2, [65001, 65002, 4200000000]), (1, [65010, 65011]))
    communities = struct.pack("!II", (65001 << 16) | 7, (65001 << 16) | 3)
    cluster = socket.inet_aton("10.0.0.1") + socket.inet_aton("10.0.0.2")
    attrs = (
        attr(1, b"\0")
        + attr(2, path)
        + attr(3, socket.inet_aton("192.0.2.1"))
        + attr(8, communities)
        + attr(10, cluster)
    )
    body = update(attributes=attrs, nlri=prefix("10.1.0.0/16"))
    py, compiled = pair()
    _rawattrs.memo_counts(clear=True)
    events = compiled.decode(PEER, body, SessionCaps(asn4=True))
    assert outcome(py, body, SessionCaps(asn4=True)) == events
    segments = _rawattrs.memo_probe("paths4", path)
    assert segments == ((2, (65001, 65002, 4200000000)), (1, (65010, 65011)))
    held = [segments, *segments, *(s[1] for s in segments)]
    kept_communities = _rawattrs.memo_probe("communities", communities)
    kept_cluster = _rawattrs.memo_probe("clusters", cluster)
    held += [kept_communities, kept_cluster]
    assert kept_communities == ((65001 << 16) | 3, (65001 << 16) | 7)
    assert kept_cluster == ("10.0.0.1", "10.0.0.2")
    assert [gc.is_tracked(t) for t in held] == [False] * len(held)


def test_the_compiled_texts_are_ordinary_strings() -> None:
    """The prefix and next-hop texts are written straight into new ASCII strings
    (ribd._rawnlri): they must hash, compare and look up as the same texts made in
    Python do (a dict keyed by the literal finds them), IPv6 included."""
    v6_hop = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    bodies = [
        update(
            attributes=basic_attributes([64496]),
            nlri=prefix("10.128.0.0/9") + prefix("192.0.2.0/24"),
        ),
        update(
            attributes=basic_attributes([64496], next_hop="")
            + mp_reach(2, v6_hop, prefix("2001:db8:ab::/48"))
        ),
    ]
    _, compiled = pair()
    texts = {"10.128.0.0/9", "192.0.2.0/24", "2001:db8:ab::/48", "192.0.2.1", "2001:db8::1"}
    for body in bodies:
        for ev in compiled.decode(PEER, body, CAPS[0]):
            for text in (*ev.prefixes, ev.attributes.next_hop):
                assert type(text) is str and text.isascii() and text in texts
                assert hash(text) == hash("".join(list(text)))
                assert {t: t for t in texts}[text] == text


def _memo_path(compiled: bool, body: bytes, caps: SessionCaps):
    """The path the decoder's memo keeps now for ``body``'s AS_PATH octets
    (the compiled decoder's ``ribd/_rawattrs_memo.pxi``, the reference's dicts), or None."""
    from ribd import _rawattrs, rawattrs

    try:
        at = 2 + int.from_bytes(body[:2], "big")
        end = at + 2 + int.from_bytes(body[at : at + 2], "big")
        raw, _ = rawattrs._split_attributes(body[at + 2 : end])
    except Exception:  # (a hostile body: no path kept for it)
        return None
    value = raw.get(rawattrs.AS_PATH)
    if value is None:
        return None
    if compiled:
        return _rawattrs.memo_probe("paths4" if caps.asn4 else "paths2", value)
    return (rawattrs._PATHS4 if caps.asn4 else rawattrs._PATHS2).get(value)


def _stack_picture(decoder_class, interner, bodies, tmp_path) -> tuple[dict, list, bytes]:
    """Bodies decoded by ``decoder_class`` into ``interner`` (memos emptied first)
    and applied to a RIB: the interner's picture (values, sharing, caches), which
    cores kept the decoder's memoised path (the memo read right after each body:
    the compiled memo's slot may be taken by a later path), and the RIB's snapshot bytes."""
    from ribd import _rawattrs, rawattrs
    from ribd.events import SessionState
    from ribd.snapshot import write_snapshot
    from tests.ribd.test_announce_shared import Clock
    from tests.ribd.test_intern_compiled import picture

    for memo in (rawattrs._PATHS4, rawattrs._PATHS2, rawattrs._COMMUNITIES, rawattrs._CLUSTERS):
        memo.clear()
    _rawattrs.memo_counts(clear=True)
    compiled = decoder_class is not PyUpdateDecoder
    memoised = []  # (held: no id reused)
    rib = Rib(clock=Clock())
    rib.interner = interner
    decoder = decoder_class(interner)
    sets = []
    for k, caps in enumerate(CAPS[:2]):  # a 4-octet and a 2-octet session
        peer = f"192.0.2.{k + 1}"
        rib.apply(SessionState(peer, "up", peer_as=64500))
        for body in bodies:
            try:
                events = decoder.decode(peer, body, caps)
            except UpdateError:
                continue
            memoised.append(_memo_path(compiled, body, caps))
            sets += [e.attributes for e in events if type(e) is RoutesAnnounced]
            rib.apply_many(events)
    memo = {id(p) for p in memoised if p is not None}
    kept = [id(held[0].as_path) in memo for held in interner._cores.values()]
    path = tmp_path / f"{decoder_class.__name__}.snapshot"
    write_snapshot(rib, path)
    return picture(interner, sets), kept, path.read_bytes()


@pytest.mark.skipif(not rawupdate.COMPILED, reason="ribd._rawdecode is not built here")
def test_both_decoders_hand_the_interner_paths_it_keeps_alike(tmp_path) -> None:
    """The whole stack, each half its own: the reference decoder into the
    reference interner (``py_intern``), the compiled decoder into the compiled
    one. A new AS path's numbers are taken through the interner's cache at
    decode time (``share_numbers``) and the interner keeps that very tuple
    (no second build): the same sets, the same sharing and caches, the same
    cores keeping the memo's path, the same snapshot bytes; hostile bodies too."""
    from tests.ribd.test_intern_compiled import Reference

    rng = random.Random(20261202)
    bodies = seed_updates() + crafted()
    for _ in range(3000):
        body = random_update(rng)
        bodies.append(mutate_bytes(rng, body) if rng.random() < 0.3 else body)
    if MRT.exists():
        from bench.exabgp_log import updates

        bodies += [m[19:] for m in updates(MRT)[:6000]]
    want = _stack_picture(PyUpdateDecoder, Reference(), bodies, tmp_path)
    got = _stack_picture(UpdateDecoder, AttributeInterner(), bodies, tmp_path)
    assert got[0] == want[0]
    assert got[1] == want[1] and sum(got[1]) > len(got[1]) // 2
    assert got[2] == want[2]
