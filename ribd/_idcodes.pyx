# cython: language_level=3, boundscheck=False, wraparound=False
"""Codes of objects by identity, for a snapshot's capture: ``id(obj)`` -> a code.

Why: a capture gives every value an entry holds (one router's attribute set)
the code of that set among the interner's sets. In numpy that is an
``argsort`` of every set's id, then a ``searchsorted`` per value: with 64
routers, 6.6 M sets, ~23 binary-search steps a value, most of them cache
misses (5.6 CPU-s of a 43 CPU-s write; BENCHMARKS.md, stop 48). Here the ids
go into an open-addressing table (linear probing, at most two thirds full):
one or two probes a value, and no sort.

The table is two int64 arrays of 1.5 slots a set (~24 bytes a set: as much as
the sorted ids and codes with the sort's scratch that it replaces).
``ribd.idcodes`` holds numpy versions of everything here, used where this
module is not built; ``tests/ribd/test_idcodes.py`` compares both.
"""

from libc.stdint cimport int64_t, uint64_t

import numpy as np

cdef extern from *:
    ctypedef unsigned long long u128 "unsigned __int128"

# An odd 64-bit constant (2**64 / golden ratio): multiplying spreads the
# pointers' few varying bits (objects are 16-byte aligned, allocated in runs)
# over the high bits, which ``_slot`` keeps.
cdef uint64_t _MIX = 0x9E3779B97F4A7C15ULL


cdef inline Py_ssize_t _slot(int64_t key, uint64_t size) nogil:
    """``key``'s first slot: the high bits of its mixed value, scaled to ``size``
    (a multiply and a shift, where a modulo would be a division)."""
    return <Py_ssize_t>((<u128>(<uint64_t>key * _MIX) * size) >> 64)


cdef inline Py_ssize_t _probe(const int64_t[::1] keys, int64_t key, uint64_t size) nogil:
    """Where ``key`` is in the table ``keys`` (``size`` slots, 0 empty, never full), or
    the empty slot where it would go: linear probing from its first slot."""
    cdef Py_ssize_t at = _slot(key, size)
    while keys[at] != 0 and keys[at] != key:
        at += 1
        if <uint64_t>at == size:
            at = 0
    return at


cdef object _ids(ids):
    """``ids`` as C-contiguous int64, none of them 0 (the tables' empty slot)."""
    out = np.ascontiguousarray(ids, dtype=np.int64)
    zero = np.flatnonzero(out == 0)
    if len(zero):
        raise ValueError(f"id 0 at position {int(zero[0])}")
    return out


