"""Where `attribution enrich` reads lines: pipes and files, or a file followed like ``tail -F``.

Sources yield :class:`Chunk` values (lines in bulk), and IDLE (None) when nothing came for a while,
so the caller can send a partial batch instead of waiting for a full one.
"""

from __future__ import annotations

import os
import select
import stat
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, Any, NamedTuple, Protocol

MAX_LINE = 1 << 20  # a record line longer than this is refused (counted as too_long)
IDLE = None  # a source yields it when no input came for a while: flush the batch
PIPE_READ = 1 << 16  # bytes a read from a pipe (stdin)
FILE_READ = 1 << 18  # from a regular file (no select first: it is never quiet)
NEXT = -1  # Chunk.first: the line after the previous chunk of the same source


class Chunk(NamedTuple):
    """Consecutive lines of one source: line ``first`` is ``lines[0]``.

    Lines travel in chunks, not one by one: a generator step and a tuple per
    line cost more than decoding the line does. A whole-lines splitter
    (``_Splitter(name, whole=True)``) gives them as ``data[start:end]``
    instead (end -1: to its end), complete lines each ending in a newline,
    after ``head`` (the line the read before began, when there was one), and
    ``lines`` None: the compiled reader takes records from the read as it
    came, without a bytes object a line or a copy of the read
    (attribution.enrich_records splits what it leaves). Such a splitter
    does not count the newlines (the reader finds each one anyway): its
    chunks after the first have ``first`` NEXT, numbered on from the
    previous chunk of the same source by whoever reads them.
    """

    source: str
    first: int  # or NEXT
    lines: list[bytes | None] | None  # an item None: longer than MAX_LINE
    data: bytes | None = None
    start: int = 0
    end: int = -1
    head: bytes | None = None  # a complete line before data[start:end]
    # --follow with positions: where the file is read to at the chunk's end
    # (attribution.enrich_checkpoint.Position), and whether its lines are the
    # file's bytes (each line and its newline; not goflow2-pb's decoded messages)
    pos: Any = None
    mapped: bool = True


def whole_parts(chunk: Chunk) -> list[tuple[bytes, int, int]]:
    """A whole chunk's (data, start, end) pieces in order: its head, then its
    read's complete lines (end -1: to the end of data)."""
    parts = [] if chunk.head is None else [(chunk.head, 0, len(chunk.head))]
    if chunk.data:
        end = len(chunk.data) if chunk.end < 0 else chunk.end
        if end > chunk.start:
            parts.append((chunk.data, chunk.start, end))
    return parts


def chunk_lines(chunk: Chunk) -> list[bytes | None]:
    """A chunk's lines, split from its data when it came whole."""
    if chunk.lines is not None:
        return chunk.lines
    return [line for data, a, b in whole_parts(chunk) for line in split_lines(data[a:b])]


def split_lines(data: bytes) -> list[bytes | None]:
    """Complete lines (the last one's newline optional) as a list."""
    lines: list[bytes | None] = data.split(b"\n")  # type: ignore[assignment]
    if lines[-1] == b"":
        lines.pop()
    return lines


