"""An explanation (attribution.explain) as a proto message, as JSON, as text. No I/O.

The server turns the core's dataclasses into an ``Explanation`` message; the
client turns that message into one JSON document (``--json``) and the text
is written from that document, so text and JSON cannot say different things.
"""

from __future__ import annotations

from attribution.config import Config
from attribution.convert import (
    columns_to_answers,
    error_answer,
    route_message,
    route_to_json,
)
from attribution.explain import Explanation, explain
from attribution.explain_paths import Side
from attribution.resolver import PROVENANCE_NAMES, Resolver
from attribution.v1 import attribution_pb2 as pb
from attribution.wire import RouteEncoder, encode_flow_answer

# -- server: dataclasses -> message --------------------------------------------


def explanation(
    resolver: Resolver, config: Config, flow: dict, encoder: RouteEncoder | None = None
) -> pb.Explanation:
    """Explain ``flow`` and answer the Explain RPC's message (the service, and
    `attribution explain --table` without one)."""
    e = explain(resolver, config, flow)
    routing = resolver.routing
    local_as, highest = routing.local_as, routing.highest_as_set
    answer = encode_flow_answer(e.answer, encoder or RouteEncoder(), local_as, highest)
    return to_message(e, pb.FlowAttribution.FromString(answer), local_as, highest)


def to_message(
    e: Explanation, answer: pb.FlowAttribution, local_as: int, highest: bool
) -> pb.Explanation:
    """``answer``: the real answer as Resolve serializes it."""
    msg = pb.Explanation(
        answer=answer,
        exporter=e.exporter,
        family=e.family,
        router=e.router or "",
        routers=[
            pb.ExplainRouterStep(
                router=s.router,
                neighbor=s.neighbor,
                source=s.source,
                outcome=s.outcome,
                reason=s.reason,
            )
            for s in e.chain
        ],
        overrides=[
            pb.ExplainOverride(
                index=o.index,
                name=o.name,
                peer_as=o.peer_as,
                outcome=o.outcome,
                key=o.key,
                reason=o.reason,
                shadowed_by=o.shadowed_by,
            )
            for o in e.overrides
        ],
        flags=[pb.ExplainFlag(flag=c.flag, reason=c.reason) for c in e.flag_causes],
        mismatches=e.mismatches,
        as_set_policy="highest" if highest else "aggregator",
        local_as=local_as,
        ix=e.ix_reason,
    )
    for side, target in ((e.dst, msg.dst), (e.src, msg.src)):
        if side is not None:
            target.CopyFrom(_side_message(side, e.router or "", local_as, highest))
    return msg


def _side_message(side: Side, router: str, local_as: int, highest: bool) -> pb.ExplainSide:
    return pb.ExplainSide(
        address=side.address,
        prefixes=[
            pb.ExplainPrefix(
                prefix=c.prefix,
                used=c.used,
                stale=c.stale,
                paths=[route_message(router, m, local_as, highest) for m in c.paths],
                decided_by=c.decided_by,
                decision=c.decision,
            )
            for c in side.prefixes
        ],
        rules=side.rules,
        reasons=side.reasons,
        origin_as=side.origin_as,
        peer_as=side.peer_as,
        provenance=side.provenance,
    )


# -- client: message -> JSON -----------------------------------------------------


def answer_json(fa: pb.FlowAttribution) -> dict:
    """A FlowAttribution as flow JSON (the answer fields `attribution resolve` adds)."""
    if fa.HasField("error"):
        return error_answer(fa.error.code, fa.error.message)
    routes = []
    for name in ("src_route", "dst_route"):
        if fa.HasField(name):
            routes.append(getattr(fa, name))
    src_i = 0 if fa.HasField("src_route") else -1
    dst_i = (1 if src_i == 0 else 0) if fa.HasField("dst_route") else -1
    cols = pb.AttributionColumns(
        routers=[fa.router] if fa.router else [],
        router=[0 if fa.router else -1],
        src_origin_as=[fa.src_origin_as],
        src_peer_as=[fa.src_peer_as],
        dst_origin_as=[fa.dst_origin_as],
        dst_peer_as=[fa.dst_peer_as],
        provenance=bytes(
            [
                fa.src_origin_provenance,
                fa.src_peer_provenance,
                fa.dst_origin_provenance,
                fa.dst_peer_provenance,
            ]
        ),
        flags=[fa.flags],
        routes=routes,
        src_route=[src_i],
        dst_route=[dst_i],
        overrides=[fa.override] if fa.override else [],
        override=[0 if fa.override else -1],
    )
    (answer,) = columns_to_answers(cols, [])
    return answer


def _side_json(side: pb.ExplainSide) -> dict:
    return {
        "address": side.address,
        "origin_as": side.origin_as,
        "peer_as": side.peer_as,
        "provenance": PROVENANCE_NAMES.get(side.provenance, "none"),
        "rules": list(side.rules),
        "reasons": list(side.reasons),
        "prefixes": [
            {
                "prefix": c.prefix,
                "used": c.used,
                "stale": c.stale,
                "decided_by": c.decided_by or None,
                "decision": c.decision or None,
                "paths": [route_to_json(p) for p in c.paths],
            }
            for c in side.prefixes
        ],
    }


