"""FeedServer's wait after a short read during a load (``coalesce_seconds``):
a table streaming in small pieces is read in few big reads, a lone UPDATE is
never held back. Real FeedServers over real Unix sockets."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from ribd.feed import COALESCE_MIN_LINES, FeedServer
from ribd.rib import Rib
from ribd.speaker import wait_until
from tests.ribd.test_feed import PEER, V4, announce_v4, path, update

ATTRS = {"origin": "igp", "as-path": path(65001, 65002)}


def _lines(first: int, count: int) -> list[bytes]:
    return [
        update(announce_v4(f"10.{(first + i) >> 8}.{(first + i) & 255}.0/24"), attribute=ATTRS)
        for i in range(count)
    ]


def _server(sock: Path, coalesce: float) -> FeedServer:
    feed = FeedServer(str(sock), Rib(), exabgp_gone_hold_time=60, coalesce_seconds=coalesce)
    feed.start()
    return feed


def _trickle(feed: FeedServer, pieces: int, per_piece: int) -> None:
    """``pieces`` sends of ``per_piece`` lines, 2 ms apart, as the relay hands on a load."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(feed.socket_path)
        for k in range(pieces):
            s.sendall(b"\n".join(_lines(k * per_piece, per_piece)) + b"\n")
            time.sleep(0.002)
        total = pieces * per_piece
        wait_until(lambda: feed.stats()["lines"] == total, 60, what="every line applied")


def test_a_load_in_small_pieces_is_read_in_few_reads(short_tmp: Path) -> None:
    # Without the wait each piece is a read (the sends are 2 ms apart and the
    # reader has nothing else to do); with a 1 s wait after each short read of
    # a load, the 40 pieces (>= 80 ms of sending) come in a handful of reads.
    feed = _server(short_tmp / "a.sock", coalesce=1.0)
    try:
        _trickle(feed, pieces=40, per_piece=COALESCE_MIN_LINES)
        stats = feed.stats()
        assert stats["bad_lines"] == 0 and stats["prefixes_announced"] == 40 * COALESCE_MIN_LINES
        assert stats["reads"] <= 4, stats["reads"]
        assert len(list(feed.rib.routes(PEER, V4))) == 40 * COALESCE_MIN_LINES
    finally:
        feed.stop()


def test_without_the_wait_each_piece_may_be_a_read(short_tmp: Path) -> None:
    # coalesce_seconds=0 reads as lines come: the reads are counted the same
    # way (at least one, at most one a piece plus a split line each).
    feed = _server(short_tmp / "b.sock", coalesce=0.0)
    try:
        _trickle(feed, pieces=40, per_piece=COALESCE_MIN_LINES)
        assert 1 <= feed.stats()["reads"] <= 80
        assert len(list(feed.rib.routes(PEER, V4))) == 40 * COALESCE_MIN_LINES
    finally:
        feed.stop()


def test_a_lone_update_is_not_held_back(short_tmp: Path) -> None:
    # An hour's wait after a load's short read: a read of fewer than
    # COALESCE_MIN_LINES lines (an UPDATE in a steady state) waits for nothing,
    # so each of these lines is applied while the connection stays open.
    feed = _server(short_tmp / "c.sock", coalesce=3600.0)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(feed.socket_path)
            for k, line in enumerate(_lines(0, 3)):
                s.sendall(line + b"\n")
                wait_until(lambda k=k: feed.stats()["lines"] == k + 1, 30, what=f"line {k}")
            few = b"\n".join(_lines(100, COALESCE_MIN_LINES - 1)) + b"\n"
            s.sendall(few)
            total = 3 + COALESCE_MIN_LINES - 1
            wait_until(lambda: feed.stats()["lines"] == total, 30, what="the short batch")
            s.sendall(_lines(200, 1)[0] + b"\n")
            wait_until(lambda: feed.stats()["lines"] == total + 1, 30, what="the next line")
        assert len(list(feed.rib.routes(PEER, V4))) == total + 1
    finally:
        feed.stop()
