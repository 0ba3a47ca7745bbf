# The interner's new objects (a PathCore, a PathAttributes, a RouterPart) built
# without calling their types: the type's ``tp_alloc`` (a zeroed object, as
# ``tp(...)`` starts from), then each field written at its slot's offset. Included
# by ribd/_intern.pyx. Why: the call of a msgspec Struct type (vectorcall, the
# argument count checked, each field set through the type's field table) cost
# ~360 instructions a PathCore and ~220 a PathAttributes or RouterPart: 45 M of
# the synthetic two routers' first 80 k lines (2.0%; stop 37, internb). The
# result is the same object: same type, same fields, the other slots (a
# ``cache_hash`` Struct's hidden hash) empty as after the call.
#
# Taken only where it is the same (checked once at import, ``_direct_for``):
# a type without the GC flag (``gc=False``: the call tracks nothing either),
# without ``__post_init__``, whose ``__struct_fields__`` are exactly the
# names given and each a plain member slot; else the type is called as before.

from cpython.object cimport PyTypeObject


cdef extern from *:
    """
    /* A new instance of ``tp`` with its n fields at offs[] set to vals[] (each
       value's reference taken); NULL and an exception on failure. */
    static PyObject *intern_struct_new(PyObject *tp, const Py_ssize_t *offs,
                                       PyObject *const *vals, Py_ssize_t n) {
        PyTypeObject *t = (PyTypeObject *)tp;
        PyObject *o = t->tp_alloc(t, 0);
        Py_ssize_t i;
        if (o == NULL) return NULL;
        for (i = 0; i < n; i++) {
            Py_INCREF(vals[i]);
            *(PyObject **)((char *)o + offs[i]) = vals[i];
        }
        return o;
    }
    """
    object intern_struct_new(object tp, const Py_ssize_t *offs, PyObject **vals, Py_ssize_t n)


cdef enum:
    _CORE_N = 13


cdef Py_ssize_t _core_offs[_CORE_N]
cdef Py_ssize_t _attrs_offs[2]
cdef Py_ssize_t _part_offs[3]


cdef bint _direct_for(object cls, tuple names, Py_ssize_t *out) except -1:
    """Whether ``cls`` may be built at offsets (above); its fields' offsets into ``out``."""
    cdef Py_ssize_t i
    if (<PyTypeObject *>cls).tp_flags & (1 << 14):  # Py_TPFLAGS_HAVE_GC
        return False
    if getattr(cls, "__post_init__", None) is not None:
        return False
    if tuple(getattr(cls, "__struct_fields__", ())) != names:
        return False
    for i in range(len(names)):
        out[i] = _offset(cls, names[i])
        if out[i] < 0:
            return False
    return True


cdef bint _core_direct = _direct_for(
    PathCore,
    ("as_path", "origin", "med", "large_communities", "extended_communities",
     "atomic_aggregate", "aggregator", "peer_as", "origin_as", "origin_as_highest",
     "origin_from_set", "empty_path", "peer_as_highest"),
    _core_offs,
)  # fmt: skip
cdef bint _attrs_direct = _direct_for(PathAttributes, ("core", "own"), _attrs_offs)
cdef bint _part_direct = _direct_for(RouterPart, ("next_hop", "communities", "policy"), _part_offs)


cdef object _new_core(as_path, origin, med, large, ext, atomic, aggr,
                      peer, origin_as, highest, from_set, empty, peer_highest):
    """``PathCore(as_path, ..., peer_highest)``."""
    cdef PyObject *v[_CORE_N]
    if not _core_direct:
        return _path_core(as_path, origin, med, large, ext, atomic, aggr,
                          peer, origin_as, highest, from_set, empty, peer_highest)
    v[0] = <PyObject *>as_path
    v[1] = <PyObject *>origin
    v[2] = <PyObject *>med
    v[3] = <PyObject *>large
    v[4] = <PyObject *>ext
    v[5] = <PyObject *>atomic
    v[6] = <PyObject *>aggr
    v[7] = <PyObject *>peer
    v[8] = <PyObject *>origin_as
    v[9] = <PyObject *>highest
    v[10] = <PyObject *>from_set
    v[11] = <PyObject *>empty
    v[12] = <PyObject *>peer_highest
    return intern_struct_new(_path_core, _core_offs, v, _CORE_N)


cdef object _new_core_derived(as_path, origin, med, large, ext, atomic, aggr):
    """``PathCore(as_path, ..., *derive_as_numbers(as_path))``."""
    (peer, origin_as, highest, from_set, empty, peer_highest) = derive_as_numbers(as_path)
    return _new_core(as_path, origin, med, large, ext, atomic, aggr,
                     peer, origin_as, highest, from_set, empty, peer_highest)


cdef inline object _new_attrs(object core, object own):
    """``PathAttributes(core, own)``."""
    cdef PyObject *v[2]
    if not _attrs_direct:
        return _path_attributes(core, own)
    v[0] = <PyObject *>core
    v[1] = <PyObject *>own
    return intern_struct_new(_path_attributes, _attrs_offs, v, 2)


cdef inline object _new_part(object next_hop, object communities, object policy):
    """``RouterPart(next_hop, communities, policy)``."""
    cdef PyObject *v[3]
    if not _part_direct:
        return _router_part(next_hop, communities, policy)
    v[0] = <PyObject *>next_hop
    v[1] = <PyObject *>communities
    v[2] = <PyObject *>policy
    return intern_struct_new(_router_part, _part_offs, v, 3)


def direct_for(cls, tuple names) -> bool:
    """Whether the interner would build ``cls`` with fields ``names`` at offsets (tests)."""
    cdef Py_ssize_t out[_CORE_N]
    if len(names) > _CORE_N:
        return False
    return _direct_for(cls, names, out)


def built_at_offsets():
    """(PathCore, PathAttributes, RouterPart): which are built at offsets here (tests)."""
    return (_core_direct, _attrs_direct, _part_direct)


def new_objects(tuple core_fields, object own_fields):
    """(a PathCore of ``core_fields`` (13), a RouterPart of ``own_fields`` (3), the
    PathAttributes of both), built as the interner builds them (tests)."""
    (as_path, origin, med, large, ext, atomic, aggr,
     peer, origin_as, highest, from_set, empty, peer_highest) = core_fields
    core = _new_core(as_path, origin, med, large, ext, atomic, aggr,
                     peer, origin_as, highest, from_set, empty, peer_highest)
    next_hop, communities, policy = own_fields
    part = _new_part(next_hop, communities, policy)
    return core, part, _new_attrs(core, part)
