# Shared with ribd._loadline (cimport): a table load's common UPDATE body
# decoded into its prefix keys (the IPv4 store's ints) and attribute row, nothing interned.

cdef tuple load_update(const unsigned char *p, Py_ssize_t end, bint asn4)
