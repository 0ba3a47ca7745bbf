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
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memchr


cdef extern from "<string.h>" nogil:
    void *memmem(const void *haystack, size_t haystacklen, const void *needle, size_t needlelen)

from ribd.checks import MAX_TIME, canonical_address
from ribd.events import UpdateTime
from ribd.rawattrs import UpdateError
from ribd.rawlines import MAX_BODY_HEX as _MAX_BODY_HEX


cdef extern from "Python.h":
    double PyOS_string_to_double(const char *s, char **endptr, object overflow_exception) except? -1.0


cdef enum:
    MAX_NEST = 16  # containers deep; ExaBGP's packets lines have 3 (4 with "negotiated")
    MAX_DIGITS = 17  # of a number; more, and orjson's rounding or range might differ
    MAX_PEERS = 4096  # peer texts remembered (one per router)
    # Where a value sits: the objects whose keys we read, and everything else.
    TOP = 0
    NEIGHBOR = 1
    ADDRESS = 2
    MESSAGE = 3
    OTHER = 4
    # What a tracked value was.
    ABSENT = 0
    OBJECT = 1
    STRING = 2
    INTEGER = 3
    FLOAT = 4
    LITERAL = 5
    ARRAY = 6

cdef Py_ssize_t MAX_BODY_HEX = _MAX_BODY_HEX  # the reference's bound on the body's hex digits
cdef double _max_time = MAX_TIME


cdef struct Value:
    int kind
    Py_ssize_t at  # strings: the first octet inside the quotes; numbers: the first octet
    Py_ssize_t stop  # one past the last octet (the closing quote's index for strings)


cdef struct Found:
    Value time
    Value neighbor
    Value address
    Value message
    Value direction
    Value peer
    Value category
    Value body


cdef signed char _hex[256]
cdef unsigned char _plain[256]  # 1: an octet a string may hold here (printable ASCII, no " or \\)
cdef int _i
for _i in range(256):
    _hex[_i] = -1
    _plain[_i] = 32 <= _i <= 126 and _i != 34 and _i != 92
for _i in range(10):
    _hex[ord("0") + _i] = _i
for _i in range(6):
    _hex[ord("a") + _i] = 10 + _i
    _hex[ord("A") + _i] = 10 + _i


