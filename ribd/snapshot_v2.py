"""Snapshot format 2: what the RIB shares, stored once; numpy columns for the rest.

Why: with many routers, every attribute set is router-specific (own next
hop, communities, cluster list), but its AS path, origin, MED ... are the
same for all routers carrying the path (``ribd.attributes``: a small
``PathAttributes`` on a shared ``PathCore``). Format 1 stored and checked a
full row per set: 16 realistic routers, 1.74 M rows, ~26 CPU-s to load.
Here each distinct value is stored and checked once, and the per-set and
per-prefix parts are integer columns checked by vectorised bounds.

The envelope (magic, header, checksum) is ``ribd.snapshot_format``'s. The raw
body is a JSON line, then the arrays' bytes::

    {"routers": [...], "addresses": [...], "texts": [...], "families": [...],
     "arrays": {name: [dtype, shape, offset], ...}}\\n<array bytes>

* ``routers``: as in format 1. ``addresses``: next hops, originator ids
  (may be ""), cluster ids; ``texts``: extended communities, aggregators.
  Each string is checked once, by the rule of every column that refers to it.
* AS paths: ``path_segments`` (offsets of each path's segments, n + 1),
  ``segment_types`` (u1, 1-4), ``segment_asns`` (offsets of each segment's
  ASes; no empty segment), ``asns`` (u4).
* Lists: ``community_lists`` / ``communities`` (u4), ``large_lists`` /
  ``large`` (u4, n x 3), ``text_lists`` / ``text_items`` (indexes into
  ``texts``: extended communities), ``address_lists`` / ``address_items``
  (indexes into ``addresses``: cluster lists). ``*_lists`` are offsets.
* Cores, one row each (``core_*``): path, origin (0 igp, 1 egp, 2
  incomplete), med (i8, -1 none), large list, text list, atomic (0/1),
  aggregator (a text).
* Sets, one row each (``set_*``): core, next hop, local_pref (i8, -1 none),
  community list, originator (an address, may be ""), cluster list.
* ``entries`` (i4, distinct entries x routers): a set index, -1 for no
  route, -2 - k for ADD-PATH set k: ``pathset_paths`` (offsets),
  ``path_ids`` (u4), ``path_sets`` (set indexes).
* Per family ``<family>/keys`` (u1, prefixes x key width: the prefix
  store's keys, sorted, distinct) and ``<family>/entries`` (u4).

Loading (``ribd.snapshot_v2_load``) builds each core once (its hash computed once, its derived AS
numbers once per distinct path) and each set from shared values, holding
them in the interner as ``intern`` would (``load_core``, ``load_sets``).
A checked fault names the array and row; the first bad row of a vectorised
check is found again to name it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from ribd.checks import show
from ribd.events import FAMILIES, IPV4_UNICAST
from ribd.idcodes import first_use
from ribd.snapshot_format import SnapshotError, pack

if TYPE_CHECKING:
    from ribd.snapshot_capture import Capture

ORIGINS = ("igp", "egp", "incomplete")
_U1, _U4, _I4, _I8 = "|u1", "<u4", "<i4", "<i8"
# name -> (dtype, ndim, fixed second dimension or 0)
ARRAYS: dict[str, tuple[str, int, int]] = {
    "path_segments": (_U4, 1, 0),
    "segment_types": (_U1, 1, 0),
    "segment_asns": (_U4, 1, 0),
    "asns": (_U4, 1, 0),
    "community_lists": (_U4, 1, 0),
    "communities": (_U4, 1, 0),
    "large_lists": (_U4, 1, 0),
    "large": (_U4, 2, 3),
    "text_lists": (_U4, 1, 0),
    "text_items": (_U4, 1, 0),
    "address_lists": (_U4, 1, 0),
    "address_items": (_U4, 1, 0),
    "core_path": (_U4, 1, 0),
    "core_origin": (_U1, 1, 0),
    "core_med": (_I8, 1, 0),
    "core_large": (_U4, 1, 0),
    "core_ext": (_U4, 1, 0),
    "core_atomic": (_U1, 1, 0),
    "core_aggregator": (_U4, 1, 0),
    "set_core": (_U4, 1, 0),
    "set_next_hop": (_U4, 1, 0),
    "set_local_pref": (_I8, 1, 0),
    "set_communities": (_U4, 1, 0),
    "set_originator": (_U4, 1, 0),
    "set_clusters": (_U4, 1, 0),
    "entries": (_I4, 2, -1),  # second dimension: the number of routers
    "pathset_paths": (_U4, 1, 0),
    "path_ids": (_U4, 1, 0),
    "path_sets": (_U4, 1, 0),
}
META_KEYS = frozenset({"routers", "addresses", "texts", "families", "arrays"})
_ALIGN = 8
_U32_MAX = 0xFFFFFFFF
_MAX_SETS = 1 << 31  # entries hold set indexes as i4


def key_width(family: str) -> int:
    return 5 if family == IPV4_UNICAST else 17


def family_arrays(family: str) -> dict[str, tuple[str, int, int]]:
    return {f"{family}/keys": (_U1, 2, key_width(family)), f"{family}/entries": (_U4, 1, 0)}


# -- writing -----------------------------------------------------------------


class _Table:
    """Distinct values in order of first use: ``index(v)`` is v's row."""

    def __init__(self) -> None:
        self.rows: dict = {}

    def index(self, value: object) -> int:
        rows = self.rows
        i = rows.get(value)
        if i is None:
            i = rows[value] = len(rows)
        return i

    def indexes(self, values: list) -> np.ndarray:
        """Each value's row: the distinct objects found by id in one pass (most values
        are shared objects), then each of those by value, in order of first use."""
        numbers, objects = _by_identity(values)
        return np.fromiter(map(self.index, objects), np.int64, len(objects))[numbers]


