# cython: language_level=3, boundscheck=True, wraparound=False, cdivision=True
"""Compiled twin of ``ribd.rawupdate.PyUpdateDecoder``: raw UPDATE bodies -> events.

Same input, same events, same errors (class and message), same attribute
sets (the one interner); ``ribd.rawupdate`` picks this class when it was
built and keeps the Python one as the reference and the fallback
(tests/ribd/test_raw_compiled.py compares them on the real table and on
hostile bytes). What it saves: the ~25 us of Python per UPDATE spent
walking octets; NLRI lists are decoded a whole list at a time into their
texts in C (``ribd._rawnlri``), path attributes by ``ribd._rawattrs`` (both
cimported).

Every read of the body goes through a raw pointer whose bounds are checked
here by hand before the read (``boundscheck`` covers only Python-level
indexing): a length field is never trusted before it is compared with what
is left. The rarely taken paths (AS4_PATH merge, extended communities, a
message for a malformed attribute) call the shared Python helpers of
``ribd.rawattrs``, so their semantics live in one place.
"""

from cpython.bytes cimport PyBytes_AS_STRING

from ribd._rawattrs cimport (
    MP_REACH,
    MP_UNREACH,
    NEXT_HOP,
    Attrs,
    attribute_fields,
    attribute_row,
    address_text,
    ipv4_row,
    prefetch_memos,
    row_with_hop,
    split_attributes,
)
from ribd._rawnlri cimport nlri4_keys, nlri6_keys, nlri as _nlri
from ribd.attributes import AttributeInterner
from ribd.events import IPV4_UNICAST, IPV6_UNICAST, EndOfRib, RoutesAnnounced, RoutesWithdrawn
from ribd.rawattrs import MAX_UPDATE_BYTES, UpdateError


cdef inline object _ids(list ids):
    return None if ids is None else tuple(ids)


cdef class UpdateDecoder:
    """Decodes one session's UPDATE bodies into events, interning attribute sets
    (``ribd.rawupdate.PyUpdateDecoder``, compiled; its field ``interner`` is
    declared in ``_rawdecode.pxd``)."""

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
        framing = split_attributes(d, attr_len, &A)
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
            fields = attribute_fields(d, &A, asn4, self.interner)
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
                    next_hop = address_text(d + A.start[NEXT_HOP], 4)
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
                    self.interner.intern(row_with_hop(fields, next_hop)),
                )
            )
        return events

    cdef object _announce_ipv4(self, neighbor, const unsigned char *d, Attrs *A, bint asn4, tuple nlri):
        """The event of an UPDATE with IPv4 NLRI only and sound attributes; None
        when an attribute is at fault (``decode`` then says why)."""
        row = ipv4_row(d, A, asn4, self.interner)
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
    # The attributes framed first, their memo slots asked of the cache, the
    # NLRI's keys made while they come (both steps are pure: their order
    # changes no result).
    try:
        if split_attributes(p + 4, attr_len, &A):
            return None
        if A.have[MP_REACH] or A.have[MP_UNREACH]:
            return None
        prefetch_memos(p + 4, &A, asn4)
        keys = nlri4_keys(p + nlri_at, end - nlri_at)
    except UpdateError:
        return None
    row = ipv4_row(p + 4, &A, asn4, interner)
    if row is None:
        return None
    return keys, row



cdef tuple load_update6(const unsigned char *p, Py_ssize_t end, bint asn4, interner, add_path):
    """(prefix keys, attribute row) of an UPDATE body whose only routes are
    IPv6 unicast NLRI in MP_REACH_NLRI: no withdrawn routes, no IPv4 NLRI, no
    MP_UNREACH_NLRI, sound framing and attributes, no ADD-PATH for IPv6 in
    ``add_path`` (the session's). The keys are the IPv6 store's integers
    (``ribd.prefix_keys``), made from the NLRI octets with no text: for such a
    body ``UpdateDecoder.decode`` gives exactly ``[RoutesAnnounced(neighbor,
    IPV6_UNICAST, tuple(int_texts(keys, 128)), None, interner.intern(row))]``;
    the IPv6 share of a today-sized table (0.23 M of 1.27 M prefixes) took that
    general way, an event, a list and the feed's dispatch for each UPDATE. None
    for any other body, before anything is interned (an attribute at fault:
    after ``attribute_fields`` ran, as ``load_update``; ``decode`` runs it again
    and says why)."""
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
        if split_attributes(p + 4, attr_len, &A):
            return None
        if not A.have[MP_REACH] or A.have[MP_UNREACH]:
            return None
        reach = _mp_reach6(p + 4 + A.start[MP_REACH], A.stop[MP_REACH] - A.start[MP_REACH])
    except UpdateError:
        return None
    if reach is None:
        return None
    next_hop, prefixes = <tuple>reach
    if not prefixes:
        return None
    row = attribute_row(p + 4, &A, asn4, interner, next_hop)
    if type(row) is str:
        return None
    return prefixes, row


cdef tuple _mp_reach6(const unsigned char *v, Py_ssize_t n):
    """(next hop, NLRI keys) of MP_REACH_NLRI of IPv6 unicast without path ids:
    ``_mp_reach``'s checks in its order and its errors, the NLRI as the IPv6
    store's int keys (``nlri6_keys``); None for another family."""
    cdef Py_ssize_t nlri_at = _reach_nlri_at(v, n)
    family = _family(v)
    if family is not IPV6_UNICAST:
        return None
    next_hop = _reach_hop(v)
    return next_hop, nlri6_keys(v + nlri_at, n - nlri_at)


cdef Py_ssize_t _reach_nlri_at(const unsigned char *v, Py_ssize_t n) except -1:
    """Where MP_REACH_NLRI's NLRI start, its length checks done (``_mp_reach``
    and ``_mp_reach6`` share them, in this order, before the family's)."""
    if n < 5:
        raise UpdateError(f"MP_REACH_NLRI of {n} octets is too short")
    cdef Py_ssize_t hop_len = v[3]
    if 5 + hop_len > n:
        raise UpdateError(f"MP_REACH_NLRI next hop of {hop_len} octets runs past the attribute")
    return 5 + hop_len


cdef object _reach_hop(const unsigned char *v):
    """MP_REACH_NLRI's next hop, for a family we keep."""
    cdef Py_ssize_t hop_len = v[3]
    # Through the decoder's next-hop memos (``ribd/_rawattrs_memo.pxi``): the
    # same text for the same octets, as the interner's router-part memo needs
    # to find a part met before (an IPv6 hop's new text each time missed it).
    if hop_len == 4:
        return address_text(v + 4, 4)
    if hop_len == 16 or hop_len == 32:  # global, then (32) a link-local one we do not use
        return address_text(v + 4, 16)
    raise UpdateError(f"MP_REACH_NLRI next hop of {hop_len} octets (4, 16 or 32 expected)")


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
    cdef Py_ssize_t nlri_at = _reach_nlri_at(v, n)
    family = _family(v)
    if not family:
        return "", "", ([], None)
    next_hop = _reach_hop(v)
    return family, next_hop, _nlri(v + nlri_at, n - nlri_at, family is IPV6_UNICAST, family in add_path)


def load_update_test(bytes body, bint asn4, interner):
    """``load_update`` of a whole body (tests): (prefix keys, attribute row) or None."""
    return load_update(<const unsigned char *>PyBytes_AS_STRING(body), len(body), asn4, interner)
