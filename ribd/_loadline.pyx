# cython: language_level=3, boundscheck=False, wraparound=False
"""A table load's common ``packets`` line, from its bytes to the store in one call.

While a table streams in, nearly every line is a received UPDATE that
announces IPv4 prefixes (or, in MP_REACH_NLRI, IPv6 ones: ``load_update6``)
with sound attributes and nothing else. Its way
through the feed was: the line scanned (``ribd._rawline``), the body decoded
(``ribd._rawdecode``) into a ``RoutesAnnounced`` and an ``UpdateTime`` in a
list, the feed's loop walking that list to check the neighbor, ``apply_many``
walking it again under the lock (two dispatches, the router looked up twice,
the event's fields read back), then the feed's loop a third time to count.
Here the same steps run on the line's parts: scan, decode, intern, then under
``rib.lock`` the router's time stamp and ``Rib._announce``'s short paths
(``ribd._apply.announce_parts``) and the counters, with no event made.

Every other line is left to today's path before anything is written:
``load`` returns None for a line that is not a received UPDATE's packets
line of the scanner's narrow kind, of a session whose OPENs were seen, of a
configured neighbor (nothing interned either), and the line's events, as the
scanner makes them, for a body ``ribd._rawdecode.load_update`` (IPv4) and
``load_update6`` (IPv6) do not take (withdrawals, both families in one
UPDATE, ADD-PATH, End-of-RIB, any fault): the feed's loop checks, applies and
counts those as any parsed line, without scanning it again. Under the lock,
an UPDATE the short paths refuse (prefixes partly held, a prefix twice, after the first merge) goes to
``rib._announce`` with the event the decoder would have made, as
``apply_many`` does. So the RIB, the interner and the feed's counters end as
the reference path leaves them (tests/ribd/test_loadline.py compares them
line by line on random and hostile streams and on the real table).
"""

from ribd._apply cimport announce_parts
from ribd._rawdecode cimport load_update, load_update6
from ribd._rawline cimport events_of, line_update, peer_of

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE

from ribd._rawdecode import UpdateDecoder
from ribd.events import IPV4_UNICAST, IPV6_UNICAST, RoutesAnnounced


cdef object _v4 = IPV4_UNICAST
cdef object _v6 = IPV6_UNICAST
cdef object _announced = RoutesAnnounced
cdef object _decoder = UpdateDecoder  # the compiled decoder (a swapped-in one: today's path)


cdef class LineLoader:
    """The fused path of one feed connection's lines, for one parser and RIB.

    ``parser`` is the feed's ``ExabgpParser``: its raw session table, decoder
    and interner are read at every line (a decoder swapped in, a session
    forgotten are seen at once), as the scanner reads them."""

    cdef object _raw
    cdef object _rib
    cdef dict _peers  # peer text as octets -> canonical address (None: not one)
    cdef public Py_ssize_t taken  # lines this applied (tests, benchmarks)

    def __init__(self, parser, rib):
        self._raw = parser.raw
        self._rib = rib
        self._peers = {}
        self.taken = 0

    def load(self, bytes line, c):
        """True when ``line`` was parsed, applied and counted into the feed
        counters ``c`` (all but ``c.lines``, the caller's) as the reference
        would. Otherwise nothing was written: a list is the line's events as the
        scanner (``RawLineScanner.events``) makes them, for the caller to check,
        apply and count; None, the caller runs today's path from the start."""
        cdef Py_ssize_t at, stop, n
        cdef double stamp
        cdef bint timed
        try:  # (any error: today's path meets it again and words it)
            body = line_update(line, &at, &stop, &stamp, &timed)
            if body is None:
                return None
            peer = peer_of(self._peers, line, at, stop)
            if peer is None:
                return None
            raw = self._raw
            decoder = raw.decoder
            caps = (<dict>raw._caps).get(peer)
            if caps is None or type(decoder) is not _decoder:
                return None
            rib = self._rib
            allowed = rib.neighbors
            if allowed is not None and peer not in allowed:
                return None  # the feed's loop logs it as an unknown neighbor
            got = None
            family = _v4
            add_path = caps.add_path
            if _v4 not in add_path:
                got = load_update(
                    <const unsigned char *>PyBytes_AS_STRING(body),
                    PyBytes_GET_SIZE(body),
                    bool(caps.asn4),
                    decoder.interner,
                )
            if got is None:
                # An UPDATE of IPv6 routes only (MP_REACH_NLRI): its prefixes as the
                # IPv6 store's int keys, as ``load_update``'s are the IPv4 store's.
                family = _v6
                got = load_update6(
                    <const unsigned char *>PyBytes_AS_STRING(body),
                    PyBytes_GET_SIZE(body),
                    bool(caps.asn4),
                    decoder.interner,
                    add_path,
                )
            if got is None:
                # Not the load's common kind (withdrawals, ADD-PATH, End-of-RIB, a
                # fault): the scanner's next step, so that the line is not scanned twice.
                return events_of(decoder, peer, body, caps, timed, stamp)
            prefixes, row = <tuple>got
            attrs = decoder.interner.intern(row)
        except Exception:
            return None
        n = len(<list>prefixes)
        with rib.lock:  # ``apply_many`` of [UpdateTime, RoutesAnnounced], its steps
            allowed = rib.neighbors
            if allowed is not None and peer not in allowed:
                rib.unknown_neighbor_events += 2 if timed else 1
            else:
                r = rib.routers.get(peer) or rib.router(peer)
                if timed:
                    r.last_update = stamp
                if not announce_parts(rib, r, family, prefixes, attrs):
                    # (the keys given, the event's prefixes are not read: no texts made)
                    rib._announce(_announced(peer, family, (), None, attrs), prefixes)
        c.prefixes_announced += n
        c.updates += 1
        self.taken += 1
        return True
