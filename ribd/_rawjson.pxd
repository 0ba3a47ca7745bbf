# The JSON walk of a packets line (ribd._rawline cimports it).

cdef enum:
    MAX_NEST = 16  # containers deep; ExaBGP's packets lines have 3 (4 with "negotiated")
    MAX_DIGITS = 17  # of a number; more, and orjson's rounding or range might differ
    # Where a value sits: the objects whose keys we read, and everything else.
    TOP = 0
    NEIGHBOR = 1
    ADDRESS = 2
    MESSAGE = 3
    OTHER = 4
    # What a tracked value was.
    ABSENT = 0
    OBJECT = 1
    STRING = 2
    INTEGER = 3
    FLOAT = 4
    LITERAL = 5
    ARRAY = 6


cdef struct Value:
    int kind
    Py_ssize_t at  # strings: the first octet inside the quotes; numbers: the first octet
    Py_ssize_t stop  # one past the last octet (the closing quote's index for strings)


cdef struct Found:
    Value time
    Value neighbor
    Value address
    Value message
    Value direction
    Value peer
    Value category
    Value body


cdef bint scan(const unsigned char *p, Py_ssize_t n, Found *F) noexcept nogil
cdef bint shaped(const unsigned char *p, Py_ssize_t n, Found *F) noexcept nogil
# A line read against a form of an earlier line (ribd/_rawform.pxi).
cdef bint formed(const unsigned char *p, Py_ssize_t n, Found *F) noexcept nogil
cdef void form_keep(const unsigned char *p, Py_ssize_t n, Found *F) noexcept nogil
cdef bint use_forms(bint on) noexcept
cdef int forms_kept() noexcept
