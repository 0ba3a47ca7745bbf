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


# The packed answer record (attribution.answers.RECORD_DTYPE) as both assemblers
# read it: one set of offsets and one reader. RECORD_LAYOUT is the same view for
# Python: attribution.enrich_wire.compiled_layout_ok checks it against
# RECORD_DTYPE (a test too), and a module whose layout differs is not used.
DEF RECORD = 40
DEF A_ROUTER = 0
DEF A_ASN = 4  # src origin, src peer, dst origin, dst peer: four uint32
DEF A_PROV = 20  # their provenances: four uint8
DEF A_FLAGS = 24
DEF A_SRC_ROUTE = 28
DEF A_DST_ROUTE = 32
DEF A_OVERRIDE = 36

RECORD_SIZE = RECORD
RECORD_LAYOUT = (  # (field, byte offset, numpy type) in RECORD_DTYPE's order
    ("router", A_ROUTER, "<i4"),
    ("src_origin_as", A_ASN, "<u4"),
    ("src_peer_as", A_ASN + 4, "<u4"),
    ("dst_origin_as", A_ASN + 8, "<u4"),
    ("dst_peer_as", A_ASN + 12, "<u4"),
    ("provenance", A_PROV, "(4,)u1"),
    ("flags", A_FLAGS, "<u4"),
    ("src_route", A_SRC_ROUTE, "<i4"),
    ("dst_route", A_DST_ROUTE, "<i4"),
    ("override", A_OVERRIDE, "<i4"),
)


cdef struct Head:  # an answer record's indexes into the reply's tables, and its flags
    int32_t router
    int32_t src_route
    int32_t dst_route
    int32_t override
    uint32_t flags


cdef inline void _head(const uint8_t* r, Head* h) noexcept nogil:
    """Record ``r``'s router, routes, override and flags (unchecked: the callers
    check each index against its table)."""
    h.router = _i32(r + A_ROUTER)
    h.src_route = _i32(r + A_SRC_ROUTE)
    h.dst_route = _i32(r + A_DST_ROUTE)
    h.override = _i32(r + A_OVERRIDE)
    h.flags = _u32(r + A_FLAGS)


cdef inline Py_ssize_t _size(object piece) except -1:
    if type(piece) is not bytes:
        raise TypeError(f"an output piece is {type(piece).__name__}, not bytes")
    return PyBytes_GET_SIZE(piece)
