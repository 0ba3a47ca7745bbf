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
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_Resize
from cpython.unicode cimport PyUnicode_DecodeASCII

include "_enrich_defs.pxi"


SPAN_SIZE = SPAN
FIELD_SIZE = FIELD
SLOTS = NSLOTS
DEF MAX_KEY = 48
DEF TABLE = 512
DEF MAX_FRACTION_DIGITS = 30
DEF MAX_ADDR = 63

KINDS = ("goflow2", "pmacct", "nfdump", "native")


include "_enrich_scan_request.pxi"  # the packed record (REC) first: the rest uses it
include "_enrich_scan_keys.pxi"
include "_enrich_scan_parse.pxi"
include "_enrich_scan_fields.pxi"
include "_enrich_scan_rows.pxi"


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
    cdef Field* fields  # NSLOTS a record, when kept (the column builder's): in fields_obj
    cdef object fields_obj  # a bytearray (zeroed): field_table hands out a view, no copy
    cdef uint8_t* kind_of  # each record's format (an index into KINDS)
    cdef readonly bint keep_fields
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

    def __cinit__(self, canonical, Py_ssize_t size=4096, bint fields=False):
        self.cap = max(size, 16)
        self.buf = <uint8_t*>calloc(self.cap, REC)
        self.spans = <Span*>calloc(self.cap, SPAN)
        self.kind_of = <uint8_t*>calloc(self.cap, 1)
        if self.buf == NULL or self.spans == NULL or self.kind_of == NULL:
            raise MemoryError()
        self.keep_fields = fields
        self.fields = NULL
        self.fields_obj = None
        if fields:
            self.fields_obj = bytearray(self.cap * NSLOTS * FIELD)
            self.fields = <Field*>PyByteArray_AS_STRING(self.fields_obj)
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
        free(self.kind_of)

    cdef int _grow(self, Py_ssize_t n) except -1:
        cdef Py_ssize_t cap = self.cap
        cdef uint8_t* got
        cdef Span* spans
        cdef Field* fields
        cdef uint8_t* kind_of
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
        kind_of = <uint8_t*>realloc(self.kind_of, cap)
        if kind_of == NULL:
            raise MemoryError()
        self.kind_of = kind_of
        if self.keep_fields:  # BufferError while a field_table view is alive: never moved under it
            PyByteArray_Resize(self.fields_obj, cap * NSLOTS * FIELD)
            fields = <Field*>PyByteArray_AS_STRING(self.fields_obj)
            memset(<uint8_t*>fields + self.cap * NSLOTS * FIELD, 0, (cap - self.cap) * NSLOTS * FIELD)
            self.fields = fields
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

    cdef int _line(
        self, const uint8_t* p, Py_ssize_t n, int fmt, Py_ssize_t at, bint open_end=False
    ) except -2:
        """Pack one line at record ``at``: its format, -1 to leave it to Python.
        ``open_end``: ``p[:n]`` is the object without its closing brace (_parse)."""
        cdef Line* ln = &self.line
        cdef int kind, e, s, d, mac_key, hop_key
        cdef uint32_t in_if = 0, out_if = 0
        cdef uint8_t rec[REC]
        cdef int index
        if n > 0x7FFFFFF0 or not _parse(p, n, ln, open_end):  # offsets in a Field are int32
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
        self.kind_of[at] = <uint8_t>kind
        if self.keep_fields:
            _fields_of(ln, kind, self.fields + at * NSLOTS)
        return kind

    cdef int _taken(
        self, Py_ssize_t start, Py_ssize_t count, Py_ssize_t line, object source,
        list rows, list sources, list numbers, list kinds, dict formats,
    ) except -1:
        """Records start .. count - 1 (just taken, lines ``line`` on, of ``source``)
        into the batch's lists a run at a time (an append a record and list cost
        more than the parse of a short line's fields), and their formats counted."""
        cdef Py_ssize_t j, n = count - start
        cdef Py_ssize_t got[4]
        cdef tuple names = KINDS
        if n <= 0:
            return 0
        got[0] = got[1] = got[2] = got[3] = 0
        made = [None] * n
        for j in range(n):
            got[self.kind_of[start + j]] += 1
            made[j] = names[self.kind_of[start + j]]
        kinds += made
        rows += [None] * n
        sources += [source] * n
        numbers += range(line, line + n)
        self._tally(got, formats)
        return 0

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
        cdef Py_ssize_t start = count, k0 = k
        cdef Py_ssize_t m
        cdef const uint8_t* p
        cdef int kind
        cdef bytes text
        try:
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
                raw.append(text)
                count += 1
                k += 1
        finally:
            self._taken(start, count, first + k0, source, rows, sources, numbers, kinds, formats)
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
        Py_ssize_t end=-1,
    ):
        """:meth:`scan` over a whole chunk's data (lines ending in newlines) from
        byte ``pos`` to ``end`` (-1: its size), line ``k`` on: ``(k, pos)`` of
        the first line not taken (a line is never read past ``end``, so a read
        is scanned where it lies, without slicing its complete lines off).
        A record taken keeps no bytes of its own: its ``raw`` item is None and
        its text a span of ``data`` (kept in :attr:`chunks`), which the JSON
        assembler copies from (:meth:`span_table`) and :meth:`fill_texts` makes
        bytes of when something else asks."""
        cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
        cdef Py_ssize_t start = len(rows), k0 = k
        if len(raw) != start:
            raise ValueError("rows and raw differ in length")
        if end < 0:
            end = size
        if end > size:
            raise ValueError(f"end {end} outside data of {size} bytes")
        if pos < 0 or pos > end:
            raise ValueError(f"offset {pos} outside data of {end} bytes")
        try:
            self._scan_data(data, end, &pos, &k, fmt, limit, raw)
        finally:
            self._taken(start, len(raw), first + k0, source, rows, sources, numbers, kinds, formats)
        return k, pos

    cdef int _scan_data(
        self, bytes data, Py_ssize_t size, Py_ssize_t* at, Py_ssize_t* line, int fmt,
        Py_ssize_t limit, list raw,
    ) except -1:
        """scan_data's loop over ``data[:size]`` (``size`` checked by the caller):
        texts into ``raw`` (None: a span), ``at`` and ``line`` moved past what was
        taken."""
        cdef const uint8_t* base = <const uint8_t*>PyBytes_AS_STRING(data)
        cdef const uint8_t* p
        cdef const uint8_t* nl
        cdef Py_ssize_t count = len(raw)
        cdef Py_ssize_t pos = at[0], k = line[0]
        cdef Py_ssize_t m, end
        cdef int kind, trail
        cdef int32_t chunk = -1
        cdef Span* sp
        while pos < size and count < limit:
            p = base + pos
            nl = <const uint8_t*>memchr(p, 10, size - pos)
            end = size if nl == NULL else nl - base
            m = end - pos
            if m > 0x7FFFFFF0:  # beyond a span's length: the Python reader's (too long)
                break
            # nfdump json-log ends its objects in ",}": read as the text without
            # them and a closing brace (the Python reader's text[:-2] + b"}"),
            # its span the text without them; else the span is the text without
            # its closing brace (_line took it: it ends in one)
            trail = 2 if m >= 3 and p[m - 2] == 44 and p[m - 1] == 125 else 1
            kind = self._line(p, m - 2 if trail == 2 else m, fmt, count, trail == 2)
            if kind < 0:
                break
            if chunk < 0:
                if not self.chunks or self.chunks[len(self.chunks) - 1] is not data:
                    self.chunks.append(data)
                chunk = len(self.chunks) - 1
            sp = &self.spans[count]  # _line grew the spans to count + 1
            sp.start = pos
            sp.length = <int32_t>(m - trail)
            sp.chunk = chunk
            raw.append(None)
            count += 1
            k += 1
            pos = end + 1 if nl != NULL else size
            at[0] = pos
            line[0] = k
        return 0

    def request(self, Py_ssize_t n, uint64_t batch_id):
        """The FlowBatch of the first n records as protobuf wire bytes: the
        message :func:`attribution.enrich_pack._request` makes of the same
        columns (tests/attribution/test_enrich_scan.py compares them), when
        every record is the scanner's (``ok``); None when one is not (its row
        is packed by Python). Why: the request's repeated fields made from
        Python lists (two ints a record) cost a fifth of the scan."""
        self._grow(n)
        return _request(self.buf, n, self.exporters, batch_id)

    def field_table(self, Py_ssize_t n):
        """The first n records' flow fields (SLOTS Fields of FIELD_SIZE bytes a
        record: offsets into each record's text), or None when not kept: a
        read-only view of the table, not a copy (1.8 MB a batch of 4,096);
        while it is alive the table cannot grow (BufferError), so it never
        points at freed memory."""
        if not self.keep_fields:
            return None
        self._grow(n)
        return memoryview(self.fields_obj)[: n * NSLOTS * FIELD].toreadonly()

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
