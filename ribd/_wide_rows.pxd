# The rows of wide entries (ribd.entries), shared in C by ribd._wide and
# ribd._wide_rejoin: an Overlay's fields read at their offsets, a row's slot, a
# slot's place in a prefix's own values, and (C code, used by ribd._wide) a
# moved row built (not interned), a dying row dropped from the intern dict.
# Inline or static: no module of its own.

from cpython.ref cimport Py_INCREF, PyObject


cdef extern from "Python.h":
    PyObject *PyTuple_GET_ITEM(object t, Py_ssize_t i)
    object PyTuple_New(Py_ssize_t n)
    void PyTuple_SET_ITEM(object t, Py_ssize_t i, object o)
    Py_ssize_t PyTuple_GET_SIZE(object t)
    Py_ssize_t PyLong_AsSsize_t(object o) except? -1


cdef extern from *:
    """
    #include "structmember.h"  /* PyMemberDef (in Python.h from 3.12) */
    /* Drop ``key`` from the intern dict ``d`` if ``d`` maps it to itself, hashing
       it once (a row is a tuple as wide as the routers: its hash walks them). */
    static inline int wide_drop_if_interned(PyObject *d, PyObject *key) {
        PyObject *got;
        Py_hash_t h = PyObject_Hash(key);
        if (h == -1) return -1;
    #if PY_VERSION_HEX < 0x030D0000
        got = _PyDict_GetItem_KnownHash(d, key, h);
        if (got == NULL) return PyErr_Occurred() ? -1 : 0;
        if (got != key) return 0;
        return _PyDict_DelItem_KnownHash(d, key, h);
    #else
        got = PyDict_GetItemWithError(d, key);
        if (got == NULL) return PyErr_Occurred() ? -1 : 0;
        if (got != key) return 0;
        return PyDict_DelItem(d, key);
    #endif
    }
    /* A moved row and both hashes in one walk of the old row (below). */
    #if PY_VERSION_HEX >= 0x03080000 && PY_VERSION_HEX < 0x030D0000 && SIZEOF_VOID_P == 8
    #define WIDE_KNOWN_HASH 1
    #define WIDE_P1 ((Py_uhash_t)11400714785074694791ULL)
    #define WIDE_P2 ((Py_uhash_t)14029467366897019727ULL)
    #define WIDE_P5 ((Py_uhash_t)2870177450012600261ULL)
    /* One item folded into CPython's tuple hash (Objects/tupleobject.c, xxHash's
       round since 3.8), and the final step with the length. */
    static inline Py_uhash_t wide_step(Py_uhash_t acc, Py_uhash_t lane) {
        acc += lane * WIDE_P2;
        acc = (acc << 31) | (acc >> 33);
        return acc * WIDE_P1;
    }
    static inline Py_hash_t wide_finish(Py_uhash_t acc, Py_ssize_t len) {
        acc += (Py_uhash_t)len ^ (WIDE_P5 ^ 3527539UL);
        return acc == (Py_uhash_t)-1 ? 1546275796 : (Py_hash_t)acc;
    }
    #else
    #define WIDE_KNOWN_HASH 0
    #endif
    /* The attribute set type (ribd.attributes.PathAttributes: a msgspec Struct,
       eq=False and gc=False), set at import by wide_set_fast_type when its
       instances hash as CPython hashes a pointer and the cyclic GC never tracks
       them; NULL: every item through PyObject_Hash and the GC checks. Most
       items of a row are such sets: PyObject_Hash reached msgspec's Struct_hash,
       which hashed the pointer, ~80 instructions an item, and the GC check
       read the type's flags (stop 37, movewide: ~4% of router 17's feed and of
       the refresh's under callgrind). */
    static inline PyTypeObject **wide_fast_type_p(void) { static PyTypeObject *t = NULL; return &t; }
    static inline Py_hash_t wide_pointer_hash(PyObject *o) {
        size_t y = (size_t)o;
        Py_hash_t x;
        y = (y >> 4) | (y << (8 * SIZEOF_VOID_P - 4));
        x = (Py_hash_t)y;
        return x == -1 ? -2 : x;
    }
    /* ``hash(o)`` (-1 and an exception: unhashable). */
    static inline Py_hash_t wide_item_hash(PyObject *o) {
        if (Py_TYPE(o) == *wide_fast_type_p()) return wide_pointer_hash(o);
        return PyObject_Hash(o);
    }
    /* Set at import (wide_check_hash): wide_tuple_hash is CPython's tuple hash. */
    static inline int *wide_hash_flag(void) { static int checked = 0; return &checked; }
    /* ``hash(t)`` the way ``wide_moved`` computes it (-1: error or not available). */
    static inline Py_hash_t wide_tuple_hash(PyObject *t) {
    #if WIDE_KNOWN_HASH
        Py_uhash_t acc = WIDE_P5, lane;
        Py_ssize_t i, n = PyTuple_GET_SIZE(t);
        for (i = 0; i < n; i++) {
            lane = (Py_uhash_t)wide_item_hash(PyTuple_GET_ITEM(t, i));
            if (lane == (Py_uhash_t)-1) return -1;
            acc = wide_step(acc, lane);
        }
        return wide_finish(acc, n);
    #else
        return -1;
    #endif
    }
    /* An item the cyclic GC tracks. A moved row holding none is untracked at
       once, as ``ribd._announce`` makes a narrow one: CPython untracks such a
       tuple only in the first collection that finds it, after walking its 16-64
       cold items twice (BENCHMARKS.md, stop 33, late2: the young collections
       during router 17's feed 0.175 -> 0.03 CPU-s in process). */
    static inline int wide_tracks(PyObject *item) {
        return item != Py_None && Py_TYPE(item) != *wide_fast_type_p()
            && PyObject_IS_GC(item) && PyObject_GC_IsTracked(item);
    }
    /* ``row`` with ``value`` in ``slot``, slot ``clear`` (>= 0) emptied, ``end``
       items long (the caller trimmed it): a new row, shared by the prefixes of
       the UPDATE that held ``row`` and not interned. Interning it (hash the 16-64
       items, probe the intern dict, insert, and probe again to drop the old row)
       was 16-18% of 32 routers' tables loading together in process (the probes
       alone ~8%; BENCHMARKS.md, stop 53), and an UPDATE
       moves a set's prefixes together, so an equal row made by another UPDATE
       is rare (2.2% of the rows after 32 routers' tables); the maintenance's
       collection interns the rows that stay (``Collection``'s rows phase).
       References first, then a row none of whose items the cyclic GC tracks
       (None, ``gc=False`` attribute sets) is untracked at once (below). */
    static inline PyObject *wide_moved(PyObject *row, Py_ssize_t slot, PyObject *value,
                                       Py_ssize_t clear, Py_ssize_t end) {
        Py_ssize_t n = PyTuple_GET_SIZE(row), i;
        PyObject *new_row = PyTuple_New(end), *item;
        int tracked = 0;
        if (new_row == NULL) return NULL;
        for (i = 0; i < end; i++) {
            item = i == slot ? value : (i == clear || i >= n) ? Py_None : PyTuple_GET_ITEM(row, i);
            Py_INCREF(item);
            PyTuple_SET_ITEM(new_row, i, item);
            tracked |= wide_tracks(item);
        }
        if (!tracked) PyObject_GC_UnTrack(new_row);
        return new_row;
    }
    /* ``wide_drop_if_interned`` with the key's hash known. */
    static inline int wide_drop_known(PyObject *d, PyObject *key, Py_hash_t h) {
    #if WIDE_KNOWN_HASH
        PyObject *got = _PyDict_GetItem_KnownHash(d, key, h);
        if (got == NULL) return PyErr_Occurred() ? -1 : 0;
        if (got != key) return 0;
        return _PyDict_DelItem_KnownHash(d, key, h);
    #else
        return wide_drop_if_interned(d, key);
    #endif
    }
    static inline int wide_check_hash(PyObject *samples) {
        Py_ssize_t i;
        *wide_hash_flag() = 0;
        for (i = 0; i < PyList_GET_SIZE(samples); i++) {
            PyObject *t = PyList_GET_ITEM(samples, i);
            Py_hash_t a = wide_tuple_hash(t), b = PyObject_Hash(t);
            if (b == -1) return -1;
            if (a != b) { PyErr_Clear(); return 0; }
        }
        *wide_hash_flag() = 1;
        return 1;
    }
    static inline int wide_hash_known(void) { return *wide_hash_flag(); }
    /* ``tp`` as the fast item type if each of ``samples`` (its instances) hashes
       as its pointer and none is tracked by the GC, and the type is no GC type;
       0: not set (every item the generic way). */
    static inline int wide_set_fast_type(PyObject *tp, PyObject *samples) {
        Py_ssize_t i;
        *wide_fast_type_p() = NULL;
        if (!PyType_Check(tp) || PyType_HasFeature((PyTypeObject *)tp, Py_TPFLAGS_HAVE_GC)) return 0;
        for (i = 0; i < PyList_GET_SIZE(samples); i++) {
            PyObject *o = PyList_GET_ITEM(samples, i);
            Py_hash_t h;
            if (Py_TYPE(o) != (PyTypeObject *)tp || PyObject_IS_GC(o)) return 0;
            h = PyObject_Hash(o);
            if (h == -1) { PyErr_Clear(); return 0; }
            if (h != wide_pointer_hash(o)) return 0;
        }
        *wide_fast_type_p() = (PyTypeObject *)tp;
        return 1;
    }
    static inline int wide_fast_type_set(void) { return *wide_fast_type_p() != NULL; }
    /* A tuple's item replaced, the old item's reference handed to the caller:
       for a row nothing but its holders in one UPDATE can see (``ribd._wide``).
       Not where CPython caches a tuple's hash in the tuple (3.14 on): there a
       row changed in place would keep a stale one. */
    #define WIDE_ROWS_IN_PLACE (PY_VERSION_HEX < 0x030E0000)
    static inline PyObject *wide_swap_item(PyObject *t, Py_ssize_t i, PyObject *v) {
        PyObject *old = PyTuple_GET_ITEM(t, i);
        Py_INCREF(v);
        PyTuple_SET_ITEM(t, i, v);
        return old;
    }
    static inline Py_ssize_t wide_refcnt(PyObject *o) { return Py_REFCNT(o); }
    static inline int wide_is_tracked(PyObject *o) { return PyObject_IS_GC(o) && PyObject_GC_IsTracked(o); }
    /* A slot number of an Overlay's own values (a small int >= 0): its one
       digit read where CPython 3.11 keeps it, else PyLong_AsSsize_t (which
       was ~2/3 of _over_at's cost in the refresh, stop 37, movewide). */
    static inline Py_ssize_t wide_slot_number(PyObject *o) {
    #if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
        if (PyLong_CheckExact(o)) {
            if (Py_SIZE(o) == 1) return (Py_ssize_t)((PyLongObject *)o)->ob_digit[0];
            if (Py_SIZE(o) == 0) return 0;
        }
    #endif
        return PyLong_AsSsize_t(o);
    }
    """
    int wide_drop_if_interned(object d, object key) except -1
    object wide_moved(object row, Py_ssize_t slot, object value, Py_ssize_t clear, Py_ssize_t end)
    int wide_drop_known(object d, object key, Py_hash_t h) except -1
    int wide_check_hash(object samples) except -1
    int wide_hash_known()
    int wide_set_fast_type(object tp, object samples) except -1
    Py_hash_t wide_tuple_hash(object t) except? -1
    int wide_fast_type_set()
    bint WIDE_ROWS_IN_PLACE
    PyObject *wide_swap_item(PyObject *t, Py_ssize_t i, PyObject *v)
    Py_ssize_t wide_refcnt(PyObject *o)
    int wide_is_tracked(PyObject *o)
    Py_ssize_t wide_slot_number(PyObject *o) except? -1
    int wide_tracks(PyObject *item)
    void PyObject_GC_UnTrack(object o)


