# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled twin of ``AttributeInterner.py_intern``: the intern path of one UPDATE in C.

Same row in, same set out, same writes: the very dicts, lists and caches of
the interner (``ribd.interner``), the same keys (``hash()`` of the core's
fields, the digest past a collision or SCAN_VARIANTS), the same values shared
in the same slots, built into the same ``PathCore`` / ``PathAttributes``. So
every reader, the snapshots and the collection see no difference; only the
bytecode is gone (~22k instructions an UPDATE in Python, callgrind).
``ribd.interner`` binds this as ``AttributeInterner.intern`` where it was
built and keeps the Python method as the reference and the fallback
(tests/ribd/test_intern_compiled.py compares them).

The rare paths call the Python helpers, so their semantics live in one
place: a core whose hash another core has (``_locate``), decoded lists to make
tuples (``_hashable``), unusual AS paths (``derive_as_numbers``), digests.

The router part of a row met before is found through a memo keyed by the
decoder's objects (``_intern_memo.pxi``), taken only where it is the part
``_share_own`` would return: no part built, hashed and dropped per UPDATE.

A core's list of more than ``INDEX_PAST`` sets is looked up through its index
(``ribd.interner_index``: an ``array('H')`` of positions and hash tags): the
same table, slot by slot, as the reference builds, entered and dropped at the
same steps (tests/ribd/test_intern_index.py compares them, and both with the
scan of before).

