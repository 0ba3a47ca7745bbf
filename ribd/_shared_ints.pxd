# The interner's AS-number sharing (``AttributeInterner._ints``, a direct-mapped
# cache: slot ``n & mask``), in C, for ribd._intern and ribd._rawdecode: the
# decoder builds a new AS path's numbers through the interner's cache, so that
# the interner can keep that path as it is instead of building it again
# (``ribd.interner``'s ``_numbers_shared``). Inline: no module of its own.

from cpython.object cimport PyObject_RichCompareBool
from cpython.ref cimport PyObject


cdef extern from "Python.h":
    Py_ssize_t PyList_GET_SIZE(object l)
    PyObject *PyList_GET_ITEM(object l, Py_ssize_t i)
    Py_ssize_t PyTuple_GET_SIZE(object t)
    PyObject *PyTuple_GET_ITEM(object t, Py_ssize_t i)
    long PyLong_AsLong(object o) noexcept
    PyObject *PyErr_Occurred() noexcept
    void PyErr_Clear() noexcept
    int Py_EQ, Py_NE


cdef inline object share_int(list ints, object n, Py_ssize_t mask):
    """``ints[n & mask]`` if equal to ``n`` (the shared object), else ``n``,
    stored there. An int that fits a C long takes its slot in C (``n & mask``
    is the same number in two's complement); any other value the reference's
    steps."""
    cdef Py_ssize_t i
    cdef long v, w
    if type(n) is int:
        v = PyLong_AsLong(n)
        if v == -1 and PyErr_Occurred():
            PyErr_Clear()
        else:
            i = v & mask
            if i < PyList_GET_SIZE(ints):
                seen = <object>PyList_GET_ITEM(ints, i)
                if seen is n:
                    return seen
                if type(seen) is int:
                    w = PyLong_AsLong(seen)
                    if w == -1 and PyErr_Occurred():
                        PyErr_Clear()  # past a C long: not equal to n
                    elif w == v:
                        return seen
                ints[i] = n
                return n
    j = n & mask
    seen = ints[j]
    if PyObject_RichCompareBool(seen, n, Py_NE):
        ints[j] = n
        return n
    return seen


cdef inline object share_u32(list ints, unsigned int v, Py_ssize_t mask):
    """``share_int`` of the number ``v`` (an AS number just decoded): the int
    object is made only when the slot does not hold one equal to it."""
    cdef Py_ssize_t i = v & mask
    cdef long w
    if i >= PyList_GET_SIZE(ints):
        raise IndexError("list index out of range")
    seen = <object>PyList_GET_ITEM(ints, i)
    if type(seen) is int:
        w = PyLong_AsLong(seen)
        if w == -1 and PyErr_Occurred():
            PyErr_Clear()  # past a C long: not equal to v
        elif w == <long>v:
            return seen
    n = <object>v
    if type(seen) is int or PyObject_RichCompareBool(seen, n, Py_NE):
        ints[i] = n
        return n
    return seen


cdef inline bint numbers_shared(list ints, object as_path, Py_ssize_t mask) except -1:
    """True when ``as_path`` is a tuple of (kind, tuple of ints) segments whose
    every number is the very object in its slot of ``ints``: the path the
    interner would build from it is equal to it, number for number the same
    objects, and building it would write no slot."""
    cdef Py_ssize_t k, j, i, n_segments, n_numbers
    cdef PyObject *numbers
    cdef PyObject *segment
    cdef long v
    if type(as_path) is not tuple:
        return False
    n_segments = PyTuple_GET_SIZE(as_path)
    for k in range(n_segments):
        segment = PyTuple_GET_ITEM(as_path, k)
        if type(<object>segment) is not tuple or PyTuple_GET_SIZE(<object>segment) != 2:
            return False
        numbers = PyTuple_GET_ITEM(<object>segment, 1)
        if type(<object>numbers) is not tuple:
            return False
        n_numbers = PyTuple_GET_SIZE(<object>numbers)
        for j in range(n_numbers):
            n = <object>PyTuple_GET_ITEM(<object>numbers, j)
            if type(n) is not int:
                return False
            v = PyLong_AsLong(n)
            if v == -1 and PyErr_Occurred():
                PyErr_Clear()
                if ints[n & mask] is not n:
                    return False
                continue
            i = v & mask
            if i >= PyList_GET_SIZE(ints) or PyList_GET_ITEM(ints, i) != <PyObject *>n:
                return False
    return True
