"""Conversions between the resolver's columns, proto messages and flow JSON.

One place decides how a route or an answer looks on the wire and in JSON, so
the gRPC service, the CLI and the offline resolver cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from attribution.answers import (
    BGP,
    DEFAULT,
    FLAG_NAMES,
    LOCAL,
    PROVENANCE_NAMES,
    RECORD_DTYPE,
    FlowAnswer,
    Resolution,
)
from attribution.v1 import attribution_pb2 as pb
from ribd.attributes import (
    AS_CONFED_SEQUENCE,
    AS_CONFED_SET,
    AS_SEQUENCE,
    AS_SET,
    PathAttributes,
)

if TYPE_CHECKING:
    from ribd.rib import RouteMatch

_SEGMENT_TYPES = {
    AS_SEQUENCE: pb.AsPathSegment.AS_SEQUENCE,
    AS_SET: pb.AsPathSegment.AS_SET,
    AS_CONFED_SEQUENCE: pb.AsPathSegment.AS_CONFED_SEQUENCE,
    AS_CONFED_SET: pb.AsPathSegment.AS_CONFED_SET,
}
_SETS = (pb.AsPathSegment.AS_SET, pb.AsPathSegment.AS_CONFED_SET)


def route_message(
    router: str, m: RouteMatch, local_as: int, highest_as_set: bool = False
) -> pb.Route:
    a: PathAttributes = m.attributes
    if m.length == 0:
        peer_as = a.peer_as_highest if highest_as_set else a.peer_as
        origin_as, oprov, pprov = 0, DEFAULT, DEFAULT
    elif a.empty_path:
        origin_as, peer_as, oprov, pprov = local_as, 0, LOCAL, LOCAL
    else:
        origin_as = a.origin_as_highest if highest_as_set else a.origin_as
        peer_as = a.peer_as_highest if highest_as_set else a.peer_as
        oprov, pprov = BGP, BGP
    return pb.Route(
        router=router,
        prefix=m.prefix,
        path_id=m.path_id,
        as_path=[pb.AsPathSegment(type=_SEGMENT_TYPES[k], asns=asns) for k, asns in a.as_path],
        origin=a.origin,
        next_hop=a.next_hop,
        local_pref=a.local_pref or 0,
        has_local_pref=a.local_pref is not None,
        med=a.med or 0,
        has_med=a.med is not None,
        communities=a.community_strings(),
        large_communities=a.large_community_strings(),
        extended_communities=a.extended_communities,
        originator_id=a.originator_id,
        cluster_list=a.cluster_list,
        atomic_aggregate=a.atomic_aggregate,
        aggregator=a.aggregator,
        stale=m.stale,
        origin_as=origin_as,
        peer_as=peer_as,
        origin_provenance=oprov,
        peer_provenance=pprov,
    )


class RouteMessages:
    """Route messages built once and reused across batches.

    Building a Route message (AS path segments, community strings) costs far
    more than resolving the flows that refer to it; popular routes recur in
    every batch. Keyed by everything the message shows, so a changed route or
    a reloaded local AS / AS_SET policy makes a new entry, never a stale one.
    The attribute set is keyed by its id() and kept with its message, so no
    other set can get that id while the entry lives: a freed set's address
    handed to a new set with the same next hop (all the old guard compared)
    served the old message, its local-pref, communities and path
    (tests/attribution/test_route_caches_id_reuse.py).
    """

    def __init__(self, limit: int = 200_000) -> None:
        self._cache: dict[tuple, tuple[PathAttributes, pb.Route]] = {}
        self.limit = limit

    def get(self, router: str, m: RouteMatch, local_as: int, highest: bool) -> pb.Route:
        a = m.attributes
        key = (router, m.prefix, m.path_id, m.stale, id(a), local_as, highest)
        hit = self._cache.get(key)
        if hit is None or hit[0] is not a:
            if len(self._cache) >= self.limit:
                self._cache.clear()
            hit = self._cache[key] = (a, route_message(router, m, local_as, highest))
        return hit[1]


_DEFAULT_ROUTE_MESSAGES = RouteMessages()


def resolution_to_columns(
    res: Resolution,
    local_as: int,
    highest_as_set: bool = False,
    messages: RouteMessages = _DEFAULT_ROUTE_MESSAGES,
) -> tuple[pb.AttributionColumns, list[pb.FlowError]]:
    get = messages.get
    cols = pb.AttributionColumns(
        routers=res.routers,
        routes=[get(r, m, local_as, highest_as_set) for r, m in res.routes],
        overrides=res.overrides,
        **per_flow_fields(res),
    )
    return cols, flow_errors(res)


def per_flow_fields(res: Resolution) -> dict:
    """AttributionColumns' per-flow fields (router .. override) of a resolved batch."""
    return {
        "router": _list(res.router),
        "src_origin_as": _list(res.src_origin_as),
        "src_peer_as": _list(res.src_peer_as),
        "dst_origin_as": _list(res.dst_origin_as),
        "dst_peer_as": _list(res.dst_peer_as),
        "provenance": bytes(res.provenance),
        "flags": _list(res.flags),
        "src_route": _list(res.src_route),
        "dst_route": _list(res.dst_route),
        "override": _list(res.override),
    }


