"""RIB snapshots for warm restarts: serve a full table seconds after start.

The service writes a snapshot on shutdown and periodically, and loads it at
start into the empty RIB. Loaded routes are only a head start: every router
comes back with its session ``down`` and its routes marked stale until
``hold_time`` has passed, so answers from them are flagged stale. When the
BGP session comes up, the RIB's normal restart logic moves them to the stale
generation and the router's End-of-RIB retires whatever it did not announce
again; a router that never comes back is purged when the hold time expires.

The file is untrusted input on load (it may be truncated, corrupt, from
another version, or hostile). It is plain JSON behind a checksummed header,
never pickle: every field is type- and range-checked, prefixes go through
``normalise_prefix``, attribute sets are rebuilt by the RIB's interner so
derived AS numbers are recomputed, and nothing reaches the RIB until the
whole file has been validated. Any fault raises ``SnapshotError`` naming it,
and the RIB stays empty.

Format, version 1
-----------------

One header line, then the body::

    ribd-snapshot {"version":1,"created":...,...}\\n
    <body: zlib (level 1) of an orjson document>

Header (JSON object, at most 4 KiB): ``version`` (1), ``created`` (the RIB
clock, Unix seconds), ``compression`` ("zlib"), ``body_bytes`` (stored body
length), ``raw_bytes`` (decompressed length), ``blake2b`` (hex BLAKE2b-256
of the stored body), and counts for humans and cross-checks: ``routers``,
``attribute_sets``, ``prefixes`` (per family), ``paths`` (routes, i.e.
(router, prefix, path id) triples).

Body (JSON object):

* ``attribute_fields``: the names of the attribute columns below, in order:
  as_path, origin, next_hop, local_pref, med, communities, large_communities,
  extended_communities, originator_id, cluster_list, atomic_aggregate,
  aggregator. A reader refuses a list that differs from its own.
* ``attributes``: each distinct attribute set once, as a list of those
  fields. as_path is ``[[segment type (1 set, 2 sequence, 3 confed sequence,
  4 confed set), [AS, ...]], ...]`` (32-bit ASes, no empty segment);
  origin "igp" | "egp" | "incomplete"; local_pref and med null or 32-bit;
  communities 32-bit ints ``(A << 16) | B``; large communities ``[a, b, c]``;
  extended communities, cluster list: strings; atomic_aggregate a boolean.
  Derived fields (origin AS, peer AS) are not stored.
* ``routers``: ``{"neighbor", "name", "peer_as", "router_id", "last_update",
  "session", "stale"}``; ``stale`` says the router's routes were already
  stale when written (informational: all loaded routes are stale).
* ``entries``: distinct per-prefix route sets, like the RIB's interned
  entries: a list indexed by router, trailing nulls dropped; each value is
  null (no route), an attribute index (one path, path id 0), or
  ``[[path id, attribute index], ...]`` (ADD-PATH).
* ``families``: ``{"ipv4 unicast": {"prefixes": [...], "entries": [...]},
  "ipv6 unicast": ...}``, parallel lists: canonical prefix text and its
  entry index.

A router's routes are its current ones, and for prefixes it has no current
route, its stale ones (what a lookup would answer). Storing entries rather
than one row per route makes load one sort of the prefixes into the
store's arrays (``PrefixStore.load``), each pointing at an already built
tuple.

Interning: attribute sets are built by an interner from their validated
rows, as the parser builds them (one shared core per path for all routers,
a small per-router set on it), and that interner becomes the RIB's, so a
set re-announced after the restart is the loaded object, not a second copy.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import sys
import tempfile
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any

import orjson

from ribd.attributes import (
    AS_CONFED_SEQUENCE,
    AS_CONFED_SET,
    AS_SEQUENCE,
    AS_SET,
    ATTRIBUTE_FIELDS,
    AttributeInterner,
    PathAttributes,
    attribute_row,
)
from ribd.checks import (
    MAX_TEXT,
    BadValue,
    address,
    ipv4,
    ipv4_list,
    show,
    text,
    texts,
    timestamp,
    u32,
    u32_list,
)
from ribd.events import FAMILIES, IPV4_UNICAST
from ribd.prefixes import BadPrefix, normalise_prefix
from ribd.rib import FamilyState, FamilyTable, PathSet, Rib, RouterRib, preference_key

MAGIC = b"ribd-snapshot "
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 4096
MAX_FILE_BYTES = 2 << 30
MAX_RAW_BYTES = 4 << 30
WRITE_CHUNK = 16384  # prefixes read per lock hold while writing
COMPRESS_LEVEL = 1
LOADED_REASON = "restored from snapshot"

_ORIGINS = {"igp": "igp", "egp": "egp", "incomplete": "incomplete"}
_SEGMENT_TYPES = frozenset({AS_SET, AS_SEQUENCE, AS_CONFED_SEQUENCE, AS_CONFED_SET})
_SESSIONS = frozenset({"idle", "connected", "up", "down"})
_MAX_TEXT = MAX_TEXT  # the parser's limit for aggregator; names are cut to it on write
_HEADER_KEYS = frozenset(
    {
        "version",
        "created",
        "compression",
        "body_bytes",
        "raw_bytes",
        "blake2b",
        "routers",
        "attribute_sets",
        "prefixes",
        "paths",
    }
)


class SnapshotError(ValueError):
    """The snapshot cannot be used; the message says what is wrong with it."""


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
    rib: Rib, path: str | os.PathLike[str], *, chunk: int = WRITE_CHUNK
) -> SnapshotInfo:
    """Write ``rib`` to ``path`` atomically (tmp file, fsync, rename).

    The lock is held for the router list, for each family's key list, then
    for ``chunk`` prefixes at a time, so feed updates wait milliseconds, not
    the whole write. Each prefix is consistent; the file as a whole is not a
    single instant (a prefix added meanwhile may be missing), which BGP's
    refresh after the restart makes irrelevant.
    """
    started = time.perf_counter()
    path = os.fspath(path)
    with rib.lock:
        created = rib.clock()
        routers = list(rib.routers.values())
        router_docs = [
            {
                "neighbor": r.neighbor,
                "name": r.name[:_MAX_TEXT],
                "peer_as": r.peer_as,
                "router_id": r.router_id,
                "last_update": r.last_update,
                "session": r.session,
                "stale": r.current_stale
                or any(
                    fs.stale_slot is not None and fs.stale_prefixes for fs in r.families.values()
                ),
            }
            for r in routers
        ]

    attr_rows: list[list] = []
    attr_index: dict[int, int] = {}  # id(PathAttributes) -> row
    entry_index: dict[tuple, int] = {}  # encoded entry -> row
    pinned: list[object] = []  # keeps objects alive so their ids stay unique
    paths = 0

    def attr(a: PathAttributes) -> int:
        i = attr_index.get(id(a))
        if i is None:
            i = attr_index[id(a)] = len(attr_rows)
            attr_rows.append(attribute_row(a))
            pinned.append(a)
        return i

    def encode(entry: tuple, layout: tuple[tuple[int, int | None], ...]) -> tuple[int, int]:
        """(entry row or -1 when no captured router has a route, paths)."""
        n = len(entry)
        values: list[object] = []
        count = 0
        for slot, stale in layout:
            v = entry[slot] if slot < n else None
            if v is None and stale is not None and stale < n:
                v = entry[stale]
            if v is None:
                values.append(None)
            elif type(v) is PathAttributes:
                values.append(attr(v))
                count += 1
            else:
                values.append(tuple((pid, attr(a)) for pid, a in v))  # type: ignore[attr-defined]
                count += len(v)  # type: ignore[arg-type]
        while values and values[-1] is None:
            values.pop()
        if not values:
            return -1, 0
        t = tuple(values)
        return entry_index.setdefault(t, len(entry_index)), count

    families_doc: dict[str, dict[str, list]] = {}
    for family, table in rib.tables.items():
        with rib.lock:
            table.store.merge()  # every prefix in the arrays
            family_keys = table.store.keys
        out_prefixes: list[str] = []
        out_entries: list[int] = []
        caches: dict[tuple, dict[int, tuple[int, int]]] = {}
        for start in range(0, len(family_keys), chunk):
            part = family_keys[start : start + chunk]
            texts = table.store.texts(part)
            with rib.lock:
                store = table.store
                layout = tuple(
                    (r.families[family].slot, r.families[family].stale_slot) for r in routers
                )
                if store.keys is family_keys:  # values change in place, keys never
                    got = store.values[start : start + chunk].tolist()
                else:  # merged since: look each prefix up again
                    got = [store.get(p) for p in texts]
            cache = caches.setdefault(layout, {})
            for key, entry in zip(texts, got, strict=True):
                if entry is None:
                    continue
                hit = cache.get(id(entry))
                if hit is None:
                    hit = cache[id(entry)] = encode(entry, layout)
                    pinned.append(entry)
                if hit[0] >= 0:
                    out_prefixes.append(key)
                    out_entries.append(hit[0])
                    paths += hit[1]
        families_doc[family] = {"prefixes": out_prefixes, "entries": out_entries}

    doc = {
        "attribute_fields": ATTRIBUTE_FIELDS,
        "attributes": attr_rows,
        "routers": router_docs,
        "entries": list(entry_index),
        "families": families_doc,
    }
    data = _pack(doc, created=created, paths=paths)
    _write_atomically(path, data)
    return SnapshotInfo(
        path=path,
        created=created,
        routers=len(router_docs),
        attribute_sets=len(attr_rows),
        prefixes={f: len(d["prefixes"]) for f, d in families_doc.items()},
        paths=paths,
        file_bytes=len(data),
        seconds=time.perf_counter() - started,
    )


def _pack(doc: dict, *, created: float, paths: int) -> bytes:
    """Header line + compressed body for ``doc`` (also used by tests to craft files)."""
    raw = orjson.dumps(doc)
    body = zlib.compress(raw, COMPRESS_LEVEL)
    header = {
        "version": FORMAT_VERSION,
        "created": created,
        "compression": "zlib",
        "body_bytes": len(body),
        "raw_bytes": len(raw),
        "blake2b": blake2b(body, digest_size=32).hexdigest(),
        "routers": len(doc["routers"]),
        "attribute_sets": len(doc["attributes"]),
        "prefixes": {f: len(d["prefixes"]) for f, d in doc["families"].items()},
        "paths": paths,
    }
    return MAGIC + orjson.dumps(header) + b"\n" + body


def _write_atomically(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    # A unique name: a periodic write and the shutdown write may overlap.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f"{os.path.basename(path)}.tmp.")
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
    """Load a snapshot into an empty ``rib``; its routes are stale for ``hold_time`` s.

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
            header, doc = _unpack(data)
            if max_age is not None and rib.clock() - header["created"] > max_age:
                raise SnapshotError(
                    f"written {rib.clock() - header['created']:.0f} s ago, "
                    f"more than max_age {max_age:.0f} s"
                )
            loaded = _Loaded(doc, rib)
            loaded.check_header(header)
        except (SnapshotError, BadValue) as exc:
            raise SnapshotError(f"{path}: {exc}") from None
        except RecursionError:
            # Every check is at a fixed depth and messages use show(): not expected.
            raise SnapshotError(f"{path}: a value is nested too deeply") from None
        except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError) as exc:
            # A shape the checks above did not foresee: still a bad file.
            detail = f"{type(exc).__name__}: {str(exc)[:200]}"
            raise SnapshotError(f"{path}: malformed snapshot body ({detail})") from None
        with rib.lock:
            _require_empty(rib)
            loaded.commit(rib, hold_time)
    finally:
        if gc_was_enabled:
            gc.enable()
    return SnapshotInfo(
        path=path,
        created=header["created"],
        routers=len(loaded.routers),
        attribute_sets=len(loaded.interner),
        prefixes={f: len(p) for f, (p, _) in loaded.families.items()},
        paths=loaded.paths,
        file_bytes=len(data),
        seconds=time.perf_counter() - started,
    )


