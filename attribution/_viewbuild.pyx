# cython: language_level=3, boundscheck=False, wraparound=False
"""The view build's loops in C (``attribution.fastpath.build_view``).

Building a router's compiled view from the RIB's store is numpy over the
store's arrays except for steps that are a loop per prefix or per set:
reading the router's route out of each prefix's entry (``slot_routes``, in
``_viewbuild_slots.pxi``), turning nested prefix ranges into disjoint
intervals (``flatten_sorted``) and reading the attribute sets' answer fields
(``set_fields``); and, for the family's views packed together, matching a
new view's answer rows to the family's table (``match_rows``, in
``_viewbuild_rows.pxi``). Each has a Python reference (in
``attribution.viewbuild``, ``attribution.viewanswers``) that gives the same
result and runs where this module was not built; tests compare the two.
"""

cimport cython
from cpython.ref cimport PyObject
from libc.string cimport memcmp, memcpy

from cpython.buffer cimport PyBUF_ND, PyBuffer_Release, PyObject_GetBuffer

from ribd._covering cimport ArraysWalk, arrays_next, delta4_at, delta6_at
from ribd._deltabase cimport DeltaBase, hash_key
from ribd._intdelta cimport IntDelta
from ribd._intdelta6 cimport IntDelta6
from ribd._slots cimport get_at, slot_ptr, slots_member_offset
from ribd._storeread cimport store_cells
from ribd._wide_rows cimport _over_at

from ribd.attributes import PathAttributes, PathCore
from ribd.entries import Overlay


cdef extern from "Python.h":
    PyObject *PyTuple_GET_ITEM(object t, Py_ssize_t i)
    Py_ssize_t PyTuple_GET_SIZE(object t)
    PyObject *PyList_GET_ITEM(object l, Py_ssize_t i)
    Py_ssize_t PyList_GET_SIZE(object l)


cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define vb_prefetch(p) __builtin_prefetch((const void *)(p))
    #else
    #define vb_prefetch(p) ((void)0)
    #endif
    #define vb_type_is(p, t) ((PyObject *)Py_TYPE(p) == (t))
    /* Whether the cyclic collector tracks ``p``. */
    #define vb_gc_tracked(p) (PyObject_IS_GC(p) && PyObject_GC_IsTracked(p))
    """
    void vb_prefetch(const void *p) noexcept nogil
    bint vb_type_is(PyObject *p, PyObject *t) noexcept nogil
    bint vb_gc_tracked(PyObject *p) noexcept
    void PyObject_GC_UnTrack(void *op) noexcept


cdef object _overlay = Overlay
cdef object _path_attributes = PathAttributes
# Overlay.row and Overlay.over read at their slots' offsets (as ribd._wide does).
cdef Py_ssize_t _row_at = slots_member_offset(Overlay.__dict__["row"])
cdef Py_ssize_t _over_at_ = slots_member_offset(Overlay.__dict__["over"])
cdef object _path_core = PathCore
# PathAttributes.core and PathCore's fields read at their slots' offsets (-1: through getattr).
cdef Py_ssize_t _core_at = slots_member_offset(PathAttributes.__dict__["core"])
# Entries between two offers of the GIL in ``slot_routes`` (~1 ms of its loop).
cdef enum:
    YIELD_EVERY = 16384


cdef inline Py_ssize_t _slot_of(size_t p, Py_ssize_t mask):
    """Where an address's probe starts: Fibonacci hashing (objects are aligned,
    so their low bits say little)."""
    cdef size_t h = p * <size_t>11400714819323198485ULL
    return <Py_ssize_t>((h ^ (h >> 29)) & <size_t>mask)


@cython.final
cdef class _AddressNumbers:
    """Numbers object addresses in first-seen order: 0, 1, 2, ...

    An open-addressing hash of the addresses, grown at half full, with its own
    array of the addresses in number order so that growing re-places them
    without asking the caller. The caller keeps every numbered object alive
    while this is used (the entries list, the sets list), so no address is
    reused and the address alone identifies the object.
    """

    cdef bytearray _slots_buf, _nums_buf, _addrs_buf
    cdef size_t *_slots
    cdef int *_nums
    cdef size_t *_addrs
    cdef Py_ssize_t _mask
    cdef Py_ssize_t count

    def __cinit__(self):
        self.count = 0
        self._addrs_buf = bytearray(512 * sizeof(size_t))
        self._addrs = <size_t *>(<char *>self._addrs_buf)
        self._place_all(1024)

    cdef void _place_all(self, Py_ssize_t cap):
        """A table of ``cap`` slots holding every address numbered so far."""
        cdef Py_ssize_t k, j
        cdef size_t q
        self._slots_buf = bytearray(cap * sizeof(size_t))
        self._nums_buf = bytearray(cap * sizeof(int))
        self._slots = <size_t *>(<char *>self._slots_buf)
        self._nums = <int *>(<char *>self._nums_buf)
        self._mask = cap - 1
        for k in range(self.count):
            q = self._addrs[k]
            j = _slot_of(q, self._mask)
            while self._slots[j] != 0:
                j = (j + 1) & self._mask
            self._slots[j] = q
            self._nums[j] = <int>k

    cdef int number(self, size_t p, bint *is_new) except -1:
        """The number of address ``p``; a new one (``*is_new``) when not seen before."""
        cdef Py_ssize_t j = _slot_of(p, self._mask), cap
        while self._slots[j] != 0 and self._slots[j] != p:
            j = (j + 1) & self._mask
        if self._slots[j] == p:
            is_new[0] = False
            return self._nums[j]
        if (self.count + 1) * 2 > self._mask + 1:  # grow: twice the slots, every address again
            cap = (self._mask + 1) * 2
            grown = bytearray((cap // 2) * sizeof(size_t))
            memcpy(<char *>grown, self._addrs, self.count * sizeof(size_t))
            self._addrs_buf = grown
            self._addrs = <size_t *>(<char *>self._addrs_buf)
            self._place_all(cap)
            j = _slot_of(p, self._mask)
            while self._slots[j] != 0:
                j = (j + 1) & self._mask
        self._slots[j] = p
        self._nums[j] = <int>self.count
        self._addrs[self.count] = p
        self.count += 1
        is_new[0] = True
        return self._nums[j]


def flatten_sorted(const unsigned long long[::1] starts, const unsigned long long[::1] lasts,
                   unsigned long long top):
    """``fastpath.flatten`` for routes already in (start, length) order.

    Routes ``i`` cover ``starts[i]..lasts[i]`` (inclusive) on an axis ending
    at ``top``; sorted by start, a route covering another coming first (the
    store's key order). One sweep with a stack of the open routes: at each
    start the new route wins (it is the longest there), at each end the
    route below it on the stack resumes. Returns ``(bounds, leaf)`` as
    packed uint64 and int32 bytearrays (intervals where the answer changes,
    the first at 0, -1 where no route holds), or None when the routes are
    not sorted and nested or disjoint (the caller takes numpy's way).
    """
    cdef Py_ssize_t n = starts.shape[0], i, k = 0, depth = 0
    cdef unsigned long long s, end
    cdef int parent
    if lasts.shape[0] != n:
        return None
    cdef bytearray bounds_buf = bytearray((2 * n + 1) * 8)
    cdef bytearray leaf_buf = bytearray((2 * n + 1) * 4)
    cdef bytearray stack_buf = bytearray(n * 4 + 4)
    cdef unsigned long long *bounds = <unsigned long long *>(<char *>bounds_buf)
    cdef int *leaf = <int *>(<char *>leaf_buf)
    cdef int *stack = <int *>(<char *>stack_buf)
    bounds[0] = 0
    leaf[0] = -1
    k = 1
    for i in range(n):
        s = starts[i]
        if lasts[i] < s or lasts[i] > top:
            return None
        if i and (s < starts[i - 1] or (s == starts[i - 1] and lasts[i] >= lasts[i - 1])):
            return None  # not in key order (a longer prefix at one start covers less)
        while depth and lasts[stack[depth - 1]] < s:
            depth -= 1
            end = lasts[stack[depth]]
            parent = stack[depth - 1] if depth else -1
            k = _emit(bounds, leaf, k, end + 1, parent)  # end < s <= top: no overflow
        if depth and lasts[i] > lasts[stack[depth - 1]]:
            return None  # overlaps the open route without nesting in it
        k = _emit(bounds, leaf, k, s, <int>i)
        stack[depth] = <int>i
        depth += 1
    while depth:
        depth -= 1
        end = lasts[stack[depth]]
        if end == top:
            continue  # the axis ends with it: its parents end there too
        parent = stack[depth - 1] if depth else -1
        k = _emit(bounds, leaf, k, end + 1, parent)
    del bounds_buf[k * 8 :]
    del leaf_buf[k * 4 :]
    return bounds_buf, leaf_buf


cdef inline Py_ssize_t _emit(unsigned long long *bounds, int *leaf, Py_ssize_t k,
                             unsigned long long at, int value):
    """Append interval (at, value) to the k written; one starting at the same
    place is replaced (the later route is the longer), equal neighbours merge."""
    if bounds[k - 1] == at:
        if k > 1 and leaf[k - 2] == value:
            return k - 1
        leaf[k - 1] = value
        return k
    if leaf[k - 1] == value:
        return k
    bounds[k] = at
    leaf[k] = value
    return k + 1


cdef inline PyObject *_core_of(PyObject *attrs) noexcept:
    """An attribute set's core, borrowed (NULL: not a ``PathAttributes``)."""
    if _core_at < 0 or not vb_type_is(attrs, <PyObject *>_path_attributes):
        return NULL
    return slot_ptr(<object>attrs, _core_at)


def set_fields(list sets, tuple names):
    """``viewbuild.py_set_fields``: each attribute set's answer fields (``names``,
    read from its shared core: ``PathAttributes``' properties of those names
    are ``core.<name>``) as packed int64, ``len(names)`` per set. Through the
    properties (two lookups each, ~650 k a view over wide entries) this was the
    largest part left of a build after reading the routes; through ``getattr``
    on the core by name (a type lookup and a descriptor call a field) still
    ~0.06 CPU-s of a late router's build (stop 41, lone41): the core and its
    fields are read here at their slots' offsets, each set's fetched a few
    sets ahead (the sets, cores and AS numbers are scattered: a cache miss
    each)."""
    cdef Py_ssize_t n = PyList_GET_SIZE(sets), width = len(names), i, f
    cdef bytearray out_buf = bytearray(n * width * 8)
    cdef long long *out = <long long *>(<char *>out_buf) if n and width else NULL
    cdef list fields = list(names)
    cdef bytearray at_buf = bytearray(max(width, 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t *at = <Py_ssize_t *>(<char *>at_buf)
    cdef bint direct = _core_at >= 0
    cdef PyObject *v
    cdef PyObject *ahead
    for f in range(width):
        at[f] = slots_member_offset(_path_core.__dict__.get(fields[f]))
        direct = direct and at[f] >= 0
    for i in range(n):
        if direct:  # fetched ahead: the set, its core, the core's fields
            if i + 12 < n:
                vb_prefetch(PyList_GET_ITEM(sets, i + 12))
            if i + 6 < n:
                ahead = _core_of(PyList_GET_ITEM(sets, i + 6))
                if ahead != NULL:
                    vb_prefetch(ahead)
                    vb_prefetch(<char *>ahead + 64)
            if i + 2 < n:
                ahead = _core_of(PyList_GET_ITEM(sets, i + 2))
                if ahead != NULL and vb_type_is(ahead, <PyObject *>_path_core):
                    for f in range(width):
                        v = slot_ptr(<object>ahead, at[f])
                        if v != NULL:
                            vb_prefetch(v)
        attrs = <object>PyList_GET_ITEM(sets, i)
        if direct and type(attrs) is _path_attributes:
            core = get_at(attrs, _core_at, "core")
            if type(core) is _path_core:
                for f in range(width):
                    v = slot_ptr(core, at[f])
                    if v == NULL:
                        raise AttributeError(fields[f])
                    out[i * width + f] = <object>v
                continue
        core = attrs.core
        for f in range(width):
            out[i * width + f] = getattr(core, <str>PyList_GET_ITEM(fields, f))
    return out_buf


include "_viewbuild_slots.pxi"
include "_viewbuild_rows.pxi"
include "_viewbuild_lookup.pxi"


def untrack_set_list(list sets, Py_ssize_t known):
    """Leave ``sets`` (a view's attribute sets) out of the cyclic collector's
    walks when none of its items is tracked, as ``slot_routes`` leaves a built
    view's; True if untracked. ``sets[:known]`` are known untracked (copied
    from a list that was), so only the rest are read: a patched view's list
    is the old view's plus the few sets its patch added, and reading the
    ~110 k old sets' headers is the cost being avoided."""
    cdef Py_ssize_t i, n = PyList_GET_SIZE(sets)
    if known < 0 or known > n:
        raise ValueError(f"untrack_set_list: known {known} not in 0..{n}")
    for i in range(known, n):
        if vb_gc_tracked(PyList_GET_ITEM(sets, i)):
            return False
    PyObject_GC_UnTrack(<void *>sets)
    return True
