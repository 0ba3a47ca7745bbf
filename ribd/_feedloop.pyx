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
"""

from ribd._loadline cimport LineLoader
from ribd._slots cimport get_at, set_at, slots_writable_offset

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.string cimport memcmp

from ribd.events import EndOfRib, ExabgpShutdown, RoutesAnnounced, RoutesWithdrawn
from ribd.feed_control import CONTROL_PREFIX
from ribd.feed_counters import FeedCounters
from ribd.parser import MAX_LINE_BYTES, ExabgpParser, FeedError, UnseenSession

# The fused path of a table load's lines (ribd._loadline, cimported: built with this).
from ribd._apply import apply_many as _compiled_apply_many

cdef object _announced = RoutesAnnounced
cdef object _withdrawn = RoutesWithdrawn
cdef object _end_of_rib = EndOfRib
cdef object _shutdown = ExabgpShutdown
cdef bytes _control_prefix = CONTROL_PREFIX
cdef Py_ssize_t _max_line = MAX_LINE_BYTES
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


cdef inline int _add_at(c, Py_ssize_t offset, str name, Py_ssize_t n) except -1:
    if n:
        set_at(c, offset, name, get_at(c, offset, name) + n)
    return 0


cdef int _flush(c, Pending *pending) except -1:
    """The pending counts added to ``c`` (exactly a ``FeedCounters``), then zeroed."""
    cdef Pending got = pending[0]
    pending.lines = pending.prefixes = pending.updates = 0
    _add_at(c, _c_lines, "lines", got.lines)
    _add_at(c, _c_prefixes, "prefixes_announced", got.prefixes)
    _add_at(c, _c_updates, "updates", got.updates)
    return 0


cdef inline bint _is_control(line) except -1:
    """``line.startswith(CONTROL_PREFIX)``, compared in C for a bytes line."""
    cdef Py_ssize_t k
    if type(line) is bytes:
        k = PyBytes_GET_SIZE(_control_prefix)
        return PyBytes_GET_SIZE(<bytes>line) >= k and not memcmp(
            PyBytes_AS_STRING(<bytes>line), PyBytes_AS_STRING(_control_prefix), k
        )
    return line.startswith(_control_prefix)


def lines_in(server, conn, list lines):
    """``FeedServer._lines(server, conn, lines)``, compiled."""
    parser = server.parser
    parse = parser.parse
    # ExabgpParser.parse's first step, inlined: a received UPDATE's packets line
    # scanned in C (None for any line it does not take: parse does the rest, from
    # the start, so each line meets the same checks in the same order).
    fast = parser.fast if type(parser).parse is _parse else None
    rib = server.rib
    # A table load's common line from its bytes to the store in one call, where
    # the steps it fuses are the ones that would run (the compiled scan and
    # apply). For any other line ``load`` writes nothing and returns its events
    # as the scan makes them (not scanned again here), or None (parsed from the start).
    load = None
    cdef LineLoader loader = None  # ``load``'s, called in C when it is one
    if fast is not None and server.fused_load:
        if type(rib).apply_many is _compiled_apply_many and "apply_many" not in getattr(rib, "__dict__", ()):
            got = server.line_loader(parser, rib)
            if type(got) is LineLoader:
                loader = <LineLoader>got
            load = got.load
    apply_many = rib.apply_many
    c = conn.counters
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
    cdef bint pending_on = type(c) is _feed_counters and min(_c_lines, _c_prefixes, _c_updates) >= 0
    cdef Pending pending
    pending.lines = pending.prefixes = pending.updates = 0
    bad_log = server._bad_log
    try:
        _lines_in(server, conn, lines, parser, parse, fast, rib, load, loader, apply_many, c, bad_log, pending_on, &pending)
    finally:
        if pending_on:
            _flush(c, &pending)


cdef int _lines_in(
    server, conn, list lines, parser, parse, fast, rib, load, LineLoader loader, apply_many, c, bad_log,
    bint pending_on, Pending *pending,
) except -1:
    """``lines_in``'s loop (its caller adds the pending counts to ``c`` however
    this ends)."""
    cdef bint route_events, scanned
    cdef Py_ssize_t counted = 0
    cdef Py_ssize_t lines_at = _c_lines if type(c) is _feed_counters else -1
    for line in lines:
        if _is_control(line):
            if pending_on:
                _flush(c, pending)
            server._control(conn, line)
            continue
        if pending_on:
            pending.lines += 1
        else:
            set_at(c, lines_at, "lines", get_at(c, lines_at, "lines") + 1)
        events = None
        scanned = type(line) is bytes and len(<bytes>line) <= _max_line  # the scan's lines
        if load is not None and scanned:
            # True: applied and counted; a list: its events
            if loader is None:
                events = load(line, c)
            elif pending_on:
                events = loader.load_c(line, c, &counted)
                if events is True:
                    pending.prefixes += counted
                    pending.updates += 1
                    continue
            else:
                events = loader.load_c(line, c, NULL)
            if events is True:
                continue
        if pending_on:  # (the line's own count included: it was counted first before)
            _flush(c, pending)
        try:
            if events is None and fast is not None and scanned:
                events = fast(line)
            if events is None:
                events = parse(line)
        except UnseenSession as exc:
            bad_log.bad_line(c, line, str(exc))
            server._unseen_session(exc.neighbor)
            continue
        except FeedError as exc:
            bad_log.bad_line(c, line, str(exc))
            continue
        except Exception as exc:  # a parser bug must not take the connection down
            bad_log.bad_line(c, line, f"parser failed: {type(exc).__name__}: {exc!s:.200}")
            continue
        if not events:
            continue
        first = events[0]
        if type(first) is _shutdown:
            if conn.relay is not None and conn.relay.worker:
                # That worker's ExaBGP is going: its routers only.
                events = [_shutdown(server._scope(conn.relay.worker))]
        else:
            neighbors = rib.neighbors
            if neighbors is not None and first.neighbor not in neighbors:
                bad_log.bad_line(
                    c, line, f"unknown neighbor {first.neighbor}: not a configured router"
                )
                continue
        apply_many(events)
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
