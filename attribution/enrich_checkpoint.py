"""`attribution enrich --follow --checkpoint FILE`: where a followed run resumes.

Without it, every restart of a followed run (systemd, Kubernetes, a deploy)
read the file from its start again and stored every record a second time.
With it, the run keeps the read position of the last record whose output is
durable, as Vector, Filebeat and Akvorado's inlet do, and a restart carries
on from there.

The parts, each with one job:

- the reader (:func:`attribution.enrich_sources.follow`) gives every chunk
  of lines the :class:`Position` at its end: the file's device and inode,
  the byte offset after its last complete line, and a fingerprint of the
  file's first bytes (an inode number is reused once a file is deleted);
  ``read_batches`` gives each batch the position at its last record;
- each output says how many of the rows it was given are durable
  (``durable_rows()``: JSON lines and CSV after an fsync of stdout, a
  ClickHouse insert once acknowledged, a Parquet part once closed and
  renamed: attribution.enrich_writers, attribution.sinks);
- :class:`Checkpointer` (here) pairs the two: after each write the run notes
  (rows given to the output so far, the batch's position); every
  ``interval`` seconds, and once at the end, it asks the output and commits
  the furthest position all of whose rows are durable: written to a
  temporary file, fsynced, renamed over FILE, the directory fsynced.

At-least-once, not exactly-once: records are written twice after a crash
(SIGKILL, power loss, the store failing mid-run) between a write reaching
the output and the next commit (at most ``interval`` seconds of output, or
a whole buffered insert / Parquet part), and bad records before the
position are counted again. A stop by SIGTERM or Ctrl-C commits after the
output is closed, so a restart after it writes every record once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Protocol

import orjson

from attribution.durable import replace_durably

FINGERPRINT = 1024  # bytes at the start of a file that identify it with its inode
MAX_PENDING = 4096  # positions noted and not yet durable; more are merged
VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read or written; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Position:
    """Where a followed file was read to: every line before ``offset`` is taken.

    ``fp`` is the SHA-256 (hex) of the file's first ``fp_len`` bytes
    (``fp_len`` = min(FINGERPRINT, offset)): a file truncated and rewritten,
    or a new file that got a deleted one's inode, has other first bytes."""

    path: str
    dev: int
    ino: int
    offset: int
    fp_len: int
    fp: str

    def as_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "path": self.path,
            "device": self.dev,
            "inode": self.ino,
            "offset": self.offset,
            "fingerprint_bytes": self.fp_len,
            "fingerprint_sha256": self.fp,
        }

    def at(self, offset: int) -> Position:
        """The same file at another offset (at or after ``fp_len``)."""
        return Position(self.path, self.dev, self.ino, offset, self.fp_len, self.fp)


def fingerprint(head: bytes) -> str:
    return hashlib.sha256(head).hexdigest()


# --------------------------------------------------------------------------- the file


def load(path: str) -> Position | None:
    """The checkpoint in ``path``; None when there is none (a first run).

    Raises :class:`CheckpointError` naming what is wrong when it cannot be
    read or is not a checkpoint of this version."""
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 16)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path}: cannot read it: {exc.strerror or exc}") from None
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CheckpointError(f"checkpoint {path}: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise CheckpointError(f"checkpoint {path}: not a JSON object")
    if doc.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path}: version {doc.get('version')!r}, not {VERSION}")
    ints = ("device", "inode", "offset", "fingerprint_bytes")
    for name in ints:
        value = doc.get(name)
        if type(value) is not int or value < 0:
            raise CheckpointError(f"checkpoint {path}: {name} {value!r} is not a count")
    fp, named = doc.get("fingerprint_sha256"), doc.get("path")
    if not isinstance(fp, str) or len(fp) != 64 or not isinstance(named, str):
        raise CheckpointError(f"checkpoint {path}: fingerprint_sha256 or path missing or wrong")
    if doc["fingerprint_bytes"] > min(FINGERPRINT, doc["offset"]):
        raise CheckpointError(f"checkpoint {path}: fingerprint_bytes past the offset")
    return Position(named, *(doc[n] for n in ints), fp)


def save(path: str, pos: Position) -> None:
    """Write ``pos`` atomically: a temporary file, fsync, rename, fsync the directory."""
    tmp = f"{path}.tmp"
    data = orjson.dumps(pos.as_json(), option=orjson.OPT_APPEND_NEWLINE)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    replace_durably(tmp, path)


