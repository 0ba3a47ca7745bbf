# cython: language_level=3
"""The store's packed keys (address octets, then length + 1) for the compiled
searches over them: the announce loops' (``ribd._storeread``) and the exact
lookups' (``ribd._covering``). An IPv4 key as one number that compares as
the bytes do, and where the keys of each first 16 bits start."""


cdef extern from *:
    """
    #ifndef RIBD_KEY5
    #define RIBD_KEY5
    #include <string.h>
    /* One 4-byte load and a byte swap where the machine is little-endian, where
       the five shifts and ORs of each byte were ~2% of router 17's feed under
       callgrind (stop 37, movewide). */
    static inline unsigned long long ribd_key5(const unsigned char *p) {
    #if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        unsigned int w;
        memcpy(&w, p, 4);
        return ((unsigned long long)__builtin_bswap32(w) << 8) | p[4];
    #else
        return ((unsigned long long)p[0] << 32) | ((unsigned long long)p[1] << 24)
             | ((unsigned long long)p[2] << 16) | ((unsigned long long)p[3] << 8) | p[4];
    #endif
    }
    #endif
    """
    unsigned long long ribd_key5(const unsigned char *p) noexcept nogil


cdef inline void first16_starts(const unsigned char *base, Py_ssize_t n, Py_ssize_t width,
                                Py_ssize_t *starts) noexcept nogil:
    """For each value b of a key's first two octets, the index of the first of
    the ``n`` sorted keys of ``width`` octets at ``base`` whose first two
    octets are >= b, into ``starts`` (65,537 of them: the last is ``n``).
    Non-decreasing and within 0..n even over keys out of order, so a search
    between two of them never reads outside the keys."""
    cdef Py_ssize_t i, b = 0, k
    for i in range(n):
        k = (<Py_ssize_t>base[i * width] << 8) | base[i * width + 1]
        while b <= k:
            starts[b] = i
            b += 1
    while b <= 65536:
        starts[b] = n
        b += 1
