# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The two value readings of a ``packets`` line's scan (``ribd._rawline``) that
cost most per line: the body's hex to octets, and the time stamp to a float.

* Hex: sixteen digits at a time with SSE2 where the compiler has it (x86-64
  always: the digits classified and turned into nibbles in one register, any
  octet that is not a hex digit refusing the whole text; stop 37, decode7:
  the table below took ~880 instructions a line, 3.1% of the feed loop), the
  rest two digits at a time through a table of every 16-bit pair (an octet,
  or -1 for a pair that is not two hex digits).
* The time stamp: ExaBGP writes ``time.time()``'s repr, 16-17 digits with a
  fraction. ``float()`` of that (``PyOS_string_to_double``) takes dtoa's slow
  path past 15 digits, with big-integer steps and allocations, on every line.
  Here the digits' integer M (at most 17 digits, so < 2^57) and the fraction's
  k digits give M / 10^k correctly rounded to the nearest double, ties to
  even (what dtoa gives) in 128-bit integer arithmetic: M shifted left so that
  the quotient has 55-57 bits, one division, the remainder as sticky bit.

tests/ribd/test_rawhex.py compares both with ``bytes.fromhex`` and ``float()``
(random texts of every length, the rounding boundaries, ties); the scan's own
tests compare whole lines with the reference (orjson, ``a2b_hex``).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcpy

cdef extern from *:
    """
    #include <math.h>
    /* M / 10^k correctly rounded (ties to even); M < 2^64, k <= 19. */
    static double ribd_decimal(unsigned long long M, int k) {
        static const unsigned long long P10[20] = {
            1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL,
            100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL,
            1000000000000ULL, 10000000000000ULL, 100000000000000ULL,
            1000000000000000ULL, 10000000000000000ULL, 100000000000000000ULL,
            1000000000000000000ULL, 10000000000000000000ULL};
        unsigned long long P = P10[k], q64, low, half;
        unsigned __int128 num, q, r;
        int bm, bp, s, bq, extra;
        if (M == 0)
            return 0.0;
        if (k == 0 && M <= (1ULL << 53))
            return (double)M;
        bm = 64 - __builtin_clzll(M);
        bp = 64 - __builtin_clzll(P);
        s = 55 + bp - bm;  /* M * 2^s / P >= 2^54, and bm + s <= 55 + 64 < 128 */
        if (s < 0)
            s = 0;
        num = (unsigned __int128)M << s;
        q = num / P;
        r = num - q * P;
        bq = 128 - (int)(q >> 64 ? __builtin_clzll((unsigned long long)(q >> 64))
                                 : 64 + __builtin_clzll((unsigned long long)q));
        extra = bq - 53;  /* q fits 64 bits here: q < 2^(bm + s - bp + 1) <= 2^57 */
        q64 = (unsigned long long)q;
        if (extra <= 0)
            return ldexp((double)q64, -s);
        low = q64 & ((1ULL << extra) - 1);
        half = 1ULL << (extra - 1);
        q64 >>= extra;
        if (low > half || (low == half && (r != 0 || (q64 & 1))))
            q64 += 1;
        return ldexp((double)q64, extra - s);
    }
    """
    double ribd_decimal(unsigned long long M, int k) nogil


cdef extern from *:
    """
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #define RIBD_UNHEX16 1
    /* 16 hex digits at p -> 8 octets at o; 0 (o unwritten) where any of the
       16 is not a hex digit (0-9, a-f, A-F: the pair table's digits). */
    static inline int ribd_unhex16(const unsigned char *p, unsigned char *o) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        __m128i f = _mm_or_si128(v, _mm_set1_epi8(0x20));  /* A-F -> a-f */
        /* signed compares: an octet >= 0x80 is below '0' and 'a' */
        __m128i dig = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)),
                                    _mm_cmplt_epi8(v, _mm_set1_epi8('9' + 1)));
        __m128i alp = _mm_and_si128(_mm_cmpgt_epi8(f, _mm_set1_epi8('a' - 1)),
                                    _mm_cmplt_epi8(f, _mm_set1_epi8('f' + 1)));
        __m128i val, pairs;
        if (_mm_movemask_epi8(_mm_or_si128(dig, alp)) != 0xFFFF)
            return 0;
        val = _mm_or_si128(_mm_and_si128(dig, _mm_sub_epi8(v, _mm_set1_epi8('0'))),
                           _mm_and_si128(alp, _mm_sub_epi8(f, _mm_set1_epi8('a' - 10))));
        /* each 16-bit lane: the first digit (high nibble) in its low octet */
        pairs = _mm_or_si128(_mm_slli_epi16(_mm_and_si128(val, _mm_set1_epi16(0x00FF)), 4),
                             _mm_srli_epi16(val, 8));
        _mm_storel_epi64((__m128i *)o, _mm_packus_epi16(pairs, _mm_setzero_si128()));
        return 1;
    }
    #else
    #define RIBD_UNHEX16 0
    static inline int ribd_unhex16(const unsigned char *p, unsigned char *o) { return 0; }
    #endif
    """
    bint unhex16_built "RIBD_UNHEX16"
    bint unhex16 "ribd_unhex16"(const unsigned char *p, unsigned char *o) noexcept nogil


