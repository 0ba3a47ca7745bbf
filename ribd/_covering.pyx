# cython: language_level=3, boundscheck=False, wraparound=False
"""The store's prefixes covering one address, found in C: the compiled twins
of ``PrefixStore._covering_walk`` (the arrays) and of the IPv4 delta's walk in
``PrefixStore._covering_delta``.

Every exact lookup walks it (``Rib.lookup``): flows in prefixes changed since
their router's view was built, flows with a BGP next hop, and every flow of a
router still loading. In Python each step of the walk was a bytes key built
for numpy's ``searchsorted`` and a numpy scalar read back, ~half of an exact
lookup's ~13 us; with 20 k flows/s during a 64-router load the lookups took
more CPU than the load's feed (BENCHMARKS.md, stop 44). Here a step is a
binary search with ``memcmp`` over the keys' buffer.

``PrefixStore`` keeps the Python walks as the reference and the fallback
where this was not built (tests/ribd/test_covering_compiled.py
compares them).
"""

from cpython.buffer cimport PyBUF_ND, PyBuffer_Release, PyObject_GetBuffer
from cpython.ref cimport PyObject
from libc.stdint cimport uint64_t
from libc.string cimport memcmp, memcpy, memset

from ribd._intdelta cimport IntDelta
from ribd._packedkeys cimport first16_starts, ribd_key5
from ribd._intdelta6 cimport IntDelta6
from ribd._key6 cimport be64, key6_obj


cdef inline int _common_bits(const unsigned char *a, const unsigned char *b, int n) noexcept nogil:
    """How many leading bits the n-octet strings ``a`` and ``b`` share."""
    cdef int i, x, bits = 0
    for i in range(n):
        x = a[i] ^ b[i]
        if x:
            while not (x & 0x80):
                x <<= 1
                bits += 1
            return i * 8 + bits
    return n * 8


cdef int arrays_next(ArraysWalk *w, Py_ssize_t *index, int *length) noexcept nogil:
    """The walk's next key holding ``w.address`` (longest first): 1 and its
    (index, length), or 0 when there is none left. The last key <= (address
    cut to limit, limit) either holds the address or shares only its first
    ``c`` bits with it; then no key between can hold it, and the next
    candidate is the last key <= (address cut to c, c).

    One step at a time, so that a reader wanting the first prefix with a
    route stops there: collecting every covering prefix first was ~5
    searches an address on a full table where one answers (stop 45)."""
    cdef Py_ssize_t lo, hi, mid, i
    cdef int size = w.width - 1, key_length, common, full, rem, b, limit = w.limit
    cdef unsigned char probe[32]
    cdef unsigned long long probe5
    cdef const unsigned char *key
    cdef const unsigned char *base = w.base
    cdef int width = w.width
    while limit >= 0 and w.n:
        full, rem = limit // 8, limit % 8
        memset(probe, 0, width)
        memcpy(probe, w.address, full)
        if rem:
            probe[full] = w.address[full] & ((0xFF << (8 - rem)) & 0xFF)
        probe[size] = limit + 1
        if w.buckets != NULL:  # only keys of the probe's first 16 bits can be the first > it
            b = (probe[0] << 8) | probe[1]
            lo, hi = w.buckets[b], w.buckets[b + 1]
        else:
            lo, hi = 0, w.n
        if width == 5:
            probe5 = ribd_key5(probe)
            while lo < hi:  # the first key > probe
                mid = (lo + hi) >> 1
                if ribd_key5(base + mid * 5) <= probe5:
                    lo = mid + 1
                else:
                    hi = mid
        else:
            while lo < hi:
                mid = (lo + hi) >> 1
                if memcmp(base + mid * width, probe, width) <= 0:
                    lo = mid + 1
                else:
                    hi = mid
        i = lo - 1
        if i < 0:
            break
        key = base + i * width
        key_length = key[size] - 1
        if key_length < 0:
            break  # not a key this store writes
        common = _common_bits(w.address, key, size)
        if common >= key_length:
            # (key_length <= limit in sorted keys; in keys read from a damaged
            # snapshot, still never loop)
            w.limit = (key_length if key_length < limit else limit) - 1
            index[0] = i
            length[0] = key_length
            return 1
        # (common >= limit cannot be, keys being sorted: never loop)
        limit = common if common < limit else limit - 1
    w.limit = -1
    return 0


