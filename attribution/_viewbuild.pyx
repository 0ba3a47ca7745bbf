# cython: language_level=3, boundscheck=False, wraparound=False
"""The view build's loops in C (``attribution.fastpath.build_view``).

Building a router's compiled view from the RIB's store is numpy over the
store's arrays except for three steps that are a loop per prefix: grouping
the store's entries by identity (``identity_codes``), reading the router's
route out of each distinct entry (``entry_routes``) and turning nested
prefix ranges into disjoint intervals (``flatten_sorted``). Each has a
Python reference in ``attribution.viewbuild`` that gives the same result
and runs where this module was not built; tests compare the two.
"""

cimport cython
from cpython.ref cimport PyObject
from libc.string cimport memcpy

from ribd._slots cimport get_at, slots_member_offset
from ribd._wide_rows cimport _over_at

from ribd.attributes import PathAttributes
from ribd.entries import Overlay


cdef extern from "Python.h":
    PyObject *PyTuple_GET_ITEM(object t, Py_ssize_t i)
    Py_ssize_t PyTuple_GET_SIZE(object t)
    PyObject *PyList_GET_ITEM(object l, Py_ssize_t i)
    Py_ssize_t PyList_GET_SIZE(object l)


cdef object _overlay = Overlay
cdef object _path_attributes = PathAttributes
# Overlay.row and Overlay.over read at their slots' offsets (as ribd._wide does).
cdef Py_ssize_t _row_at = slots_member_offset(Overlay.__dict__["row"])
cdef Py_ssize_t _over_at_ = slots_member_offset(Overlay.__dict__["over"])


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


def identity_codes(list entries):
    """Number the distinct objects of ``entries`` by identity, in first-seen order.

    Returns ``(codes, first)``, both packed native integers: a bytearray of
    int32 per entry (its object's number) and one of int64 per number (the
    index where that object first occurs). The view build
    (``attribution.fastpath``) groups a store's entries this way; in Python
    it was a dict probe on ``id(e)`` per prefix, the largest part of
    building a full table's view. Here it is an open-addressing hash of the
    object addresses, grown at half full (the list holds a reference to
    each object, so no address is reused while this runs).
    """
    cdef Py_ssize_t n = len(entries), i, k, count
    cdef bytearray codes_buf = bytearray(n * 4)
    cdef int *codes = <int *>(<char *>codes_buf) if n else NULL
    cdef _AddressNumbers numbers = _AddressNumbers()
    cdef bint is_new
    cdef bytearray first_buf
    cdef long long *first
    cdef list seen_at = []
    for i in range(n):
        codes[i] = numbers.number(<size_t><void *>entries[i], &is_new)
        if is_new:
            seen_at.append(i)
    count = numbers.count
    first_buf = bytearray(count * 8)
    first = <long long *>(<char *>first_buf) if count else NULL
    for k in range(count):
        first[k] = <long long>seen_at[k]
    return codes_buf, first_buf



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


cdef inline object _row_item(tuple row, Py_ssize_t slot):
    """``row[slot]``, None past its end."""
    if slot < PyTuple_GET_SIZE(row):
        return <object>PyTuple_GET_ITEM(row, slot)
    return None


cdef inline object _entry_get(object entry, Py_ssize_t slot):
    """``Overlay.get(slot)`` of an Overlay, ``entry[slot]`` (None past its end) of a tuple."""
    cdef tuple over
    cdef Py_ssize_t j
    if type(entry) is _overlay:
        over = get_at(entry, _over_at_, "over")
        j = _over_at(over, slot)
        if j >= 0:
            return <object>PyTuple_GET_ITEM(over, j + 1)
        return _row_item(<tuple>get_at(entry, _row_at, "row"), slot)
    return _row_item(<tuple?>entry, slot)


def entry_routes(list entries, const long long[::1] first, Py_ssize_t slot,
                 Py_ssize_t stale_slot, bint current_stale):
    """``viewbuild.py_entry_routes``: per distinct entry (``entries[first[c]]``
    for number c), the router's best route in it (``ribd.reads.slot_value``:
    its slot, else its stale slot; ``stale_slot`` -1: none).

    Returns ``(has_route, code_set, code_path_id, code_stale, attribute_sets)``:
    packed per number (bytearrays of bool, int32, uint32, bool) and the attribute
    sets numbered by identity in first-seen order. In Python this was the
    largest part of a build over wide entries (every prefix's entry is its own
    Overlay there, so a loop and four list-to-array conversions per prefix:
    most of the refresh's view builds, BENCHMARKS.md stop 32, refresh1).
    """
    cdef Py_ssize_t distinct = first.shape[0], c, at, n = PyList_GET_SIZE(entries)
    cdef bytearray has_buf = bytearray(distinct)
    cdef bytearray set_buf = bytearray(distinct * 4)
    cdef bytearray pid_buf = bytearray(distinct * 4)
    cdef bytearray stale_buf = bytearray(distinct)
    cdef char *has = <char *>has_buf
    cdef int *code_set = <int *>(<char *>set_buf) if distinct else NULL
    cdef unsigned int *code_pid = <unsigned int *>(<char *>pid_buf) if distinct else NULL
    cdef char *code_stale = <char *>stale_buf
    cdef _AddressNumbers numbers = _AddressNumbers()
    cdef bint is_stale, is_new
    cdef int number
    cdef list sets = []
    cdef long long path_id
    for c in range(distinct):
        at = first[c]
        if at < 0 or at >= n:
            raise IndexError(f"entry_routes: first occurrence {at} past {n} entries")
        entry = <object>PyList_GET_ITEM(entries, at)
        if entry is None:
            continue
        value = _entry_get(entry, slot)
        is_stale = current_stale
        if value is None:
            if stale_slot < 0:
                continue
            value = _entry_get(entry, stale_slot)
            if value is None:
                continue
            is_stale = True
        if type(value) is _path_attributes:
            attrs = value
            path_id = 0
        else:  # ADD-PATH: (path_id, attrs), ... best first
            best = value[0]  # (a PathSet: a tuple subclass)
            path_id = best[0]
            attrs = best[1]
            if path_id < 0 or path_id > 0xFFFFFFFF:
                raise OverflowError(f"entry_routes: path id {path_id} is not 32-bit")
        # The set's number by address (``sets`` holds each one, so no address
        # is reused while this runs).
        number = numbers.number(<size_t><void *>attrs, &is_new)
        if is_new:
            sets.append(attrs)
        has[c] = 1
        code_set[c] = number
        code_pid[c] = <unsigned int>path_id
        code_stale[c] = is_stale
    return has_buf, set_buf, pid_buf, stale_buf, sets


def set_fields(list sets, tuple names):
    """``viewbuild.py_set_fields``: each attribute set's answer fields (``names``,
    read from its shared core: ``PathAttributes``' properties of those names
    are ``core.<name>``) as packed int64, ``len(names)`` per set. Through the
    properties (two lookups each, ~650 k a view over wide entries) this was the
    largest part left of a build after ``entry_routes``."""
    cdef Py_ssize_t n = PyList_GET_SIZE(sets), width = len(names), i, f
    cdef bytearray out_buf = bytearray(n * width * 8)
    cdef long long *out = <long long *>(<char *>out_buf) if n and width else NULL
    cdef list fields = list(names)
    for i in range(n):
        core = (<object>PyList_GET_ITEM(sets, i)).core
        for f in range(width):
            out[i * width + f] = getattr(core, <str>PyList_GET_ITEM(fields, f))
    return out_buf
