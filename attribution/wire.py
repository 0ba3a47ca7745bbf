"""Bulk answers straight to wire bytes: packed records, route dictionaries, framing.

Why not build an AttributionBatch message and serialize it: on the bulk path
that costs more than resolving the flows. A Route message takes ~15 µs to
build, and a batch of 8,192 Zipf flows refers to ~5,000 distinct routes; each
per-flow column goes numpy -> Python ints -> protobuf. Here instead:

* each route's serialized ``routes`` entry is built once per compiled view
  and reused by every batch (``RouteEncoder``);
* a batch numbers its routes with numpy, per view, touching Python only for
  routes it has not numbered yet (``WireRoutes``); on a ResolveStream with
  ``stream_routes``, the numbering outlives the batch, so a route is sent
  once per stream;
* per-flow answers are one packed record array (``RECORD_DTYPE``) that the
  resolver writes into directly;
* the answer is framed by hand: protobuf's wire format lets a message be the
  concatenation of its fields, so cached route entries are joined, not copied
  into messages.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from attribution.compiledview import CompiledView
from attribution.convert import flow_errors, per_flow_fields, route_message
from attribution.resolver import RECORD_DTYPE, FlowAnswer, Resolution, RouteDictionary
from attribution.v1 import attribution_pb2 as pb
from ribd.rib import RouteMatch

assert RECORD_DTYPE.itemsize == 40  # the layout documented in the proto

# Routes a stream's dictionary may hold before the server empties it (the
# proto's AttributionColumns.routes_reset). Bounds the memory of both ends.
MAX_STREAM_ROUTES = 262_144
# Slow-path (changed-prefix) route entries kept; emptied when full.
MAX_MATCH_ENTRIES = 65_536
# Serialized attribute-set parts kept; emptied when full (a full table has ~100 k sets).
MAX_ATTRIBUTE_PARTS = 262_144

_ROUTES_TAG = b"\x4a"  # AttributionColumns.routes: field 9, length-delimited
_COLUMNS_TAG = b"\x1a"  # AttributionBatch.columns: field 3, length-delimited


def varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _string_field(tag: bytes, text: str) -> bytes:
    if not text:
        return b""  # proto3 leaves empty strings out
    data = text.encode()
    return tag + varint(len(data)) + data


def message_field(tag: bytes, body: bytes) -> bytes:
    """A length-delimited field: tag, length, serialized message."""
    return tag + varint(len(body)) + body


class RouteEncoder:
    """Serialized route entries, built once and shared by every batch and stream.

    Entries of view routes live as long as their view: one list per
    (router, family), replaced when the view is, or when what an entry shows
    besides the route changes (router name, local AS, AS_SET policy).
    Thread-safe: a race builds an entry twice, never a wrong one.
    """

    def __init__(self) -> None:
        self._views: dict[tuple[str, str], tuple[CompiledView, tuple, list]] = {}
        # (name, prefix, ...) -> (attributes, entry, where the body starts)
        self._matches: dict[tuple, tuple[object, bytes, int]] = {}
        # What a Route shows of its attribute set, serialized: shared by every
        # prefix with that set (a full table has ~6 prefixes per set).
        self._attribute_parts: dict[tuple, tuple[object, bytes]] = {}
        self._lock = threading.Lock()

    def route_body(self, name: str, m: RouteMatch, local_as: int, highest: bool) -> bytes:
        """A serialized Route message: per-route fields + the attribute set's cached part."""
        a = m.attributes
        key = (id(a), m.length == 0, local_as, highest)
        hit = self._attribute_parts.get(key)
        if hit is None or hit[0] is not a:
            bare = RouteMatch("", m.length, a, 0, False)
            part = route_message("", bare, local_as, highest).SerializeToString()
            with self._lock:
                if len(self._attribute_parts) >= MAX_ATTRIBUTE_PARTS:
                    self._attribute_parts.clear()
                # The attributes are kept with the part, so their id cannot be reused.
                hit = self._attribute_parts[key] = (a, part)
        body = _string_field(b"\x0a", name) + _string_field(b"\x12", m.prefix)
        if m.path_id:
            body += b"\x18" + varint(m.path_id)
        body += hit[1]
        if m.stale:
            body += b"\x90\x01\x01"  # Route.stale (field 18) = true
        return body

    def view_entries(
        self, view: CompiledView, name: str, local_as: int, highest: bool, leaves: list[int]
    ) -> list[bytes]:
        params = (name, local_as, highest)
        slot = self._views.get((view.neighbor, view.family))
        if slot is None or slot[0] is not view or slot[1] != params:
            same = slot is not None and slot[1] == params and view.same_routes(slot[0])
            cache = slot[2] if same else []  # type: ignore[index]
            slot = (view, params, cache + [None] * (len(view) - len(cache)))
            with self._lock:
                self._views[(view.neighbor, view.family)] = slot
        cache = slot[2]
        out = []
        for leaf in leaves:
            entry = cache[leaf]
            if entry is None:
                entry = cache[leaf] = message_field(
                    _ROUTES_TAG, self.route_body(name, view.route(leaf), local_as, highest)
                )
            out.append(entry)
        return out

    def match_entry(self, name: str, m: RouteMatch, local_as: int, highest: bool) -> bytes:
        """The ``routes`` entry of a route from the exact path."""
        return self._match(name, m, local_as, highest)[1]

    def match_body(self, name: str, m: RouteMatch, local_as: int, highest: bool) -> bytes:
        """The serialized Route message alone (for FlowAttribution's route fields)."""
        entry, start = self._match(name, m, local_as, highest)[1:]
        return entry[start:]

    def _match(self, name: str, m: RouteMatch, local_as: int, highest: bool) -> tuple:
        key = (name, m.prefix, m.path_id, m.stale, id(m.attributes), local_as, highest)
        hit = self._matches.get(key)
        if hit is not None and hit[0] is m.attributes:
            return hit
        body = self.route_body(name, m, local_as, highest)
        entry = message_field(_ROUTES_TAG, body)
        with self._lock:
            if len(self._matches) >= MAX_MATCH_ENTRIES:
                self._matches.clear()
            # The attributes are kept with the entry, so their id cannot be reused.
            hit = self._matches[key] = (m.attributes, entry, len(entry) - len(body))
        return hit

    def forget_views(self, live: Sequence[CompiledView]) -> None:
        """Drop the entries of views that are no longer served."""
        keep = {id(v) for v in live}
        with self._lock:
            for key in [k for k, s in self._views.items() if id(s[0]) not in keep]:
                del self._views[key]


