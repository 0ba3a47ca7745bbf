# cython: language_level=3, boundscheck=False, wraparound=False
"""Newlines found with ``memchr``: the feed's split of a read into lines, the
relay's count of a chunk's lines.

``bytes.split(b"\\n")`` and ``bytes.count(b"\\n")`` look at one octet at a
time: ~3.3k instructions a ~500-octet packets line for the split (callgrind,
BENCHMARKS raw mode, tenth pass), ~26 ms of the relay's CPU a real table for
the count. ``memchr`` looks at 32 octets a step. ``ribd.lines`` and
``ribd.relay`` use these where built and keep their Python code as the
reference (tests/ribd/test_lines.py compares them).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memchr


def split_lines(const unsigned char[::1] data, Py_ssize_t limit, Py_ssize_t head_bytes):
    """``(lines, too_long, tail)``: the complete lines of ``data`` (bytes, or a view
    of a buffer) not longer than ``limit`` and not empty; ``(first head_bytes
    octets, size)`` of each longer one; the octets after the last newline, all
    copies. As ``bytes(data).split(b"\\n")``, its last piece popped as the tail,
    the rest filtered (``ribd.lines.LineSplitter``)."""
    cdef Py_ssize_t n = data.shape[0], start = 0, size
    cdef const char *p = b""
    cdef const char *nl
    cdef list out = []
    cdef list too_long = []
    if n:
        p = <const char *>&data[0]
    while True:
        nl = <const char *>memchr(p + start, 10, n - start)
        if nl == NULL:
            break
        size = nl - (p + start)
        if size > limit:
            head = PyBytes_FromStringAndSize(p + start, size if size < head_bytes else head_bytes)
            too_long.append((head, size))
        elif size:
            out.append(PyBytes_FromStringAndSize(p + start, size))
        start += size + 1
    return out, too_long, PyBytes_FromStringAndSize(p + start, n - start)


def count_lines(bytes data):
    """``data.count(b"\\n")``."""
    cdef const char *p = PyBytes_AS_STRING(data)
    cdef const char *end = p + PyBytes_GET_SIZE(data)
    cdef const char *nl
    cdef Py_ssize_t count = 0
    while p < end:
        nl = <const char *>memchr(p, 10, end - p)
        if nl == NULL:
            break
        count += 1
        p = nl + 1
    return count
