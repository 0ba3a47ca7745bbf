"""The feed's counts of a read's fused lines kept in C and added at the read's
end (``ribd._feedloop``, stop 37, decode7).

What must hold: whenever anything of the feed's own runs for a line that is
not fused (a control line, a line parsed the usual way, a bad line's log), the
counters read as the reference loop leaves them at that point; at the end of a
read, however it ends (an error under the lock included), they are exact.
What changed, by design: a reader between two fused lines of one read (another
thread's metrics scrape, here a hook under the line's lock) sees that read's
fused lines counted only at its end.
"""

from __future__ import annotations

import random

import pytest

from bench.fuzz_raw import packets_line, session_lines
from ribd.table import RouterRib
from tests.ribd.test_loadline import ROUTERS, STRANGER, _announce, _counted, _feeds, _run

_feedloop = pytest.importorskip("ribd._feedloop")


def _fused_lines(rng: random.Random, peer: str, count: int) -> list[bytes]:
    return [
        packets_line(_announce(rng, peer, [f"10.{k}.{j}.0/24" for j in range(3)]), peer=peer)
        for k in range(count)
    ]


def test_what_runs_between_lines_reads_the_counts_as_the_reference() -> None:
    """A control line's handler and a bad line's log, each in the middle of a
    read of fused lines, see the counts the reference loop has there."""
    from ribd.feed_control import CONTROL_PREFIX

    rng = random.Random(37)
    peer = ROUTERS[0]
    seen = []
    for fused, (server, conn, _rib) in zip((True, False), _feeds(True), strict=True):
        _run(server, conn, session_lines(peer), fused)
        lines = _fused_lines(random.Random(1), peer, 5)
        lines.append(CONTROL_PREFIX + b',"op":"hello"}')
        lines += _fused_lines(random.Random(2), peer, 4)
        lines.append(packets_line(_announce(rng, STRANGER, ["10.99.0.0/24"]), peer=STRANGER))
        lines += _fused_lines(random.Random(3), peer, 3)
        got: list[dict] = []
        server._control = lambda conn, line, got=got: got.append(_counted(conn))  # type: ignore[method-assign]
        bad_line = server._bad_log.bad_line

        def logged(c, line, reason, got=got, conn=conn, bad_line=bad_line):
            got.append(_counted(conn))
            return bad_line(c, line, reason)

        server._bad_log.bad_line = logged  # type: ignore[method-assign]
        _run(server, conn, lines, fused)
        got.append(_counted(conn))
        seen.append(got)
        assert server.stats()["fused_lines"] == (12 if fused else 0)
    assert seen[0] == seen[1]
    assert seen[0][-1]["lines"] == 2 + 12 + 1  # the session's two lines, no control line
    assert seen[0][-1]["updates"] == 12 and seen[0][-1]["prefixes_announced"] == 36


class _Reading(RouterRib):
    """A router state whose time stamp, written under the line's lock, reads the
    connection's counters then (as another thread could)."""

    __slots__ = ("conn", "seen")

    def __setattr__(self, name: str, value: object) -> None:
        if name == "last_update" and hasattr(self, "conn"):  # (not while made)
            object.__setattr__(self, "seen", [*self.seen, _counted(self.conn)["lines"]])
        object.__setattr__(self, name, value)


def test_a_reads_fused_lines_are_counted_at_its_end() -> None:
    """Fails before stop 37 (each fused line counted as it went): a reader
    between a read's fused lines sees the counts at the read's start; at its
    end they are the reference's, and an error under the lock still leaves
    every line counted up to it."""
    peer = ROUTERS[0]
    ends = []
    for fused, (server, conn, rib) in zip((True, False), _feeds(False), strict=True):
        _run(server, conn, session_lines(peer), fused)
        _run(server, conn, _fused_lines(random.Random(4), peer, 1), fused)
        old = rib.routers[peer]
        new = _Reading(neighbor=old.neighbor, name=old.name)
        for k in RouterRib.__slots__:
            object.__setattr__(new, k, getattr(old, k))
        object.__setattr__(new, "seen", [])
        object.__setattr__(new, "conn", conn)
        rib.routers[peer] = new
        start = _counted(conn)["lines"]
        _run(server, conn, _fused_lines(random.Random(5), peer, 6), fused)
        if fused:
            assert new.seen == [start] * 6
        else:
            assert new.seen == [start + k for k in range(1, 7)]
        ends.append(_counted(conn))

        def no_router(neighbor: str) -> None:
            raise RuntimeError(f"no state for {neighbor}")

        rib.routers.pop(peer)
        rib.router = no_router  # type: ignore[method-assign]
        lines = _fused_lines(random.Random(6), ROUTERS[1], 1)
        _run(server, conn, session_lines(ROUTERS[1]), fused)
        with pytest.raises(RuntimeError, match="no state"):
            _run(server, conn, _fused_lines(random.Random(7), ROUTERS[1], 0) + lines, fused)
        ends.append(_counted(conn))
    assert ends[:2] == ends[2:]