cdef inline Py_ssize_t _ws(const unsigned char *p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    while i < n and (p[i] == 32 or p[i] == 10 or p[i] == 13 or p[i] == 9):
        i += 1
    return i


cdef inline Py_ssize_t _string(const unsigned char *p, Py_ssize_t i, Py_ssize_t n, bint hex_text) noexcept nogil:
    """``p[i]`` is a quote: the index of the closing one, or -1 (an escape, a
    control octet, anything not printable ASCII, or no end). ``hex_text``: only
    the closing quote is looked for; the caller reads every octet as a hex
    digit, which refuses all of those (a quote after a backslash included)."""
    cdef const unsigned char *q
    i += 1
    if hex_text:
        q = <const unsigned char *>memchr(p + i, 34, n - i)
        return -1 if q == NULL else q - p
    while _plain[p[i]]:  # a bytes object ends in a NUL, which stops it
        i += 1
    return i if i < n and p[i] == 34 else -1


cdef inline Py_ssize_t _number(const unsigned char *p, Py_ssize_t i, Py_ssize_t n, int *kind) noexcept nogil:
    """A JSON number without exponent and of at most MAX_DIGITS digits: the index
    after it, or -1. ``kind``: INTEGER or FLOAT."""
    cdef Py_ssize_t digits = 0
    kind[0] = INTEGER
    if i < n and p[i] == 45:  # '-'
        i += 1
    if i >= n or p[i] < 48 or p[i] > 57:
        return -1
    if p[i] == 48:  # a leading zero stands alone
        i += 1
        digits = 1
    else:
        while i < n and 48 <= p[i] <= 57:
            i += 1
            digits += 1
    if i < n and p[i] == 46:  # '.'
        kind[0] = FLOAT
        i += 1
        if i >= n or p[i] < 48 or p[i] > 57:
            return -1
        while i < n and 48 <= p[i] <= 57:
            i += 1
            digits += 1
    if digits > MAX_DIGITS or (i < n and (p[i] == 101 or p[i] == 69)):  # e, E
        return -1
    return i


cdef inline bint _is(const unsigned char *p, Py_ssize_t at, Py_ssize_t stop, const char *word, Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t k
    if stop - at != size:
        return False
    for k in range(size):
        if p[at + k] != <unsigned char>word[k]:
            return False
    return True


cdef Value *_slot(const unsigned char *p, Py_ssize_t at, Py_ssize_t stop, int where, Found *F) noexcept nogil:
    """The tracked value a key names in an object at ``where``, or NULL."""
    if where == TOP:
        if _is(p, at, stop, "time", 4):
            return &F.time
        if _is(p, at, stop, "neighbor", 8):
            return &F.neighbor
    elif where == NEIGHBOR:
        if _is(p, at, stop, "address", 7):
            return &F.address
        if _is(p, at, stop, "message", 7):
            return &F.message
        if _is(p, at, stop, "direction", 9):
            return &F.direction
    elif where == ADDRESS:
        if _is(p, at, stop, "peer", 4):
            return &F.peer
    elif where == MESSAGE:
        if _is(p, at, stop, "category", 8):
            return &F.category
        if _is(p, at, stop, "body", 4):
            return &F.body
    return NULL


cdef Py_ssize_t _value(const unsigned char *p, Py_ssize_t i, Py_ssize_t n, int where, int depth, Value *out, Found *F) noexcept nogil:
    """One JSON value at ``p[i]`` (no white space before it): the index after it,
    or -1 for anything not recognised. ``where``: the object it is, if one;
    ``out`` is ``&F.body`` for the body (a string read as hex)."""
    cdef unsigned char c
    cdef int kind = LITERAL
    cdef Py_ssize_t start = i
    if i >= n:
        return -1
    c = p[i]
    if c == 34:  # '"'
        i = _string(p, i, n, out == &F.body)
        if i < 0:
            return -1
        out.kind, out.at, out.stop = STRING, start + 1, i
        return i + 1
    if c == 123:  # '{'
        i = _object(p, i, n, where, depth + 1, F)
        kind = OBJECT
    elif c == 91:  # '['
        i = _array(p, i, n, depth + 1, F)
        kind = ARRAY
    elif c == 45 or 48 <= c <= 57:
        i = _number(p, i, n, &kind)
    elif c == 116 and _is(p, i, min(i + 4, n), "true", 4):
        i += 4
    elif c == 102 and _is(p, i, min(i + 5, n), "false", 5):
        i += 5
    elif c == 110 and _is(p, i, min(i + 4, n), "null", 4):
        i += 4
    else:
        return -1
    if i < 0:
        return -1
    out.kind, out.at, out.stop = kind, start, i
    return i


cdef Py_ssize_t _object(const unsigned char *p, Py_ssize_t i, Py_ssize_t n, int where, int depth, Found *F) noexcept nogil:
    cdef Py_ssize_t key_at, key_stop
    cdef Value scratch
    cdef Value *slot
    cdef int inner
    if depth > MAX_NEST:
        return -1
    i = _ws(p, i + 1, n)
    if i < n and p[i] == 125:  # '}'
        return i + 1
    while True:
        if i >= n or p[i] != 34:
            return -1
        key_stop = _string(p, i, n, False)
        if key_stop < 0:
            return -1
        key_at = i + 1
        i = _ws(p, key_stop + 1, n)
        if i >= n or p[i] != 58:  # ':'
            return -1
        i = _ws(p, i + 1, n)
        slot = _slot(p, key_at, key_stop, where, F) if where != OTHER else NULL
        inner = OTHER
        if slot == NULL:
            slot = &scratch
        else:
            if slot.kind != ABSENT:
                return -1  # a key we read, twice: orjson keeps the last; leave it to the reference
            if slot == &F.neighbor:
                inner = NEIGHBOR
            elif slot == &F.address:
                inner = ADDRESS
            elif slot == &F.message:
                inner = MESSAGE
        i = _value(p, i, n, inner, depth, slot, F)
        if i < 0:
            return -1
        i = _ws(p, i, n)
        if i >= n:
            return -1
        if p[i] == 44:  # ','
            i = _ws(p, i + 1, n)
            continue
        if p[i] == 125:
            return i + 1
        return -1


cdef Py_ssize_t _array(const unsigned char *p, Py_ssize_t i, Py_ssize_t n, int depth, Found *F) noexcept nogil:
    cdef Value scratch
    if depth > MAX_NEST:
        return -1
    i = _ws(p, i + 1, n)
    if i < n and p[i] == 93:  # ']'
        return i + 1
    while True:
        i = _value(p, i, n, OTHER, depth, &scratch, F)
        if i < 0:
            return -1
        i = _ws(p, i, n)
        if i >= n:
            return -1
        if p[i] == 44:
            i = _ws(p, i + 1, n)
            continue
        if p[i] == 93:
            return i + 1
        return -1


cdef bint _scan(const unsigned char *p, Py_ssize_t n, Found *F) noexcept nogil:
    """Whether the line is one JSON object of the narrow kind this module reads,
    its values in ``F``."""
    cdef Py_ssize_t i
    F.time.kind = F.neighbor.kind = F.address.kind = F.message.kind = ABSENT
    F.direction.kind = F.peer.kind = F.category.kind = F.body.kind = ABSENT
    i = _ws(p, 0, n)
    if i >= n or p[i] != 123:
        return False
    i = _object(p, i, n, TOP, 1, F)
    if i < 0 or _ws(p, i, n) != n:
        return False
    return (
        F.neighbor.kind == OBJECT
        and F.address.kind == OBJECT
        and F.message.kind == OBJECT
        and F.peer.kind == STRING
        and F.body.kind == STRING
        and F.category.kind == INTEGER
        and _is(p, F.category.at, F.category.stop, "2", 1)
        and F.direction.kind == STRING
        and _is(p, F.direction.at, F.direction.stop, "receive", 7)
    )


cdef bytes _unhex(const unsigned char *p, Py_ssize_t at, Py_ssize_t stop):
    """The octets of hex digits ``p[at:stop]``, or None (odd count, not hex)."""
    cdef Py_ssize_t size = stop - at, k
    cdef bytes out
    cdef unsigned char *o
    cdef int hi, lo
    if size & 1:
        return None
    out = PyBytes_FromStringAndSize(NULL, size >> 1)
    o = <unsigned char *>PyBytes_AS_STRING(out)
    for k in range(size >> 1):
        hi = _hex[p[at + 2 * k]]
        lo = _hex[p[at + 2 * k + 1]]
        if hi < 0 or lo < 0:
            return None
        o[k] = <unsigned char>((hi << 4) | lo)
    return out


cdef bytes line_update(bytes line, Py_ssize_t *peer_at, Py_ssize_t *peer_stop, double *stamp, bint *timed):
    """The body octets of a received UPDATE's packets line of the kind this module
    takes, the peer text's place in the line and its time (``timed``: a number in
    range); None for any other line. ``RawLineScanner.events``' reading, shared
    with ``ribd._loadline`` (cimport)."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(line)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(line), at, stop
    cdef Found F
    # Not a packets line at all (ribd.rawlines.RAW_MARK absent; the JSON API's
    # lines): known in one memmem, where the scan would walk the whole line.
    if memmem(p, n, b'"category"', 10) == NULL or not _scan(p, n, &F):
        return None
    at, stop = F.body.at, F.body.stop
    if stop - at > MAX_BODY_HEX:
        return None
    if stop - at >= 2 and p[at] == 48 and p[at + 1] == 120:  # "0x"
        at += 2
    body = _unhex(p, at, stop)
    if body is None:
        return None
    peer_at[0], peer_stop[0] = F.peer.at, F.peer.stop
    timed[0] = False
    if F.time.kind == INTEGER or F.time.kind == FLOAT:
        stamp[0] = _number_value(p, F.time.at, F.time.stop, F.time.kind)
        timed[0] = 0.0 <= stamp[0] <= _max_time
    return body


cdef object peer_of(dict peers, bytes line, Py_ssize_t at, Py_ssize_t stop):
    """The canonical address of the peer text ``line[at:stop]`` (None: not one),
    remembered in ``peers`` (octets -> address, at most MAX_PEERS)."""
    key = PyBytes_FromStringAndSize(PyBytes_AS_STRING(line) + at, stop - at)
    peer = peers.get(key, False)
    if peer is False:
        peer = canonical_address(key.decode("ascii"))
        if len(peers) >= MAX_PEERS:
            peers.clear()
        peers[key] = peer
    return peer


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
        body = line_update(line, &at, &stop, &stamp, &timed)
        if body is None:
            return None
        peer = peer_of(self._peers, line, at, stop)
        if peer is None:
            return None
        raw = self._raw
        caps = (<dict>raw._caps).get(peer)
        if caps is None:
            return None
        return events_of(raw.decoder, peer, body, caps, timed, stamp)


cdef double _number_value(const unsigned char *p, Py_ssize_t at, Py_ssize_t stop, int kind) except? -1.0:
    """The value orjson gives a number token, as ``float()`` of it: an integer's
    exactly (at most 17 digits), a fraction correctly rounded."""
    cdef long long whole = 0
    cdef bint negative = p[at] == 45
    cdef Py_ssize_t k
    if kind == INTEGER:
        for k in range(at + negative, stop):
            whole = whole * 10 + (p[k] - 48)
        return <double>(-whole if negative else whole)
    token = PyBytes_FromStringAndSize(<const char *>p + at, stop - at)
    return PyOS_string_to_double(PyBytes_AS_STRING(token), NULL, None)
