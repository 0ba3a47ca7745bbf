"""The operator config: one TOML file, validated whole before anything uses it.

TOML because it is in the standard library (``tomllib``), typed (a port is an
int, a MAC is a string; no YAML "Norway problem"), and plain enough to diff
and review. Every error names the file, the line where we can find it, the
key path, and what is wrong. A reload that fails keeps the running config.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attribution.addresses import format_mac as format_mac  # re-exported
from attribution.addresses import parse_mac as parse_mac
from attribution.answers import MAX_MESSAGE_BYTES as MAX_MESSAGE_BYTES
from attribution.config_api import KEYS as API_KEYS
from attribution.config_api import METRICS_KEYS, MetricsSettings, parse_api, tls_paths
from attribution.config_api import ApiSettings as ApiSettings  # re-exported
from attribution.config_file import MAX_CONFIG_BYTES as MAX_CONFIG_BYTES  # re-exported
from attribution.config_file import MAX_NESTING as MAX_NESTING
from attribution.config_file import Checker as _Checker
from attribution.config_file import ConfigError as ConfigError
from attribution.config_file import parse_toml, read_config_text
from attribution.config_routers import KEYS as ROUTER_KEYS
from attribution.config_routers import RouterConfig as RouterConfig  # re-exported
from attribution.config_routers import parse_routers, prefix_limit
from attribution.ix_config import KEYS as IX_KEYS
from attribution.ix_config import IxConfig, parse_ix
from attribution.reports.config import ReportConfigError, load_report_config
from attribution.routecache import DEFAULT_BUDGET
from ribd.addpath import MAX_PATHS_LIMIT, MAX_PATHS_PER_PREFIX
from ribd.exabgp import config_problems as exabgp_config_problems
from ribd.settings import MAX_PREFIXES_IPV4, MAX_PREFIXES_IPV6, BgpSettings
from ribd.workers import plan_warnings, resolve_workers, spool_warnings

AS_SET_POLICIES = ("aggregator", "highest")
MAX_BATCH_FLOWS = 65_536
RELAY_SPOOL_BYTES = 256 * 1024 * 1024
LOG_FORMATS = ("text", "json")
RECENT_FLOWS = 10_000  # default [service] recent_flows
GRPC_LISTEN = "127.0.0.1:50051"  # default [service] grpc_listen


@dataclass(frozen=True, slots=True)
class OverrideRule:
    """Traffic entering on (exporter, in_if), optionally from src_mac, is from peer_as."""

    name: str
    exporter: str  # canonical address
    in_if: int
    peer_as: int
    src_mac: bytes | None = None  # 6 bytes; None: any MAC
    description: str = ""


@dataclass(frozen=True, slots=True)
class Config:
    path: str
    local_as: int
    router_id: str
    grpc_listen: str
    as_set_policy: str
    max_batch_flows: int
    max_message_bytes: int
    snapshot_path: str
    snapshot_interval: float
    default_fallback: tuple[str, ...]
    routers: tuple[RouterConfig, ...]
    overrides: tuple[OverrideRule, ...]
    bgp: BgpSettings
    report: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    log_format: str = "text"
    ready_timeout: float = 600.0
    metrics: MetricsSettings = field(default_factory=MetricsSettings)  # [metrics]
    recent_flows: int = 10_000  # flow keys kept for `overrides diff` (attribution.flowring)
    route_cache_routes: int = DEFAULT_BUDGET  # route objects views keep (attribution.routecache)
    api: ApiSettings = field(default_factory=ApiSettings)
    ix: tuple[IxConfig, ...] = ()  # [[ix]] (attribution.ix_config)
    # SHA-256 of the file's text: which file is in effect, the same on every replica
    # given it (attribution_config_info, `attribution check`).
    digest: str = ""

    def router_by_name(self, name: str) -> RouterConfig | None:
        return next((r for r in self.routers if r.name == name), None)

    @property
    def metrics_listen(self) -> str:
        """HOST:PORT of the Prometheus endpoint; "" = off."""
        return self.metrics.listen


# Every key each section accepts ("" = the top level). One list, used by the
# validator's unknown-key check and by the config fuzz test, so a new key is
# added once and both see it. [report] has its own validator (reports.config).
SECTION_KEYS: dict[str, frozenset[str]] = {
    "": frozenset({"service", "bgp", "routers", "overrides", "report", "metrics", "api", "ix"}),
    "service": frozenset(
        {
            "local_as",
            "router_id",
            "grpc_listen",
            "as_set_policy",
            "max_batch_flows",
            "max_message_bytes",
            "snapshot_path",
            "snapshot_interval",
            "fallback",
            "log_format",
            "ready_timeout",
            "recent_flows",
            "route_cache_routes",
        }
    ),
    "bgp": frozenset(
        {
            "listen_address",
            "listen_port",
            "exabgp",
            "exabgp_command",
            "feed_socket",
            "stale_hold_time",
            "restart_hold_time",
            "work_dir",
            "converge_quiet_time",
            "relay_spool_bytes",
            "reread_wave",
            "max_paths_per_prefix",
            "max_prefixes_ipv4",
            "max_prefixes_ipv6",
            "api_mode",
            "workers",
        }
    ),
    "routers": ROUTER_KEYS,  # checked by attribution.config_routers
    "overrides": frozenset({"name", "exporter", "in_if", "src_mac", "peer_as", "description"}),
    "ix": frozenset(IX_KEYS),  # checked by attribution.ix_config
    "metrics": METRICS_KEYS,
    "api": frozenset(API_KEYS),  # checked by attribution.config_api
}


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:  # 0: any free port
        raise ValueError(f"{value!r} is not HOST:PORT")
    ipaddress.ip_address(host)
    return host, int(port)


def load_config(path: str | Path) -> Config:
    """Read and validate the whole file; raise ConfigError naming what is wrong."""
    path = str(path)
    return parse_config(read_config_text(path), path)


def parse_config(text: str, path: str = "<config>") -> Config:
    """Check the whole file in parts (``Checker.part``): one ConfigError names every
    problem found, in file order."""
    data = parse_toml(text, path)
    c = _Checker(path, text)
    top = ("", None, None)
    c.no_unknown(data, top, SECTION_KEYS[""])
    warnings: list[str] = []
    svc = c.soft(None, c.get, data, top, "service", dict)
    # Missing or not a table: said once; its keys are not each a problem of their own.
    s = _service(c if svc is not None else _Checker(path, text), svc or {})
    bgp = c.soft({}, c.get, data, top, "bgp", dict, {})
    b = _bgp(c, bgp)
    before = len(c.problems)
    routers, neighbors = parse_routers(c, data, s["local_as"], s["default_fallback"])
    routers_whole = len(c.problems) == before
    overrides = _overrides(c, data, s["local_as"], warnings)
    # [[ix]] names routers: checked once they all hold (a broken one is no "unknown router").
    ix = c.soft((), parse_ix, c, data, routers, warnings) if routers_whole else ()
    report = c.soft({}, c.get, data, top, "report", dict, {})
    if "report" in data:
        _report(c, data)
    metrics = c.soft(MetricsSettings(), _metrics, c, data)
    api = c.soft(ApiSettings(), parse_api, c, data)
    bgp_settings = BgpSettings(
        local_as=s["local_as"],
        router_id=s["router_id"],
        neighbors=tuple(neighbors),
        **b,
    )
    if not c.problems:  # these read the settings as a whole: only once each part holds
        for where, why in exabgp_config_problems(bgp_settings):
            c.problems.append(c.fail(where, why))
    c.raise_problems()
    warnings += plan_warnings(bgp_settings)
    warnings += spool_warnings(bgp_settings)
    return Config(
        path=path,
        routers=tuple(routers),
        overrides=overrides,
        bgp=bgp_settings,
        report=report,
        warnings=tuple(warnings),
        metrics=metrics,
        api=api,
        ix=ix,
        digest=hashlib.sha256(text.encode()).hexdigest(),
        **s,
    )


def _service(c: _Checker, svc: dict) -> dict[str, Any]:
    """``[service]``, key by key (a bad key keeps its default, its problem kept)."""
    sw = ("service", None)
    c.no_unknown(svc, sw, SECTION_KEYS["service"])
    key = functools.partial(c.keyed, svc, sw)
    between = "must be between {} and {}".format
    return {
        "local_as": c.soft(0, c.asn, svc, sw, "local_as"),
        "router_id": c.soft("0.0.0.0", c.ipv4, svc, sw, "router_id"),
        "grpc_listen": c.soft(GRPC_LISTEN, _listen, c, svc, sw, "grpc_listen", GRPC_LISTEN),
        "as_set_policy": key(c.choice, "as_set_policy", "aggregator", AS_SET_POLICIES),
        "max_batch_flows": key(
            c.bounded, "max_batch_flows", MAX_BATCH_FLOWS, 1, 1_000_000, between(1, 1000000)
        ),
        "max_message_bytes": key(
            c.bounded,
            "max_message_bytes",
            MAX_MESSAGE_BYTES,
            64 * 1024,
            1024**3,
            between("64 KiB", "1 GiB"),
        ),
        "snapshot_path": key(c.string, "snapshot_path", ""),
        "snapshot_interval": key(c.seconds, "snapshot_interval", 300.0, 10, 86400),
        "default_fallback": tuple(key(c.listed, "fallback", [])),
        "log_format": key(c.choice, "log_format", "text", LOG_FORMATS),
        "ready_timeout": key(c.seconds, "ready_timeout", 600.0, 0, 86400),
        "recent_flows": key(
            c.bounded, "recent_flows", RECENT_FLOWS, 0, 10_000_000, between(0, 10000000)
        ),
        "route_cache_routes": key(
            c.bounded, "route_cache_routes", DEFAULT_BUDGET, 0, 16_777_216, between(0, 16777216)
        ),
    }


def _listen(c: _Checker, data: dict, where: tuple, key: str, default: str) -> str:
    """A HOST:PORT to listen on ("" where the default is "": off)."""
    value = c.get(data, where, key, str, default)
    if value or default:
        try:
            _host_port(value)
        except ValueError as exc:
            raise c.fail((where[0], where[1], key), str(exc)) from None
    return value


def _bgp(c: _Checker, bgp: dict) -> dict[str, Any]:
    """``[bgp]`` but its neighbors, key by key, as BgpSettings' fields."""
    bw = ("bgp", None)
    c.no_unknown(bgp, bw, SECTION_KEYS["bgp"])
    key = functools.partial(c.keyed, bgp, bw)
    limit = functools.partial(prefix_limit, c)
    modes = ("supervised", "external")
    exabgp_mode = key(c.choice, "exabgp", "supervised", modes, "supervised or external")
    commands = key(c.listed, "exabgp_command", [])
    if not all(isinstance(x, str) for x in commands):
        c.problems.append(c.fail(("bgp", None, "exabgp_command"), "must be a list of strings"))
        commands = []
    return {
        "listen_address": key(c.address, "listen_address", "127.0.0.1"),
        "listen_port": c.soft(179, _port, c, bgp, bw),
        "exabgp_mode": exabgp_mode,
        "api_mode": key(c.choice, "api_mode", "raw", ("raw", "json"), "raw or json"),
        "exabgp_command": tuple(commands),
        "stale_hold_time": key(c.seconds, "stale_hold_time", 0.0, 0, 86400),
        "restart_hold_time": key(c.seconds, "restart_hold_time", 300.0, 0, 86400),
        "workers": c.soft(1, _workers, c, bgp, exabgp_mode),
        "feed_socket": key(c.string, "feed_socket", ""),
        "work_dir": key(c.string, "work_dir", ""),
        "converge_quiet_time": key(c.seconds, "converge_quiet_time", 60.0, 0, 86400),
        "relay_spool_bytes": key(
            c.bounded,
            "relay_spool_bytes",
            RELAY_SPOOL_BYTES,
            2**20,
            64 * 2**30,
            "must be between 1 MiB and 64 GiB",
        ),
        "reread_wave": c.soft(0, _reread_wave, c, bgp, bw),
        "max_paths_per_prefix": key(
            c.bounded,
            "max_paths_per_prefix",
            MAX_PATHS_PER_PREFIX,
            1,
            MAX_PATHS_LIMIT,
            f"must be between 1 and {MAX_PATHS_LIMIT}",
        ),
        "max_prefixes_ipv4": key(limit, "max_prefixes_ipv4", MAX_PREFIXES_IPV4),
        "max_prefixes_ipv6": key(limit, "max_prefixes_ipv6", MAX_PREFIXES_IPV6),
    }


