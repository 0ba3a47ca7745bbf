# Shared with ribd._rawdecode (cimport): NLRI fields and address texts from raw octets.
# Every function reads only the octets its caller has checked are there.

cdef str quad(const unsigned char *a)
cdef str prefix4_text(const unsigned char *a, unsigned int length)
cdef str ipv6_text(const unsigned char *a)
cdef tuple nlri(const unsigned char *p, Py_ssize_t end, bint v6, bint add_path)
cdef list nlri4_keys(const unsigned char *p, Py_ssize_t end)


cdef inline unsigned int u32(const unsigned char *a) noexcept:
    return (<unsigned int>a[0] << 24) | (<unsigned int>a[1] << 16) | (a[2] << 8) | a[3]
