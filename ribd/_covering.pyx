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
    cdef Py_ssize_t n, lo, hi, mid, i
    cdef int width, size, length, common, full, rem
    cdef unsigned char probe[32]
    cdef const unsigned char *base
    cdef const unsigned char *key
    out = []
    PyObject_GetBuffer(keys, &view, PyBUF_ND)
    try:
        width = <int>view.itemsize
        size = width - 1
        if view.ndim != 1 or width < 2 or width > 32 or address.shape[0] != size:
            raise ValueError(f"keys of {width} octets do not fit an address of {address.shape[0]}")
        n = view.shape[0]
        base = <const unsigned char *>view.buf
        if limit > size * 8:
            limit = size * 8
        while limit >= 0 and n:
            full, rem = limit // 8, limit % 8
            memset(probe, 0, width)
            memcpy(probe, &address[0], full)
            if rem:
                probe[full] = address[full] & ((0xFF << (8 - rem)) & 0xFF)
            probe[size] = limit + 1
            lo, hi = 0, n
            while lo < hi:  # the first key > probe
                mid = (lo + hi) >> 1
                if memcmp(base + mid * width, probe, width) <= 0:
                    lo = mid + 1
                else:
                    hi = mid
            i = lo - 1
            if i < 0:
                break
            key = base + i * width
            length = key[size] - 1
            if length < 0:
                break  # not a key this store writes
            common = _common_bits(&address[0], key, size)
            if common >= length:
                out.append((i, length))
                # (length <= limit in sorted keys; in keys read from a damaged
                # snapshot, still never loop)
                limit = (length if length < limit else limit) - 1
            else:
                # (common >= limit cannot be, keys being sorted: never loop)
                limit = common if common < limit else limit - 1
    finally:
        PyBuffer_Release(&view)
    return out


def delta_covering4(IntDelta delta, unsigned int address, int limit):
    """[(length, entry), ...] of the IPv4 delta's prefixes holding ``address``
    (an int), with a length of at most ``limit``, longest first: one probe per
    length the delta holds, as ``PrefixStore._covering_delta`` makes them. While
    tables stream in, the delta holds every length of the table, and the
    Python loop over them was the other half of an exact lookup (stop 44)."""
    cdef int length
    cdef uint64_t key
    cdef PyObject *entry
    out = []
    if limit > 32:
        limit = 32
    for length in range(min(delta.max_length, limit), -1, -1):
        if not delta.counts[length]:
            continue
        key = (<uint64_t>1 << length) | ((<uint64_t>address) >> (32 - length))
        entry = delta.get_c(key)
        if entry != NULL:
            out.append((length, <object>entry))
    return out