def flow_errors(res: Resolution) -> list[pb.FlowError]:
    return [pb.FlowError(index=i, code=c, message=msg) for i, c, msg in res.errors]


def _list(values: object) -> list:
    """numpy columns -> lists (protobuf's repeated fields take lists fastest)."""
    return values.tolist() if hasattr(values, "tolist") else list(values)  # type: ignore[attr-defined]


class AnswerColumns(NamedTuple):
    """An answer's per-flow columns as Python sequences, packed or not."""

    router: Sequence[int]
    src_origin_as: Sequence[int]
    src_peer_as: Sequence[int]
    dst_origin_as: Sequence[int]
    dst_peer_as: Sequence[int]
    provenance: bytes  # 4 per flow
    flags: Sequence[int]
    src_route: Sequence[int]
    dst_route: Sequence[int]
    override: Sequence[int]


def answer_columns(cols: pb.AttributionColumns) -> AnswerColumns:
    """Per-flow columns of an answer, from ``records`` (packed_records) or the fields."""
    if not cols.records:
        return AnswerColumns(
            cols.router,
            cols.src_origin_as,
            cols.src_peer_as,
            cols.dst_origin_as,
            cols.dst_peer_as,
            cols.provenance,
            cols.flags,
            cols.src_route,
            cols.dst_route,
            cols.override,
        )
    rec = decode_records(cols)
    return AnswerColumns(
        rec["router"].tolist(),
        rec["src_origin_as"].tolist(),
        rec["src_peer_as"].tolist(),
        rec["dst_origin_as"].tolist(),
        rec["dst_peer_as"].tolist(),
        rec["provenance"].tobytes(),
        rec["flags"].tolist(),
        rec["src_route"].tolist(),
        rec["dst_route"].tolist(),
        rec["override"].tolist(),
    )


def decode_records(cols: pb.AttributionColumns) -> np.ndarray:
    """A packed_records answer's per-flow answers as a numpy record array (RECORD_DTYPE)."""
    if len(cols.records) % RECORD_DTYPE.itemsize:
        raise ValueError(
            f"records holds {len(cols.records)} bytes, not a multiple of {RECORD_DTYPE.itemsize}"
        )
    return np.frombuffer(cols.records, dtype=RECORD_DTYPE)


def columns_to_rows(
    cols: pb.AttributionColumns, errors: Sequence[pb.FlowError]
) -> list[pb.FlowAttribution]:
    """Per-flow messages from columns (the `flows` shape of ResolveBatch)."""
    by_index = {e.index: e for e in errors}
    out = []
    f = answer_columns(cols)
    prov = f.provenance
    for i in range(len(f.flags)):
        err = by_index.get(i)
        if err is not None:
            out.append(pb.FlowAttribution(error=err))
            continue
        fa = pb.FlowAttribution(
            router=cols.routers[f.router[i]] if f.router[i] >= 0 else "",
            src_origin_as=f.src_origin_as[i],
            src_peer_as=f.src_peer_as[i],
            dst_origin_as=f.dst_origin_as[i],
            dst_peer_as=f.dst_peer_as[i],
            src_origin_provenance=prov[4 * i],
            src_peer_provenance=prov[4 * i + 1],
            dst_origin_provenance=prov[4 * i + 2],
            dst_peer_provenance=prov[4 * i + 3],
            flags=f.flags[i],
            override=cols.overrides[f.override[i]] if f.override[i] >= 0 else "",
        )
        if f.src_route[i] >= 0:
            fa.src_route.CopyFrom(cols.routes[f.src_route[i]])
        if f.dst_route[i] >= 0:
            fa.dst_route.CopyFrom(cols.routes[f.dst_route[i]])
        out.append(fa)
    return out


