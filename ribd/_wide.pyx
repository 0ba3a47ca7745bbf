# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled twin of ``ribd.entries.announce_wide``: one UPDATE's prefixes
written into a table of ``OVERLAY_SLOTS`` router slots or more (entries are a
shared row plus a prefix's own values, ``ribd.entries``).

Every router loaded after the 16th goes through ``announce_wide`` for each
UPDATE, ~5 prefixes each on the realistic table; in Python its two passes,
its per-UPDATE dicts and its helpers made router 64's apply ~7x router 1's
(BENCHMARKS.md, "The 64th router", stop 30). This is the same two passes on
the same objects, in the same order: the first reads each prefix's entry
(from the store's arrays by the index ``find_many`` gave, or the delta) and
counts per row how many of its prefixes the UPDATE carries; the second writes
the moved rows (not interned, as ``moved_row`` builds them), keeps a prefix's
own values, logs the change, and at the end drops the interned rows no prefix
holds any more from the intern dict (the same reference rule). An
Overlay that nothing but the store holds is updated in place rather than made
anew, and so is the main row where nothing but the UPDATE's own prefixes holds
it (``_wide_in_place.pxi``; the reference makes new ones: equal state). The
rare parts call the Python code they would run there: ADD-PATH sets
(``Rib._with_path``, ``entries.with_values``) and a prefix put back onto the
UPDATE's main row (``entries._rejoin``).

``ribd.entries.announce_wide`` stays the reference and the fallback where this
was not built (tests/ribd/test_wide_compiled.py compares their whole RIB state
over random sequences).
"""

from cpython.list cimport PyList_Append
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.ref cimport Py_INCREF, Py_REFCNT, Py_XDECREF, PyObject
from cpython.sequence cimport PySequence_Fast, PySequence_Fast_GET_ITEM, PySequence_Fast_GET_SIZE

from ribd._announce cimport general_loop
from ribd._repeats cimport first_repeat
from ribd._storeread cimport _find_ints, store_cells
from libc.stdint cimport uint64_t

from ribd._deltabase cimport hash_key
from ribd._intdelta cimport IntDelta, delta_get, delta_set, is_delta, key_of
from ribd._counters cimport add_at, more_than, plus
from ribd._slots cimport get_at, set_at, slots_member_offset, slots_writable_offset
from ribd._wide_rejoin cimport rejoin_c
from ribd._wide_rows cimport (
    WIDE_ROWS_IN_PLACE,
    _holds,
    _move,
    _over_at,
    _slot_of,
    _value_in,
    _without,
    wide_check_hash,
    wide_drop_if_interned,
    wide_drop_known,
    wide_hash_known,
    wide_is_tracked,
    wide_refcnt,
    wide_set_fast_type,
    wide_swap_item,
    wide_tracks,
    wide_tuple_hash,
)

from itertools import islice

from libc.string cimport memset

import ribd.table as _table_module
from ribd.attributes import PathAttributes
from ribd.entries import OVERLAY_SLOTS, _REJOINED, Overlay, with_values
from ribd.store import PrefixStore
from ribd.table import FamilyState, FamilyTable


cdef extern from "Python.h":
    PyObject *PyDict_GetItemWithError(object d, object key) except? NULL
    PyObject *PyDict_SetDefault(object d, object key, object default) except NULL
    int PyDict_SetItem(object d, object key, object value) except -1
    int PyDict_DelItem(object d, object key) except -1
    object PyTuple_New(Py_ssize_t n)
    void PyTuple_SET_ITEM(object t, Py_ssize_t i, object o)
    PyObject *PyTuple_GET_ITEM(object t, Py_ssize_t i)
    Py_ssize_t PyTuple_GET_SIZE(object t)
    Py_ssize_t PyLong_AsSsize_t(object o) except? -1
    PyObject *PyList_GET_ITEM(object l, Py_ssize_t i)


cdef object _overlay = Overlay
# Overlay.row and Overlay.over read at their slots' offsets (a member descriptor's
# lookup on every read was ~10% of this module's time); -1: through getattr.
cdef Py_ssize_t _row_at = slots_member_offset(Overlay.__dict__["row"])
cdef Py_ssize_t _over_at_ = slots_member_offset(Overlay.__dict__["over"])


FIELDS_AT_OFFSETS = _row_at >= 0 and _over_at_ >= 0

include "_state_offsets.pxi"

STATE_AT_OFFSETS = min(_fs_slot, _fs_stale_slot, _fs_prefixes, _fs_paths, _fs_stale_prefixes,
                       _fs_writes, _st_keys, _st_int_keys, _st_values, _st_delta) >= 0


cdef dict _table_dict = _table_module.__dict__  # ribd.table's namespace (MAX_CHANGE_LOG)


# Attribute sets hashed as their pointers and known untracked without a call
# (``wide_set_fast_type``: checked on instances). A moved row's hash and its old
# row's come from the walk that builds it, if the tuple hash computed here is
# CPython's (checked on sample rows at import, sets among their items).
_sets = [PathAttributes(None, None) for _ in range(4)]
FAST_ITEMS = bool(wide_set_fast_type(PathAttributes, _sets))
wide_check_hash([(), (None,), (None, PathAttributes, 1, "a"), tuple(range(70)), (-1, -2, (3, None)),
                 (*_sets, None, _sets[0]), tuple(_sets[::-1])])
HASH_KNOWN = bool(wide_hash_known())
cdef bint _hash_known = HASH_KNOWN
del _sets


def row_hash(tuple row):
    """A row's hash as the moved rows' walk computes it (tests: ``hash(row)``)."""
    return wide_tuple_hash(row) if HASH_KNOWN else hash(row)


cdef object _path_attributes = PathAttributes

include "_new_value.pxi"

cdef object _rejoined = _REJOINED
cdef object _with_values = with_values
cdef object _islice = islice

# UPDATEs of at most this many prefixes keep their per-prefix arrays on the stack.
cdef enum:
    STACK = 64


cdef object _zero = 0


cdef extern from "Python.h":
    ctypedef struct PyTypeObject
    PyTypeObject *Py_TYPE(PyObject *o)
    int _list_append "PyList_Append"(object l, PyObject *o) except -1


cdef inline PyObject *_slot_ptr(PyObject *row, Py_ssize_t slot):
    """``_slot_of``, borrowed: ``row[slot]``, None past its end."""
    if slot < PyTuple_GET_SIZE(<object>row):
        return PyTuple_GET_ITEM(<object>row, slot)
    return <PyObject *>None
cdef bint _fields_at_offsets = FIELDS_AT_OFFSETS
cdef Py_ssize_t _reused = 0  # Overlays updated in place, ever (tests)


def reused_overlays():
    """Overlays the compiled code updated in place, ever (tests)."""
    return _reused


include "_wide_in_place.pxi"

cdef tuple _nothing_new = ((), (), ())  # no prefix new to the store (the common UPDATE)
cdef tuple _repeated = ((), (), None)  # a prefix twice: nothing written, apply in runs
# Pass 1's identities of an IPv4 UPDATE's held prefixes (``_wide_core``) hash under
# this random odd multiplier (a peer's prefixes must not aim at one slot).
cdef uint64_t _seen_mult = hash_key() | 1
cdef Py_ssize_t _direct = 0  # UPDATEs through ``wide_parts``, ever (tests)


def direct_updates():
    """UPDATEs written through ``wide_parts`` (no Python prologue), ever (tests)."""
    return _direct


cdef tuple _wide_core(rib, table, store, Py_ssize_t o_store, fs, seq, Py_ssize_t n, list ids,
                      Py_ssize_t *ats, attrs, bint track):
    """``announce_wide``'s two passes over ``seq`` (``n`` prefixes as the store's
    keys), ``ids`` their path ids (None: all 0), ``ats`` their places in the
    store's arrays (-1: not there). ``store``: ``table.store``; ``o_store``: 0
    when its slots are read at their offsets, -1 through getattr.

    ``track`` (an IPv4 table's): pass 1 also notes each held prefix's exact
    identity (its place in the arrays, or its delta key) and, on one seen
    before, returns ``_repeated`` with nothing written: pass 1 reads every entry
    before pass 2 writes, so a prefix twice would be read twice as it was
    (counted twice when new to the router, one of two ADD-PATH ids lost);
    ``wide_parts`` then applies the UPDATE in runs without repeats. Noted here,
    where the identities are at hand, it cost less than a check of the keys
    first (``ribd._repeats``: ~48 instructions a key, 2.8% of 18 routers'
    interleaved load). Prefixes new to the store go to the general loop, which
    takes a prefix twice in its stride."""
    cdef Py_ssize_t i, e, r, k, nrows = 0, nents = 0, at, n_values = 0, j
    cdef Py_ssize_t slot, stale, main_r = -1, main_count = 0, last_r = -1
    cdef Py_ssize_t d_prefixes = 0, d_paths = 0, d_stale = 0, added_paths
    cdef Py_ssize_t stack_i[STACK]
    cdef Py_ssize_t stack_r[STACK]
    cdef Py_ssize_t stack_c[STACK]
    cdef Py_ssize_t *ent_i = stack_i
    cdef Py_ssize_t *ent_r = stack_r
    cdef Py_ssize_t *counts = stack_c
    # Each prefix's key in an IPv4 delta (``key_of``), made once in pass 1 for
    # its read and kept for pass 2's write: made twice, the key and its int
    # read were 6.5% of ``wide_parts`` for routers loading together (every
    # prefix in the delta; stop 38, wide4).
    cdef uint64_t stack_k[STACK]
    cdef uint64_t *dkeys = stack_k
    cdef bint int_delta
    # Per row: its plain and its cleared move (owned references).
    cdef PyObject *stack_mp[STACK]
    cdef PyObject *stack_mc[STACK]
    # Each held prefix's entry and the rows counted (first seen first): owned
    # references in C arrays, where two lists grew by appends (their reallocs
    # ~2% of the refresh under callgrind, stop 37, movewide). The reference
    # counts the rules below read are the same: one for each array slot.
    cdef PyObject *stack_e[STACK]
    cdef PyObject *stack_rw[STACK]
    cdef PyObject **ents = stack_e
    cdef PyObject **rows = stack_rw
    cdef Py_ssize_t ents_held = 0  # the entries whose references ``ents`` holds
    cdef PyObject **mv_plain = stack_mp
    cdef PyObject **mv_cleared = stack_mc
    cdef void *heap = NULL
    cdef Py_ssize_t o_fs = state_exact(fs)  # (0: its slots at their offsets)
    cdef PyObject **cells = NULL
    global _reused
    cdef PyObject *got
    cdef PyObject *old_cell
    cdef PyObject *old_p
    cdef PyObject *old_main = NULL  # the main row's value in ``slot`` before it was set in place (owned)
    cdef bint plain_fast, main_in_place = False
    cdef bint overlay, clear, main_clear
    cdef tuple row, over
    cdef dict by_id = None
    cdef uint64_t stack_seen[4 * STACK]  # (0: empty; else an identity, never 0)
    cdef uint64_t *seen = stack_seen
    cdef void *seen_heap = NULL
    cdef Py_ssize_t seen_mask = 0, h
    cdef uint64_t ident

    delta = get_at(store, _st_delta | o_store, "delta")
    entries = get_at(table, _ft_entries | table_exact(table), "_entries")
    if type(entries) is not dict or not is_delta(delta):
        raise TypeError("announce_wide: the table's intern dict or delta is not a dict/delta")
    int_delta = type(delta) is IntDelta
    changes = get_at(table, _ft_changes | table_exact(table), "changes")
    if type(changes) is not list:
        raise TypeError("announce_wide: the table's change log is not a list")
    slot = get_at(fs, _fs_slot | o_fs, "slot")
    stale_obj = get_at(fs, _fs_stale_slot | o_fs, "stale_slot")
    stale = -1 if stale_obj is None else stale_obj
    new_prefixes = None  # (made for the first prefix the store lacks: rare)
    if n > STACK:
        heap = PyMem_Malloc(3 * n * sizeof(Py_ssize_t) + 4 * n * sizeof(PyObject *) + n * sizeof(uint64_t))
        if heap == NULL:
            raise MemoryError()
        ent_i = <Py_ssize_t *>heap
        ent_r = ent_i + n
        counts = ent_r + n
        mv_plain = <PyObject **>(counts + n)
        mv_cleared = mv_plain + n
        ents = mv_cleared + n
        rows = ents + n
        dkeys = <uint64_t *>(rows + n)
    if track and n > 1:
        seen_mask = 4
        while seen_mask < 2 * n:
            seen_mask <<= 1
        if seen_mask > 4 * STACK:
            seen_heap = PyMem_Malloc(seen_mask * sizeof(uint64_t))
            if seen_heap == NULL:
                PyMem_Free(heap)
                raise MemoryError()
            seen = <uint64_t *>seen_heap
        memset(seen, 0, seen_mask * sizeof(uint64_t))
        seen_mask -= 1
    try:
        values = get_at(store, _st_values | o_store, "values")
        if len(values):
            store_cells(values, &cells, &n_values)  # (``values`` holds the array meanwhile)
        # Pass 1: each prefix's entry; per row, how many of its prefixes are here.
        for i in range(n):
            prefix = <object>PySequence_Fast_GET_ITEM(seq, i)
            at = ats[i]
            if at >= 0:  # an index in the arrays
                if at >= n_values:
                    raise IndexError(f"announce_wide: index {at} past the store's {n_values} values")
                entry = <object>cells[at]
            elif int_delta:
                dkeys[i] = key_of(prefix)
                got = (<IntDelta>delta).get_c(dkeys[i])
                entry = <object>got if got != NULL else None
            else:
                got = delta_get(delta, prefix)
                entry = <object>got if got != NULL else None
            if entry is None:
                if new_prefixes is None:
                    new_prefixes = []
                    new_ids = []
                    new_found = []
                new_prefixes.append(prefix)
                new_ids.append(_zero if ids is None else <object>PyList_GET_ITEM(ids, i))
                new_found.append(at)
                continue
            if seen_mask:  # (a held prefix's identity: its place, or its delta key)
                ident = (<uint64_t>at << 1) | 1 if at >= 0 else dkeys[i] << 1
                h = <Py_ssize_t>((ident * _seen_mult) >> 40) & seen_mask
                while seen[h]:
                    if seen[h] == ident:
                        return _repeated  # (nothing written: the finally lets go)
                    h = (h + 1) & seen_mask
                seen[h] = ident
            if type(entry) is _overlay:
                row = get_at(entry, _row_at, "row")
            else:
                row = <tuple?>entry
            # The row's place in ``rows``: the last one's first (a set's
            # prefixes come together), then a scan, or a dict past a few.
            if last_r >= 0 and rows[last_r] == <PyObject *>row:
                r = last_r
            elif by_id is not None:
                r_obj = by_id.get(id(row))
                if r_obj is None:
                    r = nrows
                else:
                    r = r_obj
            else:
                r = nrows
                for k in range(nrows):
                    if rows[k] == <PyObject *>row:
                        r = k
                        break
            if r == nrows:
                Py_INCREF(row)
                rows[r] = <PyObject *>row
                counts[r] = 0
                mv_plain[r] = mv_cleared[r] = NULL
                nrows += 1
                if by_id is not None:
                    by_id[id(row)] = r
                elif nrows > 16:
                    by_id = {id(<object>rows[k]): k for k in range(nrows)}
            counts[r] += 1
            last_r = r
            ent_i[nents] = i
            ent_r[nents] = r
            Py_INCREF(entry)
            ents[nents] = <PyObject *>entry
            nents += 1
            ents_held = nents
        entry = None
        row = None
        # The main row: the first one with the most prefixes (``max`` of the counts).
        for r in range(nrows):
            if counts[r] > main_count:
                main_r, main_count = r, counts[r]
        main_clear = False
        if main_r >= 0 and stale >= 0:
            main_clear = _slot_of(<tuple>rows[main_r], stale) is not None
        diffs = None  # per row, ``_rejoin``'s compared slots (c[2]); made when used
        intern = None  # table.intern, for the Python helpers (made when used)
        # Pass 2: the writes.
        plain_fast = ids is None and stale < 0 and main_r >= 0
        if plain_fast and _rows_in_place:
            # The main row held by this UPDATE's prefixes alone (a set's prefixes
            # come together, router after router): its slot set in place, where a
            # moved row took a reference to each of its 16-64 items and freeing
            # the old one dropped them, a cache miss on each (~5% of routers 1-63
            # loading together, stop 55). The same state as a moved row: the
            # prefixes hold the same values.
            main_in_place = _set_in_place(rows, main_r, ents, ent_i, ent_r, nents, counts[main_r], slot,
                                          attrs, ats, dkeys, int_delta, seq, mv_plain, &old_main)
        for e in range(nents):
            i = ent_i[e]
            r = ent_r[e]
            if plain_fast and r == main_r and Py_TYPE(ents[e]) != <PyTypeObject *>_overlay:
                # The common write, on borrowed references: a plain row's prefix,
                # path id 0, no stale slot, on the main row (which moves); the
                # same steps as below (``_new_value``'s first case, ``_move``,
                # the write, the log), without an object variable's reference
                # counting a step (~40% of this loop's own cost, stop 38, wide4).
                # An ADD-PATH set in the slot takes the general steps.
                old_p = old_main if main_in_place else _slot_ptr(rows[r], slot)
                if old_p == <PyObject *>None:
                    d_prefixes += 1
                    d_paths += 1
                elif Py_TYPE(old_p) == <PyTypeObject *>_path_attributes:
                    if old_p == <PyObject *>attrs:
                        continue
                else:
                    old_p = NULL
                if old_p != NULL:
                    if main_in_place:  # its place in the store holds the row set
                        _list_append(changes, PySequence_Fast_GET_ITEM(seq, i))
                        continue
                    if mv_plain[r] == NULL:
                        _move(mv_plain, r, <tuple>rows[r], slot, attrs, stale, False)
                    at = ats[i]
                    if at >= 0:
                        old_cell = cells[at]
                        Py_INCREF(<object>mv_plain[r])
                        cells[at] = mv_plain[r]
                        Py_XDECREF(old_cell)
                    elif int_delta:
                        (<IntDelta>delta).set_c(dkeys[i], <object>mv_plain[r])
                    else:
                        delta_set(delta, <object>PySequence_Fast_GET_ITEM(seq, i), <object>mv_plain[r])
                    _list_append(changes, PySequence_Fast_GET_ITEM(seq, i))
                    continue
            entry = <object>ents[e]
            row = <tuple>rows[r]
            overlay = type(entry) is _overlay
            over = None
            if overlay:
                over = get_at(entry, _over_at_, "over")
                j = _over_at(over, slot)
            if overlay and j >= 0:
                old = <object>PyTuple_GET_ITEM(over, j + 1)
            elif main_in_place and r == main_r:
                old = <object>old_main  # (the row set in place: its value before)
            else:
                old = _slot_of(row, slot)
            path_id = _zero if ids is None else <object>PyList_GET_ITEM(ids, i)
            new = _new_value(rib, old, path_id == 0, path_id, attrs, &added_paths, fs)
            if old is None:
                d_prefixes += 1
            d_paths += added_paths
            clear = False
            if stale >= 0 and _value_in(over, row, stale) is not None:  # (``entries.value_at``)
                # The route is back: its stale copy is no longer needed.
                d_stale += 1
                clear = True
            if old is new and not clear:
                continue
            if new is not attrs:  # ADD-PATH
                if intern is None:
                    intern = table.intern
                new_entry = _with_values(entry, {slot: new, stale: None} if clear else {slot: new}, intern)
            else:
                if r == main_r and clear == main_clear:  # most prefixes: the main row moves
                    moved = _move(mv_cleared if clear else mv_plain, r, row, slot, attrs, stale, clear)
                else:
                    moved = None
                    if main_count > 1 and diffs is None:
                        diffs = [None] * nrows
                    if main_count > 1 and diffs[r] is not False:
                        main_moved = _move(mv_cleared if main_clear else mv_plain, main_r,
                                           <tuple>rows[main_r], slot, attrs, stale, main_clear)
                        new_entry = rejoin_c(entry, over, row, slot, attrs, stale if clear else -1, diffs, r, <tuple>main_moved)
                        main_moved = None
                        if new_entry is not None:
                            moved = _rejoined
                    if moved is None:  # the row moves
                        moved = _move(mv_cleared if clear else mv_plain, r, row, slot, attrs, stale, clear)
                if moved is _rejoined:
                    pass  # new_entry: on the main row
                elif overlay:
                    # The moved row differs from the old one in ``slot`` (and the
                    # emptied stale slot) only: the prefix's other own values stand.
                    j = _over_at(over, slot)
                    if j >= 0:
                        over = _without(over, j)
                    if clear:
                        j = _over_at(over, stale)
                        if j >= 0:
                            over = _without(over, j)
                    if not PyTuple_GET_SIZE(over):
                        new_entry = moved
                    elif _fields_at_offsets and Py_REFCNT(entry) == 3:
                        # Held by the store, ``ents`` and ``entry`` only: no reader
                        # holds it, so it is updated in place (an Overlay is never
                        # interned; identity is equality), not made anew and freed.
                        set_at(entry, _row_at, "row", moved)
                        if over is not get_at(entry, _over_at_, "over"):
                            set_at(entry, _over_at_, "over", over)
                        new_entry = entry
                        _reused += 1
                    else:
                        new_entry = _overlay(moved, over)
                else:
                    new_entry = moved
                moved = None
            prefix = <object>PySequence_Fast_GET_ITEM(seq, i)
            at = ats[i]
            if at >= 0:  # entry was not None: no hole filled
                old_cell = cells[at]
                Py_INCREF(new_entry)
                cells[at] = <PyObject *>new_entry
                Py_XDECREF(old_cell)
            elif int_delta:
                (<IntDelta>delta).set_c(dkeys[i], new_entry)  # (its key from pass 1)
            else:
                delta_set(delta, prefix, new_entry)  # (Delta.insert is dict.__setitem__)
            PyList_Append(changes, prefix)
            new_entry = None
        if d_prefixes:
            add_at(fs, _fs_prefixes | o_fs, "prefixes", d_prefixes)
        if d_paths:
            add_at(fs, _fs_paths | o_fs, "paths", d_paths)
        if d_stale:
            add_at(fs, _fs_stale_prefixes | o_fs, "stale_prefixes", -d_stale)
        # Interned rows no prefix holds any more leave the intern dict now (see
        # Rib._announce); a row never interned goes with its last reference.
        ents_held = 0
        for e in range(nents):
            Py_XDECREF(ents[e])
        entry = new_entry = over = old = new = None
        row = None
        for r in range(nrows):
            candidate = <object>rows[r]
            # References: the dict's key and value, ``rows``, ``candidate``: an
            # interned row nothing else holds has exactly 4 (fewer: not interned,
            # no probe). A row this UPDATE moved to stays (the Python loop's
            # ``moves`` holds it then).
            if Py_REFCNT(candidate) == 4 and not _holds(mv_plain, mv_cleared, <PyObject *>candidate, nrows):
                if _hash_known:  # (sets hashed without a call)
                    wide_drop_known(entries, candidate, wide_tuple_hash(candidate))
                else:
                    wide_drop_if_interned(entries, candidate)
            candidate = None
    finally:
        Py_XDECREF(old_main)
        for e in range(ents_held):
            Py_XDECREF(ents[e])
        for r in range(nrows):
            Py_XDECREF(rows[r])
            Py_XDECREF(mv_plain[r])
            Py_XDECREF(mv_cleared[r])
        if heap != NULL:
            PyMem_Free(heap)
        if seen_heap != NULL:
            PyMem_Free(seen_heap)
    if new_prefixes is None:
        return _nothing_new
    return new_prefixes, new_ids, new_found


include "_wide_parts.pxi"
