# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The IPv6 store's delta: prefix key (``1 << length | network``) -> entry, in C.

Why: the IPv6 delta was a dict by prefix text. A table load made a ~20
character text for each IPv6 prefix of each router (the compressed-zeros
formatting), siphashed it, and for a key found (every router after the
first) compared it with the held text character by character, on a dict
whose index, entries and key objects missed the cache each. Here a prefix is
its int key (``ribd.prefix_keys``, made from the NLRI octets with no text),
and a slot holds its address's 128 bits, its length and the entry's pointer
(32 bytes, two a cache line), so an operation reads one line. The table is
``ribd._intdelta.IntDelta``'s (the IPv4 delta's) with wider keys: one
multiply to hash, linear probing at most two-thirds full, grown by doubling,
deletions by shifting the followers back (no tombstones), the insertion
order kept apart (``order``: what ``keys``, ``items`` and ``snapshot`` list,
grown by half; a deletion leaves a zero there, squeezed out when the order
runs out of room). Not tracked by the cyclic GC: its entries never refer
back to the store.

Readers use the interface every store's delta has (``ribd.intdelta``) or,
compiled, ``get_c`` / ``set_c`` through ``ribd._intdelta``'s ``delta_get`` /
``delta_set``. ``ribd.intdelta.PyIntDelta6`` is the reference
(tests/ribd/test_intdelta6.py compares them).

