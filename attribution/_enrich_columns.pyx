# cython: language_level=3, boundscheck=True, wraparound=False, initializedcheck=True
"""The flow columns of `attribution enrich`'s CSV and stores, in C, from the records' texts.

The compiled reader (attribution._enrich_scan) takes a record without making
its row; CSV, Parquet and ClickHouse need the flow fields as columns. Making
a row of Python objects a record and then columns of them cost more than the
pyarrow writers themselves. The scanner's parse already found where each
field its format's mapping reads is in the record's text (its field table,
_enrich_defs.pxi's Field a slot); here those values go straight from the text
(its bytes, or its span of a whole chunk) into column buffers (Arrow's
layout: offsets and bytes for text, a validity bitmap, fixed-width numbers),
which attribution.enrich_arrow hands to Arrow without a copy a value. The
text is not parsed a second time.

:func:`flow_columns` makes the columns only for a batch whose every record
the compiled reader took as goflow2, pmacct or nfdump (the rows it would make
are attribution._enrich_scan's ``_row``: the same values, field by field);
for anything else it returns None and the row path runs, unchanged. The
values are those of the rows (tests/attribution/test_enrich_store_columns.py
compares whole tables and CSV bytes on every fixture and hostile input).

Every field's offsets are checked against its record's text, and a span
against its chunk, before either is read (the pointer reads are not covered
by Cython's boundscheck).
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset
from libc.math cimport NAN
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeASCII


cdef extern from "Python.h":
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags, int* ptype) except NULL
    void PyMem_Free(void* p)
    int Py_DTSF_ADD_DOT_0
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL


include "_enrich_defs.pxi"

FORMATS = ("goflow2", "pmacct", "nfdump")


cdef struct Fields:
    int vtype[NSLOTS]
    Py_ssize_t start[NSLOTS]  # a string's contents (no quotes), or the value's text
    Py_ssize_t length[NSLOTS]
    int64_t ival[NSLOTS]


cdef bint _load(const uint8_t* fields, Py_ssize_t i, Py_ssize_t m, Fields* f) noexcept nogil:
    """Record i's flow fields as the scanner found them (attribution._enrich_scan's
    field table) into ``f``; False if one is not inside the record's text of m bytes."""
    cdef Field fd
    cdef int slot
    for slot in range(NSLOTS):
        memcpy(&fd, fields + (i * NSLOTS + slot) * FIELD, FIELD)
        f.vtype[slot] = fd.vtype
        if fd.vtype == T_ABSENT:
            continue
        if fd.vtype < T_ABSENT or fd.vtype > T_NEST or fd.start < 0 or fd.length < 0:
            return False
        if <Py_ssize_t>fd.start + fd.length > m:
            return False
        f.start[slot] = fd.start
        f.length[slot] = fd.length
        f.ival[slot] = fd.ival
    return True


include "_enrich_columns_text.pxi"
include "_enrich_columns_repr.pxi"


# ------------------------------------------------------------------ per record


cdef inline bint _zero_mac(const uint8_t* p, Fields* f, int k) noexcept nogil:
    return f.length[k] == 0 or (
        f.length[k] == 17 and memcmp(p + f.start[k], b"00:00:00:00:00:00", 17) == 0
    )


cdef inline bint _no_hop(const uint8_t* p, Fields* f, int k) noexcept nogil:
    """"", 0.0.0.0 or :: (the mappings' NO_HOPS): no next hop."""
    cdef Py_ssize_t m = f.length[k]
    return m == 0 or (m == 7 and memcmp(p + f.start[k], b"0.0.0.0", 7) == 0) or (
        m == 2 and memcmp(p + f.start[k], b"::", 2) == 0
    )


cdef inline int _either(Fields* f, int a, int b) noexcept nogil:
    """``rec.get(a) or rec.get(b)`` over strings: the slot, 0 for neither
    (absent or empty), -1 for a value of another type."""
    if f.vtype[a] == T_STR:
        if f.length[a] > 0:
            return a
    elif f.vtype[a] != T_ABSENT:
        return -1
    if f.vtype[b] == T_STR:
        return b if f.length[b] > 0 else -2
    return -2 if f.vtype[b] == T_ABSENT else -1


cdef inline bint _int_or_zero(Fields* f, int k) noexcept nogil:
    """An integer value, or absent (then 0); False for another type."""
    if f.vtype[k] == T_ABSENT:
        f.ival[k] = 0
        return True
    return f.vtype[k] == T_INT


