"""Loading a format 2 snapshot (``ribd.snapshot_v2`` describes the format).

Order: the meta line and the arrays' dtypes, shapes and bounds; the strings,
each once, by the rule of each column that refers to it; the distinct AS
paths and lists; the cores (a hash once each, derived AS numbers once per
path); the sets, one object each from shared values, held in the interner
without a digest; ADD-PATH sets; the entries (one fancy index into the
objects, then one tuple each); the families' keys (length byte, host bits,
order: vectorised) and per-router counts (a matrix product). Nothing reaches
the RIB until all of it has passed (``ribd.snapshot.commit``).
"""

from __future__ import annotations

import math
import sys
from itertools import pairwise

import numpy as np
import orjson

from ribd import interner as _interner
from ribd.addpath import path_value
from ribd.attributes import (
    AS_SEQUENCE,
    AttributeInterner,
    PathAttributes,
    PathCore,
    RouterPart,
)
from ribd.attributes import derive_as_numbers as _derive
from ribd.checks import MAX_TEXT, address, ipv4, show, text
from ribd.entries import OVERLAY_SLOTS
from ribd.events import FAMILIES
from ribd.rib import FamilyTable, PathSet, Rib, RouterRib, preference_key
from ribd.snapshot_format import SnapshotError
from ribd.snapshot_v1 import load_routers
from ribd.snapshot_v2 import (
    META_KEYS,
    ORIGINS,
    _arrays,
    _indexes,
    _lengths_equal,
    _offsets,
    _optional,
    _shared,
    _strings,
    key_width,
)
from ribd.snapshot_v2_entries import (
    _check_keys,
    _interned_in,
    _tuples,
    _wide_entries,
)

_MAX_SETS = 1 << 31  # entries hold set indexes as i4
_U32_LIMIT = 1 << 32  # local preferences: -1 (none) or 32-bit


def load_v2(raw: bytes, rib: Rib) -> Loaded:
    """The validated content of a format 2 body, built off to the side."""
    return Loaded(raw, rib)


def _derived(path: tuple) -> tuple:
    if len(path) == 1 and path[0][0] == AS_SEQUENCE:
        asns = path[0][1]
        return (asns[0], asns[-1], asns[-1], False, False, asns[0])
    return _derive(path)