def _port(c: _Checker, bgp: dict, bw: tuple) -> int:
    port = c.get(bgp, bw, "listen_port", int, 179)
    if not 0 < port < 65536:
        raise c.fail(("bgp", None, "listen_port"), f"{port} is not a TCP port")
    return port


def _workers(c: _Checker, bgp: dict, exabgp_mode: str) -> int:
    try:
        return resolve_workers(bgp.get("workers", 1), exabgp_mode)
    except ValueError as exc:
        raise c.fail(("bgp", None, "workers"), str(exc)) from None


def _reread_wave(c: _Checker, bgp: dict, bw: tuple) -> int:
    """[bgp] reread_wave: routers of a worker re-read at once after a feed gap;
    "auto" (0): as many full tables as relay_spool_bytes holds (ribd.workers)."""
    value = bgp.get("reread_wave", "auto")
    if value == "auto":
        return 0
    wave = c.get(bgp, bw, "reread_wave", int)
    if not 1 <= wave <= 10_000:
        raise c.fail(("bgp", None, "reread_wave"), 'must be "auto" or between 1 and 10000')
    return wave


def _metrics(c: _Checker, data: dict) -> MetricsSettings:
    metrics = c.get(data, ("", None, None), "metrics", dict, {})
    w = ("metrics", None)
    c.no_unknown(metrics, w, SECTION_KEYS["metrics"])
    listen = c.soft("", _listen, c, metrics, w, "listen", "")
    paths = c.soft({}, tls_paths, c, metrics, "metrics", ("token_file",))
    if metrics.get("listen", "") == "" and any(paths.values()):  # off, not broken
        key = next(k for k, v in paths.items() if v)
        c.problems.append(c.fail(("metrics", None, key), "needs listen (the endpoint is off)"))
    return MetricsSettings(listen, **paths)


