# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled twin of ``Rib.apply_many`` (ribd.rib): one ExaBGP line's events
applied under ``rib.lock``, the two short paths of a table load's UPDATEs in C.

While a table streams in before the store's first merge (no prefix in the
arrays yet, no ADD-PATH), nearly every UPDATE takes one of ``Rib._announce``'s
two short paths: all its prefixes are new to the delta (the first router), or
all hold one entry another router's UPDATE left and ``Rib._announce_shared``
writes this router's path into it for all of them (every router after the
first). Those two are done here in C, on the same objects with the same dict
and list calls in the same order: one probe of the delta per prefix, then the
writes, the counters and the change log as the Python code leaves them.
An UPDATE of the delta neither takes (partly held, held by several entries, a
stale slot, a prefix twice) goes from here to the compiled general loop as
``Rib._announce`` would send it (``_announce_rest``); wide entries and prefixes
in the arrays to their compiled loops too. ADD-PATH and anything else goes to
``rib._announce`` unchanged before anything was written, and every other event
to ``rib._apply``. callgrind put the Python version's bytecode at ~9k
instructions a line with two routers, of ~32k for applying it.

``Rib.apply_many`` in ribd.rib stays the reference and the fallback where this
was not built (tests/ribd/test_apply_compiled.py compares them).
"""

from ribd._announce cimport _with_slot, general_loop
from ribd._intdelta cimport IntDelta, PyLong_CheckExact, delta_get, delta_set, is_delta, key_of, ribd_key4_digits
from ribd._intdelta6 cimport IntDelta6
from ribd._counters cimport add_at, more_than, plus
from ribd._repeats cimport first_repeat
from ribd._slots cimport dict_version, get_at, set_at, slots_member_offset, slots_writable_offset
from ribd._wide cimport wide_parts

from cpython.dict cimport PyDict_SetItem, PyDict_Size
from cpython.list cimport PyList_Append
from cpython.ref cimport Py_INCREF, Py_REFCNT, Py_XDECREF, PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.sequence cimport PySequence_Fast, PySequence_Fast_GET_ITEM, PySequence_Fast_GET_SIZE
from libc.stdint cimport uint64_t

from itertools import repeat

import ribd.table as _table_module
from ribd.entries import OVERLAY_SLOTS
from ribd.store import PrefixStore
from ribd.table import FamilyState, FamilyTable, RouterRib
from ribd.events import RoutesAnnounced, UpdateTime
from ribd.ribload import entry_of, insert_new
from ribd._announce import announce_loop as _announce_loop
from ribd._wide import announce_wide as _compiled_wide


cdef extern from "Python.h":
    PyObject *PyDict_GetItemWithError(object d, object key) except? NULL
    PyObject *PyDict_SetDefault(object d, object key, object default) except NULL
    int PyDict_DelItem(object d, object key) except -1


cdef object _announced = RoutesAnnounced
cdef object _all_in_delta = repeat(-2)  # ``found`` for the general loop: every prefix in the delta
cdef object _update_time = UpdateTime
cdef Py_ssize_t _overlay_slots = OVERLAY_SLOTS
cdef object _entry_of = entry_of
cdef object _insert_new = insert_new
cdef object _rib_module = None  # ribd.rib, at the first call (it imports this module)
cdef dict _rib_dict = None  # its namespace: the loop switches read there (tests set them)
cdef object _rib_class = None
cdef Py_ssize_t _rib_tables = -1  # Rib's ``tables`` slot's offset (-1: getattr)
cdef Py_ssize_t _rib_shared_writes = -1  # and its ``shared_writes``
cdef dict _table_dict = _table_module.__dict__  # ribd.table's namespace (MAX_CHANGE_LOG)
# A late router's UPDATE read ~7 attributes of the RIB, its router, the family's
# table and store through getattr here (1.3% of the 16 routers' refresh, stop 35,
# late3): a router's ``families``, the store's ``keys`` and the RIB's fields
# (stop 57) are read at their slots' offsets, each only for objects of exactly
# these types (getattr otherwise).
cdef object _router_rib = RouterRib
cdef Py_ssize_t _rr_families = slots_member_offset(RouterRib.__dict__["families"])
# The rest of a load's UPDATE's reads and writes (stop 36, loadreads): the store's
# keys and delta, the router's family state (slot, stale slot, its counts) at
# their slots' offsets (the ones ribd._wide reads them at), and the table's
# fields at theirs (stop 57: each lookup by name in its dict cost ~110
# instructions, ten or more an UPDATE).
include "_state_offsets.pxi"


cdef inline int _fs_add(fs, Py_ssize_t offset, str name, Py_ssize_t n) except -1:
    """``fs.<name> += n``, at ``offset`` when ``fs`` is exactly a ``FamilyState``."""
    return add_at(fs, offset | state_exact(fs), name, n)


cdef object _rib():
    """ribd.rib (it imports this module: looked up at the first call)."""
    global _rib_module, _rib_dict, _rib_class, _rib_tables, _rib_shared_writes
    if _rib_module is None:
        import ribd.rib

        _rib_dict = ribd.rib.__dict__
        _rib_class = ribd.rib.Rib
        _rib_tables = slots_writable_offset(ribd.rib.Rib.__dict__["tables"])
        _rib_shared_writes = slots_writable_offset(ribd.rib.Rib.__dict__["shared_writes"])
        _rib_module = ribd.rib
    return _rib_module


# The module switches an UPDATE reads (``ribd.rib``'s ANNOUNCE_LOOP,
# announce_wide, SHARED_AT_LEAST; ``ribd.table``'s MAX_CHANGE_LOG), each kept
# with its module dict's version tag when read: read again only after that dict
# changed (tests replace them), else the value kept. One to three lookups by
# name an UPDATE, ~120 instructions each (callgrind, stop 56).
ctypedef struct _Kept:
    unsigned long long version  # 0: nothing kept
    PyObject *value  # a strong reference

cdef enum:
    K_LOOP, K_WIDE, K_SHARED, K_MAX_LOG, K_N

cdef _Kept _kept[K_N]


cdef inline object _switch_kept(int k, object module, dict namespace, str name):
    """``module.<name>`` (``ribd.rib`` or ``ribd.table``; ``namespace`` its
    dict) as kept in ``_kept[k]`` while that dict is unchanged."""
    cdef unsigned long long version = dict_version(namespace)
    cdef PyObject *old
    if version != 0 and _kept[k].version == version:
        return <object>_kept[k].value
    value = getattr(module, name)
    old = _kept[k].value
    Py_INCREF(value)
    _kept[k].value = <PyObject *>value
    _kept[k].version = version
    Py_XDECREF(old)
    return value


def offsets_in_use():
    """Whether ``announce_parts`` reads its fields at their offsets (tests): a
    router's families, a store's keys, a table's and the RIB's fields."""
    _rib()
    return (
        min(_rr_families, _st_keys, _st_delta, _fs_slot, _fs_stale_slot, _fs_prefixes, _fs_paths, _fs_writes) >= 0
        and TABLE_AT_OFFSETS
        and min(_rib_tables, _rib_shared_writes) >= 0
    )


def apply_many(rib, events):
    """``Rib.apply_many(rib, events)``, compiled: the events of one ExaBGP line, atomically."""
    with rib.lock:
        allowed = rib.neighbors
        routers = rib.routers
        for event in events:
            kind = type(event)
            if kind is _announced:  # most events
                if allowed is not None and event.neighbor not in allowed:
                    rib.unknown_neighbor_events += 1
                    continue
                if not _announce_load(rib, event):
                    rib._announce(event)
            elif kind is _update_time:  # one per raw UPDATE
                if allowed is not None and event.neighbor not in allowed:
                    rib.unknown_neighbor_events += 1
                    continue
                r = routers.get(event.neighbor) or rib.router(event.neighbor)
                r.last_update = event.time
            else:
                rib._apply(event)


def announce_load(rib, ev):
    """``_announce_load`` for tests: whether a short path took ``ev`` (False:
    nothing was written, ``rib._announce`` must apply it). The caller holds the lock."""
    return _announce_load(rib, ev)


cdef bint _announce_load(rib, ev) except -1:
    """``Rib._announce``'s two short paths of a table load, or False (nothing written)."""
    if ev.path_ids is not None:
        return False
    neighbor = ev.neighbor
    r = rib.routers.get(neighbor) or rib.router(neighbor)
    family = ev.family
    # The event's texts as the store's keys (an IPv4 store's are ints: ribd.store).
    prefixes = rib.tables[family].store.keys_of(ev.prefixes)
    return announce_parts(rib, r, family, prefixes, ev.attributes)


