# Fields of slotted objects (a ``__slots__`` entry, a msgspec Struct field) read and
# written at their offsets, for the compiled hot loops (ribd._intern, ribd._wide,
# ribd._apply, ribd._announce, ribd._loadline); and a dict's version tag. Until
# stop 57 ``FamilyTable``'s and ``Rib``'s fields were read in their instance dicts
# here (~110 instructions a lookup by name); they are slots now. Why: a member
# descriptor's generic lookup (type lookup, descriptor call, a setattr per
# counter) cost 5-7% of a late router's feed and of the 16 routers' refresh
# (BENCHMARKS.md, stop 34: intern4, wide3). One place for the pointer arithmetic:
# callers take an offset once from the class's descriptor (-1: not a plain object
# member, then every access goes through getattr / setattr), and use it only on
# objects whose exact type they checked.

from cpython.ref cimport Py_INCREF, Py_XDECREF, PyObject


cdef extern from *:
    """
    #include "structmember.h"  /* PyMemberDef (in Python.h from 3.12) */
    /* The offset of a member descriptor's field; -1: not a member descriptor. */
    static inline Py_ssize_t slots_member_offset(PyObject *descr) {
        if (Py_TYPE(descr) != &PyMemberDescr_Type) return -1;
        return ((PyMemberDescrObject *)descr)->d_member->offset;
    }
    /* The same for a field that may be written: an object member (T_OBJECT_EX,
       a ``__slots__`` entry) that is not read-only; -1 otherwise. */
    static inline Py_ssize_t slots_writable_offset(PyObject *descr) {
        PyMemberDef *m;
        if (Py_TYPE(descr) != &PyMemberDescr_Type) return -1;
        m = ((PyMemberDescrObject *)descr)->d_member;
        if (m->type != T_OBJECT_EX || (m->flags & READONLY)) return -1;
        return m->offset;
    }
    """
    Py_ssize_t slots_member_offset(object descr)
    Py_ssize_t slots_writable_offset(object descr)


cdef extern from *:
    """
    /* A dict's version tag (CPython 3.11: a new one at each change of that
       dict); 0 where there is none to read (3.12 deprecates it). */
    static inline unsigned long long slots_dict_version(PyObject *d) {
    #if PY_VERSION_HEX < 0x030C0000
        return ((PyDictObject *)d)->ma_version_tag;
    #else
        (void)d;
        return 0;
    #endif
    }
    """
    unsigned long long dict_version "slots_dict_version"(object d) noexcept


cdef inline PyObject *slot_ptr(object o, Py_ssize_t offset) noexcept:
    """The field at ``offset`` >= 0 of ``o``, borrowed; NULL when unset."""
    return (<PyObject **>((<char *><PyObject *>o) + offset))[0]


cdef inline object get_at(object o, Py_ssize_t offset, str name):
    """``o.<name>``, read at ``offset`` (-1: through getattr); an unset field
    raises AttributeError as the descriptor would."""
    cdef PyObject *v
    if offset < 0:
        return getattr(o, name)
    v = slot_ptr(o, offset)
    if v == NULL:
        raise AttributeError(name)
    return <object>v


cdef inline int set_at(object o, Py_ssize_t offset, str name, object value) except -1:
    """``o.<name> = value``, written at ``offset`` (-1: through setattr), as the
    descriptor would: the new value's reference taken, the old one dropped last
    (its deallocation may run code that reads the field)."""
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