class WireRoutes(RouteDictionary):
    """The route dictionary of one answer, or of one stream, as wire entries.

    Numbering is vectorised per compiled view: an int32 array maps each view
    route to its dictionary index (-1: not yet numbered), so a batch pays
    Python time only for routes new to the dictionary.
    """

    def __init__(self, encoder: RouteEncoder, local_as: int, highest: bool) -> None:
        self.encoder = encoder
        self.local_as = local_as
        self.highest = highest
        self.size = 0  # routes numbered so far
        self.new: list[bytes] = []  # entries not yet sent
        self._maps: dict[tuple[str, str], tuple[CompiledView, np.ndarray]] = {}
        self._matches: dict[tuple, tuple[object, int]] = {}  # -> (attributes, number)

    def take_new(self) -> tuple[int, list[bytes]]:
        """(index of the first new entry, the new entries); they count as sent."""
        new, self.new = self.new, []
        return self.size - len(new), new

    def from_view(self, name: str, view: CompiledView, leaves: np.ndarray) -> np.ndarray:
        key = (view.neighbor, view.family)
        held = self._maps.get(key)
        if held is None or held[0] is not view:
            same = held is not None and view.same_routes(held[0])  # moved or renumbered
            kept = held[1] if same else np.zeros(0, dtype=np.int32)  # type: ignore[index]
            grown = np.full(len(view) - len(kept), -1, dtype=np.int32)  # renumbered: more routes
            held = (view, np.concatenate([kept, grown]) if len(grown) else kept)
            self._maps[key] = held
        numbers = held[1]
        unknown = leaves[numbers[leaves] < 0]
        if len(unknown):
            fresh = np.unique(unknown)
            numbers[fresh] = np.arange(self.size, self.size + len(fresh), dtype=np.int32)
            self.size += len(fresh)
            self.new += self.encoder.view_entries(
                view, name, self.local_as, self.highest, fresh.tolist()
            )
        return numbers[leaves]

    def from_match(self, name: str, m: RouteMatch) -> int:
        # The set is kept with its number, so its id cannot be reused while
        # the stream lives: a new set at a freed one's address got the old
        # route's number (tests/attribution/test_route_caches_id_reuse.py).
        a = m.attributes
        key = (name, m.prefix, m.path_id, m.stale, id(a))
        hit = self._matches.get(key)
        if hit is None or hit[0] is not a:
            hit = self._matches[key] = (a, self.size)
            self.size += 1
            self.new.append(self.encoder.match_entry(name, m, self.local_as, self.highest))
        return hit[1]


