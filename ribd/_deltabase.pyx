# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The stores' delta tables' common part: ``DeltaBase``, the base class of
``ribd._intdelta.IntDelta`` (IPv4, 33-bit keys in 16-byte slots) and
``ribd._intdelta6.IntDelta6`` (IPv6, 129-bit keys in 32-byte slots).

Why a base class: the two tables are one design (open addressing, linear
probing, at most two-thirds full, the insertion order kept apart) with keys
of another width, and their order handling and Python-facing methods were a
copy of each other. Here they are written once, over the width's layout (the
byte sizes and offsets ``__cinit__`` of each width sets); what a key's width
decides is each width's: its probe, insert and delete (typed, called from
the compiled load loops as C calls: ``ribd/_deltaslots.pxi``), its rehash,
and its key's Python form (the ``_obj`` calls below, through the vtable:
they come from Python anyway).

The hash keys (``seeds``): each table draws its own at random when made, and
a key's home slot is its multiply-shift hash under them (the IPv4 key's one
multiply, the IPv6 key's 32-bit pieces multiplied and summed: Thorup's
vector multiply-shift). Until stop 60 the multipliers were constants, and
keys are what a peer announces: a peer could pick /32s whose homes all fall
in one stretch of slots, so that each insert walked the run the others made
(40,000 such prefixes took 1.08 CPU-s to insert against 0.013 for random
ones, growing with their square: a stall of the feed, and of every router's
updates behind it). Under keys it cannot know, it cannot aim.

The order (``order``: what ``keys``, ``items`` and ``snapshot`` list, as a
dict would, and what tests compare) grows by half, not doubled; a deletion
zeroes the key's item (its ``live_at`` word) and it is squeezed out when the
order runs out of room. The tables hold no Python object fields, so they are
not tracked by the cyclic GC: their entries never refer back to the store.

