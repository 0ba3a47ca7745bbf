"""``ribd._feedloop.lines_in`` against its reference ``FeedServer._lines``.

Two real FeedServers over Unix sockets, the compiled loop on in one: fed the
same good, hostile, unknown-neighbor and JSON API lines (with the packets
line scan on, then off), they count alike (lines, updates, bad lines by
category, treat-as-withdraw, prefixes), log the same bad lines and hold the
same routes.
"""

from __future__ import annotations

import logging
import random
import shutil
import socket
import sysconfig
import time
from pathlib import Path

import pytest

from bench.fuzz_mutate import mutate_bytes, mutate_line
from bench.fuzz_raw import PEER, packets_line, seed_updates, session_lines
from ribd import feed, feed_counters
from ribd.feed import FeedServer
from ribd.parser import ExabgpParser
from ribd.rib import Rib
from ribd.speaker import wait_until

pytestmark = pytest.mark.skipif(feed._compiled_lines is None, reason="ribd._feedloop is not built")

PEER6 = "2001:db8::2"
STRANGER = "192.0.2.77"  # a session whose lines name a router not configured
SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "exabgp-samples"


def test_built_where_a_c_compiler_is() -> None:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    assert shutil.which(cc) is None or feed._compiled_lines is not None
    assert FeedServer("/tmp/unused.sock", Rib()).compiled_lines


def json_lines() -> list[bytes]:
    """A few JSON API lines (the parser's other path), where the samples are."""
    out: list[bytes] = []
    for path in sorted(SAMPLES.glob("*.jsonl")) if SAMPLES.exists() else []:
        out += [ln for ln in path.read_bytes().splitlines()[:150] if ln.strip()]
    return out


