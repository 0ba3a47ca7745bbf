"""Why a flow got its answer: the derivation of every field, for one flow. No I/O.

"Why is this AS wrong?" is the question operators ask most (a more specific
route ignored, the default route used for the source, AS_SET and
confederation handling, the wrong router's RIB). The explanation is built
from the resolver's own pieces, so it cannot tell another story than the
answer: the router chain from ``Resolver.chain_for`` and ``pick_router``,
the AS numbers from ``Resolver._answer`` (which reads the origin and peer
``ribd.attributes.derive_as_numbers`` derived), the path ranking from
``ribd.rib.preference_key``, the override from ``first_match``. The words
around them only describe; the real answer (``Resolver.resolve_one``) is
carried along and compared, and any difference is listed in ``mismatches``
(the RIB can change between the answer and the explanation: both are
retried a few times before giving up).

One side's prefixes, paths and rule are in ``attribution.explain_paths``;
rendering (proto message, JSON, text) is in ``attribution.explain_render``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from attribution.config import Config, OverrideRule, format_mac
from attribution.explain_paths import CRITERIA, Side, explain_side
from attribution.ix_explain import IX_MAC, explain_ix, ix_flags
from attribution.overrides import first_match
from attribution.resolver import (
    BGP,
    DEFAULT,
    DST_NEXT_HOP_MISMATCH,
    DST_ORIGIN_AS_SET,
    DST_STALE,
    FALLBACK,
    FLAG_NAMES,
    NO_MAC,
    NONE,
    OVERRIDE,
    SRC_ASYMMETRIC,
    SRC_ORIGIN_AS_SET,
    SRC_STALE,
    SRC_UNROUTED,
    V4_MAPPED,
    BadRecord,
    FlowAnswer,
    Resolver,
    Routing,
    next_hop_of,
    validate_row,
)
from ribd.events import IPV4_UNICAST, IPV6_UNICAST

ATTEMPTS = 3  # answer + explanation re-read when the RIB changed in between


@dataclass(slots=True)
class RouterStep:
    """One router of the chain: how it got there and what happened to it."""

    router: str  # name
    neighbor: str
    source: str  # how it entered the chain, in words
    outcome: str  # "answered" | "skipped" | "not tried"
    reason: str


@dataclass(slots=True)
class OverrideStep:
    index: int  # position in file order
    name: str
    peer_as: int
    outcome: str  # "matched" | "no match" | "superseded" | "shadowed"
    key: str  # the key that decided: "exporter" | "in_if" | "src_mac" | ""
    reason: str
    shadowed_by: str = ""  # an earlier rule that takes all of this rule's traffic


@dataclass(slots=True)
class FlagCause:
    flag: str
    reason: str


@dataclass(slots=True)
class Explanation:
    answer: FlowAnswer  # the real answer (Resolver.resolve_one)
    exporter: str = ""
    family: str = ""
    chain: list[RouterStep] = field(default_factory=list)
    router: str | None = None
    dst: Side | None = None
    src: Side | None = None
    overrides: list[OverrideStep] = field(default_factory=list)
    override: str | None = None
    flags: int = 0
    flag_causes: list[FlagCause] = field(default_factory=list)
    error: tuple[str, str] | None = None
    mismatches: list[str] = field(default_factory=list)
    ix_reason: str = ""  # an IX port's learned answer for the source MAC, in words
    ix_peer_as: int = 0  # what it gave (0: nothing usable, or a manual rule won)


def explain(resolver: Resolver, config: Config, flow: dict) -> Explanation:
    """Explain ``flow`` (a flow JSON record) with ``resolver``'s current RIB and plan.

    ``config`` is the running config; it only names how routers entered the
    chain (exporters entry, neighbor, router id). Retried when the RIB changed
    between the answer and the explanation.
    """
    for _ in range(ATTEMPTS):
        answer = resolver.resolve_one(flow)
        e = _explain(resolver, config, flow, answer)
        if not e.mismatches:
            break
    return e


def _explain(resolver: Resolver, config: Config, flow: dict, answer: FlowAnswer) -> Explanation:
    e = Explanation(answer=answer)
    try:
        exporter, s16, d16, in_if, mac = validate_row(flow)
        next_hop = next_hop_of(flow)
    except BadRecord as exc:
        e.error = (exc.code, exc.message)
        _compare(e)
        return e
    v4 = s16[:12] == V4_MAPPED
    e.exporter = exporter
    if v4 != (d16[:12] == V4_MAPPED):
        e.error = ("family_mismatch", "src_addr and dst_addr are not of one family")
        _compare(e)
        return e
    routing = resolver.routing
    family = e.family = IPV4_UNICAST if v4 else IPV6_UNICAST
    chain, own = resolver.chain_for(exporter, routing)
    sources = _chain_sources(exporter, chain, own, routing, config)
    rib = resolver.rib
    with rib.lock:
        neighbor, is_fallback = resolver.pick_router(chain, own, family)
        answered = False
        for i, n in enumerate(chain):
            name = routing.names.get(n, n)
            if n == neighbor:
                step = RouterStep(name, n, sources[i], "answered", _holds(resolver, n, family))
                answered = True
            elif answered:
                step = RouterStep(name, n, sources[i], "not tried", "an earlier router answered")
            else:
                step = RouterStep(name, n, sources[i], "skipped", _no_routes(resolver, n, family))
                if resolver.pick_router((n,), True, family)[0] is not None:
                    e.mismatches.append(f"router {name} skipped but has {family} routes")
            e.chain.append(step)
        if neighbor is not None:
            e.router = routing.names.get(neighbor, neighbor)
            d_key, s_key = (d16[12:], s16[12:]) if v4 else (d16, s16)
            e.dst = explain_side(resolver, routing, neighbor, family, "dst", d_key, next_hop)
            e.src = explain_side(resolver, routing, neighbor, family, "src", s_key)
    if not chain:
        e.chain.append(RouterStep("", "", "", "skipped", _no_chain(exporter, routing)))
    if neighbor is None and not own:
        e.error = resolver.unknown_exporter(exporter, family, routing)
    else:
        _overrides(e, routing, exporter, in_if, None if mac == NO_MAC else mac)
        if routing.ix is not None:
            explain_ix(e, routing.ix, exporter, in_if, mac)
    _flags(e, resolver, neighbor, is_fallback, own, chain)
    _compare(e)
    return e


# -- the router chain ----------------------------------------------------------


def _chain_sources(
    exporter: str,
    chain: tuple[str, ...],
    own: bool,
    routing: Routing,
    config: Config,
) -> list[str]:
    """How each router of ``chain`` got there, in words (config order of precedence)."""
    own_chain = routing.chains.get(exporter)
    by_neighbor = {r.neighbor: r for r in config.routers}
    out: list[str] = []
    first = own_chain[0] if own_chain else None
    rc = by_neighbor.get(first) if first else None
    for i, n in enumerate(chain):
        if own and own_chain is None and i == 0:
            out.append(f"exporter {exporter} is a BGP neighbor seen on the feed, not configured")
        elif own and own_chain is not None and i == 0:
            if rc is None:
                out.append(f"exporter map: {exporter}")
            elif exporter in rc.exporters:
                out.append(f"exporter map: {exporter} is in {rc.name}'s exporters")
            elif rc.neighbor == exporter:
                out.append(f"exporter {exporter} is {rc.name}'s neighbor address")
            else:
                out.append(f"exporter {exporter} is {rc.name}'s router_id")
        elif own_chain is not None and n in own_chain:
            owner = rc.name if rc else routing.names.get(first or "", first or "")
            out.append(f"fallback of {owner} ([[routers]] fallback)")
        else:
            out.append("[service] fallback")
    return out


def _no_chain(exporter: str, routing: Routing) -> str:
    return (
        f"exporter {exporter} maps to no router (no [[routers]] entry has it in exporters, "
        "as neighbor or as router_id) and [service] fallback is empty"
    )


def _since(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t)) if t else "never"


def _session(r) -> str:
    text = f"session {r.session or 'idle'}"
    if r.session != "up" and r.last_reason:
        text += f" ({r.last_reason})"
    return text


def _no_routes(resolver: Resolver, neighbor: str, family: str) -> str:
    """Why pick_router passes over ``neighbor`` (it holds no routes of ``family``)."""
    r = resolver.rib.routers.get(neighbor)
    if r is None:
        return "no RIB: never seen on the feed (no BGP session yet)"
    fs = r.families[family]
    if fs.prefixes or fs.stale_slot is not None:
        return f"has {family} routes"  # not skipped: only after the answering router
    if r.session != "up":
        return f"no {family} routes: {_session(r)}, routes purged"
    if not fs.converged:
        return f"no {family} routes: session up, none received yet (waiting for End-of-RIB)"
    return f"no {family} routes: the router sent none"


def _holds(resolver: Resolver, neighbor: str, family: str) -> str:
    r = resolver.rib.routers[neighbor]
    fs = r.families[family]
    text = f"has {_prefixes(fs.prefixes, family)}, {_session(r)}"
    if r.current_stale:
        text += f", routes served stale until {_since(r.stale_until)}"
    elif fs.stale_slot is not None:
        text = (
            f"{_session(r)}: {_prefixes(fs.prefixes, family)} received since, plus "
            f"{_prefixes(fs.stale_prefixes, 'stale')} kept from before (until End-of-RIB"
            + (f" or {_since(r.stale_until)})" if r.stale_until else ")")
        )
    return text


def _prefixes(n: int, what: str) -> str:
    return f"{n} {what} prefix{'' if n == 1 else 'es'}"


# -- overrides -----------------------------------------------------------------


def _overrides(
    e: Explanation, routing: Routing, exporter: str, in_if: int, mac: bytes | None
) -> None:
    """Every rule in file order against this flow's (exporter, in_if, src MAC)."""
    rules = routing.overrides.rules
    winner: OverrideRule | None = None
    cands = routing.overrides.ports_of(exporter).get(in_if)
    if cands:
        winner = first_match(cands, mac)  # the resolver's own choice
    e.override = winner.name if winner else None
    seen_winner = False
    for i, rule in enumerate(rules):
        shadow = next(
            (
                p
                for p in rules[:i]
                if (p.exporter, p.in_if) == (rule.exporter, rule.in_if)
                and (p.src_mac is None or p.src_mac == rule.src_mac)
            ),
            None,
        )
        step = OverrideStep(i, rule.name, rule.peer_as, "no match", "", "")
        if shadow is not None:
            step.shadowed_by = shadow.name
        if rule.exporter != exporter:
            step.key = "exporter"
            step.reason = f"the rule's exporter {rule.exporter}, the flow's {exporter}"
        elif rule.in_if != in_if:
            step.key, step.reason = "in_if", f"the rule's in_if {rule.in_if}, the flow's {in_if}"
        elif rule.src_mac is not None and rule.src_mac != mac:
            flow_mac = format_mac(mac) if mac else "none"
            step.key = "src_mac"
            step.reason = f"the rule's src_mac {format_mac(rule.src_mac)}, the flow's {flow_mac}"
        elif rule is winner:
            seen_winner = True
            step.outcome, step.key = "matched", "in_if" if rule.src_mac is None else "src_mac"
            keys = f"exporter {exporter}, in_if {in_if}"
            if rule.src_mac is not None:
                keys += f", src_mac {format_mac(rule.src_mac)}"
            step.reason = f"{keys}: src peer AS set to {rule.peer_as}"
        else:
            step.outcome = "superseded"
            step.reason = f"matches too, but {winner.name if winner else '?'} comes first"
        if shadow is not None and step.outcome != "matched":
            step.reason += f"; shadowed: {shadow.name} comes first and takes all its traffic"
            if step.outcome == "superseded":
                step.outcome = "shadowed"
        e.overrides.append(step)
    if winner is not None and not seen_winner:
        e.mismatches.append(f"override {winner.name} chosen but not found in file order")


