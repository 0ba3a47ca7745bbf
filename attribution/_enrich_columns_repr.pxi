# repr() of a goflow2 time in seconds (its end in ns / 1e9) without dtoa, for
# attribution/_enrich_columns.pyx (included there): CSV writes each record's
# time as its row's ``str()``, and PyOS_double_to_string's shortest-repr
# search cost ~0.35 µs a record, a third of the whole CSV row.
#
# For x in [2**30, 2**33) (years 2004-2242) x is m * 2**-s exactly, s in 20..22,
# so each candidate "k decimals" (k = 0..7; 7 always round-trips there) is
# checked exactly in 128-bit integers: N = x * 10**k rounded to nearest, and
# N / 10**k reads back as x when it is within half an ulp of it. The first k
# that does is repr's (the fewest digits, the nearest of them). Anything
# else (other magnitudes, a power of two, a tie either way) returns -1 and the
# caller uses PyOS_double_to_string; test_enrich_csv.py compares both with
# repr() over a million values.

from libc.math cimport frexp

cdef extern from *:
    ctypedef unsigned long long u128 "unsigned __int128"


cdef Py_ssize_t _seconds_repr(double x, char* out) noexcept nogil:
    """repr(x) at out (room for 24 bytes), its length; -1: not done here."""
    cdef int e, s, k, j, n
    cdef uint64_t m, N, p10 = 1, whole, frac
    cdef u128 P, rem, half, back, diff
    cdef char digits[24]
    if not (x >= 1073741824.0 and x < 8589934592.0):
        return -1
    m = <uint64_t>(frexp(x, &e) * 9007199254740992.0)  # x = m * 2**(e - 53), exact
    if m == (<uint64_t>1 << 52):
        return -1  # a power of two: the ulp below it is half the one above
    s = 53 - e
    half = (<u128>1) << (s - 1)
    for k in range(8):
        P = (<u128>m) * p10  # x * 10**k * 2**s
        N = <uint64_t>(P >> s)
        rem = P - ((<u128>N) << s)
        if rem == half:  # x * 10**k halfway between two candidates
            if 2 * half < p10:
                return -1  # both read back as x: dtoa's choice
            p10 *= 10
            continue  # neither does
        if rem > half:
            N += 1
        back = (<u128>N) << s
        diff = back - P if back > P else P - back
        if 2 * diff == p10:
            return -1  # the candidate halfway between x and its neighbour
        if 2 * diff < p10:
            whole = N // p10
            frac = N - whole * p10
            n = 0
            while whole:
                digits[n] = <char>(48 + whole % 10)
                whole //= 10
                n += 1
            for j in range(n):
                out[j] = digits[n - 1 - j]
            out[n] = 46
            n += 1
            if k == 0:
                out[n] = 48
                return n + 1
            for j in range(k - 1, -1, -1):
                out[n + j] = <char>(48 + frac % 10)
                frac //= 10
            return n + k
        p10 *= 10
    return -1


def seconds_repr(double x):
    """repr(x) by :func:`_seconds_repr`, or None where it leaves x to dtoa (tests)."""
    cdef char out[24]
    cdef Py_ssize_t n = _seconds_repr(x, out)
    return None if n < 0 else out[:n].decode()
