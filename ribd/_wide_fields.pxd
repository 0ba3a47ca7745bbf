# The per-UPDATE fields of ``ribd._wide`` read and written at their slots'
# offsets: a router's ``FamilyState`` (slot, stale slot, counters) and the
# family's ``PrefixStore`` (keys, values, delta). Both are slotted classes; a
# member descriptor's generic lookup (``_PyType_Lookup``, ``PyMember_GetOne``,
# a setattr for each counter) cost ~5% of the 16 routers' refresh in process
# (BENCHMARKS.md, stop 34, wide3). Inline: no module of its own.

from cpython.ref cimport Py_INCREF, Py_XDECREF, PyObject


cdef extern from *:
    """
    #include "structmember.h"  /* PyMemberDef (in Python.h from 3.12) */
    /* The offset of a writable object slot (a ``__slots__`` member: T_OBJECT_EX,
       not read-only) from its member descriptor; -1: not one (then getattr). */
    static inline Py_ssize_t wide_slot_offset(PyObject *descr) {
        PyMemberDef *m;
        if (Py_TYPE(descr) != &PyMemberDescr_Type) return -1;
        m = ((PyMemberDescrObject *)descr)->d_member;
        if (m->type != T_OBJECT_EX || (m->flags & READONLY)) return -1;
        return m->offset;
    }
    """
    Py_ssize_t wide_slot_offset(object descr)


cdef inline object _get_at(object o, Py_ssize_t offset, str name):
    """``o.<name>``, read at ``offset`` (-1: through getattr). The caller checked
    ``o``'s exact type: the offset is its class's."""
    cdef PyObject *v
    if offset < 0:
        return getattr(o, name)
    v = (<PyObject **>((<char *><PyObject *>o) + offset))[0]
    if v == NULL:
        raise AttributeError(name)
    return <object>v


cdef inline int _set_at(object o, Py_ssize_t offset, str name, object value) except -1:
    """``o.<name> = value``, written at ``offset`` (-1: through setattr), as the
    slot's descriptor would (the new value's reference taken, the old one's
    dropped last)."""
    cdef PyObject **p
    cdef PyObject *old
    if offset < 0:
        setattr(o, name, value)
        return 0
    p = <PyObject **>((<char *><PyObject *>o) + offset)
    old = p[0]
    Py_INCREF(value)
    p[0] = <PyObject *>value
    Py_XDECREF(old)
    return 0
