# cython: language_level=3, boundscheck=True, wraparound=False, initializedcheck=True
"""JSON lines of `attribution enrich`, assembled in C: each record's own text and its answer.

The same bytes as :meth:`attribution.enrich_wire.AnswerBatch.json_lines`'s numpy
path (tests/attribution/test_enrich_scan.py compares them), without a Python
object per piece: per record, its text without the closing brace, the router
(a piece per router of the reply), each side's AS numbers and provenances
(written here), its route's fields (the stream's tables of pre-encoded
pieces), the override and flags (a piece per distinct pair, made by a Python
callback once per batch), or an error's piece instead of the answer.
Why: putting ~7 pieces a record together in Python cost more than the
service's whole answer.

Indexes from the reply (router, routes, override) are checked against the
tables before use: a bad one raises IndexError, as the numpy path does.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t
from cpython.object cimport PyObject
from libc.string cimport memcpy
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE


include "_enrich_defs.pxi"
include "_enrich_out.pxi"


cdef bint _opens_empty(const char* p, Py_ssize_t n) noexcept:
    """The record's text without its closing brace ends in its opening one (``{}``,
    ``{ }``): its answer goes in without the comma that separates it from a field."""
    cdef Py_ssize_t j = n - 1
    while j >= 0 and (p[j] == 32 or p[j] == 9 or p[j] == 13 or p[j] == 10):
        j -= 1
    return j >= 0 and p[j] == 123


DEF SIDE_ROOM = 160  # a side's fixed text (~96 bytes) and its two numbers' digits (20)


cdef char* _side(
    char* w, const char* s, uint32_t origin, uint32_t peer,
    const char* pa, Py_ssize_t na, const char* pb, Py_ssize_t nb,
) noexcept nogil:
    """``"src_origin_as":..,"src_peer_as":..,"src_origin_provenance":"..",
    "src_peer_provenance":"..",`` as RouteDictionary.asn_json writes it, at w
    (SIDE_ROOM + na + nb bytes reserved by the caller): past it."""
    w = _copy(w, '"', 1)
    w = _copy(w, s, 3)
    w = _copy(w, '_origin_as":', 12)
    w = _digits(w, origin)
    w = _copy(w, ',"', 2)
    w = _copy(w, s, 3)
    w = _copy(w, '_peer_as":', 10)
    w = _digits(w, peer)
    w = _copy(w, ',"', 2)
    w = _copy(w, s, 3)
    w = _copy(w, '_origin_provenance":"', 21)
    w = _copy(w, pa, na)
    w = _copy(w, '","', 3)
    w = _copy(w, s, 3)
    w = _copy(w, '_peer_provenance":"', 19)
    w = _copy(w, pb, nb)
    return _copy(w, '",', 2)


cdef int _text(
    list raw, Py_ssize_t i, const uint8_t[::1] spans, list chunks, const char** body, Py_ssize_t* n
) except -1:
    """Record i's text without its closing brace: its bytes, or its span of a chunk."""
    cdef int64_t start
    cdef int32_t length, chunk
    text = raw[i]
    if text is None:
        if spans is None or chunks is None or (i + 1) * SPAN > spans.shape[0]:
            raise ValueError(f"record {i} has neither text nor span")
        memcpy(&start, &spans[i * SPAN], 8)
        memcpy(&length, &spans[i * SPAN + 8], 4)
        memcpy(&chunk, &spans[i * SPAN + 12], 4)
        if not (0 <= chunk < len(chunks)):
            raise IndexError(f"record {i}'s text is in no chunk")
        data = chunks[chunk]
        if type(data) is not bytes:
            raise TypeError(f"chunk {chunk} is not bytes")
        if start < 0 or length < 0 or start + length > PyBytes_GET_SIZE(data):
            raise IndexError(f"record {i}'s text is outside its chunk")
        body[0] = PyBytes_AS_STRING(data) + start
        n[0] = length
        return 0
    if type(text) is not bytes or PyBytes_GET_SIZE(text) < 1:
        raise TypeError(f"record {i}'s text is not JSON object bytes")
    body[0] = PyBytes_AS_STRING(text)
    n[0] = PyBytes_GET_SIZE(text) - 1
    return 0


