"""The ExaBGP JSON parser, against real captures of both API formats."""

from __future__ import annotations

import json

import pytest

from ribd import json_typed
from ribd.attributes import AS_CONFED_SEQUENCE, AS_CONFED_SET, AS_SEQUENCE, AS_SET
from ribd.events import (
    EndOfRib,
    ExabgpShutdown,
    Notification,
    RoutesAnnounced,
    RoutesWithdrawn,
    SessionState,
)
from ribd.parser import ExabgpParser, FeedError
from tests.conftest import SAMPLES, need

FORMATS = ["v5.0.15", "v4.2.25"]


def events_of(path):
    parser = ExabgpParser()
    out = []
    for line in need(path).read_bytes().splitlines():
        out.extend(parser.parse(line))
    return out


def announced(events):
    return {
        (e.family, p, (e.path_ids or [0] * len(e.prefixes))[i]): e.attributes
        for e in events
        if isinstance(e, RoutesAnnounced)
        for i, p in enumerate(e.prefixes)
    }


@pytest.mark.parametrize("version", FORMATS)
def test_every_captured_line_parses(version):
    for name in (f"{version}-receiver.jsonl", f"{version}-receiver-addpath.jsonl"):
        parser = ExabgpParser()
        for line in need(SAMPLES / name).read_bytes().splitlines():
            parser.parse(line)  # raises on any line it cannot use


@pytest.mark.parametrize("version", FORMATS)
def test_rich_attributes_are_kept(version):
    events = events_of(SAMPLES / f"{version}-receiver.jsonl")
    a = announced(events)[("ipv4 unicast", "192.0.2.0/24", 0)]
    assert a.as_path == ((AS_SEQUENCE, (65001, 65002, 65003)),)
    assert (a.peer_as, a.origin_as) == (65001, 65003)
    assert a.origin == "igp"
    assert a.med == 100
    assert a.local_pref is None
    assert a.next_hop == "127.0.0.1"
    assert a.community_strings() == ["65001:100", "65001:200", "65535:65281"]
    assert a.large_community_strings() == ["65001:1:2", "65001:3:4"]
    assert a.extended_communities == ("target:65001:100", "origin:65001:0.0.0.200")
    assert a.originator_id == "10.0.0.1"
    assert a.cluster_list == ("10.0.0.2", "10.0.0.3")
    assert a.atomic_aggregate is True
    assert a.aggregator == "65001:10.0.0.1"


@pytest.mark.parametrize("version", FORMATS)
def test_trailing_as_set_gives_the_aggregator_as_origin(version):
    a = announced(events_of(SAMPLES / f"{version}-receiver.jsonl"))
    agg = a[("ipv4 unicast", "198.51.100.0/24", 0)]
    assert agg.as_path == ((AS_SEQUENCE, (65001, 65004)), (AS_SET, (65010, 65011)))
    assert (agg.origin_as, agg.origin_as_highest, agg.origin_from_set) == (65004, 65011, True)
    v6 = a[("ipv6 unicast", "2001:db8:1::/48", 0)]
    assert (v6.peer_as, v6.origin_as) == (65001, 4200000001)
    assert v6.large_community_strings() == ["4200000001:7:8"]


@pytest.mark.parametrize("version", FORMATS)
def test_session_states_eor_notifications_and_shutdown(version):
    events = events_of(SAMPLES / f"{version}-receiver.jsonl")
    states = [e.state for e in events if isinstance(e, SessionState)]
    assert states[:2] == ["connected", "up"] and "down" in states
    down = next(e for e in events if isinstance(e, SessionState) and e.state == "down")
    assert down.reason
    eors = {e.family for e in events if isinstance(e, EndOfRib)}
    assert eors == {"ipv4 unicast", "ipv6 unicast"}
    assert any(isinstance(e, Notification) and e.code == 6 for e in events)
    assert isinstance(events[-1], ExabgpShutdown)
    withdrawn = {p for e in events if isinstance(e, RoutesWithdrawn) for p in e.prefixes}
    assert {"203.0.113.0/25", "2001:db8:2::/48"} <= withdrawn


