# The compiled twin of ``ribd.interner_index``: a core's index of its sets by
# their router parts' hashes (positions and hash tags in an ``array('H')``),
# slot by slot what the reference builds. Included by ribd/_intern.pyx, whose
# constants (``_pos_bits``, ``_pos_mask``, ``_tag_mask``, ``_ix_template``) and
# readers (``_own_of``, ``_part_eq``) it uses; kept apart because it is its own
# data structure with its own tests (tests/ribd/test_intern_index.py).


cdef inline void _put(array.array ix, Py_hash_t h, Py_ssize_t pos) noexcept:
    """``interner_index.put``: enter position ``pos`` of a set whose router
    part hashes to ``h`` (bits taken as Python's ``&`` takes them from a
    negative int: two's complement)."""
    cdef unsigned short *d = ix.data.as_ushorts
    cdef unsigned long long m = <unsigned long long>(Py_SIZE(ix) - 1)
    cdef unsigned long long u = <unsigned long long><long long>h
    cdef unsigned long long s = ((u & 0xFFFFFFFFULL) * m) >> 32
    while d[1 + s]:
        s = s + 1 if s + 1 < m else 0
    d[1 + s] = <unsigned short>((u & _tag_mask) << _pos_bits | <unsigned long long>pos)


cdef array.array _build(list held):
    """``interner_index.build``: a new index of ``held`` as it is now."""
    cdef Py_ssize_t n = PyList_GET_SIZE(held), pos
    cdef Py_ssize_t sets = n - 1
    # interner_index.slots_for, in C (a Python call per build before)
    cdef Py_ssize_t slots = sets * 3 // 2 + 1
    if slots < _first_slots:
        slots = _first_slots
    cdef array.array ix = array.clone(_ix_template, slots + 1, True)
    ix.data.as_ushorts[0] = <unsigned short>n
    for pos in range(1, n):
        _put(ix, PyObject_Hash(_own_of(<object>PyList_GET_ITEM(held, pos))), pos)
    return ix


cdef object _get(array.array ix, list held, Py_hash_t h, object own):
    """``interner_index.get``: the set of ``held`` whose router part equals
    ``own`` (hash ``h``), or None."""
    cdef unsigned short *d = ix.data.as_ushorts
    cdef unsigned long long m = <unsigned long long>(Py_SIZE(ix) - 1)
    cdef unsigned long long u = <unsigned long long><long long>h
    cdef unsigned long long tag = u & _tag_mask
    cdef unsigned long long s = ((u & 0xFFFFFFFFULL) * m) >> 32
    cdef unsigned long long v
    cdef Py_ssize_t pos
    while True:
        v = d[1 + s]
        if v == 0:
            return None
        if v >> _pos_bits == tag:
            pos = v & _pos_mask
            if pos < PyList_GET_SIZE(held):
                a = <object>PyList_GET_ITEM(held, pos)
                if _part_eq(_own_of(a), own):
                    return a
        s = s + 1 if s + 1 < m else 0


cdef bint _added(array.array ix, list held, object attrs) except -1:
    """``interner_index.added``: enter ``attrs``, just appended to ``held``;
    False if the index must be dropped instead."""
    cdef Py_ssize_t n = PyList_GET_SIZE(held)
    cdef Py_ssize_t m = Py_SIZE(ix) - 1
    if ix.data.as_ushorts[0] != n - 1 or (n - 1) * 8 > m * 7 or n > _pos_mask + 1:  # full()
        return False
    _put(ix, PyObject_Hash(_own_of(attrs)), n - 1)
    ix.data.as_ushorts[0] = <unsigned short>n
    return True