def check_writable(path: str) -> None:
    """Fail at the start, not at the first commit, when FILE's directory is not there."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise CheckpointError(f"checkpoint {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise CheckpointError(f"checkpoint {path}: directory {parent} is not writable")


# --------------------------------------------------------------------------- resuming


def _same_content(fd: int, pos: Position) -> str | None:
    """None when an open file (the checkpoint's inode) can be resumed at ``pos``,
    else why not."""
    size = os.fstat(fd).st_size
    if size < pos.offset:
        return f"the file is {size} bytes, shorter than the offset {pos.offset}: truncated"
    if fingerprint(os.pread(fd, pos.fp_len, 0)) != pos.fp:
        return f"its first {pos.fp_len} bytes changed: a new file on a reused inode, or rewritten"
    return None


def open_resumed(path: str, pos: Position) -> tuple[IO[bytes] | None, str | None]:
    """The file to read first and its offset set, or (None, why not).

    The checkpoint's file is ``path`` itself, or, when ``path`` was rotated
    while the run was stopped, the file of the same device and inode in the
    same directory (``flows.json.1``): read from the offset to its end, then
    ``path`` from its start, as rotation is while running."""
    try:
        fh = open(path, "rb", buffering=0)  # noqa: SIM115 - the caller closes it
    except FileNotFoundError:
        fh = None
    if fh is not None:
        st = os.fstat(fh.fileno())
        if (st.st_dev, st.st_ino) == (pos.dev, pos.ino):
            why = _same_content(fh.fileno(), pos)
            if why is None:
                fh.seek(pos.offset)
                return fh, None
            fh.close()
            return None, why
        fh.close()
    rotated = _find_inode(path, pos) if pos.path == path else None
    if rotated is not None:
        why = _same_content(rotated.fileno(), pos)
        if why is None:
            rotated.seek(pos.offset)
            return rotated, None
        rotated.close()
        return None, f"its file, rotated to {rotated.name}: {why}"
    if pos.path != path:
        return None, f"it is of another file, {pos.path}"
    return None, (
        f"it names another file (device {pos.dev}, inode {pos.ino}), not among {path}'s "
        "rotated names any more: rotated and removed while stopped"
    )


def _find_inode(path: str, pos: Position) -> IO[bytes] | None:
    """The checkpoint's file among ``path``'s rotated names (``flows.json.1``,
    ``flows.json-20261201``: the same directory, its name first)."""
    directory, name = os.path.split(os.path.abspath(path))
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return None
    for entry in entries:
        if not entry.name.startswith(name) or entry.name == name:
            continue
        with contextlib.suppress(OSError):
            if entry.inode() == pos.ino and entry.is_file(follow_symlinks=False):
                fh = open(entry.path, "rb", buffering=0)  # noqa: SIM115 - returned
                st = os.fstat(fh.fileno())
                if (st.st_dev, st.st_ino) == (pos.dev, pos.ino):
                    return fh
                fh.close()
    return None


# --------------------------------------------------------------------------- committing


class Durable(Protocol):
    """An output that says how many of the rows it was given are durable."""

    def durable_rows(self) -> int:
        """Rows written that survive a crash of this process now (it may fsync);
        callable from another thread than the writer's."""
        ...


class Checkpointer:
    """Commits the furthest position whose rows are all durable (module docstring).

    Bounded: at most MAX_PENDING (rows, position) pairs wait; past that the
    newest is merged into the last one (a later, coarser commit), counted
    in ``merged``. A failed commit is raised by the next ``note`` or ``close``.
    """

    def __init__(
        self,
        path: str,
        output: Durable,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.output = output
        self.interval = interval
        self.clock = clock
        self.pending: deque[tuple[int, Position]] = deque()
        self.committed: Position | None = None
        self.commits = 0
        self.merged = 0
        self.commit_seconds = 0.0  # the durable_rows() call (fsync) and the file's write
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def start(self) -> None:
        def run() -> None:
            while not self._stop.wait(self.interval):
                try:
                    self.commit()
                except BaseException as exc:  # raised in the run by note()/close()
                    self._failure = exc
                    return

        self._thread = threading.Thread(target=run, name="enrich-checkpoint", daemon=True)
        self._thread.start()

    def note(self, rows: int, pos: Position | None) -> None:
        """``rows`` given to the output so far, the last of them read up to ``pos``."""
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        if pos is None:
            return
        with self._lock:
            if len(self.pending) >= MAX_PENDING:
                self.pending[-1] = (rows, pos)
                self.merged += 1
            else:
                self.pending.append((rows, pos))

    def commit(self) -> None:
        """Ask the output what is durable; save the furthest position covered."""
        with self._lock:
            if not self.pending:
                return
        started = self.clock()
        durable = self.output.durable_rows()
        best = None
        with self._lock:
            while self.pending and self.pending[0][0] <= durable:
                best = self.pending.popleft()[1]
        if best is not None and best != self.committed:
            try:
                save(self.path, best)
            except OSError as exc:
                raise CheckpointError(
                    f"checkpoint {self.path}: cannot write it: {exc.strerror or exc}"
                ) from None
            self.committed = best
            self.commits += 1
        self.commit_seconds += self.clock() - started

    def close(self) -> None:
        """Stop the timer and commit what the closed output made durable."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.commit()
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def as_json(self) -> dict[str, Any]:
        pos = self.committed
        return {
            "file": self.path,
            "commits": self.commits,
            "merged": self.merged,
            "commit_seconds": round(self.commit_seconds, 6),
            "position": None if pos is None else pos.as_json(),
        }


class DeferSignal:
    """A section the SIGTERM handler does not break: a batch written and its
    position noted are one step, else a stop between them wrote records the
    checkpoint never covers (written again after the restart). The handler
    calls :meth:`interrupt`; the section raises it at its end."""

    def __init__(self) -> None:
        self.active = False
        self.pending: BaseException | None = None

    def interrupt(self, exc: BaseException) -> bool:
        """True when deferred (inside the section), else the caller raises."""
        if self.active:
            self.pending = exc
            return True
        return False

    def __enter__(self) -> DeferSignal:
        self.active = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.active = False
        if self.pending is not None:
            pending, self.pending = self.pending, None
            if exc[0] is None:
                raise pending


DEFER = DeferSignal()


__all__ = [
    "DEFER",
    "FINGERPRINT",
    "CheckpointError",
    "Checkpointer",
    "DeferSignal",
    "Durable",
    "Position",
    "check_writable",
    "load",
    "open_resumed",
    "save",
]