def _overrides(c: _Checker, data: dict, local_as: int, warnings: list[str]) -> tuple:
    """Every ``[[overrides]]`` rule, each checked on its own (every broken key named)."""
    rules: dict[int, OverrideRule] = {}  # by index in the file (a broken rule: none)
    seen_names: dict[str, int] = {}
    first_any: dict[tuple[str, int], int] = {}  # (exporter, in_if) -> first any-MAC rule
    first_mac: dict[tuple[tuple[str, int], bytes], int] = {}  # ... -> first rule for a MAC
    for i, o in enumerate(c.soft([], c.get, data, ("", None, None), "overrides", list, [])):
        with c.part():
            rule = _override(c, i, o, seen_names)
            if rule is None:
                continue
            # The first earlier rule that takes the same traffic: one for any MAC
            # on this port, or one for this very MAC (whichever came first).
            port = (rule.exporter, rule.in_if)
            candidates = [first_any.get(port)]
            if rule.src_mac is not None:
                candidates.append(first_mac.get((port, rule.src_mac)))
            earlier = min((e for e in candidates if e is not None), default=None)
            if earlier is not None:
                warnings.append(
                    f"{c.path}:{c.line_of('overrides', i, None)}: overrides[{i}] "
                    f"({rule.name!r}) never matches: {rules[earlier].name!r} comes first and "
                    "matches the same traffic"
                )
            if rule.src_mac is None:
                first_any.setdefault(port, i)
            else:
                first_mac.setdefault((port, rule.src_mac), i)
            rules[i] = rule
    return tuple(rules.values())