def to_json(msg: pb.Explanation) -> dict:
    """One JSON document: the answer (flow JSON fields) and how it was derived."""
    return {
        "answer": answer_json(msg.answer),
        "exporter": msg.exporter or None,
        "family": msg.family or None,
        "as_set_policy": msg.as_set_policy,
        "local_as": msg.local_as,
        "routers": [
            {
                "router": s.router or None,
                "neighbor": s.neighbor or None,
                "source": s.source or None,
                "outcome": s.outcome,
                "reason": s.reason,
            }
            for s in msg.routers
        ],
        "router": msg.router or None,
        "dst": _side_json(msg.dst) if msg.HasField("dst") else None,
        "src": _side_json(msg.src) if msg.HasField("src") else None,
        "overrides": [
            {
                "index": o.index,
                "name": o.name,
                "peer_as": o.peer_as,
                "outcome": o.outcome,
                "key": o.key or None,
                "reason": o.reason,
                "shadowed_by": o.shadowed_by or None,
            }
            for o in msg.overrides
        ],
        "ix": msg.ix or None,
        "flags": [{"flag": f.flag, "reason": f.reason} for f in msg.flags],
        "mismatches": list(msg.mismatches),
    }


# -- client: JSON -> text --------------------------------------------------------


def _path_text(p: dict) -> str:
    path = " ".join(
        "{" + ",".join(map(str, x)) + "}" if isinstance(x, list) else str(x) for x in p["as_path"]
    )
    parts = [f"[{path}]" if path else "[] (empty)"]
    if p["path_id"]:
        parts.insert(0, f"path id {p['path_id']}")
    parts.append(f"origin {p['origin']}")
    if p["local_pref"] is not None:
        parts.append(f"local-pref {p['local_pref']}")
    if p["med"] is not None:
        parts.append(f"MED {p['med']}")
    if p["next_hop"]:
        parts.append(f"next hop {p['next_hop']}")
    if p["stale"]:
        parts.append("STALE")
    return "  ".join(parts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else ('es' if noun.endswith('x') else 's')}"


def _as(asn: int, prov: str) -> str:
    return f"AS{asn} ({prov})"


def to_text(doc: dict) -> str:
    """The explanation for a reader: answer first, then each step that led to it."""
    a = doc["answer"]
    lines: list[str] = []
    out = lines.append
    flow = doc.get("flow")
    if flow:
        head = f"flow: exporter {flow['exporter']}, {flow['src_addr']} -> {flow['dst_addr']}"
        if flow.get("in_if"):
            head += f", in_if {flow['in_if']}"
        if flow.get("src_mac"):
            head += f", src_mac {flow['src_mac']}"
        out(head)
    if a.get("error"):
        out(f"answer: error {a['error_code']}: {a['error']}")
    else:
        out(f"answer: router {a['router'] or '(none)'}")
        for side in ("dst", "src"):
            out(
                f"  {side}: origin {_as(a[f'{side}_origin_as'], a[f'{side}_origin_provenance'])}"
                f", peer {_as(a[f'{side}_peer_as'], a[f'{side}_peer_provenance'])}"
                f", prefix {a[f'{side}_prefix'] or '(none)'}"
            )
        if a["override"]:
            out(f"  override: {a['override']}")
        set_flags = [f["flag"] for f in doc["flags"]]
        out(f"  flags: {', '.join(set_flags) if set_flags else '(none)'}")
    if doc["family"]:
        out("")
        out(f"router chain for exporter {doc['exporter']} ({doc['family']}):")
        for i, s in enumerate(doc["routers"], 1):
            who = f"{s['router']} ({s['neighbor']})" if s["router"] else "(no router to try)"
            source = f" <- {s['source']}" if s["source"] else ""
            out(f"  {i}. {who}{source}")
            out(f"     {s['outcome']}: {s['reason']}")
    if doc["family"] and not doc["router"] and not a.get("error"):
        out(f"  => no router of the chain has {doc['family']} routes: every AS number is 0")
    for side in ("dst", "src"):
        sd = doc[side]
        if sd is None:
            continue
        out("")
        n = len(sd["prefixes"])
        where = f"{side} {sd['address']} in {doc['router']}'s RIB"
        if n:
            out(f"{where}: {_count(n, 'covering prefix')}, most specific first")
        else:
            out(f"{where}: no covering prefix")
        for c in sd["prefixes"]:
            mark = "=>" if c["used"] else "  "
            paths = c["paths"]
            if len(paths) == 1:
                out(f"  {mark} {c['prefix']}  {_path_text(paths[0])}")
                continue
            out(f"  {mark} {c['prefix']}  {len(paths)} paths, best first; {c['decision']}")
            for k, p in enumerate(paths, 1):
                out(f"       {k}. {_path_text(p)}")
        for r in sd["reasons"]:
            out(f"  - {r}")
        out(
            f"  => origin {_as(sd['origin_as'], sd['provenance'])}, "
            f"peer {_as(sd['peer_as'], sd['provenance'])}"
        )
    if doc["overrides"]:
        out("")
        out("overrides, in file order:")
        for o in doc["overrides"]:
            how = f" on {o['key']}" if o["outcome"] == "no match" and o["key"] else ""
            out(f"  [{o['index']}] {o['name']} (peer AS {o['peer_as']}): {o['outcome']}{how}")
            out(f"      {o['reason']}")
    elif a.get("error"):
        out("")
        out("overrides: not applied (the flow is not answered)")
    elif doc["family"]:
        out("")
        out("overrides: none configured")
    if doc.get("ix"):
        out("")
        out(f"IX: {doc['ix']}")
    if doc["flags"]:
        out("")
        out("flags:")
        for f in doc["flags"]:
            out(f"  {f['flag']}: {f['reason']}")
    if doc["mismatches"]:
        out("")
        out("WARNING: the explanation and the answer differ (the RIB changed meanwhile?):")
        for m in doc["mismatches"]:
            out(f"  {m}")
    return "\n".join(lines)


__all__ = ["answer_json", "explanation", "to_json", "to_message", "to_text"]
