# The output buffer and the small writers shared by the compiled assemblers of
# `attribution enrich` (attribution/_enrich_json.pyx: JSON lines,
# _enrich_csv.pyx: CSV; included by each): a bytearray written once, grown
# by doubling, and the copies and digits every line is made of.

cdef struct Out:
    char* buf  # the bytearray's storage: moves when it grows
    Py_ssize_t size
    Py_ssize_t cap
    PyObject* out  # the bytearray returned: the lines are written once, into it


cdef int _reserve(Out* o, Py_ssize_t more) except -1:
    cdef Py_ssize_t cap = o.cap
    if o.size + more <= cap:
        return 0
    while cap < o.size + more:
        cap = cap * 2 + 4096
    if PyByteArray_Resize(<object>o.out, cap) < 0:
        raise MemoryError()
    o.buf = PyByteArray_AS_STRING(<object>o.out)
    o.cap = cap
    return 0


cdef inline int _put(Out* o, const char* p, Py_ssize_t n) except -1:
    _reserve(o, n)
    memcpy(o.buf + o.size, p, n)
    o.size += n
    return 0


cdef inline int _piece(Out* o, object piece, Py_ssize_t skip=0) except -1:
    if type(piece) is not bytes:
        raise TypeError(f"an output piece is {type(piece).__name__}, not bytes")
    if PyBytes_GET_SIZE(piece) < skip:
        raise ValueError("an output piece shorter than its separator")
    return _put(o, PyBytes_AS_STRING(piece) + skip, PyBytes_GET_SIZE(piece) - skip)


cdef inline char* _digits(char* w, uint32_t v) noexcept nogil:
    """v's decimal digits at w (room for 10 checked by the caller): past them."""
    cdef char digits[12]
    cdef int n = 0
    cdef int j
    if v == 0:
        w[0] = 48
        return w + 1
    while v:
        digits[n] = <char>(48 + v % 10)
        v //= 10
        n += 1
    for j in range(n):
        w[j] = digits[n - 1 - j]
    return w + n


cdef inline char* _copy(char* w, const char* p, Py_ssize_t n) noexcept nogil:
    memcpy(w, p, n)
    return w + n


cdef inline uint32_t _u32(const uint8_t* p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef inline int32_t _i32(const uint8_t* p) noexcept nogil:
    cdef int32_t v
    memcpy(&v, p, 4)
    return v


cdef inline Py_ssize_t _size(object piece) except -1:
    if type(piece) is not bytes:
        raise TypeError(f"an output piece is {type(piece).__name__}, not bytes")
    return PyBytes_GET_SIZE(piece)