cdef bint announce_parts(rib, r, family, prefixes, attrs) except -1:
    """``_announce_load`` of an UPDATE given by its parts (no path ids): the
    router's ``RouterRib`` ``r``, the family, the prefixes as the store's keys
    (``PrefixStore.keys_of``) and the set. Also the
    write of ``ribd._loadline``, which makes no event for a table load's lines."""
    cdef Py_ssize_t n, i, missing = 0, slot, width
    cdef PyObject *found
    cdef PyObject *first = NULL
    cdef bint same = True, wide
    cdef Py_ssize_t ft, o_fs
    fs = get_at(r, _rr_families if type(r) is _router_rib else -1, "families")[family]
    o_fs = state_exact(fs)
    if may_cross_limit(fs, o_fs, len(prefixes)):
        return False  # (``Rib._announce`` refuses the prefixes past the limit)
    _rib()
    table = get_at(rib, _rib_tables if type(rib) is _rib_class else -1, "tables")[family]
    ft = table_exact(table)
    store = get_at(table, _ft_store | ft, "store")
    wide = get_at(table, _ft_next_slot | ft, "_next_slot") >= _overlay_slots
    if wide or len(get_at(store, _st_keys | store_exact(store), "keys")):
        # Prefixes in the arrays (every router after a merge): the general loop,
        # compiled (ribd._announce), as ``Rib._announce`` enters it. Wide entries
        # take ``wide_parts`` with the arrays empty too: routers that come up
        # together load before the first merge (merges wait for a quiet store).
        loop = _switch_kept(K_LOOP, _rib_module, _rib_dict, "ANNOUNCE_LOOP")
        if loop is None:
            return False  # (the Python loop: tests compare it)
        if wide:
            # Wide entries: ``announce_wide``'s passes from the keys, in C
            # (ribd._wide), if that is the one in use; else ``Rib._announce``.
            if loop is not _announce_loop or _switch_kept(K_WIDE, _rib_module, _rib_dict, "announce_wide") is not _compiled_wide:
                return False
            wide_parts(rib, table, fs, prefixes, None, attrs, len(prefixes))
            return True
        if loop is _announce_loop:  # (the indexes in the arrays: searched there)
            general_loop(rib, table, fs, prefixes, None, None, attrs, None, 0, len(prefixes))
        else:
            loop(rib, table, fs, prefixes, None, store.find_many(prefixes), attrs, None, 0, len(prefixes))
        return True
    delta = get_at(store, _st_delta | store_exact(store), "delta")
    if not is_delta(delta):
        return False
    seq = PySequence_Fast(prefixes, "prefixes")
    n = PySequence_Fast_GET_SIZE(seq)
    if n == 0:
        return False
    slot = get_at(fs, _fs_slot | o_fs, "slot")
    entries = get_at(table, _ft_entries | ft, "_entries")
    changes = get_at(table, _ft_changes | ft, "changes")
    if not isinstance(changes, list) or not isinstance(entries, dict):
        return False
    key = <object>PySequence_Fast_GET_ITEM(seq, 0)
    found = delta_get(delta, key)
    if found == NULL:
        # The first prefix is new: most likely all are (the first router's load).
        if _insert_all_new(fs, table, seq, n, slot, attrs, delta, entries, changes):
            return True
        return _announce_rest(rib, table, fs, seq, n, slot, attrs, delta, entries, changes, -1)
    # One probe of the delta per prefix (``ribload.probe``), noting whether every
    # prefix found holds one object (``ribload.one_entry``'s first half).
    for i in range(n):
        if i:
            found = delta_get(delta, <object>PySequence_Fast_GET_ITEM(seq, i))
        if found == NULL or <object>found is None:
            missing += 1
        elif first == NULL:
            first = found
        elif found != first:
            same = False
    if missing:
        return _announce_rest(rib, table, fs, seq, n, slot, attrs, delta, entries, changes, missing)
    else:
        # ``Rib._announce_shared``: its conditions, each checked before any write.
        # Any one unmet: the general loop (``_announce_rest``), as there.
        if get_at(fs, _fs_stale_slot | o_fs, "stale_slot") is not None or not same:
            return _announce_rest(rib, table, fs, seq, n, slot, attrs, delta, entries, changes, 0)
        if n < _switch_kept(K_SHARED, _rib_module, _rib_dict, "SHARED_AT_LEAST"):  # (wide tables took wide_parts above)
            return _announce_rest(rib, table, fs, seq, n, slot, attrs, delta, entries, changes, 0)
        # (``first`` is borrowed: no reference to the held entry is taken before the
        # general loop could be called, whose check whether the entry it replaces
        # is still held elsewhere counts references)
        if type(<object>first) is not tuple:
            return False
        if n > 1 and not _distinct_keys(seq, n):
            # a prefix twice: it would count twice
            return _announce_rest(rib, table, fs, seq, n, slot, attrs, delta, entries, changes, 0)
        width = PyTuple_GET_SIZE(<object>first)
        if slot < width and <object>PyTuple_GET_ITEM(<object>first, slot) is not None:
            return _announce_rest(rib, table, fs, seq, n, slot, attrs, delta, entries, changes, 0)
        entry = <object>first
        # (the entry with this router's slot set, widened with None: built in C
        # as the general loop builds it, where unpacking two slices took a list,
        # two tuples and a generic extend, ~1.5% of four routers loading together)
        new_entry = _with_slot(<tuple>entry, slot, attrs, -1)
        new_entry = <object>PyDict_SetDefault(entries, new_entry, new_entry)
        for i in range(n):
            prefix = <object>PySequence_Fast_GET_ITEM(seq, i)
            delta_set(delta, prefix, new_entry)
            PyList_Append(changes, prefix)
        _fs_add(fs, _fs_prefixes, "prefixes", n)
        add_at(rib, _rib_shared_writes if type(rib) is _rib_class else -1, "shared_writes", n)
        _fs_add(fs, _fs_paths, "paths", n)
        # The replaced entry leaves the intern dict if no prefix holds it any more
        # (see Rib._announce): references then are the dict's key and value and
        # ``entry`` here (the Python code's 4 count getrefcount's argument too).
        if Py_REFCNT(entry) <= 3:
            found = PyDict_GetItemWithError(entries, entry)
            if found != NULL and <object>found is entry:
                PyDict_DelItem(entries, entry)
    _tally(fs, table, n, slot, changes)
    return True


