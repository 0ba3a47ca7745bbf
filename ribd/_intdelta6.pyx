# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The IPv6 store's delta: prefix key (``1 << length | network``) -> entry, in C.

Why: the IPv6 delta was a dict by prefix text. A table load made a ~20
character text for each IPv6 prefix of each router (the compressed-zeros
formatting), siphashed it, and for a key found (every router after the
first) compared it with the held text character by character, on a dict
whose index, entries and key objects missed the cache each. Here a prefix is
its int key (``ribd.prefix_keys``, made from the NLRI octets with no text),
and a slot holds its address's 128 bits, its length and the entry's pointer
(32 bytes, two a cache line), so an operation reads one line. The table is
the IPv4 delta's (``ribd._intdelta``) with wider keys: the order and the
Python interface are ``ribd._deltabase.DeltaBase``'s, the probe, insert and
delete ``ribd/_deltaslots.pxi``'s; this module is what a 129-bit key
decides (its hash: its 32-bit pieces and length under the table's random keys).

Readers use the interface every store's delta has (``ribd.intdelta``) or,
compiled, ``get_c`` / ``set_c`` through ``ribd._intdelta``'s ``delta_get`` /
``delta_set``. ``ribd.intdelta.PyIntDelta6`` is the reference
(tests/ribd/test_intdelta.py compares them).
"""

from ribd._key6 cimport key6_check, key6_obj

from cpython.mem cimport PyMem_Calloc, PyMem_Free
from cpython.ref cimport Py_DECREF, Py_INCREF, PyObject
from libc.stdint cimport uint64_t
from libc.string cimport memset


ctypedef struct Slot6:
    uint64_t hi  # the address's 128 bits, left-aligned (bits past the length zero)
    uint64_t lo
    uint64_t tag  # length + 1 | position in the order << 8; 0: empty
    PyObject *value  # a strong reference


ctypedef Slot6 SlotT
ctypedef Key6 KeyT

cdef enum:
    POS_SHIFT = 8

cdef uint64_t LOW = 0xFFFFFFFFULL


cdef inline Py_ssize_t _home(uint64_t hi, uint64_t lo, uint64_t len1, const uint64_t *seeds,
                             int shift) noexcept nogil:
    """A key's home slot: vector multiply-shift over its four 32-bit pieces and
    its length, under the table's random keys (the top bits of the sum of
    each piece times its key; a fold of the words into one, as before stop
    60, let a peer pick keys that fold alike whatever the multiplier)."""
    cdef uint64_t x = (
        (hi >> 32) * seeds[0] + (hi & LOW) * seeds[1]
        + (lo >> 32) * seeds[2] + (lo & LOW) * seeds[3] + len1 * seeds[4]
    )
    return <Py_ssize_t>(x >> shift)


cdef inline Py_ssize_t _key_home(Key6 k, const uint64_t *seeds, int shift) noexcept nogil:
    return _home(k.hi, k.lo, k.len1, seeds, shift)


cdef inline Py_ssize_t _slot_home(const Slot6 *s, const uint64_t *seeds, int shift) noexcept nogil:
    return _home(s.hi, s.lo, s.tag & 0xFF, seeds, shift)


cdef inline bint _holds(const Slot6 *s, Key6 k) noexcept nogil:
    return s.hi == k.hi and s.lo == k.lo and (s.tag & 0xFF) == k.len1


cdef inline void _fill(Slot6 *s, Key6 k, Py_ssize_t pos) noexcept nogil:
    s.hi = k.hi
    s.lo = k.lo
    s.tag = k.len1 | (<uint64_t>pos << POS_SHIFT)


cdef inline int _key_length(Key6 k) noexcept nogil:
    return <int>k.len1 - 1


cdef inline bint _live(const Key6 *item) noexcept nogil:
    return item.len1 != 0


cdef inline int _key(object key, Key6 *k) except -1:
    """``key``'s C form into ``k`` (TypeError, ValueError as ``key6_check``)."""
    k.len1 = <uint64_t>(key6_check(key, &k.hi, &k.lo) + 1)
    return 0


include "_deltaslots.pxi"


cdef class IntDelta6(DeltaBase):
    """The prefixes an IPv6 store's arrays lack: int key -> entry (see the module)."""

    def __cinit__(self):
        self.slot_bytes = sizeof(Slot6)
        self.tag_at = 2 * sizeof(uint64_t)
        self.value_at = 3 * sizeof(uint64_t)
        self.order_bytes = sizeof(Key6)
        self.live_at = 2 * sizeof(uint64_t)
        self.pos_shift = POS_SHIFT
        self.max_length = 128

    # -- the typed interface (ribd/_intdelta6.pxd) ---------------------------

    cdef PyObject *get_c(self, object key) except? NULL:
        """The entry at ``key`` (a borrowed reference), or NULL (no error set)."""
        cdef Key6 k
        cdef Py_ssize_t i
        _key(key, &k)
        i = _probe(self, k)
        return NULL if i < 0 else (<Slot6 *>self.slots)[i].value

    cdef int set_c(self, object key, object value) except -1:
        """``value`` at ``key``: replaced in place if held (its order kept), else added last."""
        cdef Key6 k
        _key(key, &k)
        return _set(self, k, value)

    cdef int add_c(self, object key, object value) except -1:
        """``value`` at ``key`` if it is not held (1), else nothing (0)."""
        cdef Key6 k
        _key(key, &k)
        return _add(self, k, value)

    cdef int del_c(self, object key) except -1:
        """Remove ``key`` (1), or nothing if it is not held (0)."""
        cdef Key6 k
        _key(key, &k)
        return _delete(self, k)

    # -- DeltaBase's calls for this width ------------------------------------

    cdef int _grow(self, Py_ssize_t size) except -1:
        return _rehash(self, size)

    def displacement(self):
        """Slots walked past by every held key's probe, summed (tests, diagnostics)."""
        return _displacement(self)

    cdef PyObject *_get_obj(self, object key) except? NULL:
        return self.get_c(key)

    cdef int _set_obj(self, object key, object value) except -1:
        return self.set_c(key, value)

    cdef int _add_obj(self, object key, object value) except -1:
        return self.add_c(key, value)

    cdef int _del_obj(self, object key) except -1:
        return self.del_c(key)

    cdef object _key_obj(self, const char *item):
        cdef const Key6 *k = <const Key6 *>item
        return key6_obj(k.hi, k.lo, <int>k.len1 - 1)
