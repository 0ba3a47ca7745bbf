"""What a config reload changes, in words: for the log and for the reply.

Pure functions of two Configs. ``describe_changes`` lists what a reload
applies at once; ``restart_needed`` what only a restart applies, compared with
the config the daemon was started with (so reverting a change clears it).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from attribution.config import Config
from ribd.workers import worker_of

# [service] values a reload applies at once (the resolver and the loops read them live).
_LIVE_SERVICE = (
    "local_as",
    "as_set_policy",
    "max_batch_flows",
    "snapshot_path",
    "snapshot_interval",
    "ready_timeout",
    "route_cache_routes",
)
# Values only read at start: a reload that changes them is told a restart is needed.
_START_ONLY = {
    "max_message_bytes": "[service] max_message_bytes",
    "log_format": "[service] log_format",
}
# Sections of settings whose token files are read again at every reload (the
# others are fixed at start; TLS files' contents are followed, their paths fixed):
# [api] by attribution.security.Guard, [metrics] by attribution.metrics_http.
_LIVE_FILES = {
    "api": ("read_token_file", "admin_token_file"),
    "metrics": ("token_file",),
}
# BgpSettings fields and the config keys they come from.
_BGP_KEYS = {
    "local_as": "[service] local_as",
    "router_id": "[service] router_id",
    "listen_address": "[bgp] listen_address",
    "listen_port": "[bgp] listen_port",
    "exabgp_mode": "[bgp] exabgp",
    "exabgp_command": "[bgp] exabgp_command",
    "feed_socket": "[bgp] feed_socket",
    "stale_hold_time": "[bgp] stale_hold_time",
    "restart_hold_time": "[bgp] restart_hold_time",
    "work_dir": "[bgp] work_dir",
    "converge_quiet_time": "[bgp] converge_quiet_time",
    "relay_spool_bytes": "[bgp] relay_spool_bytes",
    "reread_wave": "[bgp] reread_wave",
    "max_paths_per_prefix": "[bgp] max_paths_per_prefix",
    "api_mode": "[bgp] api_mode",
    "workers": "[bgp] workers",
}
# Per-router session settings a reload applies at once (the RIB reads them live).
_LIVE_NEIGHBOR_VALUES = ("stale_hold_time", "max_prefixes_ipv4", "max_prefixes_ipv6")
_LIVE_NEIGHBOR = {"name", *_LIVE_NEIGHBOR_VALUES}
# [bgp] keys a reload applies at once (not in _BGP_KEYS: no restart needed).
_LIVE_BGP = ("max_prefixes_ipv4", "max_prefixes_ipv6")


def describe_changes(old: Config, new: Config) -> list[str]:
    """What ``new`` changes against ``old`` among what a reload applies, in words.

    For the reload's log line ("overrides 3 -> 5, exporters of edge-par-1
    changed, as_set_policy aggregator -> highest"); [report] and the routers'
    maps are summarised, never dumped.
    """
    changes: list[str] = []
    if old.overrides != new.overrides:
        if len(old.overrides) != len(new.overrides):
            changes.append(f"overrides {len(old.overrides)} -> {len(new.overrides)}")
        else:
            n = sum(a != b for a, b in zip(old.overrides, new.overrides, strict=True))
            changes.append(f"overrides: {n} of {len(new.overrides)} changed")
    before = {r.name: r for r in old.routers}
    after = {r.name: r for r in new.routers}
    if added := [n for n in after if n not in before]:
        changes.append("routers added: " + ", ".join(added))
    if removed := [n for n in before if n not in after]:
        changes.append("routers removed: " + ", ".join(removed))
    for name, r in after.items():
        o = before.get(name)
        if o is None:
            continue
        for what in ("exporters", "fallback", "router_id", "neighbor", "peer_as"):
            if getattr(o, what) != getattr(r, what):
                changes.append(f"{what} of {name} changed")
    old_neighbors = {n.name: n for n in old.bgp.neighbors}
    for n in new.bgp.neighbors:
        o = old_neighbors.get(n.name)
        for what in _LIVE_NEIGHBOR_VALUES:
            if o is not None and getattr(o, what) != getattr(n, what):
                changes.append(f"{what} of {n.name} {getattr(o, what)} -> {getattr(n, what)}")
    for what in _LIVE_BGP:
        if getattr(old.bgp, what) != getattr(new.bgp, what):
            changes.append(f"[bgp] {what} {getattr(old.bgp, what)} -> {getattr(new.bgp, what)}")
    if old.default_fallback != new.default_fallback:
        changes.append("[service] fallback changed")
    for key in _LIVE_SERVICE:
        a, b = getattr(old, key), getattr(new, key)
        if a != b:
            changes.append(f"{key} {a} -> {b}")
    for section, live in _LIVE_FILES.items():
        before, after = getattr(old, section), getattr(new, section)
        for key in live:
            if getattr(before, key) != getattr(after, key):
                changes.append(f"[{section}] {key} changed")
    if old.report != new.report:
        changes.append("[report] changed")
    if old.ix != new.ix:  # applied at once: an unchanged [[ix]] keeps what it learned
        changes.append(f"[[ix]] changed ({len(old.ix)} -> {len(new.ix)})")
    return changes


def restart_needed(running: Config, new: Config) -> list[str]:
    """What in ``new`` differs from the config the daemon was *started* with and
    takes effect only at a restart (BGP sessions, listeners, API limits).

    Compared with the start, not with the last reload: reverting a change
    makes the difference, and the warning, go away.
    """
    needed: list[str] = []
    for key, name in _BGP_KEYS.items():
        a, b = getattr(running.bgp, key), getattr(new.bgp, key)
        if a != b:
            needed.append(f"{name} {_show(a)} -> {_show(b)}")
    before = {n.name: n for n in running.bgp.neighbors}
    after = {n.name: n for n in new.bgp.neighbors}
    where = worker_of(new.bgp) if new.bgp.workers > 1 else {}
    for name in after.keys() - before.keys():
        worker = where.get(after[name].address, 0)
        on = f"; ExaBGP worker {worker} will hold it" if worker else ""
        needed.append(f"new router {name} (no session yet{on})")
    for name in before.keys() - after.keys():
        needed.append(f"removed router {name} (its session stays up)")
    for name, n in after.items():
        if name in before:
            fields = [
                f.name
                for f in dataclasses.fields(n)
                if f.name not in _LIVE_NEIGHBOR
                and getattr(n, f.name) != getattr(before[name], f.name)
            ]
            if fields:
                needed.append(f"session of {name} ({', '.join(fields)})")
    for key, name in _START_ONLY.items():
        a, b = getattr(running, key), getattr(new, key)
        if a != b:
            needed.append(f"{name} {a!r} -> {b!r}")
    for section, live in _LIVE_FILES.items():
        before, after = getattr(running, section), getattr(new, section)
        fields = [
            f.name
            for f in dataclasses.fields(after)
            if f.name not in live and getattr(before, f.name) != getattr(after, f.name)
        ]
        if fields:
            needed.append(f"[{section}] {', '.join(fields)}")
    return needed


def _show(value: Any) -> str:
    return " ".join(value) if isinstance(value, tuple) else repr(value)