cdef object _scalar(const uint8_t* p, Fields* f, int k):
    """A time value as the reader's row has it (str, int, float, None); a
    bool or nested value: NotImplemented (the row path's)."""
    cdef int t = f.vtype[k]
    if t == T_STR:
        return PyUnicode_DecodeASCII(<const char*>p + f.start[k], f.length[k], NULL)
    if t == T_INT:
        return f.ival[k]
    if t == T_NUM:
        return float(PyBytes_FromStringAndSize(<const char*>p + f.start[k], f.length[k]))
    if t == T_NULL:
        return None
    return NotImplemented


cdef inline bint _truthy(object v):
    return v is not None and v != 0 and v != ""


def flow_columns(
    list raw,
    object spans,
    list chunks,
    list kinds,
    bint csv=False,
    int64_t fallback=0,
    int64_t min_ts=0,
    int64_t max_ts=0,
    object fields=None,
):
    """The flow columns of a batch whose every record the compiled reader took
    as goflow2, pmacct or nfdump, or None (then the rows are made).

    ``raw[i]``: record i's text, or None when it is span i of ``spans``
    (attribution._enrich_scan's span table over ``chunks``); ``fields``: the
    scanner's field table of the batch (``Packed.field_table``; None: the
    rows are made). Returns a dict:
    ``exporter_index`` (int32 per record) into ``exporters`` (each distinct
    exporter as written); ``src_addr``, ``dst_addr``, ``src_mac``, ``next_hop``
    as Arrow string buffers (:func:`strings`'s shape); ``in_if``, ``out_if``
    (uint32), ``bytes``, ``packets``, ``sampling_rate`` (int64) as bytes;
    ``time_s`` (goflow2's end time in whole seconds, as ``int(end / 1e9)``
    when that is in ``min_ts .. max_ts - 1``, else ``fallback``; other
    formats' 0) and ``times`` (None when every record is goflow2's, else each
    record's time value as its row has it); ``format`` (uint8 per record, an
    index into FORMATS); with ``csv``, ``time_text``: goflow2's times as their
    row's ``str()`` (only when every record is goflow2's).
    """
    cdef Py_ssize_t n = len(raw), i, m, nspans = 0, j, total
    cdef const uint8_t* p
    cdef const uint8_t* sp_base = NULL
    cdef const char* sp
    cdef int64_t sp_start
    cdef int32_t sp_len, sp_chunk
    cdef int kind, e, s, d, hop, k
    cdef Fields f
    cdef Text src, dst, mac, hopc, tt
    cdef int64_t end
    cdef double seconds
    cdef uint32_t* in_if
    cdef uint32_t* out_if
    cdef int64_t* nbytes
    cdef int64_t* npkts
    cdef int64_t* rate
    cdef int64_t* tns
    cdef int32_t* exp_index
    cdef char cache_text[CACHE][64]
    cdef Py_ssize_t cache_len[CACHE]
    cdef int32_t cache_index[CACHE]
    cdef int cached = 0, c, found
    cdef char* fmt
    cdef char quick[24]
    cdef bint all_goflow2 = True
    cdef const uint8_t* fd_base
    if len(kinds) != n:
        raise ValueError("raw and kinds differ in length")
    if fields is None:
        return None  # the scanner did not keep them: the rows are made
    cdef const uint8_t[::1] fview
    if type(fields) is bytes:
        if PyBytes_GET_SIZE(fields) < n * NSLOTS * FIELD:
            raise ValueError("the field table is shorter than the batch")
        fd_base = <const uint8_t*>PyBytes_AS_STRING(fields)
    elif type(fields) is memoryview:  # Packed.field_table's view (kept alive here by fview)
        fview = fields
        if fview.shape[0] < n * NSLOTS * FIELD:
            raise ValueError("the field table is shorter than the batch")
        fd_base = &fview[0] if fview.shape[0] else NULL
    else:
        raise TypeError("fields must be bytes or a memoryview")
    if spans is not None:
        if type(spans) is not bytes:
            raise TypeError("spans must be bytes")
        nspans = PyBytes_GET_SIZE(spans) // SPAN
        sp_base = <const uint8_t*>PyBytes_AS_STRING(spans)
    if n == 0:
        return None
    codes = bytearray(n)
    cdef uint8_t* code = <uint8_t*><char*>codes
    for i in range(n):
        name = kinds[i]
        if name == "goflow2":
            code[i] = F_GOFLOW2
        elif name == "pmacct":
            code[i] = F_PMACCT
            all_goflow2 = False
        elif name == "nfdump":
            code[i] = F_NFDUMP
            all_goflow2 = False
        else:
            return None
    numbers = bytearray((4 * 2 + 8 * 4 + 4) * n)
    cdef uint8_t* nb = <uint8_t*><char*>numbers
    in_if = <uint32_t*>nb
    out_if = <uint32_t*>(nb + 4 * n)
    nbytes = <int64_t*>(nb + 8 * n)
    npkts = <int64_t*>(nb + 16 * n)
    rate = <int64_t*>(nb + 24 * n)
    tns = <int64_t*>(nb + 32 * n)
    exp_index = <int32_t*>(nb + 40 * n)
    exporters: list = []
    by_text: dict = {}
    times = None if all_goflow2 else [None] * n
    memset(&src, 0, sizeof(Text))
    memset(&dst, 0, sizeof(Text))
    memset(&mac, 0, sizeof(Text))
    memset(&hopc, 0, sizeof(Text))
    memset(&tt, 0, sizeof(Text))
    try:
        _text_init(&src, n, 16 * n)
        _text_init(&dst, n, 16 * n)
        _text_init(&mac, n, 17 * n)
        _text_init(&hopc, n, 64)
        if csv and all_goflow2:
            _text_init(&tt, n, 20 * n)
        for i in range(n):
            kind = code[i]
            text = raw[i]
            if text is None:
                if i >= nspans:
                    return None
                memcpy(&sp_start, sp_base + i * SPAN, 8)
                memcpy(&sp_len, sp_base + i * SPAN + 8, 4)
                memcpy(&sp_chunk, sp_base + i * SPAN + 12, 4)
                if not (0 <= sp_chunk < len(chunks)):
                    raise IndexError(f"record {i}'s text is in no chunk")
                data = chunks[sp_chunk]
                if type(data) is not bytes:
                    raise TypeError("a chunk is not bytes")
                if sp_start < 0 or sp_len < 1 or sp_start + sp_len > PyBytes_GET_SIZE(data):
                    raise IndexError(f"record {i}'s text is outside its chunk")
                p = <const uint8_t*>PyBytes_AS_STRING(data) + sp_start
                m = sp_len  # the text without its closing brace
            elif type(text) is bytes:
                m = PyBytes_GET_SIZE(text)
                p = <const uint8_t*>PyBytes_AS_STRING(text)
                if m < 2 or p[m - 1] != 125:
                    return None
                m -= 1
            else:
                return None
            if not _load(fd_base, i, m, &f):
                raise IndexError(f"record {i}'s fields are outside its text")
            # the row of attribution._enrich_scan's _row, field by field
            if kind == F_NFDUMP:
                e = _either(&f, S_EXP, S_EXP6)
                s = _either(&f, S_SRC, S_SRC6)
                d = _either(&f, S_DST, S_DST6)
                hop = _either(&f, S_HOP, S_HOP6)
                if e < 0 or s < 0 or d < 0 or hop == -1:
                    return None
            else:
                e, s, d, hop = S_EXP, S_SRC, S_DST, S_HOP
                if f.vtype[e] != T_STR or f.vtype[s] != T_STR or f.vtype[d] != T_STR:
                    return None
            # exporter, as written (each distinct one canonicalised by the caller)
            m = f.length[e]
            sp = <const char*>p + f.start[e]
            found = -1
            for c in range(cached):
                if cache_len[c] == m and memcmp(cache_text[c], sp, m) == 0:
                    found = cache_index[c]
                    break
            if found < 0:
                key = PyUnicode_DecodeASCII(sp, m, NULL)
                got = by_text.get(key)
                if got is None:
                    got = by_text[key] = len(exporters)
                    exporters.append(key)
                found = got
                if cached < CACHE and m < 64:
                    memcpy(cache_text[cached], sp, m)
                    cache_len[cached] = m
                    cache_index[cached] = found
                    cached += 1
            exp_index[i] = found
            _text_add(&src, <const char*>p + f.start[s], f.length[s])
            _text_add(&dst, <const char*>p + f.start[d], f.length[d])
            # in_if, out_if: absent 0, else an integer (the reader checked u32)
            if not (_int_or_zero(&f, S_IN) and _int_or_zero(&f, S_OUT)):
                return None
            if f.ival[S_IN] < 0 or f.ival[S_IN] > 0xFFFFFFFF:
                return None
            if f.ival[S_OUT] < 0 or f.ival[S_OUT] > 0xFFFFFFFF:
                return None
            in_if[i] = <uint32_t>f.ival[S_IN]
            out_if[i] = <uint32_t>f.ival[S_OUT]
            if f.vtype[S_MAC] == T_STR and not _zero_mac(p, &f, S_MAC):
                _text_add(&mac, <const char*>p + f.start[S_MAC], f.length[S_MAC])
            else:
                _text_add(&mac, NULL, 0)
            if hop < 0 or f.vtype[hop] == T_ABSENT:
                _text_add(&hopc, NULL, 0)
            elif f.vtype[hop] != T_STR:
                return None
            elif _no_hop(p, &f, hop):
                _text_add(&hopc, NULL, 0)
            else:
                _text_add(&hopc, <const char*>p + f.start[hop], f.length[hop])
            if kind == F_PMACCT and f.vtype[S_BYTES] != T_INT:
                return None  # the row path's (a text value)
            if not (_int_or_zero(&f, S_BYTES) and _int_or_zero(&f, S_PKTS)
                    and _int_or_zero(&f, S_RATE)):
                return None
            nbytes[i] = f.ival[S_BYTES]
            npkts[i] = f.ival[S_PKTS]
            rate[i] = 1 if kind == F_NFDUMP else f.ival[S_RATE]
            tns[i] = 0
            if kind == F_GOFLOW2:
                end = f.ival[S_T0] if f.vtype[S_T0] == T_INT else 0
                if end == 0 and f.vtype[S_T1] == T_INT:
                    end = f.ival[S_T1]
                seconds = <double>end / 1e9  # as Python's end / 1e9
                if end != 0 and seconds >= min_ts and seconds < max_ts:
                    tns[i] = <int64_t>seconds  # truncated, as int()
                else:
                    tns[i] = fallback
                if times is not None:
                    times[i] = end / 1e9 if end else None
                elif csv:
                    j = _seconds_repr(seconds, quick) if end else 0
                    if j > 0:  # repr() without dtoa (most times)
                        _text_add(&tt, quick, j)
                    elif end:
                        fmt = PyOS_double_to_string(seconds, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
                        try:
                            j = 0
                            while fmt[j] != 0:
                                j += 1
                            _text_add(&tt, fmt, j)
                        finally:
                            PyMem_Free(fmt)
                    else:
                        _text_add(&tt, NULL, 0)
            elif kind == F_PMACCT:
                when = None
                for k in range(S_T0, S_T3 + 1):
                    if f.vtype[k] == T_ABSENT:
                        continue
                    v = _scalar(p, &f, k)
                    if v is NotImplemented:
                        return None
                    if v is None or v == "" or v == 0 or v == "0":
                        continue
                    if type(v) is str and v.startswith("0000"):
                        continue
                    when = v
                    break
                times[i] = when
            else:
                last = None
                if f.vtype[S_T0] != T_ABSENT:
                    last = _scalar(p, &f, S_T0)
                    if last is NotImplemented:
                        return None
                if not _truthy(last):
                    last = None
                    if f.vtype[S_T1] != T_ABSENT:
                        last = _scalar(p, &f, S_T1)
                        if last is NotImplemented:
                            return None
                times[i] = last
        out = {
            "n": n,
            "exporter_index": bytes(numbers[40 * n : 44 * n]),
            "exporters": exporters,
            "src_addr": _text_out(&src),
            "dst_addr": _text_out(&dst),
            "src_mac": _text_out(&mac),
            "next_hop": _text_out(&hopc),
            "in_if": bytes(numbers[0 : 4 * n]),
            "out_if": bytes(numbers[4 * n : 8 * n]),
            "bytes": bytes(numbers[8 * n : 16 * n]),
            "packets": bytes(numbers[16 * n : 24 * n]),
            "sampling_rate": bytes(numbers[24 * n : 32 * n]),
            "time_s": bytes(numbers[32 * n : 40 * n]),
            "format": bytes(codes),
            "times": times,
        }
        if csv and all_goflow2:
            out["time_text"] = _text_out(&tt)
        return out
    finally:
        _text_free(&src)
        _text_free(&dst)
        _text_free(&mac)
        _text_free(&hopc)
        _text_free(&tt)

