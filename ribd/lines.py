"""Bytes from a stream -> whole lines, none held beyond a limit. No I/O.

The feed reads a relay's socket in big chunks; a line may span many of them.
Holding an unfinished line without a bound lets one process that never sends
a newline grow our memory without limit (and re-joining the pieces on every
read made it quadratic: 300 MiB cost 270 CPU-s). Here a line is held only up
to ``max_bytes``; past that its bytes are dropped as they come and, once its
newline arrives, it is reported as too long (its first bytes and its size)
so the caller can count and log it. The lines after it are unaffected.

``split`` takes bytes or a view of the reader's one buffer (``memoryview``):
the feed reads every chunk into the same buffer (``socket.recv_into``) where
``recv(1 MiB)`` made a 1 MiB bytes object a read (malloc's mmap, its pages
faulted in, shrunk to the read, unmapped: ~400 times a table). Everything
returned or held is a copy; nothing refers to the buffer after ``split``.
"""

from __future__ import annotations

from collections.abc import Callable

HEAD_BYTES = 200  # the start of an over-long line kept for the log

Cut = Callable[[bytes, int, int], tuple[list[bytes], list[tuple[bytes, int]], bytes]]


def py_split_lines(
    data: bytes | memoryview, limit: int, head_bytes: int
) -> tuple[list[bytes], list[tuple[bytes, int]], bytes]:
    """(lines not empty and not over ``limit``; (head, size) of longer ones; the
    tail after the last newline). The reference of ``ribd._lines.split_lines``."""
    lines = bytes(data).split(b"\n")
    tail = lines.pop()
    out = []
    too_long = []
    for line in lines:
        if len(line) > limit:
            too_long.append((line[:head_bytes], len(line)))
        elif line:
            out.append(line)
    return out, too_long, tail


def _piece(buf: bytes | bytearray, start: int, stop: int) -> bytes:
    """``bytes(buf[start:stop])`` with one copy (none for the whole of a bytes object)."""
    if type(buf) is bytes and start == 0 and stop == len(buf):
        return buf
    with memoryview(buf) as view:
        return bytes(view[start:stop])


try:  # the same with memchr (a read's newlines found 32 octets a step), where built
    from ribd._lines import split_lines as _compiled_split
except ImportError:  # pragma: no cover - without a C compiler
    _compiled_split = None


class LineSplitter:
    """Feed it chunks with ``split``; it returns the lines they complete."""

    __slots__ = ("_cut", "_head", "_held", "_parts", "_skipping", "max_bytes", "max_held")

    def __init__(self, max_bytes: int, compiled: bool = True) -> None:
        self.max_bytes = max_bytes
        # ``compiled`` False: the Python reference (tests compare both).
        self._cut: Cut = (_compiled_split if compiled else None) or py_split_lines
        self.max_held = 0  # the most bytes of one unfinished line ever held
        self._parts: list[bytes] = []  # the unfinished line, in the pieces it came in
        self._held = 0  # bytes in _parts
        self._skipping = -1  # bytes of an over-long line dropped so far; -1: not skipping
        self._head = b""

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line (held or being skipped)."""
        return max(self._held, self._skipping)

    def split(self, data: bytes | memoryview) -> tuple[list[bytes], list[tuple[bytes, int]]]:
        """(complete lines, without empty ones; over-long lines completed: (head, size))."""
        lines: list[bytes] = []
        too_long: list[tuple[bytes, int]] = []
        if self._skipping >= 0 or self._parts:
            if type(data) is not bytes:
                data = bytes(data)  # (a line goes on from an earlier read: not the common case)
            finished = self._finish(data, len(data))
            if finished is None:
                return lines, too_long
            lines, too_long, start = finished
            data = data[start:]
        out, longer, tail = self._cut(data, self.max_bytes, HEAD_BYTES)
        if tail:
            self._hold(tail)
        return lines + out if lines else out, too_long + longer if too_long else longer

    def split_region(
        self, buf: bytes | bytearray, size: int
    ) -> tuple[list[bytes], list[tuple[bytes, int]], int, int]:
        """``split`` of ``buf[:size]`` that copies none of the whole lines lying
        in it: ``(lines, too_long, start, end)``, where ``lines`` and
        ``too_long`` are what a line begun in earlier reads became (at most one,
        its rest at the head of ``buf``), and ``buf[start:end]`` is the read's
        whole lines, each with its newline, for the caller to read where they
        lie (``ribd._feedloop.buffer_in``, which filters them as ``split``
        does). What follows ``end`` is held (a copy), as ``split`` holds it.
        ``buf`` is a bytes-like object with ``find`` (the feed's bytearray)."""
        lines: list[bytes] = []
        too_long: list[tuple[bytes, int]] = []
        start = 0
        if self._skipping >= 0 or self._parts:
            finished = self._finish(buf, size)
            if finished is None:
                return lines, too_long, 0, 0
            lines, too_long, start = finished
        end = buf.rfind(b"\n", start, size) + 1
        if end <= start:
            end = start
        if size > end:
            self._hold(_piece(buf, end, size))
        return lines, too_long, start, end

    def _finish(
        self, buf: bytes | bytearray, size: int
    ) -> tuple[list[bytes], list[tuple[bytes, int]], int] | None:
        """The line begun in earlier reads (held, or being skipped as over-long)
        ended by the first newline of ``buf[:size]``: ``(lines, too_long, start)``,
        what it became (a line, or an over-long report) and where the rest of
        ``buf`` begins; None when ``buf[:size]`` has no newline (all of it held
        or skipped)."""
        nl = buf.find(b"\n", 0, size)
        if nl < 0:
            if self._skipping >= 0:
                self._skipping += size
            else:
                self._hold(_piece(buf, 0, size))
            return None
        if self._skipping >= 0:
            skipped, self._skipping = self._skipping + nl, -1
            return [], [(self._head, skipped)], nl + 1
        self._parts.append(_piece(buf, 0, nl))
        line = b"".join(self._parts)
        self._parts, self._held = [], 0
        if len(line) > self.max_bytes:
            return [], [(line[:HEAD_BYTES], len(line))], nl + 1
        return ([line] if line else []), [], nl + 1

    def _hold(self, piece: bytes) -> None:
        self._parts.append(piece)
        self._held += len(piece)
        if self._held > self.max_bytes:
            head = b""
            for part in self._parts:
                head += part[: HEAD_BYTES - len(head)]
                if len(head) >= HEAD_BYTES:
                    break
            self._head = head
            self._skipping = self._held
            self._parts, self._held = [], 0
        elif self._held > self.max_held:
            self.max_held = self._held
