# cython: language_level=3
"""The IPv6 store's delta as a compiled table (``ribd._intdelta6``): its typed
interface for the compiled readers (``ribd._intdelta``'s ``delta_get`` /
``delta_set`` dispatch to it)."""

from cpython.ref cimport PyObject
from libc.stdint cimport uint32_t, uint64_t


ctypedef struct Slot6:
    uint64_t hi  # the address's 128 bits, left-aligned (bits past the length zero)
    uint64_t lo
    uint64_t lp  # length + 1 | position in the order << 8; 0: empty
    PyObject *value  # a strong reference


ctypedef struct Key6:
    uint64_t hi
    uint64_t lo
    uint64_t len1  # length + 1; 0: deleted since


cdef class IntDelta6:
    cdef Slot6 *slots
    cdef Key6 *order  # keys in insertion order
    cdef Py_ssize_t size  # slots (a power of two)
    cdef Py_ssize_t n  # keys held
    cdef Py_ssize_t used  # positions of ``order`` taken (held and deleted)
    cdef Py_ssize_t cap  # positions ``order`` has room for
    cdef int shift  # 64 - log2(size)
    cdef uint32_t counts[129]  # keys held per prefix length

    cdef Py_ssize_t _find(self, uint64_t hi, uint64_t lo, int length) noexcept
    cdef PyObject *get_c(self, object key) except? NULL
    cdef int set_c(self, object key, object value) except -1
    cdef int add_c(self, object key, object value) except -1
    cdef int del_c(self, object key) except -1
    cdef int _grow(self, Py_ssize_t size) except -1
    cdef int _append(self, uint64_t hi, uint64_t lo, int length, object value) except -1
    cdef int _room(self) except -1
    cdef void _release(self) noexcept
