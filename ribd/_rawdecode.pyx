# cython: language_level=3, boundscheck=True, wraparound=False, cdivision=True
"""Compiled twin of ``ribd.rawupdate.PyUpdateDecoder``: raw UPDATE bodies -> events.

Same input, same events, same errors (class and message), same attribute
sets (the one interner); ``ribd.rawupdate`` picks this class when it was
built and keeps the Python one as the reference and the fallback
(tests/ribd/test_raw_compiled.py compares them on the real table and on
hostile bytes). What it saves: the ~25 us of Python per UPDATE spent
walking octets; NLRI lists are decoded a whole list at a time into their
texts in C (``ribd._rawnlri``, cimported).

Every read of the body goes through a raw pointer whose bounds are checked
here by hand before the read (``boundscheck`` covers only Python-level
indexing): a length field is never trusted before it is compared with what
is left. The rarely taken paths (AS4_PATH merge, extended communities, a
message for a malformed attribute) call the shared Python helpers of
``ribd.rawattrs``, so their semantics live in one place.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.string cimport memset

cdef extern from "Python.h":
    void PyObject_GC_UnTrack(object o)

from ribd._shared_ints cimport share_u32
from ribd._rawnlri cimport ipv6_text, nlri4_keys, nlri as _nlri, quad as _quad, u32 as _u32
from ribd.attributes import AttributeInterner
from ribd.interner_keys import SHARE_SLOTS
from ribd.events import IPV4_UNICAST, IPV6_UNICAST, EndOfRib, RoutesAnnounced, RoutesWithdrawn
from ribd.rawattrs import (
    AS_TRANS,
    MAX_UPDATE_BYTES,
    MEMO_SIZE,
    UpdateError,
    _CLUSTERS,
    _COMMUNITIES,
    _HOPS,
    _PATHS2,
    _PATHS4,
    _asns,
    _extended,
    _KIND,
    _DISCARD,
    merge_as4_path,
)


# Attribute type codes (ribd.rawattrs has the same numbers).
cdef enum:
    ORIGIN = 1
    AS_PATH = 2
    NEXT_HOP = 3
    MED = 4
    LOCAL_PREF = 5
    ATOMIC_AGGREGATE = 6
    AGGREGATOR = 7
    COMMUNITIES = 8
    ORIGINATOR_ID = 9
    CLUSTER_LIST = 10
    MP_REACH = 14
    MP_UNREACH = 15
    EXTENDED_COMMUNITIES = 16
    AS4_PATH = 17
    AS4_AGGREGATOR = 18
    LARGE_COMMUNITIES = 32

cdef unsigned char _kind[256]  # 0 not read, 1 well-known, 2 optional
cdef unsigned char _discard[256]  # RFC 7606 attribute discard
cdef int _i
for _i in range(256):
    _kind[_i] = _KIND[_i]
    _discard[_i] = _i in _DISCARD

_ORIGINS = ("igp", "egp", "incomplete")
# The memos of ribd.rawattrs, typed: one C call per lookup.
cdef dict _hops = _HOPS
cdef dict _paths4 = _PATHS4
cdef dict _paths2 = _PATHS2
cdef dict _communities = _COMMUNITIES
cdef dict _clusters = _CLUSTERS
cdef Py_ssize_t _memo_size = MEMO_SIZE
cdef Py_ssize_t _share_mask = SHARE_SLOTS - 1
_EMPTY = ()
_AGGREGATOR_TRANS = f"{AS_TRANS}:"


cdef struct Attrs:
    # Offsets (from the attributes' first octet) of the first copy of each
    # attribute we read, as ribd.rawattrs._split_attributes keeps it.
    Py_ssize_t start[256]
    Py_ssize_t stop[256]
    unsigned char have[256]
    int count


cdef str _split(const unsigned char *d, Py_ssize_t end, Attrs *A):
    """Fills ``A`` as ribd.rawattrs._split_attributes fills its dict; returns its
    framing fault ("" if none), raises UpdateError where it does."""
    cdef Py_ssize_t at = 0, start, stop
    cdef unsigned int flags, code, kind
    cdef str fault = ""
    memset(A.have, 0, 256)
    A.count = 0
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


cdef inline tuple _untracked(tuple t):
    """``t``, left out of the cyclic GC: a tuple of ints, texts and such tuples
    can hold no cycle. The memos below keep up to 65,536 values each; tracked,
    each new one was walked by the next collection (~38k tuples a gen-0 pass,
    8-20 ms, during a table load) until CPython untracked it there."""
    PyObject_GC_UnTrack(t)  # (a no-op on one already untracked: the empty tuple)
    return t


cdef object _segments(const unsigned char *d, Py_ssize_t end, int size, str name, list ints=None):
    """AS_PATH / AS4_PATH value -> ((kind, asns), ...), or the fault's text;
    the tuples out of the cyclic GC (``_untracked``). With ``ints`` (the
    interner's AS-number cache), the numbers are taken through it
    (``ribd.interner.share_numbers``): the interner keeps such a path as it is."""
    cdef list segments = []
    cdef Py_ssize_t at = 0, stop, i
    cdef unsigned int kind, count
    cdef tuple asns
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
    at = 0
    while at < end:
        kind, count = d[at], d[at + 1]
        stop = at + 2 + count * size
        if ints is not None:
            if size == 4:
                asns = tuple([share_u32(ints, _u32(d + at + 2 + 4 * i), _share_mask) for i in range(count)])
            else:
                asns = tuple(
                    [share_u32(ints, (d[at + 2 + 2 * i] << 8) | d[at + 3 + 2 * i], _share_mask) for i in range(count)]
                )
        elif size == 4:
            asns = tuple([_u32(d + at + 2 + 4 * i) for i in range(count)])
        else:
            asns = tuple([(d[at + 2 + 2 * i] << 8) | d[at + 3 + 2 * i] for i in range(count)])
        segments.append(_untracked((kind, _untracked(asns))))
        at = stop
    return _untracked(tuple(segments))


cdef inline list _ints_of(interner):
    """The AS-number cache of ``interner`` (``AttributeInterner._ints``), or None."""
    ints = getattr(interner, "_ints", None)
    return ints if type(ints) is list else None


cdef object _fields(const unsigned char *d, Attrs *A, bint asn4, interner):
    """The attribute row without its next hop, or the treat-as-withdraw fault's
    text (ribd.rawupdate's ``_fields`` message for it); a new AS path's numbers
    taken through ``interner``'s cache."""
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
    value = _value(d, A, AS_PATH)
    cdef dict paths = _paths4 if size == 4 else _paths2
    as_path = paths.get(value)
    if as_path is None:
        as_path = _segments(d + A.start[AS_PATH], len(value), size, "AS_PATH", _ints_of(interner))
        if type(as_path) is str:
            return as_path
        if len(paths) >= _memo_size:
            paths.clear()
        paths[value] = as_path
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
        value = _value(d, A, COMMUNITIES)
        communities = _communities.get(value)
        if communities is None:
            communities = _untracked(tuple(sorted(set(_asns(value, n // 4, 4)))))
            if len(_communities) >= _memo_size:
                _communities.clear()
            _communities[value] = communities
    large = _EMPTY
    if A.have[LARGE_COMMUNITIES]:
        n = A.stop[LARGE_COMMUNITIES] - A.start[LARGE_COMMUNITIES]
        if not n or n % 12:
            return f"LARGE_COMMUNITY of {n} octets (a multiple of 12 expected)"
        start = A.start[LARGE_COMMUNITIES]
        large = tuple(
            sorted(
                {
                    (_u32(d + start + i), _u32(d + start + i + 4), _u32(d + start + i + 8))
                    for i in range(0, n, 12)
                }
            )
        )
    extended = _EMPTY
    if A.have[EXTENDED_COMMUNITIES]:
        n = A.stop[EXTENDED_COMMUNITIES] - A.start[EXTENDED_COMMUNITIES]
        if not n or n % 8:
            return f"EXTENDED_COMMUNITIES of {n} octets (a multiple of 8 expected)"
        value = _value(d, A, EXTENDED_COMMUNITIES)
        extended = tuple([_extended(value[i : i + 8]) for i in range(0, n, 8)])
    originator = ""
    if A.have[ORIGINATOR_ID]:
        n = A.stop[ORIGINATOR_ID] - A.start[ORIGINATOR_ID]
        if n != 4:
            return f"ORIGINATOR_ID of {n} octets (4 expected)"
        originator = _quad(d + A.start[ORIGINATOR_ID])
    cluster = _EMPTY
    if A.have[CLUSTER_LIST]:
        n = A.stop[CLUSTER_LIST] - A.start[CLUSTER_LIST]
        if not n or n % 4:
            return f"CLUSTER_LIST of {n} octets (a multiple of 4 expected)"
        value = _value(d, A, CLUSTER_LIST)
        cluster = _clusters.get(value)
        if cluster is None:
            start = A.start[CLUSTER_LIST]
            cluster = _untracked(tuple([_quad(d + start + i) for i in range(0, n, 4)]))
            if len(_clusters) >= _memo_size:
                _clusters.clear()
            _clusters[value] = cluster
    atomic = bool(A.have[ATOMIC_AGGREGATE] and A.stop[ATOMIC_AGGREGATE] == A.start[ATOMIC_AGGREGATE])
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


cdef inline tuple _row(tuple f, str next_hop):
    return (f[0], f[1], next_hop, f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10])


cdef inline object _ids(list ids):
    return None if ids is None else tuple(ids)


cdef class UpdateDecoder:
    """Decodes one session's UPDATE bodies into events, interning attribute sets
    (``ribd.rawupdate.PyUpdateDecoder``, compiled)."""

    cdef public object interner

    def __init__(self, interner=None):
        self.interner = interner if interner is not None else AttributeInterner()

    def decode(self, neighbor, body, caps):
        """The events of one UPDATE body (the message after its 19-octet header)."""
        cdef bytes data = body if type(body) is bytes else bytes(body)
        cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(data)
        cdef Py_ssize_t end = len(data), withdrawn_len, attr_at, attr_len, nlri_at
        cdef Attrs A
        cdef const unsigned char *d
        cdef bint ids4
        if end == 4 and p[0] == 0 and p[1] == 0 and p[2] == 0 and p[3] == 0:
            return [EndOfRib(neighbor, IPV4_UNICAST)]
        if end > MAX_UPDATE_BYTES:
            raise UpdateError(f"UPDATE of {end} octets exceeds {MAX_UPDATE_BYTES}")
        if end < 4:
            raise UpdateError(f"UPDATE of {end} octets is shorter than its two length fields")
        withdrawn_len = (p[0] << 8) | p[1]
        attr_at = 2 + withdrawn_len
        if attr_at + 2 > end:
            raise UpdateError(f"withdrawn routes length {withdrawn_len} runs past the UPDATE")
        attr_len = (p[attr_at] << 8) | p[attr_at + 1]
        nlri_at = attr_at + 2 + attr_len
        if nlri_at > end:
            raise UpdateError(f"path attribute length {attr_len} runs past the UPDATE")
        add_path = caps.add_path
        ids4 = IPV4_UNICAST in add_path
        withdrawn = _nlri(p + 2, withdrawn_len, False, ids4) if withdrawn_len else None
        nlri = _nlri(p + nlri_at, end - nlri_at, False, ids4) if nlri_at < end else None
        d = p + attr_at + 2
        framing = _split(d, attr_len, &A)
        asn4 = bool(caps.asn4)
        if nlri is not None and withdrawn is None and not framing:
            if not A.have[MP_REACH] and not A.have[MP_UNREACH]:
                # Most of a table: IPv4 NLRI and nothing else to do.
                event = self._announce_ipv4(neighbor, d, &A, asn4, nlri)
                if event is not None:
                    return [event]
        events = []
        if withdrawn is not None:
            events.append(
                RoutesWithdrawn(neighbor, IPV4_UNICAST, tuple(withdrawn[0]), _ids(withdrawn[1]))
            )
        unreach = reach = None
        if A.have[MP_UNREACH]:
            unreach = _mp_unreach(d + A.start[MP_UNREACH], A.stop[MP_UNREACH] - A.start[MP_UNREACH], add_path)
        if A.have[MP_REACH]:
            reach = _mp_reach(d + A.start[MP_REACH], A.stop[MP_REACH] - A.start[MP_REACH], add_path)
        if unreach is not None:
            family, (prefixes, ids) = unreach
            if prefixes:
                events.append(RoutesWithdrawn(neighbor, family, tuple(prefixes), _ids(ids)))
            elif family and reach is None and nlri is None and withdrawn is None and A.count == 1:
                return [EndOfRib(neighbor, family)]
        announced = []
        if nlri is not None:
            announced.append((IPV4_UNICAST, None, nlri))
        if reach is not None and reach[0] and reach[2][0]:
            announced.append(reach)
        if not announced:
            return events
        fault = framing
        fields = None
        if not fault:
            fields = _fields(d, &A, asn4, self.interner)
            if type(fields) is str:
                fault = fields
        for family, next_hop, (prefixes, ids) in announced:
            hop_fault = fault
            if not hop_fault and next_hop is None:  # classic IPv4 NLRI: the NEXT_HOP attribute
                if not A.have[NEXT_HOP]:
                    hop_fault = "no NEXT_HOP for the IPv4 NLRI"
                elif A.stop[NEXT_HOP] - A.start[NEXT_HOP] != 4:
                    hop_fault = f"NEXT_HOP of {A.stop[NEXT_HOP] - A.start[NEXT_HOP]} octets (4 expected)"
                else:
                    next_hop = _quad(d + A.start[NEXT_HOP])
            if hop_fault:
                events.append(
                    RoutesWithdrawn(
                        neighbor,
                        family,
                        tuple(prefixes),
                        _ids(ids),
                        reason=f"bad attributes: {hop_fault}",
                    )
                )
                continue
            events.append(
                RoutesAnnounced(
                    neighbor,
                    family,
                    tuple(prefixes),
                    _ids(ids),
                    self.interner.intern(_row(fields, next_hop)),
                )
            )
        return events

    cdef object _announce_ipv4(self, neighbor, const unsigned char *d, Attrs *A, bint asn4, tuple nlri):
        """The event of an UPDATE with IPv4 NLRI only and sound attributes; None
        when an attribute is at fault (``decode`` then says why)."""
        row = _ipv4_row(d, A, asn4, self.interner)
        if row is None:
            return None
        prefixes, ids = nlri
        return RoutesAnnounced(
            neighbor,
            IPV4_UNICAST,
            tuple(prefixes),
            _ids(ids),
            self.interner.intern(row),
        )


cdef object _ipv4_row(const unsigned char *d, Attrs *A, bint asn4, interner):
    """The attribute row of an UPDATE with IPv4 NLRI only (its NEXT_HOP the
    attribute's), or None when an attribute is at fault."""
    if not A.have[NEXT_HOP] or A.stop[NEXT_HOP] - A.start[NEXT_HOP] != 4:
        return None
    value = _value(d, A, NEXT_HOP)
    next_hop = _hops.get(value)
    if next_hop is None:
        if len(_hops) >= _memo_size:
            _hops.clear()
        next_hop = _hops[value] = _quad(d + A.start[NEXT_HOP])
    fields = _fields(d, A, asn4, interner)
    if type(fields) is str:
        return None
    return _row(fields, next_hop)


cdef tuple load_update(const unsigned char *p, Py_ssize_t end, bint asn4, interner):
    """(prefix keys, attribute row) of an UPDATE body of a table load's common
    kind: IPv4 NLRI only (no withdrawn routes, no MP_REACH / MP_UNREACH), sound
    framing and attributes, no ADD-PATH (the caller checks the session's). The
    keys are the IPv4 store's integers (``ribd.store``), not texts: for such a
    body ``UpdateDecoder.decode`` gives exactly ``[RoutesAnnounced(neighbor,
    IPV4_UNICAST, tuple(int_texts(keys)), None, interner.intern(row))]``. None
    for any other body, before anything is interned: the caller then decodes it
    the usual way, which says what is wrong."""
    cdef Py_ssize_t attr_len, nlri_at
    cdef Attrs A
    if end < 4 or end > MAX_UPDATE_BYTES or p[0] or p[1]:  # (withdrawn routes, or End-of-RIB)
        return None
    attr_len = (p[2] << 8) | p[3]
    nlri_at = 4 + attr_len
    if nlri_at >= end:  # no NLRI (or the attributes run past the UPDATE)
        return None
    try:
        keys = nlri4_keys(p + nlri_at, end - nlri_at)
        if _split(p + 4, attr_len, &A):
            return None
    except UpdateError:
        return None
    if A.have[MP_REACH] or A.have[MP_UNREACH]:
        return None
    row = _ipv4_row(p + 4, &A, asn4, interner)
    if row is None:
        return None
    return keys, row



cdef tuple load_update6(const unsigned char *p, Py_ssize_t end, bint asn4, interner, add_path):
    """(prefix texts, attribute row) of an UPDATE body whose only routes are
    IPv6 unicast NLRI in MP_REACH_NLRI: no withdrawn routes, no IPv4 NLRI, no
    MP_UNREACH_NLRI, sound framing and attributes, no ADD-PATH for IPv6 in
    ``add_path`` (the session's). The IPv6 store's keys are these texts. For
    such a body ``UpdateDecoder.decode`` gives exactly
    ``[RoutesAnnounced(neighbor, IPV6_UNICAST, tuple(texts), None,
    interner.intern(row))]``; the IPv6 share of a today-sized table (0.23 M of
    1.27 M prefixes) took that general way, an event, a list and the feed's
    dispatch for each UPDATE. None for any other body, before anything is
    interned (an attribute at fault: after ``_fields`` ran, as ``load_update``;
    ``decode`` runs it again and says why)."""
    cdef Py_ssize_t attr_len
    cdef Attrs A
    if end < 4 or end > MAX_UPDATE_BYTES or p[0] or p[1]:  # (withdrawn routes, or End-of-RIB)
        return None
    attr_len = (p[2] << 8) | p[3]
    if 4 + attr_len != end:  # IPv4 NLRI (or the attributes run past the UPDATE)
        return None
    if IPV6_UNICAST in add_path:
        return None
    try:
        if _split(p + 4, attr_len, &A):
            return None
        if not A.have[MP_REACH] or A.have[MP_UNREACH]:
            return None
        reach = _mp_reach(p + 4 + A.start[MP_REACH], A.stop[MP_REACH] - A.start[MP_REACH], add_path)
    except UpdateError:
        return None
    family, next_hop, nlri = <tuple>reach
    prefixes = (<tuple>nlri)[0]
    if family is not IPV6_UNICAST or not prefixes:
        return None
    fields = _fields(p + 4, &A, asn4, interner)
    if type(fields) is str:
        return None
    return prefixes, _row(fields, next_hop)


cdef object _family(const unsigned char *v):
    afi = (v[0] << 8) | v[1]
    if afi == 1 and v[2] == 1:
        return IPV4_UNICAST
    if afi == 2 and v[2] == 1:
        return IPV6_UNICAST
    return ""


cdef tuple _mp_unreach(const unsigned char *v, Py_ssize_t n, add_path):
    """(family, NLRI) of MP_UNREACH_NLRI; family "" for a family we do not keep."""
    if n < 3:
        raise UpdateError(f"MP_UNREACH_NLRI of {n} octets is shorter than AFI and SAFI")
    family = _family(v)
    if not family:
        return "", ([], None)
    return family, _nlri(v + 3, n - 3, family is IPV6_UNICAST, family in add_path)


cdef tuple _mp_reach(const unsigned char *v, Py_ssize_t n, add_path):
    """(family, next hop, NLRI) of MP_REACH_NLRI; family "" for one we do not keep."""
    cdef Py_ssize_t hop_len, nlri_at
    if n < 5:
        raise UpdateError(f"MP_REACH_NLRI of {n} octets is too short")
    family = _family(v)
    hop_len = v[3]
    nlri_at = 5 + hop_len
    if nlri_at > n:
        raise UpdateError(f"MP_REACH_NLRI next hop of {hop_len} octets runs past the attribute")
    if not family:
        return "", "", ([], None)
    if hop_len == 4:
        next_hop = _quad(v + 4)
    elif hop_len == 16 or hop_len == 32:  # global, then (32) a link-local one we do not use
        next_hop = ipv6_text(v + 4)
    else:
        raise UpdateError(f"MP_REACH_NLRI next hop of {hop_len} octets (4, 16 or 32 expected)")
    return family, next_hop, _nlri(v + nlri_at, n - nlri_at, family is IPV6_UNICAST, family in add_path)
