# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled twin of ``Rib._announce``'s general loop (ribd.rib): one UPDATE's
prefixes written into a store whose arrays or delta already hold some of them.

A table load into an empty store takes the compiled short paths
(``ribd._apply``, ``ribd._loadline``); once another router's table was merged
into the store's arrays, every announcement of every later router (and every
router's refresh after a restart from a snapshot) went through the Python
loop, ~1.7x the first router's CPU through the feed in raw mode and 3x its
apply on the JSON path (BENCHMARKS.md, stop 30, ingest10). This is that loop
for narrow entries (fewer than ``OVERLAY_SLOTS`` router slots; the wide layout
stays ``ribd.entries.announce_wide``'s), on the same objects with the same
dict and list calls in the same order: each prefix's entry read from the
arrays (by the index ``PrefixStore.find_many`` gave) or the delta, the
router's slot replaced in a new tuple interned in ``table._entries``, the
change logged, the replaced entry dropped from the intern dict when no prefix
holds it any more (the same reference count rule), the counters as the Python
loop leaves them. The rare parts call the Python code they would run there:
ADD-PATH sets (``Rib._with_path``); a returning route's stale copy is cleared
as ``FamilyTable.put`` does it, inline.

The Python loop in ``Rib._announce`` stays the reference and the fallback
where this was not built (tests/ribd/test_announce_compiled.py compares their
whole RIB state over random sequences).
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.dict cimport PyDict_SetItem
from cpython.list cimport PyList_Append
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_REFCNT, PyObject
from cpython.sequence cimport PySequence_Fast, PySequence_Fast_GET_ITEM, PySequence_Fast_GET_SIZE

from ribd._intdelta cimport delta_get, delta_set, is_delta
from ribd._storeread cimport _find_ints, store_cells
from ribd._counters cimport add_at, more_than, plus
from ribd._slots cimport get_at, set_at, slots_writable_offset

from itertools import repeat

import ribd.table as _table_module
from ribd.attributes import PathAttributes
from ribd.ribload import entry_of
from ribd._storeread import find_ints  # (tests: the search, its old place)
from ribd.store import PrefixStore
from ribd.table import FamilyState, FamilyTable


cdef extern from "Python.h":
    PyObject *PyDict_GetItemWithError(object d, object key) except? NULL
    PyObject *PyDict_SetDefault(object d, object key, object default) except NULL
    int PyDict_DelItem(object d, object key) except -1
    object PyTuple_New(Py_ssize_t n)
    void PyTuple_SET_ITEM(object t, Py_ssize_t i, object o)
    PyObject *PyTuple_GET_ITEM(object t, Py_ssize_t i)
    Py_ssize_t PyTuple_GET_SIZE(object t)
    Py_ssize_t PyList_GET_SIZE(object l)
    PyObject *PyList_GET_ITEM(object l, Py_ssize_t i)
    Py_ssize_t PyLong_AsSsize_t(object o) except? -1
    long long PyLong_AsLongLongAndOverflow(object o, int *overflow) except? -1
    void PyObject_GC_UnTrack(object o)
    bint PyObject_GC_IsTracked(object o)
    bint PyObject_IS_GC(object o)


cdef object _repeat = repeat
cdef object _path_attributes = PathAttributes

# The loop's reads of the router's family state, the store and the table, per
# UPDATE (and, for a returning route, per prefix): at the slots' offsets
# for objects of exactly these types, through getattr
# otherwise, as ribd._apply and ribd._wide read them (stop 37, movewide: ~20
# generic getattr / setattr an UPDATE for routers 2-16 and a narrow refresh).
include "_state_offsets.pxi"

cdef dict _table_dict = _table_module.__dict__  # ribd.table's namespace (MAX_CHANGE_LOG)


def offsets_in_use():
    """Whether ``general_loop`` reads a router's family state, the table and the
    store at their slots' offsets (tests)."""
    return (
        min(_fs_slot, _fs_stale_slot, _fs_prefixes, _fs_paths, _fs_stale_prefixes, _fs_writes,
            _st_keys, _st_int_keys, _st_values, _st_delta) >= 0
        and TABLE_AT_OFFSETS
    )

include "_new_value.pxi"

cdef object _entry_of = entry_of
cdef Py_ssize_t _taken = 0  # prefixes through the loop here, ever (tests)


def prefixes_taken():
    """Prefixes this loop wrote or passed over, ever (tests: that it ran)."""
    return _taken


cdef object _with_slot(tuple entry, Py_ssize_t slot, object value, Py_ssize_t clear):
    """``entry`` with ``value`` at ``slot`` (widened with None as needed) and,
    for ``clear`` >= 0, that slot emptied and trailing None trimmed (as
    ``FamilyTable.put`` then ``canonical`` build it). ``value`` is never None."""
    cdef Py_ssize_t n = PyTuple_GET_SIZE(entry), width, end, i
    cdef PyObject *item
    width = n if slot < n else slot + 1
    end = width
    if clear >= 0:
        while end > slot + 1:
            i = end - 1
            if i != clear and i < n and <object>PyTuple_GET_ITEM(entry, i) is not None:
                break
            end -= 1
    cdef bint tracked = False
    new = PyTuple_New(end)
    for i in range(end):
        if i == slot:
            item = <PyObject *>value
        elif i == clear or i >= n:
            item = <PyObject *>None
        else:
            item = PyTuple_GET_ITEM(entry, i)
        if not tracked and PyObject_IS_GC(<object>item) and PyObject_GC_IsTracked(<object>item):
            tracked = True
        Py_INCREF(<object>item)
        PyTuple_SET_ITEM(new, i, <object>item)
    if not tracked:
        # Nothing a cycle could pass through (None, PathAttributes: ``gc=False``):
        # untracked now, as the collector would at its next pass (and as
        # ``ribload.entry_of`` makes a first router's entries), not walked until then.
        PyObject_GC_UnTrack(new)
    return new


cdef inline PyObject *_cell(PyObject **cells, Py_ssize_t at):
    return cells[at]


def announce_loop(rib, table, fs, prefixes, path_ids, found, attrs, fresh, Py_ssize_t added, Py_ssize_t count):
    """``general_loop`` for Python (``Rib._announce``); see there."""
    general_loop(rib, table, fs, prefixes, path_ids, found, attrs, fresh, added, count)


cdef int general_loop(rib, table, fs, prefixes, path_ids, found, attrs, fresh, Py_ssize_t added, Py_ssize_t count) except -1:
    """The general loop of ``Rib._announce`` and its tally, from where that
    method enters it: ``prefixes`` the store's keys, ``path_ids`` None or one
    per prefix, ``found`` each prefix's index in the arrays (a list; an
    ``itertools.repeat``: every prefix in the delta or new; None: searched
    here, as ``PrefixStore.find_many`` would), ``fresh`` the
    entry of this one path if already interned, ``added`` the prefixes
    already added, ``count`` the UPDATE's prefixes. The caller holds the lock
    and checked that entries are narrow (``table._next_slot < OVERLAY_SLOTS``)."""
    cdef Py_ssize_t n, i, at, slot, stale, width, d_prefixes = 0, d_paths = 0, d_stale = 0, puts = 0
    cdef Py_ssize_t n_values = 0, max_log, added_paths
    cdef bint all_delta, zero_id
    cdef PyObject *got
    cdef PyObject **cells = NULL
    cdef Py_ssize_t *ats = NULL  # the indexes searched here (``found`` None)
    cdef PyObject *most
    cdef Py_ssize_t ft = table_exact(table)
    cdef Py_ssize_t o_fs = state_exact(fs)  # (0: slots at their offsets)
    cdef Py_ssize_t o_store
    store = get_at(table, _ft_store | ft, "store")
    o_store = store_exact(store)
    delta = get_at(store, _st_delta | o_store, "delta")
    entries = get_at(table, _ft_entries | ft, "_entries")
    changes = get_at(table, _ft_changes | ft, "changes")
    if not is_delta(delta) or type(entries) is not dict or type(changes) is not list:
        raise TypeError("announce_loop: the store's delta, intern dict or change log is not a delta/dict/list")
    slot = get_at(fs, _fs_slot | o_fs, "slot")
    stale_slot = get_at(fs, _fs_stale_slot | o_fs, "stale_slot")
    stale = -1 if stale_slot is None else stale_slot
    seq = PySequence_Fast(prefixes, "prefixes")
    n = PySequence_Fast_GET_SIZE(seq)
    ids = None
    if path_ids is not None:
        ids = PySequence_Fast(path_ids, "path ids")
        if PySequence_Fast_GET_SIZE(ids) < n:  # (zip stops at the shortest)
            n = PySequence_Fast_GET_SIZE(ids)
    all_delta = type(found) is _repeat
    if found is None:  # (ribd._apply: prefixes as the store's keys, its arrays not empty)
        keys = get_at(store, _st_keys | o_store, "keys")
        if get_at(store, _st_int_keys | o_store, "int_keys") and len(keys) and n:
            ats = <Py_ssize_t *>PyMem_Malloc(n * sizeof(Py_ssize_t))
            if ats == NULL:
                raise MemoryError()
            if not _find_ints(keys, seq, n, ats):
                PyMem_Free(ats)
                ats = NULL
        if ats == NULL:
            found = store.find_many(prefixes)
    if not all_delta and ats == NULL:
        if type(found) is not list:
            found = list(found)
        if PyList_GET_SIZE(found) < n:
            n = PyList_GET_SIZE(found)
    values = get_at(store, _st_values | o_store, "values")
    most = PyDict_GetItemWithError(_table_dict, "MAX_CHANGE_LOG")
    limit = <object>most if most != NULL else _table_module.MAX_CHANGE_LOG  # (tests shorten it)
    max_log = limit  # (compared per prefix that returns from stale, in C)
    last_entry = None
    last_new = ()
    try:
        if not all_delta and len(values):
            store_cells(values, &cells, &n_values)  # (``values`` holds the array meanwhile)
        for i in range(n):
            prefix = <object>PySequence_Fast_GET_ITEM(seq, i)
            if ids is None:
                zero_id = True
                path_id = 0
            else:
                path_id = <object>PySequence_Fast_GET_ITEM(ids, i)
                zero_id = path_id == 0
            if ats != NULL:
                at = ats[i]
            else:
                at = -1 if all_delta else PyLong_AsSsize_t(<object>PyList_GET_ITEM(found, i))
            if at >= 0:
                if at >= n_values:
                    raise IndexError(f"announce_loop: index {at} past the store's {n_values} values")
                entry = <object>_cell(cells, at)
            else:
                got = delta_get(delta, prefix)
                entry = None if got == NULL else <object>got
            if entry is None:
                if not zero_id:
                    new_entry = (*((None,) * slot), rib._with_path(None, path_id, attrs)[0])
                    new_entry = <object>PyDict_SetDefault(entries, new_entry, new_entry)
                else:
                    if fresh is None:
                        fresh = _entry_of(slot, attrs)
                        fresh = <object>PyDict_SetDefault(entries, fresh, fresh)
                    new_entry = fresh
                if at >= 0:
                    store.set_at(at, new_entry)  # (a hole filled: the store counts it)
                else:
                    delta_set(delta, prefix, new_entry)
                PyList_Append(changes, prefix)
                added += 1
                continue
            if type(entry) is not tuple:
                raise TypeError(f"announce_loop: a {type(entry).__name__} entry in a narrow table")
            width = PyTuple_GET_SIZE(entry)
            old = <object>PyTuple_GET_ITEM(entry, slot) if slot < width else None
            new = _new_value(rib, old, zero_id, path_id, attrs, &added_paths, fs)
            if old is None:
                d_prefixes += 1
            d_paths += added_paths
            if stale >= 0 and stale < width and <object>PyTuple_GET_ITEM(entry, stale) is not None:
                # The route is back: its stale copy is no longer needed
                # (``FamilyTable.put(prefix, entry, slot, new, at=at, clear=stale)``).
                d_stale += 1
                PyList_Append(changes, prefix)
                seq_now = get_at(table, _ft_changes_start | ft, "changes_start") + PyList_GET_SIZE(changes)
                slot_seq = get_at(table, _ft_slot_seq | ft, "slot_seq")
                slot_seq[slot] = seq_now
                slot_seq[stale] = seq_now
                if PyList_GET_SIZE(changes) > max_log:
                    set_at(table, _ft_changes_start | ft, "changes_start", get_at(table, _ft_changes_start | ft, "changes_start") + PyList_GET_SIZE(changes))
                    changes.clear()
                puts += 1
                built = _with_slot(<tuple>entry, slot, new, stale)
                built = <object>PyDict_SetDefault(entries, built, built)
                if at >= 0:  # (``set_at``: neither is None, no hole count changes)
                    Py_INCREF(built)
                    Py_DECREF(<object>cells[at])  # (``entry`` holds it still)
                    cells[at] = <PyObject *>built
                else:
                    store.set(prefix, built)
                built = None
                # References: the dict's key and value and ``entry`` here (put's
                # 5 count its caller's variable, its parameter and getrefcount's).
                if Py_REFCNT(entry) <= 3:
                    got = PyDict_GetItemWithError(entries, entry)
                    if got != NULL and <object>got is entry:
                        PyDict_DelItem(entries, entry)
                continue
            if old is new:
                continue
            if entry is last_entry and new is attrs:
                new_entry = last_new  # one entry built for the UPDATE's prefixes that shared one
            else:
                new_entry = _with_slot(<tuple>entry, slot, new, -1)
                new_entry = <object>PyDict_SetDefault(entries, new_entry, new_entry)
                if new is attrs:
                    last_entry = entry
                    last_new = new_entry
            if at >= 0:
                Py_INCREF(new_entry)
                Py_DECREF(<object>cells[at])  # (``entry`` holds it still)
                cells[at] = <PyObject *>new_entry
            else:
                delta_set(delta, prefix, new_entry)
            PyList_Append(changes, prefix)
            # The replaced entry leaves the intern dict if no prefix holds it any
            # more (see Rib._announce). References: the dict's key and value,
            # ``entry`` here, and ``last_entry`` or ``fresh`` when it is one of them.
            if Py_REFCNT(entry) <= 3 + (entry is last_entry) + (entry is fresh):
                got = PyDict_GetItemWithError(entries, entry)
                if got != NULL and <object>got is entry:
                    PyDict_DelItem(entries, entry)
    except BaseException:
        # What the Python loop counts prefix by prefix (so also after an error part way).
        add_at(fs, _fs_prefixes | o_fs, "prefixes", d_prefixes)
        add_at(fs, _fs_paths | o_fs, "paths", d_paths)
        add_at(fs, _fs_stale_prefixes | o_fs, "stale_prefixes", -d_stale)
        add_at(table, _ft_writes | ft, "writes", puts)
        raise
    finally:
        PyMem_Free(ats)
    # Those counts and the tally at the end, each field written once.
    add_at(fs, _fs_prefixes | o_fs, "prefixes", d_prefixes + added)
    add_at(fs, _fs_paths | o_fs, "paths", d_paths + added)
    if d_stale:
        add_at(fs, _fs_stale_prefixes | o_fs, "stale_prefixes", -d_stale)
    global _taken
    _taken += n
    return tally_update(table, ft, fs, o_fs, slot, count + puts, count, changes, limit)
