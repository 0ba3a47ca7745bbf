# Included by ribd/_rawjson.pyx (one module: it reads with _number and _string):
# a packets line read against the form of a line ``shaped`` read before.
#
# Why: ``shaped`` reads every key and value of a line with the walk's functions,
# ~2,600 instructions a line (9-11% of the feed loop by callgrind, synthetic two
# routers and real router 1; stop 37, decode7), while consecutive lines of a
# table load differ only in their values (time, counter, peer, header, body).
# A form is such a line cut into its fixed octets (keys, punctuation, white
# space, literals, the direction's and category's values, the values of
# "exabgp", "host" and "type", and a header's marker) and its holes (every
# other number or string value, the rest of a header after its marker); a line
# is read against it by comparing the fixed octets where they lie and reading
# each hole with the walk's own ``_number`` / ``_string``.
#
# Why a line a form takes is one ``shaped`` takes to the same values: the form
# was cut from a line ``shaped`` took, so its fixed octets are keys in
# ExaBGP's order, punctuation and white space that ``shaped`` accepted, and
# the values ``_wanted`` checks. A line with the same fixed octets where they
# lie differs from it only in number tokens put for number tokens and plain
# strings for plain strings (the body: any octets to its closing quote, as
# ``_string`` reads hex text; a header's rest: plain octets to its closing
# quote after the same plain marker), which ``shaped`` reads alike (an
# untracked value is any JSON value; the tracked ones keep their kind), nothing
# nested deeper.
# A form never refuses for ``shaped``: a line no form takes is read by
# ``shaped`` (and then the walk) as before, and becomes a form when taken.
# tests/ribd/test_rawform.py compares the two on random and hostile lines.

# (memcmp, memcpy: cimported by _rawjson.pyx)


cdef enum:
    FORMS = 4  # forms kept (the last one that took a line is tried first)
    FORM_HOLES = 32  # an ExaBGP packets line has 14
    FORM_FIXED = 1024  # fixed octets of a form (~200 in ExaBGP's lines)
    HOLE_NUMBER = 0
    HOLE_STRING = 1
    HOLE_BODY = 2  # any octets to the closing quote (the body's hex text)
    HOLE_REST = 3  # a plain string's octets after its fixed start, to its closing quote
    MARKER = 34  # a header's fixed start: "0x" and the marker's 32 hex digits
    TRACK_NONE = 0
    TRACK_TIME = 1
    TRACK_PEER = 2
    TRACK_BODY = 3


cdef struct Hole:
    Py_ssize_t before  # fixed octets before the hole
    unsigned char kind
    unsigned char track


cdef struct Mark:  # a fixed value (direction, category): its fixed run and place in it
    int run  # the hole it precedes (``holes``: the tail)
    Py_ssize_t at
    Py_ssize_t size


cdef struct Form:
    int holes  # 0: an empty slot
    Hole hole[FORM_HOLES]
    Py_ssize_t tail  # fixed octets after the last hole, to the line's end
    Mark direction
    Mark category
    unsigned char fixed[FORM_FIXED]


cdef Form _forms[FORMS]
cdef int _form_last = 0  # tried first
cdef int _form_next = 0  # the slot the next form takes
cdef bint _forms_on = True
for _i in range(FORMS):
    _forms[_i].holes = 0


cdef inline bint _same(const unsigned char *a, const unsigned char *b, Py_ssize_t size) noexcept nogil:
    """``memcmp(a, b, size) == 0`` for the short runs of a form (most under 32
    octets: a library call a run cost more), a word at a time, the last word
    overlapping."""
    cdef unsigned long long x, y
    cdef unsigned int u, v
    cdef Py_ssize_t k = 0
    if size >= 8:
        while k + 8 < size:
            memcpy(&x, a + k, 8)
            memcpy(&y, b + k, 8)
            if x != y:
                return False
            k += 8
        memcpy(&x, a + size - 8, 8)
        memcpy(&y, b + size - 8, 8)
        return x == y
    if size >= 4:
        memcpy(&u, a, 4)
        memcpy(&v, b, 4)
        if u != v:
            return False
        memcpy(&u, a + size - 4, 4)
        memcpy(&v, b + size - 4, 4)
        return u == v
    while k < size:
        if a[k] != b[k]:
            return False
        k += 1
    return True


cdef bint _form_read(Form *f, const unsigned char *p, Py_ssize_t n, Found *F) noexcept nogil:
    """Whether form ``f`` takes the line, its values in ``F`` as ``shaped``'s."""
    cdef Py_ssize_t i = 0, j, size
    cdef Py_ssize_t starts[FORM_HOLES + 1]
    cdef const unsigned char *fixed = f.fixed
    cdef int h, kind
    cdef Hole *hole
    for h in range(f.holes):
        hole = &f.hole[h]
        size = hole.before
        if i + size > n or not _same(p + i, fixed, size):
            return False
        starts[h] = i
        i += size
        fixed += size
        if hole.kind == HOLE_NUMBER:
            j = _number(p, i, n, &kind)
            if j < 0:
                return False
            if hole.track == TRACK_TIME:
                F.time.kind, F.time.at, F.time.stop = kind, i, j
        elif hole.kind == HOLE_REST:  # (p[i - 1] is the fixed start's last octet)
            j = _string(p, i - 1, n, False)
            if j < 0:
                return False
            j += 1
        else:
            if i >= n or p[i] != 34:
                return False
            j = _string(p, i, n, hole.kind == HOLE_BODY)
            if j < 0:
                return False
            if hole.track == TRACK_PEER:
                F.peer.kind, F.peer.at, F.peer.stop = STRING, i + 1, j
            elif hole.track == TRACK_BODY:
                F.body.kind, F.body.at, F.body.stop = STRING, i + 1, j
            j += 1
        i = j
    if i + f.tail != n or not _same(p + i, fixed, f.tail):
        return False
    starts[f.holes] = i
    F.neighbor.kind = F.address.kind = F.message.kind = OBJECT
    F.direction.kind = STRING
    F.direction.at = starts[f.direction.run] + f.direction.at
    F.direction.stop = F.direction.at + f.direction.size
    F.category.kind = INTEGER
    F.category.at = starts[f.category.run] + f.category.at
    F.category.stop = F.category.at + f.category.size
    return True


