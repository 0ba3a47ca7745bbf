# Included by ribd/_intern.pyx (one module): the memo of cores met before, by
# the decoder's AS path object; its names are the module's.

# The core of a row met before, by the very AS path object (stop 38, internc).
# Routers loading together carry most paths in all of them, and the raw
# decoder hands the very path tuple for the same bytes (its memo), which the
# core keeps (``numbers_shared``). Yet each UPDATE hashed the core's seven
# fields (the path's tuples item by item), made the key's int, probed the
# big ``_cores`` dict (its slot, entry and key int cold) and compared the core
# found: ~1,200 instructions and three cold reads, to find the list found for
# another router a few UPDATEs before. A memo slot picked from the path's
# address names that list and its key.
#
# Taken only where it is what the reference finds: the slot's path is the
# row's path object and the list's core (kept alive by the memo) holds that
# very path, so the address cannot be another object's; the other fields
# compared as ``_core_is`` compares them; the interner is the one that entered
# it (its ``_memo_tag``, a reference held); the list has its core and a set.
# Such a list is ``_cores[key]``: an interner detaches a list only when the
# collection drops a core no set holds (``drop_unreferenced``, a list of one),
# and that list's slot is cleared then (``core_memo_forget``). A core under
# a digest (colliding hashes) is not entered. The memo holds references (the
# tag, the list, the key): per process 65,536 slots, 2 MB, and at most that
# many lists, keys and tags kept alive past their interner's use. (8,192 slots
# until stop 39: a router loaded after sixteen, its paths now the cores' own
# through the decoder's hand-back, found its entries retaken by the sixteen's;
# 2**16 took router 17's instructions a further -0.7%, late17.)
cdef enum:
    _CM_SLOTS = 1 << 16
# One entry a slot, its four words in one cache line (32 bytes).
cdef struct _CMEntry:
    PyObject *path  # the core's path (the list holds the core, the core the path)
    PyObject *tag  # the interner's ``_memo_tag`` (a reference)
    PyObject *held  # the core's list (a reference)
    PyObject *key  # its key in ``_cores`` (a reference)
cdef _CMEntry _cm[_CM_SLOTS]
cdef unsigned long long _cm_hits = 0, _cm_puts = 0


cdef inline size_t _cm_slot(object path) noexcept:
    """The core memo's slot for an AS path object: its address mixed."""
    cdef size_t u = <size_t><PyObject *>path
    u ^= u >> 17
    u *= <size_t>0xBF58476D1CE4E5B9ULL
    u ^= u >> 31
    return u & (_CM_SLOTS - 1)


cdef inline object _cm_get(size_t s, object tag, object path, object origin, object med,
                           object large, object ext, object atomic, object aggr):
    """The list ``_cores`` holds for the row's core (the core's fields these),
    when memo slot ``s`` names it; else None."""
    global _cm_hits
    if _cm[s].path != <PyObject *>path or _cm[s].tag != <PyObject *>tag or tag is None:
        return None
    held = <object>_cm[s].held
    if PyList_GET_SIZE(held) < 2:
        return None
    core = <object>PyList_GET_ITEM(held, 0)
    if type(core) is not _core_type or not _core_at:
        return None
    if _slot(core, _c_path, "as_path") is not path:
        return None
    if not _core_is7(core, path, origin, med, large, ext, atomic, aggr):
        return None
    _cm_hits += 1
    return held


cdef inline void _cm_put(size_t s, object tag, list held, object key, object path):
    """Name ``held`` (``_cores[key]``, its core's path ``path``) in slot ``s``."""
    global _cm_puts
    cdef PyObject *old_tag = _cm[s].tag
    cdef PyObject *old_list = _cm[s].held
    cdef PyObject *old_key = _cm[s].key
    Py_INCREF(tag)
    Py_INCREF(held)
    Py_INCREF(key)
    _cm[s].tag = <PyObject *>tag
    _cm[s].held = <PyObject *>held
    _cm[s].key = <PyObject *>key
    _cm[s].path = <PyObject *>path
    _cm_puts += 1
    # The old references last: their deallocation (a list, its core) runs no
    # Python code of ours, and the slot is whole by then.
    Py_XDECREF(old_tag)
    Py_XDECREF(old_list)
    Py_XDECREF(old_key)


cdef inline object _memo_tag(object self):
    """The interner's ``_memo_tag`` (None where the slot is empty: no memo)."""
    cdef PyObject *v
    if type(self) is _interner_type:
        v = slot_ptr(self, _at[I_MEMO])
        return None if v == NULL else <object>v
    return getattr(self, "_memo_tag", None)


def core_memo_forget(list held) -> bool:
    """Clear the core memo's slot naming ``held`` (a list the collection takes
    out of ``_cores``); True if one did. Called by ``drop_unreferenced``."""
    cdef size_t s
    cdef PyObject *old_tag
    cdef PyObject *old_list
    cdef PyObject *old_key
    if PyList_GET_SIZE(held) < 1:
        return False
    core = <object>PyList_GET_ITEM(held, 0)
    path = _slot(core, _c_path, "as_path") if type(core) is _core_type and _core_at else core.as_path
    s = _cm_slot(path)
    if _cm[s].held != <PyObject *>held:
        return False
    old_tag, old_list, old_key = _cm[s].tag, _cm[s].held, _cm[s].key
    _cm[s].tag = _cm[s].held = _cm[s].key = _cm[s].path = NULL
    Py_XDECREF(old_tag)
    Py_XDECREF(old_list)
    Py_XDECREF(old_key)
    return True


def core_memo_counts() -> tuple:
    """(hits, entries written) since the process started (tests, profiles)."""
    return _cm_hits, _cm_puts


def core_memo_lists() -> list:
    """The lists the core memo names now (tests)."""
    cdef size_t s
    return [<object>_cm[s].held for s in range(_CM_SLOTS) if _cm[s].held != NULL]


cdef inline void _cm_enter(size_t s, object tag, object held, object key, object path):
    """Enter ``held`` (``_cores[key]``) for rows carrying ``path``: only a list
    under an int key (not a digest) whose core keeps that very path object."""
    if type(key) is not int or type(held) is not list or PyList_GET_SIZE(held) < 1:
        return
    core = <object>PyList_GET_ITEM(held, 0)
    if type(core) is not _core_type or not _core_at:
        return
    if _slot(core, _c_path, "as_path") is not path:
        return
    if _cm[s].held == <PyObject *>held and _cm[s].tag == <PyObject *>tag:
        return  # named already
    _cm_put(s, tag, held, key, path)
