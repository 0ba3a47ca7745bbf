# The JSON grammar half of attribution/_enrich_scan.pyx (included there, compiled
# with it): the key table, and a line's top-level members into a Line, validating
# every value (nested ones too) without building any object. Every index is
# checked against the line's length by hand.

cdef char _names[TABLE][MAX_KEY]
cdef int _lens[TABLE]
cdef int _ids[TABLE]
cdef int _max_depth = 32
# byte classes inside strings: 0 plain, 1 the closing quote, 2 a bracket (counted:
# the Python reader's depth bound counts every { and [ of the line), 3 refused
# (control characters, backslash, non-ASCII)
cdef uint8_t _cls[256]


cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* a[0..n) == b[0..n), inline (a libc memcmp call a key cost more than the
       compare: keys are ~12 bytes); reads only the n bytes of each. */
    static inline int enrich_scan_eq(const unsigned char *a, const unsigned char *b,
                                     Py_ssize_t n) {
        uint64_t x, y;
        uint32_t u, v;
        Py_ssize_t j;
        if (n >= 8) {  /* whole words, the last one overlapping the one before */
            for (j = 0; j + 8 < n; j += 8) {
                memcpy(&x, a + j, 8);
                memcpy(&y, b + j, 8);
                if (x != y)
                    return 0;
            }
            memcpy(&x, a + n - 8, 8);
            memcpy(&y, b + n - 8, 8);
            return x == y;
        }
        if (n >= 4) {  /* the first and the last four bytes */
            memcpy(&u, a, 4);
            memcpy(&v, b, 4);
            if (u != v)
                return 0;
            memcpy(&u, a + n - 4, 4);
            memcpy(&v, b + n - 4, 4);
            return u == v;
        }
        for (j = 0; j < n; j++)
            if (a[j] != b[j])
                return 0;
        return 1;
    }

    /* Eight ASCII digits at p as their value, or -1 if one of them is not a
       digit (simdjson's parse_eight_digits_unrolled, with its digit check). */
    static inline int64_t enrich_scan_eight(const unsigned char *p) {
        uint64_t x;
        memcpy(&x, p, 8);
        if ((x & 0xF0F0F0F0F0F0F0F0ULL) != 0x3030303030303030ULL
            || ((x + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) != 0x3030303030303030ULL)
            return -1;
        x -= 0x3030303030303030ULL;
        x = (x * 10) + (x >> 8);
        x = (((x & 0x000000FF000000FFULL) * 0x000F424000000064ULL)
             + (((x >> 16) & 0x000000FF000000FFULL) * 0x0000271000000001ULL)) >> 32;
        return (int64_t)(uint32_t)x;
    }
    """
    bint enrich_scan_eq(const uint8_t* a, const uint8_t* b, Py_ssize_t n) noexcept nogil
    int64_t enrich_scan_eight(const uint8_t* p) noexcept nogil


cdef inline uint32_t _hash(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    """A key's slot hash from its length and four of its bytes (no loop over it:
    the table's keys differ there; a collision only costs a probe)."""
    cdef uint32_t h
    if n == 0:
        return 0
    h = (<uint32_t>n * 0x9E3779B1u) ^ (<uint32_t>p[0] << 24) ^ (<uint32_t>p[n - 1] << 16)
    h ^= (<uint32_t>p[n // 2] << 8) ^ p[(n * 3) // 4]
    h *= 0x85EBCA6Bu
    return h ^ (h >> 15)


cdef int _put(bytes name, int kid) except -1:
    cdef Py_ssize_t n = len(name)
    if n >= MAX_KEY or n == 0:
        raise ValueError(f"key too long or empty for the scanner's table: {name!r}")
    cdef uint32_t slot = _hash(<const uint8_t*><const char*>name, n) & (TABLE - 1)
    while _lens[slot] != 0:
        if _lens[slot] == n and memcmp(_names[slot], <const char*>name, n) == 0:
            if _ids[slot] != kid:
                raise ValueError(f"{name!r} is both an answer name and an input field")
            return 0
        slot = (slot + 1) & (TABLE - 1)
    memcpy(_names[slot], <const char*>name, n)
    _lens[slot] = <int>n
    _ids[slot] = kid
    return 0


def setup(answer_names, int max_depth):
    """The names a record may not carry (the answer replaces them: the Python
    reader drops them) and the nesting bound; called once at import."""
    global _max_depth, _generation
    _generation += 1
    memset(_lens, 0, sizeof(_lens))
    _max_depth = max_depth
    for c in range(256):
        _cls[c] = 3 if c < 32 or c >= 128 or c == 92 else 0
    _cls[34] = 1
    _cls[123] = 2
    _cls[91] = 2
    for k, name in enumerate(KEYS):
        _put(name.encode(), k + 2)
    for name in answer_names:
        _put(name.encode(), K_ANSWER)


cdef inline int _lookup(const uint8_t* p, Py_ssize_t n, uint32_t h) noexcept nogil:
    if n >= MAX_KEY:
        return 0
    cdef uint32_t slot = h & (TABLE - 1)
    while _lens[slot] != 0:
        if _lens[slot] == n and enrich_scan_eq(<const uint8_t*>_names[slot], p, n):
            return _ids[slot]
        slot = (slot + 1) & (TABLE - 1)
    return 0


DEF MEMO = 64  # members whose key is remembered by position


cdef struct KeyMemo:
    uint8_t text[MAX_KEY + 2]  # the key with its quotes, as the line had it
    int length  # of text; 0: nothing remembered at this position
    int kid
    int opens  # brackets inside the key (the depth bound counts them)
    uint32_t generation  # of the key table (setup) it was looked up in


DEF SAME_TEXT = 64  # a member remembered whole: at most this long, its comma included
DEF SAME_WAIT = 16  # lines a position is not remembered after a miss, at first
DEF SAME_WAIT_MAX = 1024  # doubled after each miss without a hit between, up to this


cdef struct MemberMemo:
    # a whole member of the line before at this position, key to comma: a
    # collector repeats many values line after line (its type, the exporter,
    # the sampling rate, MACs, counters' constants), and a member equal byte
    # for byte, comma included, to one read before is read as that one was
    uint8_t text[SAME_TEXT]
    int length  # of text; 0: nothing remembered
    int wait  # lines left before this position is remembered again (after a miss)
    int backoff  # the next miss's wait
    int kid
    int kind
    int opens  # the member's { and [ (the depth bound counts them)
    int vstart  # the value's offset in text
    int vlength
    int64_t ival
    uint32_t generation


cdef struct Line:
    int vtype[NKEYS]
    Py_ssize_t start[NKEYS]
    Py_ssize_t length[NKEYS]
    int64_t ival[NKEYS]
    # the key of each member position of a line parsed before: a collector writes
    # its keys in the same order, so the next line's key at that position is
    # compared as bytes (no scan, hash or table probe); only a key equal byte for
    # byte, quotes included, takes the remembered id
    KeyMemo memo[MEMO]
    MemberMemo same[MEMO]


cdef uint32_t _generation = 1  # setup() changes the table: memos of before are stale


cdef void _forget(Line* ln) noexcept nogil:
    cdef int j
    for j in range(MEMO):
        ln.memo[j].length = 0
        ln.same[j].length = 0
        ln.same[j].wait = 0
        ln.same[j].backoff = SAME_WAIT


cdef inline Py_ssize_t _ws(const uint8_t* p, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
    # one compare for the usual byte (none of the four is above a space)
    while i < n and p[i] <= 32 and (p[i] == 32 or p[i] == 9 or p[i] == 13 or p[i] == 10):
        i += 1
    return i


cdef extern from *:
    """
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif
    /* The index of the first byte from i on that is not plain string text (a quote,
       { or [, a backslash, a control character, non-ASCII), or n. 16 bytes at a time
       where SSE2 is (every x86-64); never reads at or past n. */
    static inline Py_ssize_t enrich_scan_plain(const unsigned char *p, Py_ssize_t i,
                                               Py_ssize_t n, const unsigned char *cls) {
    #if defined(__SSE2__)
        const __m128i quote = _mm_set1_epi8(0x22), slash = _mm_set1_epi8(0x5C);
        const __m128i brace = _mm_set1_epi8(0x7B), bracket = _mm_set1_epi8(0x5B);
        const __m128i space = _mm_set1_epi8(0x20);
        while (i + 16 <= n) {
            __m128i v = _mm_loadu_si128((const __m128i *)(p + i));
            __m128i hit = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, slash)),
                _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, brace), _mm_cmpeq_epi8(v, bracket)),
                             _mm_cmplt_epi8(v, space)));  /* signed: < 0x20 and >= 0x80 */
            int mask = _mm_movemask_epi8(hit);
            if (mask)
                return i + __builtin_ctz(mask);
            i += 16;
        }
    #endif
        while (i < n && cls[p[i]] == 0)
            i++;
        return i;
    }
    """
    Py_ssize_t enrich_scan_plain(const uint8_t* p, Py_ssize_t i, Py_ssize_t n, const uint8_t* cls) noexcept nogil


cdef Py_ssize_t _string(const uint8_t* p, Py_ssize_t n, Py_ssize_t i, int* opens) noexcept nogil:
    """p[i] is the opening quote: the index after the closing one, -1 if bad."""
    cdef uint8_t c
    i += 1
    while True:
        i = enrich_scan_plain(p, i, n, _cls)
        if i >= n:
            return -1
        c = _cls[p[i]]
        if c == 1:
            return i + 1
        if c == 3:
            return -1
        opens[0] += 1
        i += 1


cdef Py_ssize_t _number(const uint8_t* p, Py_ssize_t n, Py_ssize_t i, int* kind, int64_t* value) noexcept nogil:
    """A JSON number without exponent, its integer part in int64: the index
    after it, -1 if not one."""
    cdef int neg = 0
    cdef int digits = 0
    cdef uint64_t v = 0
    cdef int64_t eight
    if i < n and p[i] == 45:  # -
        neg = 1
        i += 1
    if i >= n or p[i] < 48 or p[i] > 57:
        return -1
    if p[i] == 48:  # a leading zero is the whole integer part
        i += 1
    else:
        while i + 8 <= n and digits + 8 <= MAX_INT_DIGITS:  # eight digits at a time
            eight = enrich_scan_eight(p + i)
            if eight < 0:
                break
            v = v * 100000000 + <uint64_t>eight  # < 10**19: fits
            digits += 8
            i += 8
        while i < n and 48 <= p[i] <= 57:
            digits += 1
            if digits > MAX_INT_DIGITS:
                return -1
            v = v * 10 + (p[i] - 48)
            i += 1
        if v > <uint64_t>9223372036854775807ULL:
            return -1
    kind[0] = T_INT
    if i < n and p[i] == 46:  # .
        i += 1
        if i >= n or p[i] < 48 or p[i] > 57:
            return -1
        digits = 0
        while i < n and 48 <= p[i] <= 57:
            digits += 1
            if digits > MAX_FRACTION_DIGITS:
                return -1
            i += 1
        kind[0] = T_NUM
    if i < n and (p[i] == 101 or p[i] == 69):  # an exponent: the readers disagree on 1e999
        return -1
    value[0] = -<int64_t>v if neg else <int64_t>v
    return i


cdef Py_ssize_t _literal(const uint8_t* p, Py_ssize_t n, Py_ssize_t i, const char* word, Py_ssize_t m) noexcept nogil:
    if i + m > n or memcmp(p + i, word, m) != 0:
        return -1
    return i + m


cdef Py_ssize_t _value(
    const uint8_t* p, Py_ssize_t n, Py_ssize_t i, int depth, int* kind, int64_t* value, int* opens
) noexcept nogil:
    """Any JSON value at p[i] (validated, nested ones too): the index after it, -1 if bad."""
    cdef int sub_kind
    cdef int64_t sub_value
    cdef uint8_t c, close
    if i >= n:
        return -1
    c = p[i]
    if c == 34:
        kind[0] = T_STR
        return _string(p, n, i, opens)
    if c == 45 or 48 <= c <= 57:
        return _number(p, n, i, kind, value)
    if c == 116:
        kind[0] = T_BOOL
        return _literal(p, n, i, "true", 4)
    if c == 102:
        kind[0] = T_BOOL
        return _literal(p, n, i, "false", 5)
    if c == 110:
        kind[0] = T_NULL
        return _literal(p, n, i, "null", 4)
    if c != 91 and c != 123:
        return -1
    if depth >= _max_depth:
        return -1
    kind[0] = T_NEST
    opens[0] += 1
    close = 93 if c == 91 else 125
    i = _ws(p, n, i + 1)
    if i < n and p[i] == close:
        return i + 1
    while True:
        if c == 123:  # an object: a key and a colon first
            if i >= n or p[i] != 34:
                return -1
            i = _string(p, n, i, opens)
            if i < 0:
                return -1
            i = _ws(p, n, i)
            if i >= n or p[i] != 58:
                return -1
            i = _ws(p, n, i + 1)
        i = _value(p, n, i, depth + 1, &sub_kind, &sub_value, opens)
        if i < 0:
            return -1
        i = _ws(p, n, i)
        if i >= n:
            return -1
        if p[i] == close:
            return i + 1
        if p[i] != 44:
            return -1
        i = _ws(p, n, i + 1)


cdef int _parse(const uint8_t* p, Py_ssize_t n, Line* ln, bint open_end) noexcept nogil:
    """The line's top-level members into ``ln``; 0 if the line is not for the scanner.

    ``open_end``: ``p[:n]`` is the object without its closing brace (nfdump
    json-log's ``,}`` cut off): read exactly as ``p[:n] + b"}"`` is read, the
    brace at n (nothing is read at or past n), so the caller makes no copy.

    A member equal byte for byte, its comma included, to the line before's at
    its position (MemberMemo) is taken as that one was read: one compare
    instead of ~130 instructions (bench.enrich's goflow2 lines repeat 14 of
    their 22 members; a collector's repeat its type, exporter, sampling rate,
    MACs, zero fields). A position whose member changed is
    not remembered again for 16 lines, then 32, ... (a varying member costs
    about nothing)."""
    cdef Py_ssize_t i, j, k0, m0 = 0, i0 = 0
    cdef int opens = 0, kid, kind, key_opens, member = 0, opens0 = 0
    cdef int64_t value
    cdef uint8_t c
    cdef KeyMemo* memo
    cdef MemberMemo* same
    if open_end:
        if n < 1 or p[0] != 123:
            return 0
    elif n < 2 or p[0] != 123 or p[n - 1] != 125:
        return 0
    opens = 1
    memset(ln.vtype, 0, sizeof(ln.vtype))
    i = _ws(p, n, 1)
    if open_end:
        if i >= n:  # the brace at n closes the empty object
            return 1
    elif i < n and p[i] == 125:
        return 1 if i == n - 1 else 0
    while True:
        if i >= n or p[i] != 34:
            return 0
        if member < MEMO:
            same = &ln.same[member]
            if same.length:
                if (same.generation == _generation and same.length <= n - i
                        and enrich_scan_eq(same.text, p + i, same.length)):
                    # the line before's member here, byte for byte to its comma
                    member += 1
                    same.backoff = SAME_WAIT
                    opens += same.opens
                    kid = same.kid
                    if kid > K_ANSWER:
                        if ln.vtype[kid] != T_ABSENT:  # a duplicate: the Python reader decides
                            return 0
                        ln.vtype[kid] = same.kind
                        ln.start[kid] = i + same.vstart
                        ln.length[kid] = same.vlength
                        ln.ival[kid] = same.ival
                    i = _ws(p, n, i + same.length)
                    continue
                same.length = 0  # it changed: not remembered for a while
                same.wait = same.backoff
                if same.backoff < SAME_WAIT_MAX:
                    same.backoff *= 2
        else:
            same = NULL
        m0 = i
        opens0 = opens
        memo = &ln.memo[member] if member < MEMO else NULL
        member += 1
        if (memo != NULL and memo.length and memo.generation == _generation
                and memo.length <= n - i and enrich_scan_eq(memo.text, p + i, memo.length)):
            kid = memo.kid  # the key of the line before at this position, quotes and all
            opens += memo.opens
            i += memo.length - 1  # at the closing quote
        else:
            k0 = i + 1
            i = k0
            key_opens = 0
            while True:
                i = enrich_scan_plain(p, i, n, _cls)
                if i >= n:
                    return 0
                c = _cls[p[i]]
                if c == 1:
                    break
                if c == 3:
                    return 0
                key_opens += 1
                i += 1
            opens += key_opens
            kid = _lookup(p + k0, i - k0, _hash(p + k0, i - k0))
            if memo != NULL and i + 1 - (k0 - 1) <= MAX_KEY + 2:
                memo.length = <int>(i + 1 - (k0 - 1))
                memcpy(memo.text, p + k0 - 1, memo.length)
                memo.kid = kid
                memo.opens = key_opens
                memo.generation = _generation
        if kid == K_ANSWER:
            return 0
        i = _ws(p, n, i + 1)
        if i >= n or p[i] != 58:
            return 0
        i = _ws(p, n, i + 1)
        k0 = i
        kind = T_ABSENT
        value = 0
        i = _value(p, n, i, 1, &kind, &value, &opens)
        if i < 0:
            return 0
        i0 = i
        if kid > K_ANSWER:
            if ln.vtype[kid] != T_ABSENT:  # a duplicate: the Python reader decides
                return 0
            ln.vtype[kid] = kind
            ln.start[kid] = k0
            ln.length[kid] = i - k0
            ln.ival[kid] = value
        i = _ws(p, n, i)
        if i >= n:  # open_end: the brace at n ends the object
            return 1 if open_end and opens <= _max_depth else 0
        if p[i] == 125:  # the end; a bounded number of brackets, as the Python reader's
            return 1 if not open_end and i == n - 1 and opens <= _max_depth else 0
        if p[i] != 44:
            return 0
        if same != NULL:
            if same.wait:
                same.wait -= 1
            elif i + 1 - m0 <= SAME_TEXT:
                same.length = <int>(i + 1 - m0)
                memcpy(same.text, p + m0, same.length)
                same.kid = kid
                same.kind = kind
                same.opens = opens - opens0
                same.vstart = <int>(k0 - m0)
                same.vlength = <int>(i0 - k0)
                same.ival = value
                same.generation = _generation
        i = _ws(p, n, i + 1)
