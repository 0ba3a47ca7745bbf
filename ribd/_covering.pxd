# cython: language_level=3
"""The store's covering walks as C calls (``ribd._covering``), for the readers
that walk many addresses at once (``attribution._viewbuild``'s
``covering_routes``, the bulk path's exact lookups)."""

from cpython.ref cimport PyObject

from ribd._intdelta cimport IntDelta
from ribd._intdelta6 cimport IntDelta6


# At most one covering prefix per length: 129 for IPv6 (lengths 0-128).
cdef enum:
    MAX_COVERING = 129

# One walk of the arrays' keys covering an address, a step at a time
# (``arrays_next``): the keys, their width, the address, the longest length
# left to look at (-1: done), the keys' buckets or NULL.
ctypedef struct ArraysWalk:
    const unsigned char *base
    Py_ssize_t n
    int width
    const unsigned char *address
    int limit
    const Py_ssize_t *buckets

cdef int arrays_next(ArraysWalk *w, Py_ssize_t *index, int *length) noexcept nogil
cdef PyObject *delta4_at(IntDelta delta, unsigned int address, int length)
cdef PyObject *delta6_at(IntDelta6 delta, const unsigned char *address, int length) except? NULL