def as_path_json(segments: Sequence[pb.AsPathSegment]) -> list:
    """AS path as the JSON contract shows it: ints, an AS_SET as a nested list."""
    out: list = []
    for seg in segments:
        if seg.type in _SETS:
            out.append(list(seg.asns))
        else:
            out.extend(seg.asns)
    return out


FLAG_ITEMS = tuple(FLAG_NAMES.items())

_EMPTY_ANSWER = {
    "router": None,
    "src_origin_as": 0,
    "src_peer_as": 0,
    "dst_origin_as": 0,
    "dst_peer_as": 0,
    "src_origin_provenance": "none",
    "src_peer_provenance": "none",
    "dst_origin_provenance": "none",
    "dst_peer_provenance": "none",
    "src_prefix": None,
    "dst_prefix": None,
    "src_as_path": [],
    "dst_as_path": [],
    "dst_communities": [],
    "dst_large_communities": [],
    "dst_local_pref": None,
    "dst_med": None,
    "dst_next_hop": None,
    "src_communities": [],
    "src_large_communities": [],
    "src_local_pref": None,
    "src_med": None,
    "src_next_hop": None,
    "override": None,
    **{name: False for name in FLAG_NAMES.values()},
    "error": None,
    "error_code": None,
}


def error_answer(code: str, message: str) -> dict:
    return {**_EMPTY_ANSWER, "error": message, "error_code": code}


def columns_to_answers(
    cols: pb.AttributionColumns,
    errors: Sequence[pb.FlowError],
    route_json: Sequence[dict] | None = None,
) -> Iterator[dict]:
    """One flow-JSON answer dict per flow, in order (see docs/flow-json.md).

    ``route_json``: the route dictionary as ``route_summary_json`` dicts when
    it is not ``cols.routes`` (a stream_routes dictionary).
    """
    by_index = {e.index: e for e in errors}
    if route_json is None:
        route_json = [route_summary_json(r) for r in cols.routes]
    f = answer_columns(cols)
    prov = f.provenance
    for i in range(len(f.flags)):
        err = by_index.get(i)
        if err is not None:
            yield error_answer(err.code, err.message)
            continue
        yield _answer_json(
            cols.routers[f.router[i]] if f.router[i] >= 0 else None,
            (f.src_origin_as[i], f.src_peer_as[i], f.dst_origin_as[i], f.dst_peer_as[i]),
            prov[4 * i : 4 * i + 4],
            route_json[f.src_route[i]] if f.src_route[i] >= 0 else None,
            route_json[f.dst_route[i]] if f.dst_route[i] >= 0 else None,
            cols.overrides[f.override[i]] if f.override[i] >= 0 else None,
            f.flags[i],
        )


def flow_answer_json(answer: FlowAnswer, local_as: int, highest_as_set: bool = False) -> dict:
    """The flow-JSON answer of ``Resolver.resolve_one`` (same shape as columns_to_answers)."""
    if answer.error is not None:
        return error_answer(*answer.error)
    s = d = None
    if answer.src_route is not None:
        s = route_summary_json(route_message(*answer.src_route, local_as, highest_as_set))
    if answer.dst_route is not None:
        d = route_summary_json(route_message(*answer.dst_route, local_as, highest_as_set))
    a = answer
    return _answer_json(
        a.router,
        (a.src_origin_as, a.src_peer_as, a.dst_origin_as, a.dst_peer_as),
        a.provenance,
        s,
        d,
        a.override,
        a.flags,
    )