cdef int arrays_covering(const unsigned char *base, Py_ssize_t n, int width,
                         const unsigned char *address, int limit,
                         Py_ssize_t *index, int *length,
                         const Py_ssize_t *buckets) noexcept nogil:
    """The whole walk of ``arrays_next`` over ``n`` sorted keys of ``width``
    octets at ``base``: the (index, length) of each key holding ``address``
    (``width - 1`` octets) with a length of at most ``limit``, longest first,
    into ``index`` / ``length`` (room for MAX_COVERING); returns how many.
    The caller checks that ``width`` is 2 to 32 (3 to 32 with ``buckets``).

    ``buckets`` (or NULL): ``bucket_starts`` of the keys, where each search
    starts. A search over the whole array was ~20 steps, each a cache miss
    in a full table's 2.9 MB of keys (stop 45)."""
    cdef ArraysWalk w
    cdef int found = 0
    w.base, w.n, w.width, w.address, w.buckets = base, n, width, address, buckets
    w.limit = limit if limit < (width - 1) * 8 else (width - 1) * 8
    while found < MAX_COVERING and arrays_next(&w, &index[found], &length[found]):
        found += 1
    return found


cdef PyObject *delta4_at(IntDelta delta, unsigned int address, int length):
    """The IPv4 delta's entry (borrowed) for ``address`` cut to ``length``, or NULL."""
    if length > 32 or not delta.counts[length]:
        return NULL
    return delta.get_c((<uint64_t>1 << length) | ((<uint64_t>address) >> (32 - length)))


cdef PyObject *delta6_at(IntDelta6 delta, const unsigned char *address, int length) except? NULL:
    """``delta4_at`` for the IPv6 delta (``address``: 16 octets)."""
    if length > 128 or not delta.counts[length]:
        return NULL
    return delta.get_c(key6_obj(be64(address), be64(address + 8), length))


def bucket_starts(keys):
    """Per value of a key's first 16 bits, where its keys start in the sorted
    ``keys`` (65,537 Py_ssize_t: the last is ``len(keys)``), for ``arrays_covering``.
    Built once per keys array (``PrefixStore.buckets``): ~0.5 MB, a pass over
    the keys."""
    cdef Py_buffer view
    cdef Py_ssize_t n
    cdef int width
    cdef const unsigned char *base
    out = bytearray(65537 * sizeof(Py_ssize_t))
    cdef Py_ssize_t *starts = <Py_ssize_t *>(<char *>out)
    PyObject_GetBuffer(keys, &view, PyBUF_ND)
    try:
        width = <int>view.itemsize
        if view.ndim != 1 or width < 3 or width > 32:
            raise ValueError(f"keys of {width} octets have no buckets")
        n = view.shape[0]
        base = <const unsigned char *>view.buf
        first16_starts(base, n, width, starts)
    finally:
        PyBuffer_Release(&view)
    return out


def covering_indices(keys, const unsigned char[::1] address, int limit):
    """[(index, length), ...] of the sorted packed ``keys`` (address octets,
    then length + 1) that hold ``address`` (packed, one octet shorter than a
    key) with a length of at most ``limit``, longest first; a key whose value
    is a hole is among them (the caller reads the values).

    The walk of ``_covering_arrays``: the last key <= (address cut to limit,
    limit) either holds the address or shares only its first ``c`` bits with
    it; then no key between can hold it, and the next candidate is the last
    key <= (address cut to c, c)."""
    cdef Py_buffer view
    cdef int width, found, k
    cdef Py_ssize_t index[MAX_COVERING]
    cdef int length[MAX_COVERING]
    PyObject_GetBuffer(keys, &view, PyBUF_ND)
    try:
        width = <int>view.itemsize
        if view.ndim != 1 or width < 2 or width > 32 or address.shape[0] != width - 1:
            raise ValueError(f"keys of {width} octets do not fit an address of {address.shape[0]}")
        found = arrays_covering(<const unsigned char *>view.buf, view.shape[0], width,
                                &address[0], limit, index, length, NULL)
    finally:
        PyBuffer_Release(&view)
    return [(index[k], length[k]) for k in range(found)]


cdef int delta4_covering(IntDelta delta, unsigned int address, int limit,
                         int *length, PyObject **entry) except -1:
    """The IPv4 delta's prefixes holding ``address`` with a length of at most
    ``limit``, longest first: their lengths and entries (borrowed) into
    ``length`` / ``entry`` (room for 33); returns how many. One probe per
    length the delta holds."""
    cdef int n, found = 0
    cdef PyObject *e
    for n in range(min(delta.max_length, limit, 32), -1, -1):
        e = delta4_at(delta, address, n)
        if e != NULL:
            length[found] = n
            entry[found] = e
            found += 1
    return found


def delta_covering4(IntDelta delta, unsigned int address, int limit):
    """[(length, entry), ...] of the IPv4 delta's prefixes holding ``address``
    (an int), with a length of at most ``limit``, longest first: one probe per
    length the delta holds, as ``PrefixStore._covering_delta`` makes them. While
    tables stream in, the delta holds every length of the table, and the
    Python loop over them was the other half of an exact lookup (stop 44)."""
    cdef int length[33]
    cdef PyObject *entry[33]
    cdef int found = delta4_covering(delta, address, limit, length, entry), k
    return [(length[k], <object>entry[k]) for k in range(found)]
