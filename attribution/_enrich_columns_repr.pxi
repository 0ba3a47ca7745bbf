# repr() of a goflow2 time in seconds (its end in ns / 1e9) without dtoa, for
# attribution/_enrich_columns.pyx (included there): CSV writes each record's
# time as its row's ``str()``, and PyOS_double_to_string's shortest-repr
# search cost ~0.35 µs a record, a third of the whole CSV row.
#
# For x in [2**30, 2**33) (years 2004-2242) x is m * 2**-s exactly, s in 20..22,
# so each candidate "k decimals" (k = 0..7; 7 always reads back there) is
# checked exactly in 128-bit integers: N = x * 10**k rounded to nearest, and
# N / 10**k reads back as x when it is within half an ulp of it. Whether it
# does only grows with k, so the fewest decimals that do are found by binary
# search (three checks); that candidate, the nearest of its length, is
# repr's. A candidate exactly half an ulp away or halfway between two
# (ties), other magnitudes and powers of two return -1 and the caller uses
# PyOS_double_to_string; test_enrich_csv.py compares both with repr().

from libc.math cimport frexp

cdef extern from *:
    ctypedef unsigned long long u128 "unsigned __int128"


cdef uint64_t[8] _P10 = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000]


cdef inline int _candidate(uint64_t m, int s, int k, uint64_t* N) noexcept nogil:
    """x = m * 2**-s with k decimals: 1 if the nearest (N) reads back as x,
    2 if it may (a tie, or exactly half an ulp away: dtoa's call), else 0."""
    cdef u128 P = (<u128>m) * _P10[k]  # x * 10**k * 2**s
    cdef u128 half = (<u128>1) << (s - 1)
    cdef uint64_t n = <uint64_t>(P >> s)
    cdef u128 rem = P - ((<u128>n) << s)
    cdef u128 back, diff
    cdef bint tie = rem == half
    if rem > half:
        n += 1
    back = (<u128>n) << s
    diff = back - P if back > P else P - back
    N[0] = n
    if 2 * diff > _P10[k]:
        return 0
    return 2 if tie or 2 * diff == _P10[k] else 1


cdef Py_ssize_t _seconds_repr(double x, char* out) noexcept nogil:
    """repr(x) at out (room for 24 bytes), its length; -1: not done here."""
    cdef int e, s, k, j, n, lo = 0, hi = 7, mid, got
    cdef uint64_t m, N, whole, frac
    cdef char digits[24]
    if not (x >= 1073741824.0 and x < 8589934592.0):
        return -1
    m = <uint64_t>(frexp(x, &e) * 9007199254740992.0)  # x = m * 2**(e - 53), exact
    if m == (<uint64_t>1 << 52):
        return -1  # a power of two: the ulp below it is half the one above
    s = 53 - e
    while lo < hi:  # the fewest decimals that read back (7 always does)
        mid = (lo + hi) // 2
        if _candidate(m, s, mid, &N):
            hi = mid
        else:
            lo = mid + 1
    k = lo
    got = _candidate(m, s, k, &N)
    if got != 1:
        return -1
    whole = N // _P10[k]
    frac = N - whole * _P10[k]
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


def seconds_repr(double x):
    """repr(x) by :func:`_seconds_repr`, or None where it leaves x to dtoa (tests)."""
    cdef char out[24]
    cdef Py_ssize_t n = _seconds_repr(x, out)
    return None if n < 0 else out[:n].decode()
