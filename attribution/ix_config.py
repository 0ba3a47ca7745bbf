"""``[[ix]]``: Internet exchange ports whose source peer AS is learned per MAC.

One port at an IX carries hundreds of peers, so the per-port override cannot
tell them apart. Each ``[[ix]]`` entry declares the ports (the router or its
exporters, and input ifIndexes), the IX LAN prefixes, where the router's
neighbor table (IX LAN address -> MAC) is read from — SNMP (IP-MIB
``ipNetToPhysicalTable``) or a file (``ip -j neigh`` JSON, or CSV) — how
often, and an optional PeeringDB ``netixlan`` JSON file. The learning itself
is ``attribution.ix_table`` / ``attribution.ix``.

Validated in the config's own style (``config_file.Checker``: file:line: key:
why); secrets (SNMP community, v3 keys) are never inline, only file paths,
read at each refresh so they can be rotated without a reload.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from attribution.config_file import Checker, ConfigError

NEIGHBOR_FORMATS = ("ip-json", "csv")
SNMP_VERSIONS = ("2c", "3")
AUTH_PROTOCOLS = ("md5", "sha", "sha224", "sha256", "sha384", "sha512")
PRIV_PROTOCOLS = ("", "des", "aes", "aes192", "aes256")
REFRESH_DEFAULT = 300.0
KEYS = {
    "name",
    "router",
    "exporters",
    "in_if",
    "prefixes",
    "refresh_interval",
    "neighbors_file",
    "neighbors_format",
    "snmp_target",
    "snmp_version",
    "snmp_community_file",
    "snmp_user",
    "snmp_auth_protocol",
    "snmp_auth_key_file",
    "snmp_priv_protocol",
    "snmp_priv_key_file",
    "snmp_timeout",
    "snmp_retries",
    "peeringdb_file",
}


@dataclass(frozen=True, slots=True)
class SnmpSource:
    """Where and how to walk the router's ipNetToPhysicalTable."""

    host: str
    port: int
    version: str  # "2c" | "3"
    community_file: str = ""
    user: str = ""
    auth_protocol: str = "sha"
    auth_key_file: str = ""
    priv_protocol: str = ""
    priv_key_file: str = ""
    timeout: float = 5.0
    retries: int = 1


@dataclass(frozen=True, slots=True)
class IxConfig:
    """One IX: its ports, LAN prefixes and the sources of its neighbor table."""

    name: str
    router: str  # router name whose RIB gives next hop -> peer AS ("" : exporters' routers)
    exporters: tuple[str, ...]  # canonical; the exporter addresses of the ports
    in_if: tuple[int, ...]
    prefixes: tuple[str, ...]  # IX LAN prefixes, normalised
    refresh_interval: float = REFRESH_DEFAULT
    neighbors_file: str = ""
    neighbors_format: str = "ip-json"
    snmp: SnmpSource | None = None
    peeringdb_file: str = ""

    def networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(p) for p in self.prefixes)


def parse_ix(
    c: Checker, data: dict, router_configs: Sequence[Any], warnings: list[str]
) -> tuple[IxConfig, ...]:
    """Every ``[[ix]]`` entry; ``router_configs``: the parsed ``[[routers]]``
    (``config.RouterConfig``: name, neighbor, router_id, exporters)."""
    routers = {r.name: (r.neighbor, r.router_id, *r.exporters) for r in router_configs}
    out: list[IxConfig] = []
    names: dict[str, int] = {}
    owner: dict[tuple[str, int], str] = {}  # (exporter, in_if) -> IX name
    for i, x in enumerate(c.get(data, ("", None, None), "ix", list, [])):
        with c.part():  # each entry on its own: its problems kept, the next checked
            entry = _entry(c, i, x, routers, names, owner, warnings)
            if entry is not None:
                out.append(entry)
    return tuple(out)