cdef bint _announce_rest(
    rib, table, fs, seq, Py_ssize_t n, Py_ssize_t slot, attrs, delta, dict entries, list changes, Py_ssize_t missing
) except -1:
    """What ``Rib._announce`` does with an UPDATE of the delta (arrays empty, narrow
    entries, no path ids) that neither short path took, done from here: its
    prefixes the delta lacks get the entry of this one path (``insert_new``),
    the others go to the general loop, compiled (``ribd._announce``) with that
    entry and count, in the order and with the counts ``Rib._announce`` leaves.
    ``missing``: how many prefixes the delta lacks (-1: not counted yet).

    Until stop 57 these UPDATEs went back to ``Rib._announce`` in Python, which
    probed the delta again and called the same loop: its frame, attribute reads
    and the ``repeat``/``zip`` it built took ~8% of four synthetic routers
    loading together (callgrind), a fifth of whose UPDATEs come here. False
    (nothing written) where the Python loop is in use (tests compare it)."""
    cdef Py_ssize_t i, added = 0
    cdef PyObject *got
    loop = _switch_kept(K_LOOP, _rib_module, _rib_dict, "ANNOUNCE_LOOP")
    if loop is None:
        return False
    fresh = None
    held = seq
    if missing:
        unheld = []
        held = []
        for i in range(n):
            prefix = <object>PySequence_Fast_GET_ITEM(seq, i)
            got = delta_get(delta, prefix)
            PyList_Append(unheld if got == NULL or <object>got is None else held, prefix)
        if unheld:
            # (``Rib._announce``: the entry interned whenever a prefix is new; a
            # prefix twice in the UPDATE is added once, logged twice)
            fresh = _entry_of(slot, attrs)
            fresh = <object>PyDict_SetDefault(entries, fresh, fresh)
            added = _insert_new(delta, unheld, fresh, changes)
        if not held:
            _fs_add(fs, _fs_prefixes, "prefixes", added)
            _fs_add(fs, _fs_paths, "paths", added)
            _tally(fs, table, n, slot, changes)
            return True
    if loop is _announce_loop:
        general_loop(rib, table, fs, held, None, _all_in_delta, attrs, fresh, added, n)
    else:
        loop(rib, table, fs, held, None, _all_in_delta, attrs, fresh, added, n)
    return True


