# cython: language_level=3, boundscheck=False, wraparound=False
"""The store's arrays read from C by the announce loops (``ribd._announce``'s
general loop, ``ribd._wide``'s wide one), once or more per UPDATE: the IPv4 int
keys' places in the packed keys (``_find_ints``), and the cells of the values'
object array (``store_cells``).

Why a module of its own: both loops need them and each was a per-UPDATE fixed
cost worth its own care. The search stays within the prefix's /16 (stop 33,
late2); the keys' buffer is held while they are searched and a key is read with
one load (stop 37, movewide: under callgrind the search was ~6% of router 17's
feed, numpy's buffer export ~360 instructions of it per UPDATE). The values'
buffer export was ~625 instructions an UPDATE (1.5% of router 17's feed): their
cells are found once per values array (``store_cells``).

``PrefixStore.find_many`` stays the reference for the search
(tests/ribd/test_raw_keys.py compares them).
"""

from cpython.buffer cimport PyBUF_ND, PyBUF_RECORDS, PyBuffer_Release, PyObject_GetBuffer
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.ref cimport PyObject
from cpython.sequence cimport PySequence_Fast, PySequence_Fast_GET_ITEM, PySequence_Fast_GET_SIZE

from ribd._packedkeys cimport first16_starts, ribd_key5
from ribd._rawnlri cimport packed4


cdef extern from "Python.h":
    long long PyLong_AsLongLongAndOverflow(object o, int *overflow) except? -1
    object PyWeakref_NewRef(object ob, object callback)
    PyObject *PyWeakref_GET_OBJECT(object ref)


cdef Py_ssize_t _hint = 0  # the index ``_find_ints`` found last (where it starts)


cdef inline unsigned long long _key5(const unsigned char *p) noexcept nogil:
    """``ribd_key5``: a packed IPv4 key as a number (``memcmp`` order)."""
    return ribd_key5(p)


def key5(bytes key):
    """``_key5`` for Python (tests): the number of a 5-byte packed key."""
    if len(key) != 5:
        raise ValueError("key5: 5 bytes")
    return _key5(<const unsigned char *>key)


# The keys' /16 buckets: ``_bounds[b]`` is the first index of ``_bounds_keys`` (the
# packed keys searched last, held so that the address is not reused) whose first
# two octets are >= b, for b in 0..65536 (``_key_bounds``). The keys' buffer stays
# acquired while they are ``_bounds_keys`` (``_bounds_view``): numpy's buffer export
# was ~360 instructions a search, once per UPDATE (stop 37, movewide); the store
# replaces its keys at a merge and never mutates them, and an export held keeps
# numpy from resizing them.
cdef object _bounds_keys = None
cdef Py_ssize_t *_bounds = NULL
cdef Py_buffer _bounds_view
cdef bint _bounds_held = False


cdef int _key_bounds(keys, Py_buffer *view) except -1:
    """``_bounds`` for ``keys`` (``view``: their buffer, acquired, of packed IPv4
    keys; owned by this from the call on: held as ``_bounds_view``, the one
    held before released), made once per keys array: one pass over the keys'
    first two octets."""
    global _bounds_keys, _bounds, _bounds_held, _bounds_view
    cdef Py_ssize_t count = view.shape[0]
    cdef const unsigned char *base = <const unsigned char *>view.buf
    if _bounds == NULL:
        _bounds = <Py_ssize_t *>PyMem_Malloc(65537 * sizeof(Py_ssize_t))
        if _bounds == NULL:
            PyBuffer_Release(view)
            raise MemoryError()
    if _bounds_held:
        _bounds_held = False
        _bounds_keys = None
        PyBuffer_Release(&_bounds_view)
    first16_starts(base, count, 5, _bounds)
    _bounds_view = view[0]
    _bounds_held = True
    _bounds_keys = keys
    return 0


def bounds_held():
    """Whether a keys array's buffer is held for the searches (tests)."""
    return _bounds_held and _bounds_keys is not None


