# cython: language_level=3, boundscheck=True, wraparound=False, cdivision=True
"""NLRI fields of raw UPDATEs -> prefix texts in C, a whole list at a time.

The compiled twin of ``ribd.rawnlri`` for ``ribd._rawdecode`` (which cimports
it): the same texts (``192.0.2.0/24``, IPv6 as libc's ``inet_ntop`` and so
``socket.inet_ntop`` write them), trailing bits masked, and an ``UpdateError`` with the
message ``ribd.rawupdate`` gives (its ``NlriError`` text) for a field that
cannot be decoded. Every length is compared with what is left of the field
before the octets are read.
"""

from cpython.list cimport PyList_New
from cpython.long cimport PyLong_FromLong
from cpython.ref cimport Py_INCREF, Py_XDECREF, PyObject
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy, memset

from ribd._intdelta cimport DeltaHot, delta4_hot, delta4_prefetch
from ribd._key6 cimport be64, key6_obj

from ribd.rawattrs import UpdateError


cdef extern from *:
    """
    #define ribd_bswap32(x) __builtin_bswap32(x)
    """
    uint32_t bswap32 "ribd_bswap32"(uint32_t x) noexcept nogil


cdef extern from "Python.h":
    void PyList_SET_ITEM(object l, Py_ssize_t i, PyObject *o)  # (steals ``o``)
    object PyUnicode_New(Py_ssize_t size, unsigned int maxchar)
    void *PyUnicode_DATA(object o)


cdef inline str _ascii(const char *buf, Py_ssize_t k):
    """A new str of ``k`` ASCII octets (every text here: digits, '.', '/', ':' and
    hex digits), written into its buffer: PyUnicode_FromKindAndData would first scan
    the octets for the widest character (~200 instructions a prefix, callgrind)."""
    s = PyUnicode_New(k, 127)  # (its terminating NUL written)
    memcpy(PyUnicode_DATA(s), buf, k)
    return s


cdef char _digits[256][4]  # decimal text of 0..255
cdef unsigned char _ndigits[256]


cdef void _fill_digits():
    """The table above, filled once at import (a local bytes object: no pointer
    taken from a module global, which Cython rightly warns may be rebound)."""
    cdef int i
    cdef bytes text
    for i in range(256):
        text = str(i).encode()
        _ndigits[i] = len(text)
        memcpy(_digits[i], <const char *>text, len(text))


_fill_digits()


cdef inline Py_ssize_t _octet(char *out, Py_ssize_t k, unsigned int v) noexcept:
    memcpy(out + k, _digits[v], _ndigits[v])
    return k + _ndigits[v]


cdef inline Py_ssize_t _dotted(char *out, const unsigned char *a) noexcept:
    """Four octets written as dotted-quad text at ``out`` (at most 15 bytes); its length."""
    cdef Py_ssize_t k = _octet(out, 0, a[0])
    out[k] = 46
    k = _octet(out, k + 1, a[1])
    out[k] = 46
    k = _octet(out, k + 1, a[2])
    out[k] = 46
    return _octet(out, k + 1, a[3])


cdef str quad(const unsigned char *a):
    """Four octets as dotted-quad text (socket.inet_ntoa's)."""
    cdef char buf[16]
    return _ascii(buf, _dotted(buf, a))


cdef str prefix4_text(const unsigned char *a, unsigned int length):
    """``a.b.c.d/length`` of four octets (host bits already cleared): the IPv4
    NLRI's text, and ``ribd._rawkeys.int_texts``'."""
    cdef char buf[24]
    cdef Py_ssize_t k = _dotted(buf, a)
    buf[k] = 47
    return _ascii(buf, _octet(buf, k + 1, length))


cdef const char *_HEX = b"0123456789abcdef"


cdef inline Py_ssize_t _hex_group(char *out, Py_ssize_t k, unsigned int w) noexcept:
    """``w`` (0..0xffff) as lowercase hex without leading zeros (printf's ``%x``)."""
    if w >= 0x1000:
        out[k] = _HEX[w >> 12]
        k += 1
    if w >= 0x100:
        out[k] = _HEX[(w >> 8) & 15]
        k += 1
    if w >= 0x10:
        out[k] = _HEX[(w >> 4) & 15]
        k += 1
    out[k] = _HEX[w & 15]
    return k + 1


