# Shared with ribd._apply and ribd._wide (cimport): ``Rib._announce``'s general
# loop compiled (its search of IPv4 int keys: ribd._storeread), and its entry
# built with one router's slot set (ribd._apply's shared path builds its own so).

cdef int general_loop(rib, table, fs, prefixes, path_ids, found, attrs, fresh, Py_ssize_t added, Py_ssize_t count) except -1
cdef object _with_slot(tuple entry, Py_ssize_t slot, object value, Py_ssize_t clear)
