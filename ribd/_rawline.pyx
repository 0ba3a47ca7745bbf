# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""ExaBGP ``packets`` lines of received UPDATEs -> events, without orjson.

The reference path (``ribd.parser.ExabgpParser._parse_raw``) decodes each
line with orjson into dicts, reads five keys with Python checks, turns the
body's hex into bytes with ``a2b_hex`` and hands them to the UPDATE decoder:
~4 us a line outside the decoder, ~0.4 CPU-s a real table. Here one pass in
C over the line's bytes checks that it is a JSON object this module
recognises *exactly* and finds the same five values; the body's hex is
decoded straight from the line.

What it takes is deliberately narrow, so that it can only ever agree with
the reference: strings of printable ASCII without escapes, numbers without
exponents and of at most 17 digits, at most ``MAX_NEST`` levels, each key
it reads present once in its object (orjson keeps the last of a repeated
key; we do not guess), a received UPDATE (category 2, direction
"receive") of a session whose OPENs were seen, a body of even, valid hex,
and an UPDATE the decoder takes without an ``UpdateError``. For anything
else ``events`` returns None and the caller runs the reference path, which
alone words the errors (tests/ribd/test_rawline.py: the same events, errors
and counters on the real table and on hostile lines, and which lines must
be refused here).

The JSON walk is ``ribd._rawjson``'s: a line in ExaBGP's own key order is read
in that order first, any other by the generic walk. The body's hex and the time
stamp are read by ``ribd._rawhex``.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from libc.string cimport memcmp, memcpy

from ribd._rawhex cimport number_value, unhex
from ribd._rawjson cimport (
    ABSENT,
    FLOAT,
    INTEGER,
    OBJECT,
    Found,
    form_keep,
    formed,
    forms_kept,
    scan,
    shaped,
    use_forms,
)


cdef extern from "<string.h>" nogil:
    void *memmem(const void *haystack, size_t haystacklen, const void *needle, size_t needlelen)

from ribd.checks import MAX_TIME, canonical_address
from ribd.events import UpdateTime
from ribd.rawattrs import UpdateError
from ribd.rawlines import MAX_BODY_HEX as _MAX_BODY_HEX


cdef enum:
    MAX_PEERS = 4096  # peer texts remembered (one per router)
    PEER_CACHE = 1024  # peer texts compared in place (peer_of), two a set
    PEER_TEXT = 48  # octets of one (an IPv6 address's text is at most 45)

cdef Py_ssize_t MAX_BODY_HEX = _MAX_BODY_HEX  # the reference's bound on the body's hex digits
cdef double _max_time = MAX_TIME
cdef bint _shaped_on = True  # ``use_shape`` (tests compare both ways)
cdef int _i


cdef bytes line_update(
    const unsigned char *p, Py_ssize_t n, Py_ssize_t *peer_at, Py_ssize_t *peer_stop, double *stamp, bint *timed
):
    """The body octets of a received UPDATE's packets line of the kind this module
    takes (the line's ``n`` octets at ``p``: a bytes object's, or where a read
    left them in the feed's buffer), the peer text's place in the line and its
    time (``timed``: a number in range); None for any other line.
    ``RawLineScanner.events``' reading, shared with ``ribd._loadline`` (cimport).
    Nothing here keeps ``p``: a form copies what it keeps."""
    cdef Py_ssize_t at, stop
    cdef Found F
    # A form of an earlier line first (``ribd/_rawform.pxi``), then ExaBGP's
    # own shape (a line it reads becomes a form); else the whole walk, for lines
    # that are not packets lines at all (ribd.rawlines.RAW_MARK absent: the
    # JSON API's lines) known in one memmem.
    if _shaped_on and formed(p, n, &F):
        pass
    elif _shaped_on and shaped(p, n, &F):
        form_keep(p, n, &F)
    elif memmem(p, n, b'"category"', 10) == NULL or not scan(p, n, &F):
        return None
    at, stop = F.body.at, F.body.stop
    if stop - at > MAX_BODY_HEX:
        return None
    if stop - at >= 2 and p[at] == 48 and p[at + 1] == 120:  # "0x"
        at += 2
    body = unhex(p, at, stop)
    if body is None:
        return None
    peer_at[0], peer_stop[0] = F.peer.at, F.peer.stop
    timed[0] = False
    if F.time.kind == INTEGER or F.time.kind == FLOAT:
        stamp[0] = number_value(p, F.time.at, F.time.stop)
        timed[0] = 0.0 <= stamp[0] <= _max_time
    return body