def json_lines(
    list raw,
    const uint8_t[::1] records,
    list heads,
    object[:] src_table,
    object[:] dst_table,
    list prov,
    object tail,
    dict errors,
    const uint8_t[::1] spans=None,
    list chunks=None,
):
    """The batch's JSON lines in one bytearray, written into it once (handed
    to the file's write as it is: no copy into a bytes object).

    ``raw[i]``: record i's text (its last byte, the closing brace, is left
    off); ``records``: the packed answers (RECORD_DTYPE bytes); ``heads[r +
    1]``: router r's piece (``heads[0]``: none); the route tables: a route k's
    side piece at k + 1; ``prov``: provenance names by number; ``tail(override,
    flags)``: the closing piece; ``errors``: {i: the piece that replaces record
    i's answer}; ``spans``, ``chunks``: where the records whose ``raw`` item
    is None have their text (``Packed.span_table``, ``Packed.chunks``: a
    chunk's data, start, length without the closing brace), every one checked
    against its chunk before it is read.
    """
    cdef Py_ssize_t n = len(raw)
    cdef Py_ssize_t i, skip, need, nsp, ndp, ntail, nhead
    cdef const uint8_t* r
    cdef int32_t router, src_route, dst_route, override
    cdef uint32_t flags
    cdef Head h
    cdef int32_t last_override = -2
    cdef uint32_t last_flags = 0
    cdef Out o
    cdef object last_tail = None
    cdef object sp, dp, head
    cdef Py_ssize_t texts = 0
    cdef Py_ssize_t nheads = len(heads), nsrc = src_table.shape[0], ndst = dst_table.shape[0]
    cdef const char* prov_p[256]
    cdef Py_ssize_t prov_n[256]
    cdef char* w
    if records.shape[0] != n * RECORD:
        raise ValueError(f"{records.shape[0]} bytes of answers for {n} records")
    if len(prov) < 256:
        raise ValueError("a provenance name for each of 256 numbers is needed")
    for i in range(256):  # the names' bytes, looked up by number below (prov keeps them)
        prov_n[i] = _size(prov[i])
        prov_p[i] = PyBytes_AS_STRING(prov[i])
    cdef const char* body
    cdef Py_ssize_t length
    for i in range(n):  # the records' own bytes, and room for each answer: one allocation
        _text(raw, i, spans, chunks, &body, &length)
        texts += length
    out = PyByteArray_FromStringAndSize(NULL, 0)
    o.out = <PyObject*>out
    o.buf = PyByteArray_AS_STRING(out)
    o.size = 0
    o.cap = 0
    _reserve(&o, texts + n * 1024)
    for i in range(n):
        if errors and i in errors:
            _text(raw, i, spans, chunks, &body, &length)
            _put(&o, body, length)
            _piece(&o, errors[i], 1 if _opens_empty(body, length) else 0)
            continue
        r = &records[i * RECORD]
        _head(r, &h)  # _enrich_out.pxi: the one reader of the record's layout
        router = h.router
        src_route = h.src_route
        dst_route = h.dst_route
        override = h.override
        flags = h.flags
        if router < 0:
            router = -1
        if router + 1 >= nheads:
            raise IndexError(f"router {router} of a reply naming {nheads - 1}")
        if not (-1 <= src_route < nsrc - 1 and -1 <= dst_route < ndst - 1):
            raise IndexError(f"route {src_route} or {dst_route} is not in the dictionary")
        if override != last_override or flags != last_flags or last_tail is None:
            last_tail = tail(override, flags)
            last_override = override
            last_flags = flags
        # the text again, after ``tail`` (Python code) and before any Python object is made
        _text(raw, i, spans, chunks, &body, &length)
        skip = 1 if _opens_empty(body, length) else 0
        head = heads[router + 1]
        sp = src_table[src_route + 1]
        dp = dst_table[dst_route + 1]
        nhead = _size(head)
        if nhead < skip:
            raise ValueError("an output piece shorter than its separator")
        nsp = _size(sp)
        ndp = _size(dp)
        ntail = _size(last_tail)
        need = (length + nhead + nsp + ndp + ntail + 2 * SIDE_ROOM
                + prov_n[r[A_PROV]] + prov_n[r[A_PROV + 1]]
                + prov_n[r[A_PROV + 2]] + prov_n[r[A_PROV + 3]])
        _reserve(&o, need)  # the record's whole line: written below without more checks
        w = o.buf + o.size
        w = _copy(w, body, length)
        w = _copy(w, PyBytes_AS_STRING(head) + skip, nhead - skip)
        w = _side(w, "src", _u32(r + A_ASN), _u32(r + A_ASN + 4),
                  prov_p[r[A_PROV]], prov_n[r[A_PROV]],
                  prov_p[r[A_PROV + 1]], prov_n[r[A_PROV + 1]])
        w = _copy(w, PyBytes_AS_STRING(sp), nsp)
        w = _side(w, "dst", _u32(r + A_ASN + 8), _u32(r + A_ASN + 12),
                  prov_p[r[A_PROV + 2]], prov_n[r[A_PROV + 2]],
                  prov_p[r[A_PROV + 3]], prov_n[r[A_PROV + 3]])
        w = _copy(w, PyBytes_AS_STRING(dp), ndp)
        w = _copy(w, PyBytes_AS_STRING(last_tail), ntail)
        o.size = w - o.buf
    if PyByteArray_Resize(out, o.size) < 0:
        raise MemoryError()
    return out
