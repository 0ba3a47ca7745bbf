# cython: language_level=3, boundscheck=True, wraparound=False, initializedcheck=True
"""The compiled reader of `attribution enrich`: flat JSON lines straight into packed requests.

Per line that is one flat-enough JSON object of a known format (goflow2,
pmacct, nfdump ``-o json-log``, our own flow JSON), :meth:`Packed.scan` reads
just the fields the format's mapping needs and writes the packed request
record (exporter index, in_if, source and destination address as 16 bytes,
MAC, BGP next hop) into a C buffer; the record's flow row is made later, and
only when a writer asks for it (CSV, the stores), by the Python reader's
own code (attribution.enrich_records). Why: the Python reader costs ~5 µs a
record (a msgspec decode, a row, the packing), the service ~1.

It takes a line only when it is certain the Python reader would take it
with the same result: ASCII, no backslash anywhere, at most MAX_DEPTH
brackets, valid JSON (numbers without exponents, integers within int64), no
answer-named or duplicate known key, the format's required fields present
and of the plain types, addresses that pack. Any other line stops the scan
and goes to the Python reader, which alone decides errors and their reasons
(tests/attribution/test_enrich_scan.py runs both over hostile input).

Every index into a line is checked against its length by hand (the pointer
reads below are not covered by Cython's boundscheck).
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, realloc
from libc.string cimport memchr, memcmp, memcpy, memset
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeASCII


cdef extern from "<arpa/inet.h>" nogil:
    int inet_pton(int af, const char *src, void *dst)

cdef extern from "<sys/socket.h>" nogil:
    int AF_INET
    int AF_INET6


RECORD_SIZE = 64  # bytes a packed record takes in the buffer (see PACKED_FIELDS)
# (name, numpy type, offset): a numpy dtype over the buffer (attribution.enrich_pack)
PACKED_FIELDS = (
    ("ok", "u1", 0),  # 1: packed by the scanner
    ("mac", "S6", 1),
    ("exporter", "<u4", 8),
    ("in_if", "<u4", 12),
    ("src", "S16", 16),
    ("dst", "S16", 32),
    ("hop", "S16", 48),
)
DEF REC = 64
DEF SPAN = 16  # a record's text in a chunk's data: Span
SPAN_SIZE = SPAN
DEF MAX_KEY = 48
DEF TABLE = 512
DEF MAX_INT_DIGITS = 19  # 10**19 - 1 fits uint64; int64 checked
DEF MAX_FRACTION_DIGITS = 30
DEF MAX_ADDR = 63
DEF CACHE = 16

# value types
DEF T_ABSENT = 0
DEF T_STR = 1
DEF T_INT = 2
DEF T_NUM = 3
DEF T_NULL = 4
DEF T_BOOL = 5
DEF T_NEST = 6

# formats (indexes into KINDS)
KINDS = ("goflow2", "pmacct", "nfdump", "native")
DEF F_GOFLOW2 = 0
DEF F_PMACCT = 1
DEF F_NFDUMP = 2
DEF F_NATIVE = 3
DEF F_AUTO = -1

# key ids: 0 unknown (skipped), 1 an answer name (the line goes to Python)
KEYS = (
    "exporter", "src_addr", "dst_addr", "in_if", "out_if", "src_mac", "next_hop",
    "bytes", "packets", "sampling_rate",
    "sampler_address", "bgp_next_hop", "time_flow_end_ns", "time_received_ns",
    "peer_ip_src", "ip_src", "ip_dst", "iface_in", "iface_out", "mac_src", "peer_ip_dst",
    "event_type", "as_src", "as_dst", "peer_as_src", "peer_as_dst",
    "type", "export_sysid", "ip4_router", "ip6_router", "src4_addr", "src6_addr",
    "dst4_addr", "dst6_addr", "input_snmp", "output_snmp", "in_src_mac",
    "bgp4_next_hop", "bgp6_next_hop", "in_bytes", "in_packets",
    "timestamp_end", "timestamp_start", "stamp_inserted", "stamp_updated", "last", "first",
)
DEF K_ANSWER = 1
DEF K_EXPORTER = 2
DEF K_SRC_ADDR = 3
DEF K_DST_ADDR = 4
DEF K_IN_IF = 5
DEF K_OUT_IF = 6
DEF K_SRC_MAC = 7
DEF K_NEXT_HOP = 8
DEF K_BYTES = 9
DEF K_PACKETS = 10
DEF K_SAMPLING_RATE = 11
DEF K_SAMPLER_ADDRESS = 12
DEF K_BGP_NEXT_HOP = 13
DEF K_TIME_FLOW_END_NS = 14
DEF K_TIME_RECEIVED_NS = 15
DEF K_PEER_IP_SRC = 16
DEF K_IP_SRC = 17
DEF K_IP_DST = 18
DEF K_IFACE_IN = 19
DEF K_IFACE_OUT = 20
DEF K_MAC_SRC = 21
DEF K_PEER_IP_DST = 22
DEF K_EVENT_TYPE = 23
DEF K_AS_SRC = 24
DEF K_AS_DST = 25
DEF K_PEER_AS_SRC = 26
DEF K_PEER_AS_DST = 27
DEF K_TYPE = 28
DEF K_EXPORT_SYSID = 29
DEF K_IP4_ROUTER = 30
DEF K_IP6_ROUTER = 31
DEF K_SRC4_ADDR = 32
DEF K_SRC6_ADDR = 33
DEF K_DST4_ADDR = 34
DEF K_DST6_ADDR = 35
DEF K_INPUT_SNMP = 36
DEF K_OUTPUT_SNMP = 37
DEF K_IN_SRC_MAC = 38
DEF K_BGP4_NEXT_HOP = 39
DEF K_BGP6_NEXT_HOP = 40
DEF K_IN_BYTES = 41
DEF K_IN_PACKETS = 42
DEF K_TIMESTAMP_END = 43
DEF K_TIMESTAMP_START = 44
DEF K_STAMP_INSERTED = 45
DEF K_STAMP_UPDATED = 46
DEF K_LAST = 47
DEF K_FIRST = 48
DEF NKEYS = 49


include "_enrich_scan_parse.pxi"


# ------------------------------------------------------------------ field checks


cdef inline bint _has(Line* ln, int k) noexcept nogil:
    return ln.vtype[k] != T_ABSENT


cdef inline bint _str(Line* ln, int k) noexcept nogil:
    """A non-empty string (the contents are start + 1 .. start + length - 1)."""
    return ln.vtype[k] == T_STR and ln.length[k] > 2


cdef inline int _either(Line* ln, int a, int b) noexcept nogil:
    """``rec.get(a) or rec.get(b)`` when both are strings or absent: the key
    chosen, 0 for neither, -1 for a value the Python reader must judge."""
    if ln.vtype[a] == T_STR:
        if ln.length[a] > 2:
            return a
    elif ln.vtype[a] != T_ABSENT:
        return -1
    if ln.vtype[b] == T_STR:
        return b if ln.length[b] > 2 else 0
    return 0 if ln.vtype[b] == T_ABSENT else -1


cdef inline bint _int_or_absent(Line* ln, int k) noexcept nogil:
    return ln.vtype[k] == T_ABSENT or ln.vtype[k] == T_INT


cdef inline bint _u32(Line* ln, int k, uint32_t* out) noexcept nogil:
    """Absent (0) or an integer in 0 .. 2**32 - 1."""
    if ln.vtype[k] == T_ABSENT:
        out[0] = 0
        return True
    if ln.vtype[k] != T_INT or ln.ival[k] < 0 or ln.ival[k] >= (<int64_t>1 << 32):
        return False
    out[0] = <uint32_t>ln.ival[k]
    return True


cdef inline bint _is(const uint8_t* p, Line* ln, int k, const char* word, Py_ssize_t m) noexcept nogil:
    """The string value of k is ``word``."""
    return ln.vtype[k] == T_STR and ln.length[k] == m + 2 and memcmp(p + ln.start[k] + 1, word, m) == 0


cdef bint _ipv4(const uint8_t* s, Py_ssize_t m, uint8_t* out) noexcept nogil:
    """Dotted-quad text as 4 bytes: exactly four parts of 1-3 digits, each at most
    255, no leading zero (``0`` alone is one). glibc's inet_pton takes exactly
    these (it too refuses leading zeros); anything it might take that this
    does not goes to the Python reader, which packs with inet_pton itself."""
    cdef Py_ssize_t i = 0
    cdef int part, digits, v
    for part in range(4):
        if part:
            if i >= m or s[i] != 46:  # .
                return False
            i += 1
        v = 0
        digits = 0
        while i < m and 48 <= s[i] <= 57 and digits < 3:
            v = v * 10 + (s[i] - 48)
            digits += 1
            i += 1
        if digits == 0 or v > 255 or (digits > 1 and s[i - digits] == 48):
            return False
        out[part] = <uint8_t>v
    return i == m


cdef bint _address(const uint8_t* p, Line* ln, int k, uint8_t* out) noexcept nogil:
    """A string value as 16 bytes (IPv4 as ::ffff:a.b.c.d), as socket.inet_pton does."""
    cdef char text[MAX_ADDR + 1]
    cdef Py_ssize_t m = ln.length[k] - 2
    cdef const uint8_t* s = p + ln.start[k] + 1
    if ln.vtype[k] != T_STR or m <= 0 or m > MAX_ADDR:
        return False
    if memchr(s, 58, m) == NULL:  # no colon: IPv4, parsed here (no copy, no strlen)
        memset(out, 0, 10)
        out[10] = 0xFF
        out[11] = 0xFF
        return _ipv4(s, m, out + 12)
    memcpy(text, s, m)
    text[m] = 0
    return inet_pton(AF_INET6, text, out) == 1


cdef inline int _hex(uint8_t c) noexcept nogil:
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


cdef bint _mac(const uint8_t* p, Line* ln, int k, uint8_t* out) noexcept nogil:
    """Absent or "" (no MAC: zeros) or ``aa:bb:cc:dd:ee:ff`` (``-`` too), as
    addresses.parse_mac reads it; False for anything else."""
    cdef Py_ssize_t m, j, s
    cdef int hi, lo
    if ln.vtype[k] == T_ABSENT:
        memset(out, 0, 6)
        return True
    if ln.vtype[k] != T_STR:
        return False
    m = ln.length[k] - 2
    s = ln.start[k] + 1
    if m == 0:
        memset(out, 0, 6)
        return True
    if m != 17:
        return False
    for j in range(6):
        if j and p[s + 3 * j - 1] != 58 and p[s + 3 * j - 1] != 45:
            return False
        hi = _hex(p[s + 3 * j])
        lo = _hex(p[s + 3 * j + 1])
        if hi < 0 or lo < 0:
            return False
        out[j] = <uint8_t>(hi * 16 + lo)
    return True


cdef bint _hop(const uint8_t* p, Line* ln, int k, uint8_t* out) noexcept nogil:
    """A BGP next hop (k < 1: none) as records.next_hop_of packs it: zeros for
    none, "", 0.0.0.0 or ::."""
    cdef int j
    cdef bint zero = True, mapped = True
    memset(out, 0, 16)
    if k < 1 or ln.vtype[k] == T_ABSENT:
        return True
    if ln.vtype[k] != T_STR:
        return False
    if ln.length[k] == 2:
        return True
    if not _address(p, ln, k, out):
        return False
    for j in range(16):
        if j == 10 or j == 11:
            zero = zero and out[j] == 0
            mapped = mapped and out[j] == 0xFF
        elif out[j] != 0:
            return True
    if zero or mapped:  # :: and ::ffff:0.0.0.0 are "no next hop"
        memset(out, 0, 16)
    return True


# ------------------------------------------------------------------ rows


class _Fallback(Exception):
    """A value the row builder does not make: attribution.enrich_records.row_of does."""


cdef object _text(const uint8_t* p, Line* ln, int k):
    """A string value as str (ASCII, no escapes: the scanner took only such lines);
    anything else (fill_rows handed another line) goes to the fallback."""
    if k < 1 or ln.vtype[k] != T_STR:
        raise _Fallback()
    return PyUnicode_DecodeASCII(<const char*>p + ln.start[k] + 1, ln.length[k] - 2, NULL)


cdef object _scalar(const uint8_t* p, Line* ln, int k):
    """A string, integer, float or null value as msgspec gives it; else _Fallback."""
    cdef int t = ln.vtype[k]
    if t == T_STR:
        return _text(p, ln, k)
    if t == T_INT:
        return ln.ival[k]
    if t == T_NUM:
        return float(PyBytes_FromStringAndSize(<const char*>p + ln.start[k], ln.length[k]))
    if t == T_NULL:
        return None
    raise _Fallback()


cdef inline object _int_or(Line* ln, int k, object default):
    if ln.vtype[k] == T_ABSENT:
        return default
    if ln.vtype[k] != T_INT:
        raise _Fallback()
    return ln.ival[k]


cdef bint _is_zero_mac(const uint8_t* p, Line* ln, int k) noexcept:
    """"" or 00:00:00:00:00:00: no MAC (the mappings' NO_MACS)."""
    return ln.length[k] == 2 or _is(p, ln, k, "00:00:00:00:00:00", 17)


cdef object _hop_text(const uint8_t* p, Line* ln, int k):
    """A next hop's text, None for none ("", 0.0.0.0, ::: the mappings' NO_HOPS)."""
    if k < 1 or ln.vtype[k] == T_ABSENT:
        return None
    if ln.length[k] == 2 or _is(p, ln, k, "0.0.0.0", 7) or _is(p, ln, k, "::", 2):
        return None
    return _text(p, ln, k)


cdef object _truthy(object v):
    return v is not None and v != 0 and v != ""


cdef object _row(const uint8_t* p, Line* ln, int kind):
    """The row attribution.enrich_decode's _fast_<format> makes of a line the
    scanner took; None for native records (any JSON type: msgspec's path)."""
    cdef int64_t end
    cdef int k, e, s, d, hop
    if kind == F_GOFLOW2:
        mac = None
        if ln.vtype[K_SRC_MAC] == T_STR and not _is_zero_mac(p, ln, K_SRC_MAC):
            mac = _text(p, ln, K_SRC_MAC)
        end = ln.ival[K_TIME_FLOW_END_NS] if ln.vtype[K_TIME_FLOW_END_NS] == T_INT else 0
        if end == 0 and ln.vtype[K_TIME_RECEIVED_NS] == T_INT:
            end = ln.ival[K_TIME_RECEIVED_NS]
        return (
            _text(p, ln, K_SAMPLER_ADDRESS),
            _text(p, ln, K_SRC_ADDR),
            _text(p, ln, K_DST_ADDR),
            _int_or(ln, K_IN_IF, 0),
            _int_or(ln, K_OUT_IF, 0),
            mac,
            _hop_text(p, ln, K_BGP_NEXT_HOP),
            _int_or(ln, K_BYTES, 0),
            _int_or(ln, K_PACKETS, 0),
            _int_or(ln, K_SAMPLING_RATE, 0),
            end / 1e9 if end else None,
        )
    if kind == F_PMACCT:
        mac = None
        if ln.vtype[K_MAC_SRC] == T_STR and not _is_zero_mac(p, ln, K_MAC_SRC):
            mac = _text(p, ln, K_MAC_SRC)
        when = None
        for k in (K_TIMESTAMP_END, K_TIMESTAMP_START, K_STAMP_INSERTED, K_STAMP_UPDATED):
            if ln.vtype[k] == T_ABSENT:
                continue
            v = _scalar(p, ln, k)
            if v is None or v == "" or v == 0 or v == "0":
                continue
            if type(v) is str and v.startswith("0000"):
                continue
            when = v
            break
        return (
            _text(p, ln, K_PEER_IP_SRC),
            _text(p, ln, K_IP_SRC),
            _text(p, ln, K_IP_DST),
            _int_or(ln, K_IFACE_IN, 0),
            _int_or(ln, K_IFACE_OUT, 0),
            mac,
            _hop_text(p, ln, K_PEER_IP_DST),
            _int_or(ln, K_BYTES, None) if ln.vtype[K_BYTES] == T_INT else _text(p, ln, 0),
            _int_or(ln, K_PACKETS, 0),
            _int_or(ln, K_SAMPLING_RATE, 0),
            when,
        )
    if kind == F_NFDUMP:
        e = _either(ln, K_IP4_ROUTER, K_IP6_ROUTER)
        s = _either(ln, K_SRC4_ADDR, K_SRC6_ADDR)
        d = _either(ln, K_DST4_ADDR, K_DST6_ADDR)
        hop = _either(ln, K_BGP4_NEXT_HOP, K_BGP6_NEXT_HOP)
        if e < 1 or s < 1 or d < 1 or hop < 0:
            raise _Fallback()
        mac = None
        if ln.vtype[K_IN_SRC_MAC] == T_STR and not _is_zero_mac(p, ln, K_IN_SRC_MAC):
            mac = _text(p, ln, K_IN_SRC_MAC)
        last = _scalar(p, ln, K_LAST) if ln.vtype[K_LAST] != T_ABSENT else None
        if not _truthy(last):
            last = _scalar(p, ln, K_FIRST) if ln.vtype[K_FIRST] != T_ABSENT else None
        return (
            _text(p, ln, e),
            _text(p, ln, s),
            _text(p, ln, d),
            _int_or(ln, K_INPUT_SNMP, 0),
            _int_or(ln, K_OUTPUT_SNMP, 0),
            mac,
            _hop_text(p, ln, hop),
            _int_or(ln, K_IN_BYTES, 0),
            _int_or(ln, K_IN_PACKETS, 0),
            1,
            last,
        )
    return None


def fill_rows(list rows, list kinds, list raw, object fallback):
    """Make the rows still None (the scanner's records) from their text, as the
    msgspec path would; ``fallback(kind, text)`` makes those it does not (native
    records, odd time values)."""
    cdef Py_ssize_t i, n = len(rows)
    cdef Line ln
    cdef int kind
    cdef bytes text
    if len(kinds) != n or len(raw) != n:
        raise ValueError("rows, kinds and raw differ in length")
    _forget(&ln)
    for i in range(n):
        if rows[i] is not None:
            continue
        name = kinds[i]
        text = raw[i]
        kind = KINDS.index(name) if name in KINDS else -1
        row = None
        if kind >= 0 and _parse(<const uint8_t*>PyBytes_AS_STRING(text), PyBytes_GET_SIZE(text), &ln):
            try:
                row = _row(<const uint8_t*>PyBytes_AS_STRING(text), &ln, kind)
            except _Fallback:
                row = None
        rows[i] = row if row is not None else fallback(name, text)


# ------------------------------------------------------------------ protobuf wire


cdef inline uint32_t _le32(const uint8_t* p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef inline bint _nonzero(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        if p[j]:
            return True
    return False


cdef inline Py_ssize_t _varint_size(uint64_t v) noexcept nogil:
    cdef Py_ssize_t n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


cdef inline uint8_t* _varint(uint8_t* w, uint64_t v) noexcept nogil:
    while v >= 0x80:
        w[0] = <uint8_t>(v & 0x7F) | 0x80
        v >>= 7
        w += 1
    w[0] = <uint8_t>v
    return w + 1


cdef uint8_t* _field_of(uint8_t* w, uint8_t tag, const uint8_t* src, Py_ssize_t width, Py_ssize_t n) noexcept nogil:
    """A bytes field: ``width`` bytes at ``src`` of each of n records, in order."""
    cdef Py_ssize_t i
    w[0] = tag
    w = _varint(w + 1, width * n)
    for i in range(n):
        memcpy(w, src + i * REC, width)
        w += width
    return w


# ------------------------------------------------------------------ the batch


cdef struct Span:
    int64_t start  # where the record's line starts in its chunk's data
    int32_t length  # its text without the closing brace
    int32_t chunk  # an index into Packed.chunks


cdef class Packed:
    """One batch's packed request records, at the records' indexes in the batch
    (records the Python reader took are left zero, ``ok`` 0), and the batch's
    exporters (canonical text, in order of first sight) with their indexes."""

    cdef uint8_t* buf
    cdef Span* spans
    cdef Py_ssize_t cap
    cdef public list chunks  # the data of whole chunks records' texts are in (scan_data)
    cdef public list exporters
    cdef public dict canon
    cdef public dict ids
    cdef public Py_ssize_t taken
    cdef object canonical
    cdef char cache_text[CACHE][MAX_ADDR + 1]
    cdef Py_ssize_t cache_len[CACHE]
    cdef uint32_t cache_index[CACHE]
    cdef int cached
    cdef Line line

    def __cinit__(self, canonical, Py_ssize_t size=4096):
        self.cap = max(size, 16)
        self.buf = <uint8_t*>calloc(self.cap, REC)
        self.spans = <Span*>calloc(self.cap, SPAN)
        if self.buf == NULL or self.spans == NULL:
            raise MemoryError()
        self.chunks = []
        self.exporters = []
        self.canon = {}
        self.ids = {}
        self.taken = 0
        self.canonical = canonical
        self.cached = 0
        _forget(&self.line)

    def __dealloc__(self):
        free(self.buf)
        free(self.spans)

    cdef int _grow(self, Py_ssize_t n) except -1:
        cdef Py_ssize_t cap = self.cap
        cdef uint8_t* got
        cdef Span* spans
        if n <= cap:
            return 0
        while cap < n:
            cap *= 2
        got = <uint8_t*>realloc(self.buf, cap * REC)
        if got == NULL:
            raise MemoryError()
        memset(got + self.cap * REC, 0, (cap - self.cap) * REC)
        self.buf = got
        spans = <Span*>realloc(self.spans, cap * SPAN)
        if spans == NULL:
            raise MemoryError()
        memset(<uint8_t*>spans + self.cap * SPAN, 0, (cap - self.cap) * SPAN)
        self.spans = spans
        self.cap = cap
        return 0

    cpdef int exporter_index(self, str text) except -1:
        """The batch's index of an exporter as written (canonicalised once);
        raises ValueError for text that is no address."""
        got = self.ids.get(text)
        if got is not None:
            return got
        c = self.canonical(text)
        j = self.canon.get(c)
        if j is None:
            j = self.canon[c] = len(self.exporters)
            self.exporters.append(c)
        self.ids[text] = j
        return j

    cdef int _exporter(self, const uint8_t* p, Line* ln, int k) except -2:
        """The exporter's index, -1 if it is no address (the Python reader decides)."""
        cdef Py_ssize_t m = ln.length[k] - 2
        cdef const uint8_t* s = p + ln.start[k] + 1
        cdef int j
        if m <= 0 or m > MAX_ADDR:
            return -1
        for j in range(self.cached):
            if self.cache_len[j] == m and enrich_scan_eq(<const uint8_t*>self.cache_text[j], s, m):
                return <int>self.cache_index[j]
        text = PyBytes_FromStringAndSize(<const char*>s, m).decode("ascii")
        try:
            index = self.exporter_index(text)
        except (ValueError, OSError):
            return -1
        if self.cached < CACHE:
            memcpy(self.cache_text[self.cached], s, m)
            self.cache_len[self.cached] = m
            self.cache_index[self.cached] = index
            self.cached += 1
        return index

    def records(self, Py_ssize_t n):
        """The first n packed records (RECORD_SIZE bytes each), a writable copy."""
        self._grow(n)
        return bytearray(PyBytes_FromStringAndSize(<const char*>self.buf, n * REC))

    cdef int _line(self, const uint8_t* p, Py_ssize_t n, int fmt, Py_ssize_t at) except -2:
        """Pack one line at record ``at``: its format, -1 to leave it to Python."""
        cdef Line* ln = &self.line
        cdef int kind, e, s, d, mac_key, hop_key
        cdef uint32_t in_if = 0, out_if = 0
        cdef uint8_t rec[REC]
        cdef int index
        if not _parse(p, n, ln):
            return -1
        kind = fmt
        if kind == F_AUTO:  # flowformats.detect
            if _has(ln, K_EXPORTER):
                kind = F_NATIVE
            elif _has(ln, K_SAMPLER_ADDRESS) or _has(ln, K_TIME_FLOW_END_NS):
                kind = F_GOFLOW2
            elif _has(ln, K_PEER_IP_SRC) or _has(ln, K_IP_SRC) or _has(ln, K_EVENT_TYPE):
                kind = F_PMACCT
            elif (_has(ln, K_EXPORT_SYSID) or _has(ln, K_SRC4_ADDR) or _has(ln, K_SRC6_ADDR)
                  or _has(ln, K_IP4_ROUTER)):
                kind = F_NFDUMP
            else:
                return -1
        if kind == F_GOFLOW2:  # flowformats.goflow2_to_flow
            e, s, d = K_SAMPLER_ADDRESS, K_SRC_ADDR, K_DST_ADDR
            if not (_str(ln, e) and _str(ln, s) and _str(ln, d)):
                return -1
            if not (_u32(ln, K_IN_IF, &in_if) and _u32(ln, K_OUT_IF, &out_if)):
                return -1
            if not (_int_or_absent(ln, K_BYTES) and _int_or_absent(ln, K_PACKETS)
                    and _int_or_absent(ln, K_SAMPLING_RATE)
                    and _int_or_absent(ln, K_TIME_FLOW_END_NS)
                    and _int_or_absent(ln, K_TIME_RECEIVED_NS)):
                return -1
            mac_key, hop_key = K_SRC_MAC, K_BGP_NEXT_HOP
        elif kind == F_PMACCT:  # flowformats.pmacct_input
            if _has(ln, K_EVENT_TYPE) and (
                ln.vtype[K_EVENT_TYPE] != T_STR
                or _is(p, ln, K_EVENT_TYPE, "purge_init", 10)
                or _is(p, ln, K_EVENT_TYPE, "purge_close", 11)
            ):
                return -1  # a marker, or a type the Python reader judges
            e, s, d = K_PEER_IP_SRC, K_IP_SRC, K_IP_DST
            if not (_str(ln, e) and _str(ln, s) and _str(ln, d)):
                return -1
            if not (_u32(ln, K_IFACE_IN, &in_if) and _u32(ln, K_IFACE_OUT, &out_if)):
                return -1
            if ln.vtype[K_BYTES] != T_INT:
                return -1
            if not (_int_or_absent(ln, K_PACKETS) and _int_or_absent(ln, K_SAMPLING_RATE)
                    and _int_or_absent(ln, K_AS_SRC) and _int_or_absent(ln, K_AS_DST)
                    and _int_or_absent(ln, K_PEER_AS_SRC) and _int_or_absent(ln, K_PEER_AS_DST)):
                return -1
            mac_key, hop_key = K_MAC_SRC, K_PEER_IP_DST
        elif kind == F_NFDUMP:  # flowformats.nfdump_to_flow
            if _has(ln, K_TYPE) and ln.vtype[K_TYPE] != T_NULL and not _is(p, ln, K_TYPE, "FLOW", 4):
                return -1  # an event record, or a type the Python reader judges
            e = _either(ln, K_IP4_ROUTER, K_IP6_ROUTER)
            s = _either(ln, K_SRC4_ADDR, K_SRC6_ADDR)
            d = _either(ln, K_DST4_ADDR, K_DST6_ADDR)
            if e < 1 or s < 1 or d < 1:
                return -1
            if not (_u32(ln, K_INPUT_SNMP, &in_if) and _u32(ln, K_OUTPUT_SNMP, &out_if)):
                return -1
            if not (_int_or_absent(ln, K_IN_BYTES) and _int_or_absent(ln, K_IN_PACKETS)):
                return -1
            hop_key = _either(ln, K_BGP4_NEXT_HOP, K_BGP6_NEXT_HOP)
            if hop_key < 0:
                return -1
            mac_key = K_IN_SRC_MAC
        elif kind == F_NATIVE:  # taken as it is: enrich_pack checks what it packs
            e, s, d = K_EXPORTER, K_SRC_ADDR, K_DST_ADDR
            if not (_str(ln, e) and _str(ln, s) and _str(ln, d)):
                return -1
            if not (_u32(ln, K_IN_IF, &in_if) and _u32(ln, K_OUT_IF, &out_if)):
                return -1
            mac_key, hop_key = K_SRC_MAC, K_NEXT_HOP
        else:
            return -1
        memset(rec, 0, REC)
        if not (_address(p, ln, s, rec + 16) and _address(p, ln, d, rec + 32)):
            return -1
        if not _mac(p, ln, mac_key, rec + 1):
            return -1
        if not _hop(p, ln, hop_key, rec + 48):
            return -1
        index = self._exporter(p, ln, e)
        if index < 0:
            return -1
        rec[0] = 1
        memcpy(rec + 8, &index, 4)
        memcpy(rec + 12, &in_if, 4)
        self._grow(at + 1)
        memcpy(self.buf + at * REC, rec, REC)
        return kind

    cdef void _tally(self, Py_ssize_t *got, dict formats):
        """Records taken per format (``got``, indexed like KINDS) into the run's
        ``formats`` counts and :attr:`taken`."""
        cdef int kind
        for kind in range(4):
            if got[kind]:
                name = KINDS[kind]
                formats[name] = formats.get(name, 0) + got[kind]
                self.taken += got[kind]

    def scan(
        self,
        list lines,
        Py_ssize_t k,
        Py_ssize_t first,
        object source,
        int fmt,
        Py_ssize_t limit,
        list rows,
        list raw,
        list sources,
        list numbers,
        list kinds,
        dict formats,
    ):
        """Take lines from ``lines[k]`` on into the batch (its lists), until one is
        not for the scanner or the batch has ``limit`` records: the index of the
        first line not taken. ``first``: the line number of ``lines[0]``;
        ``fmt``: an index into KINDS, or -1 to tell each record's format."""
        cdef Py_ssize_t n = len(lines)
        cdef Py_ssize_t count = len(rows)
        cdef Py_ssize_t m
        cdef const uint8_t* p
        cdef int kind
        cdef Py_ssize_t got[4]
        cdef bytes text
        got[0] = got[1] = got[2] = got[3] = 0
        while k < n and count < limit:
            line = lines[k]
            if type(line) is not bytes:
                break
            text = <bytes>line
            m = PyBytes_GET_SIZE(text)
            p = <const uint8_t*>PyBytes_AS_STRING(text)
            if m >= 3 and p[m - 2] == 44 and p[m - 1] == 125:  # nfdump json-log: ",}"
                text = text[: m - 2] + b"}"
                m = PyBytes_GET_SIZE(text)
                p = <const uint8_t*>PyBytes_AS_STRING(text)
            kind = self._line(p, m, fmt, count)
            if kind < 0:
                break
            rows.append(None)
            raw.append(text)
            sources.append(source)
            numbers.append(first + k)
            kinds.append(KINDS[kind])
            got[kind] += 1
            count += 1
            k += 1
        self._tally(got, formats)
        return k


    def scan_data(
        self,
        bytes data,
        Py_ssize_t pos,
        Py_ssize_t k,
        Py_ssize_t first,
        object source,
        int fmt,
        Py_ssize_t limit,
        list rows,
        list raw,
        list sources,
        list numbers,
        list kinds,
        dict formats,
    ):
        """:meth:`scan` over a whole chunk's data (lines ending in newlines) from
        byte ``pos``, line ``k`` on: ``(k, pos)`` of the first line not taken.
        A record taken keeps no bytes of its own: its ``raw`` item is None and
        its text a span of ``data`` (kept in :attr:`chunks`), which the JSON
        assembler copies from (:meth:`span_table`) and :meth:`fill_texts` makes
        bytes of when something else asks."""
        cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
        cdef const uint8_t* base = <const uint8_t*>PyBytes_AS_STRING(data)
        cdef const uint8_t* p
        cdef const uint8_t* nl
        cdef Py_ssize_t count = len(rows)
        cdef Py_ssize_t m, end
        cdef int kind
        cdef int32_t chunk = -1
        cdef Py_ssize_t got[4]
        cdef bytes text
        cdef Span* sp
        got[0] = got[1] = got[2] = got[3] = 0
        if pos < 0 or pos > size:
            raise ValueError(f"offset {pos} outside data of {size} bytes")
        while pos < size and count < limit:
            p = base + pos
            nl = <const uint8_t*>memchr(p, 10, size - pos)
            end = size if nl == NULL else nl - base
            m = end - pos
            if m > 0x7FFFFFF0:  # beyond a span's length: the Python reader's (too long)
                break
            if m >= 3 and p[m - 2] == 44 and p[m - 1] == 125:  # nfdump json-log: ",}"
                text = data[pos : end - 2] + b"}"
                kind = self._line(<const uint8_t*>PyBytes_AS_STRING(text), m - 1, fmt, count)
                if kind < 0:
                    break
                raw.append(text)
            else:
                kind = self._line(p, m, fmt, count)
                if kind < 0:
                    break
                if chunk < 0:
                    if not self.chunks or self.chunks[-1] is not data:
                        self.chunks.append(data)
                    chunk = len(self.chunks) - 1
                sp = &self.spans[count]  # _line grew the spans to count + 1
                sp.start = pos
                sp.length = <int32_t>(m - 1)  # _line took it: it ends in its closing brace
                sp.chunk = chunk
                raw.append(None)
            rows.append(None)
            sources.append(source)
            numbers.append(first + k)
            kinds.append(KINDS[kind])
            got[kind] += 1
            count += 1
            k += 1
            pos = end + 1 if nl != NULL else size
        self._tally(got, formats)
        return k, pos

    def request(self, Py_ssize_t n, uint64_t batch_id):
        """The FlowBatch of the first n records as protobuf wire bytes: the
        message :func:`attribution.enrich_pack._request` makes of the same
        columns (tests/attribution/test_enrich_scan.py compares them), when
        every record is the scanner's (``ok``); None when one is not (its row
        is packed by Python). Why: the request's repeated fields made from
        Python lists (two ints a record) cost a fifth of the scan."""
        cdef Py_ssize_t i, size, body, cols, mac_zero = 1, hop_zero = 1
        cdef uint8_t* rec
        cdef uint8_t* w
        cdef uint32_t v
        cdef Py_ssize_t exporter_bytes = 0, exporter_len = 0, in_if_len = 0
        cdef list names
        cdef bytes name
        self._grow(n)
        for i in range(n):
            rec = self.buf + i * REC
            if rec[0] != 1:
                return None
            if mac_zero and _nonzero(rec + 1, 6):
                mac_zero = 0
            if hop_zero and _nonzero(rec + 48, 16):
                hop_zero = 0
            exporter_len += _varint_size(_le32(rec + 8))
            in_if_len += _varint_size(_le32(rec + 12))
        names = [e.encode() for e in (self.exporters or ["0.0.0.0"])]
        for name in names:
            exporter_bytes += 1 + _varint_size(<uint64_t>len(name)) + len(name)
        cols = exporter_bytes
        if n:
            cols += 1 + _varint_size(exporter_len) + exporter_len
            cols += 2 * (1 + _varint_size(16 * n) + 16 * n)
            cols += 1 + _varint_size(in_if_len) + in_if_len
            if not mac_zero:
                cols += 1 + _varint_size(6 * n) + 6 * n
            if not hop_zero:
                cols += 1 + _varint_size(16 * n) + 16 * n
        body = 1 + _varint_size(cols) + cols + 4
        if batch_id:
            body += 1 + _varint_size(batch_id)
        out = PyBytes_FromStringAndSize(NULL, body)
        w = <uint8_t*>PyBytes_AS_STRING(out)
        if batch_id:
            w[0] = 0x08  # 1: batch_id
            w = _varint(w + 1, batch_id)
        w[0] = 0x1A  # 3: columns
        w = _varint(w + 1, cols)
        for name in names:  # FlowColumns 1: exporters
            w[0] = 0x0A
            w = _varint(w + 1, len(name))
            memcpy(w, PyBytes_AS_STRING(name), len(name))
            w += len(name)
        if n:
            w[0] = 0x12  # 2: exporter, packed
            w = _varint(w + 1, exporter_len)
            for i in range(n):
                w = _varint(w, _le32(self.buf + i * REC + 8))
            w = _field_of(w, 0x1A, self.buf + 16, 16, n)  # 3: src_addr
            w = _field_of(w, 0x22, self.buf + 32, 16, n)  # 4: dst_addr
            w[0] = 0x2A  # 5: in_if, packed (all of them, zeros too)
            w = _varint(w + 1, in_if_len)
            for i in range(n):
                w = _varint(w, _le32(self.buf + i * REC + 12))
            if not mac_zero:
                w = _field_of(w, 0x3A, self.buf + 1, 6, n)  # 7: src_mac
            if not hop_zero:
                w = _field_of(w, 0x42, self.buf + 48, 16, n)  # 8: next_hop
        w[0] = 0x28  # 5: packed_records
        w[1] = 1
        w[2] = 0x30  # 6: stream_routes
        w[3] = 1
        w += 4
        if w - <uint8_t*>PyBytes_AS_STRING(out) != body:
            raise AssertionError("request size miscounted")
        return out

    def span_table(self, Py_ssize_t n):
        """The first n records' spans (SPAN_SIZE bytes each: start, length, chunk)."""
        self._grow(n)
        return PyBytes_FromStringAndSize(<const char*>self.spans, n * SPAN)

    def fill_texts(self, list raw):
        """Make the texts still None (scan_data's records) bytes of their own."""
        cdef Py_ssize_t i, n = len(raw)
        cdef Span sp
        cdef bytes data, text
        cdef char* out
        self._grow(n)
        for i in range(n):
            if raw[i] is not None:
                continue
            sp = self.spans[i]
            if not (0 <= sp.chunk < len(self.chunks)):
                raise IndexError(f"record {i}'s text is in no chunk")
            data = self.chunks[sp.chunk]
            if sp.start < 0 or sp.length < 1 or sp.start + sp.length > PyBytes_GET_SIZE(data):
                raise IndexError(f"record {i}'s text is outside its chunk")
            text = PyBytes_FromStringAndSize(NULL, sp.length + 1)
            out = PyBytes_AS_STRING(text)
            memcpy(out, PyBytes_AS_STRING(data) + sp.start, sp.length)
            out[sp.length] = 125
            raw[i] = text


def count_lines(bytes data):
    """The newlines in ``data``, by memchr (bytes.count walks it a byte at a time:
    on a 64 KiB chunk that cost what splitting it into lines did)."""
    cdef const char* p = PyBytes_AS_STRING(data)
    cdef const char* end = p + PyBytes_GET_SIZE(data)
    cdef const char* q
    cdef Py_ssize_t n = 0
    while p < end:
        q = <const char*>memchr(p, 10, end - p)
        if q == NULL:
            break
        n += 1
        p = q + 1
    return n