class _Splitter:
    """Bytes chunks -> chunks of complete lines, with a length cap (no unbounded buffer)."""

    def __init__(self, name: str, max_line: int = MAX_LINE, whole: bool = False) -> None:
        self.name = name
        self.buf = b""
        self.number = 0
        self.skipping = False  # inside an over-long line: drop until its newline
        self.max_line = max_line
        self.whole = whole  # complete lines as one bytes object where none can be too long
        self.counted = True  # self.number is the last line's (not after a whole chunk)

    def _first(self) -> int:
        return self.number + 1 if self.counted else NEXT

    def feed(self, data: bytes) -> Chunk | None:
        if self.whole and not self.skipping and len(self.buf) + len(data) <= self.max_line:
            return self._whole(data)
        if self.buf:
            data = self.buf + data
        parts = data.split(b"\n")
        rest = parts.pop()
        if self.skipping and parts:
            parts.pop(0)  # the end of the over-long line
            self.skipping = False
        limit = self.max_line
        if len(data) > limit and parts and max(map(len, parts)) > limit:  # else none can be
            parts = [p if len(p) <= limit else None for p in parts]  # type: ignore[misc]
        first = self._first()
        self.number += len(parts)
        lines: list[bytes | None] = parts  # type: ignore[assignment]
        if len(rest) > limit:
            if not self.skipping:
                self.number += 1
                lines.append(None)
                self.skipping = True
            rest = b""
        elif self.skipping:
            rest = b""
        self.buf = rest
        return Chunk(self.name, first, lines) if lines else None

    def _whole(self, data: bytes) -> Chunk | None:
        """The complete lines of ``data`` as a span of it (no copy), after the
        line begun before completed (a copy of that line alone); the unfinished
        last line is kept for the next read. Newlines are not counted here."""
        cut = data.rfind(b"\n") + 1
        if not cut:
            self.buf += data
            return None
        head = None
        start = 0
        if self.buf:
            start = data.find(b"\n") + 1
            head = b"".join((self.buf, memoryview(data)[:start]))
        self.buf = data[cut:]
        first = self._first()
        self.counted = False
        return Chunk(self.name, first, None, data, start, -1 if cut == len(data) else cut, head)

    def rest(self) -> Chunk | None:
        """The last line when it has no newline (end of file, or a rotated file)."""
        text, skipping = self.buf, self.skipping
        self.buf = b""
        self.skipping = False
        if not text or skipping:
            return None
        first = self._first()
        self.number += 1
        return Chunk(self.name, first, [text])


def _some(chunk: Chunk | None) -> tuple[Chunk, ...]:
    return () if chunk is None else (chunk,)


class Splitter(Protocol):
    """Bytes as read -> chunks of lines (:class:`_Splitter`; goflow2's binary
    messages: attribution.enrich_goflow2pb)."""

    def feed(self, data: bytes) -> Chunk | None: ...
    def rest(self) -> Chunk | None: ...


def read_fd(
    fd: int,
    name: str,
    idle: float = 0.5,
    chunk: int | None = None,
    splitter: Callable[[str], Splitter] = _Splitter,
) -> Iterator[Chunk | None]:
    """Lines of a pipe or file until end of file; IDLE when a pipe is quiet for ``idle`` s.

    A regular file is never quiet: it is read without asking select() first,
    in reads of FILE_READ bytes (a pipe's: PIPE_READ), so a run pays the
    per-read Python and system calls a quarter as often."""
    regular = stat.S_ISREG(os.fstat(fd).st_mode)
    size = chunk or (FILE_READ if regular else PIPE_READ)
    split = splitter(name)
    while True:
        if not regular:
            ready, _, _ = select.select([fd], [], [], idle)
            if not ready:
                yield IDLE
                continue
        data = os.read(fd, size)
        if not data:
            yield from _some(split.rest())
            return
        yield from _some(split.feed(data))


class _Tracker:
    """The :class:`~attribution.enrich_checkpoint.Position` of a followed file
    at each chunk's end: its identity, the offset read to, its first bytes."""

    def __init__(self, path: str, fh: IO[bytes]) -> None:
        from attribution import enrich_checkpoint

        self.ck = enrich_checkpoint
        st = os.fstat(fh.fileno())
        self.path, self.fd, self.dev, self.ino = path, fh.fileno(), st.st_dev, st.st_ino
        self.read_to = fh.tell()
        self.head = b""
        self.base: Any = None  # the position with the fingerprint of the latest length

    def reset(self, offset: int) -> None:  # truncated: read again from offset
        self.read_to = offset
        self.head = b""
        self.base = None

    def mark(self, chunk: Chunk | None, pending: int, mapped: bool) -> Chunk | None:
        """``chunk`` with the position after its lines (``pending`` bytes of the
        read are an unfinished line, kept for the next read)."""
        if chunk is None:
            return None
        offset = self.read_to - pending
        fp_len = min(self.ck.FINGERPRINT, offset)
        base = self.base
        if base is None or base.fp_len != fp_len:
            if len(self.head) < fp_len:
                self.head = os.pread(self.fd, self.ck.FINGERPRINT, 0)
            head = self.head[:fp_len]
            base = self.base = self.ck.Position(
                self.path, self.dev, self.ino, offset, len(head), self.ck.fingerprint(head)
            )
        return chunk._replace(pos=base.at(offset), mapped=mapped)