def _entry(
    c: Checker,
    i: int,
    x: Any,
    routers: dict[str, tuple],
    names: dict[str, int],
    owner: dict[tuple[str, int], str],
    warnings: list[str],
) -> IxConfig | None:
    """One ``[[ix]]`` entry, key by key (every broken key named; the SNMP keys,
    which depend on each other, as one); None when any was broken. ``names``
    and ``owner`` are the entries' so far."""
    w = ("ix", i)
    mark = c.entry(x, w, KEYS)
    name = c.soft("", c.unique_name, x, w, names)
    router = c.soft(None, _router, c, x, i, routers)
    exporters = c.soft(None, c.addresses, x, w, "exporters")
    in_if = c.soft(None, _if_indexes, c, x, i)
    if router is not None and exporters is not None and in_if is not None:
        exporters = c.soft((), _ports, c, i, name, router, exporters, in_if, routers, owner)
    prefixes = c.soft((), _prefixes, c, x, i)
    refresh = c.keyed(x, w, c.seconds, "refresh_interval", REFRESH_DEFAULT, 1, 86400)
    neighbors_file = c.keyed(x, w, c.string, "neighbors_file", "")
    fmt = c.keyed(x, w, c.choice, "neighbors_format", "ip-json", NEIGHBOR_FORMATS)
    snmp = c.soft(None, _snmp, c, x, i)
    if snmp is not None and neighbors_file:
        c.problems.append(
            c.fail(("ix", i, "neighbors_file"), "give snmp_target or neighbors_file, not both")
        )
    peeringdb = c.keyed(x, w, c.string, "peeringdb_file", "")
    if len(c.problems) > mark:
        return None
    if snmp is None and not neighbors_file:
        warnings.append(
            f"{c.path}:{c.line_of('ix', i, None)}: ix[{i}] ({name!r}) has no neighbor table "
            "source (snmp_target or neighbors_file): no MAC can be learned"
        )
    return IxConfig(
        name=name,
        router=router or "",
        exporters=tuple(exporters or ()),
        in_if=in_if or (),
        prefixes=prefixes,
        refresh_interval=refresh,
        neighbors_file=neighbors_file,
        neighbors_format=fmt,
        snmp=snmp,
        peeringdb_file=peeringdb,
    )


def _router(c: Checker, x: dict, i: int, routers: dict[str, tuple]) -> str:
    router = c.string(x, ("ix", i), "router", "")
    if router and router not in routers:
        raise c.fail(("ix", i, "router"), f"no router named {router!r}")
    return router


def _ports(
    c: Checker,
    i: int,
    name: str,
    router: str,
    exporters: tuple[str, ...],
    in_if: tuple[int, ...],
    routers: dict[str, tuple],
    owner: dict[tuple[str, int], str],
) -> tuple[str, ...]:
    """The entry's exporters (its router's when it names none), each (exporter,
    in_if) port no other IX's."""
    if not router and not exporters:
        raise c.fail(("ix", i, "router"), "give router, exporters or both")
    if not exporters:
        exporters = tuple(dict.fromkeys(a for a in routers[router] if a))
    for e in exporters:
        for n in in_if:
            if (e, n) in owner:
                raise c.fail(
                    ("ix", i, "in_if"),
                    f"exporter {e} in_if {n} is already a port of IX {owner[(e, n)]!r}",
                )
    for e in exporters:
        for n in in_if:
            owner[(e, n)] = name
    return exporters


def _if_indexes(c: Checker, x: dict, i: int) -> tuple[int, ...]:
    raw = c.get(x, ("ix", i), "in_if", list)
    if not raw:
        raise c.fail(("ix", i, "in_if"), "must list at least one ifIndex")
    out: list[int] = []
    for j, n in enumerate(raw):
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= 0xFFFFFFFF:
            raise c.fail(("ix", i, "in_if"), f"item {j}: {n!r} is not a 32-bit ifIndex")
        out.append(n)
    return tuple(dict.fromkeys(out))


