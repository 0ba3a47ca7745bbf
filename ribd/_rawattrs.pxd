# Shared with ribd._rawdecode (cimport): a raw UPDATE's path attributes, framed and decoded.
# Every function reads only the octets its caller has checked are there.

# Attribute type codes (ribd.rawattrs has the same numbers).
cdef enum:
    ORIGIN = 1
    AS_PATH = 2
    NEXT_HOP = 3
    MED = 4
    LOCAL_PREF = 5
    ATOMIC_AGGREGATE = 6
    AGGREGATOR = 7
    COMMUNITIES = 8
    ORIGINATOR_ID = 9
    CLUSTER_LIST = 10
    MP_REACH = 14
    MP_UNREACH = 15
    EXTENDED_COMMUNITIES = 16
    AS4_PATH = 17
    AS4_AGGREGATOR = 18
    LARGE_COMMUNITIES = 32


cdef struct Attrs:
    # Offsets (from the attributes' first octet) of the first copy of each
    # attribute we read, as ribd.rawattrs._split_attributes keeps it.
    Py_ssize_t start[256]
    Py_ssize_t stop[256]
    unsigned char have[256]
    int count
    # The memo hashes of the AS path's, communities' and next hop's octets,
    # where ``prefetch_memos`` took them (``hashed``: bits 1 << H_*), so that
    # the lookups after it do not hash the same octets again.
    unsigned int hashed
    unsigned long long hash[3]


cdef enum:
    H_PATH = 0
    H_COMMUNITIES = 1
    H_HOP = 2


# The decoder's memos (ribd/_rawattrs_memo.pxi), in ribd.decoder_memo.MEMO_KINDS' order.
cdef enum:
    M_HOPS = 0
    M_PATHS4 = 1
    M_PATHS2 = 2
    M_COMMUNITIES = 3
    M_CLUSTERS = 4
    M_HOPS6 = 5
    M_EXTENDED = 6
    M_N = 7


cdef str address_text(const unsigned char *a, int n)
cdef str split_attributes(const unsigned char *d, Py_ssize_t end, Attrs *A)
cdef object attribute_fields(const unsigned char *d, Attrs *A, bint asn4, interner)
cdef object ipv4_row(const unsigned char *d, Attrs *A, bint asn4, interner)
cdef void prefetch_memos(const unsigned char *d, Attrs *A, bint asn4) noexcept
cdef object attribute_row(const unsigned char *d, Attrs *A, bint asn4, interner, str next_hop)


cdef inline tuple row_with_hop(tuple f, str next_hop):
    """The attribute row (``ribd.attributes``' field order) of ``attribute_fields``'
    tuple and a next hop."""
    return (f[0], f[1], next_hop, f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10])
