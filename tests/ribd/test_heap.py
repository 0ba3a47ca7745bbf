"""The C heap's free pages go back to the OS after work that left much of it free (ribd.heap)."""

from __future__ import annotations

import ctypes.util
import sys
import threading

import pytest

from ribd import heap

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux")
    or heap.resident_bytes() == 0
    or not ctypes.util.find_library("c"),
    reason="glibc and /proc only",
)

CHUNK, CHUNKS = 65_536, 3_000  # under glibc's mmap threshold: from the thread's arena


def _fragment_a_thread_arena(pins: list) -> None:
    """~190 MB allocated and freed in a thread, a small block kept after each
    chunk: the freed chunks cannot join the arena's top, so glibc keeps them
    resident (as a view build's temporaries between its kept arrays)."""
    chunks = []
    for _ in range(CHUNKS):
        chunk = bytearray(CHUNK)
        chunk[::4096] = b"x" * len(chunk[::4096])  # every page touched: resident
        chunks.append(chunk)
        pins.append(bytearray(1024))
    del chunks


def _in_a_thread(fn) -> None:
    t = threading.Thread(target=fn)
    t.start()
    t.join()


@glibc
def test_memory_a_thread_freed_is_given_back_when_the_rss_grew_across_the_work() -> None:
    pins: list = []
    releases = heap.releases()
    with heap.released_after_growth() as step:
        _in_a_thread(lambda: _fragment_a_thread_arena(pins))
        grown = heap.resident_bytes() - step.before
    assert grown >= CHUNKS * CHUNK // 2  # kept resident by glibc until now
    assert step.released >= CHUNKS * CHUNK // 2
    assert heap.releases() == releases + 1
    assert heap.resident_bytes() - step.before < grown // 2


@glibc
def test_no_trim_when_the_rss_grew_less_than_the_threshold() -> None:
    pins: list = []
    releases = heap.releases()
    with heap.released_after_growth(growth=1 << 40) as step:
        _in_a_thread(lambda: _fragment_a_thread_arena(pins))
    assert step.released == 0 and heap.releases() == releases
    heap.release_memory()  # (the test's own garbage)


def test_resident_bytes_is_zero_where_it_cannot_be_read(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr("builtins.open", refuse)
    assert heap.resident_bytes() == 0
    with heap.released_after_growth(growth=0) as step:
        pass
    assert step.released == 0
