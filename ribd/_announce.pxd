# Shared with ribd._apply (cimport): ``Rib._announce``'s general loop, compiled.

cdef int general_loop(rib, table, fs, prefixes, path_ids, found, attrs, fresh, Py_ssize_t added, Py_ssize_t count) except -1
