# Shared with ribd._loadline (cimport): a received UPDATE's packets line read
# as ``RawLineScanner.events`` reads it.

cdef bytes line_update(const unsigned char *p, Py_ssize_t n, Py_ssize_t *peer_at, Py_ssize_t *peer_stop, double *stamp, bint *timed)
cdef object peer_of(dict peers, const unsigned char *line, Py_ssize_t at, Py_ssize_t stop)
cdef object events_of(decoder, peer, bytes body, caps, bint timed, double stamp)
