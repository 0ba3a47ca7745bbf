# Shared with ribd._apply and ribd._wide (cimport): ``Rib._announce``'s general
# loop compiled, and its search of IPv4 int keys in the store's packed keys.

cdef int general_loop(rib, table, fs, prefixes, path_ids, found, attrs, fresh, Py_ssize_t added, Py_ssize_t count) except -1
cdef bint _find_ints(keys, seq, Py_ssize_t n, Py_ssize_t *out) except -1
