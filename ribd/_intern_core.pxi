# A new core (``AttributeInterner._make_core``, compiled): its AS path, MED and
# communities shared with earlier cores', the paths' tuples left out of the
# cyclic GC. Included by ribd/_intern.pyx (its caches are the interner's slots,
# read through ``_mine``); kept apart because building a core is one job and
# finding a held one (``intern``) another.


cdef tuple _share_path(list ints, tuple as_path):
    """A new tuple of the path's segments, each a new tuple of its AS numbers,
    the numbers shared through ``ints`` (the reference builds lists, then
    tuples of them: the same values).

    Each new tuple that holds ints only (or such tuples) is untracked by the
    cyclic GC at once: it cannot be part of a cycle, and the GC's first pass
    over it would untrack it anyway (``_PyTuple_MaybeUntrack``), after
    walking it. A full table's ~90k paths are ~270k such tuples a load."""
    cdef Py_ssize_t k, j, n = PyTuple_GET_SIZE(as_path), m
    cdef tuple segment
    cdef bint plain = True, ints_only
    segments = PyTuple_New(n)
    for k in range(n):
        kind, numbers = as_path[k]
        if type(numbers) is tuple:
            m = PyTuple_GET_SIZE(numbers)
            out = PyTuple_New(m)
            ints_only = True
            for j in range(m):
                v = share_int(ints, numbers[j], _share_mask)
                ints_only = ints_only and type(v) is int
                Py_INCREF(v)  # PyTuple_SET_ITEM steals it
                PyTuple_SET_ITEM(out, j, v)
            if ints_only:
                PyObject_GC_UnTrack(out)
        else:
            out = tuple([share_int(ints, v, _share_mask) for v in numbers])
            ints_only = False
        segment = (kind, out)
        if ints_only and type(kind) is int:
            PyObject_GC_UnTrack(segment)
        else:
            plain = False
        Py_INCREF(segment)
        PyTuple_SET_ITEM(segments, k, segment)
    if plain:
        PyObject_GC_UnTrack(segments)
    return segments


cdef void _untrack_plain(tuple as_path):
    """A kept path (its numbers ints, ``numbers_shared``) left out of the cyclic
    GC as ``_share_path`` leaves the paths it builds: each segment whose kind is
    an int, and the path if all are (the raw decoder's are untracked already)."""
    cdef Py_ssize_t k
    cdef bint plain = True
    for k in range(PyTuple_GET_SIZE(as_path)):
        segment = as_path[k]
        PyObject_GC_UnTrack(segment[1])
        if type(segment[0]) is int:
            PyObject_GC_UnTrack(segment)
        else:
            plain = False
    if plain:
        PyObject_GC_UnTrack(as_path)


cdef object _make_core(self, tuple row):
    """``AttributeInterner._make_core``: a new core, its values shared with
    earlier cores."""
    cdef Py_ssize_t i, at
    cdef list ints = _mine(self, I_INTS)
    cdef list segments, out
    (as_path, origin, med, large_communities, extended_communities, atomic_aggregate,
     aggregator) = row
    if med is not None and med > 256:  # smaller ints are shared by CPython
        med = share_int(ints, med, _share_mask)
    if large_communities:
        i = PyObject_Hash(large_communities) & _share_mask
        large_communities = _share(_mine(self, I_TUPLES), i, large_communities)
    if extended_communities:
        extended_communities = _setdefault(_mine(self, I_TEXTS), extended_communities)
    # Decoded segments may be lists: a tuple of tuples, then shared whole.
    cdef Py_hash_t h = -1
    if type(as_path) is tuple:
        try:
            h = PyObject_Hash(as_path)
        except TypeError:
            h = -1
    if h == -1:
        as_path = tuple([(kind, tuple(numbers)) for kind, numbers in as_path])
        h = PyObject_Hash(as_path)
    at = h & _large_mask
    cdef list paths = _mine(self, I_PATHS)
    cdef array.array tags = _mine(self, I_TAGS)
    if at >= PyList_GET_SIZE(paths) or at >= Py_SIZE(tags):
        raise IndexError("list index out of range")
    # The slot's hash first: the held path (cold by now) is read only when equal.
    if tags.data.as_longlongs[at] == h and _same(<object>PyList_GET_ITEM(paths, at), as_path):
        as_path = <object>PyList_GET_ITEM(paths, at)
    else:
        # A path the raw decoder built through ``ints`` is kept as it is (the
        # reference's ``_numbers_shared``); any other is built again, shared.
        if numbers_shared(ints, as_path, _share_mask):
            _untrack_plain(as_path)
        else:
            as_path = _share_path(ints, as_path)
        paths[at] = as_path
        tags.data.as_longlongs[at] = h
    if (
        PyTuple_GET_SIZE(as_path) == 1
        and _same(as_path[0][0], _seq)
        and as_path[0][1]
    ):
        asns = as_path[0][1]  # derive_as_numbers' common case
        last = asns[len(asns) - 1]  # (no negative index: wraparound is off)
        return _path_core(
            as_path,
            origin,
            med,
            large_communities,
            extended_communities,
            atomic_aggregate,
            aggregator,
            asns[0],
            last,
            last,
            False,
            False,
            asns[0],
        )
    return _path_core(
        as_path,
        origin,
        med,
        large_communities,
        extended_communities,
        atomic_aggregate,
        aggregator,
        *derive_as_numbers(as_path),
    )