def use_shape(bint on):
    """Whether ``line_update`` tries ExaBGP's own shape first (tests turn it off
    to compare; returns the previous setting)."""
    global _shaped_on
    was, _shaped_on = _shaped_on, on
    return was


def forms(on=None):
    """How many forms ``line_update`` keeps; ``on`` (True / False) turns them
    on or off first (off forgets them; tests compare both ways)."""
    if on is not None:
        use_forms(on)
    return forms_kept()


def form_fields(bytes line, bint keep=False):
    """The tracked values (as ``scan_fields``) a form kept reads in ``line``,
    or None where none takes it; ``keep``: first, the form of ``line`` kept
    when ``shaped`` reads it (tests)."""
    cdef Found F
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(line)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(line)
    if keep and shaped(p, n, &F):
        form_keep(p, n, &F)
    if not formed(p, n, &F):
        return None
    return _fields(&F)


def scan_fields(bytes line, bint in_shape):
    """The tracked values (kind, at, stop) in ``Found``'s order that
    ``_rawjson.shaped`` (``in_shape``) or ``_rawjson.scan`` finds in ``line``, or
    None where it refuses it (tests)."""
    cdef Found F
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(line)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(line)
    if not (shaped(p, n, &F) if in_shape else scan(p, n, &F)):
        return None
    return _fields(&F)


cdef tuple _fields(Found *F):
    values = (F.time, F.neighbor, F.address, F.message, F.direction, F.peer, F.category, F.body)
    # (an object's place is not kept: only its kind is read)
    return tuple(
        None if v["kind"] == ABSENT else (OBJECT,) if v["kind"] == OBJECT else (v["kind"], v["at"], v["stop"])
        for v in values
    )


cdef struct _Known:
    Py_ssize_t size  # -1: empty
    PyObject *peer  # a reference held (None: not an address)
    char text[PEER_TEXT]


cdef _Known _known[PEER_CACHE]  # peer texts seen, any connection's, two a set (``_peer_set``)
cdef unsigned long long _known_hits = 0, _known_misses = 0
for _i in range(PEER_CACHE):
    _known[_i].size = -1
    _known[_i].peer = NULL