def _pending(split: Splitter) -> int:
    """Bytes the splitter holds (an unfinished line); -1: unknown (an over-long
    line being skipped: the position after it is not known yet)."""
    if getattr(split, "skipping", False):
        return -1
    return len(getattr(split, "buf", b""))


def _fed(split: Splitter, data: bytes, track: _Tracker | None, mapped: bool) -> Chunk | None:
    """The lines of a read of a followed file, with the position after them when
    ``track``ed (none while an over-long line is being skipped: not known yet)."""
    chunk = split.feed(data)
    if track is not None:
        track.read_to += len(data)
        held = _pending(split)
        if held >= 0:
            chunk = track.mark(chunk, held, mapped)
    return chunk


def follow(
    path: str,
    poll: float = 0.25,
    stop: threading.Event | None = None,
    splitter: Callable[[str], Splitter] = _Splitter,
    resume: Any = None,
    note: Callable[[str], None] | None = None,
    read_size: int = FILE_READ,
) -> Iterator[Chunk | None]:
    """A file followed like ``tail -F``, from its start: read to the end, then wait.

    Survives rotation (the name points at a new file: the old one is read to
    its end, then the new one from its start) and truncation (the file got
    shorter than what was read: read again from its start). A missing file is
    waited for; while a rotated file's successor is missing, the old one is still
    read. Line numbers restart with each new file.

    ``resume`` (a Position, or True for none yet): chunks carry their
    position (``--checkpoint``), and reading starts there when the file is
    the checkpoint's (or its rotated predecessor in the same directory:
    :func:`attribution.enrich_checkpoint.open_resumed`); else ``note`` says
    why not and the file is read from its start. Each new file then starts
    with an empty chunk at offset 0, so the position moves to it.

    Reads of ``read_size`` bytes (FILE_READ, as read_fd's of a regular file:
    64 KiB reads cost ~200 more instructions a record, callgrind).
    """
    fh: IO[bytes] | None = None
    split = splitter(path)
    track: _Tracker | None = None
    positions = resume is not None
    if positions and resume is not True:
        from attribution.enrich_checkpoint import open_resumed

        fh, why = open_resumed(path, resume)
        if fh is None:
            if note is not None:
                note(f"{why}; reading {path} from its start")
        else:
            if note is not None:
                note(f"resuming {fh.name} at byte {resume.offset}")
            track = _Tracker(path, fh)
    mapped = split.__class__ is _Splitter
    while stop is None or not stop.is_set():
        if fh is None:
            try:
                fh = open(path, "rb", buffering=0)  # noqa: SIM115 - closed on rotation
            except FileNotFoundError:
                yield IDLE
                time.sleep(poll)
                continue
            split = splitter(path)
            if positions:
                track = _Tracker(path, fh)
                yield track.mark(Chunk(path, 1, []), 0, mapped)
        data = fh.read(read_size)
        if data:
            yield from _some(_fed(split, data, track, mapped))
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
                yield from _some(_fed(split, rest, track, mapped))
            chunk = split.rest()
            if track is not None:
                chunk = track.mark(chunk, 0, mapped)
            yield from _some(chunk)
            fh.close()
            fh = None
            continue
        if st is not None and st.st_size < fh.tell():
            fh.seek(0)
            split.rest()  # a message cut off by the truncation is reported
            split = splitter(path)
            if track is not None:
                track.reset(0)
                yield track.mark(Chunk(path, 1, []), 0, mapped)
            continue
        yield IDLE
        time.sleep(poll)
    if fh is not None:
        fh.close()