cdef Py_ssize_t _ipv6(char *out, const unsigned char *a) noexcept:
    """Sixteen octets as IPv6 text at ``out`` (at most 45 bytes); its length.

    The text glibc's ``inet_ntop`` writes, which ExaBGP's JSON carries and the
    JSON path keys the store by, character for character: the longest run of
    two or more zero groups (the first of equal runs) as ``::``, groups in
    lowercase hex without leading zeros, and an IPv4-compatible or IPv4-mapped
    address (``::a.b.c.d``, ``::ffff:a.b.c.d``) with its last 32 bits dotted.
    inet_ntop formats each group through sprintf: ~3.3k instructions a prefix,
    a tenth of a synthetic table's feed (callgrind, stop 30); this is ~10x less.
    """
    cdef unsigned int w[8]
    cdef int i, best = -1, best_len = 0, cur = -1, cur_len = 0
    cdef Py_ssize_t k = 0
    for i in range(8):
        w[i] = a[2 * i] << 8 | a[2 * i + 1]
        if w[i] == 0:
            if cur < 0:
                cur, cur_len = i, 1
            else:
                cur_len += 1
            if cur_len > best_len:
                best, best_len = cur, cur_len
        else:
            cur = -1
    if best_len < 2:
        best = -1
    i = 0
    while i < 8:
        if best >= 0 and i == best:
            out[k] = 58
            k += 1
            i += best_len
            if i == 8:
                out[k] = 58
                k += 1
            continue
        if i:
            out[k] = 58
            k += 1
        if i == 6 and best == 0 and (best_len == 6 or (best_len == 5 and w[5] == 0xFFFF)):
            return k + _dotted(out + k, a + 12)
        k = _hex_group(out, k, w[i])
        i += 1
    return k


cdef str ipv6_text(const unsigned char *a):
    """Sixteen octets as IPv6 text (socket.inet_ntop's)."""
    cdef char buf[48]
    return _ascii(buf, _ipv6(buf, a))


cdef str prefix6_text(const unsigned char *a, unsigned int length):
    """Sixteen octets and a length as an IPv6 prefix text (``nlri``'s)."""
    cdef char buf[64]
    cdef Py_ssize_t k = _ipv6(buf, a)
    buf[k] = 47
    return _ascii(buf, _octet(buf, k + 1, length))


def ipv6_texts(addresses) -> list:
    """``ipv6_text`` of each 16-byte string: the formatter's differential test
    against socket.inet_ntop (tests/ribd/test_rawnlri_ipv6.py)."""
    cdef bytes b
    out = []
    for b in addresses:
        if len(b) != 16:
            raise ValueError(f"not 16 octets: {b!r}")
        out.append(ipv6_text(<const unsigned char *>b))
    return out



def ipv4_nlri_keys(field: bytes) -> list:
    """``nlri4_keys`` of an IPv4 NLRI field (tests: against ``ribd.rawnlri``'s
    texts made keys, tests/ribd/test_rawnlri_keys4.py)."""
    return nlri4_keys(<const unsigned char *>field, len(field))


def ipv6_nlri_keys(field: bytes) -> list:
    """``nlri6_keys`` of an IPv6 NLRI field: the keys' differential test against
    ``ribd.prefix_keys`` at every length (tests/ribd/test_intdelta.py)."""
    return nlri6_keys(<const unsigned char *>field, len(field))

cdef tuple nlri(const unsigned char *p, Py_ssize_t end, bint v6, bint add_path):
    """(prefix texts, path ids or None) of one NLRI field; UpdateError (with
    ribd.rawnlri's message) for a field that cannot be decoded."""
    cdef list out = []
    cdef list ids = [] if add_path else None
    cdef Py_ssize_t at = 0, stop, k
    cdef unsigned int n, octets
    cdef unsigned int most = 128 if v6 else 32
    cdef unsigned char a[16]
    cdef char buf[64]
    family = "IPv6" if v6 else "IPv4"
    while at < end:
        if add_path:
            if at + 5 > end:
                raise UpdateError(f"{family} NLRI: path id at octet {at} runs past the field")
            ids.append(u32(p + at))
            at += 4
        n = p[at]
        if n > most:
            raise UpdateError(f"{family} NLRI: prefix length {n} at octet {at} exceeds {most}")
        octets = (n + 7) >> 3
        stop = at + 1 + octets
        if stop > end:
            if v6 or add_path:
                raise UpdateError(f"{family} NLRI: prefix /{n} at octet {at} runs past the field")
            raise UpdateError(f"IPv4 NLRI: the last prefix runs past the field of {end} octets")
        memset(a, 0, 16)
        memcpy(a, p + at + 1, octets)
        if n & 7:
            a[octets - 1] &= (0xFF << (8 - (n & 7))) & 0xFF
        if v6:
            k = _ipv6(buf, a)
            buf[k] = 47
            out.append(_ascii(buf, _octet(buf, k + 1, n)))
        else:
            out.append(prefix4_text(a, n))
        at = stop
    return out, ids


