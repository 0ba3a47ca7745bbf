"""The fused path's per-line reads at fields' offsets see every change at once.

Since stop 36 (loadreads) ``ribd._loadline`` and ``ribd._apply.announce_parts``
read the objects a line touches (the raw sessions' decoder and capabilities,
the RIB's neighbors, lock and routers, a router's time stamp, the family
state's and table's counts, the feed's counters) at their slots' offsets (the
RIB's and the table's in their instance dicts until stop 57), and call the
interner's compiled ``intern`` without a bound method, each only on objects of
exactly the types whose layout was taken.
Nothing is kept across lines, so whatever another thread (or a test) changes
between two lines must show at the next one exactly as through getattr: a
decoder's interner swapped, ``AttributeInterner.intern`` replaced, a session
forgotten, ``rib.neighbors`` reloaded, a router's state or the connection's
counters of another type. Each step is run on a fused feed and on the
reference (``FeedServer._lines``) and both must count, log and hold the same.
"""

from __future__ import annotations

import logging
import random

import pytest

from bench.fuzz_raw import packets_line, session_lines
from ribd.feed_counters import FeedCounters
from ribd.interner import AttributeInterner
from ribd.table import RouterRib
from tests.ribd.test_loadline import (
    ROUTERS,
    _announce,
    _counted,
    _feeds,
    _pool,
    _pool6,
    _run,
    _same_ribs,
    _sets,
)

_loadline = pytest.importorskip("ribd._loadline")
_apply = pytest.importorskip("ribd._apply")


def test_the_reads_take_their_offsets() -> None:
    """Every layout was found (else each read falls back to getattr: correct but
    the cut is gone): fails before stop 36 (no such check, reads by getattr)."""
    from ribd.parser import ExabgpParser
    from ribd.rib import Rib

    rib = Rib()
    _loadline.LineLoader(ExabgpParser(rib.interner), rib)
    assert _loadline.fields_at_offsets()
    assert _apply.offsets_in_use()


class _Counting(FeedCounters):
    """Counters of another type (the generic setattr path): every write counted."""

    __slots__ = ("sets",)

    def __setattr__(self, name: str, value: object) -> None:
        if name != "sets":
            object.__setattr__(self, "sets", getattr(self, "sets", 0) + 1)
        object.__setattr__(self, name, value)


class _Router(RouterRib):
    """A router state of another type: its time stamp through setattr."""

    __slots__ = ("stamps",)

    def __setattr__(self, name: str, value: object) -> None:
        if name == "last_update":
            object.__setattr__(self, "stamps", getattr(self, "stamps", 0) + 1)
        object.__setattr__(self, name, value)


def _read(rng: random.Random, routers: list[str], stamp: float = 3.5) -> list[bytes]:
    """A read of a two-router table load's lines, IPv4 and IPv6 groups."""
    lines = []
    for pool in (_pool(), _pool6()):
        for start in range(rng.randrange(50), 400, 7):
            group = pool[start : start + rng.randint(1, 6)]
            for r in routers:
                lines.append(packets_line(_announce(rng, r, group), peer=r, time_=stamp))
    return lines


