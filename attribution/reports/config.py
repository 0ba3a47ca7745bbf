"""The ``[report]`` table of the service's TOML config: links, prices, sampling.

The service config is one TOML file; the report owns the top-level ``[report]``
table. Validation is strict (unknown keys are errors) because a typo in a price
key would otherwise silently produce a wrong bill. Every error names the file,
the key path and what is wrong.
"""

from __future__ import annotations

import ipaddress
import math
import tomllib
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from attribution.config_file import KeptProblems

LINK_KINDS = ("transit", "ix", "pni", "customer")
BILLING_RULES = ("max", "in", "out", "sum")
MAX_ASN = 2**32 - 1
MAX_SAMPLING_RATE = 2**31 - 1


class ReportConfigError(ValueError):
    """A ``[report]`` setting is invalid; the message names file, key path and problem.

    ``key`` and ``problem`` hold the two parts, so that the service's config
    loader (attribution.config), which validates ``[report]`` with
    ``load_report_config``, can add the line number and report it in its own style.
    """

    def __init__(
        self,
        message: str,
        key: str = "",
        problem: str = "",
        problems: tuple[ReportConfigError, ...] = (),
    ) -> None:
        super().__init__(message)
        self.key = key
        self.problem = problem
        # Several at once (each link checked on its own): each with its key and problem.
        self.problems = problems or (self,)


@dataclass(frozen=True)
class LinkConfig:
    """One external link (exporter + ifIndex) and what it costs."""

    name: str
    exporter: str
    if_index: int
    kind: str
    peer_as: tuple[int, ...] = ()
    price_per_mbps: float = 0.0
    commit_mbps: float = 0.0
    monthly_fee: float = 0.0
    capacity_mbps: float | None = None
    billing: str = "max"
    description: str = ""

    @property
    def single_peer_as(self) -> int:
        """The neighbor AS when the link has exactly one (used when attribution has none)."""
        return self.peer_as[0] if len(self.peer_as) == 1 else 0


@dataclass(frozen=True)
class PeeringConfig:
    """Prices of the alternatives to transit, used to estimate candidate savings."""

    ix_price_per_mbps: float | None = None
    ix_monthly_fee: float = 0.0
    pni_monthly_fee: float | None = None
    pni_price_per_mbps: float = 0.0
    pni_min_mbps: float = 1000.0
    already_peered: frozenset[int] = frozenset()


@dataclass(frozen=True)
class ReportConfig:
    """Everything the report needs from config; defaults make a config optional."""

    path: str = "<defaults>"
    local_as: frozenset[int] = frozenset()
    currency: str = "EUR"
    bucket_seconds: int = 300
    percentile: float = 95.0
    default_sampling_rate: int = 1
    sampling: Mapping[str, int] = field(default_factory=dict)
    links: tuple[LinkConfig, ...] = ()
    peering: PeeringConfig = field(default_factory=PeeringConfig)
    as_names: Mapping[int, str] = field(default_factory=dict)
    input_timezone: str = "UTC"
    nfdump_counters_scaled: bool = True
    top_n: int = 20
    table_rows: int = 1000

    def link_by_key(self) -> dict[tuple[str, int], LinkConfig]:
        return {(link.exporter, link.if_index): link for link in self.links}

    def connected_ases(self) -> frozenset[int]:
        """ASes we already exchange traffic with directly: never peering candidates."""
        ases: set[int] = set(self.peering.already_peered) | set(self.local_as)
        for link in self.links:
            ases.update(link.peer_as)
        return frozenset(ases)


REPORT_KEYS = {
    "local_as",
    "currency",
    "bucket_seconds",
    "percentile",
    "default_sampling_rate",
    "sampling",
    "links",
    "peering",
    "as_names",
    "input_timezone",
    "nfdump_counters_scaled",
    "top_n",
    "table_rows",
}
LINK_PREFIX = "report.links"
LINK_KEYS = {
    "name",
    "exporter",
    "if_index",
    "kind",
    "peer_as",
    "price_per_mbps",
    "commit_mbps",
    "monthly_fee",
    "capacity_mbps",
    "billing",
    "description",
}
PEERING_KEYS = {
    "ix_price_per_mbps",
    "ix_monthly_fee",
    "pni_monthly_fee",
    "pni_price_per_mbps",
    "pni_min_mbps",
    "already_peered",
}