cdef int _key_error(const unsigned char *p, Py_ssize_t at, Py_ssize_t end, bint v6) except -1:
    """UpdateError with ``nlri``'s message for the prefix at ``at`` of an NLRI
    field of ``end`` octets, whose length is past the family's or whose octets
    run past the field (``nlri4_keys`` and ``nlri6_keys`` check both inline
    and come here only then: this helper is the error texts, once)."""
    cdef unsigned int n = p[at]
    if n > (128 if v6 else 32):
        raise UpdateError(
            f"IPv{6 if v6 else 4} NLRI: prefix length {n} at octet {at} exceeds {128 if v6 else 32}"
        )
    if v6:
        raise UpdateError(f"IPv6 NLRI: prefix /{n} at octet {at} runs past the field")
    raise UpdateError(f"IPv4 NLRI: the last prefix runs past the field of {end} octets")


cdef list nlri4_keys(const unsigned char *p, Py_ssize_t end):
    """The IPv4 store's integer keys (``ribd.store``: ``1 << length | network``)
    of an IPv4 NLRI field without path ids: ``nlri``'s prefixes, trailing bits
    dropped, with no text made; UpdateError with ``nlri``'s messages.

    The field is checked and its prefixes counted first, then the list made at
    its size: appended one by one, it grew by reallocation (``PyList_Append``
    75 M instructions of 5.4 G with 16 routers loading together; stop 38). A
    prefix's octets are read as one big-endian word where the field has four
    octets after its length octet. Each key's slot in the IPv4 delta last
    probed is asked of the cache as it is made (``ribd._intdelta.delta4_prefetch``:
    the store probes them after the attributes are decoded and interned, by
    then in the cache)."""
    cdef Py_ssize_t at = 0, stop, j, count = 0, i
    cdef unsigned int n, octets
    cdef unsigned long long a, key
    cdef uint32_t w
    cdef DeltaHot hot
    cdef bint warm
    while at < end:
        n = p[at]
        stop = at + 1 + ((n + 7) >> 3)
        if n > 32 or stop > end:
            _key_error(p, at, end, False)
        count += 1
        at = stop
    cdef list out = PyList_New(count)
    warm = delta4_hot(&hot)
    at = 0
    for i in range(count):
        n = p[at]
        octets = (n + 7) >> 3
        if at + 5 <= end:  # (octets past the prefix's are dropped by the shift)
            memcpy(&w, p + at + 1, 4)
            a = bswap32(w)
        else:
            a = 0
            for j in range(octets):
                a = (a << 8) | p[at + 1 + j]
            a <<= 8 * (4 - octets)
        key = (1ULL << n) | ((a >> (32 - n)) if n else 0)
        if warm:
            delta4_prefetch(&hot, key)
        PyList_SET_ITEM(out, i, _key_int(key))  # (a new reference: SET_ITEM takes it)
        at += 1 + octets
    return out


# The IPv4 keys' int objects, kept by key in a direct-mapped table: with
# several routers loading the same table, each prefix's key was made as a new
# int once per router (~80 instructions), kept in the store's change log and
# freed with it (~60 more, a cache miss each at the log's clear). Here the same
# key gives the one object while its slot keeps it (another key taking the slot
# is a miss: a new int, as before). An int is immutable and compared by value
# everywhere a key is read, so which object a key is shows nowhere.
#
# A first router's keys are all new: there the table only costs (a slot and
# the old int it drops, each a cache miss: +14% CPU-s on router 1 measured,
# stop 38); two routers find at most half their keys, and that did not pay
# either (the synthetic two routers +16% CPU-s against no table). So it is
# used in windows of KEY_INT_WINDOW keys: a window that found fewer than
# 55% of its keys (two routers find at most half; 16 routers loading together
# 93%) leaves the next KEY_INT_REST windows' keys to plain new ints, then the
# table is tried again.
ctypedef struct KeyInt:
    uint64_t key
    PyObject *obj  # a strong reference (NULL: empty)


