# The field checks of attribution/_enrich_scan.pyx (included there): whether a
# member's value is what the format's mapping takes, and addresses, MACs and
# next hops packed as the Python reader packs them. Every index into a line is
# checked against the member's span, which the parse checked against the line.

cdef extern from "<arpa/inet.h>" nogil:
    int inet_pton(int af, const char *src, void *dst)

cdef extern from "<sys/socket.h>" nogil:
    int AF_INET
    int AF_INET6


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


cdef void _fields_of(Line* ln, int kind, Field* out) noexcept nogil:
    """The record's flow fields by slot (a string's contents without its quotes),
    for the column builder (attribution._enrich_columns); a native record: none.
    ``out`` is zero (T_ABSENT) when handed here (Packed keeps its field table
    zeroed, and writes a record's row once): only the slots of fields the
    record has are written (writing every slot cost ~760 instructions a record)."""
    cdef int j, slot, k
    if kind < 0 or kind > F_NFDUMP:
        return
    for j in range(_slot_count[kind]):
        slot = _slot_used[kind][j]
        k = _slot_key[kind][slot]
        if ln.vtype[k] == T_ABSENT:
            continue
        out[slot].vtype = ln.vtype[k]
        out[slot].ival = ln.ival[k]
        if ln.vtype[k] == T_STR:
            out[slot].start = <int32_t>(ln.start[k] + 1)
            out[slot].length = <int32_t>(ln.length[k] - 2)
        else:
            out[slot].start = <int32_t>ln.start[k]
            out[slot].length = <int32_t>ln.length[k]