class _Checker(KeptProblems):
    """Small helpers that raise ReportConfigError with file and key path; ``part``
    keeps a part's first problem and goes on, ``raise_problems`` says them all."""

    kept = ReportConfigError

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[ReportConfigError] = []

    def raise_problems(self) -> None:
        problems = tuple(self.problems)
        if len(problems) == 1:
            raise problems[0]
        if problems:
            lines = [f"{self.path}: {len(problems)} problems in [report]:"]
            lines += [str(p) for p in problems]
            raise ReportConfigError("\n".join(lines), problems=problems)

    def fail(self, key: str, problem: str) -> ReportConfigError:
        return ReportConfigError(f"{self.path}: {key}: {problem}", key, problem)

    def table(self, value: Any, key: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(key, f"must be a table, got {_kind(value)}")
        return value

    def no_unknown(self, table: Mapping[str, Any], allowed: set[str], key: str) -> None:
        """Every unknown key is a problem of its own (kept): nothing is read from
        them, so the check goes on."""
        for name in table:
            if name not in allowed:
                known = ", ".join(sorted(allowed))
                self.problems.append(
                    self.fail(f"{key}.{name}", f"unknown key (known keys: {known})")
                )

    def integer(self, value: Any, key: str, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be an integer, got {_kind(value)}")
        if not lo <= value <= hi:
            raise self.fail(key, f"must be between {lo} and {hi}, got {value}")
        return value

    def number(self, value: Any, key: str, lo: float = 0.0, hi: float = 1e15) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"must be a number, got {_kind(value)}")
        if not math.isfinite(value) or not lo <= value <= hi:
            raise self.fail(key, f"must be a finite number between {lo:g} and {hi:g}, got {value}")
        return float(value)

    def string(self, value: Any, key: str, max_len: int = 200) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"must be a non-empty string, got {_kind(value)}")
        if len(value) > max_len:
            raise self.fail(key, f"must be at most {max_len} characters")
        return value

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {_kind(value)}")
        return value

    def asn(self, value: Any, key: str) -> int:
        if isinstance(value, str) and value.upper().startswith("AS"):
            value = value[2:]
            try:
                value = int(value)
            except ValueError:
                raise self.fail(key, "must be an AS number like 64500 or 'AS64500'") from None
        return self.integer(value, key, 1, MAX_ASN)

    def asn_list(self, value: Any, key: str) -> tuple[int, ...]:
        if isinstance(value, list):
            return tuple(self.asn(v, f"{key}[{i}]") for i, v in enumerate(value))
        return (self.asn(value, key),)

    def ip(self, value: Any, key: str) -> str:
        text = self.string(value, key, 64)
        try:
            return ipaddress.ip_address(text).compressed
        except ValueError:
            raise self.fail(key, f"must be an IP address, got {text!r}") from None