def stream(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    lines = session_lines() + session_lines(PEER6, asn4=False, add_path=True)
    lines += session_lines(STRANGER)
    for _ in range(900):
        peer = STRANGER if rng.random() < 0.05 else PEER
        body = rng.choice(seed_updates())
        if rng.random() < 0.5:
            body = mutate_bytes(rng, body)
        line = packets_line(body, peer=peer)
        lines.append(mutate_line(rng, line) if rng.random() < 0.15 else line)
    lines += json_lines()
    lines.append(b"x" * 100)  # not JSON at all
    return [ln for ln in lines if ln and b"\n" not in ln]


def counters(server: FeedServer) -> dict:
    stats = server.stats()
    keys = ("lines", "updates", "bad_lines", "bad_lines_by_category", "treated_as_withdraw")
    keys += ("prefixes_announced", "prefixes_withdrawn", "end_of_rib")
    return {k: stats[k] for k in keys}


def routes(rib: Rib) -> list:
    return sorted(
        (peer, family, m.prefix, m.path_id, m.attributes.as_path, m.attributes.next_hop)
        for peer in (PEER, PEER6, STRANGER)
        for family in ("ipv4 unicast", "ipv6 unicast")
        for m in rib.routes(peer, family)
    )


def fed(server: FeedServer, pieces: list[bytes], lines: int, caplog, pause: float = 0.0) -> list:
    """``pieces`` sent to a started ``server`` on one connection (``pause`` after
    each), until it counted ``lines`` lines; the feed's log messages meanwhile."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ribd"):
        server.start()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(server.socket_path)
                for piece in pieces:
                    s.sendall(piece)
                    time.sleep(pause)
            wait_until(lambda: server.stats()["lines"] == lines, 30, what="all lines")
        finally:
            server.stop()
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "ribd.feed" and not r.getMessage().startswith("feed listening")
    ]


@pytest.mark.parametrize("scan", [True, False])
def test_the_compiled_loop_counts_logs_and_applies_alike(short_tmp, caplog, scan) -> None:
    lines = stream(5 + scan)
    results = []
    for compiled in (True, False):
        rib = Rib()
        rib.neighbors = frozenset({PEER, PEER6})
        parser = ExabgpParser(rib.interner)
        if not scan:
            parser.fast = None
        server = FeedServer(str(short_tmp / f"f{int(compiled)}.sock"), rib, parser)
        server.compiled_lines = compiled
        logged = fed(server, [b"\n".join(lines) + b"\n"], len(lines), caplog)
        results.append((counters(server), logged, routes(rib)))
    assert results[0] == results[1]
    stats, logged, held = results[1]
    assert stats["bad_lines"] > 50 and stats["treated_as_withdraw"] > 0 and held
    assert stats["bad_lines_by_category"].get("unknown_neighbor", 0) > 0, stats
    assert logged


def test_reads_cut_anywhere_are_handled_in_place_as_the_reference_handles_them(
    short_tmp, caplog, monkeypatch
) -> None:
    """The compiled path reads each read's whole lines where they lie in the
    feed's buffer (``buffer_in``) and only the line that straddles two reads is
    joined; the reference splits every read into bytes lines. The stream goes
    out in random pieces with pauses, so reads end mid-line, mid-hex, right
    after a newline; it has empty lines and lines over the server's limit.
    Both end with the same counters, logs and routes, and the compiled one's
    table lines went through the fused loader. (Every bad line is logged here:
    the compiled path logs an over-long line where it comes, the reference
    before the read's other lines, so a budget would pick other lines.)"""
    monkeypatch.setattr(feed_counters, "BAD_LINES_LOGGED_IN_FULL", 10**6)
    rng = random.Random(54)
    lines = stream(54)
    limit = 1500
    for at in sorted(rng.sample(range(len(lines)), 12)):
        lines.insert(at, rng.choice((b"", b"y" * (limit + 1), b"z" * (3 * limit))))
    data = b"\n".join(lines) + b"\n"
    cuts = sorted(rng.sample(range(1, len(data)), 60))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    want_lines = sum(1 for ln in lines if ln)
    results = []
    for compiled in (True, False):
        rib = Rib()
        rib.neighbors = frozenset({PEER, PEER6})
        parser = ExabgpParser(rib.interner)
        server = FeedServer(
            str(short_tmp / f"r{int(compiled)}.sock"), rib, parser, max_line_bytes=limit
        )
        server.compiled_lines = compiled
        server.coalesce_seconds = 0  # (a read per piece)
        logged = fed(server, pieces, want_lines, caplog, pause=0.002)
        taken = server.line_loader(parser, rib).taken
        results.append((counters(server), sorted(logged), routes(rib)))
        if compiled:
            assert server.stats()["reads"] > 30  # the pieces were read apart
            assert taken > 100  # the table lines went through the fused path
    assert results[0] == results[1]
    stats = results[1][0]
    assert stats["bad_lines_by_category"]["too_long"] == sum(len(ln) > limit for ln in lines) > 0


def test_buffer_in_refuses_a_region_it_cannot_read_whole(short_tmp) -> None:
    from ribd._feedloop import buffer_in

    rib = Rib()
    server = FeedServer(str(short_tmp / "b.sock"), rib, ExabgpParser(rib.interner))
    conn = feed._Connection(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
    try:
        buf = bytearray(b"x" * 8 + b"\n")
        with pytest.raises(ValueError, match="outside a buffer"):
            buffer_in(server, conn, buf, 0, len(buf) + 1, 100)
        with pytest.raises(ValueError, match="outside a buffer"):
            buffer_in(server, conn, buf, 5, 4, 100)
        with pytest.raises(ValueError, match="does not end with a newline"):
            buffer_in(server, conn, buf, 0, 4, 100)
        assert buffer_in(server, conn, buf, 3, 3, 100) == 0
        assert buffer_in(server, conn, buf, 0, len(buf), 4) == 0
        assert conn.counters.bad_by_category == {"too_long": 1}
        assert buffer_in(server, conn, buf + b"\n\n", 0, len(buf) + 2, 100) == 1
    finally:
        conn.sock.close()
