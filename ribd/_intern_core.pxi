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


# CPython 3.11's tuple hash (Objects/tupleobject.c, xxHash's mixing, 64-bit),
# item by item: a core's key is ``hash()`` of its fields' tuple, whose first
# item, the AS path, ``_make_core`` hashed again for the path cache's slot
# (~300 instructions a new core, 0.9% of router 1's feed: stop 36, dictprobe).
# ``intern`` takes both from one pass. Used only when it gave ``hash()``'s
# value on the probes below at import (another interpreter: ``hash()``).
cdef extern from *:
    """
    #define DP_XXPRIME_1 11400714785074694791ULL
    #define DP_XXPRIME_2 14029467366897019727ULL
    #define DP_XXPRIME_5 2870177450012600261ULL
    """
    unsigned long long DP_XXPRIME_1, DP_XXPRIME_2, DP_XXPRIME_5


cdef Py_hash_t _tuple_hash(tuple t, Py_hash_t *first) except? -1:
    """``hash(t)``, computed as CPython 3.11's ``tuplehash``; ``first`` gets
    ``hash(t[0])`` (-1 for an empty tuple). Raises what an item's hash raises."""
    cdef Py_ssize_t i, n = PyTuple_GET_SIZE(t)
    cdef unsigned long long acc = DP_XXPRIME_5, lane
    cdef Py_hash_t h
    first[0] = -1
    for i in range(n):
        h = PyObject_Hash(<object>PyTuple_GET_ITEM(t, i))
        if i == 0:
            first[0] = h
        lane = <unsigned long long>h
        acc += lane * DP_XXPRIME_2
        acc = (acc << 31) | (acc >> 33)
        acc *= DP_XXPRIME_1
    acc += (<unsigned long long>n) ^ (DP_XXPRIME_5 ^ 3527539ULL)
    if acc == <unsigned long long>-1:
        return 1546275796
    return <Py_hash_t>acc


cdef bint _tuple_hash_is_hash() except -1:
    cdef Py_hash_t first
    probes = [
        (), (1,), (-1,), (-2, -1), ("a", 2, None), (((2, (64496, 1 << 40)),), "igp", None, (), "", False, ""),
        tuple(range(50)), ((1, 2), (3, (4, 5))), (1.5, b"x", frozenset({1})),
    ]  # fmt: skip
    for t in probes:
        if _tuple_hash(t, &first) != hash(t) or (t and first != hash(t[0])):
            return False
    return True


cdef bint _own_tuple_hash = _tuple_hash_is_hash()


cdef object _make_core(self, tuple row, Py_hash_t path_hash=-1):
    """``AttributeInterner._make_core``: a new core, its values shared with
    earlier cores. ``path_hash``: ``hash(row[0])`` when the caller has it."""
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
    cdef Py_hash_t h = path_hash
    if h == -1 and type(as_path) is tuple:
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
    # derive_as_numbers' common case, one sequence: its tuples read in place
    # (as generic item reads: ~8 a core, 0.8% of router 1's feed) ...
    cdef Py_ssize_t m
    if PyTuple_GET_SIZE(as_path) == 1:
        segment = <object>PyTuple_GET_ITEM(as_path, 0)
        if type(segment) is tuple and PyTuple_GET_SIZE(segment) == 2:
            asns = <object>PyTuple_GET_ITEM(segment, 1)
            if type(asns) is tuple and _same(<object>PyTuple_GET_ITEM(segment, 0), _seq):
                m = PyTuple_GET_SIZE(asns)
                if m:
                    first = <object>PyTuple_GET_ITEM(asns, 0)
                    last = <object>PyTuple_GET_ITEM(asns, m - 1)
                    return _new_core(
                        as_path,
                        origin,
                        med,
                        large_communities,
                        extended_communities,
                        atomic_aggregate,
                        aggregator,
                        first,
                        last,
                        last,
                        False,
                        False,
                        first,
                    )
                return _new_core_derived(
                    as_path,
                    origin,
                    med,
                    large_communities,
                    extended_communities,
                    atomic_aggregate,
                    aggregator,
                )
    # ... any other shape as the reference reads it
    if (
        PyTuple_GET_SIZE(as_path) == 1
        and _same(as_path[0][0], _seq)
        and as_path[0][1]
    ):
        asns = as_path[0][1]
        last = asns[len(asns) - 1]  # (no negative index: wraparound is off)
        return _new_core(
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
    return _new_core_derived(
        as_path,
        origin,
        med,
        large_communities,
        extended_communities,
        atomic_aggregate,
        aggregator,
    )