cdef enum:
    DISTINCT_KEYS = 64  # ``_distinct_keys`` compares at most this many pair by pair


cdef bint _distinct_keys(seq, Py_ssize_t n) except -1:
    """Whether the ``n`` prefix keys of ``seq`` are distinct (``len(set(seq))
    == n``). An UPDATE's few keys, ints below 2**60 (every IPv4 key), are
    compared pair by pair as integers: building and freeing a set of them took
    ~0.7% of four routers loading together. Any other key, or more keys:
    ``ribd._repeats`` (a set was quadratic in crafted IPv6 keys: see there)."""
    cdef uint64_t keys[DISTINCT_KEYS]
    cdef Py_ssize_t j, k
    cdef bint small = n <= DISTINCT_KEYS
    if small:
        for j in range(n):
            o = <object>PySequence_Fast_GET_ITEM(seq, j)
            keys[j] = ribd_key4_digits(o) if PyLong_CheckExact(o) else 0
            if keys[j] == 0:  # (no key is 0: another kind of key)
                small = False
                break
    if not small:
        return first_repeat(seq, 0, n) == n
    for j in range(1, n):
        for k in range(j):
            if keys[j] == keys[k]:
                return False
    return True


cdef bint _insert_all_new(fs, table, seq, Py_ssize_t n, Py_ssize_t slot, attrs, delta, dict entries, list changes) except -1:
    """Every prefix new to the delta (its first one is): the entry of this one
    path, built and interned once, for all of them. One walk of the delta per
    prefix (``PyDict_SetDefault``, its size telling whether the key was new)
    where probe-then-insert took two. A prefix found held, or twice, undoes the
    keys added and returns False: ``Rib._announce`` then finds what the
    reference finds (``fresh`` interned, as it interns it whenever a prefix is new)."""
    cdef Py_ssize_t i, j, size
    cdef IntDelta table_delta
    cdef IntDelta6 table6
    fresh = _entry_of(slot, attrs)
    fresh = <object>PyDict_SetDefault(entries, fresh, fresh)  # (a borrowed reference)
    if type(delta) is IntDelta:  # (an IPv4 store's: one probe and insert per prefix, in C)
        table_delta = <IntDelta>delta
        i = 0
        try:
            while i < n:
                if not table_delta.add_c(key_of(<object>PySequence_Fast_GET_ITEM(seq, i)), fresh):
                    break  # held already, or this UPDATE's twice
                i += 1
        except BaseException:
            _undo(table_delta, seq, i)  # (a key not an int: nothing left written)
            raise
        if i < n:
            _undo(table_delta, seq, i)
            return False
        return _all_added(fs, table, seq, n, slot, changes)
    if type(delta) is IntDelta6:  # (an IPv6 store's: the same, 129-bit keys)
        table6 = <IntDelta6>delta
        i = 0
        try:
            while i < n:
                if not table6.add_c(<object>PySequence_Fast_GET_ITEM(seq, i), fresh):
                    break
                i += 1
        except BaseException:
            _undo6(table6, seq, i)
            raise
        if i < n:
            _undo6(table6, seq, i)
            return False
        return _all_added(fs, table, seq, n, slot, changes)
    size = PyDict_Size(delta)
    for i in range(n):
        PyDict_SetDefault(delta, <object>PySequence_Fast_GET_ITEM(seq, i), fresh)
        if PyDict_Size(delta) == size:  # held already, or this UPDATE's twice
            for j in range(i):  # (the keys added last: Delta's length count holds)
                PyDict_DelItem(delta, <object>PySequence_Fast_GET_ITEM(seq, j))
            return False
        size += 1
    return _all_added(fs, table, seq, n, slot, changes)


