"""Normalized flow rows: the one small typed shape every input format becomes.

Readers produce flow-JSON-shaped dicts (see docs/flow-json.md); attribution adds
the answer fields; :class:`Normalizer` turns an attributed dict into a
:data:`Row` tuple that the aggregation backend stages. No I/O here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from attribution.reports.config import MAX_ASN, MAX_SAMPLING_RATE, ReportConfig

MAX_BYTES = 2**48  # ~281 TB in one flow record: anything above is corrupt
MAX_PACKETS = 2**40
MAX_IF_INDEX = 2**32 - 1
MIN_TS = 0
MAX_TS = 2**33  # year 2242


class Row(NamedTuple):
    """One staged flow. Column order is the staging table's column order.

    Link ids and the sampling rate are resolved here (dict lookups) rather than
    joined in SQL: the aggregation then runs on integer columns only.
    """

    ts: int
    in_link: int  # index into ReportConfig.links of (exporter, in_if); -1 = not a link
    out_link: int
    bytes: int  # as exported (sampled)
    packets: int
    rate: int  # sampling rate to apply: record's, else exporter default, else global default
    src_origin_as: int
    src_peer_as: int
    src_via_as: int
    dst_origin_as: int
    dst_peer_as: int
    dst_via_as: int
    src_local: bool
    dst_local: bool
    file_id: int
    flows: int = 1  # flow records this row stands for (>1: a ClickHouse rollup row)


# (name, DuckDB type). Kept here so the staging schema and Row cannot drift apart.
ROW_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ts", "BIGINT"),
    ("in_link", "INTEGER"),
    ("out_link", "INTEGER"),
    ("bytes", "BIGINT"),
    ("packets", "BIGINT"),
    ("rate", "BIGINT"),
    ("src_origin_as", "BIGINT"),
    ("src_peer_as", "BIGINT"),
    ("src_via_as", "BIGINT"),
    ("dst_origin_as", "BIGINT"),
    ("dst_peer_as", "BIGINT"),
    ("dst_via_as", "BIGINT"),
    ("src_local", "BOOLEAN"),
    ("dst_local", "BOOLEAN"),
    ("file_id", "INTEGER"),
    ("flows", "BIGINT"),
)
assert tuple(name for name, _ in ROW_COLUMNS) == Row._fields

ANSWER_FIELDS = ("src_origin_as", "src_peer_as", "dst_origin_as", "dst_peer_as")
INPUT_FIELDS = (
    "exporter",
    "src_addr",
    "dst_addr",
    "in_if",
    "out_if",
    "src_mac",
    "next_hop",
    "bytes",
    "packets",
    "sampling_rate",
    "time",
)


class RecordError(ValueError):
    """A record cannot be used; the message says which field and why."""


class OutsideWindow(Exception):
    """The record is valid but outside ``--from``/``--to``: counted, not an error."""


def is_attributed(d: Mapping[str, Any]) -> bool:
    """A flow line that already carries the answer fields of ``attribution resolve``."""
    return "dst_peer_as" in d or "src_origin_as" in d


def input_part(d: Mapping[str, Any]) -> dict[str, Any]:
    """The flow-JSON input fields only, as sent for (re-)attribution."""
    return {k: d[k] for k in INPUT_FIELDS if k in d and d[k] is not None}


def _int(d: Mapping[str, Any], key: str, hi: int, default: int = 0) -> int:
    v = d.get(key)
    if v is None:
        return default
    if type(v) is int:
        if 0 <= v <= hi:
            return v
        raise RecordError(f"{key}: {v} out of range 0..{hi}")
    if isinstance(v, float) and v.is_integer() and 0 <= v <= hi:
        return int(v)
    raise RecordError(f"{key}: expected a non-negative integer, got {_show(v)}")


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def via_as(path: Any, origin: int) -> int:
    """The AS right behind our neighbor in an AS path (prepends skipped).

    For traffic over transit this is the network that handed it to our
    provider: the second kind of peering candidate besides the origin.
    A path of one distinct AS means the neighbor is the origin.
    """
    if type(path) is not list or not path:
        return origin
    first = path[0]
    for hop in path:
        if hop != first:
            return hop if type(hop) is int and 0 < hop <= MAX_ASN else origin
    return origin


class TimeParser:
    """Turns the time notations of the supported formats into unix seconds.

    Numbers are unix seconds. Strings are RFC 3339, or ``YYYY-MM-DD HH:MM:SS[.f]``
    without zone (nfdump, pmacct) read in the configured ``input_timezone``, or
    a decimal unix timestamp (pmacct ``timestamps_since_epoch``).
    """

    def __init__(self, tz: str = "UTC") -> None:
        self.tz: tzinfo = UTC if tz in ("UTC", "Etc/UTC") else ZoneInfo(tz)

    def __call__(self, value: Any, key: str = "time") -> int:
        if type(value) is int or type(value) is float:
            if value != value or not MIN_TS <= value < MAX_TS:
                raise RecordError(f"{key}: {_show(value)} is not a plausible unix time")
            return int(value)
        if isinstance(value, str) and value:
            text = value.strip()
            if text[0].isdigit() and text.replace(".", "", 1).isdigit():
                return self(float(text), key)
            try:
                dt = datetime.fromisoformat(text)
            except ValueError:
                raise RecordError(f"{key}: cannot parse time {_show(value)}") from None
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=self.tz)
            return self(dt.timestamp(), key)
        if value is None:
            raise RecordError(f"{key}: missing (a report needs each flow's time)")
        raise RecordError(f"{key}: cannot parse time {_show(value)}")


class Normalizer:
    """Attributed flow dict -> :class:`Row`; enforces ranges so hostile input is rejected.

    Sampling: the record's ``sampling_rate`` when > 0 (1 = unsampled), else the
    exporter's ``[report.sampling]`` rate, else ``default_sampling_rate``.
    ``local`` is true when the attribution says so (provenance ``local``) or
    the origin is one of our ASes: that is how direction is decided for flows
    that touch no configured link.
    """

    def __init__(
        self,
        config: ReportConfig,
        start: int | None = None,
        end: int | None = None,
    ) -> None:
        self.local_as = config.local_as
        self.start = start
        self.end = end
        self.time = TimeParser(config.input_timezone)
        self._exporters: dict[str, str] = {}
        self.links = {
            key: i for i, key in enumerate((lk.exporter, lk.if_index) for lk in config.links)
        }
        self.sampling = dict(config.sampling)
        self.default_rate = config.default_sampling_rate

    def exporter(self, value: Any) -> str:
        cached = self._exporters.get(value) if isinstance(value, str) else None
        if cached is not None:
            return cached
        if not isinstance(value, str):
            raise RecordError(
                "exporter: missing" if value is None else f"exporter: not a string: {_show(value)}"
            )
        try:
            norm = ipaddress.ip_address(value).compressed
        except ValueError:
            raise RecordError(f"exporter: not an IP address: {_show(value)}") from None
        if len(self._exporters) < 65536:
            self._exporters[value] = norm
        return norm

    def __call__(self, d: Mapping[str, Any], file_id: int) -> Row:
        if type(d) is not dict:
            raise RecordError(f"expected a JSON object, got {type(d).__name__}")
        err = d.get("error")
        if err:
            code = d.get("error_code") or "error"
            raise RecordError(f"attribution {code}: {_show(err)}")
        ts = self.time(d.get("time"))
        if (self.start is not None and ts < self.start) or (
            self.end is not None and ts >= self.end
        ):
            raise OutsideWindow
        src_origin = _int(d, "src_origin_as", MAX_ASN)
        dst_origin = _int(d, "dst_origin_as", MAX_ASN)
        local = self.local_as
        exporter = self.exporter(d.get("exporter"))
        links = self.links
        rate = _int(d, "sampling_rate", MAX_SAMPLING_RATE)
        if rate == 0:
            rate = self.sampling.get(exporter, self.default_rate)
        return Row(
            ts,
            links.get((exporter, _int(d, "in_if", MAX_IF_INDEX)), -1),
            links.get((exporter, _int(d, "out_if", MAX_IF_INDEX)), -1),
            _int(d, "bytes", MAX_BYTES),
            _int(d, "packets", MAX_PACKETS),
            rate,
            src_origin,
            _int(d, "src_peer_as", MAX_ASN),
            via_as(d.get("src_as_path"), src_origin),
            dst_origin,
            _int(d, "dst_peer_as", MAX_ASN),
            via_as(d.get("dst_as_path"), dst_origin),
            d.get("src_origin_provenance") == "local" or src_origin in local,
            d.get("dst_origin_provenance") == "local" or dst_origin in local,
            file_id,
        )
