# Shared with ribd._wide (cimport): ``entries._rejoin`` in C.

cdef object rejoin_c(object entry, tuple over, tuple row, Py_ssize_t slot, object attrs,
                     Py_ssize_t clear, list diffs, Py_ssize_t r, tuple base)