cdef bint _wide_on = True  # the SSE2 step (tests turn it off to compare)
cdef short _pair[65536]  # two octets as read from memory -> their hex value, or -1
cdef signed char _digit[256]


cdef void _init() noexcept:
    cdef int i, a, b
    cdef unsigned char two[2]
    cdef unsigned short key
    for i in range(256):
        _digit[i] = -1
    for i in range(10):
        _digit[48 + i] = i
    for i in range(6):
        _digit[97 + i] = 10 + i
        _digit[65 + i] = 10 + i
    for a in range(256):
        for b in range(256):
            two[0], two[1] = a, b
            memcpy(&key, two, 2)
            _pair[key] = (_digit[a] << 4) | _digit[b] if _digit[a] >= 0 and _digit[b] >= 0 else -1


_init()


cdef bytes unhex(const unsigned char *p, Py_ssize_t at, Py_ssize_t stop):
    """The octets of the hex digits ``p[at:stop]``, or None (an odd count, or not hex)."""
    cdef Py_ssize_t size = stop - at, k = 0, half
    cdef bytes out
    cdef unsigned char *o
    cdef unsigned short k0, k1, k2, k3
    cdef short v0, v1, v2, v3
    if size & 1:
        return None
    half = size >> 1
    out = PyBytes_FromStringAndSize(NULL, half)
    o = <unsigned char *>PyBytes_AS_STRING(out)
    p += at
    if unhex16_built and _wide_on:
        while k + 8 <= half:  # eight octets a step (SSE2)
            if not unhex16(p + 2 * k, o + k):
                return None
            k += 8
    while k + 4 <= half:  # four octets a step: one check of the four
        memcpy(&k0, p + 2 * k, 2)
        memcpy(&k1, p + 2 * k + 2, 2)
        memcpy(&k2, p + 2 * k + 4, 2)
        memcpy(&k3, p + 2 * k + 6, 2)
        v0, v1, v2, v3 = _pair[k0], _pair[k1], _pair[k2], _pair[k3]
        if (v0 | v1 | v2 | v3) < 0:
            return None
        o[k], o[k + 1], o[k + 2], o[k + 3] = v0, v1, v2, v3
        k += 4
    while k < half:
        memcpy(&k0, p + 2 * k, 2)
        v0 = _pair[k0]
        if v0 < 0:
            return None
        o[k] = <unsigned char>v0
        k += 1
    return out


cdef double number_value(const unsigned char *p, Py_ssize_t at, Py_ssize_t stop) noexcept:
    """The float of a JSON number token of at most 17 digits and no exponent (the
    scan's ``_number`` checked it), as ``float()`` of its text: exactly rounded."""
    cdef unsigned long long whole = 0
    cdef int fraction = -1  # digits after the point; -1: none seen
    cdef bint negative = p[at] == 45
    cdef Py_ssize_t k
    cdef double v
    for k in range(at + negative, stop):
        if p[k] == 46:
            fraction = 0
        else:
            whole = whole * 10 + (p[k] - 48)
            if fraction >= 0:
                fraction += 1
    v = ribd_decimal(whole, fraction if fraction > 0 else 0)
    # An integer's sign as ``<double>`` of a negated C integer gives it: "-0" is 0.0.
    return -v if negative and (fraction > 0 or whole != 0) else v


def unhex_text(bytes text, wide=None):
    """``unhex`` of a whole bytes object (tests); ``wide`` (True / False): with
    the SSE2 step or without it (the table's alone)."""
    global _wide_on
    was = _wide_on
    if wide is not None:
        _wide_on = wide
    try:
        return unhex(<const unsigned char *>PyBytes_AS_STRING(text), 0, PyBytes_GET_SIZE(text))
    finally:
        _wide_on = was


def unhex_wide():
    """Whether ``unhex`` takes sixteen digits a step here (SSE2 built)."""
    return bool(unhex16_built)


def number_text(bytes text):
    """``number_value`` of a number token (tests: the caller checks its form)."""
    return number_value(<const unsigned char *>PyBytes_AS_STRING(text), 0, PyBytes_GET_SIZE(text))
