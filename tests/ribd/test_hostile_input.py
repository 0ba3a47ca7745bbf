"""Hostile feed lines: every one is refused or defused, counted, and the lines after it applied."""

from __future__ import annotations

import contextlib
import threading

import orjson
import pytest

from ribd.events import Notification, RoutesAnnounced, RoutesWithdrawn, SessionState, UpdateTime
from ribd.feed import FeedServer, bad_line_category
from ribd.parser import ExabgpParser, FeedError
from ribd.rib import Rib
from ribd.speaker import wait_until
from tests.ribd.test_feed import V4, announce_v4, path, send, update

PEER = "127.0.0.2"
GOOD = {"origin": "igp", "as-path": path(65001, 65002)}


def nested(opening: bytes, depth: int) -> bytes:
    closing = {b"[": b"]", b"{": b"}"}.get(opening, b"")
    return opening * depth + closing * depth


def line(kind: str, neighbor: dict, **top) -> bytes:
    """A message of ``kind`` from PEER with ``neighbor`` fields merged in."""
    n = {"address": {"local": "127.0.0.1", "peer": PEER}, "asn": {"local": 65000, "peer": 65001}}
    msg = {"exabgp": "5.0.0", "time": 1.0, "type": kind, "neighbor": n | neighbor}
    return orjson.dumps(msg | top)


def with_raw(template: bytes, raw: bytes) -> bytes:
    """``template`` (JSON holding the string "RAW") with RAW replaced by arbitrary bytes."""
    return template.replace(b'"RAW"', raw)


DEEP = 1000  # below orjson's own limit (1024): decoded, then checked by us
NESTED_LINES = {
    "object opened 100,000 times": b'{"a":' * 100_000,
    "list opened 100,000 times": b"[" * 100_000,
    "state reason": with_raw(line("state", {"state": "down", "reason": "RAW"}), nested(b"[", DEEP)),
    "notification direction": with_raw(
        line("notification", {"direction": "RAW", "notification": {"code": 6}}), nested(b"[", DEEP)
    ),
    "notification code": with_raw(
        line("notification", {"notification": {"code": "RAW"}}), nested(b"[", DEEP)
    ),
    "message type": with_raw(line("state", {}, type="RAW"), nested(b"[", DEEP)),
    "state itself": with_raw(line("state", {"state": "RAW"}), nested(b"[", DEEP)),
    "as-path": with_raw(
        update(announce_v4("10.9.0.0/24"), attribute={"origin": "igp", "as-path": "RAW"}),
        nested(b"[", DEEP),
    ),
    "origin": with_raw(
        update(announce_v4("10.9.0.0/24"), attribute={"origin": "RAW"}), nested(b"[", DEEP)
    ),
    "nlri entry": with_raw(update(announce_v4("RAW")), nested(b"[", DEEP)),
    "path-information": with_raw(
        update({V4: {"192.0.2.1": [{"nlri": "10.9.0.0/24", "path-information": "RAW"}]}}),
        nested(b"[", DEEP),
    ),
    "next hop group": with_raw(update({V4: {"192.0.2.1": "RAW"}}), nested(b"[", DEEP)),
    "community": with_raw(
        update(announce_v4("10.9.0.0/24"), attribute={"origin": "igp", "community": ["RAW"]}),
        nested(b"[", DEEP),
    ),
    "extended community": with_raw(
        update(
            announce_v4("10.9.0.0/24"), attribute={"origin": "igp", "extended-community": ["RAW"]}
        ),
        nested(b"{", 0) + b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    ),
}


def parse_in_a_thread(parser: ExabgpParser, data: bytes) -> list:
    """parse() in a fresh thread, as the feed does (its stack is the tightest)."""
    out: list = []

    def run() -> None:
        try:
            out.append(("ok", parser.parse(data)))
        except BaseException as exc:
            out.append(("raised", exc))

    t = threading.Thread(target=run)
    t.start()
    t.join()
    return out[0]