@pytest.mark.parametrize("version", FORMATS)
def test_add_path_keys_routes_by_prefix_and_path_id(version):
    events = events_of(SAMPLES / f"{version}-receiver-addpath.jsonl")
    a = announced(events)
    assert ("ipv4 unicast", "192.0.2.0/24", 1) in a
    assert ("ipv4 unicast", "192.0.2.0/24", 2) in a
    assert ("ipv4 unicast", "198.51.100.0/24", 0x01020304) in a
    assert ("ipv6 unicast", "2001:db8:1::/48", 7) in a
    wd = [e for e in events if isinstance(e, RoutesWithdrawn)]
    assert any(e.prefixes == ("192.0.2.0/24",) and e.path_ids == (2,) for e in wd)


@pytest.mark.parametrize("version", FORMATS)
def test_confederation_segments_are_kept_and_skipped_for_as_numbers(version):
    (line,) = need(SAMPLES / "decode" / f"mkupdate-{version}.json").read_bytes().splitlines()
    (ev,) = [e for e in ExabgpParser().parse(line) if isinstance(e, RoutesAnnounced)]
    a = ev.attributes
    if version.startswith("v4"):
        # 4.2 groups by type; we rebuild RFC 5065 order: confederation first.
        assert a.as_path == (
            (AS_CONFED_SEQUENCE, (64512, 64513)),
            (AS_CONFED_SET, (64514,)),
            (AS_SEQUENCE, (65001, 65005)),
            (AS_SET, (65020, 65021)),
        )
        assert (a.peer_as, a.origin_as) == (65001, 65005)
    else:
        # 5.0.15 labels confederation segments "as-sequence": indistinguishable.
        assert a.as_path[0] == (AS_SEQUENCE, (65001, 65005))
        assert len(a.as_path) == 4


@pytest.mark.parametrize("version", FORMATS)
def test_as_set_in_the_middle_does_not_change_the_origin(version):
    (line,) = need(SAMPLES / "decode" / f"mkupdate2-{version}.json").read_bytes().splitlines()
    (ev,) = [e for e in ExabgpParser().parse(line) if isinstance(e, RoutesAnnounced)]
    if version.startswith("v5"):
        assert ev.attributes.origin_as == 65003
        assert not ev.attributes.origin_from_set
    else:  # 4.2 lost the segment order and shows the set last
        assert ev.attributes.origin_from_set


@pytest.mark.parametrize("version", FORMATS)
def test_missing_as_path_is_an_empty_path(version):
    (line,) = need(SAMPLES / "decode" / f"mkupdate3-case1-{version}.json").read_bytes().splitlines()
    events = ExabgpParser().parse(line)
    (ann,) = [e for e in events if isinstance(e, RoutesAnnounced)]
    assert ann.attributes.as_path == ()
    assert ann.attributes.empty_path
    assert (ann.attributes.peer_as, ann.attributes.origin_as) == (0, 0)
    assert ann.attributes.local_pref == 250 and ann.attributes.med == 0
    (wd,) = [e for e in events if isinstance(e, RoutesWithdrawn)]
    assert wd.prefixes == ("10.9.0.0/16",)


@pytest.mark.parametrize("version", FORMATS)
def test_link_local_second_next_hop_counts_each_prefix_once(version):
    (line,) = need(SAMPLES / "decode" / f"mkupdate3-case2-{version}.json").read_bytes().splitlines()
    events = ExabgpParser().parse(line)
    (ann,) = [e for e in events if isinstance(e, RoutesAnnounced)]
    assert ann.prefixes == ("2001:db8:a::/48", "2001:db8:b::/48")
    assert ann.attributes.next_hop == "2001:db8::1"


