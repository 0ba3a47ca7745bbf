"""Snapshot format 1: one JSON document with a full row per attribute set.

Written by builds before format 2 and on request (``write_snapshot(...,
version=1)``: tests and tools that edit a snapshot as JSON); always read.
The envelope (magic, header, checksum) is ``ribd.snapshot_format``'s.

Body (an orjson document, zlib level 1):

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

Every set's row is checked and interned on load (``AttributeInterner.intern``),
which is what format 2 avoids: 16 routers' 1.74 M sets cost ~26 CPU-s here.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

import orjson

from ribd.addpath import path_value
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
from ribd.entries import OVERLAY_SLOTS
from ribd.events import FAMILIES, IPV4_UNICAST
from ribd.prefixes import BadPrefix, normalise_prefix
from ribd.rib import FamilyTable, PathSet, Rib, RouterRib, preference_key
from ribd.snapshot_format import SnapshotError, pack, unpack
from ribd.snapshot_v2_entries import wide_entries_of
from ribd.store import PrefixStore

if TYPE_CHECKING:
    from ribd.snapshot_capture import Capture

_ORIGINS = {"igp": "igp", "egp": "egp", "incomplete": "incomplete"}
_SEGMENT_TYPES = frozenset({AS_SET, AS_SEQUENCE, AS_CONFED_SEQUENCE, AS_CONFED_SET})
_SESSIONS = frozenset({"idle", "connected", "up", "down"})
_MAX_TEXT = MAX_TEXT  # the parser's limit for aggregator and names


# -- writing -----------------------------------------------------------------


def encode_v1(cap: Capture) -> bytes:
    """The whole file, format 1, for a capture of the RIB."""
    sets = cap.sets
    pathsets = [[[pid, i] for pid, i in items] for items in cap.pathsets]

    def value(c: int) -> object:
        return c if c >= 0 else None if c == -1 else pathsets[-2 - c]

    entries = []
    for codes in cap.entries.tolist():
        values = [value(c) for c in codes]
        while values and values[-1] is None:
            values.pop()
        entries.append(values)
    families = {}
    for family, (keys, indexes) in cap.families.items():
        store = PrefixStore(32 if family == IPV4_UNICAST else 128)
        families[family] = {"prefixes": store.texts(keys), "entries": indexes.tolist()}
    doc = {
        "attribute_fields": ATTRIBUTE_FIELDS,
        "attributes": [attribute_row(a) for a in sets],
        "routers": cap.routers,
        "entries": entries,
        "families": families,
    }
    return _pack(doc, created=cap.created, paths=cap.paths)


def _pack(doc: dict, *, created: float, paths: int) -> bytes:
    """Header line + compressed body for ``doc`` (also used by tests to craft files)."""
    counts = {
        "routers": len(doc["routers"]),
        "attribute_sets": len(doc["attributes"]),
        "prefixes": {f: len(d["prefixes"]) for f, d in doc["families"].items()},
        "paths": paths,
    }
    return pack(orjson.dumps(doc), version=1, created=created, counts=counts)


def _unpack(data: bytes) -> tuple[dict, Any]:
    """Check magic, header, length and checksum; return (header, body document)."""
    header, raw = unpack(data)
    if header["version"] != 1:
        raise SnapshotError(f"format version {header['version']} is not 1")
    return header, _document(raw)


def _document(raw: bytes) -> dict:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SnapshotError(f"body is not JSON ({exc})") from None
    if type(doc) is not dict:
        raise SnapshotError("body is not a JSON object")
    return doc


# -- loading -----------------------------------------------------------------


def load_v1(raw: bytes, rib: Rib) -> _Loaded:
    """The validated content of a format 1 body, built off to the side."""
    return _Loaded(_document(raw), rib)


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


def load_routers(docs: list, rib: Rib) -> list[RouterRib]:
    """The routers of a snapshot (both formats store them as JSON objects)."""
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
        self.routers = load_routers(_field(doc, "routers", list), rib)
        self.pathsets: dict[PathSet, PathSet] = {}
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

    def _entries(self, docs: list) -> tuple[list[list[object]], list[tuple[int, ...]]]:
        """Per entry: the per-router values (RIB objects) and per-router path counts."""
        n_routers = len(self.routers)
        attrs = self.attributes
        n_attrs = len(attrs)
        pathsets = self.pathsets
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
                    # Best first by our own rules, whatever order the file had.
                    paths.sort(key=preference_key)
                    values.append(path_value(pathsets, paths))
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
        if len(self.routers) >= OVERLAY_SLOTS:  # rows shared, as format 2's loader does
            wide = wide_entries_of([values[e] for e in used], len(self.routers), table)
            for e, entry in zip(used, wide, strict=True):
                built[e] = entry  # type: ignore[assignment]
        else:
            for e in used:
                built[e] = intern(tuple(values[e]))
        for e, times in used.items():
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

    def header_counts(self) -> dict:
        """The counts the header must claim for this body."""
        return {
            "routers": len(self.routers),
            "attribute_sets": len(self.attributes),
            "prefixes": {f: len(p) for f, (p, _) in self.families.items()},
            "paths": self.paths,
        }