def _require_empty(rib: Rib) -> None:
    if rib.routers or len(rib.interner) or any(len(t.store) for t in rib.tables.values()):
        raise ValueError("a snapshot loads only into an empty Rib")


def _unpack(data: bytes) -> tuple[dict, Any]:
    """Check magic, header, length and checksum; return (header, body document)."""
    if not data.startswith(MAGIC):
        raise SnapshotError("bad magic: not a ribd RIB snapshot")
    end = data.find(b"\n", 0, MAX_HEADER_BYTES)
    if end < 0:
        raise SnapshotError(f"no header line within {MAX_HEADER_BYTES} bytes (truncated?)")
    try:
        header = orjson.loads(data[len(MAGIC) : end])
    except orjson.JSONDecodeError as exc:
        raise SnapshotError(f"header is not JSON ({exc})") from None
    if type(header) is not dict:
        raise SnapshotError("header is not a JSON object")
    version = header.get("version")
    if version != FORMAT_VERSION or type(version) is not int:
        raise SnapshotError(
            f"format version {show(version)} is not supported (this build reads {FORMAT_VERSION})"
        )
    if set(header) != _HEADER_KEYS:
        raise SnapshotError(f"header fields {sorted(header)} are not {sorted(_HEADER_KEYS)}")
    created = header["created"]
    if type(created) not in (int, float) or not math.isfinite(created) or created < 0:
        raise SnapshotError(f"header: bad created time {show(created)}")
    if header["compression"] != "zlib":
        raise SnapshotError(f"header: unknown compression {show(header['compression'])}")
    for name, limit in (("body_bytes", MAX_FILE_BYTES), ("raw_bytes", MAX_RAW_BYTES)):
        value = header[name]
        if type(value) is not int or not 0 <= value <= limit:
            raise SnapshotError(f"header: bad {name} {show(value)}")
    body = data[end + 1 :]
    if len(body) < header["body_bytes"]:
        raise SnapshotError(f"truncated: body has {len(body)} of {header['body_bytes']} bytes")
    if len(body) > header["body_bytes"]:
        raise SnapshotError(f"{len(body) - header['body_bytes']} bytes after the end of the body")
    if blake2b(body, digest_size=32).hexdigest() != header["blake2b"]:
        raise SnapshotError("checksum mismatch: the body is corrupt")
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(body, header["raw_bytes"] + 1)
    except zlib.error as exc:
        raise SnapshotError(f"body does not decompress ({exc})") from None
    if len(raw) != header["raw_bytes"] or not inflater.eof or inflater.unused_data:
        raise SnapshotError(
            f"body decompresses to {len(raw)}+ bytes, header says {header['raw_bytes']}"
        )
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SnapshotError(f"body is not JSON ({exc})") from None
    if type(doc) is not dict:
        raise SnapshotError("body is not a JSON object")
    return header, doc


