"""Where `attribution enrich` reads lines: pipes and files, or a file followed like ``tail -F``.

Sources yield :class:`Line` values, and IDLE (None) when nothing came for a while,
so the caller can send a partial batch instead of waiting for a full one.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Iterator
from typing import IO, NamedTuple

MAX_LINE = 1 << 20  # a record line longer than this is refused (counted as too_long)
IDLE = None  # a source yields it when no input came for a while: flush the batch


class Line(NamedTuple):
    source: str
    number: int
    text: bytes | None  # None: longer than MAX_LINE


class _Splitter:
    """Bytes chunks -> complete lines, with a length cap (no unbounded buffer)."""

    def __init__(self, name: str, max_line: int = MAX_LINE) -> None:
        self.name = name
        self.buf = bytearray()
        self.number = 0
        self.skipping = False  # inside an over-long line: drop until its newline
        self.max_line = max_line

    def feed(self, chunk: bytes) -> list[Line]:
        out: list[Line] = []
        self.buf += chunk
        start = 0
        while True:
            nl = self.buf.find(b"\n", start)
            if nl < 0:
                break
            if self.skipping:
                self.skipping = False
            else:
                self.number += 1
                text = bytes(self.buf[start:nl])
                out.append(
                    Line(self.name, self.number, None if len(text) > self.max_line else text)
                )
            start = nl + 1
        del self.buf[:start]
        if len(self.buf) > self.max_line:
            if not self.skipping:
                self.number += 1
                out.append(Line(self.name, self.number, None))
                self.skipping = True
            self.buf.clear()
        return out

    def rest(self) -> list[Line]:
        """The last line when it has no newline (end of file, or a rotated file)."""
        text, skipping = bytes(self.buf), self.skipping
        self.buf.clear()
        self.skipping = False
        if not text or skipping:
            return []
        self.number += 1
        return [Line(self.name, self.number, text)]


def read_fd(fd: int, name: str, idle: float = 0.5, chunk: int = 1 << 16) -> Iterator[Line | None]:
    """Lines of a pipe or file until end of file; IDLE when a pipe is quiet for ``idle`` s."""
    split = _Splitter(name)
    while True:
        ready, _, _ = select.select([fd], [], [], idle)
        if not ready:
            yield IDLE
            continue
        data = os.read(fd, chunk)
        if not data:
            yield from split.rest()
            return
        yield from split.feed(data)


def follow(
    path: str, poll: float = 0.25, stop: threading.Event | None = None
) -> Iterator[Line | None]:
    """A file followed like ``tail -F``, from its start: read to the end, then wait.

    Survives rotation (the name points at a new file: the old one is read to
    its end, then the new one from its start) and truncation (the file got
    shorter than what was read: read again from its start). A missing file is
    waited for; while a rotated file's successor is missing, the old one is still
    read. Line numbers restart with each new file.
    """
    fh: IO[bytes] | None = None
    split = _Splitter(path)
    while stop is None or not stop.is_set():
        if fh is None:
            try:
                fh = open(path, "rb", buffering=0)  # noqa: SIM115 - closed on rotation
            except FileNotFoundError:
                yield IDLE
                time.sleep(poll)
                continue
            split = _Splitter(path)
        data = fh.read(1 << 16)
        if data:
            yield from split.feed(data)
            continue
        # at the end: rotated, truncated, or just nothing new yet?
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None  # renamed, the new one not there yet: the writer may still add here
        mine = os.fstat(fh.fileno())
        if st is not None and (st.st_ino, st.st_dev) != (mine.st_ino, mine.st_dev):
            rest = fh.read()  # written to the old file before the switch
            if rest:
                yield from split.feed(rest)
            yield from split.rest()
            fh.close()
            fh = None
            continue
        if st is not None and st.st_size < fh.tell():
            fh.seek(0)
            split = _Splitter(path)
            continue
        yield IDLE
        time.sleep(poll)
    if fh is not None:
        fh.close()
