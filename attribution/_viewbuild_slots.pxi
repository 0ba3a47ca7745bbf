# Included by attribution/_viewbuild.pyx: one router's route per prefix
# (``attribution.viewbuild.read_family``).


cdef inline PyObject *_value_at(PyObject *entry, Py_ssize_t slot) except? NULL:
    """``Overlay.get(slot)`` of an Overlay, ``entry[slot]`` (past its end: none)
    of a tuple, borrowed from ``entry`` (NULL: no value there)."""
    cdef PyObject *row
    cdef PyObject *over
    cdef PyObject *v
    cdef Py_ssize_t j
    if entry == <PyObject *>None:
        return NULL
    if vb_type_is(entry, <PyObject *>_overlay):
        over = slot_ptr(<object>entry, _over_at_)
        row = slot_ptr(<object>entry, _row_at)
        if over == NULL or row == NULL:
            raise AttributeError("an Overlay without its row or its values")
        j = _over_at(<tuple?><object>over, slot)
        if j >= 0:
            v = PyTuple_GET_ITEM(<object>over, j + 1)
            return NULL if v == <PyObject *>None else v
    elif isinstance(<object>entry, tuple):
        row = entry
    else:
        raise TypeError(f"not an entry: {type(<object>entry).__name__}")
    if slot >= PyTuple_GET_SIZE(<tuple?><object>row):
        return NULL
    v = PyTuple_GET_ITEM(<object>row, slot)
    return NULL if v == <PyObject *>None else v


def slot_routes(list entries, Py_ssize_t slot, Py_ssize_t stale_slot, bint current_stale):
    """``viewbuild.py_slot_routes``: per entry (a prefix's, in store order), the
    router's best route in it (``ribd.reads.slot_value``: its slot, else its
    stale slot; ``stale_slot`` -1: none).

    Returns ``(set_of, path_ids, stale, attribute_sets)``: packed per entry
    (bytearrays of int32, -1 where the router has no route; uint32; bool) and
    the attribute sets numbered by identity in first-seen order. The sets'
    list is untracked by the cyclic collector when none of them is tracked
    (``gc=False`` sets: no cycle can pass through it). A view keeps that
    list (~110 k sets a router); tracked, the next young collection read
    each set's header, one cache miss per set and view: 0.23 s for the 63
    views built after routers 1-63's load (BENCHMARKS.md, stop 46). Read per
    distinct entry, the entries first numbered by identity (a hash probe per
    prefix), this was ~2x slower over wide entries (16 routers and more:
    nearly every prefix's entry its own), and a late router's build alone
    numbered a store every router shares (BENCHMARKS.md, stop 41, lone41).

    In chunks of ``YIELD_EVERY`` entries, two passes each: the values (the
    entries read in order, each one's Overlay values fetched ahead), then
    their sets (each fetched ahead) numbered. In one pass every prefix waited
    for its entry, then for its set: ~3x slower. The GIL is offered between
    chunks (``entries`` is the caller's copy, and no borrowed value is held
    across the offer: a writer may replace an Overlay's values meanwhile), so
    a lookup waits one chunk (~1 ms), not the whole loop.
    """
    cdef Py_ssize_t n = PyList_GET_SIZE(entries), i, start, stop
    cdef bytearray set_buf = bytearray(n * 4)
    cdef bytearray pid_buf = bytearray(n * 4)
    cdef bytearray stale_buf = bytearray(n)
    cdef int *set_of = <int *>(<char *>set_buf) if n else NULL
    cdef unsigned int *pids = <unsigned int *>(<char *>pid_buf) if n else NULL
    cdef char *stale_of = <char *>stale_buf
    cdef bytearray values_buf = bytearray(YIELD_EVERY * sizeof(void *))
    cdef PyObject **values = <PyObject **>(<char *>values_buf)  # a chunk's, borrowed
    cdef _AddressNumbers numbers = _AddressNumbers()
    cdef bint is_new
    cdef int number = -1
    cdef PyObject *last = NULL  # the previous route's set: runs of prefixes share one
    cdef PyObject *ahead
    cdef PyObject *v
    cdef list sets = []
    cdef bint sets_tracked = False
    cdef long long path_id
    for start in range(0, n, YIELD_EVERY):
        if start:
            with nogil:
                pass
        stop = min(start + YIELD_EVERY, n)
        for i in range(start, stop):  # the values
            if i + 16 < n:
                vb_prefetch(PyList_GET_ITEM(entries, i + 16))
            if i + 8 < n:
                ahead = PyList_GET_ITEM(entries, i + 8)
                if vb_type_is(ahead, <PyObject *>_overlay):
                    vb_prefetch(slot_ptr(<object>ahead, _over_at_))
            ahead = PyList_GET_ITEM(entries, i)
            v = _value_at(ahead, slot)
            stale_of[i] = current_stale
            if v == NULL and stale_slot >= 0:
                v = _value_at(ahead, stale_slot)
                stale_of[i] = True
            values[i - start] = v
        for i in range(start, stop):  # their sets, numbered
            set_of[i] = -1
            if i + 8 < stop and values[i + 8 - start] != NULL:
                vb_prefetch(values[i + 8 - start])
            v = values[i - start]
            if v == NULL:
                stale_of[i] = False
                continue
            if vb_type_is(v, <PyObject *>_path_attributes):
                attrs = <object>v
                path_id = 0
            else:  # ADD-PATH: (path_id, attrs), ... best first
                best = (<object>v)[0]  # (a PathSet: a tuple subclass)
                path_id = best[0]
                attrs = best[1]
                if path_id < 0 or path_id > 0xFFFFFFFF:
                    raise OverflowError(f"slot_routes: path id {path_id} is not 32-bit")
            if <PyObject *>attrs != last:
                # The set's number by address (``sets`` holds each one, so no
                # address is reused while this runs).
                number = numbers.number(<size_t><void *>attrs, &is_new)
                if is_new:
                    sets.append(attrs)
                    sets_tracked = sets_tracked or vb_gc_tracked(<PyObject *>attrs)
                last = <PyObject *>attrs
            set_of[i] = number
            pids[i] = <unsigned int>path_id
    if not sets_tracked:
        PyObject_GC_UnTrack(<void *>sets)
    return set_buf, pid_buf, stale_buf, sets
