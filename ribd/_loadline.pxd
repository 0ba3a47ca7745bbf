# Shared with ribd._feedloop (cimport): the fused path's loader, called per line
# without a Python method call (``load_c``, the body of ``LineLoader.load``).

cdef class LineLoader:
    cdef object _raw
    cdef object _rib
    cdef dict _peers  # peer text as octets -> canonical address (None: not one)
    cdef public Py_ssize_t taken  # lines this applied (tests, benchmarks)

    cdef object load_c(self, bytes line, c, Py_ssize_t *counted)
    cdef object load_at(self, const unsigned char *line, Py_ssize_t size, c, Py_ssize_t *counted)
