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

from ribd._deltabase cimport hash_key
from ribd._intdelta cimport PyLong_CheckExact, ribd_key4_digits
from ribd._key6 cimport key6_split

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.ref cimport PyObject
from cpython.sequence cimport PySequence_Fast, PySequence_Fast_GET_ITEM, PySequence_Fast_GET_SIZE
from libc.stdint cimport uint64_t
from libc.string cimport memset

cdef enum:
    STACK = 64  # keys checked without a heap allocation (most UPDATEs carry fewer)

ctypedef struct Bits:
    uint64_t hi
    uint64_t lo
    int length


cdef uint64_t _s0 = hash_key() | 1  # (also a one-word key's multiplier: odd)
cdef uint64_t _s1 = hash_key(), _s2 = hash_key(), _s3 = hash_key(), _s4 = hash_key()
cdef uint64_t LOW = 0xFFFFFFFFULL


cdef inline uint64_t _hash(const Bits *b) noexcept nogil:
    if b.length == WORD:  # (an int below 2**60: every IPv4 key, IPv6 ones to /59)
        return b.hi * _s0
    return ((b.hi >> 32) * _s0 + (b.hi & LOW) * _s1 + (b.lo >> 32) * _s2
            + (b.lo & LOW) * _s3 + <uint64_t>b.length * _s4)


cdef Py_ssize_t _by_set(object seq, Py_ssize_t start, Py_ssize_t n) except -2:
    """Keys that are not int keys: the set-based reference decides (texts hash randomized)."""
    from ribd.ribload import PY_FIRST_REPEAT  # (ribd.ribload imports this module)

    return PY_FIRST_REPEAT(seq, start)


cdef enum:
    WORD = -2  # ``Bits.length`` of a key held as one word (``hi``)
    PAIRWISE = 4  # up to this many keys, compared pair by pair (callgrind: 16 cost more)


cdef Py_ssize_t _scan(object seq, Py_ssize_t start, Py_ssize_t n, Bits *bits,
                      Py_ssize_t *table, Py_ssize_t size) except -2:
    """``first_repeat`` with room for ``n - start`` keys' bits and a table of
    ``size`` slots (a power of two, at least twice the keys; unused when they
    are few enough to compare pair by pair)."""
    cdef Py_ssize_t count = n - start, mask = size - 1, i, j
    cdef Bits *b
    cdef bint pairwise = count <= PAIRWISE
    if not pairwise:
        memset(table, 0, size * sizeof(Py_ssize_t))  # (0: empty; else index - start + 1)
    cdef PyObject *o
    for i in range(count):
        o = PySequence_Fast_GET_ITEM(seq, start + i)  # (borrowed)
        b = &bits[i]
        # One word for an int below 2**60 (its digits read where they lie), else
        # the IPv6 split: which one depends on the value only, so equal keys
        # always compare alike.
        b.hi = ribd_key4_digits(<object>o) if PyLong_CheckExact(<object>o) else 0
        if b.hi:
            b.lo = 0
            b.length = WORD
        else:
            b.length = key6_split(<object>o, &b.hi, &b.lo) if type(<object>o) is int else -1
            if b.length < 0:  # not an int key: the set decides
                return _by_set(seq, start, n)
        if pairwise:
            for j in range(i):
                if bits[j].hi == b.hi and bits[j].lo == b.lo and bits[j].length == b.length:
                    return start + i
            continue
        j = <Py_ssize_t>(_hash(b) >> 32) & mask
        while table[j]:
            if (bits[table[j] - 1].hi == b.hi and bits[table[j] - 1].lo == b.lo
                    and bits[table[j] - 1].length == b.length):
                return start + i
            j = (j + 1) & mask
        table[j] = i + 1
    return n


cdef Py_ssize_t first_repeat(object seq, Py_ssize_t start, Py_ssize_t n) except -2:
    """The index in ``[start, n)`` of the first key of ``seq`` (a
    ``PySequence_Fast``) equal to one before it in that range, else ``n``."""
    cdef Py_ssize_t count = n - start, size = 4
    cdef Py_ssize_t stack_t[4 * STACK]
    cdef Bits stack_b[STACK]
    cdef void *heap
    if count < 2:
        return n
    while size < 2 * count:
        size <<= 1
    if count <= STACK:  # (the common case: no allocation, no try)
        return _scan(seq, start, n, stack_b, stack_t, size)
    heap = PyMem_Malloc(size * sizeof(Py_ssize_t) + count * sizeof(Bits))
    if heap == NULL:
        raise MemoryError()
    try:
        return _scan(seq, start, n, <Bits *>(<Py_ssize_t *>heap + size), <Py_ssize_t *>heap, size)
    finally:
        PyMem_Free(heap)


def first_repeat_in(keys, Py_ssize_t start=0):
    """``first_repeat`` for Python: the index of the first of ``keys`` (from
    ``start``) equal to an earlier one from ``start``, else ``len(keys)``."""
    seq = PySequence_Fast(keys, "keys must be a sequence")
    return first_repeat(seq, start, PySequence_Fast_GET_SIZE(seq))
