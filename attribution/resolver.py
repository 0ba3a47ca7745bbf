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

This module is the entry point (``Resolver``: counters, reload, validating a
batch and driving it). The parts live in modules of one job each: the answer
types and codes (``answers``), address packing (``addresses``), record
validation (``records``), router choice (``routing``), RIB lookups and
next-hop path choice (``lookup``), the bulk columns path (``batch``), the
one-flow path (``one_flow``) and override application (``overriding``). The
names other modules import from here are re-exported below.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from attribution import batch_flat, batch_keep, batch_plan, lookup, one_flow
from attribution import routing as routing_rules
from attribution.addresses import (
    NO_MAC,
    NO_NEXT_HOP,
    V4_MAPPED,
    V4_ZERO,
    canonical_exporter,
    pack_address,
    unpack_address,
)
from attribution.answers import (
    BGP,
    DEFAULT,
    DST_NEXT_HOP_MISMATCH,
    DST_ORIGIN_AS_SET,
    DST_STALE,
    FALLBACK,
    FLAG_NAMES,
    LOCAL,
    NONE,
    OVERRIDE,
    PROVENANCE_NAMES,
    RECORD_DTYPE,
    SRC_ASYMMETRIC,
    SRC_ORIGIN_AS_SET,
    SRC_STALE,
    SRC_UNROUTED,
    BatchRoutes,
    BatchTooLarge,
    FlowAnswer,
    Resolution,
    RouteDictionary,
)
from attribution.batch import CHUNK, Batch, Group, next_hop_column
from attribution.batch_routes import ViewRoutes
from attribution.config import Config
from attribution.fastpath import CompiledViews
from attribution.flowring import BatchKeys, FlowRing
from attribution.ix_resolve import IxLookup, ix_batch
from attribution.overriding import override_batch
from attribution.records import (
    BadRecord,
    next_hop_of,
    row_next_hops,
    row_volumes,
    rows_to_columns,
    validate_row,
)
from attribution.routing import Routing
from ribd.rib import Rib, RouteMatch

__all__ = [
    "BGP",
    "CHUNK",
    "DEFAULT",
    "DST_NEXT_HOP_MISMATCH",
    "DST_ORIGIN_AS_SET",
    "DST_STALE",
    "FALLBACK",
    "FLAG_NAMES",
    "LOCAL",
    "NONE",
    "NO_MAC",
    "NO_NEXT_HOP",
    "OVERRIDE",
    "PROVENANCE_NAMES",
    "RECORD_DTYPE",
    "SRC_ASYMMETRIC",
    "SRC_ORIGIN_AS_SET",
    "SRC_STALE",
    "SRC_UNROUTED",
    "V4_MAPPED",
    "V4_ZERO",
    "BadRecord",
    "BatchRoutes",
    "BatchTooLarge",
    "FlowAnswer",
    "Resolution",
    "Resolver",
    "RouteDictionary",
    "Routing",
    "canonical_exporter",
    "next_hop_of",
    "pack_address",
    "row_next_hops",
    "row_volumes",
    "rows_to_columns",
    "unpack_address",
    "validate_row",
]