def _kind(value: Any) -> str:
    names = {bool: "a boolean", str: "a string", int: "an integer", float: "a number"}
    for typ, name in names.items():
        if type(value) is typ:
            return f"{name} ({value!r})" if typ is not str else f"{name} ({value[:40]!r})"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def load_report_config(data: Mapping[str, Any], path: str) -> ReportConfig:
    """Validate the parsed TOML of the whole service config and return its ``[report]``.

    A file without ``[report]`` yields defaults (the report still works without
    costs). ``local_as`` falls back to ``[service].local_as``.
    """
    c = _Checker(path)
    raw = data.get("report", {})
    report = c.table(raw, "report")
    c.no_unknown(report, REPORT_KEYS, "report")
    # Key by key, and each link on its own (``_Checker.part``): every problem is said.
    local_as: tuple[int, ...] = ()
    with c.part():
        if "local_as" in report:
            local_as = c.asn_list(report["local_as"], "report.local_as")
        else:
            service = data.get("service")
            if isinstance(service, Mapping) and "local_as" in service:
                local_as = c.asn_list(service["local_as"], "service.local_as")
    currency, bucket, percentile, default_rate = "EUR", 300, 95.0, 1  # kept if broken
    with c.part():
        currency = c.string(report.get("currency", "EUR"), "report.currency", 8)
    with c.part():
        bucket = c.integer(report.get("bucket_seconds", 300), "report.bucket_seconds", 1, 86400)
        if 86400 % bucket:
            raise c.fail(
                "report.bucket_seconds", f"must divide a day (86400 s) evenly, got {bucket}"
            )
    with c.part():
        percentile = c.number(report.get("percentile", 95), "report.percentile", 1, 100)
    with c.part():
        default_rate = c.integer(
            report.get("default_sampling_rate", 1),
            "report.default_sampling_rate",
            1,
            MAX_SAMPLING_RATE,
        )
    sampling: dict[str, int] = {}
    with c.part():
        for exporter, rate in c.table(report.get("sampling", {}), "report.sampling").items():
            key = f'report.sampling."{exporter}"'
            sampling[c.ip(exporter, key)] = c.integer(rate, key, 1, MAX_SAMPLING_RATE)
    links: tuple[LinkConfig, ...] = ()
    with c.part():
        links = _links(c, report.get("links", []))
    peering = PeeringConfig()
    with c.part():
        peering = _peering(c, report.get("peering", {}))
    names: dict[int, str] = {}
    with c.part():
        for asn, name in c.table(report.get("as_names", {}), "report.as_names").items():
            key = f'report.as_names."{asn}"'
            names[c.asn(asn if asn.upper().startswith("AS") else _int_or(asn), key)] = c.string(
                name, key, 100
            )
    tz = "UTC"
    with c.part():
        tz = c.string(report.get("input_timezone", "UTC"), "report.input_timezone", 64)
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise c.fail("report.input_timezone", f"unknown time zone {tz!r}") from None
    scaled, top_n, table_rows = True, 20, 1000
    with c.part():
        scaled = c.boolean(
            report.get("nfdump_counters_scaled", True), "report.nfdump_counters_scaled"
        )
    with c.part():
        top_n = c.integer(report.get("top_n", 20), "report.top_n", 1, 10000)
    with c.part():
        table_rows = c.integer(report.get("table_rows", 1000), "report.table_rows", 1, 1_000_000)
    c.raise_problems()
    return ReportConfig(
        path=path,
        local_as=frozenset(local_as),
        currency=currency,
        bucket_seconds=bucket,
        percentile=percentile,
        default_sampling_rate=default_rate,
        sampling=sampling,
        links=links,
        peering=peering,
        as_names=names,
        input_timezone=tz,
        nfdump_counters_scaled=scaled,
        top_n=top_n,
        table_rows=table_rows,
    )


