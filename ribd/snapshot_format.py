"""The snapshot file's envelope, shared by every format version: magic, header, body.

One header line, then the body::

    ribd-snapshot {"version":2,"created":...,...}\\n
    <body: zlib (level 1) of the version's raw body>

Header (JSON object, at most 4 KiB): ``version`` (1 or 2), ``created`` (the
RIB clock, Unix seconds), ``compression`` ("zlib"), ``body_bytes`` (stored
body length), ``raw_bytes`` (decompressed length), ``blake2b`` (hex
BLAKE2b-256 of the stored body), and counts for humans and cross-checks:
``routers``, ``attribute_sets``, ``prefixes`` (per family), ``paths``
(routes, i.e. (router, prefix, path id) triples). What the raw body holds is
the version's business (``ribd.snapshot_v1``: one JSON document;
``ribd.snapshot_v2``: shared tables and numpy columns).

Everything here is checked before the body is parsed: a truncated, padded
or corrupt file is refused by its lengths and checksum, whatever version it
claims.
"""

from __future__ import annotations

import math
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from hashlib import blake2b

import orjson

from ribd.checks import show
from ribd.events import FAMILIES

MAGIC = b"ribd-snapshot "
VERSIONS = (1, 2)
MAX_HEADER_BYTES = 4096
MAX_FILE_BYTES = 2 << 30
MAX_RAW_BYTES = 4 << 30
COMPRESS_LEVEL = 1
_ZLIB_HEADER = b"\x78\x01"
_MAX_THREADS = 4
_PIECE_MIN = 4 << 20  # below this, one call: threads would cost more than they save
HEADER_KEYS = frozenset(
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


def pack(raw: bytes, *, version: int, created: float, counts: dict) -> bytes:
    """Header line + compressed ``raw`` body; ``counts``: routers, attribute_sets,
    prefixes (per family), paths."""
    body = deflate(raw)
    header = {
        "version": version,
        "created": created,
        "compression": "zlib",
        "body_bytes": len(body),
        "raw_bytes": len(raw),
        "blake2b": blake2b(body, digest_size=32).hexdigest(),
        **counts,
    }
    return MAGIC + orjson.dumps(header) + b"\n" + body


def deflate(raw: bytes, *, threads: int | None = None) -> bytes:
    """``raw`` as one zlib stream (level ``COMPRESS_LEVEL``), compressed a piece per
    thread the way pigz does it: each piece a raw deflate ending on a byte boundary
    (``Z_SYNC_FLUSH``), the last one final, between the zlib header and the Adler-32
    of the whole. Any zlib inflater reads it as one stream; zlib lets go of the GIL
    while it works, so a 100 MB body (16 routers) compresses on every core instead
    of taking ~1 s of one. Small bodies are compressed in one call."""
    threads = threads or min(_MAX_THREADS, os.cpu_count() or 1)
    if threads < 2 or len(raw) < _PIECE_MIN:
        return zlib.compress(raw, COMPRESS_LEVEL)
    view = memoryview(raw)
    step = -(-len(raw) // threads)
    pieces = [view[i : i + step] for i in range(0, len(raw), step)]

    def piece(k: int) -> bytes:
        z = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, -15)
        last = k == len(pieces) - 1
        return z.compress(pieces[k]) + z.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)

    with ThreadPoolExecutor(threads) as pool:
        check = pool.submit(zlib.adler32, view)
        parts = list(pool.map(piece, range(len(pieces))))
        trailer = check.result().to_bytes(4, "big")
    # 0x78 0x01: deflate, 32 KiB window, "fastest" (what zlib writes for level 1).
    return b"".join([_ZLIB_HEADER, *parts, trailer])


def unpack(data: bytes) -> tuple[dict, bytes]:
    """Check magic, header, length and checksum; return (header, raw body)."""
    header, end = _header(data)
    body = data[end + 1 :]
    _check_body_length(header, len(body))
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
    return header, raw


def inspect_file(path: str, *, chunk: int = 8 << 20) -> dict:
    """The header of the snapshot at ``path``, its envelope checked as ``unpack`` checks
    it (lengths, checksum) but read in chunks, never inflated or parsed: what an
    operator's check can afford on a 2 GiB file. Raises SnapshotError or OSError."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_FILE_BYTES + MAX_HEADER_BYTES:
            raise SnapshotError(f"{size} bytes, more than a snapshot can be")
        header, end = _header(f.read(MAX_HEADER_BYTES))
        _check_body_length(header, size - end - 1)
        f.seek(end + 1)
        digest = blake2b(digest_size=32)
        while piece := f.read(chunk):
            digest.update(piece)
    if digest.hexdigest() != header["blake2b"]:
        raise SnapshotError("checksum mismatch: the body is corrupt")
    return header


def _check_body_length(header: dict, length: int) -> None:
    if length < header["body_bytes"]:
        raise SnapshotError(f"truncated: body has {length} of {header['body_bytes']} bytes")
    if length > header["body_bytes"]:
        raise SnapshotError(f"{length - header['body_bytes']} bytes after the end of the body")


def _header(data: bytes) -> tuple[dict, int]:
    """The checked header at the start of ``data`` and where its line ends."""
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
    if type(version) is not int or version not in VERSIONS:
        raise SnapshotError(
            f"format version {show(version)} is not supported (this build reads "
            f"{', '.join(map(str, VERSIONS))})"
        )
    if set(header) != HEADER_KEYS:
        raise SnapshotError(f"header fields {sorted(header)} are not {sorted(HEADER_KEYS)}")
    created = header["created"]
    if type(created) not in (int, float) or not math.isfinite(created) or created < 0:
        raise SnapshotError(f"header: bad created time {show(created)}")
    if header["compression"] != "zlib":
        raise SnapshotError(f"header: unknown compression {show(header['compression'])}")
    for name, limit in (("body_bytes", MAX_FILE_BYTES), ("raw_bytes", MAX_RAW_BYTES)):
        value = header[name]
        if type(value) is not int or not 0 <= value <= limit:
            raise SnapshotError(f"header: bad {name} {show(value)}")
    return header, end


def check_counts(header: dict, body: dict) -> None:
    """The header's counts must describe the body (a cheap consistency check)."""
    claimed = {k: header[k] for k in body}
    if type(claimed["prefixes"]) is dict and set(claimed["prefixes"]) <= set(FAMILIES):
        claimed["prefixes"] = {f: claimed["prefixes"].get(f, 0) for f in FAMILIES}
    if claimed != body:
        said = {
            k: {f: show(x) for f, x in list(v.items())[:4]} if type(v) is dict else show(v)
            for k, v in claimed.items()
        }
        raise SnapshotError(f"header counts {said} do not match the body {body}")
