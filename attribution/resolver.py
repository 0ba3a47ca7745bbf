"""Flow records -> src/dst origin and peer AS, with provenance. No I/O.

The rules (the README's semantics table is the user-facing copy):

* Which RIB: the exporter's router (explicit exporter map, else the router
  whose neighbor address or router id equals the exporter), then its fallback
  chain, then the global fallback chain; the first router that has routes of
  the flow's family answers. FALLBACK is flagged when it is not the first.
  An exporter that maps to no router and that no global fallback answers
  gets the ``unknown_exporter`` error, not zeros: zeros would look like a
  router with no routes yet, and hide a missing ``exporters`` entry.
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

import functools
import socket
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from attribution.config import Config, OverrideRule, parse_mac
from attribution.fastpath import CompiledView, CompiledViews
from attribution.flowring import BatchKeys, FlowRing
from attribution.overrides import OverrideTable, first_match
from ribd.attributes import PathAttributes
from ribd.checks import show
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
# The flow's BGP next hop (NetFlow/IPFIX BGP_IPV4/IPV6_NEXT_HOP) is none of
# the dst prefix's ADD-PATH paths' next hops: the best path answered.
DST_NEXT_HOP_MISMATCH = 128
FLAG_NAMES = {
    SRC_UNROUTED: "src_unrouted",
    SRC_ASYMMETRIC: "src_asymmetric",
    SRC_ORIGIN_AS_SET: "src_origin_as_set",
    DST_ORIGIN_AS_SET: "dst_origin_as_set",
    SRC_STALE: "src_stale",
    DST_STALE: "dst_stale",
    FALLBACK: "fallback",
    DST_NEXT_HOP_MISMATCH: "dst_next_hop_mismatch",
}

V4_MAPPED = b"\x00" * 10 + b"\xff\xff"

# One answer per flow, as AttributionColumns.records carries it (the layout is
# documented in the proto). A batch's answer columns are views into one array
# of these, so packed answers need no copy but the final ``tobytes``.
RECORD_DTYPE = np.dtype(
    [
        ("router", "<i4"),
        ("src_origin_as", "<u4"),
        ("src_peer_as", "<u4"),
        ("dst_origin_as", "<u4"),
        ("dst_peer_as", "<u4"),
        ("provenance", "u1", (4,)),
        ("flags", "<u4"),
        ("src_route", "<i4"),
        ("dst_route", "<i4"),
        ("override", "<i4"),
    ]
)
CHUNK = 2048  # flows resolved per hold of the RIB lock
NO_MAC = b"\x00" * 6
NO_NEXT_HOP = b"\x00" * 16
V4_ZERO = V4_MAPPED + b"\x00" * 4  # 0.0.0.0: exporters send it for "no BGP next hop"


class BatchTooLarge(ValueError):
    pass


@dataclass(slots=True)
class Resolution:
    """A resolved batch, in columns (the shape of the proto's AttributionColumns).

    Per-flow columns are numpy arrays when the resolver built them.
    """

    routers: list[str] = field(default_factory=list)
    router: Sequence[int] = field(default_factory=list)
    src_origin_as: Sequence[int] = field(default_factory=list)
    src_peer_as: Sequence[int] = field(default_factory=list)
    dst_origin_as: Sequence[int] = field(default_factory=list)
    dst_peer_as: Sequence[int] = field(default_factory=list)
    provenance: bytes = b""  # 4 per flow: src origin, src peer, dst origin, dst peer
    flags: Sequence[int] = field(default_factory=list)
    routes: list[tuple[str, RouteMatch]] = field(default_factory=list)
    src_route: Sequence[int] = field(default_factory=list)
    dst_route: Sequence[int] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    override: Sequence[int] = field(default_factory=list)
    errors: list[tuple[int, str, str]] = field(default_factory=list)
    records: np.ndarray | None = None  # RECORD_DTYPE; the columns above are views into it

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


class RouteDictionary:
    """Numbers the routes an answer refers to (its route dictionary)."""

    def from_view(self, name: str, view: CompiledView, leaves: np.ndarray) -> np.ndarray:
        """Dictionary index of each route ``leaves`` (route indices of ``view``, >= 0)."""
        raise NotImplementedError

    def from_match(self, name: str, m: RouteMatch) -> int:
        raise NotImplementedError


class BatchRoutes(RouteDictionary):
    """One batch's dictionary as (router name, RouteMatch) pairs, each route once."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, RouteMatch]] = []
        self._index: dict[tuple, int] = {}

    def from_match(self, name: str, m: RouteMatch) -> int:
        key = (name, m.prefix, m.path_id, m.stale)
        idx = self._index.get(key)
        if idx is None:
            idx = self._index[key] = len(self.routes)
            self.routes.append((name, m))
        return idx

    def from_view(self, name: str, view: CompiledView, leaves: np.ndarray) -> np.ndarray:
        unique, inverse = np.unique(leaves, return_inverse=True)
        ids = [self.from_match(name, view.route(leaf)) for leaf in unique.tolist()]
        return np.array(ids, dtype=np.int32)[inverse]


class Resolver:
    def __init__(
        self,
        rib: Rib,
        config: Config,
        max_batch_flows: int | None = None,
        *,
        build_views_inline: bool = True,
    ) -> None:
        """``build_views_inline``: compile lookup tables inside resolve calls when
        needed (tools, tests). The daemon passes False and calls
        ``views.refresh()`` from its maintenance thread instead, so that no
        batch ever waits for a build."""
        self.rib = rib
        self.views = CompiledViews(rib)
        self.build_views_inline = build_views_inline
        self.routing = Routing.from_config(config)
        self.max_batch_flows = max_batch_flows or config.max_batch_flows
        # Counters for metrics: flows answered, flows with an error, and
        # errors by code (``unknown_exporter``, ``bad_address``, ...). Updated
        # once per batch under ``_count_lock``; read them with ``counters()``.
        self.flows_resolved = 0
        self.flows_bad = 0
        self.flow_errors: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        # The last flows answered, as keys: the sample of `overrides diff`.
        self.recent = FlowRing(config.recent_flows)

    def counters(self) -> dict:
        """A consistent copy of the counters: flows_resolved, flows_bad, and
        flow_errors (error code -> flows)."""
        with self._count_lock:
            return {
                "flows_resolved": self.flows_resolved,
                "flows_bad": self.flows_bad,
                "flow_errors": dict(self.flow_errors),
            }

    def _count(self, resolved: int, codes: Iterable[str]) -> None:
        errors = Counter(codes)
        with self._count_lock:
            self.flows_resolved += resolved
            self.flows_bad += errors.total()
            self.flow_errors.update(errors)

    def reconfigure(self, config: Config) -> None:
        """Swap in a new plan; batches already running keep the one they started with."""
        self.routing = Routing.from_config(config)
        self.max_batch_flows = config.max_batch_flows
        if config.recent_flows != self.recent.capacity:
            self.recent = FlowRing(config.recent_flows)

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

    @staticmethod
    def unknown_exporter(exporter: str, family: str, routing: Routing) -> tuple[str, str]:
        """The error of a flow whose exporter maps to no router and that no
        global fallback router answered: (code, message)."""
        message = (
            f"exporter {exporter} maps to no router: no [[routers]] entry has it"
            " in exporters, as neighbor or as router_id"
        )
        if routing.default_chain:
            names = ", ".join(routing.names.get(n, n) for n in routing.default_chain)
            message += f", and no [service] fallback router ({names}) has {family} routes"
        return "unknown_exporter", message

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
        with_routes: bool = True,
        routes: RouteDictionary | None = None,
        *,
        routing: Routing | None = None,
        volumes: tuple[np.ndarray, np.ndarray] | None = None,
        next_hop: bytes | None = None,
    ) -> Resolution:
        """Resolve ``len(exporter)`` flows given as columns (see FlowColumns).

        ``bad`` marks flows already found broken (index -> (code, message));
        they get their error and zero answers, everything else is resolved.
        ``with_routes=False`` skips the route dictionary (AS numbers only);
        ``routes`` numbers the routes instead of a fresh ``BatchRoutes``
        (whose pairs then fill ``Resolution.routes``).
        ``routing``: a what-if plan instead of the running one (the override
        dry-run): such a batch is neither counted nor kept in ``recent``.
        ``volumes``: (bytes, packets) per flow, kept in ``recent`` only.
        ``next_hop``: 16 bytes per flow (zero or 0.0.0.0: none), the BGP next
        hop the router used; it picks the dst path among ADD-PATH paths.
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
        if next_hop and len(next_hop) != 16 * n:
            raise ValueError(f"next_hop must hold 16 bytes per flow ({16 * n}) or be empty")
        what_if = routing is not None
        routing = routing or self.routing
        batch = _Batch(n, routing, (routes or BatchRoutes()) if with_routes else None)
        batch.next_hops = _next_hop_column(next_hop, n)
        bad = dict(bad or {})

        ex = np.asarray(exporter, dtype=np.int64) if n else np.zeros(0, dtype=np.int64)
        canon: list[str | None] = []
        for j, text in enumerate(exporters):
            try:
                canon.append(canonical_exporter(text))
            except ValueError as exc:
                canon.append(None)
                for i in np.nonzero(ex == j)[0].tolist():
                    bad.setdefault(i, ("bad_exporter", f"exporter: {exc}"))
        for i in np.nonzero(ex >= len(exporters))[0].tolist():
            bad.setdefault(i, ("bad_record", f"exporter index {int(ex[i])} out of range"))

        s_words = np.frombuffer(src, dtype=">u8").reshape(n, 2)
        d_words = np.frombuffer(dst, dtype=">u8").reshape(n, 2)
        s_v4 = (s_words[:, 0] == 0) & ((s_words[:, 1] >> np.uint64(32)) == 0xFFFF)
        d_v4 = (d_words[:, 0] == 0) & ((d_words[:, 1] >> np.uint64(32)) == 0xFFFF)
        for i in np.nonzero(s_v4 != d_v4)[0].tolist():
            bad.setdefault(i, ("family_mismatch", "src_addr and dst_addr are not of one family"))
        good = np.ones(n, dtype=bool)
        if bad:
            good[list(bad)] = False
        in_if_arr = np.asarray(in_if, dtype=np.int64) if in_if else None
        mac_arr = np.frombuffer(src_mac, dtype="S6") if src_mac else None
        if not what_if and self.recent.capacity:
            packed = [pack_address(c) if c else b"\x00" * 16 for c in canon]
            self.recent.add(
                BatchKeys(
                    np.array(packed or [b""], dtype="V16"),
                    ex,
                    src,
                    dst,
                    in_if_arr,
                    src_mac,
                    good,
                    *(volumes or (None, None)),
                )
            )

        rib = self.rib
        if self.build_views_inline:
            self._warm_views(canon, ex[good], d_v4[good], routing)
        for j in np.unique(ex[good]).tolist():
            for v4 in (True, False):
                idx = np.nonzero(good & (ex == j) & (d_v4 == v4))[0]
                if not len(idx):
                    continue
                family = IPV4_UNICAST if v4 else IPV6_UNICAST
                chain, own = self.chain_for(canon[j], routing)  # type: ignore[arg-type]
                with rib.lock:
                    neighbor, is_fallback = self.pick_router(chain, own, family)
                if neighbor is None and not own:
                    error = self.unknown_exporter(canon[j], family, routing)  # type: ignore[arg-type]
                    for i in idx.tolist():  # error flows only: known exporters pay nothing
                        bad[i] = error
                    continue
                if neighbor is not None:
                    batch.answer_group(self, neighbor, family, v4, idx, s_words, d_words)
                if neighbor is not None:
                    batch.router[idx] = batch.router_index(routing.names.get(neighbor, neighbor))
                    if is_fallback:
                        batch.flags[idx] |= FALLBACK
                if in_if_arr is not None and routing.overrides.rules:
                    batch.apply_overrides(canon[j], idx, in_if_arr, mac_arr)  # type: ignore[arg-type]
            # (the exporter's override rules apply whatever the family)

        res = batch.finish()
        for i, (code, message) in sorted(bad.items()):
            res.errors.append((i, code, message))
        if not what_if:
            self._count(n - len(bad), (code for code, _ in bad.values()))
        return res

    def _warm_views(self, canon: list, ex: np.ndarray, v4: np.ndarray, routing: Routing) -> None:
        for j in np.unique(ex).tolist():
            chain, own = self.chain_for(canon[j], routing)
            for is_v4 in (True, False):
                if not (v4 == is_v4).any():
                    continue
                family = IPV4_UNICAST if is_v4 else IPV6_UNICAST
                with self.rib.lock:
                    neighbor, _ = self.pick_router(chain, own, family)
                    if neighbor is not None:
                        self.views.usable(neighbor, family)  # asks for a build if stale
        self.views.refresh()

    def _answer(
        self,
        neighbor: str,
        family: str,
        key: bytes,
        routing: Routing,
        routes: RouteDictionary | None,
    ) -> tuple[int, int, int, int, int, bool, bool]:
        """(origin, peer, origin prov, peer prov, route index, stale, origin from AS_SET)."""
        return self._answer_of(self.rib.lookup(neighbor, family, key), neighbor, routing, routes)

    def _answer_by_next_hop(
        self,
        neighbor: str,
        family: str,
        key: bytes,
        next_hop: bytes,
        routing: Routing,
        routes: RouteDictionary | None,
    ) -> tuple[tuple[int, int, int, int, int, bool, bool], bool]:
        """``_answer`` from the path whose next hop is the flow's, and whether
        none of the prefix's paths had it (then: the best path)."""
        m, mismatch = self.path_by_next_hop(neighbor, family, key, next_hop)
        return self._answer_of(m, neighbor, routing, routes), mismatch

    def path_by_next_hop(
        self, neighbor: str, family: str, key: bytes, next_hop: bytes
    ) -> tuple[RouteMatch | None, bool]:
        """The longest-prefix match's path whose BGP next hop is ``next_hop``
        (16 bytes); (best path, True) when it has several and none has it.
        A prefix with one path answers with it, unflagged: there is no choice
        to make, and a next hop rewritten on the way (next-hop-self, route
        reflectors) is no sign of a wrong answer. Caller holds the RIB lock."""
        m = self.rib.lookup(neighbor, family, key)
        if m is None or _same_hop(m, next_hop):
            return m, False
        paths = self.rib.exact(neighbor, family, m.prefix)
        if len(paths) < 2:
            return m, False
        for p in paths:
            if _same_hop(p, next_hop):
                return p, False
        return m, True

    def _answer_of(
        self,
        m: RouteMatch | None,
        neighbor: str,
        routing: Routing,
        routes: RouteDictionary | None,
    ) -> tuple[int, int, int, int, int, bool, bool]:
        if m is None:
            return _NO_ANSWER
        a: PathAttributes = m.attributes
        idx = -1
        if routes is not None:
            idx = routes.from_match(routing.names.get(neighbor, neighbor), m)
        peer = a.peer_as_highest if routing.highest_as_set else a.peer_as
        if m.length == 0:
            return (0, peer, DEFAULT, DEFAULT, idx, m.stale, False)
        if a.empty_path:
            return (routing.local_as, 0, LOCAL, LOCAL, idx, m.stale, False)
        origin = a.origin_as_highest if routing.highest_as_set else a.origin_as
        return (origin, peer, BGP, BGP, idx, m.stale, a.origin_from_set)

    # -- one flow --------------------------------------------------------------

    def resolve_one(self, flow: dict) -> FlowAnswer:
        """One flow record, without numpy: the low-latency path of the one-flow RPC.

        The same rules as ``resolve_columns`` (a test compares the two), with
        plain RIB lookups instead of a compiled view.
        """
        try:
            exporter, s16, d16, in_if, mac = validate_row(flow)
            nh = next_hop_of(flow)
        except _Bad as exc:
            self._count(0, (exc.code,))
            return FlowAnswer(error=(exc.code, exc.message))
        v4 = s16[:12] == V4_MAPPED
        if v4 != (d16[:12] == V4_MAPPED):
            self._count(0, ("family_mismatch",))
            return FlowAnswer(
                error=("family_mismatch", "src_addr and dst_addr are not of one family")
            )
        routing = self.routing
        family = IPV4_UNICAST if v4 else IPV6_UNICAST
        out = FlowAnswer()
        chain, own = self.chain_for(exporter, routing)
        with self.rib.lock:
            neighbor, is_fallback = self.pick_router(chain, own, family)
            if neighbor is not None:
                routes = BatchRoutes()
                dkey = d16[12:] if v4 else d16
                mismatch = False
                if nh is None:
                    d = self._answer(neighbor, family, dkey, routing, routes)
                else:
                    d, mismatch = self._answer_by_next_hop(
                        neighbor, family, dkey, nh, routing, routes
                    )
                s = self._answer(neighbor, family, s16[12:] if v4 else s16, routing, routes)
        if neighbor is None and not own:
            error = self.unknown_exporter(exporter, family, routing)
            self._count(0, (error[0],))
            return FlowAnswer(error=error)
        if neighbor is not None:
            out.router = routing.names.get(neighbor, neighbor)
            out.dst_origin_as, out.dst_peer_as = d[0], d[1]
            out.src_origin_as, out.src_peer_as = s[0], s[1]
            out.provenance = [s[2], s[2], d[2], d[2]]
            flags = FALLBACK if is_fallback else 0
            if d[5]:
                flags |= DST_STALE
            if s[5]:
                flags |= SRC_STALE
            if d[6]:
                flags |= DST_ORIGIN_AS_SET
            if s[6]:
                flags |= SRC_ORIGIN_AS_SET
            if s[2] in (NONE, DEFAULT):
                flags |= SRC_UNROUTED
            if mismatch:
                flags |= DST_NEXT_HOP_MISMATCH
            out.flags = flags
            out.dst_route = routes.routes[d[4]] if d[4] >= 0 else None
            out.src_route = routes.routes[s[4]] if s[4] >= 0 else None
        cands = routing.overrides.ports_of(exporter).get(in_if)
        if cands:
            rule = first_match(cands, None if mac == NO_MAC else mac)
            if rule is not None:
                if out.provenance[1] == BGP and out.src_peer_as != rule.peer_as:
                    out.flags |= SRC_ASYMMETRIC
                out.src_peer_as = rule.peer_as
                out.provenance[1] = OVERRIDE
                out.override = rule.name
        self._count(1, ())
        return out

    # -- rows ------------------------------------------------------------------

    def resolve_dicts(self, flows: Sequence[dict]) -> Resolution:
        """Rows (flow JSON objects or proto Flow messages as dicts) -> columns."""
        exporters, exporter, src, dst, in_if, mac, bad = rows_to_columns(flows)
        next_hop = row_next_hops(flows, bad)
        return self.resolve_columns(
            exporters,
            exporter,
            src,
            dst,
            in_if,
            mac,
            bad,
            volumes=row_volumes(flows),
            next_hop=next_hop,
        )


