"""The config file's ``[[routers]]``: one BGP neighbor each, checked key by key.

Its own module, as ``[api]`` (attribution.config_api) and ``[[ix]]``
(attribution.ix_config) have: the settings, the keys the array accepts
(attribution.config.SECTION_KEYS lists them with every other section's) and
their validator, in the one validator style (attribution.config_file.Checker).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from attribution.config_file import Checker
from ribd.prefix_limit import MAX_PREFIXES_LIMIT
from ribd.settings import NeighborSettings

KEYS = frozenset(
    {
        "name",
        "neighbor",
        "peer_as",
        "router_id",
        "exporters",
        "fallback",
        "local_address",
        "add_path",
        "passive",
        "md5_password",
        "stale_hold_time",
        "hold_time",
        "max_prefixes_ipv4",
        "max_prefixes_ipv6",
    }
)


@dataclass(frozen=True, slots=True)
class RouterConfig:
    name: str
    neighbor: str
    peer_as: int
    router_id: str
    exporters: tuple[str, ...]
    fallback: tuple[str, ...]


def parse_routers(
    c: Checker, data: dict, local_as: int, default_fallback: tuple
) -> tuple[list[RouterConfig], list[NeighborSettings]]:
    """Every ``[[routers]]`` entry, each checked on its own (every broken key named),
    then what they must not share and whom they fall back to."""
    routers: list[RouterConfig] = []
    neighbors: list[NeighborSettings] = []
    names: dict[str, int] = {}
    exporter_owner: dict[str, str] = {}
    for i, r in enumerate(c.soft([], c.get, data, ("", None, None), "routers", list, [])):
        with c.part():
            whole = _router(c, i, r, local_as, names, exporter_owner)
            if whole is not None:
                routers.append(whole[0])
                neighbors.append(whole[1])
    neighbor_owner: dict[str, str] = {}
    for r in routers:
        i = names[r.name]
        with c.part():
            if r.neighbor in neighbor_owner:
                raise c.fail(
                    ("routers", i, "neighbor"),
                    f"{r.neighbor} is already router {neighbor_owner[r.neighbor]!r}",
                )
            neighbor_owner[r.neighbor] = r.name
        with c.part():
            for j, f in enumerate(r.fallback):
                if not isinstance(f, str) or f not in names:
                    raise c.fail(("routers", i, "fallback"), f"item {j}: no router named {f!r}")
                if f == r.name:
                    raise c.fail(
                        ("routers", i, "fallback"), f"item {j}: a router cannot fall back to itself"
                    )
    with c.part():
        for j, f in enumerate(default_fallback):
            if not isinstance(f, str) or f not in names:
                raise c.fail(("service", None, "fallback"), f"item {j}: no router named {f!r}")
    return routers, neighbors


def _router(
    c: Checker,
    i: int,
    r: Any,
    local_as: int,
    names: dict[str, int],
    exporter_owner: dict[str, str],
) -> tuple[RouterConfig, NeighborSettings] | None:
    """One router, key by key: each key's problem is kept and the next key checked,
    so a router with three mistakes names three. None when any key was broken."""
    w = ("routers", i)
    mark = c.entry(r, w, KEYS)
    # Known from here on even when another key is broken: others' fallbacks to it hold.
    name = c.soft("", c.unique_name, r, w, names)
    neighbor = c.soft("", c.address, r, w, "neighbor")
    peer_as = c.soft(0, c.asn, r, w, "peer_as", local_as)
    rid = c.soft("", c.ipv4, r, w, "router_id") if "router_id" in r else ""
    canon = c.soft((), _router_exporters, c, i, r, exporter_owner)
    fallback = c.keyed(r, w, c.listed, "fallback", [])
    hold = c.soft(180, _hold_time, c, i, r)
    local_address = c.keyed(r, w, c.address, "local_address", "")
    add_path = c.soft(True, c.get, r, w, "add_path", bool, True)
    passive = c.soft(True, c.get, r, w, "passive", bool, True)
    md5 = c.keyed(r, w, c.string, "md5_password", "")
    stale_hold = (
        c.soft(None, c.seconds, r, w, "stale_hold_time", 0.0, 0, 86400)
        if "stale_hold_time" in r
        else None
    )
    limits = [
        c.keyed(r, w, functools.partial(prefix_limit, c), key, None) if key in r else None
        for key in ("max_prefixes_ipv4", "max_prefixes_ipv6")
    ]
    if len(c.problems) > mark:
        return None
    for e in canon:
        exporter_owner[e] = name
    settings = NeighborSettings(
        name=name,
        address=neighbor,
        peer_as=peer_as,
        local_address=local_address,
        router_id=rid,
        add_path=add_path,
        passive=passive,
        md5_password=md5,
        stale_hold_time=stale_hold,
        hold_time=hold,
        max_prefixes_ipv4=limits[0],
        max_prefixes_ipv6=limits[1],
    )
    return RouterConfig(name, neighbor, peer_as, rid, canon, tuple(fallback)), settings


def _router_exporters(
    c: Checker, i: int, r: dict, exporter_owner: dict[str, str]
) -> tuple[str, ...]:
    """A router's exporters as canonical addresses, none another router's."""
    canon = c.addresses(r, ("routers", i), "exporters")
    for e in canon:
        if e in exporter_owner:
            raise c.fail(
                ("routers", i, "exporters"),
                f"{e} is already mapped to router {exporter_owner[e]!r}",
            )
    return canon


def prefix_limit(c: Checker, data: dict, where: tuple, key: str, default: int | None) -> int:
    """A prefix limit (``[bgp]`` or a router's): 0 (none) to MAX_PREFIXES_LIMIT."""
    return c.bounded(
        data,
        where,
        key,
        default,
        0,
        MAX_PREFIXES_LIMIT,
        f"must be between 0 (no limit) and {MAX_PREFIXES_LIMIT:,}",
    )


def _hold_time(c: Checker, i: int, r: dict) -> int:
    hold = c.get(r, ("routers", i), "hold_time", int, 180)
    if hold != 0 and not 3 <= hold <= 65535:
        raise c.fail(("routers", i, "hold_time"), "must be 0 or between 3 and 65535")
    return hold