class Loaded:
    """A validated format 2 snapshot, built off to the side; ``ribd.snapshot.commit``
    puts it into the RIB. Same attributes as format 1's loader."""

    def __init__(self, raw: bytes, rib: Rib) -> None:
        end = raw.find(b"\n")
        if end < 0:
            raise SnapshotError("no meta line before the arrays")
        try:
            meta = orjson.loads(raw[:end])
        except orjson.JSONDecodeError as exc:
            raise SnapshotError(f"meta line is not JSON ({exc})") from None
        if type(meta) is not dict or set(meta) != META_KEYS:
            keys = sorted(meta)[:10] if type(meta) is dict else show(meta)
            raise SnapshotError(f"meta line fields {keys} are not {sorted(META_KEYS)}")
        if type(meta["routers"]) is not list:
            raise SnapshotError("'routers' is not a list")
        self.routers: list[RouterRib] = load_routers(meta["routers"], rib)
        addresses, texts = _strings(meta, "addresses"), _strings(meta, "texts")
        arrays = _arrays(meta, memoryview(raw)[end + 1 :])
        self.interner = AttributeInterner()
        self.pathsets: dict[PathSet, PathSet] = {}
        paths = self._paths(arrays)
        lists = self._lists(arrays, addresses, texts)
        cores = self._cores(arrays, paths, lists, texts)
        self.attributes = self._sets(arrays, cores, lists, addresses)
        self.n_sets = len(self.attributes)
        self.interner.share_loaded(paths, lists["communities"], addresses, self.policies, self.owns)
        objects, path_counts = self._pathsets(arrays)
        entries, matrix = self._entries(arrays, objects, path_counts)
        self.tables: dict[str, FamilyTable] = {}
        n = len(self.routers)
        self.counts = {f: ([0] * n, [0] * n) for f in FAMILIES}  # prefixes, paths
        self.paths = 0
        for family in meta["families"]:
            self._family(family, arrays, entries, matrix)
        for family in set(FAMILIES) - set(self.tables):  # empty, but with the routers' slots
            self.tables[family] = self._table(family)

    # -- attribute values ------------------------------------------------------

    def _paths(self, arrays: dict) -> list[tuple]:
        """The distinct AS paths, as tuples of (type, (AS, ...)) segments."""
        types = arrays["segment_types"]
        bad = np.flatnonzero((types < 1) | (types > 4))
        if len(bad):
            i = int(bad[0])
            raise SnapshotError(f"array segment_types, row {i}: {int(types[i])} is not 1-4")
        seg_bounds = _offsets(arrays, "path_segments", len(types))
        asn_bounds = _offsets(arrays, "segment_asns", len(arrays["asns"]), nonempty=True)
        if len(asn_bounds) != len(types) + 1:
            raise SnapshotError("arrays segment_asns and segment_types differ in length")
        asns = _shared(arrays["asns"])
        segments = [
            (kind, tuple(asns[a:b]))
            for kind, a, b in zip(types.tolist(), asn_bounds, asn_bounds[1:], strict=False)
        ]
        return [tuple(segments[a:b]) for a, b in pairwise(seg_bounds)]

    def _lists(self, arrays: dict, addresses: list[str], texts: list[str]) -> dict[str, list]:
        """Community lists, large community lists, extended community lists, cluster
        lists: each distinct list once, as the tuple sets hold."""
        out: dict[str, list] = {}
        comms = _shared(arrays["communities"])
        bounds = _offsets(arrays, "community_lists", len(comms))
        out["communities"] = [tuple(comms[a:b]) for a, b in pairwise(bounds)]
        large = list(map(tuple, arrays["large"].tolist()))
        bounds = _offsets(arrays, "large_lists", len(large))
        out["large"] = [tuple(large[a:b]) for a, b in pairwise(bounds)]
        items = _indexes(arrays, "text_items", len(texts), "texts")
        ext = list(map(texts.__getitem__, items.tolist()))  # any string: as format 1
        bounds = _offsets(arrays, "text_lists", len(ext))
        out["ext"] = [tuple(ext[a:b]) for a, b in pairwise(bounds)]
        items = _indexes(arrays, "address_items", len(addresses), "addresses")
        clusters = [addresses[i] for i in items.tolist()]
        for i in np.unique(items).tolist():
            ipv4(addresses[i], f"address #{i} (a cluster id)")
        bounds = _offsets(arrays, "address_lists", len(clusters))
        out["clusters"] = [tuple(clusters[a:b]) for a, b in pairwise(bounds)]
        return out

    def _cores(self, arrays: dict, paths: list, lists: dict, texts: list[str]) -> list[list]:
        """Per core row: the interner's list for it (the core first, then its sets)."""
        names = ["core_path", "core_origin", "core_med", "core_large", "core_ext"]
        names += ["core_atomic", "core_aggregator"]
        _lengths_equal(arrays, names)
        col_path = _indexes(arrays, "core_path", len(paths), "path_segments").tolist()
        origins = _indexes(arrays, "core_origin", len(ORIGINS), "origins (igp, egp, incomplete)")
        med = _shared(_optional(arrays, "core_med"), none=-1)
        large = _indexes(arrays, "core_large", len(lists["large"]), "large_lists")
        ext = _indexes(arrays, "core_ext", len(lists["ext"]), "text_lists")
        atomic = _indexes(arrays, "core_atomic", 2, "booleans (0, 1)")
        aggregator = _indexes(arrays, "core_aggregator", len(texts), "texts")
        for i in np.unique(aggregator).tolist():
            text(texts[i], f"text #{i} (an aggregator)", MAX_TEXT)
        derived = list(map(_derived, paths))
        rows = list(
            zip(
                map(paths.__getitem__, col_path),
                map(ORIGINS.__getitem__, origins.tolist()),
                med,
                map(lists["large"].__getitem__, large.tolist()),
                map(lists["ext"].__getitem__, ext.tolist()),
                map(bool, atomic.tolist()),
                map(texts.__getitem__, aggregator.tolist()),
                strict=True,
            )
        )
        keys = list(map(hash, rows))  # ribd.interner.core_key's
        cores = [
            PathCore(*r, *d) for r, d in zip(rows, map(derived.__getitem__, col_path), strict=True)
        ]
        helds = self.interner.load_cores(keys, cores)
        return helds

    def _sets(
        self, arrays: dict, helds: list[list], lists: dict, addresses: list[str]
    ) -> list[PathAttributes]:
        names = ["set_core", "set_next_hop", "set_local_pref", "set_communities"]
        names += ["set_originator", "set_clusters"]
        n = _lengths_equal(arrays, names)
        if n >= _MAX_SETS:
            raise SnapshotError(f"{n} attribute sets: more than entries can index")
        core = _indexes(arrays, "set_core", len(helds), "core_path")
        hop = _indexes(arrays, "set_next_hop", len(addresses), "addresses")
        comms = _indexes(arrays, "set_communities", len(lists["communities"]), "community_lists")
        orig = _indexes(arrays, "set_originator", len(addresses), "addresses")
        clusters = _indexes(arrays, "set_clusters", len(lists["clusters"]), "address_lists")
        hops = list(addresses)  # canonical where used as a next hop
        for i in np.unique(hop).tolist():
            hops[i] = sys.intern(address(addresses[i], f"address #{i} (a next hop)"))
        for i in np.unique(orig).tolist():
            ipv4(addresses[i], f"address #{i} (an originator id)", empty=True)
        # Equal sets written as separate rows (the RIB may hold equal sets unshared)
        # become one: rows compared by the canonical index of each value. Kept as
        # columns: a stacked copy of 6.6 M rows (64 routers) cost ~0.8 CPU-s.
        columns = [
            _canonical(helds, core, key=id),
            _canonical(hops, hop),
            _optional(arrays, "set_local_pref"),
            _canonical(lists["communities"], comms),
            _canonical(addresses, orig),
            _canonical(lists["clusters"], clusters),
        ]
        first = _first_equal_rows(columns)
        unique = first == np.arange(n)
        keep = np.flatnonzero(unique)
        if len(keep) < n:  # (the writer's files have none: no copies then)
            columns = [c[keep] for c in columns]
            hop, comms = hop[keep], comms[keep]
        core_of = columns[0]
        picks = core_of.tolist()
        held = list(map(helds.__getitem__, picks))
        cores = [h[0] for h in helds]
        # (local_pref, originator id, cluster list): one tuple per distinct triple
        triples = [columns[2], columns[4], columns[5]]
        same = _first_equal_columns(triples, [_U32_LIMIT, len(addresses), len(lists["clusters"])])
        distinct = same == np.arange(len(keep))
        firsts = [c[distinct] for c in triples]
        self.policies = list(
            zip(
                _shared(firsts[0], none=-1),
                map(addresses.__getitem__, firsts[1].tolist()),
                map(lists["clusters"].__getitem__, firsts[2].tolist()),
                strict=True,
            )
        )
        policy = (np.cumsum(distinct) - 1)[same]
        # (next hop, communities, policy): one RouterPart per distinct triple
        triples = [columns[1], columns[3], policy]
        del columns
        limits = [len(hops), len(lists["communities"]), len(self.policies)]
        same = _first_equal_columns(triples, limits)
        distinct = same == np.arange(len(keep))
        at = np.flatnonzero(distinct)
        self.owns = list(
            map(
                RouterPart,
                map(hops.__getitem__, hop[at].tolist()),
                map(lists["communities"].__getitem__, comms[at].tolist()),
                map(self.policies.__getitem__, policy[at].tolist()),
            )
        )
        own = (np.cumsum(distinct) - 1)[same].tolist()
        built = list(
            map(PathAttributes, map(cores.__getitem__, picks), map(self.owns.__getitem__, own))
        )
        self.interner.load_sets(held, built, _late(core_of))
        if len(keep) == n:  # no two rows equal: the common case
            return built
        position = np.cumsum(unique) - 1
        return list(map(built.__getitem__, position[first].tolist()))

    # -- routes ----------------------------------------------------------------

    def _pathsets(self, arrays: dict) -> tuple[list[object], np.ndarray]:
        """(every value an entry may hold, indexed by its code + 1 + pathsets: the
        ADD-PATH sets last first, None, the sets; paths of each ADD-PATH set)."""
        items = _indexes(arrays, "path_sets", self.n_sets, "set_core")
        ids = arrays["path_ids"]
        if len(ids) != len(items):
            raise SnapshotError("arrays path_ids and path_sets differ in length")
        bounds = _offsets(arrays, "pathset_paths", len(items), nonempty=True)
        sets = self.attributes
        pathsets = self.pathsets
        values: list[object] = []
        pairs = list(zip(ids.tolist(), map(sets.__getitem__, items.tolist()), strict=True))
        for k, (a, b) in enumerate(pairwise(bounds)):
            paths = pairs[a:b]
            if len({pid for pid, _ in paths}) != len(paths):
                raise SnapshotError(f"ADD-PATH set #{k}: a path id appears twice")
            paths.sort(key=preference_key)  # best first by our rules, whatever the file had
            values.append(path_value(pathsets, paths))
        values.reverse()
        values.append(None)
        values.extend(sets)
        return values, np.diff(np.asarray(bounds, dtype=np.int64))

    def _entries(
        self, arrays: dict, values: list[object], path_counts: np.ndarray
    ) -> tuple[list[tuple], np.ndarray]:
        """(each entry as the RIB's tuple, trailing Nones dropped; paths per (entry,
        router))."""
        matrix = arrays["entries"]
        n_entries, n_routers = matrix.shape
        if n_routers != len(self.routers):
            raise SnapshotError(f"entries have {n_routers} columns for {len(self.routers)} routers")
        if not n_entries:
            return [], np.zeros((0, n_routers), dtype=np.int64)
        lowest = -1 - len(path_counts)
        bad = (matrix < lowest) | (matrix >= self.n_sets)
        if bad.any():
            e, r = (int(x[0]) for x in np.nonzero(bad))
            v = int(matrix[e, r])
            raise SnapshotError(
                f"entry #{e}, router #{r}: {v} is not a set (0..{self.n_sets - 1}), -1 or an "
                f"ADD-PATH set (-2..{lowest})"
            )
        present = matrix != -1
        if n_entries and not present.any(axis=1).all():
            e = int(np.argmin(present.any(axis=1)))
            raise SnapshotError(f"entry #{e} has no route")
        table = np.fromiter(values, dtype=object, count=len(values))
        offset = len(path_counts) + 1  # a cell's index in ``table``: its value plus this
        if n_routers >= OVERLAY_SLOTS:
            entries = _wide_entries(matrix, offset, table)
        else:
            entries = _tuples(matrix.astype(np.int64) + offset, present, table)
        paths = present.astype(np.int64)
        multi = matrix < -1
        if multi.any():
            paths[multi] = path_counts[-2 - matrix[multi].astype(np.int64)]
        return entries, paths

    def _table(self, family: str) -> FamilyTable:
        table = FamilyTable(family)
        for _ in self.routers:
            table.alloc_slot()  # router i gets slot i, as in rib.router()
        return table

    def _family(self, family: str, arrays: dict, entries: list[tuple], paths: np.ndarray) -> None:
        raw = np.ascontiguousarray(arrays[f"{family}/keys"])
        indexes = _indexes(arrays, f"{family}/entries", len(entries), "entries")
        if len(indexes) != len(raw):
            raise SnapshotError(f"{family}: {len(raw)} prefixes but {len(indexes)} entry indexes")
        _check_keys(family, raw)
        table = self._table(family)
        used, times = np.unique(indexes, return_counts=True)
        built = np.empty(len(entries), dtype=object)
        wanted = [entries[e] for e in used.tolist()]
        if len(self.routers) >= OVERLAY_SLOTS:  # tuples and Overlays: rows interned
            built[used] = np.fromiter(
                map(_interned_in(table), wanted), dtype=object, count=len(wanted)
            )
        else:  # table.intern for each, in one C loop (no Python call per entry)
            setdefault = table._entries.setdefault
            built[used] = np.fromiter(
                map(setdefault, wanted, wanted), dtype=object, count=len(wanted)
            )
        table.store.load_sorted(raw.view(f"S{raw.shape[1]}").reshape(len(raw)), built[indexes])
        table._entries_at_last_gc = table.distinct_entries
        prefixes, path_counts = self.counts[family]
        if len(used):
            per_prefix = paths[used].T @ times.astype(np.int64)  # paths per router
            present = (paths[used] > 0).T.astype(np.int64) @ times.astype(np.int64)
            for r in range(len(self.routers)):
                prefixes[r] += int(present[r])
                path_counts[r] += int(per_prefix[r])
            self.paths += int(per_prefix.sum())
        self.tables[family] = table

    def header_counts(self) -> dict:
        """The counts the header must claim for this body."""
        return {
            "routers": len(self.routers),
            "attribute_sets": self.n_sets,
            "prefixes": {f: len(self.tables[f].store) for f in FAMILIES},
            "paths": self.paths,
        }


