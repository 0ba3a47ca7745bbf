# Shared with ribd._apply and ribd._wide (cimport): ``Rib._announce``'s general
# loop compiled (its search of IPv4 int keys: ribd._storeread).

cdef int general_loop(rib, table, fs, prefixes, path_ids, found, attrs, fresh, Py_ssize_t added, Py_ssize_t count) except -1
