"""Which router's RIB answers a flow: the config's lookup plan and the choice.

An exporter maps to its router (explicit ``exporters``, else the router whose
neighbor address or router id it is), then that router's fallback chain, then
the global fallback chain; the first router with routes of the flow's family
answers. Kept apart from the lookups so that the bulk path, the one-flow path,
explain and ``Routers`` all choose the same router, and the plan can be swapped
whole on reload. No I/O; the caller holds the RIB lock for ``pick_router``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from attribution.config import Config
from attribution.ix_resolve import IxLookup
from attribution.overrides import OverrideTable
from ribd.rib import RouterRib
from ribd.table import FamilyState


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
    ix: IxLookup | None = None  # learned IX MACs (attribution.ix), live, not from the config

    @classmethod
    def from_config(cls, config: Config, ix: IxLookup | None = None) -> Routing:
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
            ix=ix,
        )


def chain_for(
    routing: Routing, routers: Mapping[str, RouterRib], exporter: str
) -> tuple[tuple[str, ...], bool]:
    """Routers to try for ``exporter``, and whether the first is its own.

    ``routers``: the RIB's routers (a neighbor seen on the feed but not
    configured answers for itself)."""
    own = routing.chains.get(exporter)
    if own is None and exporter in routers:
        own = (exporter,)  # a neighbor seen on the feed but not configured
    own = own or ()
    return (*own, *(n for n in routing.default_chain if n not in own)), bool(own)


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


def pick(
    routers: Mapping[str, RouterRib], chain: Sequence[str], first_is_own: bool, family: str
) -> tuple[str, bool, RouterRib, FamilyState] | None:
    """``pick_router``'s choice with the router and its family state (what
    a view check reads next): the one loop both the grouped plan and the
    flat path (``batch_flat._plan``) pick routers with."""
    for i, neighbor in enumerate(chain):
        r = routers.get(neighbor)
        if r is not None:
            fs = r.families[family]
            if fs.prefixes or fs.stale_slot is not None:
                return neighbor, i > 0 or not first_is_own, r, fs
    return None


def pick_router(
    routers: Mapping[str, RouterRib], chain: Sequence[str], first_is_own: bool, family: str
) -> tuple[str | None, bool]:
    """First router of ``chain`` with routes of ``family``; (neighbor, is_fallback)."""
    hit = pick(routers, chain, first_is_own, family)
    return (None, False) if hit is None else (hit[0], hit[1])
