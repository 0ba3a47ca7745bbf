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
from ribd._fastlock cimport fastlock_layout_ok, fastlock_release, fastlock_try
from ribd._rawdecode cimport UpdateDecoder, load_update, load_update6
from ribd._rawline cimport events_of, line_update, peer_of
from ribd._slots cimport (
    get_at,
    set_at,
    slots_member_offset,
    slots_writable_offset,
)

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.object cimport PyTypeObject
from cpython.ref cimport PyObject

import _thread

from ribd.events import IPV4_UNICAST, IPV6_UNICAST, RoutesAnnounced
from ribd.feed_counters import FeedCounters
from ribd.interner import AttributeInterner
from ribd.rawlines import RawMessages
from ribd.rawopen import SessionCaps
from ribd.table import RouterRib


cdef extern from "Python.h":
    PyObject *_PyType_Lookup(PyTypeObject *t, object name)


cdef object _v4 = IPV4_UNICAST
cdef object _v6 = IPV6_UNICAST
cdef object _announced = RoutesAnnounced
cdef object _decoder = UpdateDecoder  # the compiled decoder (a swapped-in one: today's path)

# The ~12 attributes a line reads (the raw sessions' decoder and table, the
# session's capabilities, the RIB's neighbors, lock and routers, the router's
# time stamp, the feed's counters) went through the generic getattr / setattr,
# ~150-200 instructions each (type lookup, descriptor call): 12.9% of the feed's
# loop with announce_parts' (stop 35, intern5). Read here at their slots'
# offsets (``ribd._slots``), the RIB's too since stop 57, each only for an
# object of exactly the type whose layout was taken (any other: getattr, as
# before). Nothing is cached across lines: every field is read at every line,
# so a swapped decoder, a forgotten session, a reload of ``rib.neighbors`` are
# seen at once, as before.
cdef object _raw_messages = RawMessages
cdef Py_ssize_t _raw_decoder = slots_member_offset(RawMessages.__dict__["decoder"])
cdef Py_ssize_t _raw_caps = slots_member_offset(RawMessages.__dict__["_caps"])
cdef object _session_caps = SessionCaps
cdef Py_ssize_t _caps_add_path = slots_member_offset(SessionCaps.__dict__["add_path"])
cdef Py_ssize_t _caps_asn4 = slots_member_offset(SessionCaps.__dict__["asn4"])
cdef object _router_rib = RouterRib
cdef Py_ssize_t _rr_last_update = slots_writable_offset(RouterRib.__dict__["last_update"])
cdef object _feed_counters = FeedCounters
cdef Py_ssize_t _c_prefixes = slots_writable_offset(FeedCounters.__dict__["prefixes_announced"])
cdef Py_ssize_t _c_updates = slots_writable_offset(FeedCounters.__dict__["updates"])
# The interner's ``intern``: called as the class's function with the interner
# (no bound method made, no getattr) while the class still holds the compiled
# one and its instances have no dict that could shadow it (checked per line:
# ``_PyType_Lookup``, the type's method cache).
cdef object _interner_class = AttributeInterner
cdef object _intern_fn = AttributeInterner.__dict__.get("intern")
cdef bint _interner_slotted = not AttributeInterner.__dictoffset__
cdef str _intern_name = "intern"
# ``rib.lock``'s type (threading.Lock): taken and released in C where its
# layout was checked (``ribd/_fastlock.pxd``), else by its methods.
cdef object _lock_type = type(_thread.allocate_lock())
cdef object _lock_acquire = _lock_type.acquire
cdef object _lock_release = _lock_type.release
cdef bint _lock_in_c = fastlock_layout_ok(_thread.allocate_lock())
cdef object _rib_class = None  # ribd.rib.Rib (it imports the feed: at the first loader)
cdef Py_ssize_t _rib_neighbors = -1  # its slots' offsets (-1: getattr)
cdef Py_ssize_t _rib_lock = -1
cdef Py_ssize_t _rib_routers = -1


