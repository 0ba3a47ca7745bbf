# cython: language_level=3, boundscheck=True, wraparound=False, initializedcheck=True
"""The flow columns of `attribution enrich`'s CSV and stores, in C, from the records' texts.

The compiled reader (attribution._enrich_scan) takes a record without making
its row; CSV, Parquet and ClickHouse need the flow fields as columns. Making
a row of Python objects a record and then columns of them cost more than the
pyarrow writers themselves. Here each record's text (its bytes, or its span
of a whole chunk) is walked once, the fields its format's mapping reads are
found, and their values go straight into column buffers (Arrow's layout:
offsets and bytes for text, a validity bitmap, fixed-width numbers), which
attribution.enrich_arrow hands to Arrow without a copy a value.

:func:`flow_columns` makes the columns only for a batch whose every record
the compiled reader took as goflow2, pmacct or nfdump (the rows it would make
are attribution._enrich_scan's ``_row``: the same values, field by field);
for anything else it returns None and the row path runs, unchanged. The
values are those of the rows (tests/attribution/test_enrich_columns_c.py
compares whole tables and CSV bytes on every fixture and hostile input).

Every index into a text is checked against its length by hand (the pointer
reads are not covered by Cython's boundscheck); a span is checked against
its chunk before it is read.
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


DEF SPAN = 16  # attribution._enrich_scan's Span: int64 start, int32 length, int32 chunk
DEF MAX_INT_DIGITS = 19
DEF MAX_KEY = 32
DEF PER_LEN = 6  # keys of one length in a format's table
DEF CACHE = 16  # exporters remembered by their bytes before the dict

# value types
DEF T_ABSENT = 0
DEF T_STR = 1
DEF T_INT = 2
DEF T_NUM = 3
DEF T_NULL = 4
DEF T_BOOL = 5
DEF T_NEST = 6

# field slots
DEF S_EXP = 0
DEF S_SRC = 1
DEF S_DST = 2
DEF S_IN = 3
DEF S_OUT = 4
DEF S_MAC = 5
DEF S_HOP = 6
DEF S_BYTES = 7
DEF S_PKTS = 8
DEF S_RATE = 9
DEF S_T0 = 10
DEF S_T1 = 11
DEF S_T2 = 12
DEF S_T3 = 13
DEF S_EXP6 = 14
DEF S_SRC6 = 15
DEF S_DST6 = 16
DEF S_HOP6 = 17
DEF NSLOTS = 18

DEF K_GOFLOW2 = 0
DEF K_PMACCT = 1
DEF K_NFDUMP = 2

# each format's keys as attribution._enrich_scan's _row reads them
_FORMAT_KEYS = (
    (
        ("sampler_address", S_EXP), ("src_addr", S_SRC), ("dst_addr", S_DST),
        ("in_if", S_IN), ("out_if", S_OUT), ("src_mac", S_MAC),
        ("bgp_next_hop", S_HOP), ("bytes", S_BYTES), ("packets", S_PKTS),
        ("sampling_rate", S_RATE), ("time_flow_end_ns", S_T0), ("time_received_ns", S_T1),
    ),
    (
        ("peer_ip_src", S_EXP), ("ip_src", S_SRC), ("ip_dst", S_DST),
        ("iface_in", S_IN), ("iface_out", S_OUT), ("mac_src", S_MAC),
        ("peer_ip_dst", S_HOP), ("bytes", S_BYTES), ("packets", S_PKTS),
        ("sampling_rate", S_RATE), ("timestamp_end", S_T0), ("timestamp_start", S_T1),
        ("stamp_inserted", S_T2), ("stamp_updated", S_T3),
    ),
    (
        ("ip4_router", S_EXP), ("ip6_router", S_EXP6), ("src4_addr", S_SRC),
        ("src6_addr", S_SRC6), ("dst4_addr", S_DST), ("dst6_addr", S_DST6),
        ("input_snmp", S_IN), ("output_snmp", S_OUT), ("in_src_mac", S_MAC),
        ("bgp4_next_hop", S_HOP), ("bgp6_next_hop", S_HOP6), ("in_bytes", S_BYTES),
        ("in_packets", S_PKTS), ("last", S_T0), ("first", S_T1),
    ),
)
FORMATS = ("goflow2", "pmacct", "nfdump")

# per format, per key length: up to PER_LEN (name, slot)
cdef char _knames[3][MAX_KEY][PER_LEN][MAX_KEY]
cdef int _kslots[3][MAX_KEY][PER_LEN]
cdef int _kcount[3][MAX_KEY]


cdef int _setup() except -1:
    memset(_kcount, 0, sizeof(_kcount))
    for f, keys in enumerate(_FORMAT_KEYS):
        for name, slot in keys:
            b = name.encode()
            m = len(b)
            if m >= MAX_KEY or _kcount[f][m] >= PER_LEN:
                raise ValueError(f"key table too small for {name!r}")
            memcpy(_knames[f][m][_kcount[f][m]], <const char*>b, m)
            _kslots[f][m][_kcount[f][m]] = slot
            _kcount[f][m] += 1
    return 0


_setup()


cdef struct Fields:
    int vtype[NSLOTS]
    Py_ssize_t start[NSLOTS]  # a string's contents (no quotes), or the value's text
    Py_ssize_t length[NSLOTS]
    int64_t ival[NSLOTS]


cdef inline Py_ssize_t _ws(const uint8_t* p, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
    while i < n and (p[i] == 32 or p[i] == 9 or p[i] == 13 or p[i] == 10):
        i += 1
    return i


cdef extern from *:
    """
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif
    /* The index of the first byte from i on that is a quote, a backslash, a control
       byte or non-ASCII, or n. 16 bytes at a time where SSE2 is; never reads at or
       past n. */
    static inline Py_ssize_t enrich_columns_plain(const unsigned char *p, Py_ssize_t i,
                                                  Py_ssize_t n) {
    #if defined(__SSE2__)
        const __m128i quote = _mm_set1_epi8(0x22), slash = _mm_set1_epi8(0x5C);
        const __m128i space = _mm_set1_epi8(0x20);
        while (i + 16 <= n) {
            __m128i v = _mm_loadu_si128((const __m128i *)(p + i));
            __m128i hit = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, slash)),
                _mm_cmplt_epi8(v, space));  /* signed: < 0x20 and >= 0x80 */
            int mask = _mm_movemask_epi8(hit);
            if (mask)
                return i + __builtin_ctz(mask);
            i += 16;
        }
    #endif
        while (i < n && p[i] != 0x22 && p[i] != 0x5C && p[i] >= 0x20 && p[i] < 0x80)
            i++;
        return i;
    }
    """
    Py_ssize_t enrich_columns_plain(const uint8_t* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil


cdef inline Py_ssize_t _string_end(const uint8_t* p, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
    """p[i - 1] opened a string: the index of its closing quote, -1 if none, or
    if the string has an escape, a control byte or a non-ASCII one (the compiled
    reader takes no such line)."""
    i = enrich_columns_plain(p, i, n)
    if i < n and p[i] == 34:
        return i
    return -1


cdef inline int _slot(int kind, const uint8_t* key, Py_ssize_t m) noexcept nogil:
    cdef int j
    if m <= 0 or m >= MAX_KEY:
        return -1
    for j in range(_kcount[kind][m]):
        if _knames[kind][m][j][0] == key[0] and memcmp(_knames[kind][m][j], key, m) == 0:
            return _kslots[kind][m][j]
    return -1


cdef Py_ssize_t _skip_nested(const uint8_t* p, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
    """p[i] opens an object or array: the index after its end, -1 if it has none."""
    cdef int depth = 0
    while i < n:
        if p[i] == 34:
            i = _string_end(p, n, i + 1)
            if i < 0:
                return -1
        elif p[i] == 123 or p[i] == 91:
            depth += 1
        elif p[i] == 125 or p[i] == 93:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


cdef int _walk(const uint8_t* p, Py_ssize_t n, int kind, Fields* f) noexcept nogil:
    """The top-level members of an object whose closing brace is at n (not
    read: a span's text ends before it) into ``f``; 0 if the text is not as
    the compiled reader takes them (then the row path decides)."""
    cdef Py_ssize_t i, k0, q, v0
    cdef int slot, t, digits, neg
    cdef uint64_t v
    if n < 1 or p[0] != 123:
        return 0
    memset(f.vtype, 0, sizeof(f.vtype))
    i = _ws(p, n, 1)
    if i >= n:
        return 1
    while True:
        if i >= n or p[i] != 34:
            return 0
        k0 = i + 1
        q = _string_end(p, n, k0)
        if q < 0:
            return 0
        slot = _slot(kind, p + k0, q - k0)
        i = _ws(p, n, q + 1)
        if i >= n or p[i] != 58:
            return 0
        i = _ws(p, n, i + 1)
        if i >= n:
            return 0
        v0 = i
        v = 0
        if p[i] == 34:
            t = T_STR
            q = _string_end(p, n, i + 1)
            if q < 0:
                return 0
            v0 = i + 1
            i = q + 1
        elif p[i] == 123 or p[i] == 91:
            t = T_NEST
            i = _skip_nested(p, n, i)
            if i < 0:
                return 0
        elif p[i] == 45 or 48 <= p[i] <= 57:
            t = T_INT
            neg = p[i] == 45
            if neg:
                i += 1
            digits = 0
            while i < n and 48 <= p[i] <= 57:
                digits += 1
                if digits > MAX_INT_DIGITS:
                    return 0
                v = v * 10 + (p[i] - 48)
                i += 1
            if digits == 0 or v > <uint64_t>9223372036854775807ULL:
                return 0
            if i < n and (p[i] == 46 or p[i] == 101 or p[i] == 69):
                t = T_NUM  # a fraction (exponents the reader never takes)
                while i < n and (48 <= p[i] <= 57 or p[i] == 46 or p[i] == 101
                                 or p[i] == 69 or p[i] == 43 or p[i] == 45):
                    i += 1
        elif p[i] == 110:
            t = T_NULL
            if i + 4 > n or memcmp(p + i, b"null", 4) != 0:
                return 0
            i += 4
        elif p[i] == 116:
            t = T_BOOL
            if i + 4 > n or memcmp(p + i, b"true", 4) != 0:
                return 0
            i += 4
        elif p[i] == 102:
            t = T_BOOL
            if i + 5 > n or memcmp(p + i, b"false", 5) != 0:
                return 0
            i += 5
        else:
            return 0
        if slot >= 0:
            if f.vtype[slot] != T_ABSENT:  # a duplicate: the reader never takes one
                return 0
            f.vtype[slot] = t
            f.start[slot] = v0
            f.length[slot] = (i - 1 - v0) if t == T_STR else (i - v0)
            f.ival[slot] = -<int64_t>v if (t == T_INT and neg) else <int64_t>v
        i = _ws(p, n, i)
        if i >= n:
            return 1
        if p[i] != 44:
            return 0
        i = _ws(p, n, i + 1)


# ------------------------------------------------------------------ column buffers


cdef struct Text:
    char* data
    Py_ssize_t size
    Py_ssize_t cap
    int32_t* offsets  # n + 1
    uint8_t* valid  # bitmap, (n + 7) // 8 bytes
    Py_ssize_t nulls
    Py_ssize_t count


cdef int _text_init(Text* t, Py_ssize_t n, Py_ssize_t guess) except -1:
    t.cap = max(guess, 64)
    t.size = 0
    t.nulls = 0
    t.count = 0
    t.data = <char*>malloc(t.cap)
    t.offsets = <int32_t*>malloc((n + 1) * sizeof(int32_t))
    t.valid = <uint8_t*>malloc((n + 7) // 8 + 1)
    if t.data == NULL or t.offsets == NULL or t.valid == NULL:
        raise MemoryError()
    memset(t.valid, 0, (n + 7) // 8 + 1)
    t.offsets[0] = 0
    return 0


cdef void _text_free(Text* t) noexcept:
    free(t.data)
    free(t.offsets)
    free(t.valid)
    t.data = NULL
    t.offsets = NULL
    t.valid = NULL


cdef int _text_add(Text* t, const char* s, Py_ssize_t m) except -1:
    """Append a value (s NULL: a null) as record ``t.count``."""
    cdef Py_ssize_t cap
    cdef char* got
    if s == NULL:
        t.nulls += 1
    else:
        if t.size + m > 0x7FFFFFFF:
            raise OverflowError("a text column over 2 GiB")
        if t.size + m > t.cap:
            cap = t.cap
            while cap < t.size + m:
                cap *= 2
            got = <char*>realloc(t.data, cap)
            if got == NULL:
                raise MemoryError()
            t.data = got
            t.cap = cap
        memcpy(t.data + t.size, s, m)
        t.size += m
        t.valid[t.count >> 3] |= <uint8_t>(1 << (t.count & 7))
    t.count += 1
    t.offsets[t.count] = <int32_t>t.size
    return 0


cdef tuple _text_out(Text* t):
    """(validity bitmap or None, offsets, data, null count) as bytes."""
    valid = None
    if t.nulls:
        valid = PyBytes_FromStringAndSize(<const char*>t.valid, (t.count + 7) // 8)
    return (
        valid,
        PyBytes_FromStringAndSize(<const char*>t.offsets, (t.count + 1) * sizeof(int32_t)),
        PyBytes_FromStringAndSize(t.data, t.size),
        t.nulls,
    )


def strings(list values):
    """A list of str or None as Arrow string buffers: (validity or None,
    offsets, data, null count). Anything else raises TypeError."""
    cdef Py_ssize_t i, n = len(values), m
    cdef Text t
    cdef const char* s
    _text_init(&t, n, 16 * n)
    try:
        for i in range(n):
            v = values[i]
            if v is None:
                _text_add(&t, NULL, 0)
            elif type(v) is str:
                s = PyUnicode_AsUTF8AndSize(v, &m)
                _text_add(&t, s, m)
            else:
                raise TypeError(f"not a string: {type(v).__name__}")
        return _text_out(&t)
    finally:
        _text_free(&t)


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
):
    """The flow columns of a batch whose every record the compiled reader took
    as goflow2, pmacct or nfdump, or None (then the rows are made).

    ``raw[i]``: record i's text, or None when it is span i of ``spans``
    (attribution._enrich_scan's span table over ``chunks``). Returns a dict:
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
    cdef bint all_goflow2 = True
    if len(kinds) != n:
        raise ValueError("raw and kinds differ in length")
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
            code[i] = K_GOFLOW2
        elif name == "pmacct":
            code[i] = K_PMACCT
            all_goflow2 = False
        elif name == "nfdump":
            code[i] = K_NFDUMP
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
            if not _walk(p, m, kind, &f):
                return None
            # the row of attribution._enrich_scan's _row, field by field
            if kind == K_NFDUMP:
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
            if kind == K_PMACCT and f.vtype[S_BYTES] != T_INT:
                return None  # the row path's (a text value)
            if not (_int_or_zero(&f, S_BYTES) and _int_or_zero(&f, S_PKTS)
                    and _int_or_zero(&f, S_RATE)):
                return None
            nbytes[i] = f.ival[S_BYTES]
            npkts[i] = f.ival[S_PKTS]
            rate[i] = 1 if kind == K_NFDUMP else f.ival[S_RATE]
            tns[i] = 0
            if kind == K_GOFLOW2:
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
                    if end:
                        fmt = PyOS_double_to_string(<double>end / 1e9, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
                        try:
                            j = 0
                            while fmt[j] != 0:
                                j += 1
                            _text_add(&tt, fmt, j)
                        finally:
                            PyMem_Free(fmt)
                    else:
                        _text_add(&tt, NULL, 0)
            elif kind == K_PMACCT:
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

