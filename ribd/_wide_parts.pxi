# Included by ribd/_wide.pyx: a wide table's UPDATE from its entry points to
# ``_wide_core`` and back: the prefixes' places in the store's arrays searched
# (``_core_at``), the delta keys converted once (``_delta_keys``), and the
# tally ``wide_parts`` writes after the two passes, in C integers.

def announce_wide(rib, table, fs, prefixes, ids, found, attrs):
    """``ribd.entries.announce_wide(rib, table, fs, prefixes, ids, found, attrs)``,
    compiled: returns the prefixes the store lacks (prefixes, path ids, places
    found) for ``Rib._announce``'s own loop."""
    cdef Py_ssize_t n
    seq = PySequence_Fast(prefixes, "announce_wide: prefixes must be a sequence")
    n = PySequence_Fast_GET_SIZE(seq)
    if type(found) is not list:  # an iterator (repeat, map): one value per prefix
        found = list(_islice(found, n))
    if type(ids) is not list:
        ids = list(_islice(ids, n))
    if len(found) < n or len(ids) < n:
        raise ValueError("announce_wide: fewer places or path ids than prefixes")
    return _core_at(rib, table, fs, seq, n, ids, found, attrs, prefixes, False)


cdef tuple _core_at(rib, table, fs, seq, Py_ssize_t n, list ids, list found, attrs, prefixes, bint track):
    """``_wide_core`` with the places of ``seq``'s ``n`` prefixes in the store's
    arrays in a buffer this owns (on the stack up to STACK prefixes, the
    common UPDATE): taken from ``found`` when the caller has them
    (``announce_wide``), else searched in the store's keys here, as
    ``ribd._announce`` does (``_find_ints`` for IPv4 int keys, else
    ``PrefixStore.find_many``: ``wide_parts``)."""
    cdef Py_ssize_t i, o_store
    cdef Py_ssize_t stack_at[STACK]
    cdef Py_ssize_t *ats = stack_at
    store = get_at(table, _ft_store | table_exact(table), "store")
    o_store = store_exact(store)  # (0: its slots at their offsets)
    if n > STACK:
        ats = <Py_ssize_t *>PyMem_Malloc(n * sizeof(Py_ssize_t))
        if ats == NULL:
            raise MemoryError()
    try:
        if found is not None:
            for i in range(n):
                ats[i] = found[i]
        elif n:
            keys = get_at(store, _st_keys | o_store, "keys")
            if not len(keys):
                for i in range(n):
                    ats[i] = -1
            elif not (get_at(store, _st_int_keys | o_store, "int_keys") and _find_ints(keys, seq, n, ats)):
                places = store.find_many(prefixes)
                for i in range(n):
                    ats[i] = places[i]
        return _wide_core(rib, table, store, o_store, fs, seq, n, ids, ats, attrs, track)
    finally:
        if ats != stack_at:
            PyMem_Free(ats)


cdef int _in_runs(rib, table, fs, seq, Py_ssize_t n, ids, attrs) except -1:
    """``wide_parts`` of an UPDATE with a prefix twice: its runs without a
    repeat, in order, each one UPDATE's worth.

    Why: ``_wide_core`` reads every prefix's entry in pass 1 and writes in pass
    2, so a prefix twice was read twice as it was before the UPDATE: a prefix
    new to the router was counted twice in ``fs.prefixes`` and ``fs.paths``
    (the count then never fell back to 0), and of two ADD-PATH ids in one
    UPDATE only the second was kept. Applied in runs, one after the other, as
    the narrow loop would. The runs are found by ``ribd._repeats`` (hash keys
    a peer cannot aim at)."""
    cdef Py_ssize_t start = 0, stop
    while start < n:
        stop = first_repeat(seq, start, n)
        run = [<object>PySequence_Fast_GET_ITEM(seq, k) for k in range(start, stop)]
        wide_parts(rib, table, fs, run, None if ids is None else ids[start:stop], attrs, stop - start)
        start = stop
    return 0


def wide_announce(rib, table, fs, prefixes, path_ids, attrs, Py_ssize_t count):
    """``wide_parts`` for ``Rib._announce``."""
    wide_parts(rib, table, fs, prefixes, path_ids, attrs, count)


cdef int wide_parts(rib, table, fs, prefixes, path_ids, attrs, Py_ssize_t count) except -1:
    """``Rib._announce`` of a wide table whose store's arrays hold keys, from the
    store's keys on: the prefixes searched in the packed keys here (as
    ``ribd._announce`` does; ``PrefixStore.find_many`` when they are not IPv4
    ints), the held ones written by ``announce_wide``'s two passes, the others
    (new to the store) and the tally by the general loop (``ribd._announce``),
    as ``Rib._announce``'s own loop and tally do them. ``path_ids``: None or one
    per prefix. No Python frame between the caller (``ribd._apply``,
    ``ribd._loadline`` or ``Rib._announce``) and the writes: for wide tables
    that prologue (``keys_of`` twice, ``find_many``'s numpy views, the
    counters) was about half of a late router's apply (BENCHMARKS.md, stop 30,
    wide1)."""
    cdef Py_ssize_t n, o_fs = state_exact(fs)  # (0: its slots at their offsets)
    cdef Py_ssize_t ft = table_exact(table)  # (0: its slots at their offsets)
    cdef PyObject *most
    global _direct
    seq = PySequence_Fast(prefixes, "announce_wide: prefixes must be a sequence")
    n = PySequence_Fast_GET_SIZE(seq)
    ids = None
    if path_ids is not None:
        ids = list(_islice(path_ids, n))
        if len(ids) < n:
            raise ValueError("announce_wide: fewer places or path ids than prefixes")
    # A prefix twice: IPv4's held prefixes are found by ``_wide_core``'s pass 1
    # (exact identities); IPv6 keys are checked first (``ribd._repeats``).
    store = get_at(table, _ft_store | ft, "store")
    track = type(get_at(store, _st_delta | store_exact(store), "delta")) is IntDelta
    if not track and n > 1 and first_repeat(seq, 0, n) < n:
        return _in_runs(rib, table, fs, seq, n, ids, attrs)
    done = _core_at(rib, table, fs, seq, n, ids, None, attrs, prefixes, track)
    if done is _repeated:
        return _in_runs(rib, table, fs, seq, n, ids, attrs)
    new_prefixes, new_ids, new_found = done
    _direct += 1
    if new_prefixes:  # new to the store: inserted, counted and tallied there
        general_loop(rib, table, fs, new_prefixes, None if ids is None else new_ids, new_found, attrs, None, 0, count)
        return 0
    # The general loop's tally with nothing added, without its set-up for no prefix.
    most = PyDict_GetItemWithError(_table_dict, "MAX_CHANGE_LOG")  # (a module getattr was ~0.6%)
    return tally_update(table, ft, fs, o_fs, get_at(fs, _fs_slot | o_fs, "slot"), count, count,
                        get_at(table, _ft_changes | ft, "changes"),
                        <object>most if most != NULL else _table_module.MAX_CHANGE_LOG)
