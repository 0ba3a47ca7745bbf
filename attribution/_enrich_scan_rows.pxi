# The rows of attribution/_enrich_scan.pyx (included there): a scanned line's
# flow fields as the tuple the Python reader makes (FLOW_FIELDS), for writers
# that ask for rows.

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
        if kind >= 0 and _parse(<const uint8_t*>PyBytes_AS_STRING(text), PyBytes_GET_SIZE(text), &ln, 0):
            try:
                row = _row(<const uint8_t*>PyBytes_AS_STRING(text), &ln, kind)
            except _Fallback:
                row = None
        rows[i] = row if row is not None else fallback(name, text)

