from ribd._rawattrs cimport Attrs


# The decoder's class, declared here so that ribd._loadline reads a decoder's
# ``interner`` as a field (of an object of exactly this type) where a generic
# getattr of the property took ~130 instructions a line (stop 36, loadreads).
cdef class UpdateDecoder:
    cdef public object interner

    cdef object _announce_ipv4(self, neighbor, const unsigned char *d, Attrs *A, bint asn4, tuple nlri)


# Shared with ribd._loadline (cimport): a table load's common UPDATE body
# decoded into its prefix keys (the IPv4 store's ints) and attribute row, nothing interned
# (a new AS path's numbers taken through ``interner``'s cache: ribd.interner.share_numbers).

cdef tuple load_update(const unsigned char *p, Py_ssize_t end, bint asn4, interner)
# The same for an UPDATE whose only routes are IPv6 unicast NLRI (MP_REACH_NLRI):
# the keys are the IPv6 store's ints (ribd.prefix_keys).
cdef tuple load_update6(const unsigned char *p, Py_ssize_t end, bint asn4, interner, add_path)
