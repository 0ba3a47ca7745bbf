"""The C heap's free memory given back to the OS after work that leaves much of it.

glibc keeps what a process frees for its next allocations. It returns on its
own only the top of the main thread's heap; memory a thread frees in the middle
of its arena (the maintenance thread's view builds, the merges' trie nodes, the
snapshot writer's columns) stays resident until ``malloc_trim(0)``, which
releases the free pages inside every arena.

A batch build of 63 routers' views (after their first load, a restart or a
refresh) freed ~1 GB of temporaries that stayed resident: in process the RSS
was 2.45 GB after it and 1.46 GB after a trim, which took 0.04 CPU-s; through
sessions the service's RSS once those routers were idle fell from 1.92 to 1.32
GB with the trim. A snapshot write at 32 routers left ~400 MB resident the same
way (BENCHMARKS.md, stop 47).

Trimming after every small step would pay the trim's walk of the free chunks
each time, and the page faults of taking the memory back. So work is followed
by a trim only when the RSS grew by ``RELEASE_GROWTH`` across it
(``released_after_growth``), or where the caller knows it freed much (the
merges, the collections: ``release_memory``).

glibc only: elsewhere (or without /proc) nothing is trimmed and nothing counted.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from types import TracebackType

# RSS growth across a step of work past which its freed memory is given back.
RELEASE_GROWTH = 64 << 20

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_lock = threading.Lock()
_releases = 0  # trims done (metrics)
_released = 0  # bytes the RSS fell by across them (metrics)
_trim: object = None  # libc's malloc_trim, once looked up; False: none here


def resident_bytes() -> int:
    """This process's resident memory (0: not known here)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _malloc_trim() -> object:
    """libc's ``malloc_trim`` (looked up once), or False where there is none."""
    global _trim
    if _trim is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _trim = libc.malloc_trim
            _trim.argtypes = [ctypes.c_size_t]
            _trim.restype = ctypes.c_int
        except (OSError, AttributeError):
            _trim = False
    return _trim


def release_memory() -> int:
    """Give the C heap's free pages back to the OS; returns the bytes the RSS
    fell by (0: nothing to give, or not glibc). Called with no lock held:
    ``malloc_trim`` takes each arena's lock in turn (threads allocating in
    one wait that long), and ctypes lets the GIL go meanwhile."""
    global _releases, _released
    trim = _malloc_trim()
    if not trim:
        return 0
    before = resident_bytes()
    trim(0)
    fell = max(before - resident_bytes(), 0) if before else 0
    with _lock:
        _releases += 1
        _released += fell
    return fell


class released_after_growth:
    """A block after which the heap is trimmed if the RSS grew by
    ``RELEASE_GROWTH`` or more across it (``released``: the bytes given back)."""

    def __init__(self, growth: int | None = None) -> None:
        self.growth = RELEASE_GROWTH if growth is None else growth
        self.before = 0
        self.released = 0

    def __enter__(self) -> released_after_growth:
        self.before = resident_bytes()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.before and resident_bytes() - self.before >= self.growth:
            self.released = release_memory()


def releases() -> int:
    """Trims done in this process."""
    return _releases


def released_bytes() -> int:
    """Bytes the RSS fell by across the trims done in this process."""
    return _released
