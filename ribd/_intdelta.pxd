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


# The table an UPDATE's keys will be probed in, asked of the cache while the
# UPDATE is still being decoded (``ribd._rawnlri.nlri4_keys``): with 16
# routers loading together the store's delta is ~17-34 MB read at random, and
# each of an UPDATE's prefixes missed the cache in turn in the probe
# (``_wide_core`` -> ``get_c``: 9% of that feed by perf, stop 38). A hint only:
# the table the last probe used (any table: a wrong one costs nothing but the
# hint), its slot array and shift as they are when asked; nothing is read or
# written through it.
ctypedef struct DeltaHot:
    const char *slots
    uint64_t mult  # the table's hash multiplier (random: ribd._deltabase)
    int shift


cdef extern from *:
    """
    #ifndef RIBD_DELTA_PREFETCH
    #define RIBD_DELTA_PREFETCH
    #define ribd_delta_prefetch(a) __builtin_prefetch((a), 0, 3)
    #endif
    """
    void ribd_delta_prefetch(const void *a) noexcept nogil


cdef int delta4_hot(DeltaHot *hot) noexcept


cdef inline Py_ssize_t key4_home(uint64_t key, uint64_t mult, int shift) noexcept nogil:
    """An IPv4 key's home slot: multiply-shift, the top bits of key * ``mult``
    (the table's random odd multiplier)."""
    return <Py_ssize_t>((key * mult) >> shift)


cdef inline void delta4_prefetch(const DeltaHot *hot, uint64_t key) noexcept nogil:
    """``key``'s home slot (16 bytes) in ``hot``'s table asked of the cache."""
    ribd_delta_prefetch(hot.slots + 16 * key4_home(key, hot.mult, hot.shift))


cdef extern from "Python.h":
    long long PyLong_AsLongLongAndOverflow(object o, int *overflow) except? -1
    bint PyLong_CheckExact(object o)


cdef extern from *:
    """
    #ifndef RIBD_KEY4_DIGITS
    #define RIBD_KEY4_DIGITS
    /* CPython 3.11's ints: ``ob_digit`` of 30-bit digits, ``Py_SIZE`` their
       count (negative: a negative int). An exact int of one or two digits
       (0 < v < 2**60): its value, read there; 0 for any other (the caller then
       takes the generic path, which words the errors). */
    #if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000 && PyLong_SHIFT == 30
    static inline uint64_t ribd_key4_digits(PyObject *o) {
        Py_ssize_t n = Py_SIZE(o);
        const digit *d = ((PyLongObject *)o)->ob_digit;
        if (n == 1)
            return (uint64_t)d[0];
        if (n == 2)
            return (uint64_t)d[0] | ((uint64_t)d[1] << PyLong_SHIFT);
        return 0;
    }
    #else
    static inline uint64_t ribd_key4_digits(PyObject *o) { (void)o; return 0; }
    #endif
    #endif
    """
    uint64_t ribd_key4_digits(object o) noexcept


cdef inline uint64_t key_of(object key) except 0:
    """A prefix's key as the table holds it: an int ``1 << length | network``,
    so 1 <= key < 2**33 (TypeError for another type, ValueError out of range).
    An exact int's digits are read where they lie (the generic conversion took
    ~46 instructions a key, 3.5% of 16 routers loading together; stop 38)."""
    cdef int overflow = 0
    cdef long long k
    cdef uint64_t v
    if PyLong_CheckExact(key):
        v = ribd_key4_digits(key)
        if v and v < (<uint64_t>1 << 33):
            return v
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
