"""FeedServer: lines over a real Unix socket into a real Rib."""

from __future__ import annotations

import gc
import gzip
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from ribd.feed import FeedServer, bad_line_category
from ribd.parser import ExabgpParser, FeedError
from ribd.relay import control_line
from ribd.rib import Rib
from ribd.speaker import wait_until

PEER = "127.0.0.2"
V4 = "ipv4 unicast"
V6 = "ipv6 unicast"


def update(
    announce: dict | None = None,
    withdraw: dict | None = None,
    attribute: dict | None = None,
    peer: str = PEER,
) -> bytes:
    body: dict = {}
    if attribute is not None or announce:
        body["attribute"] = attribute or {"origin": "igp"}
    if announce:
        body["announce"] = announce
    if withdraw:
        body["withdraw"] = withdraw
    msg = {
        "exabgp": "5.0.0",
        "time": 1.0,
        "type": "update",
        "neighbor": {
            "address": {"local": "127.0.0.1", "peer": peer},
            "asn": {"local": 65000, "peer": 65000},
            "direction": "receive",
            "message": {"update": body},
        },
    }
    return orjson.dumps(msg)


def path(*asns: int) -> dict:
    return {"0": {"element": "as-sequence", "value": list(asns)}}


def announce_v4(*prefixes: str, nh: str = "192.0.2.1") -> dict:
    return {V4: {nh: [{"nlri": p} for p in prefixes]}}


def send(sock_path: str, data: bytes) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(sock_path)
        s.sendall(data)


@pytest.fixture
def server(short_tmp: Path):
    rib = Rib()
    feed = FeedServer(str(short_tmp / "feed.sock"), rib, exabgp_gone_hold_time=60)
    feed.start()
    yield feed
    feed.stop()


def test_bad_lines_are_counted_and_the_good_ones_around_them_applied(server: FeedServer) -> None:
    good_attrs = {"origin": "igp", "as-path": path(65001, 65002), "local-preference": 100}
    lines = [
        update(announce_v4("10.0.0.0/24"), attribute=good_attrs),
        b'{"exabgp": "5.0.0", "type": "update", "neighbor": {"addr',  # truncated JSON
        update(announce_v4("10.0.1.0/24"), attribute=good_attrs),
        b'{"exabgp": "5.0.0", "type": "teleport", "neighbor": {}}',  # unknown type
        update(announce_v4("10.0.2.1/24"), attribute=good_attrs),  # host bits: bad prefix
        update(announce_v4("10.0.3.0/24"), attribute=good_attrs),
        # Broken attributes: RFC 7606 treat-as-withdraw of an earlier route.
        update(announce_v4("10.0.0.0/24"), attribute={"origin": "sideways"}),
        update(announce_v4("10.0.4.0/24"), attribute={**good_attrs, "med": -1}),
        update(withdraw={V4: [{"nlri": "10.0.3.0/24"}]}),
    ]
    send(server.socket_path, b"\n".join(lines) + b"\n")
    wait_until(lambda: server.stats()["lines"] == len(lines), 10, what="all lines")
    stats = server.stats()
    assert stats["bad_lines"] == 3
    assert stats["bad_lines_by_category"] == {"json": 1, "unknown_type": 1, "prefix": 1}
    assert stats["treated_as_withdraw"] == 2
    assert stats["prefixes_announced"] == 3
    assert stats["prefixes_withdrawn"] == 1
    assert [m.prefix for m in server.rib.routes(PEER, V4)] == ["10.0.1.0/24"]
    assert server.rib.stats()["treated_as_withdraw"] == 2
    attrs = server.rib.exact(PEER, V4, "10.0.1.0/24")[0].attributes
    assert attrs.flat_path() == [65001, 65002] and attrs.next_hop == "192.0.2.1"