cdef bint _find_ints(keys, seq, Py_ssize_t n, Py_ssize_t *out) except -1:
    """``PrefixStore.find_many`` of IPv4 int keys (``1 << length | network``,
    ribd.prefix_keys) into ``out``, on the sorted packed keys themselves: the
    same indexes as ``ribd._rawkeys.find_many``'s memcmp search, without its
    per-call numpy views and the list of ints. False (``out`` unusable) when a
    prefix is not such a key: the caller asks the store.

    Each search stays within the keys of the prefix's /16 (``_key_bounds``: a
    few dozen keys, a few lines): from the last prefix found when it is in the
    same /16 (an UPDATE in prefix order: most searches end a few keys away), else
    a binary search of the /16. Before, a search started from the last prefix
    found wherever that was: on tables whose UPDATEs are grouped by attribute
    set (each router's own walk, bench.realistic), each search galloped across
    the array through ~20-40 cold lines (BENCHMARKS.md, stop 33, late2)."""
    cdef Py_buffer view
    global _hint
    cdef Py_ssize_t i, lo, hi, mid, hint, step, first, last
    cdef unsigned long long v, want
    cdef int overflow
    cdef const unsigned char *base
    if not (_bounds_held and keys is _bounds_keys):  # (else: the buffer held, its bounds made)
        PyObject_GetBuffer(keys, &view, PyBUF_ND)
        if view.ndim != 1 or view.itemsize != 5 or view.shape[0] == 0:
            PyBuffer_Release(&view)
            return False
        _key_bounds(keys, &view)  # (the view is held from here: ``_bounds_view``)
    base = <const unsigned char *>_bounds_view.buf
    for i in range(n):
        k = <object>PySequence_Fast_GET_ITEM(seq, i)
        if type(k) is not int:
            return False
        v = <unsigned long long>PyLong_AsLongLongAndOverflow(k, &overflow)
        if overflow or <long long>v < 1 or v >= (1ULL << 33):
            return False
        want = packed4(v)
        first = _bounds[want >> 24]  # the keys of the prefix's /16: [first, last)
        last = _bounds[(want >> 24) + 1]
        lo, hi = first, last
        hint = _hint
        if first <= hint < last:
            # From the last prefix found, in steps doubling away from it,
            # then a binary search within the last step.
            if _key5(base + hint * 5) < want:
                lo, step = hint + 1, 1
                while True:
                    hi = lo + step
                    if hi >= last:
                        hi = last
                        break
                    if _key5(base + hi * 5) >= want:
                        break
                    lo, step = hi + 1, step << 1
            else:
                hi, step = hint, 1
                while True:
                    lo = hi - step
                    if lo <= first:
                        lo = first
                        break
                    if _key5(base + lo * 5) < want:
                        lo += 1
                        break
                    hi, step = lo, step << 1
        while lo < hi:
            mid = (lo + hi) >> 1
            if _key5(base + mid * 5) < want:
                lo = mid + 1
            else:
                hi = mid
        if lo < last and _key5(base + lo * 5) == want:
            out[i] = lo
            _hint = lo
        else:
            out[i] = -1
    return True


def find_ints(keys, prefixes):
    """``_find_ints`` for Python (tests): each IPv4 int key's index in the packed
    ``keys`` (-1: absent), or None where the compiled search declines."""
    cdef Py_ssize_t n, i
    cdef Py_ssize_t *out
    seq = PySequence_Fast(prefixes, "prefixes")
    n = PySequence_Fast_GET_SIZE(seq)
    out = <Py_ssize_t *>PyMem_Malloc((n if n else 1) * sizeof(Py_ssize_t))
    if out == NULL:
        raise MemoryError()
    try:
        if not _find_ints(keys, seq, n, out):
            return None
        return [out[i] for i in range(n)]
    finally:
        PyMem_Free(out)


# The cells of the values arrays seen last (two: a table per family): each
# array's weak reference, its first cell and length. An array is the store's
# ``values`` between two merges (a merge makes new arrays); the store writes its
# cells in place and never resizes it, so its buffer's address holds while the
# array lives. Weak references: holding an array would keep its entries alive
# past a merge (the loops' reference-count rules would see them). A dead
# reference (the array freed) never matches another array at the same address.
cdef object _ref0 = None
cdef object _ref1 = None
cdef PyObject **_cells0 = NULL
cdef PyObject **_cells1 = NULL
cdef Py_ssize_t _n0 = 0
cdef Py_ssize_t _n1 = 0
cdef Py_ssize_t _lookups = 0  # buffer exports made, ever (tests)


cdef int store_cells(values, PyObject ***cells, Py_ssize_t *n) except -1:
    """The cells of ``values`` (a 1-D contiguous array of objects, not empty) in
    ``*cells``, its length in ``*n``; TypeError otherwise. One buffer export per
    array: from then on one weak reference read an UPDATE."""
    global _ref0, _ref1, _cells0, _cells1, _n0, _n1, _lookups
    cdef Py_buffer view
    if _ref0 is not None and PyWeakref_GET_OBJECT(_ref0) == <PyObject *>values:
        cells[0] = _cells0
        n[0] = _n0
        return 0
    if _ref1 is not None and PyWeakref_GET_OBJECT(_ref1) == <PyObject *>values:
        cells[0] = _cells1
        n[0] = _n1
        return 0
    PyObject_GetBuffer(values, &view, PyBUF_RECORDS)
    try:
        if view.ndim != 1 or view.itemsize != sizeof(PyObject *) or view.strides[0] != view.itemsize:
            raise TypeError("the store's values are not a flat object array")
        if view.format == NULL or view.format[0] != b'O':
            raise TypeError("the store's values are not objects")
        cells[0] = <PyObject **>view.buf
        n[0] = view.shape[0]
    finally:
        PyBuffer_Release(&view)
    _lookups += 1
    ref = PyWeakref_NewRef(values, None)
    _ref1, _cells1, _n1 = _ref0, _cells0, _n0  # (the older one out)
    _ref0, _cells0, _n0 = ref, cells[0], n[0]
    return 0


def cells_lookups():
    """Buffer exports ``store_cells`` made, ever (tests)."""
    return _lookups


def cells_of(values):
    """``store_cells`` for Python (tests): (address of the first cell, length)."""
    cdef PyObject **cells
    cdef Py_ssize_t n
    store_cells(values, &cells, &n)
    return <size_t>cells, n
