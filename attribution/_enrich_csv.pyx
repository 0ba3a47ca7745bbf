# cython: language_level=3, boundscheck=True, wraparound=False, initializedcheck=True
"""CSV rows of `attribution enrich`, assembled in C: each record's flow columns and its answer.

The same bytes as pyarrow.csv writes from the Arrow table of
:func:`attribution.enrich_arrow.csv_table` (text quoted with ``"`` and a
``"`` in it doubled, a null empty, numbers in decimal, booleans ``true`` and
``false``; tests/attribution/test_enrich_csv.py compares both byte for byte),
without that table: the flow columns as attribution._enrich_columns made them
(Arrow string buffers, fixed-width numbers), the answer from the packed
records (AS numbers written here) and pieces made once (a route's prefix and
AS path once per stream, a router or exporter once per batch, the override,
flags and error columns once per distinct pair, by a Python callback).
Why: Arrow's CSV writer, the table and the answer columns it needs cost ~1 µs
a record, more than the service's whole answer.

Every index (format, exporter, router, routes) and every string's offsets are
checked before use: a bad one raises IndexError or ValueError.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from cpython.object cimport PyObject
from libc.string cimport memcpy, memchr
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM


DEF NUMBER_ROOM = 24  # an int64's digits and sign, and its comma
include "_enrich_out.pxi"


cdef struct Col:  # an Arrow string column's buffers (attribution._enrich_columns' shape)
    const uint8_t* valid  # NULL: no nulls
    const int32_t* off
    const char* data
    Py_ssize_t size


cdef int _col(Col* c, object buffers, Py_ssize_t n, str name) except -1:
    """``buffers``: (validity or None, offsets, data, null count) as bytes,
    for n values; checked to be that long (each value's offsets are checked
    when it is read)."""
    if type(buffers) is not tuple or len(buffers) != 4:
        raise TypeError(f"{name}: not a column's buffers")
    valid, offsets, data = buffers[0], buffers[1], buffers[2]
    if type(offsets) is not bytes or type(data) is not bytes:
        raise TypeError(f"{name}: offsets and data must be bytes")
    if PyBytes_GET_SIZE(offsets) < (n + 1) * 4:
        raise ValueError(f"{name}: {PyBytes_GET_SIZE(offsets)} bytes of offsets for {n} values")
    c.valid = NULL
    if valid is not None:
        if type(valid) is not bytes or PyBytes_GET_SIZE(valid) < (n + 7) // 8:
            raise ValueError(f"{name}: a validity bitmap too short for {n} values")
        c.valid = <const uint8_t*>PyBytes_AS_STRING(valid)
    c.off = <const int32_t*>PyBytes_AS_STRING(offsets)
    c.data = PyBytes_AS_STRING(data)
    c.size = PyBytes_GET_SIZE(data)
    return 0


cdef inline Py_ssize_t _value(Col* c, Py_ssize_t i, const char** p) except -2:
    """Value i: its length and bytes at p, or -1 for a null."""
    cdef int32_t a
    cdef int32_t b
    if c.valid != NULL and not (c.valid[i >> 3] >> (i & 7)) & 1:
        return -1
    memcpy(&a, c.off + i, 4)
    memcpy(&b, c.off + i + 1, 4)
    if a < 0 or b < a or b > c.size:
        raise ValueError(f"value {i}'s offsets {a}..{b} are outside its column")
    p[0] = c.data + a
    return b - a


cdef inline char* _quoted(char* w, const char* p, Py_ssize_t m) noexcept nogil:
    """``"text",`` with each ``"`` in it doubled, at w (2 * m + 3 bytes
    reserved by the caller), or only the comma for a null (m < 0): past it."""
    cdef const char* q
    cdef Py_ssize_t k
    if m < 0:
        w[0] = 44
        return w + 1
    w[0] = 34
    w += 1
    while m > 0:
        q = <const char*>memchr(p, 34, m)
        if q == NULL:
            w = _copy(w, p, m)
            break
        k = q - p + 1
        w = _copy(w, p, k)
        w[0] = 34
        w += 1
        p += k
        m -= k
    w[0] = 34
    w[1] = 44
    return w + 2


cdef extern from *:
    """
    /* v in decimal, then a comma, at w (room for 21): past it; two digits a step */
    static const char enrich_csv_pairs[201] =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
        "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
        "8081828384858687888990919293949596979899";
    static inline char* enrich_csv_uint(char* w, unsigned long long u) {
        char buf[24];
        char* p = buf + 24;
        while (u >= 100) {
            unsigned r = (unsigned)(u % 100);
            u /= 100;
            p -= 2;
            memcpy(p, enrich_csv_pairs + 2 * r, 2);
        }
        if (u >= 10) {
            p -= 2;
            memcpy(p, enrich_csv_pairs + 2 * u, 2);
        } else {
            *--p = (char)('0' + u);
        }
        memcpy(w, p, (size_t)(buf + 24 - p));
        w += buf + 24 - p;
        *w = ',';
        return w + 1;
    }
    """
    char* _uint_comma "enrich_csv_uint"(char* w, uint64_t u) nogil


cdef inline char* _int64(char* w, int64_t v) noexcept nogil:
    """v in decimal, sign and all, and a comma (room for 21 checked by the
    caller): past it."""
    if v < 0:
        w[0] = 45
        return _uint_comma(w + 1, <uint64_t>(-(v + 1)) + 1)
    return _uint_comma(w, <uint64_t>v)


cdef extern from *:
    """
    static inline Py_ssize_t enrich_csv_piece_len(PyObject* p) {
        return PyBytes_CheckExact(p) ? PyBytes_GET_SIZE(p) : -1;
    }
    """
    Py_ssize_t _piece_len "enrich_csv_piece_len"(PyObject* p) nogil


cdef struct Piece:
    const char* p
    Py_ssize_t n


cdef inline int _borrow(Piece* out, PyObject* item, str what) except -1:
    """A piece borrowed from a tuple or list nothing changes while the record
    is written (no Python code runs between this and the write)."""
    out.n = _piece_len(item)
    if out.n < 0:
        raise TypeError(f"{what}: a piece is not bytes")
    out.p = PyBytes_AS_STRING(<object>item)
    return 0


cdef inline int _route_piece(
    Piece* out, const uint8_t* text, Py_ssize_t size, const int64_t* offsets, Py_ssize_t j
) except -1:
    """Piece j of the route table (offsets[j] .. offsets[j + 1] of its text,
    the caller checked j + 1 is an offset): the table is one block of memory,
    so a record's four route pieces cost no object header each (those loads,
    cache misses over a stream's thousands of routes, were most of _borrow's
    time)."""
    cdef int64_t a = offsets[j]
    cdef int64_t b = offsets[j + 1]
    if a < 0 or b < a or b > size:
        raise ValueError(f"route piece {j}'s offsets {a}..{b} are outside the route text")
    out.p = <const char*>text + a
    out.n = b - a
    return 0


cdef inline char* _put_piece(char* w, Piece* piece, bint comma) noexcept nogil:
    """A piece, then a comma if asked (room reserved by the caller): past it."""
    w = _copy(w, piece.p, piece.n)
    if comma:
        w[0] = 44
        w += 1
    return w


cdef inline int64_t _i64(const uint8_t* p) noexcept nogil:
    cdef int64_t v
    memcpy(&v, p, 8)
    return v


def csv_lines(
    dict flows,
    object time,
    list formats,
    list exporters,
    const uint8_t[::1] records,
    list heads,
    const uint8_t[::1] route_text,
    const int64_t[::1] route_offsets,
    list prov,
    object tail,
    dict errors,
):
    """The batch's CSV rows in one bytearray, written into it once.

    ``flows``: attribution._enrich_columns.flow_columns' dict of the batch;
    ``time``: its time column's string buffers; ``formats[c]``: format c's
    piece, ``exporters[k]``: exporter k's (quoted: ``"127.0.1.1"``, no comma);
    ``records``: the packed answers (RECORD_DTYPE bytes); ``heads[r + 1]``:
    router r's piece (``heads[0]``: none, empty); ``route_text`` and
    ``route_offsets``: the stream's route pieces in one table, row k + 1 route
    k's (row 0: no route): its prefix is ``route_text[route_offsets[2 * j]:
    route_offsets[2 * j + 1]]``, its AS path from there to
    ``route_offsets[2 * j + 2]`` (j = k + 1; :func:`_route_piece`);
    ``prov``: the 256 provenance pieces; ``tail(override, flags)``: the
    columns after the AS paths and the newline; ``errors``: {i: record i's
    tail instead}. Pieces are written as they are, each followed by a comma
    but the tail.
    """
    cdef Py_ssize_t n = flows["n"]
    cdef Py_ssize_t i, k
    cdef Col cols[5]  # time, src_addr, dst_addr, src_mac, next_hop
    cdef const char* tp[5]
    cdef Py_ssize_t tn[5]
    cdef Py_ssize_t need
    cdef const uint8_t[::1] code = flows["format"]
    cdef const uint8_t[::1] exp_index = flows["exporter_index"]
    cdef const uint8_t[::1] in_if = flows["in_if"]
    cdef const uint8_t[::1] out_if = flows["out_if"]
    cdef const uint8_t[::1] nbytes = flows["bytes"]
    cdef const uint8_t[::1] npkts = flows["packets"]
    cdef const uint8_t[::1] rate = flows["sampling_rate"]
    cdef const uint8_t* r
    cdef int32_t router, src_route, dst_route, override, e
    cdef uint32_t flags
    cdef Head h
    cdef int32_t last_override = -2
    cdef uint32_t last_flags = 0
    cdef object last_tail = None
    cdef object last
    cdef Piece pc[13]  # format, exporter, router, 4 provenances, 2 prefixes, 2 paths, tail
    cdef Py_ssize_t nroutes, rsize
    cdef const uint8_t* rtext
    cdef const int64_t* roffs
    cdef Out o
    cdef char* w
    # the small tables as tuples: their items cannot be replaced while borrowed
    cdef tuple t_formats = tuple(formats), t_exporters = tuple(exporters)
    cdef tuple t_heads = tuple(heads), t_prov = tuple(prov)
    cdef Py_ssize_t nformats = len(t_formats), nexp = len(t_exporters), nheads = len(t_heads)
    # the column objects stay referenced here while their buffers are read
    t_time, t_src, t_dst, t_mac, t_hop = (
        time, flows["src_addr"], flows["dst_addr"], flows["src_mac"], flows["next_hop"]
    )
    _col(&cols[0], t_time, n, "time")
    _col(&cols[1], t_src, n, "src_addr")
    _col(&cols[2], t_dst, n, "dst_addr")
    _col(&cols[3], t_mac, n, "src_mac")
    _col(&cols[4], t_hop, n, "next_hop")
    if code.shape[0] < n or exp_index.shape[0] < 4 * n:
        raise ValueError("the format or exporter column is shorter than the batch")
    if in_if.shape[0] < 4 * n or out_if.shape[0] < 4 * n:
        raise ValueError("an interface column is shorter than the batch")
    if nbytes.shape[0] < 8 * n or npkts.shape[0] < 8 * n or rate.shape[0] < 8 * n:
        raise ValueError("a counter column is shorter than the batch")
    if records.shape[0] != n * RECORD:
        raise ValueError(f"{records.shape[0]} bytes of answers for {n} records")
    if len(t_prov) != 256:
        raise ValueError("a provenance piece for each of 256 numbers is needed")
    if route_offsets.shape[0] < 1 or route_offsets.shape[0] % 2 != 1:
        raise ValueError("route offsets: two a row and the end")
    nroutes = (route_offsets.shape[0] - 1) // 2
    if route_text.shape[0] == 0:
        raise ValueError("no route text (row 0's AS path is two quotes)")
    rtext = &route_text[0]
    rsize = route_text.shape[0]
    roffs = &route_offsets[0]
    out = PyByteArray_FromStringAndSize(NULL, 0)
    o.out = <PyObject*>out
    o.buf = PyByteArray_AS_STRING(out)
    o.size = 0
    o.cap = 0
    _reserve(&o, n * 400)
    for i in range(n):
        r = &records[i * RECORD]
        _head(r, &h)  # _enrich_out.pxi: the one reader of the record's layout
        router = h.router
        src_route = h.src_route
        dst_route = h.dst_route
        override = h.override
        flags = h.flags
        if errors and i in errors:
            last = errors[i]
        else:
            if override != last_override or flags != last_flags or last_tail is None:
                last_tail = tail(override, flags)
                last_override = override
                last_flags = flags
            last = last_tail
        if code[i] >= nformats:
            raise IndexError(f"record {i}'s format {code[i]} has no name")
        e = _i32(&exp_index[4 * i])
        if not (0 <= e < nexp):
            raise IndexError(f"record {i}'s exporter {e} is not in the batch's")
        if router < 0:
            router = -1
        if router + 1 >= nheads:
            raise IndexError(f"router {router} of a reply naming {nheads - 1}")
        # the record's pieces and values, each checked, then its room: one reserve a row
        if not (src_route + 1 < nroutes and dst_route + 1 < nroutes):
            raise IndexError(f"route {src_route} or {dst_route} is not in the dictionary")
        if src_route < -1 or dst_route < -1:
            raise IndexError(f"route {src_route} or {dst_route} is not in the dictionary")
        _borrow(&pc[0], PyTuple_GET_ITEM(t_formats, code[i]), "format")
        _borrow(&pc[1], PyTuple_GET_ITEM(t_exporters, e), "exporter")
        _borrow(&pc[2], PyTuple_GET_ITEM(t_heads, router + 1), "router")
        for k in range(4):
            _borrow(&pc[3 + k], PyTuple_GET_ITEM(t_prov, r[A_PROV + k]), "provenance")
        _route_piece(&pc[7], rtext, rsize, roffs, 2 * (src_route + 1))  # prefixes
        _route_piece(&pc[8], rtext, rsize, roffs, 2 * (dst_route + 1))
        _route_piece(&pc[9], rtext, rsize, roffs, 2 * (src_route + 1) + 1)  # AS paths
        _route_piece(&pc[10], rtext, rsize, roffs, 2 * (dst_route + 1) + 1)
        _borrow(&pc[11], <PyObject*>last, "tail")
        need = 16 + 9 * NUMBER_ROOM
        for k in range(12):
            need += pc[k].n + 1
        for k in range(5):
            tn[k] = _value(&cols[k], i, &tp[k])
            need += 2 * tn[k] + 3
        _reserve(&o, need)
        w = o.buf + o.size
        # the flow columns
        w = _put_piece(w, &pc[0], True)
        w = _quoted(w, tp[0], tn[0])  # time
        w = _put_piece(w, &pc[1], True)
        w = _quoted(w, tp[1], tn[1])  # src_addr
        w = _quoted(w, tp[2], tn[2])  # dst_addr
        w = _int64(w, _u32(&in_if[4 * i]))
        w = _int64(w, _u32(&out_if[4 * i]))
        w = _quoted(w, tp[3], tn[3])  # src_mac
        w = _quoted(w, tp[4], tn[4])  # next_hop
        w = _int64(w, _i64(&nbytes[8 * i]))
        w = _int64(w, _i64(&npkts[8 * i]))
        w = _int64(w, _i64(&rate[8 * i]))
        # the answer
        w = _put_piece(w, &pc[2], True)  # router
        for k in range(4):
            w = _int64(w, _u32(r + A_ASN + 4 * k))
        for k in range(3, 11):  # provenances, prefixes, AS paths
            w = _put_piece(w, &pc[k], True)
        w = _put_piece(w, &pc[11], False)
        o.size = w - o.buf
    if PyByteArray_Resize(out, o.size) < 0:
        raise MemoryError()
    return out
