"""ExaBGP packets lines through ExabgpParser: OPENs set the session up, UPDATEs decode,
every fault is a FeedError the feed can count."""

from __future__ import annotations

import struct

import pytest

from bench.fuzz_raw import (
    PEER,
    as_path,
    attr,
    basic_attributes,
    packets_line,
    prefix,
    session_lines,
    update,
)
from ribd.events import (
    Notification,
    OpenReceived,
    RouteRefreshMarker,
    RoutesAnnounced,
    UpdateTime,
)
from ribd.feed_counters import bad_line_category
from ribd.parser import ExabgpParser, FeedError

V4 = "ipv4 unicast"


def parser_with_session(**kwargs) -> ExabgpParser:
    parser = ExabgpParser()
    sent, received = session_lines(**kwargs)
    assert parser.parse(sent) == []
    assert parser.parse(received) == [
        OpenReceived(PEER, kwargs.get("graceful_restart", False), (V4, "ipv6 unicast"))
    ]
    return parser


def test_the_routers_open_says_whether_it_offers_graceful_restart() -> None:
    parser_with_session(graceful_restart=True)  # its OpenReceived says so
    parser_with_session(graceful_restart=False)
    parser = ExabgpParser()
    received = session_lines(graceful_restart=True)[1]
    # The router's OPEN alone (ours not seen yet) still tells.
    assert parser.parse(received) == [OpenReceived(PEER, True, (V4, "ipv6 unicast"))]


def test_an_update_line_gives_its_time_and_routes() -> None:
    parser = parser_with_session()
    body = update(attributes=basic_attributes([64496, 64511]), nlri=prefix("198.51.100.0/24"))
    stamp, routes = parser.parse(packets_line(body, time_=1700000000.5))
    assert stamp == UpdateTime(PEER, 1700000000.5)
    assert isinstance(routes, RoutesAnnounced)
    assert routes.prefixes == ("198.51.100.0/24",)
    assert routes.attributes.origin_as == 64511
    assert routes.attributes.next_hop == "192.0.2.1"


def test_the_opens_decide_how_as_paths_are_read() -> None:
    body = update(
        attributes=basic_attributes([65001, 23456], size=2) + attr(17, as_path((2, [4200000001]))),
        nlri=prefix("198.51.100.0/24"),
    )
    parser = parser_with_session(asn4=False)
    routes = parser.parse(packets_line(body))[-1]
    assert routes.attributes.as_path == ((2, (65001, 4200000001)),)


def test_add_path_from_the_opens() -> None:
    parser = parser_with_session(add_path=True)
    body = update(attributes=basic_attributes([1]), nlri=prefix("198.51.100.0/24", 9))
    assert parser.parse(packets_line(body))[-1].path_ids == (9,)


def test_an_update_before_any_open_is_counted_not_guessed() -> None:
    parser = ExabgpParser()
    body = update(attributes=basic_attributes([1]), nlri=prefix("198.51.100.0/24"))
    with pytest.raises(FeedError, match="no OPEN") as info:
        parser.parse(packets_line(body))
    assert bad_line_category(str(info.value)) == "malformed"


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (packets_line(b"\0\x09\0\0"), "withdrawn routes length"),
        (packets_line(b"").replace(b'"body":"0x"', b'"body":"0xXYZ"'), "not hex"),
        (packets_line(b"").replace(b'"category":2', b'"category":"2"'), "category"),
        (packets_line(b"\1", category=1, direction="receive"), "OPEN"),
        (packets_line(b"\0\0\0\0", peer="nowhere"), "no address"),
        (b'{"category": 2, "neighbor": 5}', "no neighbor"),
        (packets_line(b"\1\2\3", category=5), "ROUTE-REFRESH"),
    ],
)
def test_bad_raw_lines_are_feed_errors_naming_the_fault(line: bytes, words: str) -> None:
    parser = parser_with_session()
    with pytest.raises(FeedError, match=words):
        parser.parse(line)


def test_notification_and_route_refresh_markers() -> None:
    parser = parser_with_session()
    (note,) = parser.parse(packets_line(b"\x06\x02bye", category=3))
    assert note == Notification(PEER, "receive", 6, 2, "bye")
    (marker,) = parser.parse(packets_line(struct.pack("!HBB", 1, 1, 1), category=5))
    assert marker == RouteRefreshMarker(PEER, V4, True)
    assert parser.parse(packets_line(b"", category=4)) == []
    # a plain refresh request (subtype 0) carries nothing
    assert parser.parse(packets_line(struct.pack("!HBB", 1, 0, 1), category=5)) == []


def test_our_own_updates_are_not_routes() -> None:
    parser = parser_with_session()
    body = update(attributes=basic_attributes([1]), nlri=prefix("198.51.100.0/24"))
    assert parser.parse(packets_line(body, direction="send")) == []


def test_the_launchers_hexstring_writes_what_exabgps_does() -> None:
    from exabgp.util import hexstring

    from ribd.exabgp_run import fast_hexstring

    for data in (b"", b"\x00\xff\x10", bytes(range(256)) * 3):
        assert fast_hexstring(data) == hexstring(data)


def test_a_deeply_nested_raw_line_is_refused_as_nested_and_a_good_one_beside_it_applies() -> None:
    """The nesting walk runs for raw lines that fail only: their error still says why."""
    parser = parser_with_session()
    deep = b'{"category": 2, "neighbor": ' + b"[" * 500 + b"]" * 500 + b"}"
    with pytest.raises(FeedError, match="nested deeper"):
        parser.parse(deep)
    body = update(attributes=basic_attributes([64496]), nlri=prefix("198.51.100.0/24"))
    assert parser.parse(packets_line(body))[-1].prefixes == ("198.51.100.0/24",)
