# cython: language_level=3
"""The IPv6 store's delta as a compiled table (``ribd._intdelta6``): its typed
interface for the compiled readers (``ribd._intdelta``'s ``delta_get`` /
``delta_set`` dispatch to it)."""

from ribd._deltabase cimport DeltaBase

cimport cython
from cpython.ref cimport PyObject
from libc.stdint cimport uint64_t


ctypedef struct Key6:  # a key as the order holds it
    uint64_t hi  # the address's 128 bits, left-aligned (bits past the length zero)
    uint64_t lo
    uint64_t len1  # length + 1; 0: deleted since


@cython.final
cdef class IntDelta6(DeltaBase):
    cdef PyObject *get_c(self, object key) except? NULL
    cdef int set_c(self, object key, object value) except -1
    cdef int add_c(self, object key, object value) except -1
    cdef int del_c(self, object key) except -1
