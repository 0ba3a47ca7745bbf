# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled twin of ``FeedServer._lines``: each line of one read parsed, checked,
applied and counted, in C.

The same steps in the same order on the same objects (the parser, the RIB's
``apply_many`` with its one ``rib.lock`` per line, the connection's
``FeedCounters``, the bad-line log, the relay control), so the same events
reach the RIB, the same errors are counted and logged, the counters move
line by line as before. What goes is the bytecode around them: ~6k
instructions a line (callgrind) of a loop that runs once per UPDATE.
``ribd.feed`` uses this where it was built and keeps ``FeedServer._lines``
as the reference (tests/ribd/test_feedloop.py compares them).

``buffer_in`` is the same loop over a read's whole lines where they lie in
the feed's buffer: the fused path reads a line there, and only a line it
declines is made a bytes object for the steps above.
"""

from ribd._loadline cimport LineLoader
from ribd._counters cimport add_at
from ribd._slots cimport slots_writable_offset

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memchr, memcmp

from ribd.events import EndOfRib, ExabgpShutdown, RoutesAnnounced, RoutesWithdrawn
from ribd.feed_control import CONTROL_PREFIX
from ribd.feed_counters import FeedCounters
from ribd.lines import HEAD_BYTES
from ribd.parser import MAX_LINE_BYTES, ExabgpParser, FeedError, UnseenSession

# The fused path of a table load's lines (ribd._loadline, cimported: built with this).
from ribd._apply import apply_many as _compiled_apply_many

cdef object _announced = RoutesAnnounced
cdef object _withdrawn = RoutesWithdrawn
cdef object _end_of_rib = EndOfRib
cdef object _shutdown = ExabgpShutdown
cdef bytes _control_prefix = CONTROL_PREFIX
cdef Py_ssize_t _max_line = MAX_LINE_BYTES
cdef Py_ssize_t _head_bytes = HEAD_BYTES
cdef object _parse = ExabgpParser.parse
# ``c.lines += 1`` at the field's offset for the connection's ``FeedCounters``
# (a generic getattr and setattr a line before: ribd._loadline says why).
cdef object _feed_counters = FeedCounters
cdef Py_ssize_t _c_lines = slots_writable_offset(FeedCounters.__dict__["lines"])
cdef Py_ssize_t _c_prefixes = slots_writable_offset(FeedCounters.__dict__["prefixes_announced"])
cdef Py_ssize_t _c_updates = slots_writable_offset(FeedCounters.__dict__["updates"])


cdef struct Pending:
    # A read's counts not yet in the connection's ``FeedCounters`` (see lines_in).
    Py_ssize_t lines
    Py_ssize_t prefixes
    Py_ssize_t updates


cdef int _flush(c, Pending *pending) except -1:
    """The pending counts added to ``c`` (exactly a ``FeedCounters``), then zeroed."""
    cdef Pending got = pending[0]
    pending.lines = pending.prefixes = pending.updates = 0
    if got.lines:
        add_at(c, _c_lines, "lines", got.lines)
    if got.prefixes:
        add_at(c, _c_prefixes, "prefixes_announced", got.prefixes)
    if got.updates:
        add_at(c, _c_updates, "updates", got.updates)
    return 0


cdef inline bint _is_control_at(const unsigned char *p, Py_ssize_t size) noexcept:
    """Whether the line of ``size`` octets at ``p`` starts with CONTROL_PREFIX."""
    cdef Py_ssize_t k = PyBytes_GET_SIZE(_control_prefix)
    return size >= k and not memcmp(p, PyBytes_AS_STRING(_control_prefix), k)


cdef inline bint _is_control(line) except -1:
    """``line.startswith(CONTROL_PREFIX)``, compared in C for a bytes line."""
    if type(line) is bytes:
        return _is_control_at(<const unsigned char *>PyBytes_AS_STRING(<bytes>line), PyBytes_GET_SIZE(<bytes>line))
    return line.startswith(_control_prefix)


cdef class _Ctx:
    """The objects every line of one call uses, read once per call (``_begin``):
    what ``lines_in`` held in locals, shared with ``buffer_in``'s loop."""
    cdef object server, conn, parser, parse, fast, rib, load, apply_many, c, bad_log
    cdef LineLoader loader


