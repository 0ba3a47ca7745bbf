# cython: language_level=3
"""The IPv4 store's delta as a compiled table (``ribd._intdelta``): its typed
interface for the compiled readers, and ``delta_get`` / ``delta_set``, which
take any store's delta (this table, the IPv6 store's ``ribd._intdelta6``
table, or a dict) so that a reader has one call for all."""

from ribd._deltabase cimport DeltaBase
from ribd._intdelta6 cimport IntDelta6

cimport cython
from cpython.ref cimport PyObject
from libc.stdint cimport uint64_t


cdef extern from "Python.h":
    PyObject *PyDict_GetItemWithError(object d, object key) except? NULL
    int PyDict_SetItem(object d, object key, object value) except -1


@cython.final
cdef class IntDelta(DeltaBase):
    cdef PyObject *get_c(self, uint64_t key)
    cdef int set_c(self, uint64_t key, object value) except -1
    cdef int add_c(self, uint64_t key, object value) except -1
    cdef int del_c(self, uint64_t key) except -1


cdef extern from "Python.h":
    long long PyLong_AsLongLongAndOverflow(object o, int *overflow) except? -1


cdef inline uint64_t key_of(object key) except 0:
    """A prefix's key as the table holds it: an int ``1 << length | network``,
    so 1 <= key < 2**33 (TypeError for another type, ValueError out of range)."""
    cdef int overflow = 0
    cdef long long k
    if not isinstance(key, int):
        raise TypeError(f"an IPv4 delta's key is an int, not a {type(key).__name__}")
    k = PyLong_AsLongLongAndOverflow(key, &overflow)
    if overflow or k < 1 or k >= (<long long>1 << 33):
        raise ValueError(f"not an IPv4 prefix key: {key!r}")
    return <uint64_t>k


cdef inline PyObject *delta_get(object delta, object key) except? NULL:
    """The entry at ``key`` (borrowed), or NULL: any kind of delta."""
    if type(delta) is IntDelta:
        return (<IntDelta>delta).get_c(key_of(key))
    if type(delta) is IntDelta6:
        return (<IntDelta6>delta).get_c(key)
    return PyDict_GetItemWithError(delta, key)


cdef inline int delta_set(object delta, object key, object value) except -1:
    """``delta.insert(key, value)``: any kind of delta."""
    if type(delta) is IntDelta:
        return (<IntDelta>delta).set_c(key_of(key), value)
    if type(delta) is IntDelta6:
        return (<IntDelta6>delta).set_c(key, value)
    return PyDict_SetItem(delta, key, value)


cdef inline bint is_delta(object delta):
    """Whether ``delta`` is one the compiled readers take (either table or a dict)."""
    return type(delta) is IntDelta or type(delta) is IntDelta6 or isinstance(delta, dict)