_INTS = {int}
_U32_MAX = 0xFFFFFFFF


def _u32s(values: Any, what: str) -> tuple[int, ...]:
    """``u32_list`` with the common case checked in C (type set, min, max): the same
    rule, several times faster on the millions of lists a many-router snapshot holds."""
    if type(values) is list and (
        not values
        or (set(map(type, values)) == _INTS and min(values) >= 0 and max(values) <= _U32_MAX)
    ):
        return tuple(values)
    return u32_list(values, what)  # raises, naming the bad value


def _attribute_row(row: Any, where: str) -> tuple:
    """Validate one attribute row; its fields in make_attributes' order (the interner's
    row: derived fields are recomputed when the set is built)."""
    if type(row) is not list or len(row) != len(ATTRIBUTE_FIELDS):
        raise SnapshotError(f"{where} is not a list of {len(ATTRIBUTE_FIELDS)} fields")
    (
        raw_path,
        origin,
        next_hop,
        local_pref,
        med,
        communities,
        large,
        extended,
        originator_id,
        cluster_list,
        atomic,
        aggregator,
    ) = row
    if type(raw_path) is not list:
        raise SnapshotError(f"{where}: as_path is not a list")
    segments = []
    for n, segment in enumerate(raw_path):
        if type(segment) is not list or len(segment) != 2 or segment[0] not in _SEGMENT_TYPES:
            raise SnapshotError(f"{where}: as_path segment {n} is not [type 1-4, [AS, ...]]")
        if type(segment[0]) is not int:
            raise SnapshotError(f"{where}: as_path segment {n} type is not an integer")
        asns = _u32s(segment[1], f"{where}: as_path segment {n}")
        if not asns:
            raise SnapshotError(f"{where}: as_path segment {n} is empty")
        segments.append((segment[0], asns))
    checked_origin = _ORIGINS.get(origin) if type(origin) is str else None
    if checked_origin is None:
        raise SnapshotError(f"{where}: bad origin {show(origin)}")
    if type(large) is not list:
        raise SnapshotError(f"{where}: large_communities is not a list")
    large_out = []
    for c in large:
        if type(c) is not list or len(c) != 3:
            raise SnapshotError(f"{where}: large community {show(c)} is not [a, b, c]")
        large_out.append(_u32s(c, f"{where}: large community"))
    if type(atomic) is not bool:
        raise SnapshotError(f"{where}: atomic_aggregate is not a boolean")
    return (
        tuple(segments),
        checked_origin,
        sys.intern(address(next_hop, f"{where}: next_hop")),
        None if local_pref is None else u32(local_pref, f"{where}: local_pref"),
        None if med is None else u32(med, f"{where}: med"),
        # (A << 16) | B: 16/16 bits is exactly 32-bit unsigned.
        _u32s(communities, f"{where}: communities"),
        tuple(large_out),
        texts(extended, f"{where}: extended_communities"),
        ipv4(originator_id, f"{where}: originator_id", empty=True),
        ipv4_list(cluster_list, f"{where}: cluster_list"),
        atomic,
        text(aggregator, f"{where}: aggregator", _MAX_TEXT),
    )