@pytest.mark.parametrize("case", sorted(NESTED_LINES))
def test_deeply_nested_json_is_a_bad_line_with_a_short_reason(case: str) -> None:
    parser = ExabgpParser()
    outcome, value = parse_in_a_thread(parser, NESTED_LINES[case])
    if outcome == "ok":  # only where RFC 7606 applies: the route becomes a withdraw
        assert all(type(e) in (RoutesWithdrawn, UpdateTime) for e in value), value
        reasons = [e.reason for e in value if type(e) is RoutesWithdrawn]
        assert reasons and all(r.startswith("bad attributes") for r in reasons)
        assert all(len(r) < 300 for r in reasons)
        return
    assert type(value) is FeedError, repr(value)[:300]
    assert len(str(value)) < 300
    assert bad_line_category(str(value)) != "other", str(value)


@pytest.fixture
def server(short_tmp):
    rib = Rib()
    feed = FeedServer(str(short_tmp / "feed.sock"), rib, exabgp_gone_hold_time=60)
    feed.start()
    yield feed
    feed.stop()


def test_a_nested_line_does_not_drop_the_connection_or_the_lines_after_it(server) -> None:
    lines = [update(announce_v4("10.0.0.0/24"), attribute=GOOD)]
    lines += [NESTED_LINES[case] for case in sorted(NESTED_LINES)]
    lines += [update(announce_v4(f"10.0.{i}.0/24"), attribute=GOOD) for i in range(1, 50)]
    with __import__("socket").socket(__import__("socket").AF_UNIX) as s:
        s.connect(server.socket_path)
        s.sendall(b"\n".join(lines) + b"\n")
        wait_until(lambda: server.stats()["lines"] == len(lines), 30, what="every line read")
        stats = server.stats()
        assert stats["relays_connected"] == 0 and stats["relay_connections"] == 1
        # Still connected: the same connection takes more lines.
        s.sendall(update(announce_v4("10.1.0.0/24"), attribute=GOOD) + b"\n")
        wait_until(lambda: server.stats()["lines"] == len(lines) + 1, 30, what="one more line")
    prefixes = {m.prefix for m in server.rib.routes(PEER, V4)}
    assert prefixes == {f"10.0.{i}.0/24" for i in range(50)} | {"10.1.0.0/24"}
    stats = server.stats()
    assert stats["bad_lines"] + stats["treated_as_withdraw"] >= len(NESTED_LINES)


# -- item 2: odd values are refused where they enter ----------------------------------------

