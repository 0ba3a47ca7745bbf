# Shared with ribd._apply (cimport): a wide table's UPDATE written in C from
# its keys, without ``Rib._announce``'s Python prologue.

cdef int wide_parts(rib, table, fs, prefixes, path_ids, attrs, Py_ssize_t count) except -1