cdef bint formed(const unsigned char *p, Py_ssize_t n, Found *F) noexcept nogil:
    """Whether a form kept takes the line (its values in ``F``): the last one
    that took a line first."""
    global _form_last
    cdef int k
    if not _forms_on:
        return False
    if _forms[_form_last].holes and _form_read(&_forms[_form_last], p, n, F):
        return True
    for k in range(FORMS):
        if k != _form_last and _forms[k].holes and _form_read(&_forms[k], p, n, F):
            _form_last = k
            return True
    return False


cdef inline bint _fixed_value(const unsigned char *key, Py_ssize_t size) noexcept nogil:
    """The keys whose values a form keeps as fixed octets: ExaBGP's version, the
    host and the message type, the same in every line of a feed (another value:
    another form)."""
    return _is(key, 0, size, "exabgp", 6) or _is(key, 0, size, "host", 4) or _is(key, 0, size, "type", 4)


cdef inline bint _marker(const unsigned char *text, Py_ssize_t size) noexcept nogil:
    """Whether a header's text starts with "0x" and the marker's 32 hex digits
    (all "F" or all "f"): kept as fixed octets, the rest of the header a hole."""
    cdef Py_ssize_t k
    if size < MARKER or text[0] != 48 or (text[1] != 120 and text[1] != 88):
        return False
    for k in range(2, MARKER):
        if text[k] != text[2] or (text[2] != 70 and text[2] != 102):
            return False
    return True


cdef inline bint _fixed_run(Form *f, Py_ssize_t *used, const unsigned char *p, Py_ssize_t at, Py_ssize_t stop) noexcept nogil:
    """The octets ``p[at:stop]`` added to the form's fixed octets (False: no room)."""
    if used[0] + stop - at > FORM_FIXED:
        return False
    memcpy(f.fixed + used[0], p + at, stop - at)
    used[0] += stop - at
    return True


cdef bint _form_cut(Form *f, const unsigned char *p, Py_ssize_t n, Found *F) noexcept nogil:
    """Cut the line ``shaped`` read (its values in ``F``) into form ``f``;
    False (``f`` left empty) where it does not fit or is not of the kind a form
    keeps (a time that is not a number)."""
    cdef Py_ssize_t i = 0, j, k, fixed_at = 0, used = 0, run_start = 0, key_at = 0, key_size = 0
    cdef int kind, holes = 0
    cdef unsigned char track, hole_kind
    f.holes = 0
    if F.time.kind != INTEGER and F.time.kind != FLOAT:
        return False
    f.direction.run = f.category.run = -1
    while i < n:
        if p[i] == 34:  # a string: a key (then ':'), the body, or a value
            if i + 1 == F.body.at:
                j = F.body.stop + 1
                hole_kind, track = HOLE_BODY, TRACK_BODY
            else:
                j = _string(p, i, n, False) + 1
                if j <= 0:
                    return False
                k = _ws(p, j, n)
                if k < n and p[k] == 58:  # a key: fixed
                    key_at, key_size = i + 1, j - i - 2
                    i = j
                    continue
                if i + 1 == F.direction.at:  # kept as it is (``_wanted`` read it)
                    f.direction.run, f.direction.at, f.direction.size = holes, used + i - fixed_at - run_start, j - i - 2
                    f.direction.at += 1
                    i = j
                    continue
                if i + 1 == F.peer.at:
                    hole_kind, track = HOLE_STRING, TRACK_PEER
                elif _fixed_value(p + key_at, key_size):  # the same in every line of a feed
                    i = j
                    continue
                elif _is(p + key_at, 0, key_size, "header", 6) and _marker(p + i + 1, j - i - 2):
                    i += 1 + MARKER  # (the hole: the rest after the marker)
                    hole_kind, track = HOLE_REST, TRACK_NONE
                else:
                    hole_kind, track = HOLE_STRING, TRACK_NONE
        elif p[i] == 45 or 48 <= p[i] <= 57:  # a number
            j = _number(p, i, n, &kind)
            if j < 0:
                return False
            if i == F.category.at:
                f.category.run, f.category.at, f.category.size = holes, used + i - fixed_at - run_start, j - i
                i = j
                continue
            hole_kind = HOLE_NUMBER
            track = TRACK_TIME if i == F.time.at else TRACK_NONE
        else:
            i += 1
            continue
        if hole_kind == HOLE_REST:  # (its end: the string's closing quote)
            j = _string(p, i - 1, n, False) + 1
            if j <= 0:
                return False
        # a hole at p[i:j]: the fixed octets since the last hole before it
        if holes == FORM_HOLES or not _fixed_run(f, &used, p, fixed_at, i):
            return False
        f.hole[holes].before = used - run_start
        f.hole[holes].kind = hole_kind
        f.hole[holes].track = track
        holes += 1
        run_start = used
        fixed_at = i = j
    if not _fixed_run(f, &used, p, fixed_at, n) or f.direction.run < 0 or f.category.run < 0:
        return False
    f.tail = used - run_start
    f.holes = holes
    return holes > 0