_SRC_ROUTE_TAG = b"\x5a"  # FlowAttribution.src_route: field 11, length-delimited
_DST_ROUTE_TAG = b"\x62"  # FlowAttribution.dst_route: field 12, length-delimited


def encode_flow_answer(
    answer: FlowAnswer, encoder: RouteEncoder, local_as: int, highest: bool
) -> bytes:
    """A serialized FlowAttribution (the one-flow RPC), its routes from the cache."""
    if answer.error is not None:
        code, message = answer.error
        return pb.FlowAttribution(
            error=pb.FlowError(index=0, code=code, message=message)
        ).SerializeToString()
    p = answer.provenance
    out = pb.FlowAttribution(
        router=answer.router or "",
        src_origin_as=answer.src_origin_as,
        src_peer_as=answer.src_peer_as,
        dst_origin_as=answer.dst_origin_as,
        dst_peer_as=answer.dst_peer_as,
        src_origin_provenance=p[0],
        src_peer_provenance=p[1],
        dst_origin_provenance=p[2],
        dst_peer_provenance=p[3],
        flags=answer.flags,
        override=answer.override or "",
    ).SerializeToString()
    if answer.src_route is not None:
        body = encoder.match_body(*answer.src_route, local_as, highest)
        out += message_field(_SRC_ROUTE_TAG, body)
    if answer.dst_route is not None:
        body = encoder.match_body(*answer.dst_route, local_as, highest)
        out += message_field(_DST_ROUTE_TAG, body)
    return out


def encode_answer(
    batch_id: int,
    res: Resolution,
    packed: bool,
    route_entries: Sequence[bytes] = (),
    route_base: int = 0,
    routes_reset: bool = False,
) -> bytes:
    """A serialized AttributionBatch with ``columns`` for a resolved batch."""
    if packed:
        per_flow = {"records": res.records.tobytes() if res.records is not None else b""}
    else:
        per_flow = per_flow_fields(res)
    cols = pb.AttributionColumns(
        routers=res.routers,
        overrides=res.overrides,
        route_base=route_base,
        routes_reset=routes_reset,
        **per_flow,
    )
    payload = cols.SerializeToString() + b"".join(route_entries)
    head = pb.AttributionBatch(batch_id=batch_id, errors=flow_errors(res)).SerializeToString()
    return head + _COLUMNS_TAG + varint(len(payload)) + payload


__all__ = [
    "MAX_STREAM_ROUTES",
    "RECORD_DTYPE",
    "RouteEncoder",
    "WireRoutes",
    "encode_answer",
    "encode_flow_answer",
    "varint",
]
