# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The IPv4 store's delta: prefix key (``1 << length | network``) -> entry, in C.

Why not a dict: a first table load probes and inserts every prefix of the
table into the delta (a million for today's table), and a dict keyed by int
objects misses the cache three times an operation on a table that size: its
index, its entry and, for a key found (every router after the first), the
key object itself. Here a slot holds the key's bits and the entry's pointer
(16 bytes, four a cache line), the key is hashed by one multiply (by the table's random odd key:
``ribd._deltabase`` says why), and
collisions walk on in the same line (linear probing, at most two-thirds
full: the real table's 577 k keys fit 2**20 slots, 16.8 MB, where half full
took 2**21), so an operation reads one line, and a new key is placed where
its probe ended (one walk, not two). The order and the Python interface are
``ribd._deltabase.DeltaBase``'s, the probe, insert and delete
``ribd/_deltaslots.pxi``'s, both shared with the IPv6 table
(``ribd._intdelta6``): this module is what a 33-bit key decides.

Readers use the interface every store's delta has (``ribd.intdelta``) or,
compiled, ``get_c`` / ``set_c`` through ``delta_get`` / ``delta_set``
(``_intdelta.pxd``), which take the IPv6 store's table too.
``ribd.intdelta.PyIntDelta`` is the reference (tests/ribd/test_intdelta.py
compares them).
"""

from cpython.long cimport PyLong_FromUnsignedLongLong
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from cpython.ref cimport Py_DECREF, Py_INCREF, PyObject
from libc.stdint cimport uint64_t
from libc.string cimport memset


cdef extern from *:
    int __builtin_clzll(unsigned long long x) nogil


ctypedef struct Slot:
    uint64_t tag  # key | position in the order << 33; 0: empty
    PyObject *value  # a strong reference


ctypedef Slot SlotT
ctypedef uint64_t KeyT  # (the order's items: the key; 0: deleted since)

cdef enum:
    POS_SHIFT = 33

cdef uint64_t KEY_MASK = ((<uint64_t>1) << POS_SHIFT) - 1


cdef inline Py_ssize_t _key_home(uint64_t key, const uint64_t *seeds, int shift) noexcept nogil:
    return key4_home(key, seeds[0], shift)  # (_intdelta.pxd: the prefetch's too)


cdef inline Py_ssize_t _slot_home(const Slot *s, const uint64_t *seeds, int shift) noexcept nogil:
    return _key_home(s.tag & KEY_MASK, seeds, shift)


cdef inline bint _holds(const Slot *s, uint64_t key) noexcept nogil:
    return (s.tag & KEY_MASK) == key


cdef inline void _fill(Slot *s, uint64_t key, Py_ssize_t pos) noexcept nogil:
    s.tag = key | (<uint64_t>pos << POS_SHIFT)


cdef inline int _key_length(uint64_t key) noexcept nogil:
    """The prefix length of a key (its bit length - 1)."""
    return 63 - __builtin_clzll(key)


cdef inline bint _live(const uint64_t *item) noexcept nogil:
    return item[0] != 0


include "_deltaslots.pxi"


# The table the last typed call used, for ``delta4_hot`` (no reference held:
# cleared when that table goes).
cdef PyObject *_hot = NULL


cdef int delta4_hot(DeltaHot *hot) noexcept:
    """Fills ``hot`` with the slots and shift of the IPv4 table the last typed
    call used; 0 when there is none or it has no slots (see _intdelta.pxd)."""
    cdef DeltaBase t
    if _hot == NULL:
        return 0
    t = <DeltaBase>_hot
    if t.slots == NULL:
        return 0
    hot.slots = <const char *>t.slots
    hot.shift = t.shift
    hot.mult = t.seeds[0]
    return 1


cdef class IntDelta(DeltaBase):
    """The prefixes an IPv4 store's arrays lack: int key -> entry (see the module)."""

    def __cinit__(self):
        self.slot_bytes = sizeof(Slot)
        self.tag_at = 0
        self.value_at = sizeof(uint64_t)
        self.order_bytes = sizeof(uint64_t)
        self.live_at = 0
        self.pos_shift = POS_SHIFT
        self.max_length = 32

    # -- the typed interface (ribd/_intdelta.pxd) ----------------------------

    def __dealloc__(self):
        global _hot
        if _hot == <PyObject *>self:
            _hot = NULL

    cdef PyObject *get_c(self, uint64_t key):
        """The entry at ``key`` (a borrowed reference), or NULL."""
        global _hot
        cdef Py_ssize_t i = _probe(self, key)
        _hot = <PyObject *>self
        return NULL if i < 0 else (<Slot *>self.slots)[i].value

    cdef int set_c(self, uint64_t key, object value) except -1:
        """``value`` at ``key``: replaced in place if held (its order kept), else added last."""
        global _hot
        _hot = <PyObject *>self
        return _set(self, key, value)

    cdef int add_c(self, uint64_t key, object value) except -1:
        """``value`` at ``key`` if it is not held (1), else nothing (0)."""
        global _hot
        _hot = <PyObject *>self
        return _add(self, key, value)

    cdef int del_c(self, uint64_t key) except -1:
        """Remove ``key`` (1), or nothing if it is not held (0)."""
        return _delete(self, key)

    # -- DeltaBase's calls for this width ------------------------------------

    cdef int _grow(self, Py_ssize_t size) except -1:
        return _rehash(self, size)

    def displacement(self):
        """Slots walked past by every held key's probe, summed (tests, diagnostics)."""
        return _displacement(self)

    cdef PyObject *_get_obj(self, object key) except? NULL:
        return self.get_c(key_of(key))

    cdef int _set_obj(self, object key, object value) except -1:
        return _set(self, key_of(key), value)

    cdef int _add_obj(self, object key, object value) except -1:
        return _add(self, key_of(key), value)

    cdef int _del_obj(self, object key) except -1:
        return _delete(self, key_of(key))

    cdef object _key_obj(self, const char *item):
        return PyLong_FromUnsignedLongLong((<const uint64_t *>item)[0])


def hot_table():
    """The table ``delta4_hot`` reads (tests): the IPv4 table the last typed
    call used, while it lives, else None."""
    return None if _hot == NULL else <object>_hot
