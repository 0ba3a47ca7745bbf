# cython: language_level=3, boundscheck=True, wraparound=False, cdivision=True
"""Compiled path attributes of a raw UPDATE: framing (RFC 4271 4.3), the
attribute row, and the RFC 7606 faults (treat-as-withdraw, attribute discard).

Why a module of its own: the event decoder (``ribd._rawdecode.UpdateDecoder``)
and the table load's fused path (``ribd._rawdecode.load_update`` /
``load_update6``) read attributes the same way; this is the one place they do,
the twin of ``ribd.rawattrs`` (whose rare-path helpers it shares, so their
semantics live in one place). Its memos of decoded values are its own
(``_rawattrs_memo.pxi``, reference ``ribd.decoder_memo``): looked up by the
octets where they lie, with no bytes object made. Every read goes through a raw pointer whose
bounds are checked by hand before the read: a length field is never trusted
before it is compared with what is left.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from libc.string cimport memset

cdef extern from "Python.h":
    void PyObject_GC_UnTrack(object o)
    object PyLong_FromUnsignedLong(unsigned long v)

from ribd._shared_ints cimport share_u32
from ribd._slots cimport get_at, slots_member_offset
from ribd._rawnlri cimport ipv6_text, quad as _quad, u32 as _u32
from ribd.interner import AttributeInterner
from ribd.interner_keys import SHARE_SLOTS
from ribd.rawattrs import (
    AS_TRANS,
    UpdateError,
    _asns,
    _extended,
    _KIND,
    _DISCARD,
    merge_as4_path,
)

cdef unsigned char _kind[256]  # 0 not read, 1 well-known, 2 optional
cdef unsigned char _discard[256]  # RFC 7606 attribute discard
cdef int _i
for _i in range(256):
    _kind[_i] = _KIND[_i]
    _discard[_i] = _i in _DISCARD

_ORIGINS = ("igp", "egp", "incomplete")
cdef Py_ssize_t _share_mask = SHARE_SLOTS - 1
_EMPTY = ()
_AGGREGATOR_TRANS = f"{AS_TRANS}:"


cdef str split_attributes(const unsigned char *d, Py_ssize_t end, Attrs *A):
    """Fills ``A`` as ribd.rawattrs._split_attributes fills its dict; returns its
    framing fault ("" if none), raises UpdateError where it does."""
    cdef Py_ssize_t at = 0, start, stop
    cdef unsigned int flags, code, kind
    cdef str fault = ""
    memset(A.have, 0, 256)
    A.count = 0
    A.hashed = 0
    while at < end:
        if at + 1 >= end:
            return f"attribute header at octet {at} is cut short"
        flags, code = d[at], d[at + 1]
        if flags & 0x10:
            if at + 3 >= end:
                return f"attribute header at octet {at} is cut short"
            start = at + 4
            stop = start + ((d[at + 2] << 8) | d[at + 3])
        else:
            if at + 2 >= end:
                return f"attribute header at octet {at} is cut short"
            start = at + 3
            stop = start + d[at + 2]
        if stop > end:
            fault = f"attribute {code} of {stop - start} octets runs past the attributes"
            if code == MP_REACH or code == MP_UNREACH:
                raise UpdateError(fault)
            return fault
        at = stop
        kind = _kind[code]
        if not kind:
            continue
        if A.have[code]:
            if code == MP_REACH or code == MP_UNREACH:
                raise UpdateError(f"attribute {code} appears twice")
            continue
        if (flags >> 7) + 1 != kind:
            if code == MP_REACH or code == MP_UNREACH:
                raise UpdateError(f"attribute {code} with flags 0x{flags:02x}: not optional")
            if not _discard[code] and not fault:
                fault = f"attribute {code} with inconsistent flags 0x{flags:02x}"
            continue
        A.have[code] = 1
        A.start[code] = start
        A.stop[code] = stop
        A.count += 1
    return fault


cdef inline bytes _value(const unsigned char *d, Attrs *A, int code):
    return PyBytes_FromStringAndSize(<const char *>d + A.start[code], A.stop[code] - A.start[code])


include "_rawattrs_memo.pxi"


cdef inline object _memo_get(int kind, const unsigned char *d, Attrs *A, int code, unsigned long long *h, int hashed):
    """The value memo ``kind`` keeps for attribute ``code``'s octets, or None
    (then the caller decodes them and keeps the value: ``memo_keep(kind, h[0],
    _value(d, A, code), value)``): the one memo pattern of the decoder. Their
    hash is ``A.hash[hashed]`` where ``prefetch_memos`` took it (``hashed`` >= 0)."""
    if hashed >= 0 and A.hashed & (1 << hashed):
        h[0] = A.hash[hashed]
        return memo_find_hashed(kind, d + A.start[code], A.stop[code] - A.start[code], h[0])
    return memo_find(kind, d + A.start[code], A.stop[code] - A.start[code], h)


cdef tuple _sorted_unique(list items):
    """``items`` (sorted) as a tuple with repeats dropped."""
    cdef Py_ssize_t i, n = len(items)
    if n < 2:
        return tuple(items)
    out = [items[0]]
    for i in range(1, n):
        if items[i] != items[i - 1]:
            out.append(items[i])
    return tuple(out)


cdef inline tuple _untracked(tuple t):
    """``t``, left out of the cyclic GC: a tuple of ints, texts and such tuples
    can hold no cycle. The memos below keep up to 65,536-262,144 values; tracked,
    each new one was walked by the next collection (~38k tuples a gen-0 pass,
    8-20 ms, during a table load) until CPython untracked it there."""
    PyObject_GC_UnTrack(t)  # (a no-op on one already untracked: the empty tuple)
    return t


cdef inline object _asn(const unsigned char *a, int size, list ints):
    """One AS number of a segment (``size`` octets at ``a``), through the
    interner's AS-number cache ``ints`` when given."""
    cdef unsigned int v = _u32(a) if size == 4 else (a[0] << 8) | a[1]
    if ints is not None:
        return share_u32(ints, v, _share_mask)
    return PyLong_FromUnsignedLong(v)


