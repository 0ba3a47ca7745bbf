# Fields of slotted objects (a ``__slots__`` entry, a msgspec Struct field) read and
# written at their offsets, for the compiled hot loops (ribd._intern, ribd._wide);
# and plain instance attributes (``FamilyTable``'s, ``Rib``'s) read and written in the
# instance's dict (``dict_plain``, ``dict_get``, ``dict_set``: ribd._apply, ribd._wide).
# Why: a member descriptor's generic lookup (type lookup, descriptor call, a setattr
# per counter) cost 5-7% of a late router's feed and of the 16 routers' refresh
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
    /* The instance dict of ``o`` (borrowed; made from 3.11's inline values at
       the first call for that object), NULL (no error) when it has none. */
    static inline PyObject *slots_instance_dict(PyObject *o) {
    #if PY_VERSION_HEX < 0x030D0000
        PyObject **dp = _PyObject_GetDictPtr(o);
        return dp == NULL ? NULL : *dp;
    #else
        return NULL;
    #endif
    }
    """
    PyObject *slots_instance_dict(object o)


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


cdef extern from "Python.h":
    PyObject *PyDict_GetItemWithError(object d, object key) except? NULL


cdef inline bint dict_plain(object cls, tuple names) except -1:
    """Whether every one of ``names`` is, on instances of exactly ``cls``, a plain
    attribute of the instance's dict: instances have a dict and no class of the
    MRO defines the name (a property or slot there would take precedence)."""
    if not getattr(cls, "__dictoffset__", 0):
        return False
    for k in cls.__mro__:
        for n in names:
            if n in k.__dict__:
                return False
    return True


cdef inline object dict_get(object o, bint plain, str name):
    """``o.<name>``: from the instance's dict when ``plain`` (the caller checked
    ``o``'s exact type against ``dict_plain``), else (or when not there) through
    getattr, which raises AttributeError as usual. One dict lookup where getattr
    looks in the type's MRO first."""
    cdef PyObject *d
    cdef PyObject *v
    if plain:
        d = slots_instance_dict(o)
        if d != NULL:
            v = PyDict_GetItemWithError(<object>d, name)
            if v != NULL:
                return <object>v
    return getattr(o, name)


cdef inline int dict_set(object o, bint plain, str name, object value) except -1:
    """``o.<name> = value``: into the instance's dict when ``plain`` and it has
    one, else through setattr."""
    cdef PyObject *d
    if plain:
        d = slots_instance_dict(o)
        if d != NULL:
            (<dict>d)[name] = value
            return 0
    setattr(o, name, value)
    return 0


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
