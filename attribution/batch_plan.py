"""A batch's flows grouped by (exporter, family), each group's router and view chosen.

``resolver.Resolver.resolve_columns`` plans a batch here, then answers it
(``attribution.batch``). A batch spread over 64 exporters has 64 groups, and
the plan's Python per group was ~5-9 us (0.3-0.5 ms of a ~3 ms batch, issue
11): the routing chain of an exporter that the config names is kept across
batches (``Chains``), and the views are checked for all groups at once
(``CompiledViews.usable_many``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from attribution import routing as routing_rules
from attribution.routing import Routing
from ribd.events import IPV4_UNICAST, IPV6_UNICAST

if TYPE_CHECKING:
    from attribution.changedranges import ChangedRanges
    from attribution.compiledview import CompiledView
    from attribution.fastpath import CompiledViews
    from ribd.rib import Rib

CHAINS_KEPT = 65_536  # exporters whose chain is kept (then starts again)


@dataclass(slots=True)
class Group:
    """The flows of one (exporter, family) of a batch: ``order[start:stop]``,
    and the router chosen for them (under one hold of the RIB lock per batch)."""

    exporter: int  # index into the batch's exporters
    v4: bool
    start: int
    stop: int
    own: bool  # the exporter maps to a router of its own
    neighbor: str | None = None
    is_fallback: bool = False
    usable: tuple[CompiledView, ChangedRanges] | None = None

    @property
    def family(self) -> str:
        return IPV4_UNICAST if self.v4 else IPV6_UNICAST


class Chains:
    """Each exporter's chain of routers to try (``routing.chain_for``), kept
    while the routing is the same object. The chain depends on the routing
    and, for an exporter the config does not name, on whether the RIB has a
    router of that address (which can change any time): that is part of
    the key."""

    def __init__(self) -> None:
        self._routing: Routing | None = None
        self._kept: dict[tuple[str, bool], tuple[tuple[str, ...], bool]] = {}

    def kept(self, routing: Routing) -> dict[tuple[str, bool], tuple[tuple[str, ...], bool]]:
        """The chains kept for ``routing``, by (exporter, whether it is a
        router of the RIB): what ``get`` would return, without the call."""
        if routing is not self._routing:
            self._kept = {}
            self._routing = routing
        return self._kept

    def get(self, routing: Routing, routers, exporter: str) -> tuple[tuple[str, ...], bool]:
        kept = self.kept(routing)
        key = (exporter, exporter in routers)
        chain = kept.get(key)
        if chain is None:
            chain = routing_rules.chain_for(routing, routers, exporter)
            if len(kept) >= CHAINS_KEPT:
                kept.clear()
            kept[key] = chain
        return chain


def plan(
    rib: Rib,
    views: CompiledViews,
    chains: Chains,
    canon: list[str | None],
    ex: np.ndarray,
    good: np.ndarray,
    d_v4: np.ndarray,
    routing: Routing,
) -> tuple[np.ndarray, list[Group]]:
    """Good flows grouped by (exporter, family) in one pass: ``order``
    lists them group after group (exporters in index order, IPv4 first,
    flows in batch order within a group), and each group's router and
    compiled view are chosen under one hold of the RIB lock."""
    every = bool(good.all())
    flows = None if every else np.flatnonzero(good)
    if not len(good) or (flows is not None and not len(flows)):
        return np.zeros(0, dtype=np.intp), []
    if every:  # the usual batch: no index array to apply first
        code = ex * 2
        code += ~d_v4  # IPv4 first
    else:
        code = ex[flows] * 2 + ~d_v4[flows]
    top, low = int(code.max()), int(code.min())
    if top == low:
        order = np.arange(len(code)) if flows is None else flows
        cuts: list[int] = []
        firsts = [top]
    else:  # a stable sort of 8 or 16 bits is a radix sort: ~15x an int64 one
        narrow = np.uint8 if top < 256 else np.uint16 if top < 65536 else np.int64
        order = np.argsort(code.astype(narrow), kind="stable")
        codes = code[order]
        if flows is not None:
            order = flows[order]
        at = np.flatnonzero(codes[1:] != codes[:-1])
        at += 1
        cuts = at.tolist()
        firsts = [int(codes[0]), *codes[at].tolist()]
    bounds = [0, *cuts, len(order)]
    # Per group (a batch spread over 64 exporters has 64): the chain, kept
    # across batches, and the router.
    routers, pick = rib.routers, routing_rules.pick_router
    kept = chains.kept(routing)
    chain_of = chains.get
    picked: list[tuple[int, bool, bool, str | None, bool]] = []
    wants: list[tuple[str, str]] = []
    with rib.lock:
        for c in firsts:
            j = c >> 1
            exporter = canon[j]
            chain = kept.get((exporter, exporter in routers))
            if chain is None:
                chain = chain_of(routing, routers, exporter)  # type: ignore[arg-type]
            v4 = not c & 1
            family = IPV4_UNICAST if v4 else IPV6_UNICAST
            neighbor, is_fallback = pick(routers, chain[0], chain[1], family)
            picked.append((j, v4, chain[1], neighbor, is_fallback))
            if neighbor is not None:
                wants.append((neighbor, family))
        usable = iter(views.usable_many(wants))
    return order, [
        Group(j, v4, bounds[k], bounds[k + 1], own, n, fb, None if n is None else next(usable))
        for k, (j, v4, own, n, fb) in enumerate(picked)
    ]