# Distinct exporter texts whose check is remembered (a real network has a few
# hundred exporters; past this many the memory is dropped and starts over).
EXPORTER_CACHE = 65536


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
        self._chains = batch_plan.Chains()  # exporter -> routers to try, across batches
        self.flat_plans_kept = 0  # batches that reused the flat path's plan (batch_keep)
        self.build_views_inline = build_views_inline
        self.ix = IxLookup()  # learned IX MACs, filled by attribution.ix.IxLearner
        self.routing = Routing.from_config(config, self.ix)
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
        # Exporter text -> (canonical text, 16 bytes), or its error message.
        self._exporters: dict[str, tuple[str, bytes] | str] = {}

    @property
    def flat_plan(self) -> batch_keep.Kept | None:
        """The flat path's last plan, reused while nothing it read changed
        (``batch_keep``); held by the views (a refresh that writes views
        drops it)."""
        return self.views.kept_plan  # type: ignore[return-value]

    @flat_plan.setter
    def flat_plan(self, kept: batch_keep.Kept | None) -> None:
        self.views.kept_plan = kept

    def counters(self) -> dict:
        """A consistent copy of the counters: flows_resolved, flows_bad, and
        flow_errors (error code -> flows)."""
        with self._count_lock:
            return {
                "flows_resolved": self.flows_resolved,
                "flows_bad": self.flows_bad,
                "flow_errors": dict(self.flow_errors),
            }

    def count(self, resolved: int, codes: Iterable[str]) -> None:
        """Add a batch's (or one flow's) flows to the counters: ``resolved``
        answered, one error per code in ``codes``."""
        errors = Counter(codes)
        with self._count_lock:
            self.flows_resolved += resolved
            self.flows_bad += errors.total()
            self.flow_errors.update(errors)

    def reconfigure(self, config: Config) -> None:
        """Swap in a new plan; batches already running keep the one they started with."""
        self.routing = Routing.from_config(config, self.ix)
        self.max_batch_flows = config.max_batch_flows
        if config.recent_flows != self.recent.capacity:
            self.recent = FlowRing(config.recent_flows)

    # -- choosing the RIB (the rules: ``routing``) -----------------------------

    def chain_for(
        self, exporter: str, routing: Routing | None = None
    ) -> tuple[tuple[str, ...], bool]:
        """Routers to try for ``exporter``, and whether the first is its own."""
        return routing_rules.chain_for(routing or self.routing, self.rib.routers, exporter)

    @staticmethod
    def unknown_exporter(exporter: str, family: str, routing: Routing) -> tuple[str, str]:
        """The error of a flow whose exporter maps to no router and that no
        global fallback router answered: (code, message)."""
        return routing_rules.unknown_exporter(exporter, family, routing)

    def pick_router(
        self, chain: Sequence[str], first_is_own: bool, family: str
    ) -> tuple[str | None, bool]:
        """First router of ``chain`` with routes of ``family``; (neighbor, is_fallback)."""
        return routing_rules.pick_router(self.rib.routers, chain, first_is_own, family)

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
        ``routes`` numbers the routes instead of a fresh
        ``batch_routes.ViewRoutes`` (a ``BatchRoutes`` numbering view routes
        in numpy, whose pairs then fill ``Resolution.routes``).
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
        batch = Batch(n, routing, (routes or ViewRoutes()) if with_routes else None)
        batch.next_hops = next_hop_column(next_hop, n)
        bad = dict(bad or {})

        if isinstance(exporter, np.ndarray):
            ex = exporter.astype(np.int64)
        else:  # a list or a protobuf repeated field: fromiter is ~1.6x asarray
            ex = np.fromiter(exporter, dtype=np.int64, count=n)
        canon: list[str | None] = []
        packed: list[bytes] = []
        known = self._exporters
        for j, text in enumerate(exporters):
            # Checked once per distinct text, not once per batch: a batch
            # spread over 64 exporters paid ~0.4 ms for this alone.
            seen = known.get(text)
            if seen is None:
                try:
                    p = pack_address(text)
                    seen = (unpack_address(p), p)
                except ValueError as exc:
                    seen = f"exporter: {exc}"
                if len(known) >= EXPORTER_CACHE:
                    known.clear()  # many made-up exporters: start over, never grow
                known[text] = seen
            if type(seen) is str:
                canon.append(None)
                packed.append(b"\x00" * 16)
                for i in np.nonzero(ex == j)[0].tolist():
                    bad.setdefault(i, ("bad_exporter", seen))
            else:
                canon.append(seen[0])
                packed.append(seen[1])
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

        # Override rules and IX ports apply per exporter: they need the groups.
        per_exporter = in_if_arr is not None and (
            bool(routing.overrides.rules) or (routing.ix is not None and bool(routing.ix.ports))
        )
        if not per_exporter and batch_flat.answer_flat(
            self, batch, canon, ex, good, d_v4, s_words, d_words, routing
        ):
            return self._finish(batch, bad, n, what_if)
        order, groups = self._plan(canon, ex, good, d_v4, routing)
        if self.build_views_inline and groups and self.views.refresh():
            order, groups = self._plan(canon, ex, good, d_v4, routing)
        for g in groups:
            if g.neighbor is None and not g.own:
                error = self.unknown_exporter(canon[g.exporter], g.family, routing)  # type: ignore[arg-type]
                for i in order[g.start : g.stop].tolist():  # error flows only
                    bad[i] = error
        batch.answer_groups(self, order, groups, s_words, d_words)
        if in_if_arr is not None and routing.overrides.rules:
            for g in groups:  # the exporter's override rules apply whatever the family
                if g.neighbor is not None or g.own:
                    idx = order[g.start : g.stop]
                    override_batch(batch, canon[g.exporter], idx, in_if_arr, mac_arr)  # type: ignore[arg-type]
        if in_if_arr is not None and routing.ix is not None and routing.ix.ports:
            for g in groups:  # learned IX MACs, after the rules (a matched rule wins)
                if g.neighbor is not None or g.own:
                    idx = order[g.start : g.stop]
                    ix_batch(batch, routing.ix, canon[g.exporter], idx, in_if_arr, mac_arr)  # type: ignore[arg-type]

        return self._finish(batch, bad, n, what_if)

    def _finish(
        self, batch: Batch, bad: dict[int, tuple[str, str]], n: int, what_if: bool
    ) -> Resolution:
        """The batch's Resolution with its errors, counted unless a what-if."""
        res = batch.finish()
        for i, (code, message) in sorted(bad.items()):
            res.errors.append((i, code, message))
        if not what_if:
            self.count(n - len(bad), (code for code, _ in bad.values()))
        return res

    def _plan(
        self,
        canon: list[str | None],
        ex: np.ndarray,
        good: np.ndarray,
        d_v4: np.ndarray,
        routing: Routing,
    ) -> tuple[np.ndarray, list[Group]]:
        """Good flows grouped by (exporter, family), each group's router and
        view chosen (``batch_plan.plan``)."""
        return batch_plan.plan(self.rib, self.views, self._chains, canon, ex, good, d_v4, routing)

    # -- one address (the rules: ``lookup``); explain reads these -------------

    def _answer(
        self,
        neighbor: str,
        family: str,
        key: bytes,
        routing: Routing,
        routes: RouteDictionary | None,
    ) -> lookup.Answer:
        """(origin, peer, origin prov, peer prov, route index, stale, origin from AS_SET)."""
        return lookup.answer(self.rib, neighbor, family, key, routing, routes)

    def _answer_by_next_hop(
        self,
        neighbor: str,
        family: str,
        key: bytes,
        next_hop: bytes,
        routing: Routing,
        routes: RouteDictionary | None,
    ) -> tuple[lookup.Answer, bool]:
        """``_answer`` from the path whose next hop is the flow's, and whether
        none of the prefix's paths had it (then: the best path)."""
        return lookup.answer_by_next_hop(self.rib, neighbor, family, key, next_hop, routing, routes)

    def path_by_next_hop(
        self, neighbor: str, family: str, key: bytes, next_hop: bytes
    ) -> tuple[RouteMatch | None, bool]:
        """The longest-prefix match's path whose BGP next hop is ``next_hop``;
        see ``lookup.path_by_next_hop``. Caller holds the RIB lock."""
        return lookup.path_by_next_hop(self.rib, neighbor, family, key, next_hop)

    # -- one flow (``one_flow``) -----------------------------------------------

    def resolve_one(self, flow: dict) -> FlowAnswer:
        """One flow record, without numpy: the low-latency path of the one-flow RPC.

        The same rules as ``resolve_columns`` (a test compares the two), with
        plain RIB lookups instead of a compiled view.
        """
        return one_flow.resolve_one(self, flow)

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
