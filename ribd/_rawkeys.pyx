# cython: language_level=3, boundscheck=True, wraparound=False
"""Compiled ``PrefixStore.find_many``: prefix texts -> indexes in the sorted key array.

Also the IPv4 store's integer keys (``ribd.store``: ``1 << length | network
number``, what the delta and the change log hold) to and from texts and
packed keys: ``find_many`` and ``encode`` take them beside texts.

Every router loaded after a merge finds each of its prefixes in the store's
arrays (``ribd.store``): in Python that is a key built per prefix
(``inet_pton`` and a length byte), then numpy's ``searchsorted`` and a
compare, ~2 us a prefix through numpy's per-call overhead. Here the key is
built in C and the binary search is a ``memcmp`` loop over the array's
buffer: the same indexes (numpy compares fixed-width byte strings as
``memcmp`` does; a key never ends in a zero octet, its last is length + 1).

A text this module does not parse exactly as the Python key would (not
``address/length`` with a canonical decimal length of 0-128, or an address
``inet_pton`` refuses) makes it return None, and the caller takes the
Python way, which alone decides what is wrong with it.
"""

from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.string cimport memcmp, memcpy

from ribd._key6 cimport be64, key6_obj, key6_parts, put64
from ribd._rawnlri cimport packed4, prefix4_text, prefix6_text
from libc.stdint cimport uint64_t

cdef extern from "<arpa/inet.h>" nogil:
    int inet_pton(int af, const char *src, void *dst)


cdef extern from "<sys/socket.h>":
    int AF_INET
    int AF_INET6


cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)


cdef extern from *:
    int __builtin_clzll(unsigned long long x) nogil


cdef int _key(str text, int v6, unsigned char *out) except -2:
    """The store's key of ``text`` into ``out``; 0, or -1 if not parsed here."""
    cdef Py_ssize_t n, slash = -1, i
    cdef const char *s = PyUnicode_AsUTF8AndSize(text, &n)
    cdef char address[64]
    cdef int length = 0, addr_bytes = 16 if v6 else 4
    for i in range(n):
        if s[i] == 47:  # '/'
            slash = i
            break
    if slash <= 0 or slash >= 63 or n - slash - 1 < 1 or n - slash - 1 > 3:
        return -1
    if s[slash + 1] == 48 and n - slash - 1 > 1:  # a leading zero: not a canonical length
        return -1
    for i in range(slash + 1, n):
        if s[i] < 48 or s[i] > 57:
            return -1
        length = length * 10 + (s[i] - 48)
    if length > 128:
        return -1
    memcpy(address, s, slash)
    address[slash] = 0
    if inet_pton(AF_INET6 if v6 else AF_INET, address, out) != 1:
        return -1
    out[addr_bytes] = length + 1
    return 0


cdef int _int_key(object k, int v6, unsigned char *out) except -2:
    """The packed key of an integer key (``1 << length | network``: an IPv4
    store's, or with ``v6`` an IPv6 store's) into ``out``; 0, or -1 when it is
    not one (negative, or past /32 or /128)."""
    cdef unsigned long long v
    cdef uint64_t hi, lo
    cdef int length
    if v6:
        length = key6_parts(k, &hi, &lo)
        if length < 0:
            return -1
        put64(out, hi)
        put64(out + 8, lo)
        out[16] = length + 1
        return 0
    if k < 1 or k >= (1 << 33):
        return -1
    v = packed4(k)
    out[0] = (v >> 32) & 0xFF
    out[1] = (v >> 24) & 0xFF
    out[2] = (v >> 16) & 0xFF
    out[3] = (v >> 8) & 0xFF
    out[4] = v & 0xFF
    return 0


def find_many(keys, prefixes, bint v6):
    """For each prefix text, its index in ``keys`` (a sorted, C-contiguous array of
    fixed-width byte strings) or -1; None when a text is not one parsed here."""
    cdef int width = 17 if v6 else 5
    cdef Py_ssize_t count = len(keys), lo, hi, mid
    cdef unsigned char key[17]
    cdef const unsigned char[::1] flat
    cdef const unsigned char *base
    cdef list out = []
    if keys.dtype.itemsize != width or not keys.flags.c_contiguous:
        return None
    if count:
        flat = keys.view("u1")
        base = &flat[0]
    for text in prefixes:
        if type(text) is int:
            if _int_key(text, v6, key) < 0:
                return None
        elif type(text) is not str or _key(text, v6, key) < 0:
            return None
        lo, hi = 0, count
        while lo < hi:
            mid = (lo + hi) >> 1
            if memcmp(base + mid * width, key, width) < 0:
                lo = mid + 1
            else:
                hi = mid
        out.append(lo if lo < count and memcmp(base + lo * width, key, width) == 0 else -1)
    return out