cdef inline object _cell(object o, Py_ssize_t offset, object kind, str name):
    """``o.<name>``, at ``offset`` when ``o`` is exactly a ``kind``."""
    return get_at(o, offset if type(o) is kind else -1, name)


cdef inline object _intern(interner, row):
    """``interner.intern(row)``."""
    cdef PyObject *fn
    kind = type(interner)
    if kind is _interner_class and _interner_slotted:
        fn = _PyType_Lookup(<PyTypeObject *>kind, _intern_name)
        if fn != NULL and <object>fn is _intern_fn:
            return _intern_fn(interner, row)
    return interner.intern(row)


cdef int _apply_line(rib, Py_ssize_t rx, peer, bint timed, double stamp, family, prefixes, attrs) except -1:
    """``apply_many`` of the line's [UpdateTime, RoutesAnnounced], its steps; the
    caller holds ``rib.lock``."""
    allowed = get_at(rib, _rib_neighbors | rx, "neighbors")
    if allowed is not None and peer not in allowed:
        rib.unknown_neighbor_events += 2 if timed else 1
        return 0
    routers = get_at(rib, _rib_routers | rx, "routers")
    if type(routers) is dict:
        r = (<dict>routers).get(peer) or rib.router(peer)
    else:
        r = routers.get(peer) or rib.router(peer)
    if timed:
        set_at(r, _rr_last_update if type(r) is _router_rib else -1, "last_update", stamp)
    if not announce_parts(rib, r, family, prefixes, attrs):
        # (the keys given, the event's prefixes are not read: no texts made)
        rib._announce(_announced(peer, family, (), None, attrs), prefixes)
    return 0


def fields_at_offsets():
    """Whether the per-line reads take their offsets (tests): every layout found."""
    return (
        min(_raw_decoder, _raw_caps, _caps_add_path, _caps_asn4, _rr_last_update, _c_prefixes, _c_updates) >= 0
        and _interner_slotted
        and _intern_fn is not None
        and min(_rib_neighbors, _rib_lock, _rib_routers) >= 0
        and _lock_in_c
    )