def test_bad_line_categories() -> None:
    parser = ExabgpParser()
    cases = {
        b"{": "json",
        b"[1]": "json",
        b'{"type": "nope"}': "unknown_type",
        update(announce_v4("300.0.0.0/8")): "prefix",
        b'{"type": "update"}': "malformed",
    }
    for line, category in cases.items():
        with pytest.raises(FeedError) as err:
            parser.parse(line)
        assert bad_line_category(str(err.value)) == category, (line, str(err.value))


def test_line_split_across_reads_and_connections(server: FeedServer) -> None:
    line = update(announce_v4("10.9.0.0/16"), attribute={"origin": "igp", "as-path": path(1)})
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(server.socket_path)
        s.sendall(line[:50])
        time.sleep(0.1)
        s.sendall(line[50:] + b"\n" + line[:30])  # the tail is cut by the close
    wait_until(lambda: server.stats()["relay_connections"] == 1 and server.stats()["lines"], 5)
    time.sleep(0.1)
    assert server.stats()["lines"] == 1 and server.stats()["bad_lines"] == 0
    assert [m.prefix for m in server.rib.routes(PEER, V4)] == ["10.9.0.0/16"]


def test_relay_control_lines(server: FeedServer) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(server.socket_path)
        s.settimeout(5)
        s.sendall(control_line("hello", pid=4242, ppid=1, started=1.5, delivered=0))
        s.sendall(update(announce_v4("10.1.0.0/16")) + b"\n")
        s.sendall(update(announce_v4("10.2.0.0/16")) + b"\n")
        wait_until(lambda: server.stats()["lines"] == 2, 5)
        # Lines were lost: routers are no longer converged, ExaBGP is asked for a refresh.
        s.sendall(control_line("lost", lines=7))
        assert s.recv(100) == f"resync {PEER}\n".encode()  # each router in its turn
        wait_until(lambda: server.stats()["resyncs_requested"] == 1, 5)
        stats = server.stats()
        assert stats["relay_lost_lines"] == 7 and stats["relay_gaps"] == 1
        assert not any(fs.converged for fs in server.rib.routers[PEER].families.values())
        # ExaBGP closed its pipe: routes are kept, stale.
        s.sendall(control_line("eof"))
        wait_until(lambda: server.stats()["exabgp_gone_events"] == 1, 5)
        # (counted just before the RIB is told)
        wait_until(lambda: server.rib.routers[PEER].session == "down", 5)
    routes = list(server.rib.routes(PEER, V4))
    assert [m.prefix for m in routes] == ["10.1.0.0/16", "10.2.0.0/16"]
    assert all(m.stale for m in routes)
    assert server.rib.routers[PEER].session == "down"


def test_a_respawned_relay_under_the_same_exabgp_triggers_a_resync(server: FeedServer) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(server.socket_path)
        s.sendall(control_line("hello", pid=10, ppid=1, started=1.0, delivered=0))
        wait_until(lambda: server.stats()["relays_connected"] == 1, 5)
    wait_until(lambda: server.stats()["relays_connected"] == 0, 5)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(server.socket_path)
        s.settimeout(5)
        s.sendall(control_line("hello", pid=11, ppid=1, started=2.0, delivered=0))
        assert s.recv(100) == b"resync *\n"  # (no router known yet: all of them)


def test_raw_messages_of_a_session_opened_before_we_started_reset_it_once(
    server: FeedServer,
) -> None:
    """An operator's ExaBGP whose session was up before the service started: its
    UPDATEs cannot be decoded (no OPEN seen) and its EoRR would sweep what they
    carried. Both are counted and refused, and the session is reset once."""
    from bench.fuzz_raw import basic_attributes, packets_line, prefix, session_lines, update

    body = update(attributes=basic_attributes([64496, 64511]), nlri=prefix("198.51.100.0/24"))
    eorr = packets_line(bytes([0, 1, 2, 1]), category=5)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(server.socket_path)
        s.settimeout(5)
        s.sendall(control_line("hello", pid=4242, ppid=1, started=1.5, delivered=0))
        s.sendall(packets_line(body) + b"\n")
        assert s.recv(100) == f"reset {PEER}\n".encode()
        s.sendall(packets_line(body) + b"\n" + eorr + b"\n")
        wait_until(lambda: server.stats()["lines"] == 3, 5)
        stats = server.stats()
        assert stats["bad_lines"] == 3 and stats["session_resets_requested"] == 1
        assert not list(server.rib.routes(PEER, V4))
        # The session opens again: its UPDATEs are read.
        s.sendall(b"\n".join([*session_lines(), packets_line(body)]) + b"\n")
        wait_until(lambda: server.stats()["lines"] == 6, 5)
    assert [m.prefix for m in server.rib.routes(PEER, V4)] == ["198.51.100.0/24"]
    assert server.stats()["bad_lines"] == 3


