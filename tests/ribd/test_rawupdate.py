"""The raw UPDATE decoder: the JSON path's events from the bytes, RFC 7606 on bad input.

References independent of ``ribd.rawupdate``: ExaBGP's own decoder run in
process (``exabgp_reference``) followed by the project's JSON parser, the
JSON lines a synthetic table was packed from, and values written by hand.
"""

from __future__ import annotations

import socket
import struct
import sys
from pathlib import Path

import pytest

from bench import bgpsend, synth
from bench.fuzz_raw import (
    as_path,
    attr,
    basic_attributes,
    mp_reach,
    mp_unreach,
    open_body,
    prefix,
    update,
)
from ribd import parser as parser_module
from ribd import rawupdate
from ribd.attributes import AS_SEQUENCE, AS_SET, ATTRIBUTE_FIELDS, attribute_row
from ribd.events import EndOfRib, RoutesAnnounced, RoutesWithdrawn, UpdateTime
from ribd.parser import ExabgpParser
from ribd.rawopen import SessionCaps, negotiate, parse_open
from ribd.rawupdate import UpdateError

sys.path.insert(0, str(Path(__file__).parent))
from exabgp_reference import negotiated, reference_line

V4, V6 = "ipv4 unicast", "ipv6 unicast"
PEER = "127.0.0.2"
ASN4 = SessionCaps(asn4=True)
ASN2 = SessionCaps(asn4=False)
MRT = Path(__file__).resolve().parents[3] / "shared" / "data" / "bgp"
MRT = MRT / "pch-as3856-fulltable-2015.mrt.gz"


UpdateDecoder = rawupdate.UpdateDecoder


@pytest.fixture(autouse=True, params=["compiled", "python"])
def decoder_kind(request, monkeypatch):
    """Every test here runs with the compiled decoder (when built) and the Python one."""
    kind = rawupdate.UpdateDecoder if request.param == "compiled" else rawupdate.PyUpdateDecoder
    monkeypatch.setitem(globals(), "UpdateDecoder", kind)
    monkeypatch.setattr(parser_module, "UpdateDecoder", kind)
    return kind


def routes(events) -> dict:
    """(kind, family, prefix, path id) -> attribute fields, whatever the grouping."""
    out = {}
    for e in events:
        if isinstance(e, UpdateTime):
            continue
        if isinstance(e, RoutesAnnounced | RoutesWithdrawn):
            fields = None
            if isinstance(e, RoutesAnnounced):
                fields = dict(zip(ATTRIBUTE_FIELDS, attribute_row(e.attributes), strict=True))
                # ExaBGP names only route target and origin; others differ on purpose
                fields["extended_communities"] = tuple(
                    c
                    for c in fields["extended_communities"]
                    if c.startswith(("target:", "origin:"))
                )
            kind = "A" if fields is not None else "W"
            for i, p in enumerate(e.prefixes):
                out[(kind, e.family, p, e.path_ids[i] if e.path_ids else 0)] = (
                    tuple(sorted(fields.items())) if fields else None
                )
        else:
            out[(type(e).__name__, repr(e))] = None
    return out


def decode(body: bytes, caps: SessionCaps = ASN4):
    return UpdateDecoder().decode(PEER, body, caps)


def announced(body: bytes, caps: SessionCaps = ASN4) -> RoutesAnnounced:
    (event,) = decode(body, caps)
    assert isinstance(event, RoutesAnnounced), event
    return event


# -- against ExaBGP's decoder ----------------------------------------------------------


@pytest.mark.skipif(not MRT.exists(), reason="../shared/data is absent")
def test_every_tenth_update_of_the_real_table_decodes_to_the_json_paths_routes() -> None:
    from bench.exabgp_log import updates

    bodies = [m[19:] for m in updates(MRT)[::10]]
    parser, decoder, neg = ExabgpParser(), UpdateDecoder(), negotiated(asn4=True)
    for body in bodies:
        expected = routes(parser.parse(reference_line(body, neg)))
        assert routes(decoder.decode(PEER, body, ASN4)) == expected, body.hex()


