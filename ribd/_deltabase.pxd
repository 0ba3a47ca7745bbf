# cython: language_level=3
"""What the stores' two delta tables share (``ribd._deltabase.DeltaBase``):
the fields the typed slot operations of ``ribd._intdelta`` (IPv4) and
``ribd._intdelta6`` (IPv6) read, and the calls each width answers."""

from cpython.ref cimport PyObject
from libc.stdint cimport uint32_t, uint64_t


cdef uint64_t hash_key() noexcept  # a random 64-bit hash key (see ribd._deltabase)


cdef class DeltaBase:
    cdef void *slots  # the width's slots (a power of two of them), or NULL
    cdef char *order  # the keys in insertion order, ``order_bytes`` each
    cdef Py_ssize_t size  # slots
    cdef Py_ssize_t n  # keys held
    cdef Py_ssize_t used  # positions of ``order`` taken (held and deleted)
    cdef Py_ssize_t cap  # positions ``order`` has room for
    cdef int shift  # 64 - log2(size)
    # This table's hash keys, random (``ribd._deltabase``: why): IPv4 uses the
    # first (odd) as its multiplier, IPv6 the first five.
    cdef uint64_t seeds[5]
    cdef uint32_t counts[129]  # keys held per prefix length
    # The width's layout, set by its __cinit__: a slot's bytes, the offsets of its
    # tag (0: empty, else the position in the order << pos_shift | the key's low
    # bits) and of its entry's pointer; an order item's bytes and the offset of
    # the word that is 0 once its key is deleted; the longest prefix.
    cdef Py_ssize_t slot_bytes, tag_at, value_at, order_bytes, live_at
    cdef int pos_shift, max_length

    cdef int make_room(self) except -1
    cdef int _room(self) except -1
    cdef void _release(self) noexcept
    # -- per width -----------------------------------------------------------
    cdef int _grow(self, Py_ssize_t size) except -1
    cdef PyObject *_get_obj(self, object key) except? NULL
    cdef int _set_obj(self, object key, object value) except -1
    cdef int _add_obj(self, object key, object value) except -1
    cdef int _del_obj(self, object key) except -1
    cdef object _key_obj(self, const char *item)
