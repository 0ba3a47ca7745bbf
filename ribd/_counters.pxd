# Counters summed in C, for the compiled loaders (ribd._apply, ribd._announce,
# ribd._wide). Why: ``counter + n`` with ``n`` a C integer made ``n`` an int
# first, then the sum: two ints made and one freed per counter, four to six
# counters an UPDATE (stop 38, wide4: 4.8% of ``wide_parts``; stop 57: the same
# in ``ribd._apply``'s tally). Here the sum is taken in C and one int made.

from ribd._slots cimport get_at, set_at


cdef extern from "Python.h":
    long long _as_ll "PyLong_AsLongLongAndOverflow"(object o, int *overflow) except? -1
    object _from_ll "PyLong_FromLongLong"(long long v)


cdef inline object plus(object o, Py_ssize_t n):
    """``o + n`` (a counter plus this UPDATE's part): for an exact int of at
    most 62 bits, one new int made from the C sum; else Python's ``+``."""
    cdef int overflow = 0
    cdef long long v
    if type(o) is int and -(1LL << 62) < n < (1LL << 62):
        v = _as_ll(o, &overflow)
        if not overflow and -(1LL << 62) < v < (1LL << 62):
            return _from_ll(v + n)
    return o + n


cdef inline bint more_than(Py_ssize_t n, object most) except -1:
    """``n > most`` without making ``n`` an int when ``most`` is an exact int."""
    cdef int overflow = 0
    cdef long long v
    if type(most) is int:
        v = _as_ll(most, &overflow)
        if not overflow:
            return n > v
        return overflow < 0  # (past 64 bits: below any n when negative)
    return n > most


cdef inline int add_at(object o, Py_ssize_t offset, str name, Py_ssize_t n) except -1:
    """``o.<name> += n``: read and written at ``offset`` (-1: getattr / setattr),
    the sum by ``plus``."""
    set_at(o, offset, name, plus(get_at(o, offset, name), n))
    return 0
