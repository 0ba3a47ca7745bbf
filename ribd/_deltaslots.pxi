# The typed slot operations of a delta table, written once for both widths:
# ``include``d at module level by ribd/_intdelta.pyx (IPv4) and
# ribd/_intdelta6.pyx (IPv6), each of which first defines
#
#   SlotT, KeyT        its slot struct (fields ``tag``, ``value``) and key
#                      (an order item: IPv4 the 33-bit int, IPv6 ``Key6``)
#   POS_SHIFT          a slot's position in the order is ``tag >> POS_SHIFT``
#   _key_home(k, seeds, shift), _slot_home(s, seeds, shift)   the home slot of a key,
#                      of a slot's key, under the table's random hash keys
#   _holds(s, k)       whether slot ``s`` (not empty) holds ``k``
#   _fill(s, k, pos)   write ``k`` and its position into slot ``s`` (not its value)
#   _key_length(k), _live(k)   a key's prefix length; whether an order item is held
#
# (Cython takes no ``include`` inside a class body: these are functions on
# the table, and the subclass's methods one-line calls of them.) Being C
# functions of the same module as their callers, the C compiler inlines them
# into each width's ``get_c`` / ``set_c`` / ``add_c`` / ``del_c``.


cdef inline Py_ssize_t _probe(DeltaBase t, KeyT key) noexcept:
    """The slot holding ``key`` (>= 0), or ~ the first empty slot of its run
    (< 0; -1 when the table has no slots): the one walk every operation takes,
    linear from the key's home slot."""
    cdef SlotT *slots = <SlotT *>t.slots
    cdef Py_ssize_t i, mask
    if t.size == 0:
        return -1
    mask = t.size - 1
    i = _key_home(key, t.seeds, t.shift)
    while True:
        if slots[i].tag == 0:
            return ~i
        if _holds(&slots[i], key):
            return i
        i = (i + 1) & mask


cdef inline int _put(DeltaBase t, Py_ssize_t i, KeyT key, object value) except -1:
    """Add ``key``, not held, whose probe ended at ``~i``: into that empty slot
    (probed again only if making room rehashed the table), last in the order."""
    cdef SlotT *s
    if t.used == t.cap or (t.n + 1) * 3 > t.size * 2:
        if t.make_room():
            i = _probe(t, key)
    s = &(<SlotT *>t.slots)[~i]
    Py_INCREF(value)
    _fill(s, key, t.used)
    s.value = <PyObject *>value
    (<KeyT *>t.order)[t.used] = key
    t.used += 1
    t.n += 1
    t.counts[_key_length(key)] += 1
    return 0


cdef inline int _set(DeltaBase t, KeyT key, object value) except -1:
    """``value`` at ``key``: replaced in place if held (its order kept), else added last."""
    cdef Py_ssize_t i = _probe(t, key)
    cdef SlotT *s
    cdef PyObject *old
    if i < 0:
        return _put(t, i, key, value)
    s = &(<SlotT *>t.slots)[i]
    old = s.value
    Py_INCREF(value)
    s.value = <PyObject *>value
    Py_DECREF(<object>old)  # (last: the table is whole if it runs code)
    return 0


cdef inline int _add(DeltaBase t, KeyT key, object value) except -1:
    """``value`` at ``key`` if it is not held (1), else nothing (0): one probe."""
    cdef Py_ssize_t i = _probe(t, key)
    if i >= 0:
        return 0
    _put(t, i, key, value)
    return 1


cdef int _delete(DeltaBase t, KeyT key) except -1:
    """Remove ``key`` (1), or nothing if it is not held (0): its order item
    zeroed (the order's tail trimmed if it was last: an UPDATE's keys undone
    leave no gap), its slot emptied by shifting its run's followers back (no
    tombstones)."""
    cdef SlotT *slots = <SlotT *>t.slots
    cdef KeyT *order = <KeyT *>t.order
    cdef Py_ssize_t i = _probe(t, key), j, k, mask, pos
    cdef PyObject *old
    if i < 0:
        return 0
    mask = t.size - 1
    old = slots[i].value
    pos = <Py_ssize_t>(slots[i].tag >> POS_SHIFT)
    memset(&order[pos], 0, sizeof(KeyT))
    if pos == t.used - 1:
        t.used -= 1
        while t.used and not _live(&order[t.used - 1]):
            t.used -= 1
    t.n -= 1
    t.counts[_key_length(key)] -= 1
    j = i
    while True:
        j = (j + 1) & mask
        if slots[j].tag == 0:
            break
        k = _slot_home(&slots[j], t.seeds, t.shift)
        # The follower stays if its home lies cyclically in (i, j].
        if (i <= j and i < k <= j) or (i > j and (k > i or k <= j)):
            continue
        slots[i] = slots[j]
        i = j
    memset(&slots[i], 0, sizeof(SlotT))
    Py_DECREF(<object>old)
    return 1


cdef Py_ssize_t _displacement(DeltaBase t) noexcept:
    """The slots walked past by every held key's probe, summed: what finding each
    key costs beyond its home slot (about one per key at most two-thirds full,
    when homes spread as the random keys spread them)."""
    cdef SlotT *slots = <SlotT *>t.slots
    cdef Py_ssize_t i, total = 0
    for i in range(t.size):
        if slots[i].tag:
            total += (i - _slot_home(&slots[i], t.seeds, t.shift)) & (t.size - 1)
    return total


cdef int _rehash(DeltaBase t, Py_ssize_t size) except -1:
    """Move every key into ``size`` new slots (a power of two)."""
    cdef SlotT *slots = <SlotT *>PyMem_Calloc(size, sizeof(SlotT))
    cdef SlotT *old = <SlotT *>t.slots
    cdef Py_ssize_t i, j, mask = size - 1, s = size
    cdef int shift = 64
    if slots == NULL:
        raise MemoryError()
    while s > 1:
        s >>= 1
        shift -= 1
    for i in range(t.size):
        if old[i].tag:
            j = _slot_home(&old[i], t.seeds, shift)
            while slots[j].tag:
                j = (j + 1) & mask
            slots[j] = old[i]
    PyMem_Free(old)
    t.slots = slots
    t.size = size
    t.shift = shift
    return 0
