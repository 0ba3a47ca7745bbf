"""``rib.lock`` taken and released in C by the fused path (``ribd/_fastlock.pxd``).

Since stop 37 (decode7) the feed's per-line ``threading.Lock`` is taken with
CPython's own non-blocking try and its ``locked`` flag, where the lock type's
layout was checked at import, instead of calling ``acquire()`` (which parsed
its empty arguments every line). A contended lock still waits in ``acquire()``
with the GIL released; a release of a lock not held still raises; other lock
types still go through ``with``. Each case against the lock's own methods and
the reference feed loop.
"""

from __future__ import annotations

import random
import sys
import threading
import time

import pytest

from bench.fuzz_raw import packets_line, session_lines
from ribd.table import RouterRib
from tests.ribd.test_loadline import ROUTERS, _announce, _feeds, _run

_loadline = pytest.importorskip("ribd._loadline")


def test_the_lock_is_taken_in_c_on_this_interpreter() -> None:
    """Fails before stop 37 (no C path: ``acquire()`` every line)."""
    if sys.implementation.name != "cpython" or not (3, 11) <= sys.version_info[:2] < (3, 13):
        pytest.skip("the C path is for CPython 3.11-3.12's lock layout")
    assert _loadline.lock_in_c()


def test_the_c_steps_agree_with_the_locks_own_methods() -> None:
    if not _loadline.lock_in_c():
        pytest.skip("no C path here")
    lock = threading.Lock()
    assert _loadline.lock_step(lock, True) is True
    assert lock.locked()
    assert lock.acquire(blocking=False) is False
    assert _loadline.lock_step(lock, True) is False  # held: not taken again
    lock.release()  # the lock's own release frees what C took
    assert not lock.locked()
    assert _loadline.lock_step(lock, False) is False  # not held: nothing done
    assert not lock.locked()
    assert lock.acquire(blocking=False)
    assert _loadline.lock_step(lock, False) is True  # C frees what acquire() took
    assert not lock.locked() and lock.acquire(blocking=False)
    lock.release()
    with pytest.raises(TypeError):
        _loadline.lock_step(threading.RLock(), True)


class _Watching(RouterRib):
    """A router state that records, as the line's time stamp is written under
    the lock, whether the RIB's lock is held then (and may release it)."""

    __slots__ = ("drop", "rib", "seen")

    def __setattr__(self, name: str, value: object) -> None:
        if name == "last_update" and hasattr(self, "drop"):  # (not while made)
            object.__setattr__(self, "seen", [*self.seen, self.rib.lock.locked()])
            if self.drop:
                self.rib.lock.release()
        object.__setattr__(self, name, value)


def _watch(rib, peer: str, drop: bool = False) -> _Watching:
    old = rib.routers[peer]
    new = _Watching(neighbor=old.neighbor, name=old.name)
    for k in RouterRib.__slots__:
        object.__setattr__(new, k, getattr(old, k))
    object.__setattr__(new, "seen", [])
    object.__setattr__(new, "rib", rib)
    object.__setattr__(new, "drop", drop)
    rib.routers[peer] = new
    return new


def _lines(rng: random.Random, peer: str, count: int) -> list[bytes]:
    return [
        packets_line(
            _announce(rng, peer, [f"10.{k}.{rng.randrange(256)}.0/24"]), peer=peer, time_=2.5
        )
        for k in range(count)
    ]


def test_the_lock_is_held_while_a_line_applies_and_free_after() -> None:
    rng = random.Random(1)
    peer = ROUTERS[0]
    for fused, (server, conn, rib) in zip((True, False), _feeds(False), strict=True):
        _run(server, conn, session_lines(peer), fused)
        _run(server, conn, _lines(rng, peer, 1), fused)
        watching = _watch(rib, peer)
        _run(server, conn, _lines(rng, peer, 20), fused)
        assert watching.seen == [True] * 20
        assert server.stats()["fused_lines"] == (21 if fused else 0)
        assert not rib.lock.locked() and rib.lock.acquire(blocking=False)
        rib.lock.release()


def test_a_line_waits_for_a_lock_held_by_another_thread() -> None:
    """Contended: the feed's thread waits (in ``acquire()``, the GIL released)
    until the holder releases, then applies the line."""
    rng = random.Random(2)
    peer = ROUTERS[0]
    for fused, (server, conn, rib) in zip((True, False), _feeds(False), strict=True):
        _run(server, conn, session_lines(peer), fused)
        lines = _lines(rng, peer, 3)
        rib.lock.acquire()
        feeder = threading.Thread(target=_run, args=(server, conn, lines, fused))
        feeder.start()
        time.sleep(0.3)
        assert feeder.is_alive()
        assert peer not in rib.routers or rib.routers[peer].families["ipv4 unicast"].prefixes == 0
        rib.lock.release()
        feeder.join(10)
        assert not feeder.is_alive()
        assert rib.routers[peer].families["ipv4 unicast"].prefixes == 3
        assert not rib.lock.locked()


def test_a_lock_released_under_the_line_raises_as_with_did() -> None:
    """The body releasing the lock (a bug elsewhere): the release after it
    raises RuntimeError, as ``with``'s ``__exit__`` did, and the lock is free."""
    rng = random.Random(3)
    peer = ROUTERS[0]
    for fused, (server, conn, rib) in zip((True, False), _feeds(False), strict=True):
        _run(server, conn, session_lines(peer), fused)
        _run(server, conn, _lines(rng, peer, 1), fused)
        _watch(rib, peer, drop=True)
        with pytest.raises(RuntimeError, match="release unlocked lock"):
            _run(server, conn, _lines(rng, peer, 1), fused)
        assert not rib.lock.locked()