REFUSED = {
    "negative peer AS": line("state", {"state": "up", "asn": {"local": 1, "peer": -1}}),
    "peer AS above 2**32-1": line("state", {"state": "up", "asn": {"peer": 2**32}}),
    "peer AS a string": line("state", {"state": "up", "asn": {"peer": "65001"}}),
    "router id of 300 chars": line("state", {"state": "up", "router-id": "1" * 300}),
    "router id not an address": line("state", {"state": "up", "router-id": "router-one"}),
    "peer not an address": line("state", {"state": "up", "address": {"peer": "r1"}}),
    "peer of 300 chars": line("state", {"state": "up", "address": {"peer": "1" * 300}}),
    "peer with a NUL": line("state", {"state": "up", "address": {"peer": "127.0.0.1\x00"}}),
    "reason not a string": line("state", {"state": "down", "reason": ["x"]}),
    "negative update time": update(announce_v4("10.0.0.0/24"), attribute=GOOD).replace(
        b'"time":1.0', b'"time":-1.0'
    ),
    "update time past year 9999": update(announce_v4("10.0.0.0/24"), attribute=GOOD).replace(
        b'"time":1.0', b'"time":1e300'
    ),
    "update time a string": update(announce_v4("10.0.0.0/24"), attribute=GOOD).replace(
        b'"time":1.0', b'"time":"now"'
    ),
    "update peer not an address": update(announce_v4("10.0.0.0/24"), attribute=GOOD, peer="x"),
    "notification code 256": line("notification", {"notification": {"code": 256, "subcode": 1}}),
    "notification code -1": line("notification", {"notification": {"code": -1, "subcode": 1}}),
    "notification subcode 300": line("notification", {"notification": {"code": 6, "subcode": 300}}),
    "notification code a float": line("notification", {"notification": {"code": 6.5}}),
    "notification message a list": line(
        "notification", {"notification": {"code": 6, "message": ["x"]}}
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_odd_values_are_refused_by_the_parser(case: str) -> None:
    with pytest.raises(FeedError) as err:
        ExabgpParser().parse(REFUSED[case])
    assert len(str(err.value)) < 300
    assert bad_line_category(str(err.value)) in ("value", "malformed"), str(err.value)


TREATED_AS_WITHDRAW = {
    "next hop not an address": update(announce_v4("10.0.0.0/24", nh="next-hop"), attribute=GOOD),
    "originator id not an address": update(
        announce_v4("10.0.0.0/24"), attribute=GOOD | {"originator-id": "orig"}
    ),
    "cluster id not an address": update(
        announce_v4("10.0.0.0/24"), attribute=GOOD | {"cluster-list": ["10.0.0.1", "c2"]}
    ),
    "originator id an IPv6 address": update(
        announce_v4("10.0.0.0/24"), attribute=GOOD | {"originator-id": "2001:db8::1"}
    ),
}


@pytest.mark.parametrize("case", sorted(TREATED_AS_WITHDRAW))
def test_bad_addresses_in_attributes_withdraw_the_route(case: str) -> None:
    events = ExabgpParser().parse(TREATED_AS_WITHDRAW[case])
    withdrawn = [e for e in events if type(e) is RoutesWithdrawn]
    assert [e.prefixes for e in withdrawn] == [("10.0.0.0/24",)]
    assert withdrawn[0].reason.startswith("bad attributes")
    assert not [e for e in events if type(e) is RoutesAnnounced]


def test_good_values_at_the_edges_are_accepted() -> None:
    parser = ExabgpParser()
    [state] = parser.parse(
        line("state", {"state": "up", "asn": {"peer": 2**32 - 1}, "router-id": "255.255.255.255"})
    )
    assert state == SessionState(PEER, "up", "", 2**32 - 1, "255.255.255.255")
    [note] = parser.parse(
        line("notification", {"direction": "receive", "notification": {"code": 255, "subcode": 0}})
    )
    assert (note.code, note.subcode, note.direction) == (255, 0, "receive")
    assert type(note) is Notification
    events = parser.parse(
        update(
            {"ipv6 unicast": {"2001:DB8::1": [{"nlri": "2001:db8::/32"}]}},
            attribute=GOOD | {"originator-id": "10.0.0.1", "cluster-list": ["10.0.0.2"]},
            peer="2001:DB8:0::2",
        ).replace(b'"time":1.0', b'"time":0')
    )
    assert events[0] == UpdateTime("2001:db8::2", 0.0)
    assert events[1].neighbor == "2001:db8::2"  # canonical, as the config writes it
    assert events[1].attributes.next_hop == "2001:db8::1"


def test_a_forged_state_line_no_longer_breaks_the_next_snapshot(server, tmp_path) -> None:
    """The issue's sequence: forged state, then a snapshot: the real routes come back."""
    from ribd.snapshot import load_snapshot, write_snapshot

    prefixes = [f"10.{i // 256}.{i % 256}.0/24" for i in range(300)]
    lines = [update(announce_v4(p), attribute=GOOD) for p in prefixes]
    lines += [REFUSED["negative peer AS"], REFUSED["router id of 300 chars"]]
    lines += [REFUSED["negative update time"]]
    send(server.socket_path, b"\n".join(lines) + b"\n")
    wait_until(lambda: server.stats()["lines"] == len(lines), 30, what="every line read")
    assert server.stats()["bad_lines"] == 3
    assert server.rib.routers[PEER].peer_as == 0 and server.rib.routers[PEER].last_update == 1.0
    write_snapshot(server.rib, tmp_path / "rib.snapshot")
    restored = Rib()
    info = load_snapshot(restored, tmp_path / "rib.snapshot", hold_time=60)
    assert info.prefixes[V4] == 300


# -- item 3: only configured neighbors get a RIB ----------------------------------------------


def test_lines_for_neighbors_not_configured_are_counted_not_stored(server) -> None:
    server.rib.neighbors = frozenset({PEER})
    forged = [
        update(announce_v4(f"10.{i // 256}.{i % 256}.0/24"), attribute=GOOD, peer=f"10.66.{i}.1")
        for i in range(200)
    ]
    forged.append(line("state", {"state": "up", "address": {"peer": "10.66.0.1"}}))
    real = [update(announce_v4("10.0.0.0/24"), attribute=GOOD)]
    send(server.socket_path, b"\n".join(forged[:100] + real + forged[100:]) + b"\n")
    # (a line is counted read before it is handled: the last one's bad-line count
    # comes after the line count, so both are waited for)
    wait_until(
        lambda: (
            server.stats()["lines"] == len(forged) + 1
            and sum(server.stats()["bad_lines_by_category"].values()) >= len(forged)
        ),
        30,
        what="every line read and handled",
    )
    stats = server.stats()
    assert stats["bad_lines_by_category"] == {"unknown_neighbor": len(forged)}
    assert set(server.rib.routers) == {PEER}
    assert [m.prefix for m in server.rib.routes(PEER, V4)] == ["10.0.0.0/24"]
    assert len(server.rib.tables[V4].store) == 1


def test_the_rib_itself_refuses_unknown_neighbors_and_none_accepts_all() -> None:
    parser = ExabgpParser()
    rib = Rib()
    rib.neighbors = frozenset({PEER})
    stranger = update(announce_v4("10.0.0.0/24"), attribute=GOOD, peer="10.6.6.6")
    rib.apply_many(parser.parse(stranger))
    rib.apply_many(parser.parse(line("state", {"state": "up", "address": {"peer": "10.6.6.6"}})))
    rib.apply_many(parser.parse(update(announce_v4("10.0.0.0/24"), attribute=GOOD)))
    assert set(rib.routers) == {PEER}
    assert rib.stats()["unknown_neighbor_events"] == 3
    rib.neighbors = None  # no allow-list (tools, tests): every neighbor
    rib.apply_many(parser.parse(stranger))
    assert set(rib.routers) == {PEER, "10.6.6.6"}


# -- item 5: the socket: who may connect, how long a line may be --------------------------------


def test_feed_socket_is_private_in_a_private_directory(short_tmp) -> None:
    import os
    import stat

    directory = short_tmp / "run"
    feed = FeedServer(str(directory / "feed.sock"), Rib())
    feed.start()
    try:
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(feed.socket_path).st_mode) == 0o600
    finally:
        feed.stop()
    os.chmod(directory, 0o777)
    with pytest.raises(PermissionError, match="writable by other users"):
        FeedServer(str(directory / "feed.sock"), Rib()).start()


def test_connections_from_other_users_are_refused_and_counted(short_tmp) -> None:
    import os

    rib = Rib()
    # Only a uid that is not ours may deliver: our own connection is the stranger.
    feed = FeedServer(str(short_tmp / "feed.sock"), rib, allowed_uids=frozenset({os.geteuid() + 1}))
    feed.start()
    try:
        # The refusal may close the connection before the send: either way, no line.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            send(feed.socket_path, update(announce_v4("10.0.0.0/24"), attribute=GOOD) + b"\n")
        wait_until(lambda: feed.stats()["refused_connections"] == 1, 30, what="refusal")
        assert feed.stats()["lines"] == 0 and rib.routers == {}
    finally:
        feed.stop()


SYSTEM_PYTHON = "/usr/bin/python3"  # one another user may run (our venv may be private)


@pytest.mark.skipif(
    __import__("os").geteuid() != 0 or not __import__("os").path.exists(SYSTEM_PYTHON),
    reason="needs root (to connect as another user) and /usr/bin/python3",
)
def test_a_process_of_another_user_cannot_deliver_lines(short_tmp, processes) -> None:
    import os

    os.chmod(short_tmp, 0o755)  # the directory check allows it; the socket is 0600
    feed = FeedServer(str(short_tmp / "run" / "feed.sock"), Rib())
    feed.start()
    try:
        code = (
            "import socket, sys\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "try:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n    sys.exit(3)\n"
            "try:\n    s.sendall(b'x\\n')\nexcept OSError:\n    pass  # refused: closed at once\n"
        )
        as_nobody = {"user": 65534, "cwd": "/", "env": {"PATH": "/usr/bin:/bin"}}
        child = processes([SYSTEM_PYTHON, "-c", code, feed.socket_path], **as_nobody)
        assert child.wait(30) == 3  # 0600: not even a connection
        # With the file mode opened up, the credentials check still refuses it.
        os.chmod(short_tmp / "run", 0o755)
        os.chmod(feed.socket_path, 0o666)
        child = processes([SYSTEM_PYTHON, "-c", code, feed.socket_path], **as_nobody)
        assert child.wait(30) == 0
        wait_until(lambda: feed.stats()["refused_connections"] == 1, 30, what="refusal")
        assert feed.stats()["lines"] == 0
    finally:
        feed.stop()


def test_an_endless_line_is_skipped_up_to_its_newline_and_later_lines_applied(short_tmp) -> None:
    import socket

    rib = Rib()
    feed = FeedServer(str(short_tmp / "feed.sock"), rib, max_line_bytes=64 * 1024)
    feed.start()
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(feed.socket_path)
            s.sendall(update(announce_v4("10.0.0.0/24"), attribute=GOOD) + b"\n")
            for _ in range(64):  # 16 MiB without a newline, 256 KiB at a time
                s.sendall(b"x" * 256 * 1024)
            s.sendall(b"\n" + update(announce_v4("10.0.1.0/24"), attribute=GOOD) + b"\n")
            s.sendall(b"y" * (64 * 1024 + 1) + b"\n")  # just over, in one piece
            s.sendall(update(announce_v4("10.0.2.0/24"), attribute=GOOD) + b"\n")
            wait_until(lambda: feed.stats()["lines"] == 5, 60, what="every line read")
        stats = feed.stats()
        assert stats["bad_lines_by_category"] == {"too_long": 2}
        assert feed.max_held_bytes <= 64 * 1024 + 256 * 1024  # never buffered the endless line
        assert {m.prefix for m in rib.routes(PEER, V4)} == {f"10.0.{i}.0/24" for i in range(3)}
    finally:
        feed.stop()


CONTROL = b'{"type":"ribd-relay"'
HOSTILE_CONTROL = [
    CONTROL + b',"event":' + nested(b"[", DEEP) + b"}",
    CONTROL + b',"event":"lost","lines":"many"}',
    CONTROL + b',"event":"lost","lines":' + nested(b"[", DEEP) + b"}",
    CONTROL + b',"event":"lost","lines":-5}',
    CONTROL + b',"event":"hello","pid":' + nested(b"[", DEEP) + b"}",
    CONTROL + b',"event":"hello","pid":1,"started":1.0,"x":' + nested(b"[", DEEP) + b"}",
    CONTROL + b"]",
]


def test_hostile_relay_control_lines_are_bad_lines_and_the_connection_stays(server) -> None:
    lines = [*HOSTILE_CONTROL, update(announce_v4("10.0.0.0/24"), attribute=GOOD)]
    send(server.socket_path, b"\n".join(lines) + b"\n")
    wait_until(lambda: server.rib.routers, 30, what="the good line after the control lines")
    stats = server.stats()
    assert stats["bad_lines"] == len(HOSTILE_CONTROL)
    assert stats["relay_lost_lines"] == 0 and stats["relay_connections"] == 1
    assert [m.prefix for m in server.rib.routes(PEER, V4)] == ["10.0.0.0/24"]