cdef inline uint64_t _table_size(Py_ssize_t n) noexcept nogil:
    """Slots for ``n`` ids: at most two thirds full, so one or two probes a lookup."""
    return <uint64_t>(n + n // 2 + 16)


cdef class IdCodes:
    """A fixed map from distinct non-zero ids to codes, built once, read many times."""

    cdef int64_t[::1] keys  # 0: an empty slot (no object's id is 0)
    cdef int64_t[::1] values
    cdef uint64_t size

    def __init__(self, ids, codes):
        """``ids`` (int64, distinct, non-zero) get ``codes`` (int64), position by position."""
        cdef const int64_t[::1] i = _ids(ids)
        cdef const int64_t[::1] c = np.ascontiguousarray(codes, dtype=np.int64)
        cdef Py_ssize_t n = i.shape[0], k, at
        cdef int64_t key
        if c.shape[0] != n:
            raise ValueError(f"{n} ids but {c.shape[0]} codes")
        self.size = _table_size(n)
        self.keys = np.zeros(self.size, np.int64)
        self.values = np.empty(self.size, np.int64)
        with nogil:
            for k in range(n):
                key = i[k]
                at = _probe(self.keys, key, self.size)
                if self.keys[at] == key:
                    with gil:
                        raise ValueError(f"id {key} at position {k} is there twice")
                self.keys[at] = key
                self.values[at] = c[k]

    def lookup(self, ids):
        """(codes, found) for ``ids`` (int64): found[k] False where ids[k] is not held
        (its code is then 0)."""
        cdef const int64_t[::1] i = np.ascontiguousarray(ids, dtype=np.int64)
        cdef Py_ssize_t n = i.shape[0], k, at
        cdef int64_t key
        out = np.zeros(n, np.int64)
        found = np.zeros(n, np.bool_)
        cdef int64_t[::1] o = out
        cdef unsigned char[::1] f = found.view(np.uint8)
        with nogil:
            for k in range(n):
                key = i[k]
                at = _probe(self.keys, key, self.size)
                if key != 0 and self.keys[at] == key:
                    o[k] = self.values[at]
                    f[k] = 1
        return out, found


def first_use(ids):
    """(numbers, firsts) for ``ids`` (int64, non-zero, repeats allowed): numbers[k] is
    how many distinct ids came before ids[k]'s first place; firsts[m] is the place
    of the m-th distinct id. What ``np.unique`` with ``return_index`` and
    ``return_inverse`` then an ``argsort`` of the first places give, in one pass
    over a table instead of two sorts (a snapshot numbers 6.6 M sets' cores and
    router parts so with 64 routers)."""
    cdef const int64_t[::1] i = _ids(ids)
    cdef Py_ssize_t n = i.shape[0], k, at, count = 0
    cdef uint64_t size = _table_size(n)
    cdef int64_t key
    keys_ = np.zeros(size, np.int64)
    values_ = np.empty(size, np.int64)
    numbers = np.empty(n, np.int64)
    firsts = np.empty(n, np.int64)
    cdef int64_t[::1] keys = keys_, values = values_, num = numbers, fir = firsts
    with nogil:
        for k in range(n):
            key = i[k]
            at = _probe(keys, key, size)
            if keys[at] == 0:
                keys[at] = key
                values[at] = count
                fir[count] = k
                count += 1
            num[k] = values[at]
    return numbers, firsts[:count].copy()


cdef Py_ssize_t _first_outside(
    const int64_t[::1] flat, Py_ssize_t shift, Py_ssize_t size
) noexcept nogil:
    """The first place whose code + ``shift`` is not in 0..size-1, -1 if none."""
    cdef Py_ssize_t k, at
    for k in range(flat.shape[0]):
        at = flat[k] + shift
        if at < 0 or at >= size:
            return k
    return -1


cdef object _checked(codes, Py_ssize_t shift, Py_ssize_t size):
    """``codes`` (int64, C-contiguous) as one flat view, every code + ``shift`` an
    index below ``size``; ValueError naming the first that is not, before any write."""
    if not codes.flags.c_contiguous:
        raise ValueError("codes are not C-contiguous")
    flat = codes.reshape(-1)
    cdef const int64_t[::1] view = flat
    cdef Py_ssize_t k
    with nogil:
        k = _first_outside(view, shift, size)
    if k >= 0:
        raise ValueError(f"code {flat[k]} at {k} is outside 0..{size - 1} - {shift}")
    return flat


def mark_codes(codes, Py_ssize_t shift, used):
    """``used[code + shift]`` set for every code of ``codes`` (int64, C-contiguous,
    any shape); a code outside ``used`` is refused before anything is marked.

    With ``recode``: a snapshot's capture drops the sets no entry uses and
    renumbers the rest (``snapshot_capture._compact``). Over a 64-router matrix
    of 38 M codes, numpy's shifted copy, scatter, take and copy back were ~2.9
    CPU-s and ~600 MB of new pages; these are passes in place."""
    cdef unsigned char[::1] mark = used.view(np.uint8)
    cdef const int64_t[::1] flat = _checked(codes, shift, mark.shape[0])
    cdef Py_ssize_t k
    with nogil:
        for k in range(flat.shape[0]):
            mark[flat[k] + shift] = 1


def recode(codes, lut, Py_ssize_t shift):
    """``codes`` (int64, C-contiguous) renumbered in place to ``lut[code + shift]``;
    a code outside ``lut`` is refused before anything is written."""
    cdef const int64_t[::1] table = lut
    cdef int64_t[::1] flat = _checked(codes, shift, table.shape[0])
    cdef Py_ssize_t k
    with nogil:
        for k in range(flat.shape[0]):
            flat[k] = table[flat[k] + shift]