cdef object _segments(const unsigned char *d, Py_ssize_t end, int size, str name, list ints=None):
    """AS_PATH / AS4_PATH value -> ((kind, asns), ...), or the fault's text;
    the tuples out of the cyclic GC (``_untracked``). With ``ints`` (the
    interner's AS-number cache), the numbers are taken through it
    (``ribd.interner.share_numbers``): the interner keeps such a path as it is.
    Each tuple is made at its size and filled in place (a list per segment and
    one for the path, copied into tuples, took ~1,600 instructions a new path:
    6.5% of router 1's feed loop, 90% of whose paths are new; stop 37)."""
    cdef Py_ssize_t at = 0, stop, i, k, segments = 0
    cdef unsigned int kind, count
    # The whole value checked first: a malformed path takes no slot of ``ints``
    # (the reference shares the numbers of a path it decoded whole, only).
    while at < end:
        if at + 2 > end:
            return f"{name}: segment header at octet {at} is cut short"
        kind, count = d[at], d[at + 1]
        if kind < 1 or kind > 4:
            return f"{name}: unknown segment type {kind}"
        if count == 0:
            return f"{name}: empty segment at octet {at}"
        stop = at + 2 + count * size
        if stop > end:
            return f"{name}: segment of {count} ASes runs past the attribute"
        at = stop
        segments += 1
    path = PyTuple_New(segments)
    at = 0
    for k in range(segments):
        kind, count = d[at], d[at + 1]
        asns = PyTuple_New(count)
        for i in range(count):
            n = _asn(d + at + 2 + size * i, size, ints)
            Py_INCREF(n)  # (SET_ITEM takes the reference)
            PyTuple_SET_ITEM(asns, i, n)
        segment = PyTuple_New(2)
        kind_obj = <object>kind
        Py_INCREF(kind_obj)
        PyTuple_SET_ITEM(segment, 0, kind_obj)
        Py_INCREF(asns)
        PyTuple_SET_ITEM(segment, 1, _untracked(asns))
        Py_INCREF(segment)
        PyTuple_SET_ITEM(path, k, _untracked(segment))
        at += 2 + count * size
    return _untracked(path)


# The interner's AS-number cache read at its slot's offset on exactly an
# ``AttributeInterner`` (a getattr a new path before: ~130 instructions).
cdef object _interner_type = AttributeInterner
cdef Py_ssize_t _ints_at = slots_member_offset(AttributeInterner.__dict__.get("_ints"))


cdef inline list _ints_of(interner):
    """The AS-number cache of ``interner`` (``AttributeInterner._ints``), or None."""
    if type(interner) is _interner_type and _ints_at >= 0:
        try:
            ints = get_at(interner, _ints_at, "_ints")
        except AttributeError:
            return None
    else:
        ints = getattr(interner, "_ints", None)
    return ints if type(ints) is list else None


cdef object attribute_fields(const unsigned char *d, Attrs *A, bint asn4, interner):
    """The attribute row without its next hop, or the treat-as-withdraw fault's
    text (ribd.rawupdate's ``_fields`` message for it); a new AS path's numbers
    taken through ``interner``'s cache."""
    return _attribute_values(d, A, asn4, interner, None, False)