def _late(core: np.ndarray) -> list[int]:
    """The indexes of the sets (``core``: each one's core) past the SCAN_VARIANTS
    first of their core, ascending: what ``AttributeInterner.load_sets`` keys
    by digest (the lists are fresh from ``load_core``: the core alone)."""
    scan = _interner.SCAN_VARIANTS  # (read at each load: tests lower it)
    if not len(core) or int(np.bincount(core).max()) <= scan:
        return []
    order = np.argsort(core, kind="stable")
    ranked = core[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    rank = np.arange(len(core)) - np.repeat(starts, np.diff(np.r_[starts, len(core)]))
    return np.sort(order[rank >= scan]).tolist()


def _canonical(values: list, column: np.ndarray, key=None) -> np.ndarray:
    """``column`` (indexes into ``values``) with each index replaced by the first index
    of an equal value (``key``: what makes two values equal); as it is when the
    values are distinct (as written)."""
    keys = values if key is None else list(map(key, values))
    if len(set(keys)) == len(keys):
        return column.astype(np.int64)
    first: dict = {}
    canon = [first.setdefault(k, i) for i, k in enumerate(keys)]
    return np.asarray(canon, dtype=np.int64)[column.astype(np.int64)]


def _first_of(values: np.ndarray) -> np.ndarray:
    """For each of ``values``, the index of its first occurrence: the distinct
    values by a plain sort, each value's rank among them by a binary search,
    the lowest index of each rank by one unbuffered minimum (not ``unique``'s
    index and inverse: an argsort of every value, twice the CPU)."""
    uniq = np.unique(values)
    rank = np.searchsorted(uniq, values)
    first = np.full(len(uniq), len(values), dtype=np.int64)
    np.minimum.at(first, rank, np.arange(len(values), dtype=np.int64))
    return first[rank]


def _first_equal_columns(columns: list[np.ndarray], limits: list[int]) -> np.ndarray:
    """``_first_equal_rows`` for rows (int64 columns of equal length) whose columns
    were checked to hold -1 (none) or values below their ``limits``: each row read
    as one number in a mixed radix, an exact key, so no hash to verify and one
    sort, not two argsorts; rows whose keys would not fit in 62 bits go by
    ``_first_equal_rows``."""
    spans = [limit + 1 for limit in limits]  # -1..limit-1, shifted to 0..limit
    if not len(columns[0]) or math.prod(spans) >= 1 << 62:
        return _first_equal_rows(columns)
    key = np.zeros(len(columns[0]), dtype=np.int64)
    for column, span in zip(columns, spans, strict=True):
        key = key * span + (column + 1)
    return _first_of(key)


def _first_equal_rows(columns: list[np.ndarray]) -> np.ndarray:
    """For each row of ``columns`` (int64, of equal length), the index of the first
    row equal to it: grouped by a hash of the row in one sort, then checked
    exactly; a hash collision (a crafted file) falls back to a dict of the rows."""
    n = len(columns[0])
    if not n:
        return np.zeros(0, dtype=np.int64)
    h = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in columns:
            h = (h ^ column.astype(np.uint64)) * np.uint64(0x100000001B3)
            h ^= h >> np.uint64(29)
    ordered = np.sort(h)
    if not (ordered[1:] == ordered[:-1]).any():
        # Distinct hashes, so distinct rows: the writer's case. One plain sort,
        # not unique's argsort with index and inverse (0.5 of 5 CPU-s at 16 routers).
        return np.arange(n, dtype=np.int64)
    first = _first_of(h)
    if all((c == c[first]).all() for c in columns):
        return first
    seen: dict = {}
    rows = zip(*(c.tolist() for c in columns), strict=True)
    return np.asarray([seen.setdefault(r, i) for i, r in enumerate(rows)])


__all__ = ["Loaded", "key_width", "load_v2"]