cdef inline object _slot_of(tuple row, Py_ssize_t slot):
    """``row[slot]``, None past its end."""
    if slot < PyTuple_GET_SIZE(row):
        return <object>PyTuple_GET_ITEM(row, slot)
    return None


cdef inline Py_ssize_t _over_at(tuple over, Py_ssize_t slot) except -2:
    """The place of ``slot`` in ``over`` ((slot, value, ...): slot numbers at even
    places; values are never ints, so ``slot in over`` finds one there), -1: none."""
    cdef Py_ssize_t j, n = PyTuple_GET_SIZE(over)
    for j in range(0, n, 2):
        if wide_slot_number(PyTuple_GET_ITEM(over, j)) == slot:
            return j
    return -1


cdef inline object _value_in(tuple over, tuple row, Py_ssize_t slot):
    """The value in ``slot`` of an entry: ``row`` with its own values ``over``
    (None: the entry is the row itself)."""
    cdef Py_ssize_t j
    if over is not None:
        j = _over_at(over, slot)
        if j >= 0:
            return <object>PyTuple_GET_ITEM(over, j + 1)
    return _slot_of(row, slot)


# The moved rows of one UPDATE (ribd._wide).

cdef inline tuple _without(tuple over, Py_ssize_t j):
    """``over[:j] + over[j + 2:]``, untracked by the cyclic GC when no item is
    tracked (``own_values``)."""
    cdef Py_ssize_t n = PyTuple_GET_SIZE(over), i, k = 0
    cdef object item
    cdef int tracked = 0
    out = PyTuple_New(n - 2)
    for i in range(n):
        if i == j or i == j + 1:
            continue
        item = <object>PyTuple_GET_ITEM(over, i)
        Py_INCREF(item)
        PyTuple_SET_ITEM(out, k, item)
        tracked |= wide_tracks(<PyObject *>item)
        k += 1
    if not tracked:
        PyObject_GC_UnTrack(out)
    return <tuple>out