def test_changes_between_lines_are_seen_at_once(monkeypatch, caplog) -> None:
    feeds = _feeds(False)
    rng = random.Random(36)
    peers = ROUTERS[:2]
    for fused, (server, conn, _rib) in zip((True, False), feeds, strict=True):
        _run(server, conn, [ln for p in ROUTERS for ln in session_lines(p)], fused)

    def step(name: str, change, lines: list[bytes]) -> list:
        """``change(server, conn, rib)`` on both feeds, then ``lines`` through each."""
        got, logged = [], []
        for fused, (server, conn, rib) in zip((True, False), feeds, strict=True):
            change(server, conn, rib)
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="ribd.feed"):
                _run(server, conn, lines, fused)
            logged.append([r.getMessage() for r in caplog.records])
            got.append(server.stats()["fused_lines"])
        (_, c1, r1), (_, c2, r2) = feeds
        assert logged[0] == logged[1], name
        assert _counted(c1) == _counted(c2), name
        _same_ribs(r1, r2, name)
        assert _sets(r1) == _sets(r2), name
        return got

    nothing = lambda server, conn, rib: None  # noqa: E731
    taken = step("a load", nothing, _read(rng, peers))
    assert taken[0] > 100 and taken[1] == 0

    # The decoder's interner swapped: the next line's sets are the new one's.
    swapped = {}

    def swap_interner(server, conn, rib) -> None:
        swapped[server] = AttributeInterner()
        server.parser.raw.decoder.interner = swapped[server]

    step("interner swapped", swap_interner, _read(rng, peers))
    new = [sorted(repr(a) for a in swapped[s].sets()) for s, _, _ in feeds]
    assert new[0] and new[0] == new[1]

    # ``AttributeInterner.intern`` replaced on the class: called for every fused line.
    calls = []
    compiled = AttributeInterner.intern

    def counting(self, row):
        calls.append(1)
        return compiled(self, row)

    monkeypatch.setattr(AttributeInterner, "intern", counting)
    before = feeds[0][0].stats()["fused_lines"]
    lines = _read(rng, peers)
    for fused, (server, conn, _rib) in zip((True, False), feeds, strict=True):
        calls.clear()
        _run(server, conn, lines, fused)
        if fused:
            assert server.stats()["fused_lines"] - before == len(calls) > 100
    monkeypatch.undo()

    # A session forgotten (its lines: unseen session), then the neighbors reloaded
    # without a router, then with it again.
    def forget(server, conn, rib) -> None:
        server.parser.raw._caps.pop(peers[1])

    step("session forgotten", forget, _read(rng, peers))

    def reload_without(server, conn, rib) -> None:
        rib.neighbors = frozenset(ROUTERS) - {peers[0]}

    step("neighbors without router 1", reload_without, _read(rng, [peers[0], ROUTERS[2]]))

    def reload_all(server, conn, rib) -> None:
        rib.neighbors = None

    step("neighbors reloaded", reload_all, _read(rng, [peers[0], ROUTERS[2]]))

    # Counters and a router's state of other types: written through setattr, as before.
    def other_types(server, conn, rib) -> None:
        counting = _Counting()
        for k in FeedCounters.__slots__:
            object.__setattr__(counting, k, getattr(conn.counters, k))
        object.__setattr__(counting, "sets", 0)
        conn.counters = counting
        old = rib.routers[ROUTERS[2]]
        new = _Router(neighbor=old.neighbor, name=old.name)
        for k in RouterRib.__slots__:
            object.__setattr__(new, k, getattr(old, k))
        object.__setattr__(new, "stamps", 0)
        rib.routers[ROUTERS[2]] = new

    lines = _read(rng, [ROUTERS[2]], stamp=9.25)
    step("other types", other_types, lines)
    for _, conn, rib in feeds:
        assert conn.counters.sets >= len(lines)
        assert rib.routers[ROUTERS[2]].stamps == len(lines)
        assert rib.routers[ROUTERS[2]].last_update == 9.25


def test_control_lines_are_told_apart_as_before() -> None:
    """The compiled loop's prefix compare in C (``_is_control``) against the
    reference's ``startswith``: the prefix itself, one octet short, after an
    octet, empty, and a relay control line."""
    from ribd.feed_control import CONTROL_PREFIX

    lines = [
        CONTROL_PREFIX + b',"op":"hello"}',
        CONTROL_PREFIX,
        CONTROL_PREFIX[:-1],
        b"",
        b" " + CONTROL_PREFIX,
        CONTROL_PREFIX[:1],
        b'{"type":"ribd-relaz"',
    ]
    seen = []
    for fused, (server, conn, _rib) in zip((True, False), _feeds(False), strict=True):
        told: list[bytes] = []
        server._control = lambda conn, line, told=told: told.append(line)  # type: ignore[method-assign]
        _run(server, conn, lines, fused)
        seen.append((told, _counted(conn)))
    assert seen[0] == seen[1]
    assert seen[0][0] == lines[:2]


def test_the_lock_is_released_whatever_the_line_raises() -> None:
    """``rib.lock`` (a ``threading.Lock``) is taken by its type's acquire and
    release in the fused path: an error under it (here a new router's state that
    cannot be made) leaves it released and reaches the caller, as ``with`` did;
    a lock of another type (an RLock) is still taken through ``with``."""
    import threading

    rng = random.Random(5)
    for fused, (server, conn, rib) in zip((True, False), _feeds(False), strict=True):
        _run(server, conn, session_lines(ROUTERS[0]), fused)

        def no_router(neighbor: str) -> None:
            raise RuntimeError(f"no state for {neighbor}")

        rib.router = no_router  # type: ignore[method-assign]
        line = packets_line(_announce(rng, ROUTERS[0], ["10.0.0.0/24"]), peer=ROUTERS[0])
        with pytest.raises(RuntimeError, match="no state"):
            _run(server, conn, [line], fused)
        assert not rib.lock.locked()
        del rib.router
        rib.lock = threading.RLock()
        _run(server, conn, [line], fused)
        assert rib.routers[ROUTERS[0]].families["ipv4 unicast"].prefixes == 1
        assert server.stats()["fused_lines"] == (1 if fused else 0)
        assert not rib.lock._is_owned()  # type: ignore[attr-defined]
