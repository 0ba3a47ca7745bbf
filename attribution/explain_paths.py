"""One side of a flow (dst or src) explained: every covering prefix of the
answering router's RIB, its paths ranked, and the rule that gave the AS numbers. No I/O.

The AS numbers are ``Resolver._answer``'s (origin and peer as
``ribd.attributes.derive_as_numbers`` derived them when the attributes were
interned), the ranking is ``ribd.rib.preference_key``'s: this module only
lists what the RIB holds and names the case of the README's semantics table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from attribution.resolver import NONE, V4_MAPPED, BatchRoutes, Resolver, Routing, unpack_address
from ribd.attributes import AS_CONFED_SEQUENCE, AS_CONFED_SET, AS_SEQUENCE, AS_SET
from ribd.prefix_limit import LIMIT_KEYS
from ribd.rib import RouteMatch, all_matches, preference_key, slot_value

# preference_key's fields, in order: what decided between two paths.
CRITERIA = ("local_pref", "as_path_length", "origin", "med", "path_id")


@dataclass(slots=True)
class CoveringPrefix:
    """A prefix of the router's RIB that covers the address, with its paths."""

    prefix: str
    stale: bool
    used: bool  # the longest match: the one the answer reads
    paths: list[RouteMatch]  # best first (preference_key order)
    decided_by: str = ""  # CRITERIA entry deciding best vs next ("" for one path)
    decision: str = ""  # that comparison in words


@dataclass(slots=True)
class Side:
    """dst or src: the lookup and the rule that turned a route into AS numbers."""

    name: str  # "dst" | "src"
    address: str
    prefixes: list[CoveringPrefix] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)  # rule codes, see _rules
    reasons: list[str] = field(default_factory=list)  # the same in words
    origin_as: int = 0
    peer_as: int = 0
    provenance: int = NONE
    stale: bool = False
    from_set: bool = False
    as_set_reason: str = ""  # the AS_SET rule in words (the cause of *_origin_as_set)
    next_hop_mismatch: bool = False  # dst: the flow's next hop is none of the paths'
    next_hop_reason: str = ""  # how the flow's next hop chose the path, in words
    path_id: int | None = None  # the path used, when the next hop chose it (else the best)


def explain_side(
    resolver: Resolver,
    routing: Routing,
    neighbor: str,
    family: str,
    name: str,
    key: bytes,
    next_hop: bytes | None = None,
) -> Side:
    """Caller holds the RIB lock. ``next_hop``: the flow's (dst), which picks
    the ADD-PATH path as ``Resolver.path_by_next_hop`` does."""
    rib = resolver.rib
    side = Side(name, unpack_address(key if len(key) == 16 else V4_MAPPED + key))
    r = rib.routers[neighbor]
    fs = r.families[family]
    for prefix, _length, entry in rib.tables[family].store.covering(key):
        value, stale = slot_value(entry, fs.slot, fs.stale_slot, r.current_stale)  # type: ignore[arg-type]
        if value is None:
            continue  # other routers' prefix
        paths = sorted(all_matches(prefix, value, stale), key=_key)
        side.prefixes.append(CoveringPrefix(prefix, stale, False, paths))
        if len(paths) > 1:
            side.prefixes[-1].decided_by, side.prefixes[-1].decision = _decision(paths)
    if next_hop is None:
        m = rib.lookup(neighbor, family, key)
        answer = resolver._answer(neighbor, family, key, routing, BatchRoutes())
    else:
        m, side.next_hop_mismatch = resolver.path_by_next_hop(neighbor, family, key, next_hop)
        answer, _ = resolver._answer_by_next_hop(
            neighbor, family, key, next_hop, routing, BatchRoutes()
        )
        hop = unpack_address(next_hop)
        side.path_id = m.path_id if m is not None else None
        if m is not None and side.next_hop_mismatch:
            side.next_hop_reason = (
                f"the flow's next hop {hop} is none of {m.prefix}'s paths' next hops: "
                f"the best path (path id {m.path_id}) is used"
            )
        elif m is not None:
            side.next_hop_reason = (
                f"the flow's next hop {hop} picks the path with that next hop (path id "
                f"{m.path_id}) when the prefix has several (ADD-PATH)"
            )
        if side.next_hop_reason:
            side.reasons.append(side.next_hop_reason)
    origin, peer, prov, _, _, stale, from_set = answer
    side.origin_as, side.peer_as, side.provenance = origin, peer, prov
    side.stale, side.from_set = stale, from_set
    if m is not None:
        for c in side.prefixes:
            c.used = c.prefix == m.prefix
            if c.used and len(c.paths) >= rib.max_paths and fs.paths_over_limit:
                side.reasons.append(
                    f"{c.prefix} holds {len(c.paths)} paths, the [bgp] max_paths_per_prefix "
                    "bound; paths of this router not kept at prefixes at the bound so far: "
                    f"{fs.paths_over_limit} (some may have been this prefix's, and a path not "
                    "kept is not there to take over when a kept one is withdrawn)"
                )
    if fs.prefixes_refused:
        side.reasons.append(
            f"{r.name or neighbor} refused {fs.prefixes_refused} new {family} prefixes at its "
            f"limit of {fs.max_prefixes} ({LIMIT_KEYS[family]}): a route it sent "
            "for this address may be among them, not installed"
        )
    _rules(side, m, routing, r)
    if name == "src" and m is not None:
        side.reasons.append(
            "the source is looked up like a destination: this is the way back to it, which "
            "its traffic need not have taken (asymmetric routing; overrides correct it per port)"
        )
    return side


