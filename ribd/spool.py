"""The relay's spool and its control lines (``ribd.relay``, protocol there).

ExaBGP writes to its API process with blocking writes, so the relay's reader
never waits: it puts whole lines here, bounded by bytes, and the sender takes
them out towards the service. What does not fit is dropped and the hole is
marked in the stream, never silent.
"""

from __future__ import annotations

import collections
import logging
import threading

import orjson

log = logging.getLogger("ribd.relay")


def control_line(event: str, **fields: object) -> bytes:
    return orjson.dumps({"type": "ribd-relay", "event": event, **fields}) + b"\n"


class Spool:
    """Chunks of whole lines, bounded by bytes; what does not fit is dropped
    *and marked*: a ``lost`` control line takes the place of the dropped
    lines, in stream order, once there is room again (or at the end), so
    the service knows exactly where its view of the stream has a hole and
    re-reads the routers' tables from there (see ``ribd.feed``)."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit = max(1, limit_bytes)
        self._chunks: collections.deque[tuple[bytes, int]] = collections.deque()
        self._lines = 0
        self._bytes = 0
        self._cond = threading.Condition()
        self._gap_lines = 0  # dropped since the last marker
        self._gap_bytes = 0
        self.lost_total = 0  # lines dropped in this relay's life
        self.gaps = 0  # markers queued
        self.closed = False  # no more input will come

    def put(self, chunk: bytes, lines: int) -> None:
        with self._cond:
            if self._gap_lines and self._bytes + len(chunk) + 200 <= self.limit:
                self._mark_gap()
            if self._gap_lines or self._bytes + len(chunk) > self.limit:
                if not self._gap_lines:
                    log.warning(
                        "spool full (%d of %d bytes): dropping lines until the service catches "
                        "up; the gap is marked for an exact re-read",
                        self._bytes,
                        self.limit,
                    )
                self._gap_lines += lines
                self._gap_bytes += len(chunk)
                self.lost_total += lines
                return
            self._append(chunk, lines)

    def _append(self, chunk: bytes, lines: int) -> None:
        self._chunks.append((chunk, lines))
        self._lines += lines
        self._bytes += len(chunk)
        self._cond.notify()

    def _mark_gap(self) -> None:
        marker = control_line("lost", lines=self._gap_lines, bytes=self._gap_bytes)
        self._gap_lines = self._gap_bytes = 0
        self.gaps += 1
        self._append(marker, 1)

    def drop(self, lines: int, nbytes: int = 0) -> None:
        """Count lines lost without queueing them (a line too long to keep)."""
        with self._cond:
            self._gap_lines += lines
            self._gap_bytes += nbytes
            self.lost_total += lines

    def close(self, last: bytes = b"") -> None:
        """No more input: mark a pending gap (past the limit if need be), queue ``last``."""
        with self._cond:
            if self._gap_lines:
                self._mark_gap()
            if last:
                self._append(last, 1)
            self.closed = True
            self._cond.notify_all()

    def take(self, max_bytes: int, timeout: float) -> list[tuple[bytes, int]]:
        """Up to ``max_bytes`` of chunks (at least one), or [] after ``timeout``."""
        with self._cond:
            if not self._chunks:
                self._cond.wait(timeout)
            batch: list[tuple[bytes, int]] = []
            size = 0
            while self._chunks and (not batch or size + len(self._chunks[0][0]) <= max_bytes):
                chunk, n = self._chunks.popleft()
                self._lines -= n
                self._bytes -= len(chunk)
                batch.append((chunk, n))
                size += len(chunk)
            return batch

    def give_back(self, batch: list[tuple[bytes, int]]) -> None:
        """Return an undelivered batch to the front (it is re-sent first)."""
        with self._cond:
            for chunk, n in reversed(batch):
                self._chunks.appendleft((chunk, n))
                self._lines += n
                self._bytes += len(chunk)

    def __len__(self) -> int:
        with self._cond:
            return self._lines

    @property
    def bytes(self) -> int:
        with self._cond:
            return self._bytes

    def empty(self) -> bool:
        with self._cond:
            return not self._chunks