def update_line(attribute, nlri=("192.0.2.0/24",), family="ipv4 unicast", nh="127.0.0.1"):
    return json.dumps(
        {
            "exabgp": "5.0.0",
            "type": "update",
            "time": 1.0,
            "neighbor": {
                "address": {"local": "127.0.0.2", "peer": "127.0.0.1"},
                "message": {
                    "update": {
                        "attribute": attribute,
                        "announce": {family: {nh: [{"nlri": n} for n in nlri]}},
                    }
                },
            },
        }
    ).encode()


@pytest.mark.parametrize(
    "attribute, why",
    [
        ({"origin": "igp", "as-path": {"0": {"element": "as-sequence", "value": [-1]}}}, "AS"),
        ({"origin": "igp", "as-path": {"0": {"element": "bogus", "value": [1]}}}, "type"),
        ({"origin": "igp", "community": [[70000, 1]]}, "community"),
        ({"origin": "igp", "med": "ten"}, "med"),
        ({"origin": "sideways"}, "origin"),
        ({"origin": "igp", "as-path": "65001 65002"}, "as-path"),
    ],
)
def test_broken_attributes_become_a_withdraw(attribute, why):
    (ev,) = [e for e in ExabgpParser().parse(update_line(attribute)) if not hasattr(e, "time")]
    assert isinstance(ev, RoutesWithdrawn)
    assert ev.prefixes == ("192.0.2.0/24",)
    assert "bad attributes" in ev.reason and why.lower() in ev.reason.lower()