def test_crafted_updates_decode_as_exabgp_decodes_them() -> None:
    """AS4_PATH merge on a 2-octet session, AS_SET, IPv6, ADD-PATH. (Not confederation
    segments: ExaBGP 5.0.15's JSON labels them ``as-sequence``, see the next test.)"""
    v6_hop = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    cases = [
        (
            update(
                attributes=basic_attributes([65001, 23456, 23456, 200], size=2)
                + attr(17, as_path((2, [4200000001, 4200000002, 200]))),
                nlri=prefix("198.51.100.0/24"),
            ),
            False,
            frozenset(),
        ),
        (
            update(
                attributes=attr(1, b"\2")
                + attr(2, as_path((2, [100]), (1, [300, 200])))
                + attr(3, socket.inet_aton("192.0.2.1")),
                nlri=prefix("203.0.113.0/24"),
            ),
            True,
            frozenset(),
        ),
        (
            update(
                attributes=basic_attributes([64496], next_hop="")
                + mp_reach(2, v6_hop, prefix("2001:db8:1::/48", 7) + prefix("2001:db8::/32", 9)),
                withdrawn=prefix("192.0.2.0/24", 3),
            ),
            True,
            frozenset({V4, V6}),
        ),
    ]
    parser, decoder = ExabgpParser(), UpdateDecoder()
    for body, asn4, add_path in cases:
        expected = routes(parser.parse(reference_line(body, negotiated(asn4, add_path))))
        assert routes(decoder.decode(PEER, body, SessionCaps(asn4, add_path))) == expected


def test_a_synthetic_table_packed_with_ipv6_decodes_to_what_it_was_packed_from() -> None:
    lines, _ = synth.generate(v4=3000, v6=800, seed=11)
    parser, decoder = ExabgpParser(), UpdateDecoder()
    expected: dict = {}
    for line in lines:
        expected.update(routes(parser.parse(line)))
    messages, families = bgpsend.json_updates(lines)
    assert set(families) == {V4, V6}
    got: dict = {}
    for m in messages:
        got.update(routes(decoder.decode(PEER, m[19:], ASN4)))
    expected = {k: v for k, v in expected.items() if k[0] in ("A", "W")}
    assert got == expected
    assert sum(1 for k in got if k[1] == V6) > 700


# -- by hand -----------------------------------------------------------------------------


def test_as4_path_is_merged_on_a_two_octet_session() -> None:
    body = update(
        attributes=basic_attributes([65001, 23456, 23456, 200], size=2)
        + attr(17, as_path((2, [4200000001, 4200000002, 200]))),
        nlri=prefix("198.51.100.0/24"),
    )
    a = announced(body, ASN2).attributes
    assert a.as_path == ((AS_SEQUENCE, (65001, 4200000001, 4200000002, 200)),)
    assert (a.peer_as, a.origin_as) == (65001, 200)


def test_an_as4_path_longer_than_the_as_path_is_ignored() -> None:
    body = update(
        attributes=basic_attributes([65001, 23456], size=2)
        + attr(17, as_path((2, [4200000001, 4200000002, 4200000003]))),
        nlri=prefix("198.51.100.0/24"),
    )
    assert announced(body, ASN2).attributes.as_path == ((AS_SEQUENCE, (65001, 23456)),)


def test_a_real_two_octet_aggregator_makes_the_as4_attributes_noise() -> None:
    body = update(
        attributes=basic_attributes([65001, 23456], size=2)
        + attr(7, struct.pack("!H", 65002) + socket.inet_aton("192.0.2.5"))
        + attr(17, as_path((2, [4200000001])))
        + attr(18, struct.pack("!I", 4200000009) + socket.inet_aton("192.0.2.6")),
        nlri=prefix("198.51.100.0/24"),
    )
    a = announced(body, ASN2).attributes
    assert a.as_path == ((AS_SEQUENCE, (65001, 23456)),)
    assert a.aggregator == "65002:192.0.2.5"


def test_as_trans_aggregator_is_replaced_by_the_as4_aggregator() -> None:
    body = update(
        attributes=basic_attributes([65001, 23456], size=2)
        + attr(7, struct.pack("!H", 23456) + socket.inet_aton("192.0.2.5"))
        + attr(17, as_path((2, [4200000001])))
        + attr(18, struct.pack("!I", 4200000009) + socket.inet_aton("192.0.2.6")),
        nlri=prefix("198.51.100.0/24"),
    )
    a = announced(body, ASN2).attributes
    assert a.as_path == ((AS_SEQUENCE, (65001, 4200000001)),)
    assert a.aggregator == "4200000009:192.0.2.6"


def test_as4_path_is_ignored_on_a_four_octet_session() -> None:
    body = update(
        attributes=basic_attributes([65001, 23456]) + attr(17, as_path((2, [4200000001]))),
        nlri=prefix("198.51.100.0/24"),
    )
    assert announced(body).attributes.as_path == ((AS_SEQUENCE, (65001, 23456)),)


def test_confederation_segments_are_kept_as_such_and_skipped_for_the_peer_as() -> None:
    """ExaBGP 5.0.15's JSON calls them as-sequence, so the JSON path takes the
    confederation member AS for the peer AS; the bytes say what they are."""
    body = update(
        attributes=attr(1, b"\0")
        + attr(2, as_path((3, [65010]), (4, [65011, 65012]), (2, [100, 200])))
        + attr(3, socket.inet_aton("192.0.2.1")),
        nlri=prefix("198.51.100.0/24"),
    )
    a = announced(body).attributes
    assert a.as_path == ((3, (65010,)), (4, (65011, 65012)), (AS_SEQUENCE, (100, 200)))
    assert (a.peer_as, a.origin_as) == (100, 200)


