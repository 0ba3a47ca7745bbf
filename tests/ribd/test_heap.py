"""The C heap's free pages go back to the OS after work that left much of it free (ribd.heap)."""

from __future__ import annotations

import ctypes.util
import multiprocessing
import sys
import threading
from concurrent.futures import ProcessPoolExecutor

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


def _work_in_a_fresh_process(growth: int | None) -> tuple[int, int, int, int]:
    """The fragmenting work in a thread under ``released_after_growth``: (RSS grown
    by the work, bytes released, releases counted, RSS left above the start).

    Run in a fresh interpreter (``_isolated``): in the test run's own process a
    thread can be handed an arena that earlier tests' threads left with free
    pages still resident, so the work grew the RSS by less than the check below
    assumes (a full CI run: 63.5 MB against the 98 MB asked), though the code
    under test did nothing wrong."""
    pins: list = []
    releases = heap.releases()
    kwargs = {} if growth is None else {"growth": growth}
    with heap.released_after_growth(**kwargs) as step:
        _in_a_thread(lambda: _fragment_a_thread_arena(pins))
        grown = heap.resident_bytes() - step.before
    return grown, step.released, heap.releases() - releases, heap.resident_bytes() - step.before


def _isolated(growth: int | None = None) -> tuple[int, int, int, int]:
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as pool:
        return pool.submit(_work_in_a_fresh_process, growth).result(timeout=120)


@glibc
def test_memory_a_thread_freed_is_given_back_when_the_rss_grew_across_the_work() -> None:
    grown, released, releases, left = _isolated()
    assert grown >= CHUNKS * CHUNK // 2  # kept resident by glibc until now
    assert released >= CHUNKS * CHUNK // 2
    assert releases == 1
    assert left < grown // 2


@glibc
def test_no_trim_when_the_rss_grew_less_than_the_threshold() -> None:
    grown, released, releases, _ = _isolated(growth=1 << 40)
    assert grown >= CHUNKS * CHUNK // 2  # (the work grew the RSS: only the threshold held)
    assert released == 0 and releases == 0


def test_resident_bytes_is_zero_where_it_cannot_be_read(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr("builtins.open", refuse)
    assert heap.resident_bytes() == 0
    with heap.released_after_growth(growth=0) as step:
        pass
    assert step.released == 0