def _key(m: RouteMatch) -> tuple:
    return preference_key((m.path_id, m.attributes))


def _decision(paths: list[RouteMatch]) -> tuple[str, str]:
    """The preference_key field that put the best path before the next."""
    best, nxt = paths[0], paths[1]
    a, b = _key(best), _key(nxt)
    i = next((i for i in range(len(a)) if a[i] != b[i]), None)
    if i is None:
        return "path_id", "equal paths"
    x, y = a[i], b[i]
    criterion = CRITERIA[i]
    if criterion == "local_pref":
        words = f"local-pref {-x} > {-y} (higher wins; none counts as 100)"
    elif criterion == "as_path_length":
        words = f"AS path length {x} < {y} (an AS_SET counts 1, confederation segments 0)"
    elif criterion == "origin":
        words = f"origin {best.attributes.origin} < {nxt.attributes.origin} (igp, egp, incomplete)"
    elif criterion == "med":
        words = f"MED {x} < {y} (lower wins; none counts as 0)"
    else:
        words = (
            f"path id {x} < {y}: the attributes tie (IGP cost and router id are invisible "
            "to us; the lowest path id keeps the pick stable)"
        )
    return criterion, words


def _fmt_set(asns: tuple[int, ...]) -> str:
    return "{" + ",".join(str(a) for a in asns) + "}"


def _rules(side: Side, m: RouteMatch | None, routing: Routing, r) -> None:
    """Name the rule(s) that turned ``m`` into ``side``'s AS numbers.

    The numbers are ``Resolver._answer``'s; this only says which case of the
    README's semantics table they come from.
    """
    rules, why = side.rules, side.reasons
    covering = len(side.prefixes)
    if m is None:
        rules.append("no_route")
        why.append(f"no prefix in {r.name}'s RIB covers {side.address}, not even a default route")
        return
    a = m.attributes
    others = covering - 1
    if m.length == 0:
        rules.append("default_route_only")
        why.append(
            f"only the default route {m.prefix} covers {side.address}: peer AS = its first AS "
            f"{side.peer_as} (where the traffic leaves), origin AS 0 (nobody is known to "
            "originate it)"
        )
        return
    rules.append("longest_match")
    text = f"longest match {m.prefix}"
    if others:
        text += f", more specific than the {others} other covering prefix" + "es" * (others > 1)
    if len(next(c for c in side.prefixes if c.used).paths) > 1:
        text += f"; its best path (path id {m.path_id}) is used"
    why.append(text)
    confed = [s for s in a.as_path if s[0] in (AS_CONFED_SEQUENCE, AS_CONFED_SET)]
    if confed:
        rules.append("confederation_skipped")
        why.append(
            "confederation segments skipped (our own confederation, not who we exchange "
            "traffic with): "
            + " ".join(
                _fmt_set(s[1]) if s[0] == AS_CONFED_SET else "(" + " ".join(map(str, s[1])) + ")"
                for s in confed
            )
        )
    if a.empty_path:
        rules.append("empty_path_local_as")
        why.append(
            f"empty AS path{' once confederation segments are skipped' if confed else ''}: "
            f"the prefix is ours, origin AS = local_as {routing.local_as}, peer AS 0"
        )
        return
    segs = [s for s in a.as_path if s[0] in (AS_SEQUENCE, AS_SET) and s[1]]
    first_kind, first_asns = segs[0]
    if first_kind == AS_SET:
        rules.append("as_set_first")
        pick = (
            'as_set_policy = "highest" gives pmacct\'s 0'
            if routing.highest_as_set
            else "its smallest member"
        )
        why.append(
            f"the path starts with the AS_SET {_fmt_set(first_asns)}: no single neighbor AS, "
            f"{pick}: peer AS = {side.peer_as}"
        )
    else:
        why.append(f"peer AS = the first AS of the path, {side.peer_as}")
    last_kind, last_asns = segs[-1]
    policy = "highest" if routing.highest_as_set else "aggregator"
    if last_kind == AS_SEQUENCE:
        why.append(f"origin AS = the last AS of the path, {side.origin_as}")
    elif len(set(last_asns)) == 1:
        rules.append("as_set_one_member")
        why.append(
            f"the path ends in the one-member AS_SET {_fmt_set(last_asns)}: origin AS "
            f"{side.origin_as}"
        )
    elif routing.highest_as_set:
        rules.append("as_set_highest")
        why.append(
            f'the path ends in the AS_SET {_fmt_set(last_asns)}: as_set_policy = "{policy}" '
            f"(pmacct) takes its highest member, origin AS {side.origin_as}"
        )
    else:
        rules.append("as_set_aggregator")
        why.append(
            f'the path ends in the AS_SET {_fmt_set(last_asns)}: as_set_policy = "{policy}" '
            f"takes the AS just before the set (the aggregator the traffic reaches), "
            f"origin AS {side.origin_as}"
        )
    if side.from_set:
        side.as_set_reason = why[-1]
    flat = [x for k, asns in segs if k == AS_SEQUENCE for x in asns]
    if len(flat) != len(dict.fromkeys(flat)):
        rules.append("prepending_ignored")
        why.append("prepending ignored: only the first and last AS are read")