cdef _Ctx _begin(server, conn):
    cdef _Ctx x = _Ctx.__new__(_Ctx)
    x.server = server
    x.conn = conn
    x.parser = parser = server.parser
    x.parse = parser.parse
    # ExabgpParser.parse's first step, inlined: a received UPDATE's packets line
    # scanned in C (None for any line it does not take: parse does the rest, from
    # the start, so each line meets the same checks in the same order).
    x.fast = parser.fast if type(parser).parse is _parse else None
    x.rib = rib = server.rib
    # A table load's common line from its bytes to the store in one call, where
    # the steps it fuses are the ones that would run (the compiled scan and
    # apply). For any other line ``load`` writes nothing and returns its events
    # as the scan makes them (not scanned again here), or None (parsed from the start).
    x.load = None
    x.loader = None  # ``load``'s, called in C when it is one
    if x.fast is not None and server.fused_load:
        if type(rib).apply_many is _compiled_apply_many and "apply_many" not in getattr(rib, "__dict__", ()):
            got = server.line_loader(parser, rib)
            if type(got) is LineLoader:
                x.loader = <LineLoader>got
            x.load = got.load
    x.apply_many = rib.apply_many
    x.c = conn.counters
    x.bad_log = server._bad_log
    return x


cdef inline bint _pending_on(c):
    # The counts of a read's fused lines (lines, prefixes announced, UPDATEs) are
    # kept in C and added to the connection's ``FeedCounters`` (exactly that
    # type; any other is written line by line as before) before any other line
    # is handled (a control line, a line not fused: whatever runs then reads
    # them as before) and when the read's lines are done, however it ends. Other
    # threads (metrics scrapes, ListRouters, stats) read these fields without
    # the feed's help, between two of its lines before too: they now see a read's
    # fused lines counted at its end, at most READ_LINES lines (one socket read)
    # later, and the counts are exact whenever a read is done. Three int objects
    # a fused line (made, stored, the old one freed) were ~400 instructions.
    return type(c) is _feed_counters and min(_c_lines, _c_prefixes, _c_updates) >= 0


def lines_in(server, conn, list lines):
    """``FeedServer._lines(server, conn, lines)``, compiled."""
    cdef _Ctx x = _begin(server, conn)
    cdef bint pending_on = _pending_on(x.c)
    cdef Pending pending
    pending.lines = pending.prefixes = pending.updates = 0
    try:
        for line in lines:
            if type(line) is bytes:
                _line_at(
                    x,
                    <const unsigned char *>PyBytes_AS_STRING(<bytes>line),
                    PyBytes_GET_SIZE(<bytes>line),
                    line,
                    pending_on,
                    &pending,
                )
            else:
                _line(x, line, pending_on, &pending, False, None)
    finally:
        if pending_on:
            _flush(x.c, &pending)


def buffer_in(server, conn, const unsigned char[::1] data, Py_ssize_t start, Py_ssize_t end, Py_ssize_t limit):
    """``lines_in`` of the lines in ``data[start:end]`` (each ended by a newline,
    the last one at ``end - 1``), where the feed's read left them; the count of
    lines handled. Empty lines are skipped; a line longer than ``limit`` is
    counted and logged where it comes (``server._too_long``), as ``ribd.lines``
    reports one.

    A line the fused path takes (nearly every line of a table load) is read
    where it lies and never becomes a bytes object: each packets line was one,
    ~500-3000 octets, so mostly past pymalloc's 512 and made and freed by
    glibc's malloc, whose free-list walks (``unlink_chunk``, ``_int_malloc``)
    and the copy were ~6% of the service's CPU while 63 routers loaded
    together through sessions (perf, stop 54). Any other line is made one
    and takes ``lines_in``'s steps, in order."""
    cdef _Ctx x = _begin(server, conn)
    cdef bint pending_on = _pending_on(x.c)
    cdef Pending pending
    cdef const unsigned char *p
    cdef const unsigned char *nl
    cdef Py_ssize_t size, at, count = 0
    if start < 0 or end > data.shape[0] or start > end:
        raise ValueError(f"buffer_in: [{start}:{end}] outside a buffer of {data.shape[0]} octets")
    if end == start:
        return 0
    p = &data[0]
    pending.lines = pending.prefixes = pending.updates = 0
    at = start
    try:
        while at < end:
            nl = <const unsigned char *>memchr(p + at, 10, end - at)
            if nl == NULL:
                raise ValueError("buffer_in: the region does not end with a newline")
            size = nl - (p + at)
            if size > limit:
                if pending_on:
                    _flush(x.c, &pending)
                head = PyBytes_FromStringAndSize(<const char *>p + at, size if size < _head_bytes else _head_bytes)
                server._too_long(x.c, [(head, size)])
            elif size:
                count += 1
                _line_at(x, p + at, size, None, pending_on, &pending)
            at += size + 1
    finally:
        if pending_on:
            _flush(x.c, &pending)
    return count


