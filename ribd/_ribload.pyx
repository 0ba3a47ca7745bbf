# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled twins of ``ribd.ribload``: the load path's per-prefix loops in C.

Same arguments, same results, same writes (``dict`` and ``list`` C calls on
the very objects the Python versions use), without an iterator, a pair
tuple or a set object made per UPDATE.
"""

from cpython.list cimport PyList_Append
from cpython.ref cimport Py_INCREF, PyObject
from cpython.sequence cimport PySequence_Fast, PySequence_Fast_GET_ITEM, PySequence_Fast_GET_SIZE

from ribd._intdelta cimport delta_get, delta_set, is_delta
from ribd._repeats cimport first_repeat


from ribd.attributes import PathAttributes


cdef extern from "Python.h":
    object PyList_New(Py_ssize_t n)
    void PyList_SET_ITEM(object l, Py_ssize_t i, object o)
    object PyTuple_New(Py_ssize_t n)
    void PyTuple_SET_ITEM(object t, Py_ssize_t i, object o)
    void PyObject_GC_UnTrack(object o)
    bint PyObject_GC_IsTracked(object o)


cdef object _path_attributes = PathAttributes


def entry_of(Py_ssize_t slot, attrs):
    """``(*((None,) * slot), attrs)``; untracked by the cyclic GC when ``attrs``
    is a PathAttributes (``gc=False``, never tracked: no cycle can pass through
    the entry, which the GC would otherwise walk at every pass it lives through)."""
    if slot < 0:
        slot = 0  # (as ``(None,) * slot`` reads a negative count)
    cdef Py_ssize_t i
    entry = PyTuple_New(slot + 1)
    for i in range(slot):
        Py_INCREF(None)
        PyTuple_SET_ITEM(entry, i, None)
    Py_INCREF(attrs)
    PyTuple_SET_ITEM(entry, slot, attrs)
    if type(attrs) is _path_attributes and not PyObject_GC_IsTracked(attrs):
        PyObject_GC_UnTrack(entry)
    return entry


def probe(delta, prefixes):
    """Each prefix's entry in ``delta`` (None: absent), and how many are absent."""
    if not is_delta(delta):  # an IntDelta, or a dict or a subclass (ribd.textdelta.Delta)
        raise TypeError(f"delta is a {type(delta).__name__}, not a store's delta")
    cdef object seq = PySequence_Fast(prefixes, "prefixes")
    cdef Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), i, missing = 0
    cdef PyObject *found
    cdef list got = PyList_New(n)
    for i in range(n):
        found = delta_get(delta, <object>PySequence_Fast_GET_ITEM(seq, i))
        value = None if found == NULL else <object>found
        if value is None:  # (as got.count(None) counts)
            missing += 1
        Py_INCREF(value)  # PyList_SET_ITEM steals it
        PyList_SET_ITEM(got, i, value)
    return got, missing


def insert_new(delta, prefixes, entry, list changes):
    """``entry`` for every prefix, each logged in ``changes``; how many keys
    ``delta`` gained."""
    if not is_delta(delta):
        raise TypeError(f"delta is a {type(delta).__name__}, not a store's delta")
    cdef object seq = PySequence_Fast(prefixes, "prefixes")
    cdef Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), i, before = len(delta)
    for i in range(n):
        prefix = <object>PySequence_Fast_GET_ITEM(seq, i)
        delta_set(delta, prefix, entry)
        PyList_Append(changes, prefix)
    return len(delta) - before


def one_entry(list held, prefixes):
    """Whether ``held`` is one object throughout and no prefix is there twice."""
    cdef Py_ssize_t n = len(held), i
    cdef object first
    if n == 0:
        return False
    first = held[0]
    for i in range(1, n):
        if held[i] is not first:
            return False
    cdef object seq = PySequence_Fast(prefixes, "prefixes")
    n = PySequence_Fast_GET_SIZE(seq)
    if n < 2:
        return True
    if n == 2:  # most UPDATEs: one compare, no set
        return not (<object>PySequence_Fast_GET_ITEM(seq, 0) == <object>PySequence_Fast_GET_ITEM(seq, 1))
    return first_repeat(seq, 0, n) == n  # (not a set: ribd._repeats says why)