def encode(prefixes, bint v6):
    """The keys of prefix texts, packed back to back (a bytearray of len * width:
    ``PrefixStore._encode``'s array); None when a text is not one parsed here."""
    cdef int width = 17 if v6 else 5
    cdef Py_ssize_t i = 0
    cdef bytearray packed = bytearray(len(prefixes) * width)
    cdef unsigned char *out = <unsigned char *>(<char *>packed) if len(packed) else NULL
    for text in prefixes:
        if type(text) is int:
            if _int_key(text, v6, out + i * width) < 0:
                return None
        elif type(text) is not str or _key(text, v6, out + i * width) < 0:
            return None
        i += 1
    return packed


def int_keys(prefixes, bint v6=False):
    """The integer keys of canonical prefix texts (a list): the IPv4 store's, or
    with ``v6`` the IPv6 store's; None when a text is not one parsed here (the
    caller's Python way then decides)."""
    cdef unsigned char key[17]
    cdef unsigned long long a
    cdef uint64_t hi, lo
    cdef int length
    cdef list out = []
    if v6:
        for text in prefixes:
            if type(text) is not str or _key(text, 1, key) < 0 or key[16] > 129:
                return None
            length = key[16] - 1
            hi, lo = be64(key), be64(key + 8)
            if length < 64:
                if (hi & ((~<uint64_t>0) >> length)) or lo:
                    return None  # host bits set: not canonical
            elif length < 128 and (lo & ((~<uint64_t>0) >> (length - 64))):
                return None
            out.append(key6_obj(hi, lo, length))
        return out
    for text in prefixes:
        if type(text) is not str or _key(text, 0, key) < 0 or key[4] > 33:
            return None
        length = key[4] - 1
        a = (<unsigned long long>key[0] << 24) | (key[1] << 16) | (key[2] << 8) | key[3]
        if length < 32 and (a & ((1ULL << (32 - length)) - 1)):
            return None  # host bits set: not canonical
        out.append(<long long>((1ULL << length) | ((a >> (32 - length)) if length else 0)))
    return out


def int_texts(keys, bint v6=False):
    """The prefix texts of integer keys (IPv4, or with ``v6`` IPv6; a list);
    None when one is not such a key."""
    cdef unsigned char key[17]
    cdef list out = []
    if v6:
        for item in keys:
            if type(item) is not int or _int_key(item, 1, key) < 0:
                return None
            out.append(prefix6_text(key, key[16] - 1))
        return out
    for item in keys:
        if type(item) is not int or _int_key(item, 0, key) < 0:
            return None
        out.append(prefix4_text(key, key[4] - 1))
    return out


def add_lengths(set lengths, prefixes):
    """``lengths.update(int(p.rpartition("/")[2]) for p in prefixes)`` in C:
    ``ribd.textdelta.Delta.lengths`` over a whole table's new prefixes (~0.11 CPU-s
    for the real table in Python, paid by the first lookup after a load).

    A text whose part after its last '/' is not 1-3 ASCII digits (or not an
    ASCII str) goes through the Python expression itself, so every result and
    every error is the reference's. An int is an IPv4 store's key
    (``ribd.prefix_keys``): its length is its bit length less one.
    """
    cdef Py_ssize_t n, i, slash
    cdef const char *s
    cdef int value
    cdef unsigned long long k
    for p in prefixes:
        if type(p) is int:  # an IPv4 store's key: its bit length - 1
            if 1 <= p < (1 << 63):
                k = p
                lengths.add(63 - __builtin_clzll(k))
            else:
                lengths.add(p.bit_length() - 1)
            continue
        if type(p) is str and PyUnicode_IS_ASCII(p):  # (its UTF-8 is its own buffer)
            s = PyUnicode_AsUTF8AndSize(p, &n)
            slash = -1
            i = n - 1
            while i >= 0 and i >= n - 4:
                if s[i] == 47:  # '/'
                    slash = i
                    break
                i -= 1
            if slash >= 0 and 1 <= n - slash - 1 <= 3:
                value = 0
                for i in range(slash + 1, n):
                    if s[i] < 48 or s[i] > 57:
                        value = -1
                        break
                    value = value * 10 + (s[i] - 48)
                if value >= 0:
                    lengths.add(value)
                    continue
        lengths.add(int(p.rpartition("/")[2]))
