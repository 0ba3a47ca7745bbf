# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The JSON walk of a ``packets`` line (``ribd._rawline``'s scan), in C.

``scan`` walks any JSON object of the narrow kind the scan takes (strings of
printable ASCII without escapes, numbers without exponents and of at most
17 digits, at most ``MAX_NEST`` levels, each key it reads present once in its
object) and finds the values a received UPDATE's line is read for: the time,
the peer, the direction, the category and the body. ``shaped`` reads the
same values from a line in the key order ExaBGP 5 writes, and returns False
for any other (the caller then runs ``scan``); what it takes, ``scan`` takes
to the same values (tests/ribd/test_rawline_shape.py compares them).
``formed`` reads a line against the form of a line ``shaped`` read before
(``_rawform.pxi`` says why that is ``shaped``'s reading; ``form_keep`` keeps a
line's form).
"""

from libc.string cimport memchr, memcmp, memcpy


cdef unsigned char _plain[256]  # 1: an octet a string may hold here (printable ASCII, no " or \\)
cdef unsigned char _blank[256]  # 1: JSON's white space
cdef int _i
for _i in range(256):
    _plain[_i] = 32 <= _i <= 126 and _i != 34 and _i != 92
    _blank[_i] = _i == 32 or _i == 10 or _i == 13 or _i == 9


cdef inline Py_ssize_t _ws(const unsigned char *p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """The index of the first octet from ``p[i]`` (i <= n) that is not white space:
    a bytes object ends in a NUL, which is not, so ``n`` at most."""
    while _blank[p[i]]:
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


cdef bint scan(const unsigned char *p, Py_ssize_t n, Found *F) noexcept nogil:
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
    return _wanted(p, F)


cdef inline bint _wanted(const unsigned char *p, Found *F) noexcept nogil:
    """The values found are a received UPDATE's."""
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


# ExaBGP's shape. ExaBGP 5 writes a packets line's keys in one order
# (reactor/api/response/json.py: ``_header``, ``_neighbor``, ``packets``):
#   {"exabgp", "time", "host", "pid", "ppid", "counter", "type", "neighbor":
#    {"address": {"local", "peer"}, "asn", ["router-id",] "direction",
#     "message": {"category", "header", "body"}}}
# ``shaped`` reads a line in that order, each key compared where it must be,
# each value read by the same functions as ``_object`` reads it (untracked
# values with ``_value``, so anything JSON the scan takes is taken), white
# space wherever JSON allows it. A line it reads to its end is one ``scan``
# reads the same way, to the same values: the same tokens, every key once.
# Anything else (another order, a key more or less, "negotiated") returns
# False and the line goes through ``scan``, which decides alone. It skips the
# generic walk's work per key (a key's octets checked one by one, then
# compared with each name its object tracks) and the memmem for the mark.


cdef inline Py_ssize_t _key(const unsigned char *p, Py_ssize_t i, Py_ssize_t n, const char *word, Py_ssize_t size) noexcept nogil:
    """``"word"`` then ``:`` at ``p[i]`` (white space around the colon): the
    index of the value after it, or -1."""
    if i + size + 2 > n or p[i] != 34 or p[i + size + 1] != 34:
        return -1
    if memcmp(p + i + 1, word, size) != 0:
        return -1
    i = _ws(p, i + size + 2, n)
    if i >= n or p[i] != 58:
        return -1
    return _ws(p, i + 1, n)


cdef inline Py_ssize_t _then(const unsigned char *p, Py_ssize_t i, Py_ssize_t n, unsigned char c) noexcept nogil:
    """White space, ``c``, white space from ``p[i]`` (i < 0 passes through)."""
    if i < 0:
        return -1
    i = _ws(p, i, n)
    if i >= n or p[i] != c:
        return -1
    return _ws(p, i + 1, n)


cdef inline Py_ssize_t _kv(const unsigned char *p, Py_ssize_t i, Py_ssize_t n, const char *word, Py_ssize_t size, int depth, Value *out, Found *F) noexcept nogil:
    """``"word": value`` at ``p[i]`` (a value not an object whose keys are read,
    in ``out``): the index after the value, or -1 (i < 0 passes through)."""
    if i < 0:
        return -1
    i = _key(p, i, n, word, size)
    if i < 0:
        return -1
    return _value(p, i, n, OTHER, depth, out, F)


cdef bint shaped(const unsigned char *p, Py_ssize_t n, Found *F) noexcept nogil:
    """Whether the line is a received UPDATE's packets line in ExaBGP's own
    shape, its values in ``F`` as ``scan`` would find them."""
    cdef Value scratch
    cdef Py_ssize_t i, j
    F.time.kind = F.neighbor.kind = F.address.kind = F.message.kind = ABSENT
    F.direction.kind = F.peer.kind = F.category.kind = F.body.kind = ABSENT
    i = _ws(p, 0, n)
    if i >= n or p[i] != 123:
        return False
    i = _ws(p, i + 1, n)
    i = _then(p, _kv(p, i, n, "exabgp", 6, 1, &scratch, F), n, 44)
    i = _then(p, _kv(p, i, n, "time", 4, 1, &F.time, F), n, 44)
    i = _then(p, _kv(p, i, n, "host", 4, 1, &scratch, F), n, 44)
    i = _then(p, _kv(p, i, n, "pid", 3, 1, &scratch, F), n, 44)
    i = _then(p, _kv(p, i, n, "ppid", 4, 1, &scratch, F), n, 44)
    i = _then(p, _kv(p, i, n, "counter", 7, 1, &scratch, F), n, 44)
    i = _then(p, _kv(p, i, n, "type", 4, 1, &scratch, F), n, 44)
    if i < 0:
        return False
    i = _key(p, i, n, "neighbor", 8)
    i = _then(p, i, n, 123)  # {
    if i < 0:
        return False
    F.neighbor.kind = OBJECT
    i = _key(p, i, n, "address", 7)
    i = _then(p, i, n, 123)
    if i < 0:
        return False
    F.address.kind = OBJECT
    i = _then(p, _kv(p, i, n, "local", 5, 3, &scratch, F), n, 44)
    i = _then(p, _kv(p, i, n, "peer", 4, 3, &F.peer, F), n, 125)  # }
    i = _then(p, i, n, 44)
    i = _then(p, _kv(p, i, n, "asn", 3, 2, &scratch, F), n, 44)
    if i < 0:
        return False
    j = _kv(p, i, n, "router-id", 9, 2, &scratch, F)  # where ExaBGP has one
    if j >= 0:
        i = _then(p, j, n, 44)
    i = _then(p, _kv(p, i, n, "direction", 9, 2, &F.direction, F), n, 44)
    if i < 0:
        return False
    i = _key(p, i, n, "message", 7)
    i = _then(p, i, n, 123)
    if i < 0:
        return False
    F.message.kind = OBJECT
    i = _then(p, _kv(p, i, n, "category", 8, 3, &F.category, F), n, 44)
    i = _then(p, _kv(p, i, n, "header", 6, 3, &scratch, F), n, 44)
    i = _then(p, _kv(p, i, n, "body", 4, 3, &F.body, F), n, 125)  # the message's }
    i = _then(p, i, n, 125)  # the neighbor's }
    if i < 0 or i >= n or p[i] != 125:  # the line's }
        return False
    return _ws(p, i + 1, n) == n and _wanted(p, F)


include "_rawform.pxi"


cdef Form _form_scratch


cdef void form_keep(const unsigned char *p, Py_ssize_t n, Found *F) noexcept nogil:
    """The form of a line ``shaped`` read (its values in ``F``) kept, in the
    slot after the last one taken (round robin over FORMS), and tried first;
    nothing kept for a line a form does not fit."""
    global _form_last, _form_next
    if not _forms_on or not _form_cut(&_form_scratch, p, n, F):
        return
    memcpy(&_forms[_form_next], &_form_scratch, sizeof(Form))
    _form_last = _form_next
    _form_next = (_form_next + 1) % FORMS


cdef bint use_forms(bint on) noexcept:
    """Whether ``formed`` reads lines (tests compare both ways); the previous
    setting. Turning them off forgets every form."""
    global _forms_on, _form_last, _form_next
    cdef int k
    was, _forms_on = _forms_on, on
    if not on:
        for k in range(FORMS):
            _forms[k].holes = 0
        _form_last = _form_next = 0
    return was


cdef int forms_kept() noexcept:
    """How many forms are kept (tests)."""
    cdef int k, count = 0
    for k in range(FORMS):
        count += _forms[k].holes > 0
    return count