cdef inline Py_ssize_t _peer_set(const char *text, Py_ssize_t size) noexcept nogil:
    """The cache set (two slots: ``2 * set`` and the next) of a peer text: its
    last 8 octets (fewer: zero-padded) and its length, mixed (murmur's finalizer)."""
    cdef unsigned long long w = 0
    if size >= 8:
        memcpy(&w, text + size - 8, 8)
    else:
        memcpy(&w, text, size)
    w ^= <unsigned long long>size << 1
    w = (w ^ (w >> 33)) * 0xFF51AFD7ED558CCDULL
    w = (w ^ (w >> 33)) * 0xC4CEB9FE1A85EC53ULL
    return <Py_ssize_t>((w ^ (w >> 33)) & (PEER_CACHE // 2 - 1))


cdef inline bint _peer_is(_Known *slot, const char *text, Py_ssize_t size) noexcept nogil:
    return slot.size == size and memcmp(slot.text, text, size) == 0


cdef object peer_of(dict peers, const unsigned char *line, Py_ssize_t at, Py_ssize_t stop):
    """The canonical address of the peer text ``line[at:stop]`` (None: not one),
    remembered in ``peers`` (octets -> address, at most MAX_PEERS). The texts
    met are kept in a two-way set-associative cache compared where they lie
    first: the dict's way made a bytes key and hashed it per line. (It was a
    ring of the last 8 texts: with 16 routers loading together, round-robin,
    every line missed it, ~790 instructions a line, 2% of that feed; stop 38.)
    A text's set taken by two other texts is a miss, never a wrong answer (the
    text is compared in full); the newer text of a set is its first slot.
    ``canonical_address`` is a function of the text alone, so what any
    connection found is good for all."""
    global _known_hits, _known_misses
    cdef Py_ssize_t size = stop - at
    cdef const char *text = <const char *>line + at
    cdef _Known *first = NULL
    cdef _Known moved
    if size <= PEER_TEXT:
        first = &_known[2 * _peer_set(text, size)]
        if _peer_is(first, text, size):
            _known_hits += 1
            return <object>first.peer
        if _peer_is(first + 1, text, size):
            _known_hits += 1
            return <object>first[1].peer
    _known_misses += 1
    key = PyBytes_FromStringAndSize(text, size)
    peer = peers.get(key, False)
    if peer is False:
        peer = canonical_address(key.decode("ascii"))
        if len(peers) >= MAX_PEERS:
            peers.clear()
        peers[key] = peer
    if first != NULL:
        # The set's older text goes (its reference dropped last), the newer
        # one moves to the second slot, this text takes the first.
        moved = first[1]
        first[1] = first[0]
        Py_INCREF(peer)
        first.peer = <PyObject *>peer
        memcpy(first.text, text, size)
        first.size = size
        Py_XDECREF(moved.peer)
    return peer


def peer_text(bytes text, dict peers=None):
    """``peer_of`` of a whole peer text (tests), in ``peers`` (default: a new dict)."""
    return peer_of({} if peers is None else peers, <const unsigned char *>PyBytes_AS_STRING(text), 0, len(text))


def peer_cache_counts(bint clear=False):
    """(hits, misses) of ``peer_of``'s cache; ``clear``: every slot emptied and
    the counts zeroed first (tests)."""
    global _known_hits, _known_misses
    cdef int k
    cdef PyObject *old
    if clear:
        for k in range(PEER_CACHE):
            old = _known[k].peer
            _known[k].peer = NULL
            _known[k].size = -1
            Py_XDECREF(old)
        _known_hits = _known_misses = 0
    return _known_hits, _known_misses


cdef object events_of(decoder, peer, bytes body, caps, bint timed, double stamp):
    """The events of a received UPDATE's ``body`` as ``RawLineScanner.events``
    makes them: the decoder's, after the line's ``UpdateTime`` when ``timed``;
    None when the decoder refuses it (the reference then says why). Shared
    with ``ribd._loadline`` (cimport), whose lines it does not fuse."""
    try:
        events = decoder.decode(peer, body, caps)
    except UpdateError:
        return None
    if timed:
        events.insert(0, UpdateTime(peer, stamp))
    return events


cdef class RawLineScanner:
    """The fast path of ``ExabgpParser`` for received UPDATE lines.

    ``raw`` is the parser's ``ribd.rawlines.RawMessages``: its session table
    and decoder are read at every line, so a decoder swapped in (as the tests
    do) or a session forgotten is seen at once.
    """

    cdef object _raw
    cdef dict _peers  # peer text as octets -> canonical address (None: not one)

    def __init__(self, raw):
        self._raw = raw
        self._peers = {}

    def events(self, bytes line):
        """The events of ``line``, as the reference path makes them; None when the
        line is not one this path takes (the caller then runs the reference)."""
        cdef Py_ssize_t at, stop
        cdef double stamp
        cdef bint timed
        cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(line)
        body = line_update(p, PyBytes_GET_SIZE(line), &at, &stop, &stamp, &timed)
        if body is None:
            return None
        peer = peer_of(self._peers, p, at, stop)
        if peer is None:
            return None
        raw = self._raw
        caps = (<dict>raw._caps).get(peer)
        if caps is None:
            return None
        return events_of(raw.decoder, peer, body, caps, timed, stamp)
