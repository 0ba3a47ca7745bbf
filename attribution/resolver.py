"""Flow records -> src/dst origin and peer AS, with provenance. No I/O.

The rules (the README's semantics table is the user-facing copy):

* Which RIB: the exporter's router (explicit exporter map, else the router
  whose neighbor address or router id equals the exporter), then its fallback
  chain, then the global fallback chain; the first router that has routes of
  the flow's family answers. FALLBACK is flagged when it is not the first.
* dst: longest-prefix match. origin = last AS, peer = first AS of the path.
  Empty path -> origin = our AS, peer = 0 (``local``). Only a default route ->
  peer = the default route's first AS, origin = 0 (``default``): we know where
  the traffic leaves, not who receives it. No route -> 0, 0 (``none``).
* A trailing multi-member AS_SET: origin = the AS just before it (the
  aggregator), flagged; ``as_set_policy = "highest"`` gives pmacct's answer.
* src: the same lookup (an assumption: routing is asymmetric, sources can be
  spoofed); SRC_UNROUTED when nothing but a default route covers the source.
* Overrides set src_peer_as only; SRC_ASYMMETRIC when the RIB's answer differs.

Hot path notes: a batch is resolved in columns; lookups are memoised per
batch (Zipf-shaped traffic repeats addresses) and the memo never outlives the
batch, so an answer is never older than the RIB it was read from. The RIB
lock is held per chunk of flows, never for a whole large batch.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from attribution.config import Config, parse_mac
from attribution.overrides import OverrideTable, first_match
from ribd.attributes import PathAttributes
from ribd.events import IPV4_UNICAST, IPV6_UNICAST
from ribd.rib import Rib, RouteMatch

# Provenance values, as in the proto enum.
BGP, OVERRIDE, LOCAL, DEFAULT, NONE = 1, 2, 3, 4, 5
PROVENANCE_NAMES = {
    0: "none",
    BGP: "bgp",
    OVERRIDE: "override",
    LOCAL: "local",
    DEFAULT: "default",
    NONE: "none",
}

# Flag bits, as in the proto enum.
SRC_UNROUTED = 1
SRC_ASYMMETRIC = 2
SRC_ORIGIN_AS_SET = 4
DST_ORIGIN_AS_SET = 8
SRC_STALE = 16
DST_STALE = 32
FALLBACK = 64
FLAG_NAMES = {
    SRC_UNROUTED: "src_unrouted",
    SRC_ASYMMETRIC: "src_asymmetric",
    SRC_ORIGIN_AS_SET: "src_origin_as_set",
    DST_ORIGIN_AS_SET: "dst_origin_as_set",
    SRC_STALE: "src_stale",
    DST_STALE: "dst_stale",
    FALLBACK: "fallback",
}

V4_MAPPED = b"\x00" * 10 + b"\xff\xff"
CHUNK = 2048  # flows resolved per hold of the RIB lock
NO_MAC = b"\x00" * 6


class BatchTooLarge(ValueError):
    pass


@dataclass(slots=True)
class Resolution:
    """A resolved batch, in columns (the shape of the proto's AttributionColumns)."""

    routers: list[str] = field(default_factory=list)
    router: list[int] = field(default_factory=list)
    src_origin_as: list[int] = field(default_factory=list)
    src_peer_as: list[int] = field(default_factory=list)
    dst_origin_as: list[int] = field(default_factory=list)
    dst_peer_as: list[int] = field(default_factory=list)
    provenance: bytearray = field(default_factory=bytearray)
    flags: list[int] = field(default_factory=list)
    routes: list[tuple[str, RouteMatch]] = field(default_factory=list)
    src_route: list[int] = field(default_factory=list)
    dst_route: list[int] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    override: list[int] = field(default_factory=list)
    errors: list[tuple[int, str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.flags)


@dataclass(frozen=True, slots=True)
class Routing:
    """Config-derived lookup plan, replaced whole on reload."""

    chains: dict[str, tuple[str, ...]]  # exporter -> neighbors to try, in order
    default_chain: tuple[str, ...]
    names: dict[str, str]  # neighbor -> router name
    by_name: dict[str, str]  # router name -> neighbor
    overrides: OverrideTable
    local_as: int
    highest_as_set: bool

    @classmethod
    def from_config(cls, config: Config) -> Routing:
        by_name = {r.name: r.neighbor for r in config.routers}
        chains: dict[str, tuple[str, ...]] = {}
        for r in config.routers:
            chain = (r.neighbor, *(by_name[f] for f in r.fallback))
            for key in (r.neighbor, r.router_id, *r.exporters):
                if key and (key not in chains or key in r.exporters):
                    chains[key] = chain
        return cls(
            chains=chains,
            default_chain=tuple(by_name[f] for f in config.default_fallback),
            names={r.neighbor: r.name for r in config.routers},
            by_name=by_name,
            overrides=OverrideTable(config.overrides),
            local_as=config.local_as,
            highest_as_set=config.as_set_policy == "highest",
        )


def pack_address(text: str) -> bytes:
    """Text address -> 16 bytes (IPv4 as ::ffff:a.b.c.d). Raises ValueError."""
    if ":" in text:
        try:
            return socket.inet_pton(socket.AF_INET6, text)
        except (OSError, ValueError):
            raise ValueError(f"{text[:64]!r} is not an IP address") from None
    try:
        return V4_MAPPED + socket.inet_pton(socket.AF_INET, text)
    except (OSError, ValueError):
        raise ValueError(f"{text[:64]!r} is not an IP address") from None


def unpack_address(packed: bytes) -> str:
    if packed[:12] == V4_MAPPED:
        return socket.inet_ntop(socket.AF_INET, packed[12:])
    return socket.inet_ntop(socket.AF_INET6, packed)


def canonical_exporter(text: str) -> str:
    return unpack_address(pack_address(text))


class Resolver:
    def __init__(self, rib: Rib, config: Config, max_batch_flows: int | None = None) -> None:
        self.rib = rib
        self.routing = Routing.from_config(config)
        self.max_batch_flows = max_batch_flows or config.max_batch_flows
        self.flows_resolved = 0
        self.flows_bad = 0

    def reconfigure(self, config: Config) -> None:
        """Swap in a new plan; batches already running keep the one they started with."""
        self.routing = Routing.from_config(config)
        self.max_batch_flows = config.max_batch_flows

    # -- choosing the RIB ------------------------------------------------------

    def chain_for(
        self, exporter: str, routing: Routing | None = None
    ) -> tuple[tuple[str, ...], bool]:
        """Routers to try for ``exporter``, and whether the first is its own."""
        routing = routing or self.routing
        own = routing.chains.get(exporter)
        if own is None and exporter in self.rib.routers:
            own = (exporter,)  # a neighbor seen on the feed but not configured
        own = own or ()
        return (*own, *(n for n in routing.default_chain if n not in own)), bool(own)

    def pick_router(
        self, chain: Sequence[str], first_is_own: bool, family: str
    ) -> tuple[str | None, bool]:
        """First router of ``chain`` with routes of ``family``; (neighbor, is_fallback)."""
        routers = self.rib.routers
        for i, neighbor in enumerate(chain):
            r = routers.get(neighbor)
            if r is not None:
                fs = r.families[family]
                if fs.prefixes or fs.stale_slot is not None:
                    return neighbor, i > 0 or not first_is_own
        return None, False

    # -- resolving -----------------------------------------------------------

    def resolve_columns(
        self,
        exporters: Sequence[str],
        exporter: Sequence[int],
        src: bytes,
        dst: bytes,
        in_if: Sequence[int] | None = None,
        src_mac: bytes | None = None,
        bad: dict[int, tuple[str, str]] | None = None,
    ) -> Resolution:
        """Resolve ``len(exporter)`` flows given as columns (see FlowColumns).

        ``bad`` marks flows already found broken (index -> (code, message));
        they get their error and zero answers, everything else is resolved.
        """
        n = len(exporter)
        if n > self.max_batch_flows:
            raise BatchTooLarge(f"batch of {n} flows exceeds the limit of {self.max_batch_flows}")
        if len(src) != 16 * n or len(dst) != 16 * n:
            raise ValueError(f"src_addr and dst_addr must hold 16 bytes per flow ({16 * n})")
        if in_if is not None and len(in_if) not in (0, n):
            raise ValueError(f"in_if has {len(in_if)} entries for {n} flows")
        if src_mac and len(src_mac) != 6 * n:
            raise ValueError(f"src_mac must hold 6 bytes per flow ({6 * n}) or be empty")
        routing = self.routing
        res = Resolution()
        res.router = [-1] * n
        res.src_origin_as = [0] * n
        res.src_peer_as = [0] * n
        res.dst_origin_as = [0] * n
        res.dst_peer_as = [0] * n
        res.provenance = bytearray(b"\x05" * (4 * n))
        res.flags = [0] * n
        res.src_route = [-1] * n
        res.dst_route = [-1] * n
        res.override = [-1] * n
        bad = dict(bad or {})

        # Per exporter, once per batch: canonical address and router chain.
        canon: list[str | None] = []
        for j, text in enumerate(exporters):
            try:
                canon.append(canonical_exporter(text))
            except ValueError as exc:
                canon.append(None)
                for i in range(n):
                    if exporter[i] == j:
                        bad.setdefault(i, ("bad_exporter", f"exporter: {exc}"))
        for i in range(n):
            if exporter[i] >= len(exporters):
                bad.setdefault(i, ("bad_record", f"exporter index {exporter[i]} out of range"))

        router_index: dict[str, int] = {}
        route_index: dict[tuple, int] = {}
        routes: list[tuple[str, RouteMatch]] = []
        override_index: dict[str, int] = {}
        plans: dict[tuple[int, str], tuple] = {}
        memo: dict[tuple, tuple] = {}
        rib = self.rib
        with_in_if = bool(in_if)
        overrides = routing.overrides

        for start in range(0, n, CHUNK):
            with rib.lock:
                for i in range(start, min(start + CHUNK, n)):
                    if i in bad:
                        continue
                    s16 = src[16 * i : 16 * i + 16]
                    d16 = dst[16 * i : 16 * i + 16]
                    v4 = d16[:12] == V4_MAPPED
                    if v4 != (s16[:12] == V4_MAPPED):
                        bad[i] = ("family_mismatch", "src_addr and dst_addr are not of one family")
                        continue
                    family = IPV4_UNICAST if v4 else IPV6_UNICAST
                    skey = s16[12:] if v4 else s16
                    dkey = d16[12:] if v4 else d16
                    e = exporter[i]
                    plan = plans.get((e, family))
                    if plan is None:
                        exp = canon[e]
                        chain, own = self.chain_for(exp, routing)  # type: ignore[arg-type]
                        neighbor, is_fallback = self.pick_router(chain, own, family)
                        if neighbor is None:
                            plan = (None, -1, False)
                        else:
                            name = routing.names.get(neighbor, neighbor)
                            ri = router_index.setdefault(name, len(router_index))
                            plan = (neighbor, ri, is_fallback)
                        plans[(e, family)] = plan
                    neighbor, ri, is_fallback = plan
                    flags = FALLBACK if is_fallback else 0
                    res.router[i] = ri
                    # dst
                    if neighbor is not None:
                        dm = memo.get((neighbor, dkey))
                        if dm is None:
                            dm = memo[(neighbor, dkey)] = self._answer(
                                neighbor, family, dkey, routing, route_index, routes
                            )
                        sm = memo.get((neighbor, skey))
                        if sm is None:
                            sm = memo[(neighbor, skey)] = self._answer(
                                neighbor, family, skey, routing, route_index, routes
                            )
                    else:
                        dm = sm = _NO_ANSWER
                    d_origin, d_peer, d_oprov, d_pprov, d_route, d_stale, d_set = dm
                    s_origin, s_peer, s_oprov, s_pprov, s_route, s_stale, s_set = sm
                    res.dst_origin_as[i] = d_origin
                    res.dst_peer_as[i] = d_peer
                    res.dst_route[i] = d_route
                    res.src_origin_as[i] = s_origin
                    res.src_route[i] = s_route
                    if d_stale:
                        flags |= DST_STALE
                    if s_stale:
                        flags |= SRC_STALE
                    if d_set:
                        flags |= DST_ORIGIN_AS_SET
                    if s_set:
                        flags |= SRC_ORIGIN_AS_SET
                    if neighbor is not None and s_oprov in (NONE, DEFAULT):
                        flags |= SRC_UNROUTED
                    # override (by the exporter the flow names, not the router)
                    rule = None
                    if with_in_if and overrides.rules:
                        cands = overrides.for_port(canon[e], in_if[i])  # type: ignore[arg-type, index]
                        if cands is not None:
                            mac = src_mac[6 * i : 6 * i + 6] if src_mac else None
                            rule = first_match(cands, None if mac == NO_MAC else mac)
                    if rule is not None:
                        if s_pprov == BGP and s_peer != rule.peer_as:
                            flags |= SRC_ASYMMETRIC
                        s_peer, s_pprov = rule.peer_as, OVERRIDE
                        res.override[i] = override_index.setdefault(rule.name, len(override_index))
                    res.src_peer_as[i] = s_peer
                    res.provenance[4 * i : 4 * i + 4] = bytes((s_oprov, s_pprov, d_oprov, d_pprov))
                    res.flags[i] = flags

        res.routers = list(router_index)
        res.overrides = list(override_index)
        res.routes = routes
        for i, (code, message) in sorted(bad.items()):
            res.errors.append((i, code, message))
            res.router[i] = -1
        self.flows_resolved += n - len(bad)
        self.flows_bad += len(bad)
        return res

    def _answer(
        self,
        neighbor: str,
        family: str,
        key: bytes,
        routing: Routing,
        route_index: dict[tuple, int],
        routes: list[tuple[str, RouteMatch]],
    ) -> tuple[int, int, int, int, int, bool, bool]:
        """(origin, peer, origin prov, peer prov, route index, stale, origin from AS_SET)."""
        m = self.rib.lookup(neighbor, family, key)
        if m is None:
            return _NO_ANSWER
        a: PathAttributes = m.attributes
        name = routing.names.get(neighbor, neighbor)
        rkey = (name, m.prefix, m.path_id, m.stale)
        idx = route_index.get(rkey)
        if idx is None:
            idx = route_index[rkey] = len(routes)
            routes.append((name, m))
        if m.length == 0:
            return (0, a.peer_as, DEFAULT, DEFAULT, idx, m.stale, False)
        if a.empty_path:
            return (routing.local_as, 0, LOCAL, LOCAL, idx, m.stale, False)
        origin = a.origin_as_highest if routing.highest_as_set else a.origin_as
        return (origin, a.peer_as, BGP, BGP, idx, m.stale, a.origin_from_set)

    # -- rows ------------------------------------------------------------------

    def resolve_dicts(self, flows: Sequence[dict]) -> Resolution:
        """Rows (flow JSON objects or proto Flow messages as dicts) -> columns."""
        exporters, exporter, src, dst, in_if, mac, bad = rows_to_columns(flows)
        return self.resolve_columns(exporters, exporter, src, dst, in_if, mac, bad)


_NO_ANSWER = (0, 0, NONE, NONE, -1, False, False)


def rows_to_columns(
    flows: Sequence[dict],
) -> tuple[list[str], list[int], bytes, bytes, list[int], bytes, dict[int, tuple[str, str]]]:
    """Validate flow rows; bad rows get an error and placeholder columns."""
    exporters: list[str] = []
    exporter_ids: dict[str, int] = {}
    exporter: list[int] = []
    src = bytearray()
    dst = bytearray()
    in_if: list[int] = []
    macs = bytearray()
    any_mac = False
    bad: dict[int, tuple[str, str]] = {}
    zero16 = b"\x00" * 16
    for i, f in enumerate(flows):
        try:
            if not isinstance(f, dict):
                raise _Bad("bad_record", "a flow record must be a JSON object")
            exp = _required_text(f, "exporter")
            s = _required_text(f, "src_addr")
            d = _required_text(f, "dst_addr")
            try:
                exp_c = canonical_exporter(exp)
            except ValueError as exc:
                raise _Bad("bad_address", f"exporter: {exc}") from None
            try:
                s16 = pack_address(s)
            except ValueError as exc:
                raise _Bad("bad_address", f"src_addr: {exc}") from None
            try:
                d16 = pack_address(d)
            except ValueError as exc:
                raise _Bad("bad_address", f"dst_addr: {exc}") from None
            iif = _optional_uint(f, "in_if")
            _optional_uint(f, "out_if")
            mac_text = f.get("src_mac")
            if mac_text in (None, ""):
                mac = NO_MAC
            elif isinstance(mac_text, str):
                try:
                    mac = parse_mac(mac_text)
                except ValueError as exc:
                    raise _Bad("bad_record", f"src_mac: {exc}") from None
                any_mac = True
            else:
                raise _Bad("bad_record", "src_mac: must be a string like aa:bb:cc:dd:ee:ff")
        except _Bad as exc:
            bad[i] = (exc.code, exc.message)
            exporter.append(0)
            src += zero16
            dst += zero16
            in_if.append(0)
            macs += NO_MAC
            continue
        j = exporter_ids.get(exp_c)
        if j is None:
            j = exporter_ids[exp_c] = len(exporters)
            exporters.append(exp_c)
        exporter.append(j)
        src += s16
        dst += d16
        in_if.append(iif)
        macs += mac
    if not exporters:
        exporters.append("0.0.0.0")
    return exporters, exporter, bytes(src), bytes(dst), in_if, bytes(macs) if any_mac else b"", bad


class _Bad(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code, self.message = code, message


def _required_text(f: dict, key: str) -> str:
    value = f.get(key)
    if value is None or value == "":
        raise _Bad("bad_record", f"{key}: missing")
    if not isinstance(value, str):
        raise _Bad("bad_record", f"{key}: must be a string, not {type(value).__name__}")
    return value


def _optional_uint(f: dict, key: str) -> int:
    value = f.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
        raise _Bad("bad_record", f"{key}: must be an integer 0..4294967295, not {value!r:.40}")
    return value
