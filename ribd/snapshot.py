"""RIB snapshots for warm restarts: serve a full table seconds after start.

The service writes a snapshot on shutdown and periodically, and loads it at
start into the empty RIB. Loaded routes are only a head start: every router
comes back with its session ``down`` and its routes marked stale until
``hold_time`` has passed, so answers from them are flagged stale. When the
BGP session comes up, the RIB's normal restart logic moves them to the stale
generation and the router's End-of-RIB retires whatever it did not announce
again; a router that never comes back is purged when the hold time expires.

The file is untrusted input on load (it may be truncated, corrupt, from
another version, or hostile). Never pickle: a checksummed header
(``ribd.snapshot_format``), then a body every field of which is type- and
range-checked, attribute sets rebuilt through the RIB's interner so derived
AS numbers are recomputed, and nothing reaches the RIB until the whole file
has been validated. Any fault raises ``SnapshotError`` naming it, and the
RIB stays empty.

Two body formats, both read:

* version 2 (written): what the RIB shares is stored once (``ribd.snapshot_v2``):
  a table of shared cores (AS path, origin, MED ...), per-router set rows
  referring to them by index, entries and prefixes as numpy columns. Checks
  are vectorised, per distinct value, not per set.
* version 1: one JSON document with a full row per attribute set
  (``ribd.snapshot_v1``); still written on request (tests, tools that
  edit a snapshot as JSON).

Both store the same content. A router's routes are its current ones, and
for prefixes it has no current route, its stale ones (what a lookup would
answer). Entries (the distinct per-prefix route sets, like the RIB's interned
entries) are stored once, so load is one sort of the prefixes into the
store's arrays, each pointing at an already built tuple. The loader's
interner becomes the RIB's, so a set re-announced after the restart is the
loaded object, not a second copy.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import stat
import tempfile
import time
from dataclasses import dataclass

from ribd.attributes import AttributeInterner
from ribd.checks import BadValue
from ribd.events import FAMILIES
from ribd.rib import FamilyState, Rib
from ribd.snapshot_capture import WRITE_CHUNK, Capture, capture
from ribd.snapshot_format import (
    MAGIC,
    MAX_FILE_BYTES,
    SnapshotError,
    check_counts,
    unpack,
)
from ribd.snapshot_v1 import ATTRIBUTE_FIELDS, _pack, _unpack, encode_v1, load_v1
from ribd.snapshot_v2 import encode_v2
from ribd.snapshot_v2_load import load_v2

FORMAT_VERSION = 2  # written by default; 1 on request
LOADED_REASON = "restored from snapshot"


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """What a snapshot holds, and what writing or loading it cost."""

    path: str
    created: float
    routers: int
    attribute_sets: int  # rows written; on load, distinct sets after interning
    prefixes: dict[str, int]
    paths: int
    file_bytes: int
    seconds: float


# -- writing -----------------------------------------------------------------


def write_snapshot(
    rib: Rib, path: str | os.PathLike[str], *, chunk: int = WRITE_CHUNK, version: int = 2
) -> SnapshotInfo:
    """Write ``rib`` to ``path`` atomically (tmp file, fsync, rename), in format ``version``.

    The lock is held for the router list, for each family's key list, then
    for ``chunk`` prefixes at a time, so feed updates wait milliseconds, not
    the whole write. Each prefix is consistent; the file as a whole is not a
    single instant (a prefix added meanwhile may be missing), which BGP's
    refresh after the restart makes irrelevant.
    """
    if version not in (1, 2):
        raise ValueError(f"snapshot format version {version!r} does not exist")
    started = time.perf_counter()
    path = os.fspath(path)
    # No cyclic GC while writing: the walk makes millions of short-lived
    # acyclic objects (lists of ids and codes), and each full collection
    # would rescan the service's whole heap (the RIB: gigabytes with many
    # routers). Restored after, as load_snapshot does.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        cap = capture(rib, chunk)
        data = (encode_v1 if version == 1 else encode_v2)(cap)
    finally:
        if gc_was_enabled:
            gc.enable()
    _write_atomically(path, data)
    return SnapshotInfo(
        path=path,
        created=cap.created,
        routers=len(cap.routers),
        attribute_sets=len(cap.sets),
        prefixes={f: len(keys) for f, (keys, _) in cap.families.items()},
        paths=cap.paths,
        file_bytes=len(data),
        seconds=time.perf_counter() - started,
    )


LEFTOVER_AGE = 60.0  # s: a temporary file untouched this long is no write going on


def _temporary_prefix(path: str) -> str:
    return f"{os.path.basename(path)}.tmp."


def remove_leftovers(path: str, *, older_than: float = LEFTOVER_AGE) -> list[tuple[str, int]]:
    """Remove the temporary files of writes to ``path`` that never finished, as
    (path, bytes) each.

    A write creates its file, writes it in one call, syncs and renames it: a
    process killed in between (kill -9, the OOM killer, a power cut) leaves it
    there, as large as a snapshot (65 MB with 64 routers), and each such crash
    another one. A write going on touched its file within the last seconds, so
    only regular files untouched for ``older_than`` seconds are taken; a service
    holding the path (``SnapshotLock``) between its own writes knows that none is
    going on and passes 0.
    """
    directory = os.path.dirname(os.path.abspath(path))
    prefix = _temporary_prefix(path)
    try:
        names = [n for n in os.listdir(directory) if n.startswith(prefix)]
    except FileNotFoundError:
        return []
    removed = []
    now = time.time()
    for name in names:
        full = os.path.join(directory, name)
        try:
            st = os.lstat(full)
            if not stat.S_ISREG(st.st_mode) or now - st.st_mtime < older_than:
                continue
            os.unlink(full)
        except FileNotFoundError:
            continue
        removed.append((full, st.st_size))
    return removed


class SnapshotPathInUse(Exception):
    """Another process holds this snapshot path (``SnapshotLock``)."""

    def __init__(self, path: str, pid: int | None) -> None:
        self.path, self.pid = path, pid
        holder = f"pid {pid}" if pid else "pid unknown"
        super().__init__(f"{path} is in use by another attribution service ({holder})")


class SnapshotLock:
    """A snapshot path held by one service for its whole life: flock(2) on ``<path>.lock``.

    Why: two services given one ``snapshot_path`` (a config copied to run a second
    instance) overwrote each other's snapshot every interval, so a restart of either
    loaded the other's routers; and neither could tell the other's write going on
    from a killed write's leftover, hence the one-minute rule of ``remove_leftovers``.
    The kernel drops a flock when its holder dies however it dies (kill -9, the OOM
    killer), so no stale lock is ever left to clean up; the descriptor is not
    inherited (close-on-exec), so a child such as ExaBGP cannot outlive it holding
    it. The file only holds the holder's pid, for the refusal's message; it is never
    removed (removing a lock file races a process that has just opened it).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock_path = f"{path}.lock"
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(self.lock_path, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder_pid(fd)
            os.close(fd)
            raise SnapshotPathInUse(path, pid) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # held all the same; only the message of a refused second one is poorer
        self._fd: int | None = fd

    def release(self) -> None:
        """Let the path go (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor drops the flock


def snapshot_holder(path: str) -> tuple[bool, int | None]:
    """(held, pid) for ``path``: whether a running service holds it (``SnapshotLock``)
    and its pid when known. Reads only: creates nothing (for ``attribution check``)."""
    try:
        fd = os.open(f"{path}.lock", os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False, None  # no lock file: never held, or not readable to us
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True, _holder_pid(fd)
        return False, None  # the shared lock goes with the descriptor
    finally:
        os.close(fd)


def _holder_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and 0 < len(text) < 11 else None


def _write_atomically(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    # A unique name: a periodic write and the shutdown write may overlap.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=_temporary_prefix(path))
    try:
        with open(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # The rename itself must survive a crash too.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- loading -----------------------------------------------------------------


def load_snapshot(
    rib: Rib,
    path: str | os.PathLike[str],
    *,
    hold_time: float,
    max_age: float | None = None,
) -> SnapshotInfo:
    """Load a snapshot (either format) into an empty ``rib``; its routes are stale for
    ``hold_time`` s.

    Raises SnapshotError for anything wrong with the file (the RIB is then
    left empty), OSError if it cannot be read (FileNotFoundError: no
    snapshot yet), ValueError if ``rib`` is not empty or ``hold_time`` is
    not positive. ``max_age`` refuses a snapshot older than that many
    seconds: routes from long ago are worse than none.

    The cyclic GC is off while loading (millions of new acyclic objects
    would make it rescan the heap again and again) and restored after.
    """
    if not hold_time > 0:
        raise ValueError(f"hold_time must be positive, not {hold_time!r}")
    started = time.perf_counter()
    path = os.fspath(path)
    with rib.lock:
        _require_empty(rib)
    size = os.stat(path).st_size
    if size > MAX_FILE_BYTES:
        raise SnapshotError(f"{path}: {size} bytes is more than the {MAX_FILE_BYTES} allowed")
    with open(path, "rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        try:
            header, raw = unpack(data)
            if max_age is not None and rib.clock() - header["created"] > max_age:
                raise SnapshotError(
                    f"written {rib.clock() - header['created']:.0f} s ago, "
                    f"more than max_age {max_age:.0f} s"
                )
            loaded = (load_v1 if header["version"] == 1 else load_v2)(raw, rib)
            del raw
            check_counts(header, loaded.header_counts())
        except (SnapshotError, BadValue) as exc:
            raise SnapshotError(f"{path}: {exc}") from None
        except RecursionError:
            # Every check is at a fixed depth and messages use show(): not expected.
            raise SnapshotError(f"{path}: a value is nested too deeply") from None
        except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError) as exc:
            # A shape the checks did not foresee: still a bad file.
            detail = f"{type(exc).__name__}: {str(exc)[:200]}"
            raise SnapshotError(f"{path}: malformed snapshot body ({detail})") from None
        with rib.lock:
            _require_empty(rib)
            commit(loaded, rib, hold_time)
    finally:
        if gc_was_enabled:
            gc.enable()
    return SnapshotInfo(
        path=path,
        created=header["created"],
        routers=len(loaded.routers),
        attribute_sets=len(loaded.interner),
        prefixes={f: len(t.store) for f, t in loaded.tables.items()},
        paths=loaded.paths,
        file_bytes=len(data),
        seconds=time.perf_counter() - started,
    )


def _require_empty(rib: Rib) -> None:
    if rib.routers or len(rib.interner) or any(len(t.store) for t in rib.tables.values()):
        raise ValueError("a snapshot loads only into an empty Rib")


def commit(loaded, rib: Rib, hold_time: float) -> None:
    """Swap a validated snapshot's tables and routers in (under ``rib.lock``): nothing
    here can fail half way on bad data, it was all checked before."""
    now = rib.clock()
    for i, r in enumerate(loaded.routers):
        for family in FAMILIES:
            prefixes, paths = loaded.counts[family]
            r.families[family] = FamilyState(
                slot=i, prefixes=prefixes[i], paths=paths[i], converged=False
            )
        r.session, r.session_since, r.last_reason = "down", now, LOADED_REASON
        if any(fs.prefixes for fs in r.families.values()):
            r.stale_until = now + hold_time
    rib.tables.update(loaded.tables)
    rib.routers.update((r.neighbor, r) for r in loaded.routers)
    if not len(rib.interner):  # the start-up case: take the loaded interner whole
        for name in AttributeInterner.__slots__:
            setattr(rib.interner, name, getattr(loaded.interner, name))
    else:
        rib.interner.adopt(loaded.interner)
    rib._pathsets.update(loaded.pathsets)


__all__ = [
    "ATTRIBUTE_FIELDS",
    "FORMAT_VERSION",
    "MAGIC",
    "Capture",
    "SnapshotError",
    "SnapshotInfo",
    "SnapshotLock",
    "SnapshotPathInUse",
    "_pack",
    "_unpack",
    "capture",
    "load_snapshot",
    "snapshot_holder",
    "write_snapshot",
]