def _int_or(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return text


def _links(c: _Checker, raw: Any) -> tuple[LinkConfig, ...]:
    if not isinstance(raw, list):
        raise c.fail("report.links", "must be an array of tables ([[report.links]])")
    links: list[LinkConfig] = []
    seen_names: dict[str, int] = {}
    seen_ports: dict[tuple[str, int], int] = {}
    for i, item in enumerate(raw):
        with c.part():  # each link on its own: its problems kept, the next checked
            link = _link(c, i, item, seen_names, seen_ports)
            if link is not None:
                links.append(link)
    return tuple(links)


def _link(
    c: _Checker,
    i: int,
    item: Any,
    seen_names: dict[str, int],
    seen_ports: dict[tuple[str, int], int],
) -> LinkConfig | None:
    """One link, key by key (every broken key named); None when any was broken."""
    key = f"{LINK_PREFIX}[{i}]"
    t = c.table(item, key)
    c.no_unknown(t, LINK_KEYS, key)
    mark = len(c.problems)
    for required in ("name", "exporter", "if_index", "kind"):
        if required not in t:
            c.problems.append(c.fail(f"{key}.{required}", "is required"))
    name = c.soft("", _link_name, c, t, key, i, seen_names) if "name" in t else ""
    exporter = c.soft(None, c.ip, t["exporter"], f"{key}.exporter") if "exporter" in t else None
    if_index = (
        c.soft(None, c.integer, t["if_index"], f"{key}.if_index", 0, 2**32 - 1)
        if "if_index" in t
        else None
    )
    if exporter is not None and if_index is not None:
        with c.part():
            port = (exporter, if_index)
            if port in seen_ports:
                raise c.fail(
                    f"{key}.if_index",
                    f"exporter {exporter} ifIndex {if_index} is already "
                    f"{LINK_PREFIX}[{seen_ports[port]}]",
                )
            seen_ports[port] = i
    kind = t.get("kind")
    if "kind" in t and kind not in LINK_KINDS:
        c.problems.append(
            c.fail(f"{key}.kind", f"must be one of {', '.join(LINK_KINDS)}, got {kind!r}")
        )
    billing = t.get("billing", "max")
    if billing not in BILLING_RULES:
        c.problems.append(
            c.fail(f"{key}.billing", f"must be one of {', '.join(BILLING_RULES)}, got {billing!r}")
        )
    peer_as = c.soft((), c.asn_list, t["peer_as"], f"{key}.peer_as") if "peer_as" in t else ()
    price, commit, fee = (
        c.soft(0.0, c.number, t.get(k, 0), f"{key}.{k}")
        for k in ("price_per_mbps", "commit_mbps", "monthly_fee")
    )
    capacity = t.get("capacity_mbps")
    if capacity is not None:
        capacity = c.soft(None, c.number, capacity, f"{key}.capacity_mbps", 1e-3)
    description = (
        c.soft("", c.string, t["description"], f"{key}.description", 500)
        if "description" in t
        else ""
    )
    if len(c.problems) > mark:
        return None
    return LinkConfig(
        name=name,
        exporter=exporter,
        if_index=if_index,
        kind=kind,
        peer_as=peer_as,
        price_per_mbps=price,
        commit_mbps=commit,
        monthly_fee=fee,
        capacity_mbps=capacity,
        billing=billing,
        description=description,
    )


def _link_name(c: _Checker, t: Mapping[str, Any], key: str, i: int, seen: dict[str, int]) -> str:
    name = c.string(t["name"], f"{key}.name", 100)
    if name in seen:
        raise c.fail(
            f"{key}.name", f"duplicate link name {name!r} (also {LINK_PREFIX}[{seen[name]}])"
        )
    seen[name] = i
    return name


def _peering(c: _Checker, raw: Any) -> PeeringConfig:
    """``[report.peering]``, key by key (every broken key named)."""
    k = "report.peering"
    t = c.table(raw, k)
    c.no_unknown(t, PEERING_KEYS, k)
    mark = len(c.problems)
    ix_price = t.get("ix_price_per_mbps")
    if ix_price is not None:
        ix_price = c.soft(None, c.number, ix_price, f"{k}.ix_price_per_mbps")
    pni_fee = t.get("pni_monthly_fee")
    if pni_fee is not None:
        pni_fee = c.soft(None, c.number, pni_fee, f"{k}.pni_monthly_fee")
    ix_fee, pni_price, pni_min = (
        c.soft(0.0, c.number, t.get(name, default), f"{k}.{name}")
        for name, default in (
            ("ix_monthly_fee", 0),
            ("pni_price_per_mbps", 0),
            ("pni_min_mbps", 1000),
        )
    )
    peered = t.get("already_peered", [])
    if not isinstance(peered, list):
        c.problems.append(c.fail(f"{k}.already_peered", "must be an array of AS numbers"))
        peered = []
    already = c.soft((), c.asn_list, peered, f"{k}.already_peered")
    if len(c.problems) > mark:
        return PeeringConfig()
    return PeeringConfig(
        ix_price_per_mbps=ix_price,
        ix_monthly_fee=ix_fee,
        pni_monthly_fee=pni_fee,
        pni_price_per_mbps=pni_price,
        pni_min_mbps=pni_min,
        already_peered=frozenset(already),
    )


def load_report_config_file(path: str) -> ReportConfig:
    """Read a TOML file (whole service config, or one with only ``[report]``)."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ReportConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ReportConfigError(f"{path}: not valid TOML: {exc}") from None
    return load_report_config(data, path)