def sample_files(shared_data: Path) -> list[Path]:
    root = shared_data / "exabgp-samples"
    return sorted([*root.glob("*.jsonl"), *root.glob("decode/*.json")])


def rib_snapshot(rib: Rib) -> dict:
    out = {}
    for neighbor in rib.routers:
        for family in (V4, V6):
            for m in rib.routes(neighbor, family):
                paths = rib.exact(neighbor, family, m.prefix)
                out[(neighbor, family, m.prefix)] = [
                    (p.path_id, p.attributes.flat_path(), p.attributes.next_hop, p.stale)
                    for p in paths
                ]
    return out


def test_every_captured_sample_replays_through_the_socket(
    server: FeedServer, shared_data: Path
) -> None:
    files = sample_files(shared_data)
    assert files
    for sample in files:
        data = sample.read_bytes()
        lines = [x for x in data.split(b"\n") if x.strip()]
        rib = Rib()
        feed = FeedServer(server.socket_path + f".{sample.stem}", rib)
        feed.start()
        try:
            send(feed.socket_path, b"\n".join(lines) + b"\n")
            count = len(lines)
            wait_until(lambda feed=feed, n=count: feed.stats()["lines"] == n, 10)
        finally:
            feed.stop()
        stats = feed.stats()
        assert stats["bad_lines"] == 0, (sample.name, stats)
        # The same lines applied in-process give the same RIB.
        reference = Rib()
        parser = ExabgpParser(reference.interner)
        for line in lines:
            reference.apply_many(parser.parse(line))
        assert rib_snapshot(rib) == rib_snapshot(reference), sample.name
        if "receiver" in sample.name:
            assert stats["prefixes_announced"] > 0 and stats["end_of_rib"] > 0, sample.name


@pytest.mark.fulltable
def test_full_table_through_the_socket(short_tmp: Path, shared_data: Path, processes) -> None:
    table = shared_data / "bgp" / "pch-as3856-fulltable-2015.exabgp5.jsonl.gz"
    if not table.exists():
        pytest.skip("full table absent")
    with gzip.open(table) as f:
        expected_lines = sum(1 for line in f if line.strip())
    rib = Rib()
    feed = FeedServer(str(short_tmp / "feed.sock"), rib)
    feed.start()
    # As the service would: freeze what exists and collect rarely during a load.
    gc.collect()
    gc.freeze()
    old_threshold = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        sender = processes(
            [sys.executable, "-c", SENDER, str(table), feed.socket_path], stdout=subprocess.PIPE
        )
        wait_until(lambda: feed.stats()["lines"] == expected_lines, 120, interval=0.01)
        assert sender.wait(10) == 0
    finally:
        gc.set_threshold(*old_threshold)
        gc.unfreeze()
        feed.stop()
    # Speed is measured in bench/, never asserted here.
    stats = feed.stats()
    assert stats["bad_lines"] == 0
    assert len(rib.tables[V4].store) == 577_706 - 3  # 3 prefixes are withdrawn in the stream


SENDER = """
import gzip, socket, sys
data = gzip.open(sys.argv[1]).read()
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[2])
s.sendall(data)
s.close()
"""
