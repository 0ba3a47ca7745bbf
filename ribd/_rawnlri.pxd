# Shared with ribd._rawdecode (cimport): NLRI fields and address texts from raw octets.
# Every function reads only the octets its caller has checked are there.

cdef str quad(const unsigned char *a)
cdef str prefix4_text(const unsigned char *a, unsigned int length)
cdef str ipv6_text(const unsigned char *a)
cdef str prefix6_text(const unsigned char *a, unsigned int length)
cdef tuple nlri(const unsigned char *p, Py_ssize_t end, bint v6, bint add_path)
cdef list nlri4_keys(const unsigned char *p, Py_ssize_t end)
cdef list nlri6_keys(const unsigned char *p, Py_ssize_t end)


cdef inline unsigned int u32(const unsigned char *a) noexcept:
    return (<unsigned int>a[0] << 24) | (<unsigned int>a[1] << 16) | (a[2] << 8) | a[3]


cdef extern from *:
    int __builtin_clzll(unsigned long long x) nogil


cdef inline unsigned long long packed4(unsigned long long v) noexcept nogil:
    """An IPv4 store's int key (``1 << length | network``, 1 <= v < 1 << 33,
    ribd.prefix_keys) as its packed 5-byte key read as a big-endian number:
    ``network << 8 | length + 1`` (ribd._rawkeys writes it out, ribd._announce
    compares it with the store's packed keys)."""
    cdef int length = 63 - __builtin_clzll(v)
    cdef unsigned long long net = v ^ (1ULL << length)
    net = (net << (32 - length)) if length else 0
    return (net << 8) | <unsigned long long>(length + 1)