def _override(c: _Checker, i: int, o: Any, seen_names: dict[str, int]) -> OverrideRule | None:
    """One rule, key by key (every broken key named); None when any was broken."""
    w = ("overrides", i)
    mark = c.entry(o, w, SECTION_KEYS["overrides"])
    name = c.soft("", _override_name, c, i, o, seen_names)
    exporter = c.soft("", c.address, o, w, "exporter")
    in_if = c.soft(0, _override_in_if, c, i, o)
    mac = c.soft(None, _override_mac, c, i, o)
    peer_as = c.soft(0, c.asn, o, w, "peer_as")
    description = c.keyed(o, w, c.string, "description", "")
    if len(c.problems) > mark:
        return None
    return OverrideRule(name, exporter, in_if, peer_as, mac, description)


def _override_name(c: _Checker, i: int, o: dict, seen_names: dict[str, int]) -> str:
    name = c.string(o, ("overrides", i), "name", f"override-{i}")
    if name in seen_names:
        raise c.fail(("overrides", i, "name"), f"{name!r} is already overrides[{seen_names[name]}]")
    seen_names[name] = i
    return name


def _override_in_if(c: _Checker, i: int, o: dict) -> int:
    in_if = c.get(o, ("overrides", i), "in_if", int)
    if not 0 <= in_if <= 0xFFFFFFFF:
        raise c.fail(("overrides", i, "in_if"), f"{in_if} is not a 32-bit ifIndex")
    return in_if


def _override_mac(c: _Checker, i: int, o: dict) -> bytes | None:
    mac_text = c.string(o, ("overrides", i), "src_mac", "")
    try:
        return parse_mac(mac_text) if mac_text else None
    except ValueError as exc:
        raise c.fail(("overrides", i, "src_mac"), str(exc)) from None


_REPORT_LINK = re.compile(r"report\.links\[(\d+)\](?:\.(\w+))?")
_REPORT_TABLE = re.compile(r'(report\.(?:peering|sampling|as_names))(?:\.(?:"([^"]*)"|(\w+)))?')
_REPORT_KEY = re.compile(r"(report|service)\.(\w+)")


def _report(c: _Checker, data: dict) -> None:
    """``[report]`` checked by the report's own validator, each of its problems located
    like ours and kept in ``c.problems``."""
    try:
        load_report_config(data, c.path)
    except ReportConfigError as exc:
        for problem in exc.problems:  # each kept, as the parts of the rest of the file
            key, why = problem.key or "report", problem.problem or str(problem)
            line = None
            if m := _REPORT_LINK.match(key):
                line = c.line_of("report.links", int(m[1]), m[2]) or c.line_of(
                    "report", None, "links"
                )
            elif m := _REPORT_TABLE.match(key):
                line = c.line_of(m[1], None, m[2] or m[3]) or c.line_of(
                    "report", None, m[1].split(".")[1]
                )
            elif m := _REPORT_KEY.match(key):
                line = c.line_of(m[1], None, m[2])
            c.problems.append(c.error(line or c.line_of("report", None, None), key, why))