cdef inline object _moved_row(tuple row, Py_ssize_t slot, object value, Py_ssize_t clear):
    """``entries.moved_row``: ``row`` with ``value`` (not None) in ``slot`` and, for
    ``clear`` >= 0 where the row holds a value there, that slot emptied and
    trailing None trimmed (``_rewritten``); a new row, not interned."""
    cdef Py_ssize_t n = PyTuple_GET_SIZE(row), width, end, i
    cdef bint clearing = clear >= 0 and clear < n and <object>PyTuple_GET_ITEM(row, clear) is not None
    width = n if slot < n else slot + 1
    end = width
    if clearing:
        while end > slot + 1:
            i = end - 1
            if i != clear and i < n and <object>PyTuple_GET_ITEM(row, i) is not None:
                break
            end -= 1
    return wide_moved(row, slot, value, clear if clearing else -1, end)


cdef inline object _move(PyObject **moves, Py_ssize_t r, tuple row, Py_ssize_t slot, object attrs,
                        Py_ssize_t stale, bint clear):
    """``announce_wide``'s ``moves``: row ``r`` (the row's place in the UPDATE's
    row table) moved once per UPDATE and ``clear``; ``moves``: the plain or the
    cleared moves, one owned reference each (NULL: not moved yet). C arrays that
    ``_wide_core`` owns: a ``cdef class`` and its two lists per UPDATE were ~1.5%
    of the 16 routers' refresh in process (stop 34, wide3)."""
    cdef PyObject *m = moves[r]
    if m != NULL:
        return <object>m
    moved = _moved_row(row, slot, attrs, stale if clear else -1)
    Py_INCREF(moved)
    moves[r] = <PyObject *>moved
    return moved


cdef inline bint _holds(PyObject **plain, PyObject **cleared, PyObject *row, Py_ssize_t n):
    """Whether ``row`` is one this UPDATE moved a row to."""
    cdef Py_ssize_t r
    for r in range(n):
        if plain[r] == row or cleared[r] == row:
            return True
    return False