def _field(doc: dict, key: str, kind: type, where: str = "body") -> Any:
    value = doc.get(key)
    if type(value) is not kind:
        raise SnapshotError(f"{where}: {key!r} is missing or not a {kind.__name__}")
    return value


class _Loaded:
    """A validated snapshot, built off to the side; ``commit`` puts it into the RIB."""

    def __init__(self, doc: dict, rib: Rib) -> None:
        fields = _field(doc, "attribute_fields", list)
        if tuple(fields) != ATTRIBUTE_FIELDS:
            raise SnapshotError(f"attribute_fields {show(fields)} are not {ATTRIBUTE_FIELDS}")
        # Built in an interner of their own (sharing AS numbers, communities ...
        # between sets as ingest does, derived fields computed once); ``commit``
        # hands it to the RIB.
        self.interner = AttributeInterner()
        intern = self.interner.intern
        self.attributes = [
            intern(_attribute_row(row, f"attribute set #{i}"))
            for i, row in enumerate(_field(doc, "attributes", list))
        ]
        self.routers = self._routers(_field(doc, "routers", list), rib)
        self._pathsets: dict[PathSet, PathSet] = {}
        values, counts = self._entries(_field(doc, "entries", list))
        families_doc = _field(doc, "families", dict)
        unknown = set(families_doc) - set(FAMILIES)
        if unknown:
            names = [show(f) for f in sorted(unknown)][:4]
            raise SnapshotError(f"unknown address families {names}")
        n = len(self.routers)
        self.tables: dict[str, FamilyTable] = {}
        self.families: dict[str, tuple[list[str], list[int]]] = {}
        self.counts = {f: ([0] * n, [0] * n) for f in FAMILIES}  # prefixes, paths
        self.paths = 0
        for family in FAMILIES:
            fam = families_doc.get(family, {"prefixes": [], "entries": []})
            if type(fam) is not dict:
                raise SnapshotError(f"{family}: not an object")
            self._family(family, fam, values, counts)

    def _routers(self, docs: list, rib: Rib) -> list[RouterRib]:
        routers: list[RouterRib] = []
        seen: set[str] = set()
        for i, d in enumerate(docs):
            where = f"router #{i}"
            if type(d) is not dict:
                raise SnapshotError(f"{where} is not an object")
            neighbor = address(d.get("neighbor"), f"{where}: neighbor")
            if neighbor in seen:
                raise SnapshotError(f"{where}: neighbor {neighbor} is listed twice")
            seen.add(neighbor)
            last_update = timestamp(d.get("last_update"), f"{where}: last_update")
            if d.get("session") not in _SESSIONS or type(d.get("stale")) is not bool:
                raise SnapshotError(f"{where}: bad session or stale field")
            name = text(d.get("name"), f"{where}: name", _MAX_TEXT)
            routers.append(
                RouterRib(
                    neighbor=neighbor,
                    name=rib.router_names.get(neighbor, name or neighbor),
                    peer_as=u32(d.get("peer_as"), f"{where}: peer_as"),
                    router_id=ipv4(d.get("router_id"), f"{where}: router_id", empty=True),
                    last_update=last_update,
                )
            )
        return routers

    def _entries(self, docs: list) -> tuple[list[list[object]], list[tuple[int, ...]]]:
        """Per entry: the per-router values (RIB objects) and per-router path counts."""
        n_routers = len(self.routers)
        attrs = self.attributes
        n_attrs = len(attrs)
        pathsets = self._pathsets
        values_out: list[list[object]] = []
        counts_out: list[tuple[int, ...]] = []
        # One path per router, no hole (most entries): checked in C, and their
        # counts are one shared tuple per length (``_family`` sums per tuple).
        ones = [(1,) * k for k in range(n_routers + 1)]
        getitem = attrs.__getitem__
        patterns: dict[tuple[int, ...], tuple[int, ...]] = {}
        for e, doc in enumerate(docs):
            if type(doc) is not list or not 0 < len(doc) <= n_routers:
                raise SnapshotError(f"entry #{e} is not a list of 1..{n_routers} router values")
            if set(map(type, doc)) == _INTS and min(doc) >= 0 and max(doc) < n_attrs:
                values_out.append(list(map(getitem, doc)))
                counts_out.append(ones[len(doc)])
                continue
            values: list[object] = []
            counts: list[int] = []
            for r, v in enumerate(doc):
                if v is None:
                    values.append(None)
                    counts.append(0)
                elif type(v) is int:
                    if not 0 <= v < n_attrs:
                        raise SnapshotError(
                            f"entry #{e}, router #{r}: attribute index {v} out of range "
                            f"(0..{n_attrs - 1})"
                        )
                    values.append(attrs[v])
                    counts.append(1)
                elif type(v) is list and v:
                    paths: list[tuple[int, PathAttributes]] = []
                    for item in v:
                        if type(item) is not list or len(item) != 2:
                            raise SnapshotError(
                                f"entry #{e}, router #{r}: {show(item)} is not [path id, index]"
                            )
                        pid = u32(item[0], f"entry #{e}, router #{r}: path id")
                        ai = item[1]
                        if type(ai) is not int or not 0 <= ai < n_attrs:
                            raise SnapshotError(
                                f"entry #{e}, router #{r}: attribute index {show(ai)} out of "
                                f"range (0..{n_attrs - 1})"
                            )
                        paths.append((pid, attrs[ai]))
                    if len({pid for pid, _ in paths}) != len(paths):
                        raise SnapshotError(f"entry #{e}, router #{r}: a path id appears twice")
                    if len(paths) == 1 and paths[0][0] == 0:
                        values.append(paths[0][1])  # the RIB's form for a lone path id 0
                    else:
                        # Best first by our own rules, whatever order the file had.
                        paths.sort(key=preference_key)
                        ps = PathSet(paths)
                        values.append(pathsets.setdefault(ps, ps))
                    counts.append(len(paths))
                else:
                    raise SnapshotError(f"entry #{e}, router #{r}: bad value {show(v)}")
            while values and values[-1] is None:
                values.pop()
                counts.pop()
            if not values:
                raise SnapshotError(f"entry #{e} has no route")
            values_out.append(values)
            pattern = tuple(counts)
            counts_out.append(patterns.setdefault(pattern, pattern))
        return values_out, counts_out

    def _family(
        self, family: str, doc: dict, values: list[list[object]], counts: list[tuple[int, ...]]
    ) -> None:
        prefixes = _field(doc, "prefixes", list, family)
        indexes = _field(doc, "entries", list, family)
        if len(prefixes) != len(indexes):
            raise SnapshotError(
                f"{family}: {len(prefixes)} prefixes but {len(indexes)} entry indexes"
            )
        if not set(map(type, prefixes)) <= {str}:
            raise SnapshotError(f"{family}: a prefix is not a string")
        if not set(map(type, indexes)) <= {int}:
            raise SnapshotError(f"{family}: an entry index is not an integer")
        if indexes and (min(indexes) < 0 or max(indexes) >= len(values)):
            bad = next(i for i in indexes if not 0 <= i < len(values))
            raise SnapshotError(f"{family}: entry index {bad} out of range (0..{len(values) - 1})")
        version = 4 if family == IPV4_UNICAST else 6
        norm = normalise_prefix
        try:
            prefixes = [norm(p, version) for p in prefixes]
        except BadPrefix as exc:
            raise SnapshotError(f"{family}: {exc}") from None
        table = FamilyTable(family)
        for _ in self.routers:
            table.alloc_slot()  # router i gets slot i, as in rib.router()
        # One RIB entry per distinct snapshot entry this family uses; a new
        # tuple per family so each table's interning owns its own.
        used = Counter(indexes)
        built: list[tuple | None] = [None] * len(values)
        by_pattern: dict[int, int] = {}  # id of a shared counts tuple -> prefixes using it
        pattern_of: dict[int, tuple[int, ...]] = {}
        intern = table.intern
        for e, times in used.items():
            built[e] = intern(tuple(values[e]))
            pattern = counts[e]
            key = id(pattern)
            if key in by_pattern:
                by_pattern[key] += times
            else:
                by_pattern[key] = times
                pattern_of[key] = pattern
        prefix_counts, path_counts = self.counts[family]
        for key, times in by_pattern.items():
            for r, c in enumerate(pattern_of[key]):
                if c:
                    prefix_counts[r] += times
                    path_counts[r] += c * times
                    self.paths += c * times
        twice = table.store.load(prefixes, [built[e] for e in indexes])
        if twice is not None:
            raise SnapshotError(f"{family}: prefix {twice} appears twice")
        table._entries_at_last_gc = table.distinct_entries
        self.tables[family] = table
        self.families[family] = (prefixes, indexes)

    def check_header(self, header: dict) -> None:
        """The header's counts must describe this body (a cheap consistency check)."""
        body = {
            "routers": len(self.routers),
            "attribute_sets": len(self.attributes),
            "prefixes": {f: len(p) for f, (p, _) in self.families.items()},
            "paths": self.paths,
        }
        claimed = {k: header[k] for k in body}
        if type(claimed["prefixes"]) is dict and set(claimed["prefixes"]) <= set(FAMILIES):
            claimed["prefixes"] = {f: claimed["prefixes"].get(f, 0) for f in FAMILIES}
        if claimed != body:
            said = {
                k: {f: show(x) for f, x in list(v.items())[:4]} if type(v) is dict else show(v)
                for k, v in claimed.items()
            }
            raise SnapshotError(f"header counts {said} do not match the body {body}")

    def commit(self, rib: Rib, hold_time: float) -> None:
        """Swap the built tables and routers in (under ``rib.lock``): nothing here can fail
        half way on bad data, it was all checked before."""
        now = rib.clock()
        for i, r in enumerate(self.routers):
            for family in FAMILIES:
                prefixes, paths = self.counts[family]
                r.families[family] = FamilyState(
                    slot=i, prefixes=prefixes[i], paths=paths[i], converged=False
                )
            r.session, r.session_since, r.last_reason = "down", now, LOADED_REASON
            if any(fs.prefixes for fs in r.families.values()):
                r.stale_until = now + hold_time
        rib.tables.update(self.tables)
        rib.routers.update((r.neighbor, r) for r in self.routers)
        if not len(rib.interner):  # the start-up case: take the loaded interner whole
            for name in AttributeInterner.__slots__:
                setattr(rib.interner, name, getattr(self.interner, name))
        else:
            rib.interner.adopt(self.interner)
        rib._pathsets.update(self._pathsets)


__all__ = [
    "FORMAT_VERSION",
    "SnapshotError",
    "SnapshotInfo",
    "load_snapshot",
    "write_snapshot",
]