def flow_attribution_json(fa: pb.FlowAttribution) -> dict:
    """The flow-JSON answer of one row of a ``flows`` batch's answer (same shape again)."""
    if fa.HasField("error"):
        return error_answer(fa.error.code, fa.error.message)
    routes = [
        route_summary_json(getattr(fa, side)) if fa.HasField(side) else None
        for side in ("src_route", "dst_route")
    ]
    return _answer_json(
        fa.router or None,
        (fa.src_origin_as, fa.src_peer_as, fa.dst_origin_as, fa.dst_peer_as),
        (
            fa.src_origin_provenance,
            fa.src_peer_provenance,
            fa.dst_origin_provenance,
            fa.dst_peer_provenance,
        ),
        *routes,
        fa.override or None,
        fa.flags,
    )


def _answer_json(
    router: str | None,
    asns: tuple[int, int, int, int],  # src origin, src peer, dst origin, dst peer
    provenance: Sequence[int],  # the same four
    s: dict | None,  # route_summary_json of the src route
    d: dict | None,
    override: str | None,
    flags: int,
) -> dict:
    names = PROVENANCE_NAMES
    answer = {
        "router": router,
        "src_origin_as": asns[0],
        "src_peer_as": asns[1],
        "dst_origin_as": asns[2],
        "dst_peer_as": asns[3],
        "src_origin_provenance": names.get(provenance[0], "none"),
        "src_peer_provenance": names.get(provenance[1], "none"),
        "dst_origin_provenance": names.get(provenance[2], "none"),
        "dst_peer_provenance": names.get(provenance[3], "none"),
        "src_prefix": s["prefix"] if s else None,
        "dst_prefix": d["prefix"] if d else None,
        "src_as_path": s["as_path"] if s else [],
        "dst_as_path": d["as_path"] if d else [],
        "dst_communities": d["communities"] if d else [],
        "dst_large_communities": d["large_communities"] if d else [],
        "dst_local_pref": d["local_pref"] if d else None,
        "dst_med": d["med"] if d else None,
        "dst_next_hop": d["next_hop"] if d else None,
        "src_communities": s["communities"] if s else [],
        "src_large_communities": s["large_communities"] if s else [],
        "src_local_pref": s["local_pref"] if s else None,
        "src_med": s["med"] if s else None,
        "src_next_hop": s["next_hop"] if s else None,
        "override": override,
    }
    for bit, name in FLAG_ITEMS:
        answer[name] = bool(flags & bit)
    answer["error"] = None
    answer["error_code"] = None
    return answer


def route_summary_json(r: pb.Route) -> dict:
    """The parts of a route a flow answer shows (src_/dst_ prefix, AS path, ...)."""
    return {
        "prefix": r.prefix,
        "as_path": as_path_json(r.as_path),
        "communities": list(r.communities),
        "large_communities": list(r.large_communities),
        "local_pref": r.local_pref if r.has_local_pref else None,
        "med": r.med if r.has_med else None,
        "next_hop": r.next_hop or None,
    }


def route_to_json(r: pb.Route) -> dict:
    """A whole route for `attribution lookup`."""
    return {
        "router": r.router,
        "prefix": r.prefix,
        "path_id": r.path_id,
        "as_path": as_path_json(r.as_path),
        "origin_as": r.origin_as,
        "peer_as": r.peer_as,
        "origin_provenance": PROVENANCE_NAMES.get(r.origin_provenance, "none"),
        "peer_provenance": PROVENANCE_NAMES.get(r.peer_provenance, "none"),
        "origin": r.origin,
        "next_hop": r.next_hop or None,
        "local_pref": r.local_pref if r.has_local_pref else None,
        "med": r.med if r.has_med else None,
        "communities": list(r.communities),
        "large_communities": list(r.large_communities),
        "extended_communities": list(r.extended_communities),
        "originator_id": r.originator_id or None,
        "cluster_list": list(r.cluster_list),
        "atomic_aggregate": r.atomic_aggregate,
        "aggregator": r.aggregator or None,
        "stale": r.stale,
    }


__all__ = [
    "answer_columns",
    "as_path_json",
    "columns_to_answers",
    "columns_to_rows",
    "decode_records",
    "error_answer",
    "flow_answer_json",
    "flow_errors",
    "per_flow_fields",
    "resolution_to_columns",
    "route_message",
    "route_summary_json",
    "route_to_json",
]