def _by_identity(values: list) -> tuple[np.ndarray, list]:
    """(each value's row, the distinct objects in order of first use), for objects
    whose identity is their equality (interned cores): no value hashed."""
    numbers, firsts = first_use(np.fromiter(map(id, values), np.int64, len(values)))
    return numbers, [values[i] for i in firsts.tolist()]


def _bounds(lists: list) -> np.ndarray:
    """Offsets of each sequence's items in their concatenation (n + 1)."""
    offsets = np.zeros(len(lists) + 1, dtype=_U4)
    np.cumsum(list(map(len, lists)), out=offsets[1:])
    return offsets


def _flat(lists: list, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, items) of a list of sequences of numbers."""
    return _bounds(lists), np.array([x for seq in lists for x in seq], dtype=dtype)


class _Columns(dict):
    """The file's arrays by name, each made its dtype when set: the int64 columns
    and Python lists it is made from are freed as it goes, not kept to the end
    beside their copies (the write's peak: ~+1.7 GB over the RIB at 64 routers)."""

    def __setitem__(self, name: str, value: Any) -> None:
        super().__setitem__(name, np.asarray(value, dtype=ARRAYS[name][0]))


def encode_v2(cap: Capture) -> bytes:
    """The whole file, format 2, for a capture of the RIB."""
    sets = cap.sets
    addresses, texts = _Table(), _Table()
    a = _Columns()
    # PathCore objects: equal only if identical (interned, ``eq=False``).
    a["set_core"], core_list = _by_identity([s.core for s in sets])
    # A set's own columns come from its router part: few of those are distinct
    # (~3,600 a router against ~109,000 sets), so each is read once, not once a
    # set. Their order of first use is the sets', so every table below is
    # numbered as if it were filled set by set.
    # RouterPart objects (interned): not in the file, so equal parts that are
    # distinct objects may each have a row here; their values are tabled below.
    own_of, own_list = _by_identity([s.own for s in sets])
    policies = [o.policy for o in own_list]  # (local_pref, originator id, clusters)
    a["set_next_hop"] = addresses.indexes([o.next_hop for o in own_list])[own_of]
    local_prefs = [-1 if p[0] is None else p[0] for p in policies]
    a["set_local_pref"] = np.array(local_prefs, np.int64)[own_of]
    comms = _Table()
    a["set_communities"] = comms.indexes([o.communities for o in own_list])[own_of]
    a["set_originator"] = addresses.indexes([p[1] for p in policies])[own_of]
    clusters = _Table()
    a["set_clusters"] = clusters.indexes([p[2] for p in policies])[own_of]
    del policies, local_prefs, own_list
    paths, larges, exts = _Table(), _Table(), _Table()
    a["core_path"] = paths.indexes([c.as_path for c in core_list])
    a["core_origin"] = [ORIGINS.index(c.origin) for c in core_list]
    a["core_med"] = [-1 if c.med is None else c.med for c in core_list]
    a["core_large"] = larges.indexes([c.large_communities for c in core_list])
    a["core_ext"] = exts.indexes([c.extended_communities for c in core_list])
    a["core_atomic"] = [int(c.atomic_aggregate) for c in core_list]
    a["core_aggregator"] = texts.indexes([c.aggregator for c in core_list])
    path_list = list(paths.rows)
    segments = [seg for p in path_list for seg in p]
    a["path_segments"] = _bounds(path_list)
    a["segment_types"] = [kind for kind, _ in segments]
    a["segment_asns"], a["asns"] = _flat([asns for _, asns in segments], _U4)
    a["community_lists"], a["communities"] = _flat(list(comms.rows), _U4)
    offsets, large = _flat(list(larges.rows), _U4)
    a["large_lists"], a["large"] = offsets, large.reshape(len(large), 3)
    a["text_lists"] = _bounds(list(exts.rows))
    a["text_items"] = texts.indexes([t for seq in exts.rows for t in seq])
    a["address_lists"] = _bounds(list(clusters.rows))
    a["address_items"] = addresses.indexes([t for seq in clusters.rows for t in seq])
    n_routers = len(cap.routers)
    a["entries"] = cap.entries
    a["pathset_paths"] = _bounds(cap.pathsets)
    a["path_ids"] = [pid for items in cap.pathsets for pid, _ in items]
    a["path_sets"] = [i for items in cap.pathsets for _, i in items]
    arrays = {name: a.pop(name) for name in ARRAYS}
    for family, (keys, indexes) in cap.families.items():
        arrays[f"{family}/keys"] = keys.view(np.uint8).reshape(len(keys), key_width(family))
        arrays[f"{family}/entries"] = np.asarray(indexes, dtype=_U4)
    specs, offset = {}, 0
    for name, arr in arrays.items():
        specs[name] = [arr.dtype.str, list(arr.shape), offset]
        offset += arr.nbytes + (-arr.nbytes % _ALIGN)
    meta = {
        "routers": cap.routers,
        "addresses": list(addresses.rows),
        "texts": list(texts.rows),
        "families": list(cap.families),
        "arrays": specs,
    }
    # The body is built in place, each array copied once (64 routers: ~400 MB, and
    # bytes per array, padded, joined, then after the meta line were four copies).
    head = orjson.dumps(meta) + b"\n"
    raw = bytearray(len(head) + offset)  # zeros: the padding
    raw[: len(head)] = head
    body = np.frombuffer(raw, np.uint8, offset=len(head))
    for name in specs:
        arr = arrays.pop(name)  # each freed once copied (but the capture's own)
        at = specs[name][2]
        body[at : at + arr.nbytes] = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
        del arr
    del body  # the view pins ``raw``'s buffer
    counts = {
        "routers": n_routers,
        "attribute_sets": len(sets),
        "prefixes": {f: len(keys) for f, (keys, _) in cap.families.items()},
        "paths": cap.paths,
    }
    return pack(raw, version=2, created=cap.created, counts=counts)


# -- loading -----------------------------------------------------------------


# Checked reads of the arrays, for the loader (``ribd.snapshot_v2_load``).


def _strings(meta: dict, key: str) -> list[str]:
    values = meta[key]
    if type(values) is not list or not set(map(type, values)) <= {str}:
        raise SnapshotError(f"{key!r} is not a list of strings")
    return values


def _arrays(meta: dict, blob: memoryview) -> dict[str, np.ndarray]:
    """The arrays the meta line describes, as read-only views of ``blob``, each of
    the expected dtype and shape and within the body."""
    families = meta["families"]
    if (
        type(families) is not list
        or not set(families) <= set(FAMILIES)
        or len(set(families)) != len(families)
    ):
        raise SnapshotError(f"families {show(families)} are not distinct known families")
    expected = dict(ARRAYS)
    for family in families:
        expected.update(family_arrays(family))
    specs = meta["arrays"]
    if type(specs) is not dict:
        raise SnapshotError(f"'arrays' is {show(specs)}, not an object")
    if set(specs) != set(expected):
        missing = sorted(set(expected) - set(specs))[:5]
        unknown = [show(k) for k in sorted(set(specs) - set(expected))[:5]]
        raise SnapshotError(f"arrays are not as expected: missing {missing}, unknown {unknown}")
    out = {}
    for name, (dtype, ndim, second) in expected.items():
        spec = specs[name]
        if type(spec) is not list or len(spec) != 3:
            raise SnapshotError(f"array {name}: {show(spec)} is not [dtype, shape, offset]")
        kind, shape, offset = spec
        if kind != dtype:
            raise SnapshotError(f"array {name}: dtype {show(kind)} is not {dtype}")
        if (
            type(shape) is not list
            or len(shape) != ndim
            or not all(type(n) is int and 0 <= n <= _U32_MAX for n in shape)
        ):
            raise SnapshotError(f"array {name}: shape {show(shape)} is not {ndim} sizes")
        if second > 0 and shape[1] != second:
            raise SnapshotError(f"array {name}: rows of {shape[1]}, not {second}")
        count = shape[0] * (shape[1] if ndim == 2 else 1)
        size = count * np.dtype(dtype).itemsize
        if type(offset) is not int or not 0 <= offset <= len(blob) - size:
            raise SnapshotError(
                f"array {name}: {size} bytes at offset {show(offset)} do not fit in the "
                f"{len(blob)} bytes of arrays (truncated?)"
            )
        out[name] = np.frombuffer(blob, dtype=dtype, count=count, offset=offset).reshape(shape)
    return out


def _offsets(arrays: dict, name: str, items: int, *, nonempty: bool = False) -> list[int]:
    """Offsets into ``items`` values: from 0 to ``items``, never decreasing (rising if
    ``nonempty``): returned as Python ints."""
    o = arrays[name].astype(np.int64)
    if not len(o) or o[0] != 0 or o[-1] != items:
        raise SnapshotError(f"array {name}: offsets do not run from 0 to {items}")
    step = np.diff(o)
    bad = np.flatnonzero(step <= 0 if nonempty else step < 0)
    if len(bad):
        what = "empty" if nonempty and step[bad[0]] == 0 else "out of order"
        raise SnapshotError(f"array {name}: row {int(bad[0])} is {what}")
    return o.tolist()


def _indexes(arrays: dict, name: str, limit: int, what: str) -> np.ndarray:
    """``arrays[name]``, every value an index below ``limit`` (a row of ``what``)."""
    values = arrays[name]
    if len(values) and int(values.max()) >= limit:
        i = int(np.argmax(values >= limit))
        raise SnapshotError(
            f"array {name}, row {i}: index {int(values[i])} is not a row of {what} (0..{limit - 1})"
        )
    return values


def _optional(arrays: dict, name: str) -> np.ndarray:
    """An i8 column of 32-bit values or -1 (none)."""
    values = arrays[name]
    bad = np.flatnonzero((values < -1) | (values > _U32_MAX))
    if len(bad):
        i = int(bad[0])
        raise SnapshotError(f"array {name}, row {i}: {int(values[i])} is not -1 or 32-bit")
    return values


def _shared(values: np.ndarray, none: int | None = None) -> list:
    """``values`` as Python objects, equal values one object (``none``: None).

    The distinct values by a plain sort and each value's place among them by a
    binary search (not ``unique``'s inverse: an argsort of every value), then
    one object-array take (no Python int per value for an index)."""
    values = values.reshape(-1)
    uniq = np.unique(values)
    objs = np.empty(len(uniq), dtype=object)
    objs[:] = [None if v == none else v for v in uniq.tolist()]
    return objs[np.searchsorted(uniq, values)].tolist()


def _lengths_equal(arrays: dict, names: list[str]) -> int:
    sizes = {len(arrays[n]) for n in names}
    if len(sizes) != 1:
        said = {n: len(arrays[n]) for n in names}
        raise SnapshotError(f"columns of one table differ in length: {said}")
    return sizes.pop()


__all__ = ["ARRAYS", "META_KEYS", "encode_v2", "family_arrays", "key_width"]
