# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Where an UPDATE's prefix keys first repeat, under hash keys a peer cannot know.

Why: the load paths must tell an UPDATE that carries a prefix twice (its
writes then go in runs without repeats: ``ribd.ribload.runs_without_repeats``)
and did it with sets of the keys or a table under a fixed multiplier. A set
hashes an int key as itself modulo 2**61 - 1, with no randomness: IPv6 keys
(up to 129 bits) ``k + j * (2**61 - 1)`` all hash alike, so a peer's UPDATE of
such prefixes made every check quadratic in its prefix count (3,000 /80s in
one UPDATE: ~70 ms against ~1 for ordinary ones, each time it was sent).
Here a key's bits (its address words and length, ``ribd._key6``: the same
split for IPv4 keys, which are below 2**33) are hashed by vector
multiply-shift under random keys drawn once per process, and slots compared
by those bits, so no choice of prefixes lines them up. Keys that are not such
ints (texts: tools, tests) take a set, whose str hashes are randomized.
"""

from ribd._key6 cimport key6_split

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.ref cimport PyObject
from cpython.sequence cimport PySequence_Fast, PySequence_Fast_GET_ITEM, PySequence_Fast_GET_SIZE
from libc.stdint cimport uint64_t
from libc.string cimport memset

import os

cdef enum:
    STACK = 64  # keys checked without a heap allocation (most UPDATEs carry fewer)

ctypedef struct Bits:
    uint64_t hi
    uint64_t lo
    int length


cdef uint64_t _s0, _s1, _s2, _s3, _s4
_s0, _s1, _s2, _s3, _s4 = (int.from_bytes(os.urandom(8), "little") for _ in range(5))
cdef uint64_t LOW = 0xFFFFFFFFULL


cdef inline uint64_t _hash(const Bits *b) noexcept nogil:
    return ((b.hi >> 32) * _s0 + (b.hi & LOW) * _s1 + (b.lo >> 32) * _s2
            + (b.lo & LOW) * _s3 + <uint64_t>b.length * _s4)


cdef Py_ssize_t _by_set(object seq, Py_ssize_t start, Py_ssize_t n) except -2:
    seen = set()
    cdef Py_ssize_t i
    for i in range(start, n):
        key = <object>PySequence_Fast_GET_ITEM(seq, i)
        if key in seen:
            return i
        seen.add(key)
    return n


cdef Py_ssize_t first_repeat(object seq, Py_ssize_t start, Py_ssize_t n) except -2:
    """The index in ``[start, n)`` of the first key of ``seq`` (a
    ``PySequence_Fast``) equal to one before it in that range, else ``n``."""
    cdef Py_ssize_t count = n - start, size = 4, mask, i, j
    cdef Py_ssize_t stack_t[4 * STACK]
    cdef Bits stack_b[STACK]
    cdef Py_ssize_t *table = stack_t
    cdef Bits *bits = stack_b
    cdef Bits *b
    cdef Py_ssize_t found = n
    if count < 2:
        return n
    while size < 2 * count:
        size <<= 1
    if size > 4 * STACK or count > STACK:
        table = <Py_ssize_t *>PyMem_Malloc(size * sizeof(Py_ssize_t) + count * sizeof(Bits))
        if table == NULL:
            raise MemoryError()
        bits = <Bits *>(table + size)
    try:
        memset(table, 0, size * sizeof(Py_ssize_t))  # (0: empty; else index - start + 1)
        mask = size - 1
        for i in range(count):
            key = <object>PySequence_Fast_GET_ITEM(seq, start + i)
            b = &bits[i]
            b.length = key6_split(key, &b.hi, &b.lo) if type(key) is int else -1
            if b.length < 0:  # not an int key: the set decides
                return _by_set(seq, start, n)
            j = <Py_ssize_t>(_hash(b) >> 32) & mask
            while table[j]:
                if (bits[table[j] - 1].hi == b.hi and bits[table[j] - 1].lo == b.lo
                        and bits[table[j] - 1].length == b.length):
                    found = start + i
                    break
                j = (j + 1) & mask
            if found != n:
                break
            table[j] = i + 1
        return found
    finally:
        if table != stack_t:
            PyMem_Free(table)


def first_repeat_in(keys, Py_ssize_t start=0):
    """``first_repeat`` for Python: the index of the first of ``keys`` (from
    ``start``) equal to an earlier one from ``start``, else ``len(keys)``."""
    seq = PySequence_Fast(keys, "keys must be a sequence")
    return first_repeat(seq, start, PySequence_Fast_GET_SIZE(seq))