@pytest.mark.parametrize(
    "line, why",
    [
        (b'{"exabgp": "5.0.0", "type": "update", "neighbor": {"addr', "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"type": "telepathy"}', "unknown message type"),
        (b'{"type": "update", "neighbor": {}}', "peer address"),
        (update_line({"origin": "igp"}, nlri=("10.0.0.0/abc",)), "bad or missing length"),
        (update_line({"origin": "igp"}, nlri=("10.0.0.1/8",)), "host bits"),
        (update_line({"origin": "igp"}, nlri=("::1/128",)), "too long for IPv4"),
        (update_line({"origin": "igp"}, nlri=("::1/32",)), "not an IPv4 address"),
        (update_line({"origin": "igp"}, nlri=("10.0.0.0/8",), family="ipv6 unicast"), "IPv6"),
    ],
)
def test_unusable_lines_raise_with_the_reason(line, why):
    with pytest.raises(FeedError, match=why):
        ExabgpParser().parse(line)


def test_identical_attributes_are_stored_once_across_routers():
    parser = ExabgpParser()
    first = parser.parse(update_line({"origin": "igp", "community": [[1, 2]]}))[-1]
    line2 = update_line({"origin": "igp", "community": [[1, 2]]}).replace(
        b'"peer": "127.0.0.1"', b'"peer": "127.0.0.9"'
    )
    second = parser.parse(line2)[-1]
    assert first.neighbor != second.neighbor
    assert first.attributes is second.attributes
    assert len(parser.interner) == 1


def test_ignored_families_and_message_types_yield_nothing():
    parser = ExabgpParser()
    assert parser.parse(b'{"type": "keepalive", "neighbor": {}}') == []
    line = update_line({"origin": "igp"}, family="ipv4 flow")
    assert [e for e in parser.parse(line) if not hasattr(e, "time")] == []


# -- the typed path agrees with the generic one ---------------------------------

# Values that break one check or another, written into update lines in place of
# any value. Strings "@n" become the raw JSON text RAW[n] (not expressible as a
# Python value, or meant to be invalid JSON).
RAW = [b"1e400", b"1" * 320, b"18446744073709551615", b"9223372036854775808", b'"\xff"']
RAW += [b'"\\ud800"', b"1.0", b"-0", b'"\\u0041"']
HOSTILE_VALUES = [
    *(f"@{i}" for i in range(len(RAW))),
    *(None, True, 0, -1, 65536, 2**32 - 1, 2**32, 2**63, 1.5, "", "x", "a" * 300, [], {}),
    *("igp", "as-set", "0", "00", "1", "fe80::1", "10.0.0.1/8", "10.0.0.0/33", "::/0"),
    *([1], [[1, 2]], [[1, 2, 3]], {"string": "x"}, {"value": 5}, {"nlri": "10.0.0.0/8"}),
    {"0": {"element": "as-set", "value": [1]}},
    {"nlri": "10.0.0.0/8", "path-information": "0.0.0.9"},
]
EXTRA_KEYS = ["x", "as-set", "confederation-path", "path-information", "eor", "1", "value"]


def _places(obj, at=()):
    """Every (container, key) of a decoded line."""
    items = (
        obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    )
    for k, v in items:
        yield at, k
        yield from _places(v, (*at, k))


def hostile_variants(line: bytes) -> list[bytes]:
    """``line`` with, in turn, each value replaced, each key dropped or joined by another."""
    obj = json.loads(line)
    out = []
    for at, key in _places(obj):
        edits = [("set", v) for v in HOSTILE_VALUES] + [("drop", None)]
        edits += [("add", k) for k in EXTRA_KEYS]
        for op, arg in edits:
            copy = json.loads(line)
            parent = copy
            for k in at:
                parent = parent[k]
            if op == "set":
                parent[key] = arg
            elif op == "drop" and isinstance(parent, dict):
                del parent[key]
            elif op == "add" and isinstance(parent, dict):
                parent[arg] = parent[key]
            else:
                continue
            text = json.dumps(copy).encode()
            for i, raw in enumerate(RAW):
                text = text.replace(b'"@%d"' % i, raw)
            out.append(text)
    return out


def typed_and_generic(parser, line):
    try:
        msg = json_typed.decode_update(line)
    except json_typed.NOT_TYPED:
        return None, None
    typed = parser._typed_update(msg)
    try:
        generic = parser._parse_generic(line)
    except FeedError as exc:
        generic = exc
    return typed, generic


def base_update_lines() -> list[bytes]:
    lines = [
        update_line(
            {
                "origin": "egp",
                "as-path": {
                    "0": {"element": "as-sequence", "value": [65001, 65002]},
                    "1": {"element": "as-set", "value": [65010, 65011]},
                },
                "med": 5,
                "local-preference": 100,
                "community": [[65001, 1]],
                "large-community": [[1, 2, 3]],
                "extended-community": [{"value": 7, "string": "target:1:1"}],
                "originator-id": "10.0.0.1",
                "cluster-list": ["10.0.0.2"],
                "atomic-aggregate": True,
                "aggregator": "65001:10.0.0.1",
            },
            nlri=("192.0.2.0/24", "198.51.100.0/25"),
        ),
        update_line(
            {"origin": "igp", "as-path": [65001], "as-set": [7, 8], "confederation-path": [9]},
            nlri=("2001:db8::/32",),
            family="ipv6 unicast",
            nh="2001:db8::1",
        ),
    ]
    if SAMPLES.is_dir():
        for name in ("v5.0.15-receiver-addpath.jsonl", "v4.2.25-receiver.jsonl"):
            lines += [x for x in (SAMPLES / name).read_bytes().splitlines() if b'"update"' in x]
    return lines


def test_well_formed_updates_take_the_typed_path():
    parser = ExabgpParser()
    for line in base_update_lines():
        if b'"eor"' in line:
            continue
        typed, generic = typed_and_generic(parser, line)
        assert typed is not None, line
        assert typed == generic


def test_typed_path_yields_the_generic_events_or_declines_on_hostile_lines():
    parser = ExabgpParser()
    typed_count = 0
    for base in base_update_lines()[:6]:
        for line in hostile_variants(base):
            typed, generic = typed_and_generic(parser, line)
            if typed is not None:
                typed_count += 1
                assert typed == generic, line
    assert typed_count > 100  # the variants do exercise the typed path
