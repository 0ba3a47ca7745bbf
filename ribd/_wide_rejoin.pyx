# cython: language_level=3, boundscheck=False, wraparound=False
"""A prefix put back onto its UPDATE's main row, in C: ``entries._rejoin``'s
twin for ``ribd._wide`` (split from it to keep each module to one job).

When an UPDATE moves the row most of its prefixes are on, a prefix on another
row that differs from the moved main row in at most ``OVERLAY_MAX`` slots goes
onto it with those slots as its own values, rather than keeping a row of its
own (each a tuple as wide as the routers). The same comparisons and the same
result as the Python function, which it calls for an entry with more than
``OWN_MAX`` own pairs to consider (tests/ribd/test_wide_compiled.py).
"""

from cpython.ref cimport Py_INCREF, PyObject

from ribd._wide_rows cimport PyObject_GC_UnTrack, _over_at, _slot_of, wide_tracks

from ribd.entries import OVERLAY_MAX, OVERLAY_SLOTS, Overlay, _rejoin


cdef extern from "Python.h":
    object PyTuple_New(Py_ssize_t n)
    void PyTuple_SET_ITEM(object t, Py_ssize_t i, object o)
    PyObject *PyTuple_GET_ITEM(object t, Py_ssize_t i)
    Py_ssize_t PyTuple_GET_SIZE(object t)
    Py_ssize_t PyLong_AsSsize_t(object o) except? -1


cdef object _overlay = Overlay
cdef object _rejoin_py = _rejoin
cdef Py_ssize_t _overlay_slots = OVERLAY_SLOTS
cdef Py_ssize_t _overlay_max = OVERLAY_MAX


cdef enum:
    OWN_MAX = 48  # (slot, value) pairs ``_rejoin`` keeps in C; more: the Python one


cdef inline object _own_set(Py_ssize_t *slots, PyObject **vals, Py_ssize_t *n, Py_ssize_t s, object v):
    """``own[s] = v`` in a small map of (slot, value) pairs (borrowed values)."""
    cdef Py_ssize_t k
    for k in range(n[0]):
        if slots[k] == s:
            vals[k] = <PyObject *>v
            return None
    slots[n[0]] = s
    vals[n[0]] = <PyObject *>v
    n[0] += 1


cdef inline void _own_pop(Py_ssize_t *slots, PyObject **vals, Py_ssize_t *n, Py_ssize_t s):
    """``own.pop(s, None)``."""
    cdef Py_ssize_t k
    for k in range(n[0]):
        if slots[k] == s:
            n[0] -= 1
            slots[k] = slots[n[0]]
            vals[k] = vals[n[0]]
            return


cdef object rejoin_c(object entry, tuple over, tuple row, Py_ssize_t slot, object attrs,
                     Py_ssize_t clear, list diffs, Py_ssize_t r, tuple base):
    """``entries._rejoin``: ``entry`` (its own values ``over``, None: a plain
    tuple) with ``attrs`` in ``slot`` (and slot ``clear``
    emptied, for ``clear`` >= 0) as ``base`` (the UPDATE's main row moved) plus
    at most OVERLAY_MAX values of its own; None if it differs more. ``diffs[r]``:
    the slots where the entry's row differs from ``base`` (None: not compared
    yet, False: too many), compared once per row and UPDATE."""
    cdef Py_ssize_t nb = PyTuple_GET_SIZE(base), nr = PyTuple_GET_SIZE(row), n, i, k, j, m = 0
    cdef int tracked = 0
    cdef Py_ssize_t slots[OWN_MAX]
    cdef PyObject *vals[OWN_MAX]
    cdef PyObject *a
    cdef PyObject *b
    cdef list d
    known = diffs[r]
    if known is None:
        if nb < _overlay_slots:
            diffs[r] = False
            return None
        n = nb if nb > nr else nr
        d = []
        for i in range(n):
            a = PyTuple_GET_ITEM(row, i) if i < nr else <PyObject *>None
            b = PyTuple_GET_ITEM(base, i) if i < nb else <PyObject *>None
            if a != b:
                d.append(i)
        known = d if len(d) <= 2 * _overlay_max else False
        diffs[r] = known
        if known is False:
            return None
    d = <list>known
    if len(d) + (PyTuple_GET_SIZE(over) // 2 if over is not None else 0) + 2 > OWN_MAX:
        c = [row, None, known]
        return _rejoin_py(entry, slot, attrs, clear if clear >= 0 else None, c, base)
    # own: the row's differing slots the prefix has no value of its own in ...
    for k in range(len(d)):
        i = d[k]
        if over is not None and _over_at(over, i) >= 0:
            continue
        _own_set(slots, vals, &m, i, _slot_of(row, i))
    # ... its own values where they differ from base ...
    if over is not None:
        for j in range(0, PyTuple_GET_SIZE(over), 2):
            i = PyLong_AsSsize_t(<object>PyTuple_GET_ITEM(over, j))
            v = <object>PyTuple_GET_ITEM(over, j + 1)
            if v is not _slot_of(base, i):
                _own_set(slots, vals, &m, i, v)
    # ... and this UPDATE's value, the emptied stale slot.
    _own_pop(slots, vals, &m, slot)
    if _slot_of(base, slot) is not attrs:
        _own_set(slots, vals, &m, slot, attrs)
    if clear >= 0:
        _own_pop(slots, vals, &m, clear)
        if _slot_of(base, clear) is not None:
            _own_set(slots, vals, &m, clear, None)
    if m > _overlay_max:
        return None
    if m == 0:
        return base
    for k in range(1, m):  # sorted by slot
        i = slots[k]
        a = vals[k]
        j = k - 1
        while j >= 0 and slots[j] > i:
            slots[j + 1] = slots[j]
            vals[j + 1] = vals[j]
            j -= 1
        slots[j + 1] = i
        vals[j + 1] = a
    out = PyTuple_New(2 * m)
    for k in range(m):
        v = slots[k]
        Py_INCREF(v)
        PyTuple_SET_ITEM(out, 2 * k, v)
        v = <object>vals[k]
        Py_INCREF(v)
        PyTuple_SET_ITEM(out, 2 * k + 1, v)
        tracked |= wide_tracks(vals[k])
    if not tracked:
        # Slot numbers and attribute sets (``gc=False``): the collector would
        # untrack it only in the first collection that finds it, after walking
        # it (the refresh's young collections walked ~80 k such tuples each).
        PyObject_GC_UnTrack(out)
    return _overlay(base, out)