_NO_ANSWER = (0, 0, NONE, NONE, -1, False, False)


@dataclass(slots=True)
class FlowAnswer:
    """One flow's answer (``Resolver.resolve_one``); ``error``: (code, message)."""

    router: str | None = None
    src_origin_as: int = 0
    src_peer_as: int = 0
    dst_origin_as: int = 0
    dst_peer_as: int = 0
    provenance: list[int] = field(default_factory=lambda: [NONE, NONE, NONE, NONE])
    flags: int = 0
    src_route: tuple[str, RouteMatch] | None = None
    dst_route: tuple[str, RouteMatch] | None = None
    override: str | None = None
    error: tuple[str, str] | None = None


class _Batch:
    """Answer columns of one batch being resolved (numpy), and its dictionaries."""

    def __init__(self, n: int, routing: Routing, routes: RouteDictionary | None) -> None:
        self.routing = routing
        self.routes = routes
        self.rec = rec = np.zeros(n, dtype=RECORD_DTYPE)
        self.router = rec["router"]
        self.so = rec["src_origin_as"]
        self.sp = rec["src_peer_as"]
        self.do = rec["dst_origin_as"]
        self.dp = rec["dst_peer_as"]
        self.prov = rec["provenance"]  # (n, 4): s_origin, s_peer, d_origin, d_peer
        self.flags = rec["flags"]
        self.sroute = rec["src_route"]
        self.droute = rec["dst_route"]
        self.override = rec["override"]
        for column in (self.router, self.sroute, self.droute, self.override):
            column.fill(-1)
        self.prov.fill(NONE)
        self.routers: dict[str, int] = {}
        self.overrides: dict[str, int] = {}
        self.memo: dict[tuple, tuple] = {}
        self.next_hops: np.ndarray | None = None  # V16 per flow, when any flow has one

    def router_index(self, name: str) -> int:
        return self.routers.setdefault(name, len(self.routers))

    def answer_group(
        self,
        resolver: Resolver,
        neighbor: str,
        family: str,
        v4: bool,
        idx: np.ndarray,
        s_words: np.ndarray,
        d_words: np.ndarray,
    ) -> None:
        """Answer flows ``idx`` from ``neighbor``'s RIB.

        The RIB lock is held only to read the change log and for the exact
        lookups; the compiled view is immutable and is read without it.
        """
        if v4:
            skeys = (s_words[idx, 1] & np.uint64(0xFFFFFFFF)).astype(np.uint32)
            dkeys = (d_words[idx, 1] & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        else:
            skeys, dkeys = s_words[idx, 0], d_words[idx, 0]
        with resolver.rib.lock:
            usable = resolver.views.usable(neighbor, family)
        name = self.routing.names.get(neighbor, neighbor)
        d_idx = idx
        if self.next_hops is not None:
            # Flows with a next hop: their dst path is chosen by it, exactly.
            has = self.next_hops[idx] != np.void(NO_NEXT_HOP)
            if has.any():
                self._exact_by_next_hop(resolver, neighbor, family, v4, idx[has], d_words)
                d_idx, dkeys = idx[~has], dkeys[~has]
        # src and dst separately: an address in a changed prefix takes the
        # exact path, the other end of its flow still the compiled view.
        sides = ((True, d_idx, dkeys, d_words), (False, idx, skeys, s_words))
        for dst, fi, keys, words in sides:
            if not len(fi):
                continue
            if usable is None:
                slow = np.ones(len(fi), dtype=bool)
            else:
                view, changed = usable
                slow = changed.mask(keys)
                if not v4 and len(view.long_v6):
                    slow |= np.isin(keys, view.long_v6)
                fast = ~slow
                if fast.any():
                    self._gather(view, name, fi[fast], view.lookup(keys[fast]), dst)
            if slow.any():
                self._exact(resolver, neighbor, family, v4, fi[slow], words[fi[slow]], dst)

    def _exact_by_next_hop(
        self,
        resolver: Resolver,
        neighbor: str,
        family: str,
        v4: bool,
        fi: np.ndarray,
        d_words: np.ndarray,
    ) -> None:
        """dst answers of flows ``fi`` (each with a next hop) from the path
        with that next hop (``Resolver.path_by_next_hop``), memoised per batch."""
        raw = d_words[fi].astype(">u8").tobytes()
        hops = self.next_hops[fi].tobytes()  # type: ignore[index]
        answers, mismatch = [], []
        for start in range(0, len(fi), CHUNK):
            with resolver.rib.lock:
                for k in range(start, min(start + CHUNK, len(fi))):
                    key = raw[16 * k + 12 : 16 * k + 16] if v4 else raw[16 * k : 16 * k + 16]
                    hop = hops[16 * k : 16 * k + 16]
                    memo_key = (neighbor, key, hop)
                    a = self.memo.get(memo_key)
                    if a is None:
                        a = self.memo[memo_key] = resolver._answer_by_next_hop(
                            neighbor, family, key, hop, self.routing, self.routes
                        )
                    answers.append(a[0])
                    mismatch.append(a[1])
        a = np.array(answers, dtype=np.int64).reshape(len(answers), 7)
        self._store(
            fi,
            True,
            origin=a[:, 0].astype(np.uint32),
            peer=a[:, 1].astype(np.uint32),
            prov=a[:, 2].astype(np.uint8),
            stale=a[:, 5] != 0,
            from_set=a[:, 6] != 0,
            route=a[:, 4].astype(np.int32) if self.routes is not None else None,
        )
        flagged = fi[np.array(mismatch, dtype=bool)]
        self.flags[flagged] |= DST_NEXT_HOP_MISMATCH

    def _gather(
        self, view: CompiledView, name: str, fi: np.ndarray, leaf: np.ndarray, dst: bool
    ) -> None:
        """Answers of flows ``fi`` from the compiled view (one side)."""
        if not len(view):
            if not dst:
                self.flags[fi] |= SRC_UNROUTED
            return
        ok = leaf >= 0
        lk = np.where(ok, leaf, 0)
        prov = np.where(ok, view.provenance[lk], NONE).astype(np.uint8)
        origins = view.origin_as_highest if self.routing.highest_as_set else view.origin_as
        origin = np.where(ok, origins[lk], 0)
        origin = np.where(prov == LOCAL, self.routing.local_as, origin)
        peers = view.peer_as_highest if self.routing.highest_as_set else view.peer_as
        peer = np.where(ok, peers[lk], 0)
        stale = ok & view.stale[lk]
        from_set = ok & view.from_set[lk]
        route = None
        if self.routes is not None and ok.any():
            route = np.full(len(leaf), -1, dtype=np.int32)
            route[ok] = self.routes.from_view(name, view, leaf[ok])
        self._store(fi, dst, origin, peer, prov, stale, from_set, route)

    def _exact(
        self,
        resolver: Resolver,
        neighbor: str,
        family: str,
        v4: bool,
        fi: np.ndarray,
        words: np.ndarray,
        dst: bool,
    ) -> None:
        """Answers of flows ``fi`` from RIB lookups (one side), memoised per batch."""
        raw = words.astype(">u8").tobytes()  # 16 bytes per flow
        memo = self.memo
        answers = []
        for start in range(0, len(fi), CHUNK):
            with resolver.rib.lock:  # per chunk: the feed is never held up long
                for k in range(start, min(start + CHUNK, len(fi))):
                    key = raw[16 * k + 12 : 16 * k + 16] if v4 else raw[16 * k : 16 * k + 16]
                    a = memo.get((neighbor, key))
                    if a is None:
                        a = memo[(neighbor, key)] = resolver._answer(
                            neighbor, family, key, self.routing, self.routes
                        )
                    answers.append(a)
        a = np.array(answers, dtype=np.int64).reshape(len(answers), 7)
        self._store(
            fi,
            dst,
            origin=a[:, 0].astype(np.uint32),
            peer=a[:, 1].astype(np.uint32),
            prov=a[:, 2].astype(np.uint8),
            stale=a[:, 5] != 0,
            from_set=a[:, 6] != 0,
            route=a[:, 4].astype(np.int32) if self.routes is not None else None,
        )

    def _store(
        self,
        fi: np.ndarray,
        dst: bool,
        origin: np.ndarray,
        peer: np.ndarray,
        prov: np.ndarray,
        stale: np.ndarray,
        from_set: np.ndarray,
        route: np.ndarray | None,
    ) -> None:
        if dst:
            self.do[fi], self.dp[fi] = origin, peer
            self.prov[fi, 2] = prov
            self.prov[fi, 3] = prov
            self.flags[fi] |= np.where(stale, DST_STALE, 0).astype(np.uint32)
            self.flags[fi] |= np.where(from_set, DST_ORIGIN_AS_SET, 0).astype(np.uint32)
            if route is not None:
                self.droute[fi] = route
        else:
            self.so[fi], self.sp[fi] = origin, peer
            self.prov[fi, 0] = prov
            self.prov[fi, 1] = prov
            self.flags[fi] |= np.where(stale, SRC_STALE, 0).astype(np.uint32)
            self.flags[fi] |= np.where(from_set, SRC_ORIGIN_AS_SET, 0).astype(np.uint32)
            unrouted = (prov == NONE) | (prov == DEFAULT)
            self.flags[fi] |= np.where(unrouted, SRC_UNROUTED, 0).astype(np.uint32)
            if route is not None:
                self.sroute[fi] = route

    def apply_overrides(
        self, exporter: str, idx: np.ndarray, in_if: np.ndarray, macs: np.ndarray | None
    ) -> None:
        """src peer AS overrides for flows ``idx`` of one exporter (after the RIB answers)."""
        ports = self.routing.overrides.ports_of(exporter)
        if not ports:
            return
        iif = in_if[idx]
        hit = np.isin(iif, list(ports))
        if not hit.any():
            return
        for port in np.unique(iif[hit]).tolist():
            sel = idx[iif == port]
            cands = ports[port]
            if cands[0][0] is None:  # first rule takes the whole port
                self._override(sel, cands[0][1])
                continue
            for i in sel.tolist():
                mac = bytes(macs[i]).ljust(6, b"\x00") if macs is not None else None
                rule = first_match(cands, None if mac in (None, NO_MAC) else mac)
                if rule is not None:
                    self._override(np.array([i]), rule)

    def _override(self, sel: np.ndarray, rule: OverrideRule) -> None:
        asym = (self.prov[sel, 1] == BGP) & (self.sp[sel] != rule.peer_as)
        self.flags[sel[asym]] |= SRC_ASYMMETRIC
        self.sp[sel] = rule.peer_as
        self.prov[sel, 1] = OVERRIDE
        self.override[sel] = self.overrides.setdefault(rule.name, len(self.overrides))

    def finish(self) -> Resolution:
        return Resolution(
            routers=list(self.routers),
            router=self.router,
            src_origin_as=self.so,
            src_peer_as=self.sp,
            dst_origin_as=self.do,
            dst_peer_as=self.dp,
            provenance=self.prov.tobytes(),
            flags=self.flags,
            routes=self.routes.routes if isinstance(self.routes, BatchRoutes) else [],
            src_route=self.sroute,
            dst_route=self.droute,
            overrides=list(self.overrides),
            override=self.override,
            records=self.rec,
        )


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
            exp_c, s16, d16, iif, mac = validate_row(f)
            any_mac = any_mac or mac != NO_MAC
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


def _next_hop_column(next_hop: bytes | None, n: int) -> np.ndarray | None:
    """V16 per flow, 0.0.0.0 and :: as none; None when no flow has a next hop."""
    if not next_hop or not n:
        return None
    hops = np.frombuffer(next_hop, dtype="V16").copy()
    hops[hops == np.void(V4_ZERO)] = np.void(NO_NEXT_HOP)
    if (hops == np.void(NO_NEXT_HOP)).all():
        return None
    return hops


@functools.lru_cache(maxsize=4096)
def _packed_hop(text: str) -> bytes:
    try:
        return pack_address(text)
    except ValueError:
        return b""


def _same_hop(m: RouteMatch, next_hop: bytes) -> bool:
    return _packed_hop(m.attributes.next_hop) == next_hop


def next_hop_of(f: dict) -> bytes | None:
    """A flow record's ``next_hop`` (16 bytes), None for none ("", 0.0.0.0, ::);
    raises _Bad naming the field."""
    text = f.get("next_hop")
    if text in (None, ""):
        return None
    if not isinstance(text, str):
        raise _Bad("bad_record", f"next_hop: must be a string, not {type(text).__name__}")
    try:
        packed = pack_address(text)
    except ValueError as exc:
        raise _Bad("bad_address", f"next_hop: {exc}") from None
    return None if packed in (NO_NEXT_HOP, V4_ZERO) else packed


def row_next_hops(flows: Sequence[object], bad: dict[int, tuple[str, str]]) -> bytes:
    """The next_hop column of rows (b"" when no row has one); a row with a bad
    next hop is added to ``bad``."""
    out: list[bytes] = []
    any_hop = False
    for i, f in enumerate(flows):
        hop = None
        if i not in bad and isinstance(f, dict):
            try:
                hop = next_hop_of(f)
            except _Bad as exc:
                bad[i] = (exc.code, exc.message)
        any_hop = any_hop or hop is not None
        out.append(hop or NO_NEXT_HOP)
    return b"".join(out) if any_hop else b""


def row_volumes(flows: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
    """(bytes, packets) per row; 0 where missing or not a non-negative integer
    (volumes are never an error: only the dry-run's sample reads them)."""

    def num(f: object, key: str) -> int:
        v = f.get(key) if isinstance(f, dict) else None
        ok = isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 64
        return v if ok else 0  # type: ignore[return-value]

    return (
        np.array([num(f, "bytes") for f in flows], dtype=np.uint64),
        np.array([num(f, "packets") for f in flows], dtype=np.uint64),
    )


def validate_row(f: object) -> tuple[str, bytes, bytes, int, bytes]:
    """One flow record -> (canonical exporter, src 16 bytes, dst 16 bytes, in_if, src MAC).

    Raises _Bad naming the field. The MAC is NO_MAC when there is none.
    """
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
    else:
        raise _Bad("bad_record", "src_mac: must be a string like aa:bb:cc:dd:ee:ff")
    return exp_c, s16, d16, iif, mac


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
        raise _Bad("bad_record", f"{key}: must be an integer 0..4294967295, not {show(value)}")
    return value