Not thread-safe beyond the GIL: the RIB's lock guards writers. ``snapshot``
copies the keys and entries before it makes any Python object, so a merge
may take it with the lock free while writes go on (as ``dict.copy``).
"""

from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.mem cimport PyMem_Calloc, PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.ref cimport Py_INCREF, Py_XDECREF, PyObject
from libc.stdint cimport uint64_t
from libc.string cimport memcpy, memset

import os


cdef extern from "Python.h":
    void _set_item "PyList_SET_ITEM"(object l, Py_ssize_t i, PyObject *o)  # (steals ``o``)


cdef Py_ssize_t MIN_SIZE = 16

# Each table's hash keys, and the process's other tables keyed by what a peer
# sends (``ribd._repeats``, ``ribd._wide``, ``attribution._viewbuild``), come
# from this splitmix64 sequence, seeded from the OS once per process (no
# system call per table: a store makes a new delta at each merge).
cdef uint64_t _seed_state = int.from_bytes(os.urandom(8), "little")


cdef uint64_t hash_key() noexcept:
    global _seed_state
    cdef uint64_t z
    _seed_state += 0x9E3779B97F4A7C15ULL
    z = _seed_state
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef inline uint64_t _word(const char *p, Py_ssize_t at) noexcept nogil:
    return (<const uint64_t *>(p + at))[0]


cdef class DeltaBase:
    """A delta table's order, growth and Python interface (see the module);
    not made itself: ``IntDelta`` and ``IntDelta6`` are."""

    def __cinit__(self):
        cdef int i
        self.slots = NULL
        self.order = NULL
        self.size = self.n = self.used = self.cap = 0
        self.shift = 64
        for i in range(5):
            self.seeds[i] = hash_key()
        self.seeds[0] |= 1  # (a multiply-shift multiplier is odd)
        memset(self.counts, 0, sizeof(self.counts))

    def __dealloc__(self):
        self._release()

    cdef void _release(self) noexcept:
        """Empty the table; the entries' references are dropped last (their
        deallocation may run code that finds the table already empty)."""
        cdef char *slots = <char *>self.slots
        cdef char *s
        cdef Py_ssize_t i, size = self.size
        PyMem_Free(self.order)
        self.slots = NULL
        self.order = NULL
        self.size = self.n = self.used = self.cap = 0
        self.shift = 64
        memset(self.counts, 0, sizeof(self.counts))
        if slots != NULL:
            for i in range(size):
                s = slots + i * self.slot_bytes
                if _word(s, self.tag_at):
                    Py_XDECREF((<PyObject **>(s + self.value_at))[0])
            PyMem_Free(slots)

    cdef int make_room(self) except -1:
        """Room for one more key: a free position at the order's end, and slots
        at most two-thirds full with it; 1 if the slots were rehashed (a probe
        made before is stale), else 0."""
        if self.used == self.cap:
            self._room()
        if (self.n + 1) * 3 > self.size * 2:
            self._grow(MIN_SIZE if self.size == 0 else self.size * 2)
            return 1
        return 0

    cdef int _room(self) except -1:
        """A free position at the order's end: squeeze out the deleted ones if
        they are half of it (each slot's position rewritten), else grow it by half."""
        cdef Py_ssize_t cap, p, j = 0, i, ob = self.order_bytes
        cdef Py_ssize_t *moved
        cdef uint64_t tag, low = ((<uint64_t>1) << self.pos_shift) - 1
        cdef char *order
        cdef char *s
        if self.used and (self.used - self.n) * 2 >= self.used:
            moved = <Py_ssize_t *>PyMem_Malloc(self.used * sizeof(Py_ssize_t))
            if moved == NULL:
                raise MemoryError()
            for p in range(self.used):
                if _word(self.order + p * ob, self.live_at):
                    moved[p] = j
                    if j != p:
                        memcpy(self.order + j * ob, self.order + p * ob, ob)
                    j += 1
            for i in range(self.size):
                s = <char *>self.slots + i * self.slot_bytes
                tag = _word(s, self.tag_at)
                if tag:
                    tag = (tag & low) | (<uint64_t>moved[tag >> self.pos_shift] << self.pos_shift)
                    (<uint64_t *>(s + self.tag_at))[0] = tag
            PyMem_Free(moved)
            self.used = j
            return 0
        cap = 8 if self.cap == 0 else self.cap + self.cap // 2
        if cap > ((<Py_ssize_t>1) << (64 - self.pos_shift)):
            raise MemoryError(f"{type(self).__name__}: more positions than its slots hold")
        order = <char *>PyMem_Realloc(self.order, cap * ob)
        if order == NULL:
            raise MemoryError()
        self.order = order
        self.cap = cap
        return 0

    # -- per width (each subclass's) -----------------------------------------

    cdef int _grow(self, Py_ssize_t size) except -1:
        raise NotImplementedError

    cdef PyObject *_get_obj(self, object key) except? NULL:
        raise NotImplementedError

    cdef int _set_obj(self, object key, object value) except -1:
        raise NotImplementedError

    cdef int _add_obj(self, object key, object value) except -1:
        raise NotImplementedError

    cdef int _del_obj(self, object key) except -1:
        raise NotImplementedError

    cdef object _key_obj(self, const char *item):
        raise NotImplementedError

    # -- for Python ----------------------------------------------------------

    def __len__(self):
        return self.n

    def get(self, key, default=None):
        """The entry at ``key``, or ``default``."""
        cdef PyObject *v = self._get_obj(key)
        return default if v == NULL else <object>v

    def has_key(self, key):
        return self._get_obj(key) != NULL

    def __contains__(self, key):
        return self._get_obj(key) != NULL

    def insert(self, key, value):
        """``value`` at ``key`` (a key held keeps its place in the order)."""
        self._set_obj(key, value)

    def add(self, key, value):
        """``value`` at ``key`` unless held; whether it was added."""
        return self._add_obj(key, value) == 1

    def delete(self, key):
        """Remove ``key``; KeyError if it is not held."""
        if not self._del_obj(key):
            raise KeyError(key)

    def clear(self):
        self._release()

    def lengths(self):
        """The prefix lengths held, longest first."""
        cdef int length
        return [length for length in range(self.max_length, -1, -1) if self.counts[length]]

    def keys(self):
        """The keys, in insertion order."""
        cdef Py_ssize_t p, j = 0, ob = self.order_bytes
        cdef list out = PyList_New(self.n)
        for p in range(self.used):
            if _word(self.order + p * ob, self.live_at):
                key = self._key_obj(self.order + p * ob)
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
        cdef Py_ssize_t n = self.n, used = self.used, p, i, j = 0, ob = self.order_bytes
        cdef char *keys = NULL
        cdef char *s
        cdef PyObject **at = NULL  # by position, then in order
        cdef list out_keys, out_values
        if n == 0:
            return [], []
        keys = <char *>PyMem_Malloc(n * ob)
        at = <PyObject **>PyMem_Calloc(used, sizeof(PyObject *))
        if keys == NULL or at == NULL:
            PyMem_Free(keys)
            PyMem_Free(at)
            raise MemoryError()
        for i in range(self.size):
            s = <char *>self.slots + i * self.slot_bytes
            if _word(s, self.tag_at):
                at[_word(s, self.tag_at) >> self.pos_shift] = (<PyObject **>(s + self.value_at))[0]
        for p in range(used):
            if _word(self.order + p * ob, self.live_at):
                memcpy(keys + j * ob, self.order + p * ob, ob)
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
                key = self._key_obj(keys + i * ob)
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
        return self.size * self.slot_bytes + self.cap * self.order_bytes

    def __repr__(self):
        return f"{type(self).__name__}({self.n} keys)"
