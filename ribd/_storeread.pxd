# Shared with ribd._announce and ribd._wide (cimport): the store's arrays read
# from C, the IPv4 int keys' search and the values' cells.

from cpython.ref cimport PyObject

cdef bint _find_ints(keys, seq, Py_ssize_t n, Py_ssize_t *out) except -1
cdef int store_cells(values, PyObject ***cells, Py_ssize_t *n) except -1
