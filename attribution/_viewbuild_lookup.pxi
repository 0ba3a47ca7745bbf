# Included by attribution/_viewbuild.pyx: one router's route for each of many
# addresses, read from the store (``attribution.exact_routes.covering_routes``).


cdef inline PyObject *_route_in(PyObject *entry, Py_ssize_t slot, Py_ssize_t stale_slot,
                                bint current_stale, char *stale) except? NULL:
    """``ribd.reads.slot_value`` in C: the router's value in ``entry`` (its
    slot, else its stale slot; NULL: none) and, into ``stale``, whether it is stale."""
    cdef PyObject *v = _value_at(entry, slot)
    if v != NULL:
        stale[0] = current_stale
        return v
    if stale_slot >= 0:
        v = _value_at(entry, stale_slot)
        stale[0] = v != NULL
    return v


def covering_routes(keys, values, delta, const unsigned char[::1] addresses,
                    const int[::1] slots, const int[::1] stale_slots,
                    const unsigned char[::1] current_stale, const unsigned char[::1] buckets=None):
    """``exact_routes.py_covering_routes`` in C: per address (``addresses``,
    packed, one octet shorter than a key each), the router's route in the
    longest prefix of the store (its sorted ``keys`` and their ``values``,
    and its compiled ``delta``) that holds one for it; the router's per
    address: its slot (-1: none), stale slot (-1: none) and whether its
    current routes are stale, in ``slots``, ``stale_slots``,
    ``current_stale`` (one each per address). ``buckets``: the
    keys' ``ribd._covering.bucket_starts`` (each search then stays within
    the address's first 16 bits), or None.

    Returns ``(set_of, path_ids, stale, lengths, paths, value_of,
    attribute_sets, path_sets)``: packed per address (int32, -1 where no
    prefix holds a route of the router; uint32; bool; uint8 the prefix's
    length; uint8 the value's paths, 255 at most; int32 the value's number
    among ``path_sets`` where it has several paths, else -1), the best paths'
    attribute sets numbered by identity in first-seen order, as
    ``slot_routes`` numbers them for a view, and the values of several paths
    (ADD-PATH: (path id, attributes), ... best first) numbered the same way,
    among which a flow's next hop chooses. None when
    ``delta`` is not one of the compiled tables (the caller takes the Python
    walk). The caller holds the RIB lock; no borrowed value outlives the call.

    Per address, ``ribd._covering``'s walks of the arrays and of the delta a
    step at a time, longest prefix first, the router's slot read in each
    prefix's entry until one holds a route: ``Rib.lookup``'s walk without the
    prefix's text, a RouteMatch and an answer tuple per flow (the exact path
    was ~18 us a flow at stop 44, against ~1 on a view: BENCHMARKS.md, stop 45).
    """
    cdef Py_buffer keys_view
    cdef int width, size, length, a_length, d_from, floor
    cdef bint a_ok
    cdef Py_ssize_t a_at
    cdef unsigned int address4 = 0
    cdef ArraysWalk walk
    cdef Py_ssize_t n, i, n_keys, n_values
    cdef PyObject **cells = NULL
    cdef PyObject *entry
    cdef PyObject *v
    cdef const unsigned char *address
    cdef char is_stale
    cdef bint is_new, v6
    cdef _AddressNumbers numbers = _AddressNumbers()
    cdef _AddressNumbers value_numbers = _AddressNumbers()
    cdef list path_sets = []
    cdef int *value_of
    cdef list sets = []
    cdef object attrs
    cdef long long path_id
    cdef Py_ssize_t count
    cdef const Py_ssize_t *starts = NULL
    cdef bytearray set_buf, pid_buf, stale_buf, length_buf, paths_buf, value_buf
    cdef int *set_of
    cdef unsigned int *pids
    cdef char *stale_of
    cdef unsigned char *lengths
    cdef unsigned char *paths
    if type(delta) is IntDelta:
        v6 = False
    elif type(delta) is IntDelta6:
        v6 = True
    else:
        return None
    PyObject_GetBuffer(keys, &keys_view, PyBUF_ND)
    try:
        width = <int>keys_view.itemsize
        size = width - 1
        if keys_view.ndim != 1 or size != (16 if v6 else 4):
            raise ValueError(f"covering_routes: keys of {width} octets for an IPv{6 if v6 else 4} delta")
        if addresses.shape[0] % size:
            raise ValueError(f"covering_routes: {addresses.shape[0]} octets are not addresses of {size}")
        n = addresses.shape[0] // size
        if slots.shape[0] != n or stale_slots.shape[0] != n or current_stale.shape[0] != n:
            raise ValueError(f"covering_routes: routers for {slots.shape[0]} addresses, not {n}")
        n_keys = keys_view.shape[0]
        if buckets is not None:
            if buckets.shape[0] != 65537 * sizeof(Py_ssize_t):
                raise ValueError(f"covering_routes: buckets of {buckets.shape[0]} octets")
            starts = <const Py_ssize_t *>&buckets[0]
            if starts[0] != 0 or starts[65536] != n_keys:
                raise ValueError("covering_routes: buckets of other keys")
            for i in range(65536):
                if starts[i] > starts[i + 1]:
                    raise ValueError("covering_routes: buckets out of order")
        n_values = len(values)
        if n_values != n_keys:
            raise ValueError(f"covering_routes: {n_keys} keys and {n_values} values")
        if n_keys:  # (``values`` holds its cells for the call; none are read when empty)
            store_cells(values, &cells, &n_values)
        set_buf = bytearray(4 * n)
        pid_buf = bytearray(4 * n)
        stale_buf = bytearray(n)
        length_buf = bytearray(n)
        paths_buf = bytearray(n)
        value_buf = bytearray(4 * n)
        set_of = <int *>(<char *>set_buf) if n else NULL
        pids = <unsigned int *>(<char *>pid_buf) if n else NULL
        stale_of = <char *>stale_buf
        lengths = <unsigned char *>(<char *>length_buf)
        paths = <unsigned char *>(<char *>paths_buf)
        value_of = <int *>(<char *>value_buf) if n else NULL
        walk.base = <const unsigned char *>keys_view.buf
        walk.n, walk.width, walk.buckets = n_keys, width, starts
        for i in range(n):
            address = &addresses[i * size]
            set_of[i] = -1
            value_of[i] = -1
            if slots[i] < 0:
                continue
            if not v6:
                address4 = ((<unsigned int>address[0] << 24) | (<unsigned int>address[1] << 16)
                            | (<unsigned int>address[2] << 8) | <unsigned int>address[3])
            walk.address, walk.limit = address, size * 8
            a_ok = arrays_next(&walk, &a_at, &a_length)
            d_from = min((<DeltaBase>delta).max_length, size * 8)
            v = NULL
            is_stale = False
            while True:
                # Longest first across both layers (they never hold one
                # prefix, and two prefixes of one length never both hold
                # an address): the delta's above the arrays' next, then it.
                floor = a_length if a_ok else -1
                entry = NULL
                while d_from > floor and entry == NULL:
                    if v6:
                        entry = delta6_at(<IntDelta6>delta, address, d_from)
                    else:
                        entry = delta4_at(<IntDelta>delta, address4, d_from)
                    length = d_from
                    d_from -= 1
                if entry == NULL:
                    if not a_ok:
                        break
                    entry, length = cells[a_at], a_length
                    d_from = a_length - 1
                    a_ok = arrays_next(&walk, &a_at, &a_length)
                is_stale = False
                v = _route_in(entry, slots[i], stale_slots[i], current_stale[i] != 0, &is_stale)
                if v != NULL:
                    break
            if v == NULL:
                continue
            if vb_type_is(v, <PyObject *>_path_attributes):
                attrs = <object>v
                path_id = 0
                count = 1
            else:  # ADD-PATH: (path_id, attrs), ... best first
                count = len(<object>v)
                best = (<object>v)[0]
                path_id = best[0]
                attrs = best[1]
                if path_id < 0 or path_id > 0xFFFFFFFF:
                    raise OverflowError(f"covering_routes: path id {path_id} is not 32-bit")
                if count > 1:
                    value_of[i] = value_numbers.number(<size_t>v, &is_new)
                    if is_new:
                        path_sets.append(<object>v)
            set_of[i] = numbers.number(<size_t><void *>attrs, &is_new)
            if is_new:
                sets.append(attrs)
            pids[i] = <unsigned int>path_id
            stale_of[i] = is_stale
            lengths[i] = <unsigned char>length
            paths[i] = <unsigned char>(count if count < 255 else 255)
    finally:
        PyBuffer_Release(&keys_view)
    return set_buf, pid_buf, stale_buf, length_buf, paths_buf, value_buf, sets, path_sets