def test_a_trailing_as_set_gives_the_aggregator_as_origin() -> None:
    body = update(
        attributes=attr(1, b"\0")
        + attr(2, as_path((2, [100, 150]), (1, [300, 200])))
        + attr(3, socket.inet_aton("192.0.2.1")),
        nlri=prefix("198.51.100.0/24"),
    )
    a = announced(body).attributes
    assert a.as_path == ((AS_SEQUENCE, (100, 150)), (AS_SET, (300, 200)))
    assert (a.peer_as, a.origin_as, a.origin_from_set, a.origin_as_highest) == (100, 150, True, 300)


def test_add_path_ids_are_read_per_negotiated_family() -> None:
    v6_hop = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    body = update(
        attributes=basic_attributes([64496])
        + mp_reach(2, v6_hop, prefix("2001:db8::/32", 4) + prefix("2001:db8::/32", 5)),
        nlri=prefix("198.51.100.0/24", 1) + prefix("198.51.100.0/24", 2),
    )
    events = decode(body, SessionCaps(True, frozenset({V4, V6})))
    assert [(e.family, e.prefixes, e.path_ids) for e in events] == [
        (V4, ("198.51.100.0/24", "198.51.100.0/24"), (1, 2)),
        (V6, ("2001:db8::/32", "2001:db8::/32"), (4, 5)),
    ]
    # Without ADD-PATH on IPv6, only IPv4 NLRI carry ids.
    body = update(
        attributes=mp_unreach(2, prefix("2001:db8::/32")), withdrawn=prefix("10.0.0.0/8", 6)
    )
    events = decode(body, SessionCaps(True, frozenset({V4})))
    assert [(e.family, e.prefixes, e.path_ids) for e in events] == [
        (V4, ("10.0.0.0/8",), (6,)),
        (V6, ("2001:db8::/32",), None),
    ]


def test_trailing_bits_of_a_prefix_are_masked() -> None:
    nlri = bytes([8, 10]) + bytes([20, 192, 0, 0x2F]) + bytes([0])
    assert announced(update(attributes=basic_attributes([1]), nlri=nlri)).prefixes == (
        "10.0.0.0/8",
        "192.0.32.0/20",
        "0.0.0.0/0",
    )
    v6 = bytes([33, 0x20, 0x01, 0x0D, 0xB8, 0xFF])
    body = update(attributes=mp_unreach(2, v6))
    assert decode(body)[0].prefixes == ("2001:db8:8000::/33",)  # the 33rd bit is kept


def test_end_of_rib_for_both_families() -> None:
    assert decode(b"\0\0\0\0") == [EndOfRib(PEER, V4)]
    assert decode(update(attributes=mp_unreach(2, b""))) == [EndOfRib(PEER, V6)]


def test_a_link_local_second_ipv6_next_hop_is_not_used() -> None:
    hops = socket.inet_pton(socket.AF_INET6, "2001:db8::1") + socket.inet_pton(
        socket.AF_INET6, "fe80::1"
    )
    body = update(
        attributes=basic_attributes([1], next_hop="") + mp_reach(2, hops, prefix("2001:db8::/32"))
    )
    assert announced(body).attributes.next_hop == "2001:db8::1"


def test_communities_are_kept_sorted_like_exabgps_json() -> None:
    body = update(
        attributes=basic_attributes([1])
        + attr(8, struct.pack("!II", (65000 << 16) | 9, (64000 << 16) | 1))
        + attr(32, struct.pack("!6I", 9, 9, 9, 1, 2, 3)),
        nlri=prefix("198.51.100.0/24"),
    )
    a = announced(body).attributes
    assert a.community_strings() == ["64000:1", "65000:9"]
    assert a.large_community_strings() == ["1:2:3", "9:9:9"]


# -- RFC 7606 ----------------------------------------------------------------------------


def withdrawn_reason(body: bytes, caps: SessionCaps = ASN4) -> str:
    (event,) = decode(body, caps)
    assert isinstance(event, RoutesWithdrawn), event
    assert event.prefixes == ("198.51.100.0/24",)
    return event.reason