cdef int _undo(IntDelta delta, seq, Py_ssize_t added) except -1:
    """Remove the first ``added`` keys of ``seq`` (the keys added last)."""
    cdef Py_ssize_t j
    for j in range(added):
        delta.del_c(key_of(<object>PySequence_Fast_GET_ITEM(seq, j)))
    return 0


cdef int _undo6(IntDelta6 delta, seq, Py_ssize_t added) except -1:
    """``_undo`` of an IPv6 store's table."""
    cdef Py_ssize_t j
    for j in range(added):
        delta.del_c(<object>PySequence_Fast_GET_ITEM(seq, j))
    return 0


cdef bint _all_added(fs, table, seq, Py_ssize_t n, Py_ssize_t slot, list changes) except -1:
    """The log and counts of ``_insert_all_new``, every prefix added."""
    cdef Py_ssize_t i
    for i in range(n):
        PyList_Append(changes, <object>PySequence_Fast_GET_ITEM(seq, i))
    _fs_add(fs, _fs_prefixes, "prefixes", n)
    _fs_add(fs, _fs_paths, "paths", n)
    _tally(fs, table, n, slot, changes)
    return True


cdef int _tally(fs, table, Py_ssize_t n, Py_ssize_t slot, list changes) except -1:
    """``tally_update`` for ``n`` prefixes written, each counted once on both sides."""
    return tally_update(table, table_exact(table), fs, state_exact(fs),
                        slot, n, n, changes,
                        _switch_kept(K_MAX_LOG, _table_module, _table_dict, "MAX_CHANGE_LOG"))
