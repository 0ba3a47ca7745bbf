# Shared with ribd._loadline (cimport): a table load's common UPDATE body
# decoded into its prefix keys (the IPv4 store's ints) and attribute row, nothing interned
# (a new AS path's numbers taken through ``interner``'s cache: ribd.interner.share_numbers).

cdef tuple load_update(const unsigned char *p, Py_ssize_t end, bint asn4, interner)
# The same for an UPDATE whose only routes are IPv6 unicast NLRI (MP_REACH_NLRI):
# the keys are the IPv6 store's ints (ribd.prefix_keys).
cdef tuple load_update6(const unsigned char *p, Py_ssize_t end, bint asn4, interner, add_path)