# -- flags ---------------------------------------------------------------------


def _flags(
    e: Explanation,
    resolver: Resolver,
    neighbor: str | None,
    is_fallback: bool,
    own: bool,
    chain: tuple[str, ...],
) -> None:
    causes = e.flag_causes
    flags = 0
    if e.error is not None:
        e.flags = 0
        return
    if neighbor is not None and is_fallback:
        flags |= FALLBACK
        if own:
            first = e.chain[0]
            why = f"{first.router}, the exporter's own router, was skipped ({first.reason})"
        else:
            why = f"exporter {e.exporter} maps to no router"
        causes.append(FlagCause("fallback", f"{why}; {e.router} answered"))
    for side, stale_bit, set_bit in (
        (e.dst, DST_STALE, DST_ORIGIN_AS_SET),
        (e.src, SRC_STALE, SRC_ORIGIN_AS_SET),
    ):
        if side is None:
            continue
        used = next((c for c in side.prefixes if c.used), None)
        if side.stale:
            flags |= stale_bit
            r = resolver.rib.routers[neighbor]  # type: ignore[index]
            if r.current_stale:
                why = f"{_session(r)}: its routes are kept stale until {_since(r.stale_until)}"
            else:
                why = (
                    "kept from before the session restarted (or before lost feed lines were "
                    "re-read), until End-of-RIB or the hold time"
                )
            causes.append(FlagCause(FLAG_NAMES[stale_bit], f"{used.prefix if used else ''}: {why}"))
        if side.from_set:
            flags |= set_bit
            causes.append(FlagCause(FLAG_NAMES[set_bit], side.as_set_reason))
    if e.dst is not None and e.dst.next_hop_mismatch:
        flags |= DST_NEXT_HOP_MISMATCH
        causes.append(FlagCause("dst_next_hop_mismatch", e.dst.next_hop_reason))
    src = e.src
    if src is not None and src.provenance in (NONE, DEFAULT):
        flags |= SRC_UNROUTED
        what = "only the default route" if src.provenance == DEFAULT else "no route"
        causes.append(
            FlagCause("src_unrouted", f"{what} covers the source {src.address}: spoofing suspect")
        )
    if e.override is not None:
        rule = next(s for s in e.overrides if s.outcome == "matched")
        if src is not None and src.provenance == BGP and src.peer_as != rule.peer_as:
            flags |= SRC_ASYMMETRIC
            causes.append(
                FlagCause(
                    "src_asymmetric",
                    f"override {rule.name} says peer AS {rule.peer_as}, the RIB's best path "
                    f"to the source says {src.peer_as}",
                )
            )
    flags |= ix_flags(e, src)
    order = list(FLAG_NAMES.values())
    causes.sort(key=lambda c: order.index(c.flag))
    e.flags = flags