cdef object attribute_row(const unsigned char *d, Attrs *A, bint asn4, interner, str next_hop):
    """``row_with_hop(attribute_fields(...), next_hop)`` made as one tuple (the
    fields' tuple and its copy cost ~150 instructions an UPDATE), or the fault's text."""
    return _attribute_values(d, A, asn4, interner, next_hop, True)


cdef object _attribute_values(const unsigned char *d, Attrs *A, bint asn4, interner, str next_hop, bint row):
    """``attribute_fields`` (``row`` False) or ``attribute_row``."""
    cdef int size = 4 if asn4 else 2
    cdef Py_ssize_t start, n, i
    cdef bint drop_as4_path = False
    if not A.have[ORIGIN]:
        return "no ORIGIN"
    start = A.start[ORIGIN]
    n = A.stop[ORIGIN] - start
    if n != 1 or d[start] > 2:
        return f"ORIGIN {_value(d, A, ORIGIN).hex() or 'empty'} is not 0, 1 or 2"
    origin = _ORIGINS[d[start]]
    if not A.have[AS_PATH]:
        return "no AS_PATH"
    cdef unsigned long long h
    cdef int paths = M_PATHS4 if size == 4 else M_PATHS2
    as_path = _memo_get(paths, d, A, AS_PATH, &h, H_PATH)
    _path_looked_up(paths, h)  # (for ``_path_handback``)
    if as_path is None:
        as_path = _segments(
            d + A.start[AS_PATH], A.stop[AS_PATH] - A.start[AS_PATH], size, "AS_PATH", _ints_of(interner)
        )
        if type(as_path) is str:
            return as_path
        memo_keep(paths, h, _value(d, A, AS_PATH), as_path)
    aggregator = ""
    if A.have[AGGREGATOR] and A.stop[AGGREGATOR] - A.start[AGGREGATOR] == size + 4:
        start = A.start[AGGREGATOR]
        asn = _u32(d + start) if size == 4 else (d[start] << 8) | d[start + 1]
        aggregator = f"{asn}:{_quad(d + start + size)}"
    if not asn4:
        if (
            A.have[AS4_AGGREGATOR]
            and aggregator
            and A.stop[AS4_AGGREGATOR] - A.start[AS4_AGGREGATOR] == 8
        ):
            if not aggregator.startswith(_AGGREGATOR_TRANS):
                drop_as4_path = True  # a real 2-octet aggregator: both AS4_ attributes are noise
            else:
                start = A.start[AS4_AGGREGATOR]
                aggregator = f"{_u32(d + start)}:{_quad(d + start + 4)}"
        if A.have[AS4_PATH] and not drop_as4_path:
            as4_path = _segments(
                d + A.start[AS4_PATH], A.stop[AS4_PATH] - A.start[AS4_PATH], 4, "AS4_PATH"
            )
            if type(as4_path) is not str and as4_path:  # a malformed one: attribute discard
                as_path = merge_as4_path(as_path, as4_path)
    local_pref = None
    if A.have[LOCAL_PREF]:
        n = A.stop[LOCAL_PREF] - A.start[LOCAL_PREF]
        if n != 4:
            return f"LOCAL_PREF of {n} octets (4 expected)"
        local_pref = _u32(d + A.start[LOCAL_PREF])
    med = None
    if A.have[MED]:
        n = A.stop[MED] - A.start[MED]
        if n != 4:
            return f"MULTI_EXIT_DISC of {n} octets (4 expected)"
        med = _u32(d + A.start[MED])
    communities = _EMPTY
    if A.have[COMMUNITIES]:
        n = A.stop[COMMUNITIES] - A.start[COMMUNITIES]
        if not n or n % 4:
            return f"COMMUNITIES of {n} octets (a multiple of 4 expected)"
        communities = _memo_get(M_COMMUNITIES, d, A, COMMUNITIES, &h, H_COMMUNITIES)
        if communities is None:
            value = _value(d, A, COMMUNITIES)
            communities = _untracked(tuple(sorted(set(_asns(value, n // 4, 4)))))
            memo_keep(M_COMMUNITIES, h, value, communities)
    large = _EMPTY
    if A.have[LARGE_COMMUNITIES]:
        n = A.stop[LARGE_COMMUNITIES] - A.start[LARGE_COMMUNITIES]
        if not n or n % 12:
            return f"LARGE_COMMUNITY of {n} octets (a multiple of 12 expected)"
        start = A.start[LARGE_COMMUNITIES]
        # Sorted, then repeats dropped: not a set, whose tuple hashes a peer can
        # aim (CPython's tuple hash has no randomness: 100 triples of one hash
        # made the decode 5.6x slower, quadratic in their number).
        large = _sorted_unique(
            sorted(
                [
                    (_u32(d + start + i), _u32(d + start + i + 4), _u32(d + start + i + 8))
                    for i in range(0, n, 12)
                ]
            )
        )
    extended = _EMPTY
    if A.have[EXTENDED_COMMUNITIES]:
        n = A.stop[EXTENDED_COMMUNITIES] - A.start[EXTENDED_COMMUNITIES]
        if not n or n % 8:
            return f"EXTENDED_COMMUNITIES of {n} octets (a multiple of 8 expected)"
        # Through a memo as the communities (their texts were made by the shared
        # Python helper for every UPDATE that has them: ~6,800 instructions each,
        # 0.9% of router 1's feed loop; stop 37, decode7).
        extended = _memo_get(M_EXTENDED, d, A, EXTENDED_COMMUNITIES, &h, -1)
        if extended is None:
            value = _value(d, A, EXTENDED_COMMUNITIES)
            extended = _untracked(tuple([_extended(value[i : i + 8]) for i in range(0, n, 8)]))
            memo_keep(M_EXTENDED, h, value, extended)
    originator = ""
    if A.have[ORIGINATOR_ID]:
        n = A.stop[ORIGINATOR_ID] - A.start[ORIGINATOR_ID]
        if n != 4:
            return f"ORIGINATOR_ID of {n} octets (4 expected)"
        originator = address_text(d + A.start[ORIGINATOR_ID], 4)  # (the next hops' memo)
    cluster = _EMPTY
    if A.have[CLUSTER_LIST]:
        n = A.stop[CLUSTER_LIST] - A.start[CLUSTER_LIST]
        if not n or n % 4:
            return f"CLUSTER_LIST of {n} octets (a multiple of 4 expected)"
        cluster = _memo_get(M_CLUSTERS, d, A, CLUSTER_LIST, &h, -1)
        if cluster is None:
            start = A.start[CLUSTER_LIST]
            cluster = _untracked(tuple([_quad(d + start + i) for i in range(0, n, 4)]))
            memo_keep(M_CLUSTERS, h, _value(d, A, CLUSTER_LIST), cluster)
    atomic = bool(A.have[ATOMIC_AGGREGATE] and A.stop[ATOMIC_AGGREGATE] == A.start[ATOMIC_AGGREGATE])
    if row:  # (``ribd.attributes``' field order)
        return (
            as_path,
            origin,
            next_hop,
            local_pref,
            med,
            communities,
            large,
            extended,
            originator,
            cluster,
            atomic,
            aggregator,
        )
    return (
        as_path,
        origin,
        local_pref,
        med,
        communities,
        large,
        extended,
        originator,
        cluster,
        atomic,
        aggregator,
    )


cdef void prefetch_memos(const unsigned char *d, Attrs *A, bint asn4) noexcept:
    """The memo slots ``attribute_row`` reads first for these attributes (AS path,
    communities, next hop) asked of the cache, for the caller to do other work
    (the NLRI's keys) while they come: on real router tables 90% of the paths
    are new, each lookup a cache miss (perf: the memo lookups 7% of router 1's
    feed loop). A hint, and the octets' hashes kept in ``A`` for the lookups
    (they were hashed twice, ~190 instructions an UPDATE; stop 38)."""
    if A.have[AS_PATH]:
        A.hash[H_PATH] = memo_prefetch(
            M_PATHS4 if asn4 else M_PATHS2, d + A.start[AS_PATH], A.stop[AS_PATH] - A.start[AS_PATH]
        )
        A.hashed |= 1 << H_PATH
    if A.have[COMMUNITIES]:
        A.hash[H_COMMUNITIES] = memo_prefetch(
            M_COMMUNITIES, d + A.start[COMMUNITIES], A.stop[COMMUNITIES] - A.start[COMMUNITIES]
        )
        A.hashed |= 1 << H_COMMUNITIES
    if A.have[NEXT_HOP]:
        A.hash[H_HOP] = memo_prefetch(M_HOPS, d + A.start[NEXT_HOP], A.stop[NEXT_HOP] - A.start[NEXT_HOP])
        A.hashed |= 1 << H_HOP


cdef object ipv4_row(const unsigned char *d, Attrs *A, bint asn4, interner):
    """The attribute row of an UPDATE with IPv4 NLRI only (its NEXT_HOP the
    attribute's), or None when an attribute is at fault."""
    if not A.have[NEXT_HOP] or A.stop[NEXT_HOP] - A.start[NEXT_HOP] != 4:
        return None
    if A.hashed & (1 << H_HOP):
        hop = address_text_hashed(d + A.start[NEXT_HOP], 4, A.hash[H_HOP])
    else:
        hop = address_text(d + A.start[NEXT_HOP], 4)
    row = attribute_row(d, A, asn4, interner, hop)
    return None if type(row) is str else row
