# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The IPv4 store's delta: prefix key (``1 << length | network``) -> entry, in C.

Why not a dict: a first table load probes and inserts every prefix of the
table into the delta (a million for today's table), and a dict keyed by int
objects misses the cache three times an operation on a table that size: its
index, its entry and, for a key found (every router after the first), the
key object itself. Here a slot holds the key's bits and the entry's pointer
(16 bytes, four a cache line), the key is hashed by one multiply, and
collisions walk on in the same line (linear probing, at most two-thirds
full: the real table's 577 k keys fit 2**20 slots, 16.8 MB, where half full
took 2**21, and one doubling, a rehash of every key, is saved), so an
operation reads one line. The order keys were inserted in is kept apart
(``order``: what ``keys``, ``items`` and ``snapshot`` list, as a dict would,
and what tests compare; grown by half, not doubled); a deletion leaves a zero
there, squeezed out when the order runs out of room; slots are deleted by shifting their followers
back (no tombstones). The table is not tracked by the cyclic GC: its
entries (tuples of attribute sets) never refer back to the store.

Readers use the small interface below (``get``, ``insert``, ``delete``,
``keys``, ``items``, ``snapshot``, ``lengths``) or, compiled, ``get_c`` /
``set_c`` through ``delta_get`` / ``delta_set`` (``_intdelta.pxd``), which
take the IPv6 store's table (``ribd._intdelta6``) too. ``ribd.intdelta.PyIntDelta`` is the
reference (tests/ribd/test_intdelta.py compares them).

Not thread-safe beyond the GIL: the RIB's lock guards writers. ``snapshot``
copies the keys and entries before it makes any Python object, so a
merge may take it with the lock free while writes go on (as ``dict.copy``).
"""

from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.long cimport PyLong_FromUnsignedLongLong
from cpython.mem cimport PyMem_Calloc, PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_XDECREF, PyObject
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memset


cdef extern from *:
    int __builtin_clzll(unsigned long long x) nogil


cdef extern from "Python.h":
    void _set_item "PyList_SET_ITEM"(object l, Py_ssize_t i, PyObject *o)  # (steals ``o``)


cdef uint64_t KEY_MASK = ((<uint64_t>1) << 33) - 1
cdef uint64_t GOLDEN = 0x9E3779B97F4A7C15ULL  # Fibonacci hashing: the top bits of key * 2**64/phi
cdef Py_ssize_t MIN_SIZE = 16
cdef Py_ssize_t MAX_POSITIONS = (<Py_ssize_t>1) << 31  # positions fit in the slot's top 31 bits


cdef inline Py_ssize_t _home(uint64_t key, int shift) noexcept nogil:
    return <Py_ssize_t>((key * GOLDEN) >> shift)


cdef inline int _length(uint64_t key) noexcept nogil:
    """The prefix length of a key (its bit length - 1)."""
    return 63 - __builtin_clzll(key)


cdef inline Py_ssize_t _find(IntDelta t, uint64_t key) noexcept:
    """The slot holding ``key``, or -1: the one probe every operation takes
    (linear from the key's home slot to the first empty one)."""
    cdef Slot *slots = t.slots
    cdef Py_ssize_t i, mask
    cdef uint64_t kp
    if t.n == 0:
        return -1
    mask = t.size - 1
    i = _home(key, t.shift)
    while True:
        kp = slots[i].kp
        if kp == 0:
            return -1
        if (kp & KEY_MASK) == key:
            return i
        i = (i + 1) & mask


cdef class IntDelta:
    """The prefixes an IPv4 store's arrays lack: int key -> entry (see the module)."""

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
        cdef Slot *slots = self.slots
        cdef Py_ssize_t i, size = self.size
        PyMem_Free(self.order)
        self.slots = NULL
        self.order = NULL
        self.size = self.n = self.used = self.cap = 0
        self.shift = 64
        memset(self.counts, 0, sizeof(self.counts))
        if slots != NULL:
            for i in range(size):
                if slots[i].kp:
                    Py_XDECREF(slots[i].value)
            PyMem_Free(slots)

    # -- the typed interface (ribd/_intdelta.pxd) ----------------------------

    cdef PyObject *get_c(self, uint64_t key):
        """The entry at ``key`` (a borrowed reference), or NULL."""
        cdef Py_ssize_t i = _find(self, key)
        return NULL if i < 0 else self.slots[i].value

    cdef int set_c(self, uint64_t key, object value) except -1:
        """``value`` at ``key``: replaced in place if held (its order kept), else added last."""
        cdef Py_ssize_t i = _find(self, key)
        cdef PyObject *old
        if i < 0:
            self._append(key, value)
            return 0
        old = self.slots[i].value
        Py_INCREF(value)
        self.slots[i].value = <PyObject *>value
        Py_DECREF(<object>old)  # (last: the table is whole if it runs code)
        return 0

    cdef int add_c(self, uint64_t key, object value) except -1:
        """``value`` at ``key`` if it is not held (1), else nothing (0)."""
        if _find(self, key) >= 0:
            return 0
        self._append(key, value)
        return 1

    cdef int del_c(self, uint64_t key) except -1:
        """Remove ``key`` (1), or nothing if it is not held (0)."""
        cdef Slot *slots = self.slots
        cdef Py_ssize_t i = _find(self, key), j, k, mask, pos
        cdef uint64_t kp
        cdef PyObject *old
        if i < 0:
            return 0
        mask = self.size - 1
        kp = slots[i].kp
        old = slots[i].value
        pos = <Py_ssize_t>(kp >> 33)
        self.order[pos] = 0
        if pos == self.used - 1:  # the last added (an UPDATE's keys undone): no gap left
            self.used -= 1
            while self.used and self.order[self.used - 1] == 0:
                self.used -= 1
        self.n -= 1
        self.counts[_length(key)] -= 1
        # Backward shift: each follower of the run that may sit at ``i`` moves there.
        j = i
        while True:
            j = (j + 1) & mask
            kp = slots[j].kp
            if kp == 0:
                break
            k = _home(kp & KEY_MASK, self.shift)
            # The follower stays if its home lies cyclically in (i, j].
            if (i <= j and i < k <= j) or (i > j and (k > i or k <= j)):
                continue
            slots[i] = slots[j]
            i = j
        slots[i].kp = 0
        slots[i].value = NULL
        Py_DECREF(<object>old)
        return 1

    cdef int _append(self, uint64_t key, object value) except -1:
        """Add a key not held, last in the order."""
        cdef Py_ssize_t i, mask
        if self.used == self.cap:
            self._room()
        if (self.n + 1) * 3 > self.size * 2:  # at most two-thirds full
            self._grow(MIN_SIZE if self.size == 0 else self.size * 2)
        mask = self.size - 1
        i = _home(key, self.shift)
        while self.slots[i].kp:
            i = (i + 1) & mask
        Py_INCREF(value)
        self.slots[i].kp = key | (<uint64_t>self.used << 33)
        self.slots[i].value = <PyObject *>value
        self.order[self.used] = key
        self.used += 1
        self.n += 1
        self.counts[_length(key)] += 1
        return 0

    cdef int _room(self) except -1:
        """A free position at the order's end: squeeze out the deleted ones if
        they are half of it, else grow it by half."""
        cdef Py_ssize_t cap, p, j = 0, i
        cdef uint32_t *moved
        cdef uint64_t kp
        if self.used and (self.used - self.n) * 2 >= self.used:
            moved = <uint32_t *>PyMem_Malloc(self.used * sizeof(uint32_t))
            if moved == NULL:
                raise MemoryError()
            for p in range(self.used):
                if self.order[p]:
                    moved[p] = <uint32_t>j
                    self.order[j] = self.order[p]
                    j += 1
            for i in range(self.size):
                kp = self.slots[i].kp
                if kp:
                    self.slots[i].kp = (kp & KEY_MASK) | (<uint64_t>moved[kp >> 33] << 33)
            PyMem_Free(moved)
            self.used = j
            return 0
        cap = 8 if self.cap == 0 else self.cap + self.cap // 2
        if cap > MAX_POSITIONS:
            raise MemoryError("IntDelta: more than 2**31 positions")
        order = <uint64_t *>PyMem_Realloc(self.order, cap * sizeof(uint64_t))
        if order == NULL:
            raise MemoryError()
        self.order = order
        self.cap = cap
        return 0

    cdef int _grow(self, Py_ssize_t size) except -1:
        """Rehash into ``size`` slots (a power of two)."""
        cdef Slot *slots = <Slot *>PyMem_Calloc(size, sizeof(Slot))
        cdef Slot *old = self.slots
        cdef Py_ssize_t i, j, mask = size - 1
        cdef int shift = 64
        cdef Py_ssize_t s = size
        if slots == NULL:
            raise MemoryError()
        while s > 1:
            s >>= 1
            shift -= 1
        for i in range(self.size):
            if old[i].kp:
                j = _home(old[i].kp & KEY_MASK, shift)
                while slots[j].kp:
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
        cdef PyObject *v = self.get_c(key_of(key))
        return default if v == NULL else <object>v

    def has_key(self, key):
        return self.get_c(key_of(key)) != NULL

    def __contains__(self, key):
        return self.get_c(key_of(key)) != NULL

    def insert(self, key, value):
        """``value`` at ``key`` (a key held keeps its place in the order)."""
        self.set_c(key_of(key), value)

    def add(self, key, value):
        """``value`` at ``key`` unless held; whether it was added."""
        return self.add_c(key_of(key), value) == 1

    def delete(self, key):
        """Remove ``key``; KeyError if it is not held."""
        if not self.del_c(key_of(key)):
            raise KeyError(key)

    def clear(self):
        self._release()

    def lengths(self):
        """The prefix lengths held, longest first."""
        cdef int length
        return [length for length in range(32, -1, -1) if self.counts[length]]

    def keys(self):
        """The keys, in insertion order."""
        cdef Py_ssize_t p, j = 0
        cdef list out = PyList_New(self.n)
        for p in range(self.used):
            if self.order[p]:
                key = PyLong_FromUnsignedLongLong(self.order[p])
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
        cdef uint64_t *keys = NULL
        cdef PyObject **at = NULL  # by position, then in order
        cdef list out_keys, out_values
        if n == 0:
            return [], []
        keys = <uint64_t *>PyMem_Malloc(n * sizeof(uint64_t))
        at = <PyObject **>PyMem_Calloc(used, sizeof(PyObject *))
        if keys == NULL or at == NULL:
            PyMem_Free(keys)
            PyMem_Free(at)
            raise MemoryError()
        for i in range(self.size):
            if self.slots[i].kp:
                at[self.slots[i].kp >> 33] = self.slots[i].value
        for p in range(used):
            if self.order[p]:
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
                key = PyLong_FromUnsignedLongLong(keys[i])
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
        return self.size * sizeof(Slot) + self.cap * sizeof(uint64_t)

    def __repr__(self):
        return f"IntDelta({self.n} keys)"