# -- agreement with the real answer ----------------------------------------------


def _compare(e: Explanation) -> None:
    a = e.answer
    out = e.mismatches
    if (a.error or None) != (e.error or None):
        out.append(f"error: answer {a.error}, explanation {e.error}")
        return
    if e.error is not None:
        return
    if a.router != e.router:
        out.append(f"router: answer {a.router}, explanation {e.router}")
    for side, origin, peer, po, pp in (
        (e.src, a.src_origin_as, a.src_peer_as, a.provenance[0], a.provenance[1]),
        (e.dst, a.dst_origin_as, a.dst_peer_as, a.provenance[2], a.provenance[3]),
    ):
        if side is None:
            if (origin, peer) != (0, 0) and pp not in (OVERRIDE, IX_MAC):
                out.append("answer has AS numbers where the explanation has no router")
            continue
        if pp == IX_MAC and peer != e.ix_peer_as:
            out.append(f"src: answer ix_mac peer {peer}, explanation {e.ix_peer_as}")
        if pp in (OVERRIDE, IX_MAC):
            peer, pp = side.peer_as, side.provenance  # compared with the override below
        if (origin, peer, po, pp) != (
            side.origin_as,
            side.peer_as,
            side.provenance,
            side.provenance,
        ):
            out.append(
                f"{side.name}: answer origin {origin} peer {peer}, explanation origin "
                f"{side.origin_as} peer {side.peer_as}"
            )
        route = a.src_route if side.name == "src" else a.dst_route
        c = next((c for c in side.prefixes if c.used), None)
        got = (route[1].prefix, route[1].path_id) if route else None
        used = side.path_id if side.path_id is not None else c.paths[0].path_id if c else 0
        said = (c.prefix, used) if c else None
        if got != said:
            out.append(f"{side.name}: answer (prefix, path id) {got}, explanation {said}")
    if a.override != e.override:
        out.append(f"override: answer {a.override}, explanation {e.override}")
    if a.flags != e.flags:
        names = lambda f: sorted(n for b, n in FLAG_NAMES.items() if f & b)  # noqa: E731
        out.append(f"flags: answer {names(a.flags)}, explanation {names(e.flags)}")


__all__ = ["CRITERIA", "Explanation", "explain"]