cdef enum:
    KEY_INT_BITS = 16
    KEY_INT_WINDOW = 4096
    KEY_INT_REST = 15


cdef KeyInt _key_ints[1 << KEY_INT_BITS]
cdef unsigned long long _key_int_hits = 0, _key_int_misses = 0
cdef Py_ssize_t _window_left = KEY_INT_WINDOW  # keys left in this window
cdef Py_ssize_t _window_hits = 0
cdef int _resting = 0  # windows left without the table


cdef inline PyObject *_key_int(uint64_t key) except NULL:
    """A new reference to an int of value ``key`` (the table's, or a new one,
    kept there while the table is in use)."""
    global _key_int_hits, _key_int_misses, _window_left, _window_hits, _resting
    cdef KeyInt *slot
    cdef PyObject *old
    _window_left -= 1
    if _window_left == 0:
        _window_left = KEY_INT_WINDOW
        if _resting:
            _resting -= 1
        elif _window_hits * 20 < 11 * KEY_INT_WINDOW:
            _resting = KEY_INT_REST
        _window_hits = 0
    if _resting:
        _key_int_misses += 1
        k = PyLong_FromLong(<long>key)  # (< 2**33; the long path is shorter)
        Py_INCREF(k)  # (the caller's)
        return <PyObject *>k
    slot = &_key_ints[(key * 0x9E3779B97F4A7C15ULL) >> (64 - KEY_INT_BITS)]
    old = slot.obj
    if old != NULL and slot.key == key:
        _key_int_hits += 1
        _window_hits += 1
        Py_INCREF(<object>old)
        return old
    _key_int_misses += 1
    k = PyLong_FromLong(<long>key)
    Py_INCREF(k)  # (the slot's)
    Py_INCREF(k)  # (the caller's)
    slot.key = key
    slot.obj = <PyObject *>k
    Py_XDECREF(old)  # (last: the slot is whole if a free runs code)
    return <PyObject *>k


def key_int_counts(bint clear=False):
    """(hits, misses) of the IPv4 keys' int table (a key made while the table
    rests is a miss); ``clear``: every slot emptied, the counts zeroed and the
    table in use from a new window first (tests, benchmarks)."""
    global _key_int_hits, _key_int_misses, _window_left, _window_hits, _resting
    cdef Py_ssize_t i
    cdef PyObject *old
    if clear:
        _window_left, _window_hits, _resting = KEY_INT_WINDOW, 0, 0
        for i in range(1 << KEY_INT_BITS):
            old = _key_ints[i].obj
            _key_ints[i].obj = NULL
            _key_ints[i].key = 0
            Py_XDECREF(old)
        _key_int_hits = _key_int_misses = 0
    return _key_int_hits, _key_int_misses


cdef list nlri6_keys(const unsigned char *p, Py_ssize_t end):
    """The IPv6 store's integer keys (``ribd.prefix_keys``: ``1 << length |
    network``) of an IPv6 NLRI field without path ids: ``nlri``'s prefixes,
    trailing bits dropped, with no text made; UpdateError with ``nlri``'s
    messages."""
    cdef Py_ssize_t at = 0, stop, count = 0, i
    cdef unsigned int n
    cdef unsigned char a[16]
    while at < end:  # (checked and counted first: the list made at its size)
        n = p[at]
        stop = at + 1 + ((n + 7) >> 3)
        if n > 128 or stop > end:
            _key_error(p, at, end, True)
        count += 1
        at = stop
    cdef list out = PyList_New(count)
    at = 0
    for i in range(count):
        n = p[at]
        stop = at + 1 + ((n + 7) >> 3)
        memset(a, 0, 16)
        memcpy(a, p + at + 1, stop - at - 1)
        k = key6_obj(be64(a), be64(a + 8), n)  # (bits past ``n`` dropped there)
        Py_INCREF(k)
        PyList_SET_ITEM(out, i, <PyObject *>k)
        at = stop
    return out