cdef int _line_at(
    _Ctx x, const unsigned char *p, Py_ssize_t size, line, bint pending_on, Pending *pending
) except -1:
    """One line of ``size`` octets at ``p``: ``line`` is it as a bytes object, or
    None where it lies in the feed's buffer (made only if the fused path
    declines it). The fused path first, with the read's counts kept in C, where
    it is the one ``lines_in``'s steps would take; else those steps (``_line``)."""
    cdef Py_ssize_t counted = 0
    if x.loader is None or not pending_on or size > _max_line or _is_control_at(p, size):
        if line is None:
            line = PyBytes_FromStringAndSize(<const char *>p, size)
        return _line(x, line, pending_on, pending, False, None)
    pending.lines += 1
    events = x.loader.load_at(p, size, x.c, &counted)
    if events is True:
        pending.prefixes += counted
        pending.updates += 1
        return 0
    if line is None:
        line = PyBytes_FromStringAndSize(<const char *>p, size)
    return _line(x, line, pending_on, pending, True, events)


cdef int _line(_Ctx x, line, bint pending_on, Pending *pending, bint loaded, events) except -1:
    """One line, ``lines_in``'s steps; ``loaded``: counted already and the fused
    path tried (``events`` what it returned: a list or None). A line the fused
    path takes with the counts kept in C comes through ``_line_at``."""
    cdef bint route_events, scanned
    cdef Py_ssize_t lines_at
    c = x.c
    if not loaded:
        if _is_control(line):
            if pending_on:
                _flush(c, pending)
            x.server._control(x.conn, line)
            return 0
        if pending_on:
            pending.lines += 1
        else:
            lines_at = _c_lines if type(c) is _feed_counters else -1
            add_at(c, lines_at, "lines", 1)
        events = None
    scanned = type(line) is bytes and len(<bytes>line) <= _max_line  # the scan's lines
    if not loaded and x.load is not None and scanned:
        # True: applied and counted; a list: its events
        if x.loader is None:
            events = x.load(line, c)
        else:
            events = x.loader.load_c(line, c, NULL)
        if events is True:
            return 0
    if pending_on:  # (the line's own count included: it was counted first before)
        _flush(c, pending)
    bad_log = x.bad_log
    try:
        if events is None and x.fast is not None and scanned:
            events = x.fast(line)
        if events is None:
            events = x.parse(line)
    except UnseenSession as exc:
        bad_log.bad_line(c, line, str(exc))
        x.server._unseen_session(exc.neighbor)
        return 0
    except FeedError as exc:
        bad_log.bad_line(c, line, str(exc))
        return 0
    except Exception as exc:  # a parser bug must not take the connection down
        bad_log.bad_line(c, line, f"parser failed: {type(exc).__name__}: {exc!s:.200}")
        return 0
    if not events:
        return 0
    first = events[0]
    conn = x.conn
    if type(first) is _shutdown:
        if conn.relay is not None and conn.relay.worker:
            # That worker's ExaBGP is going: its routers only.
            events = [_shutdown(x.server._scope(conn.relay.worker))]
    else:
        neighbors = x.rib.neighbors
        if neighbors is not None and first.neighbor not in neighbors:
            bad_log.bad_line(
                c, line, f"unknown neighbor {first.neighbor}: not a configured router"
            )
            return 0
    x.apply_many(events)
    route_events = False
    for ev in events:
        kind = type(ev)
        if kind is _announced:
            c.prefixes_announced += len(ev.prefixes)
            route_events = True
        elif kind is _withdrawn:
            route_events = True
            if ev.reason:
                c.treated_as_withdraw += len(ev.prefixes)
                bad_log.treat_as_withdraw(ev)
            else:
                c.prefixes_withdrawn += len(ev.prefixes)
        elif kind is _end_of_rib:
            c.end_of_rib += 1
            route_events = True
    if route_events:
        c.updates += 1
    return 0