@pytest.mark.parametrize(
    ("attributes", "words"),
    [
        (attr(1, b"\7") + attr(2, b"") + attr(3, b"\xc0\0\2\1"), "ORIGIN"),
        (attr(1, b"\0") + attr(3, b"\xc0\0\2\1"), "no AS_PATH"),
        (attr(1, b"\0") + attr(2, b""), "no NEXT_HOP"),
        (attr(1, b"\0") + attr(2, b"") + attr(3, b"\xc0\0\2\1\5"), "NEXT_HOP of 5"),
        (attr(1, b"\0") + attr(2, b"") + attr(3, b"\xc0\0\2"), "NEXT_HOP of 3"),
        (basic_attributes([1]) + attr(8, b"\0\0\0\1\0"), "COMMUNITIES of 5"),
        (basic_attributes([1]) + attr(4, b"\0\1"), "MULTI_EXIT_DISC of 2"),
        (attr(1, b"\0") + attr(2, b"\2\3\0\0\0\1") + attr(3, b"\xc0\0\2\1"), "AS_PATH"),
        (attr(1, b"\0") + attr(2, b"\2\0") + attr(3, b"\xc0\0\2\1"), "empty segment"),
        (basic_attributes([1]) + b"\xc0\x08\x09\0\0", "runs past"),
        (basic_attributes([1]) + attr(32, b"\0" * 8), "LARGE_COMMUNITY of 8"),
        (basic_attributes([1]) + attr(10, b"\1\2\3"), "CLUSTER_LIST of 3"),
        (attr(1, b"\0", flags=0xC0) + attr(2, b"") + attr(3, b"\xc0\0\2\1"), "flags"),
    ],
)
def test_a_malformed_attribute_withdraws_the_updates_routes(attributes: bytes, words: str) -> None:
    reason = withdrawn_reason(update(attributes=attributes, nlri=prefix("198.51.100.0/24")))
    assert reason.startswith("bad attributes: ") and words in reason


def test_malformed_discardable_attributes_are_dropped_and_the_route_kept() -> None:
    body = update(
        attributes=basic_attributes([64496, 64497])
        + attr(6, b"\1")  # ATOMIC_AGGREGATE with a value
        + attr(7, b"\0\1\2")  # AGGREGATOR of 3 octets
        + attr(17, b"\2\1\0"),  # AS4_PATH cut short (ignored on a 4-octet session anyway)
        nlri=prefix("198.51.100.0/24"),
    )
    a = announced(body).attributes
    assert (a.atomic_aggregate, a.aggregator, a.origin_as) == (False, "", 64497)
    body = update(
        attributes=basic_attributes([65001, 23456], size=2) + attr(17, b"\2\5\0\0"),
        nlri=prefix("198.51.100.0/24"),
    )
    assert announced(body, ASN2).attributes.as_path == ((AS_SEQUENCE, (65001, 23456)),)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"\0\0\0", "shorter"),
        (b"\0\x09\0\0", "withdrawn routes length 9"),
        (b"\0\0\0\x09\0", "path attribute length 9"),
        (update(withdrawn=bytes([33, 1, 2, 3, 4, 5])), "exceeds 32"),
        (update(attributes=basic_attributes([1]), nlri=bytes([24, 1, 2])), "runs past"),
        (update(attributes=mp_unreach(2, b"") + mp_unreach(2, b"")), "twice"),
        (update(attributes=attr(14, b"\0\2\1\x20\0")), "runs past"),
        (update(attributes=attr(15, b"\0\2\1", flags=0x40)), "not optional"),
        (update(attributes=mp_unreach(2, bytes([129]) + b"\0" * 17)), "exceeds 128"),
        (update(attributes=attr(14, b"\0\2\1\5" + b"\0" * 6)), "next hop of 5"),
    ],
)
def test_an_update_whose_framing_or_nlri_cannot_be_parsed_is_refused(
    body: bytes, words: str
) -> None:
    with pytest.raises(UpdateError, match=words):
        decode(body)


def test_a_refused_update_leaves_the_next_one_intact() -> None:
    decoder = UpdateDecoder()
    with pytest.raises(UpdateError):
        decoder.decode(PEER, update(withdrawn=bytes([40, 1])), ASN4)
    good = update(attributes=basic_attributes([7]), nlri=prefix("198.51.100.0/24"))
    (event,) = decoder.decode(PEER, good, ASN4)
    assert event.prefixes == ("198.51.100.0/24",) and event.attributes.origin_as == 7


# -- OPEN ----------------------------------------------------------------------------------


def test_four_octet_as_needs_both_opens() -> None:
    ours = parse_open(open_body(64500, asn4=True))
    assert negotiate(ours, parse_open(open_body(64500, asn4=True))).asn4
    assert not negotiate(ours, parse_open(open_body(64500, asn4=False))).asn4


def test_add_path_is_on_where_we_receive_and_the_router_sends() -> None:
    ours = parse_open(open_body(64500, add_path={(1, 1): 1, (2, 1): 1}))
    theirs = parse_open(open_body(64500, add_path={(1, 1): 3, (2, 1): 1}))
    assert negotiate(ours, theirs).add_path == frozenset({V4})
    assert negotiate(parse_open(open_body(64500)), theirs).add_path == frozenset()