def _prefixes(c: Checker, x: dict, i: int) -> tuple[str, ...]:
    raw = c.get(x, ("ix", i), "prefixes", list)
    if not raw:
        raise c.fail(("ix", i, "prefixes"), "must list the IX LAN prefixes (IPv4 and/or IPv6)")
    out: list[str] = []
    for j, p in enumerate(raw):
        try:
            net = ipaddress.ip_network(p, strict=False)
        except (ValueError, TypeError):
            raise c.fail(("ix", i, "prefixes"), f"item {j}: {p!r} is not a prefix") from None
        if net.prefixlen < (8 if net.version == 4 else 32):
            raise c.fail(
                ("ix", i, "prefixes"),
                f"item {j}: {net} is too wide for an IX LAN (at least /8 IPv4, /32 IPv6)",
            )
        out.append(str(net))
    return tuple(dict.fromkeys(out))


def _snmp(c: Checker, x: dict, i: int) -> SnmpSource | None:
    w = ("ix", i)
    target = c.get(x, w, "snmp_target", str, "")
    snmp_keys = sorted(k for k in x if k.startswith("snmp_") and k != "snmp_target")
    if not target:
        if snmp_keys:
            raise c.fail(("ix", i, snmp_keys[0]), "needs snmp_target")
        return None
    host, port = _target(c, target, i)
    version = c.get(x, w, "snmp_version", str, "2c")
    if version not in SNMP_VERSIONS:
        raise c.fail(("ix", i, "snmp_version"), f"{version!r}: expected 2c or 3")
    timeout = c.seconds(x, w, "snmp_timeout", 5.0, 0.1, 60)
    retries = c.get(x, w, "snmp_retries", int, 1)
    if not 0 <= retries <= 10:
        raise c.fail(("ix", i, "snmp_retries"), "must be between 0 and 10")
    if version == "2c":
        community_file = c.get(x, w, "snmp_community_file", str, "")
        if not community_file:
            raise c.fail(
                ("ix", i, "snmp_community_file"),
                "SNMP v2c needs the community in a file (never inline)",
            )
        for k in ("snmp_user", "snmp_auth_key_file", "snmp_priv_key_file"):
            if k in x:
                raise c.fail(("ix", i, k), 'is for snmp_version = "3"')
        return SnmpSource(host, port, version, community_file, timeout=timeout, retries=retries)
    if "snmp_community_file" in x:
        raise c.fail(("ix", i, "snmp_community_file"), 'is for snmp_version = "2c"')
    user = c.get(x, w, "snmp_user", str)
    if not user or len(user) > 32:
        raise c.fail(("ix", i, "snmp_user"), "must be 1 to 32 characters")
    auth = c.choice(x, w, "snmp_auth_protocol", "sha", AUTH_PROTOCOLS)
    auth_file = c.get(x, w, "snmp_auth_key_file", str)
    named = "one of " + ", ".join(p for p in PRIV_PROTOCOLS if p)  # "" (none) not listed
    priv = c.choice(x, w, "snmp_priv_protocol", "", PRIV_PROTOCOLS, named)
    priv_file = c.get(x, w, "snmp_priv_key_file", str, "")
    if bool(priv) != bool(priv_file):
        raise c.fail(
            ("ix", i, "snmp_priv_key_file" if priv else "snmp_priv_protocol"),
            "snmp_priv_protocol and snmp_priv_key_file go together",
        )
    return SnmpSource(
        host,
        port,
        version,
        user=user,
        auth_protocol=auth,
        auth_key_file=auth_file,
        priv_protocol=priv,
        priv_key_file=priv_file,
        timeout=timeout,
        retries=retries,
    )


def _target(c: Checker, text: str, i: int) -> tuple[str, int]:
    """``HOST`` or ``HOST:PORT`` (``[v6]:PORT``); port 161 by default."""
    host, port = text, 161
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise c.fail(("ix", i, "snmp_target"), f"{text!r} is not HOST[:PORT]")
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        if not p.isdigit():
            raise c.fail(("ix", i, "snmp_target"), f"{text!r} is not HOST[:PORT]")
        port = int(p)
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        raise c.fail(("ix", i, "snmp_target"), f"{host!r} is not an IP address") from None
    if not 0 < port < 65536:
        raise c.fail(("ix", i, "snmp_target"), f"{port} is not a UDP port")
    return host, port


__all__ = ["ConfigError", "IxConfig", "SnmpSource", "parse_ix"]