cdef class LineLoader:
    """The fused path of one feed connection's lines, for one parser and RIB.

    ``parser`` is the feed's ``ExabgpParser``: its raw session table, decoder
    and interner are read at every line (a decoder swapped in, a session
    forgotten are seen at once), as the scanner reads them."""

    def __init__(self, parser, rib):
        global _rib_class, _rib_neighbors, _rib_lock, _rib_routers
        if _rib_class is None:
            from ribd.rib import Rib

            _rib_neighbors = slots_member_offset(Rib.__dict__["neighbors"])
            _rib_lock = slots_member_offset(Rib.__dict__["lock"])
            _rib_routers = slots_member_offset(Rib.__dict__["routers"])
            _rib_class = Rib
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
        return self.load_c(line, c, NULL)

    cdef object load_c(self, bytes line, c, Py_ssize_t *counted):
        """``load``, for the compiled feed loop (no Python call a line). With
        ``counted``, a line applied is not counted into ``c``: its prefixes go to
        ``counted[0]`` and the caller counts them and the UPDATE (it keeps the
        counts of a read's fused lines in C: ribd._feedloop)."""
        return self.load_at(<const unsigned char *>PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line), c, counted)

    cdef object load_at(self, const unsigned char *line, Py_ssize_t size, c, Py_ssize_t *counted):
        """``load_c`` of the line's ``size`` octets at ``line``, where the feed's
        read left them (``ribd._feedloop.buffer_in``): a line this takes is
        never made a bytes object. Nothing here keeps the pointer."""
        cdef Py_ssize_t at, stop, n
        cdef double stamp
        cdef bint timed, asn4
        cdef Py_ssize_t rx  # 0: the RIB's fields at their offsets
        rib = self._rib
        rx = 0 if type(rib) is _rib_class else -1
        try:  # (any error: today's path meets it again and words it)
            body = line_update(line, size, &at, &stop, &stamp, &timed)
            if body is None:
                return None
            peer = peer_of(self._peers, line, at, stop)
            if peer is None:
                return None
            raw = self._raw
            decoder = _cell(raw, _raw_decoder, _raw_messages, "decoder")
            caps = (<dict>_cell(raw, _raw_caps, _raw_messages, "_caps")).get(peer)
            if caps is None or type(decoder) is not _decoder:
                return None
            allowed = get_at(rib, _rib_neighbors | rx, "neighbors")
            if allowed is not None and peer not in allowed:
                return None  # the feed's loop logs it as an unknown neighbor
            got = None
            family = _v4
            add_path = _cell(caps, _caps_add_path, _session_caps, "add_path")
            asn4 = bool(_cell(caps, _caps_asn4, _session_caps, "asn4"))
            interner = (<UpdateDecoder>decoder).interner  # (exactly the compiled class)
            if _v4 not in add_path:
                got = load_update(
                    <const unsigned char *>PyBytes_AS_STRING(body),
                    PyBytes_GET_SIZE(body),
                    asn4,
                    interner,
                )
            if got is None:
                # An UPDATE of IPv6 routes only (MP_REACH_NLRI): its prefixes as the
                # IPv6 store's int keys, as ``load_update``'s are the IPv4 store's.
                family = _v6
                got = load_update6(
                    <const unsigned char *>PyBytes_AS_STRING(body),
                    PyBytes_GET_SIZE(body),
                    asn4,
                    interner,
                    add_path,
                )
            if got is None:
                # Not the load's common kind (withdrawals, ADD-PATH, End-of-RIB, a
                # fault): the scanner's next step, so that the line is not scanned twice.
                return events_of(decoder, peer, body, caps, timed, stamp)
            prefixes, row = <tuple>got
            attrs = _intern(interner, row)
        except Exception:
            return None
        n = len(<list>prefixes)
        lock = get_at(rib, _rib_lock | rx, "lock")
        if type(lock) is _lock_type:
            # ``with lock`` without its two bound methods and ``__exit__``'s
            # argument tuple: taken in C when free (what an uncontended
            # ``acquire()`` does), else by the lock type's own acquire (which
            # waits with the GIL released); released whatever the body raises,
            # as ``with``, by the type's release where C did not (it raises
            # for a lock not held, as before).
            if not (_lock_in_c and fastlock_try(lock)):
                _lock_acquire(lock)
            try:
                _apply_line(rib, rx, peer, timed, stamp, family, prefixes, attrs)
            finally:
                if not (_lock_in_c and fastlock_release(lock)):
                    _lock_release(lock)
        else:
            with lock:
                _apply_line(rib, rx, peer, timed, stamp, family, prefixes, attrs)
        if counted != NULL:
            counted[0] = n
        elif type(c) is _feed_counters:
            set_at(c, _c_prefixes, "prefixes_announced", get_at(c, _c_prefixes, "prefixes_announced") + n)
            set_at(c, _c_updates, "updates", get_at(c, _c_updates, "updates") + 1)
        else:
            c.prefixes_announced += n
            c.updates += 1
        self.taken += 1
        return True


def lock_in_c():
    """Whether ``rib.lock`` (a ``threading.Lock``) is taken and released in C
    (``ribd/_fastlock.pxd``: its layout checked at import; tests)."""
    return _lock_in_c


def lock_step(lock, bint take):
    """One step of the C path on ``lock`` (tests): take (True: taken, False:
    held elsewhere) or release (True: released, False: it was not held)."""
    if not _lock_in_c or type(lock) is not _lock_type:
        raise TypeError("no C path for this lock here")
    return fastlock_try(lock) if take else fastlock_release(lock)