Threads: feed threads intern outside the RIB's lock while the maintenance
removes sets under it. Here nothing between two reads of a core's list runs
Python code, so the GIL is not released mid-scan; even so the scan reads the
list's length again at every step, as the reference's iterator does, and an
index's position is checked against the list's length before it is read.
"""

from cpython cimport array
from cpython.dict cimport PyDict_DelItem, PyDict_SetItem
from cpython.list cimport PyList_Append
from cpython.object cimport Py_SIZE, PyObject_Hash
from cpython.pycapsule cimport PyCapsule_GetPointer
from cpython.ref cimport Py_INCREF, Py_XDECREF, PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE

from ribd._shared_ints cimport numbers_shared, share_int
from ribd._slots cimport dict_version, set_at, slot_ptr, slots_member_offset

from ribd.attributes import AS_SEQUENCE, PathAttributes, PathCore, RouterPart, derive_as_numbers
from ribd.interner_index import FIRST_SLOTS, INDEX_PAST, POS_BITS, POS_MASK, TAG_MASK
from ribd.interner_keys import LARGE_SLOTS, SHARE_SLOTS, _digest, _hashable


cdef extern from "Python.h":
    PyObject *PyDict_GetItemWithError(object d, object key) except? NULL
    PyObject *PyDict_SetDefault(object d, object key, object default) except NULL
    Py_ssize_t PyList_GET_SIZE(object l)
    long PyLong_AsLong(object o) noexcept
    PyObject *PyErr_Occurred() noexcept
    Py_ssize_t PySet_GET_SIZE(object s)
    void PyErr_Clear() noexcept
    object PyTuple_New(Py_ssize_t n)
    void PyTuple_SET_ITEM(object t, Py_ssize_t i, object o)
    void PyObject_GC_UnTrack(object o)
    PyObject *PyList_GET_ITEM(object l, Py_ssize_t i)
    int PyObject_RichCompareBool(object a, object b, int op) except -1
    int Py_EQ, Py_NE



cdef Py_ssize_t _share_mask = SHARE_SLOTS - 1
cdef Py_ssize_t _large_mask = LARGE_SLOTS - 1
# Python's ``h % n`` for a power of two n is ``h & (n - 1)`` (two's complement).
assert SHARE_SLOTS & _share_mask == 0 and LARGE_SLOTS & _large_mask == 0
cdef object _seq = AS_SEQUENCE
cdef object _path_core = PathCore
cdef object _path_attributes = PathAttributes
cdef object _router_part = RouterPart
cdef object _module = None
# ribd.interner_index's constants (the Python reference's, read once)
cdef Py_ssize_t _index_past = INDEX_PAST
cdef Py_ssize_t _first_slots = FIRST_SLOTS
cdef Py_ssize_t _pos_mask = POS_MASK
cdef int _pos_bits = POS_BITS
cdef unsigned long long _tag_mask = TAG_MASK
cdef array.array _ix_template = array.array("H", [])
assert _pos_mask < 0xFFFF and (_tag_mask << _pos_bits) | _pos_mask <= 0xFFFF


# Fields read at their slots' offsets, not through getattr: a member
# descriptor's lookup (type lookup, descriptor call) on each read was ~7% of a
# late router's feed (stop 34, intern4: ``_build``'s ``.own`` 3.2%, ``_core_is``
# 1.5%, the interner's own slots ~1.6%). Only for these exact types (checked at
# each read: one pointer compare); any other object is read through getattr.
cdef object _attrs_type = PathAttributes
cdef object _core_type = PathCore
cdef object _part_type = RouterPart
cdef object _interner_type = None  # AttributeInterner, set by ``bind`` (ribd.interner)


cdef Py_ssize_t _offset(object cls, str name):
    return slots_member_offset(cls.__dict__.get(name))


include "_intern_new.pxi"


cdef Py_ssize_t _own_at = _offset(PathAttributes, "own")
cdef Py_ssize_t _c_path = _offset(PathCore, "as_path")
cdef Py_ssize_t _c_origin = _offset(PathCore, "origin")
cdef Py_ssize_t _c_med = _offset(PathCore, "med")
cdef Py_ssize_t _c_large = _offset(PathCore, "large_communities")
cdef Py_ssize_t _c_ext = _offset(PathCore, "extended_communities")
cdef Py_ssize_t _c_atomic = _offset(PathCore, "atomic_aggregate")
cdef Py_ssize_t _c_aggr = _offset(PathCore, "aggregator")
cdef Py_ssize_t _p_hop = _offset(RouterPart, "next_hop")
cdef Py_ssize_t _p_comms = _offset(RouterPart, "communities")
cdef Py_ssize_t _p_policy = _offset(RouterPart, "policy")
cdef bint _core_at = min(_c_path, _c_origin, _c_med, _c_large, _c_ext, _c_atomic, _c_aggr) >= 0
cdef bint _part_at = min(_p_hop, _p_comms, _p_policy) >= 0
# AttributeInterner's slots, by index into ``_SLOTS`` (``bind``); -1 until then.
_SLOTS = (
    "_cores", "_crowd", "_index", "_overflow", "_count", "_owns", "_ints", "_tuples",
    "_texts", "_paths", "_path_tags", "_communities", "_policies", "_memo_tag",
)  # fmt: skip
cdef enum:
    I_CORES, I_CROWD, I_INDEX, I_OVERFLOW, I_COUNT, I_OWNS, I_INTS, I_TUPLES
    I_TEXTS, I_PATHS, I_TAGS, I_COMMUNITIES, I_POLICIES, I_MEMO, I_N
cdef Py_ssize_t _at[I_N]
cdef bint _self_at = False


def bind(cls):
    """Read ``cls``'s (AttributeInterner's) slots at their offsets from now on;
    ``ribd.interner`` calls this once the class exists. An instance of another
    type (a subclass included) is read through getattr."""
    global _interner_type, _self_at
    assert len(_SLOTS) == I_N
    for k in range(I_N):
        _at[k] = _offset(cls, _SLOTS[k])
    _self_at = min([_at[k] for k in range(I_N)]) >= 0
    _interner_type = cls if _self_at else None
    return _self_at


cdef inline object _slot(object o, Py_ssize_t offset, str name):
    """Field ``name`` of ``o``, read at ``offset`` (the caller checked o's type)."""
    cdef PyObject *v = slot_ptr(o, offset)
    if v == NULL:
        raise AttributeError(name)
    return <object>v


cdef inline object _mine(object self, int k):
    """The interner's slot ``_SLOTS[k]``: at its offset for an AttributeInterner, else getattr."""
    cdef PyObject *v
    if type(self) is _interner_type:
        v = slot_ptr(self, _at[k])
        if v != NULL:
            return <object>v
    return getattr(self, _SLOTS[k])  # (an empty slot: its AttributeError)


cdef inline bint _part_eq(object a, object b) except -1:
    """``a == b`` for two router parts: field by field, each field's identity
    first (the Struct's ``==`` compares its fields without it: two equal
    community tuples item by item although the decoder's memo handed the very
    tuple held, ~490 instructions a compare on router 1's table). Any other
    pair: their ``==``."""
    if a is b:
        return True
    if type(a) is _part_type and type(b) is _part_type and _part_at:
        return (
            _same(_slot(a, _p_hop, "next_hop"), _slot(b, _p_hop, "next_hop"))
            and _same(_slot(a, _p_comms, "communities"), _slot(b, _p_comms, "communities"))
            and _same(_slot(a, _p_policy, "policy"), _slot(b, _p_policy, "policy"))
        )
    return _same(a, b)


cdef inline object _own_of(object a):
    """``a.own``: at its offset for a PathAttributes."""
    if type(a) is _attrs_type and _own_at >= 0:
        return _slot(a, _own_at, "own")
    return a.own


cdef unsigned long long _sv_version = 0  # the module dict's tag when _sv_value was read
cdef Py_ssize_t _sv_value = 0


cdef inline Py_ssize_t _scan_variants() except -1:
    """``ribd.interner.SCAN_VARIANTS``, as the reference reads it at each use (tests
    lower it): read again from the module's dict only when that dict changed since
    (its version tag), else the value read then. The probe and the int's read each
    time cost ~190 instructions, ~1.2 a UPDATE (stop 37, internb: 0.8% of the
    synthetic feed)."""
    global _sv_version
    cdef unsigned long long version
    if _module is not None:
        version = dict_version(_module)
        if version != 0 and version == _sv_version:
            return _sv_value
    return _scan_variants_read()


cdef Py_ssize_t _scan_variants_read() except -1:
    """``SCAN_VARIANTS`` from ``ribd.interner``'s dict, one probe; noted with its tag."""
    global _module, _sv_version, _sv_value
    cdef PyObject *found
    if _module is None:
        import ribd.interner

        _module = ribd.interner.__dict__
    version = dict_version(_module)
    found = PyDict_GetItemWithError(_module, "SCAN_VARIANTS")
    if found == NULL:
        raise AttributeError("ribd.interner has no SCAN_VARIANTS")
    _sv_value = <object>found
    _sv_version = version
    return _sv_value


cdef inline bint _same(object a, object b) except -1:
    return PyObject_RichCompareBool(a, b, Py_EQ)


cdef inline object _share(list cache, Py_ssize_t i, object value):
    """A direct-mapped cache's slot ``i``: the value held there if equal to
    ``value`` (the shared object), else ``value``, stored there."""
    if i >= PyList_GET_SIZE(cache):
        raise IndexError("list index out of range")
    seen = <object>PyList_GET_ITEM(cache, i)
    if _same(seen, value):
        return seen
    cache[i] = value
    return value


cdef inline object _setdefault(dict d, object value):
    return <object>PyDict_SetDefault(d, value, value)


# The raw decoder's path hand-back (``ribd/_rawattrs_memo.pxi``), set by it at
# import: after a row whose set's core keeps another (equal) AS path object
# than the row's, the decoder's memo is given the core's, so that the next
# UPDATE with those octets hands the interner the path its core holds (its
# core memo then finds the list, its compares stop at the path's identity).
ctypedef void (*_handback_fn)(PyObject *made, PyObject *held) noexcept
cdef _handback_fn _handback = NULL
cdef Py_ssize_t _a_core = _offset(PathAttributes, "core")


def set_path_handback(capsule) -> None:
    """The decoder's hand-back (a capsule of ``_path_handback``; None: none)."""
    global _handback
    if capsule is None:
        _handback = NULL
    else:
        _handback = <_handback_fn>PyCapsule_GetPointer(capsule, b"ribd._rawattrs.path_handback")


def intern(self, row):
    """The shared set for ``row`` (validated fields in make_attributes' order):
    ``AttributeInterner.py_intern``, compiled."""
    cdef PyObject *core
    cdef PyObject *held
    attrs = _intern_row(self, row)
    if _handback != NULL and type(row) is tuple and type(attrs) is _attrs_type and _a_core >= 0:
        core = slot_ptr(attrs, _a_core)  # (row: 12 items, unpacked by _intern_row)
        if core != NULL and type(<object>core) is _core_type and _core_at:
            held = slot_ptr(<object>core, _c_path)
            if held != NULL and held != PyTuple_GET_ITEM(row, 0):
                _handback(PyTuple_GET_ITEM(row, 0), held)
    return attrs


cdef object _intern_row(self, row):
    """``intern`` but the decoder's hand-back."""
    cdef Py_ssize_t i, n, scan
    cdef object key
    cdef PyObject *found
    cdef array.array ix = None
    # The index read (or built) for this row's core and ``_index``'s version
    # tag just after: unchanged at ``_hold``, ``_index[key]`` is still ``ix``.
    cdef object ix_dict = None
    cdef unsigned long long ix_tag = 0
    (path, origin, hop, pref, med, comms, large, ext, orig_id, clusters, atomic, aggr) = row
    cdef Py_hash_t path_hash = -1
    cdef dict cores = _mine(self, I_CORES)
    # The core's list met before through the memo of paths (``_intern_corememo.pxi``):
    # no hash of the fields, no probe of ``_cores``, where it is what they find.
    tag = _memo_tag(self)
    cdef size_t cs = _cm_slot(path)
    held = _cm_get(cs, tag, path, origin, med, large, ext, atomic, aggr)
    if held is not None:
        key = <object>_cm[cs].key
    else:
        part = (path, origin, med, large, ext, atomic, aggr)
        try:
            key = _tuple_hash(part, &path_hash) if _own_tuple_hash else PyObject_Hash(part)
        except TypeError:  # decoded lists (the JSON path)
            part = _hashable(part)
            path_hash = -1
            key = PyObject_Hash(part)
        found = PyDict_GetItemWithError(cores, key)
        if found == NULL:
            held = None
            if _crowded(_mine(self, I_CROWD), key):
                key, held = self._locate(key, part)
        else:
            held = <object>found
            if not _core_is(held[0], part):
                key, held = self._locate(key, part)
        if held is not None and tag is not None:
            _cm_enter(cs, tag, held, key, path)
    # The router part: the one held, found through the memo without building
    # a part to hash (``ribd/_intern_memo.pxi``), or a fresh one (``shared``
    # False) as the reference makes it.
    cdef list owns = _mine(self, I_OWNS)
    cdef size_t ms = _memo_slot(hop, comms, pref, clusters)
    own = _memo_get(owns, ms, hop, comms, pref, orig_id, clusters)
    cdef bint shared = own is not None
    if not shared:
        own = _new_part(hop, comms, (pref, orig_id, clusters))
    if held is None:
        if _scan_variants() >= 1:  # (tests lower it; never below 1 in use)
            # A new core and its first set in one list of two: no append (a
            # list grown by one append holds 8 slots, 48 bytes more than the
            # 2 of a core carried by one set), no index to look for (the
            # collection drops a core's index with the core, so a new key
            # has none): what ``_hold`` would do, in order.
            core = _make_core(self, part, path_hash)
            attrs = _new_attrs(core, own if shared else _shared_part(self, own, ms))
            held = [core, attrs]
            PyObject_GC_UnTrack(held)
            PyDict_SetItem(cores, key, held)
            if tag is not None:
                _cm_enter(cs, tag, held, key, path)
            _counted(self)
            return attrs
        held = [_make_core(self, part, path_hash)]
        # Untracked by the cyclic GC: a core's list holds its PathCore and
        # PathAttributes (``gc=False`` Structs, which hold no container of
        # ours), so no cycle can pass through it; tracked, each of a table's
        # ~90k lists is walked by every GC pass it lives through.
        PyObject_GC_UnTrack(held)
        PyDict_SetItem(cores, key, held)
    else:
        n = PyList_GET_SIZE(held)
        if _index_past + 1 < n <= _pos_mask + 1:  # interner_index.indexable
            index = _mine(self, I_INDEX)
            found = PyDict_GetItemWithError(index, key)
            if found == NULL or (<array.array>found).data.as_ushorts[0] != n:
                ix = _build(held)
                PyDict_SetItem(index, key, ix)
            else:
                ix = <array.array>found
            if type(index) is dict:
                ix_dict = index
                ix_tag = dict_version(index)
            a = _get(ix, held, PyObject_Hash(own), own)
            if a is not None:
                if not shared:
                    _memo_put(ms, _own_of(a))
                return a
        else:
            # The reference's scan (islice over the list): the length read at each step.
            i = 1
            while i < PyList_GET_SIZE(held):
                a = <object>PyList_GET_ITEM(held, i)
                i += 1
                if _part_eq(_own_of(a), own):  # one compare of the three fields
                    if not shared:
                        _memo_put(ms, _own_of(a))
                    return a
        if PyList_GET_SIZE(held) > _scan_variants():
            found = PyDict_GetItemWithError(_mine(self, I_OVERFLOW), _digest(row))
            if found != NULL:
                return <object>found
    attrs = _new_attrs(held[0], own if shared else _shared_part(self, own, ms))
    # _hold
    if PyList_GET_SIZE(held) <= _scan_variants():
        PyList_Append(held, attrs)
        index = _mine(self, I_INDEX)
        if ix_tag != 0 and index is ix_dict and dict_version(index) == ix_tag:
            # ``_index`` has not changed since ``ix`` was read or entered
            # under ``key``: no second (cold) probe of it (stop 38, internc).
            found = <PyObject *>ix
        else:
            found = PyDict_GetItemWithError(index, key)
        if found != NULL and not _added(<array.array>found, held, attrs):
            n = PyList_GET_SIZE(held)
            if _index_past + 1 < n <= _pos_mask + 1:  # built again now, larger
                PyDict_SetItem(index, key, _build(held))
            else:
                PyDict_DelItem(index, key)
    else:
        _mine(self, I_OVERFLOW)[_digest(tuple(row))] = attrs
    _counted(self)
    return attrs


cdef inline int _counted(self) except -1:
    """``self._count += 1``. (Not made from the int's value: ``PyLong_AsSsize_t``
    and ``PyLong_FromSsize_t`` cost more than the addition's one-digit path;
    stop 37, internb, callgrind +5 M on router 1.)"""
    if type(self) is _interner_type:
        set_at(self, _at[I_COUNT], "_count", _slot(self, _at[I_COUNT], "_count") + 1)
    else:
        self._count += 1
    return 0


cdef inline bint _crowded(object crowd, object key) except -1:
    """``key in crowd``; an empty set (as it nearly always is) without a probe."""
    if type(crowd) is set and PySet_GET_SIZE(crowd) == 0:
        return False
    return key in crowd


include "_intern_index.pxi"


cdef bint _core_is(object core, tuple part) except -1:
    """``_core_fields(core) == part``, field by field (a tuple compare does the same)."""
    (path, origin, med, large, ext, atomic, aggr) = part
    return _core_is7(core, path, origin, med, large, ext, atomic, aggr)


cdef bint _core_is7(object core, object path, object origin, object med, object large,
                    object ext, object atomic, object aggr) except -1:
    """``_core_is`` on the fields apart (no tuple of them built)."""
    if type(core) is _core_type and _core_at:
        return (
            _same(_slot(core, _c_path, "as_path"), path)
            and _same(_slot(core, _c_origin, "origin"), origin)
            and _same(_slot(core, _c_med, "med"), med)
            and _same(_slot(core, _c_large, "large_communities"), large)
            and _same(_slot(core, _c_ext, "extended_communities"), ext)
            and _same(_slot(core, _c_atomic, "atomic_aggregate"), atomic)
            and _same(_slot(core, _c_aggr, "aggregator"), aggr)
        )
    return (
        _same(core.as_path, path)
        and _same(core.origin, origin)
        and _same(core.med, med)
        and _same(core.large_communities, large)
        and _same(core.extended_communities, ext)
        and _same(core.atomic_aggregate, atomic)
        and _same(core.aggregator, aggr)
    )


cdef object _share_own(self, own):
    """``AttributeInterner._share``: ``own``, or an equal RouterPart held before;
    a new one shares its values (next hop, communities, policy) with earlier ones."""
    cdef Py_ssize_t i, at
    cdef list owns = _mine(self, I_OWNS)
    at = PyObject_Hash(own) & _large_mask
    if at >= PyList_GET_SIZE(owns):
        raise IndexError("list index out of range")
    seen = <object>PyList_GET_ITEM(owns, at)
    if _part_eq(seen, own):
        return seen
    if type(own) is _part_type and _part_at:
        next_hop = _slot(own, _p_hop, "next_hop")
        communities = _slot(own, _p_comms, "communities")
        policy = _slot(own, _p_policy, "policy")
    else:
        next_hop = own.next_hop
        communities = own.communities
        policy = own.policy
    local_pref, originator_id, cluster_list = policy
    if local_pref is not None and local_pref > 256:  # smaller ints are shared by CPython
        local_pref = share_int(_mine(self, I_INTS), local_pref, _share_mask)
    if communities:
        i = PyObject_Hash(communities) & _large_mask
        communities = _share(_mine(self, I_COMMUNITIES), i, communities)
    cdef dict texts = _mine(self, I_TEXTS)
    next_hop = _setdefault(texts, next_hop)
    if originator_id:
        originator_id = _setdefault(texts, originator_id)
    if cluster_list:
        cluster_list = _setdefault(texts, cluster_list)
    policy = (local_pref, originator_id, cluster_list)
    i = PyObject_Hash(policy) & _share_mask
    policy = _share(_mine(self, I_POLICIES), i, policy)
    own = _new_part(next_hop, communities, policy)
    owns[at] = own
    return own


include "_intern_memo.pxi"


include "_intern_corememo.pxi"


include "_intern_core.pxi"


def own_tuple_hash() -> bool:
    """Whether the cores' keys are hashed here item by item (``_tuple_hash``:
    this interpreter's tuple hash), not by ``hash()`` (tests)."""
    return _own_tuple_hash


def tuple_hash(tuple t) -> tuple:
    """(``_tuple_hash(t)``, the first item's hash) (tests: against ``hash()``)."""
    cdef Py_hash_t first
    h = _tuple_hash(t, &first)
    return h, first


def fields_at_offsets():
    """Which reads go to their offsets here (tests): the sets' ``own``, the
    cores' fields, the router parts' fields, the interner's slots."""
    return (_own_at >= 0, _core_at, _part_at, _self_at)