Not thread-safe beyond the GIL: the RIB's lock guards writers. ``snapshot``
copies the keys and entries before it makes any Python object, so a merge
may take it with the lock free while writes go on (as ``dict.copy``).
"""

from ribd._key6 cimport key6_check, key6_obj

from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.mem cimport PyMem_Calloc, PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_XDECREF, PyObject
from libc.stdint cimport uint64_t
from libc.string cimport memset


cdef extern from "Python.h":
    void _set_item "PyList_SET_ITEM"(object l, Py_ssize_t i, PyObject *o)  # (steals ``o``)


cdef uint64_t GOLDEN = 0x9E3779B97F4A7C15ULL  # Fibonacci hashing: the top bits of x * 2**64/phi
cdef uint64_t MIX = 0xC2B2AE3D27D4EB4FULL
cdef Py_ssize_t MIN_SIZE = 16


cdef inline Py_ssize_t _home(uint64_t hi, uint64_t lo, int length, int shift) noexcept nogil:
    """A key's home slot: its words and length folded, then one multiply (the
    top bits of the product depend on every bit folded in)."""
    cdef uint64_t x = hi ^ (lo * MIX) ^ (<uint64_t>length * MIX)
    return <Py_ssize_t>((x * GOLDEN) >> shift)


cdef class IntDelta6:
    """The prefixes an IPv6 store's arrays lack: int key -> entry (see the module)."""

    def __cinit__(self):
        self.slots = NULL
        self.order = NULL
        self.size = self.n = self.used = self.cap = 0
        self.shift = 64
        memset(self.counts, 0, sizeof(self.counts))

    def __dealloc__(self):
        self._release()

    cdef void _release(self) noexcept:
        """Empty the table; the entries' references are dropped last (their
        deallocation may run code that finds the table already empty)."""
        cdef Slot6 *slots = self.slots
        cdef Py_ssize_t i, size = self.size
        PyMem_Free(self.order)
        self.slots = NULL
        self.order = NULL
        self.size = self.n = self.used = self.cap = 0
        self.shift = 64
        memset(self.counts, 0, sizeof(self.counts))
        if slots != NULL:
            for i in range(size):
                if slots[i].lp:
                    Py_XDECREF(slots[i].value)
            PyMem_Free(slots)

    cdef Py_ssize_t _find(self, uint64_t hi, uint64_t lo, int length) noexcept:
        """The slot holding the key, or -1: the one probe every operation takes
        (linear from the key's home slot to the first empty one)."""
        cdef Slot6 *slots = self.slots
        cdef Py_ssize_t i, mask
        cdef uint64_t lp, len1 = <uint64_t>(length + 1)
        if self.n == 0:
            return -1
        mask = self.size - 1
        i = _home(hi, lo, length, self.shift)
        while True:
            lp = slots[i].lp
            if lp == 0:
                return -1
            if slots[i].hi == hi and slots[i].lo == lo and (lp & 0xFF) == len1:
                return i
            i = (i + 1) & mask

    # -- the typed interface (ribd/_intdelta6.pxd) ---------------------------

    cdef PyObject *get_c(self, object key) except? NULL:
        """The entry at ``key`` (a borrowed reference), or NULL (no error set)."""
        cdef uint64_t hi, lo
        cdef int length = key6_check(key, &hi, &lo)
        cdef Py_ssize_t i = self._find(hi, lo, length)
        return NULL if i < 0 else self.slots[i].value

    cdef int set_c(self, object key, object value) except -1:
        """``value`` at ``key``: replaced in place if held (its order kept), else added last."""
        cdef uint64_t hi, lo
        cdef int length = key6_check(key, &hi, &lo)
        cdef Py_ssize_t i = self._find(hi, lo, length)
        cdef PyObject *old
        if i < 0:
            return self._append(hi, lo, length, value)
        old = self.slots[i].value
        Py_INCREF(value)
        self.slots[i].value = <PyObject *>value
        Py_DECREF(<object>old)  # (last: the table is whole if it runs code)
        return 0

    cdef int add_c(self, object key, object value) except -1:
        """``value`` at ``key`` if it is not held (1), else nothing (0)."""
        cdef uint64_t hi, lo
        cdef int length = key6_check(key, &hi, &lo)
        if self._find(hi, lo, length) >= 0:
            return 0
        self._append(hi, lo, length, value)
        return 1

    cdef int del_c(self, object key) except -1:
        """Remove ``key`` (1), or nothing if it is not held (0)."""
        cdef uint64_t hi, lo, lp
        cdef int length = key6_check(key, &hi, &lo)
        cdef Slot6 *slots = self.slots
        cdef Py_ssize_t i = self._find(hi, lo, length), j, k, mask, pos
        cdef PyObject *old
        if i < 0:
            return 0
        mask = self.size - 1
        old = slots[i].value
        pos = <Py_ssize_t>(slots[i].lp >> 8)
        self.order[pos].len1 = 0
        if pos == self.used - 1:  # the last added (an UPDATE's keys undone): no gap left
            self.used -= 1
            while self.used and self.order[self.used - 1].len1 == 0:
                self.used -= 1
        self.n -= 1
        self.counts[length] -= 1
        # Backward shift: each follower of the run that may sit at ``i`` moves there.
        j = i
        while True:
            j = (j + 1) & mask
            lp = slots[j].lp
            if lp == 0:
                break
            k = _home(slots[j].hi, slots[j].lo, <int>(lp & 0xFF) - 1, self.shift)
            # The follower stays if its home lies cyclically in (i, j].
            if (i <= j and i < k <= j) or (i > j and (k > i or k <= j)):
                continue
            slots[i] = slots[j]
            i = j
        slots[i].lp = 0
        slots[i].hi = slots[i].lo = 0
        slots[i].value = NULL
        Py_DECREF(<object>old)
        return 1

    cdef int _append(self, uint64_t hi, uint64_t lo, int length, object value) except -1:
        """Add a key not held, last in the order."""
        cdef Py_ssize_t i, mask
        if self.used == self.cap:
            self._room()
        if (self.n + 1) * 3 > self.size * 2:  # at most two-thirds full
            self._grow(MIN_SIZE if self.size == 0 else self.size * 2)
        mask = self.size - 1
        i = _home(hi, lo, length, self.shift)
        while self.slots[i].lp:
            i = (i + 1) & mask
        Py_INCREF(value)
        self.slots[i].hi = hi
        self.slots[i].lo = lo
        self.slots[i].lp = <uint64_t>(length + 1) | (<uint64_t>self.used << 8)
        self.slots[i].value = <PyObject *>value
        self.order[self.used].hi = hi
        self.order[self.used].lo = lo
        self.order[self.used].len1 = length + 1
        self.used += 1
        self.n += 1
        self.counts[length] += 1
        return 0

    cdef int _room(self) except -1:
        """A free position at the order's end: squeeze out the deleted ones if
        they are half of it, else grow it by half."""
        cdef Py_ssize_t cap, p, j = 0, i
        cdef Py_ssize_t *moved
        cdef uint64_t lp
        cdef Key6 *order
        if self.used and (self.used - self.n) * 2 >= self.used:
            moved = <Py_ssize_t *>PyMem_Malloc(self.used * sizeof(Py_ssize_t))
            if moved == NULL:
                raise MemoryError()
            for p in range(self.used):
                if self.order[p].len1:
                    moved[p] = j
                    self.order[j] = self.order[p]
                    j += 1
            for i in range(self.size):
                lp = self.slots[i].lp
                if lp:
                    self.slots[i].lp = (lp & 0xFF) | (<uint64_t>moved[lp >> 8] << 8)
            PyMem_Free(moved)
            self.used = j
            return 0
        cap = 8 if self.cap == 0 else self.cap + self.cap // 2
        order = <Key6 *>PyMem_Realloc(self.order, cap * sizeof(Key6))
        if order == NULL:
            raise MemoryError()
        self.order = order
        self.cap = cap
        return 0

    cdef int _grow(self, Py_ssize_t size) except -1:
        """Rehash into ``size`` slots (a power of two)."""
        cdef Slot6 *slots = <Slot6 *>PyMem_Calloc(size, sizeof(Slot6))
        cdef Slot6 *old = self.slots
        cdef Py_ssize_t i, j, mask = size - 1
        cdef int shift = 64
        cdef Py_ssize_t s = size
        if slots == NULL:
            raise MemoryError()
        while s > 1:
            s >>= 1
            shift -= 1
        for i in range(self.size):
            if old[i].lp:
                j = _home(old[i].hi, old[i].lo, <int>(old[i].lp & 0xFF) - 1, shift)
                while slots[j].lp:
                    j = (j + 1) & mask
                slots[j] = old[i]
        PyMem_Free(old)
        self.slots = slots
        self.size = size
        self.shift = shift
        return 0

    # -- for Python ----------------------------------------------------------

    def __len__(self):
        return self.n

    def get(self, key, default=None):
        """The entry at ``key``, or ``default``."""
        cdef PyObject *v = self.get_c(key)
        return default if v == NULL else <object>v

    def has_key(self, key):
        return self.get_c(key) != NULL

    def __contains__(self, key):
        return self.get_c(key) != NULL

    def insert(self, key, value):
        """``value`` at ``key`` (a key held keeps its place in the order)."""
        self.set_c(key, value)

    def add(self, key, value):
        """``value`` at ``key`` unless held; whether it was added."""
        return self.add_c(key, value) == 1

    def delete(self, key):
        """Remove ``key``; KeyError if it is not held."""
        if not self.del_c(key):
            raise KeyError(key)

    def clear(self):
        self._release()

    def lengths(self):
        """The prefix lengths held, longest first."""
        cdef int length
        return [length for length in range(128, -1, -1) if self.counts[length]]

    def keys(self):
        """The keys, in insertion order."""
        cdef Py_ssize_t p, j = 0
        cdef list out = PyList_New(self.n)
        for p in range(self.used):
            if self.order[p].len1:
                key = key6_obj(self.order[p].hi, self.order[p].lo, <int>self.order[p].len1 - 1)
                Py_INCREF(key)
                PyList_SET_ITEM(out, j, key)
                j += 1
        return out

    def values(self):
        """The entries, in the keys' insertion order."""
        return self.snapshot()[1]

    def items(self):
        """(key, entry) pairs, in insertion order."""
        keys, values = self.snapshot()
        return list(zip(keys, values))

    def snapshot(self):
        """(keys, entries), two lists in insertion order, as of one instant: both
        are copied in C before any Python object is made (an allocation may run
        the GC and let another thread write)."""
        cdef Py_ssize_t n = self.n, used = self.used, p, i, j = 0
        cdef Key6 *keys = NULL
        cdef PyObject **at = NULL  # by position, then in order
        cdef list out_keys, out_values
        if n == 0:
            return [], []
        keys = <Key6 *>PyMem_Malloc(n * sizeof(Key6))
        at = <PyObject **>PyMem_Calloc(used, sizeof(PyObject *))
        if keys == NULL or at == NULL:
            PyMem_Free(keys)
            PyMem_Free(at)
            raise MemoryError()
        for i in range(self.size):
            if self.slots[i].lp:
                at[self.slots[i].lp >> 8] = self.slots[i].value
        for p in range(used):
            if self.order[p].len1:
                keys[j] = self.order[p]
                at[j] = at[p]
                Py_INCREF(<object>at[j])
                j += 1
        # From here on the copy is ours: each entry's reference goes into the list.
        i = 0
        try:
            out_values = PyList_New(n)
            for i in range(n):
                _set_item(out_values, i, at[i])  # (steals the reference)
                at[i] = NULL
            out_keys = PyList_New(n)
            for i in range(n):
                key = key6_obj(keys[i].hi, keys[i].lo, <int>keys[i].len1 - 1)
                Py_INCREF(key)
                PyList_SET_ITEM(out_keys, i, key)
        finally:
            for i in range(n):
                Py_XDECREF(at[i])
            PyMem_Free(at)
            PyMem_Free(keys)
        return out_keys, out_values

    @property
    def nbytes(self):
        """Bytes of the table's C arrays (slots and order)."""
        return self.size * sizeof(Slot6) + self.cap * sizeof(Key6)

    def __repr__(self):
        return f"IntDelta6({self.n} keys)"
