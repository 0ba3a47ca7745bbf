# The scan's value readings (ribd._rawline cimports them).

cdef bytes unhex(const unsigned char *p, Py_ssize_t at, Py_ssize_t stop)
cdef double number_value(const unsigned char *p, Py_ssize_t at, Py_ssize_t stop) noexcept
