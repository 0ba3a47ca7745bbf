"""What each collector's JSON record means: one mapping per format, no I/O.

A mapping turns one decoded record of a collector's JSON output into a
flow-JSON-shaped dict (docs/flow-json.md): ``exporter``, ``src_addr``,
``dst_addr``, ``in_if``, ``out_if``, ``src_mac``, ``next_hop``, ``bytes``,
``packets``, ``sampling_rate``, ``time``. The same mappings serve
``attribution enrich`` (records from a stream) and the reports' readers
(records from files), so a field means one thing everywhere.

Formats and their documented field names:

- ``goflow2``: goflow2's JSON formatter (netsampler/goflow2, docs/protocols.md):
  ``sampler_address``, ``src_addr``, ``dst_addr``, ``in_if``, ``out_if``,
  ``src_mac`` (``aa:bb:..`` string, or the 64-bit integer older releases and
  ``render: none`` print), ``bgp_next_hop``, ``bytes``, ``packets``,
  ``sampling_rate``, ``time_flow_end_ns`` (nanoseconds).
- ``pmacct``: the print plugin's ``print_output: json`` (also Kafka/AMQP):
  ``peer_ip_src``, ``ip_src``, ``ip_dst``, ``iface_in``, ``iface_out``,
  ``mac_src``, ``bytes``, ``packets``, ``sampling_rate``, ``timestamp_end`` ...
- ``nfdump``: ``nfdump -o json`` (an array of pretty-printed objects) and
  ``-o json-log`` (one object per line): ``ip4_router``/``ip6_router``,
  ``src4_addr``/``src6_addr``, ``dst4_addr``/``dst6_addr``, ``input_snmp``,
  ``output_snmp``, ``in_src_mac``, ``bgp4_next_hop``/``bgp6_next_hop``,
  ``in_bytes``, ``in_packets``, ``last`` (local time, as nfdump prints it).
- ``native``: our own flow JSON, taken as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from attribution.reports.records import INPUT_FIELDS, RecordError

FORMATS = ("goflow2", "pmacct", "nfdump", "native")
NO_MACS = ("", "00:00:00:00:00:00", 0)
NO_HOPS = ("", "0.0.0.0", "::", None)


def to_int(value: Any, key: str) -> int:
    """An integer field; a digit string is accepted (CSV), an empty one is 0."""
    if type(value) is int:
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        if text == "":
            return 0
    raise RecordError(f"{key}: expected an integer, got {str(value)[:40]!r}")


def to_asn(value: Any, key: str) -> int:
    if isinstance(value, str) and value.upper().startswith("AS"):
        value = value[2:]
    return to_int(value, key)


_PATH_SPLIT = re.compile(r"[\s_,]+")


def pmacct_path(value: Any) -> list[int]:
    if isinstance(value, list):
        return [v for v in value if type(v) is int]
    if not isinstance(value, str) or not value:
        return []
    return [int(tok) for tok in _PATH_SPLIT.split(value) if tok.isdigit()]


def _required(rec: Mapping[str, Any], key: str, hint: str = "") -> Any:
    value = rec.get(key)
    if value in (None, ""):
        raise RecordError(f"{key}: missing{hint}")
    return value


def _mac(value: Any, key: str) -> str | None:
    """A MAC as ``aa:bb:cc:dd:ee:ff``; goflow2 may print it as a 48-bit integer."""
    if value in NO_MACS or value is None:
        return None
    if type(value) is int:
        if not 0 <= value < 1 << 48:
            raise RecordError(f"{key}: {value} is not a 48-bit MAC address")
        return ":".join(f"{b:02x}" for b in value.to_bytes(6, "big"))
    if isinstance(value, str):
        return value
    raise RecordError(f"{key}: expected a MAC address, got {str(value)[:40]!r}")


# --------------------------------------------------------------------------- pmacct

PMACCT_TIME_KEYS = ("timestamp_end", "timestamp_start", "stamp_inserted", "stamp_updated")


def pmacct_time(rec: Mapping[str, Any]) -> Any:
    """Flow end if aggregated (``timestamp_end``), else its start, else the
    ``print_history`` bin (``stamp_inserted``), else ``stamp_updated``; None if none."""
    for key in PMACCT_TIME_KEYS:
        v = rec.get(key)
        if v not in (None, "", 0, "0") and not (isinstance(v, str) and v.startswith("0000")):
            return v
    return None


def pmacct_to_flow(rec: Mapping[str, Any], require_time: bool = True) -> dict[str, Any]:
    """One pmacct record (JSON key names) as a flow dict, with pmacct's own answers.

    The reports need a time (``require_time``); enrichment does not.
    """
    exporter = _required(rec, "peer_ip_src", " (add peer_src_ip to the pmacct aggregate)")
    when = pmacct_time(rec)
    if when is None and require_time:
        raise RecordError("no time: needs timestamp_start/_end or print_history (stamp_inserted)")
    flow: dict[str, Any] = {
        "exporter": exporter,
        "src_addr": rec.get("ip_src", ""),
        "dst_addr": rec.get("ip_dst", ""),
        "in_if": to_int(rec.get("iface_in", 0), "iface_in"),
        "out_if": to_int(rec.get("iface_out", 0), "iface_out"),
        "bytes": to_int(rec.get("bytes"), "bytes"),
        "packets": to_int(rec.get("packets", 0), "packets"),
        "sampling_rate": to_int(rec.get("sampling_rate", 0), "sampling_rate"),
        "time": when,
        "src_origin_as": to_asn(rec.get("as_src", 0), "as_src"),
        "dst_origin_as": to_asn(rec.get("as_dst", 0), "as_dst"),
        "src_peer_as": to_asn(rec.get("peer_as_src", 0), "peer_as_src"),
        "dst_peer_as": to_asn(rec.get("peer_as_dst", 0), "peer_as_dst"),
        "src_origin_provenance": "pmacct",
        "dst_origin_provenance": "pmacct",
        "src_as_path": pmacct_path(rec.get("src_as_path")),
        "dst_as_path": pmacct_path(rec.get("as_path")),
    }
    mac = rec.get("mac_src")
    if mac and mac != "00:00:00:00:00:00":
        flow["src_mac"] = mac
    return flow


def pmacct_input(rec: Mapping[str, Any]) -> dict[str, Any]:
    """pmacct's record as a flow to attribute: its input fields only."""
    flow = pmacct_to_flow(rec, require_time=False)
    flow = {k: flow[k] for k in INPUT_FIELDS if k in flow}
    hop = rec.get("peer_ip_dst")  # pmacct's peer_dst_ip primitive: the BGP next hop
    if hop not in NO_HOPS:
        flow["next_hop"] = hop
    return flow


# --------------------------------------------------------------------------- goflow2


def goflow2_to_flow(rec: Mapping[str, Any]) -> dict[str, Any]:
    """goflow2's JSON record as a flow dict.

    ``bgp_next_hop`` (the BGP next hop, NetFlow field 18/63, sFlow extended
    gateway) picks the ADD-PATH path; ``next_hop`` is the IP next hop (15/62)
    and says nothing about BGP paths, so it is not used.
    """
    end = rec.get("time_flow_end_ns") or rec.get("time_received_ns")
    flow: dict[str, Any] = {
        "exporter": _required(rec, "sampler_address"),
        "src_addr": _required(rec, "src_addr"),
        "dst_addr": _required(rec, "dst_addr"),
        "in_if": to_int(rec.get("in_if", 0), "in_if"),
        "out_if": to_int(rec.get("out_if", 0), "out_if"),
        "bytes": to_int(rec.get("bytes", 0), "bytes"),
        "packets": to_int(rec.get("packets", 0), "packets"),
        "sampling_rate": to_int(rec.get("sampling_rate", 0), "sampling_rate"),
        "time": to_int(end, "time_flow_end_ns") / 1e9 if end else None,
    }
    mac = _mac(rec.get("src_mac"), "src_mac")
    if mac:
        flow["src_mac"] = mac
    hop = rec.get("bgp_next_hop")
    if hop not in NO_HOPS:
        flow["next_hop"] = hop
    return flow


# --------------------------------------------------------------------------- nfdump


def nfdump_to_flow(rec: Mapping[str, Any]) -> dict[str, Any]:
    """An ``nfdump -o json`` record as a flow dict.

    ``ip4_router``/``ip6_router`` is the exporter (nfcapd stores it per
    record); ``in_bytes``/``in_packets`` are the counters (``out_*`` belong to
    the reverse direction of bidirectional NSEL flows); nfcapd renormalises
    sampled counters already, hence ``sampling_rate`` 1. ``last`` is local
    time without a zone, as nfdump prints it: kept as it is.
    """
    exporter = rec.get("ip4_router") or rec.get("ip6_router")
    if not exporter:
        raise RecordError("ip4_router/ip6_router: missing (the exporter's address)")
    src = rec.get("src4_addr") or rec.get("src6_addr")
    dst = rec.get("dst4_addr") or rec.get("dst6_addr")
    if not src:
        raise RecordError("src4_addr/src6_addr: missing")
    if not dst:
        raise RecordError("dst4_addr/dst6_addr: missing")
    flow: dict[str, Any] = {
        "exporter": exporter,
        "src_addr": src,
        "dst_addr": dst,
        "in_if": to_int(rec.get("input_snmp", 0), "input_snmp"),
        "out_if": to_int(rec.get("output_snmp", 0), "output_snmp"),
        "bytes": to_int(rec.get("in_bytes", 0), "in_bytes"),
        "packets": to_int(rec.get("in_packets", 0), "in_packets"),
        "sampling_rate": 1,
        "time": rec.get("last") or rec.get("first"),
    }
    mac = _mac(rec.get("in_src_mac"), "in_src_mac")
    if mac:
        flow["src_mac"] = mac
    hop = rec.get("bgp4_next_hop") or rec.get("bgp6_next_hop")
    if hop not in NO_HOPS:
        flow["next_hop"] = hop
    return flow


def native_to_flow(rec: Mapping[str, Any]) -> dict[str, Any]:
    """Our own flow JSON: checked by the client library (bad_record, bad_address)."""
    return rec  # type: ignore[return-value]


MAPPINGS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "goflow2": goflow2_to_flow,
    "pmacct": pmacct_input,
    "nfdump": nfdump_to_flow,
    "native": native_to_flow,
}


def detect(rec: Mapping[str, Any]) -> str | None:
    """The format a decoded record is in, from its field names; None if unknown."""
    if "exporter" in rec:
        return "native"
    if "sampler_address" in rec or "time_flow_end_ns" in rec:
        return "goflow2"
    if "peer_ip_src" in rec or "ip_src" in rec or "event_type" in rec:
        return "pmacct"
    if "export_sysid" in rec or "src4_addr" in rec or "src6_addr" in rec or "ip4_router" in rec:
        return "nfdump"
    return None


def is_marker(fmt: str, rec: Mapping[str, Any]) -> bool:
    """A record that carries no flow: pmacct's print_markers, nfdump's events."""
    if fmt == "pmacct":
        return rec.get("event_type") in ("purge_init", "purge_close")
    if fmt == "nfdump":
        return rec.get("type") not in (None, "FLOW")
    return False


_TRAILING_COMMA = re.compile(rb",\s*}\s*,?\s*$")


class ObjectSplitter:
    """Lines -> JSON object texts, for one-object-per-line streams and for
    ``nfdump -o json``'s pretty-printed array (``[``, ``{``, fields, ``},``, ``]``).

    Feed it each line; it returns ``(first line number, object bytes)`` when a
    line completes an object, None otherwise. nfdump ends objects with a
    trailing field separator (``"ip4_router" : "..",`` then ``}``): removed.
    A multi-line object longer than ``max_lines`` is cut off (returned as
    is, so it fails to decode and is reported), never buffered without end.
    """

    def __init__(self, max_lines: int = 1000) -> None:
        self.parts: list[bytes] = []
        self.start = 0
        self.max_lines = max_lines

    def feed(self, number: int, line: bytes) -> tuple[int, bytes] | None:
        text = line.strip()
        if self.parts:
            self.parts.append(text)
            if text.startswith(b"}") or len(self.parts) > self.max_lines:
                return self._done()
            return None
        if not text or text in (b"[", b"]", b","):
            return None
        if text.startswith(b"[{") or text.startswith(b",{"):
            text = text[1:]
        if text == b"{":
            self.parts = [text]
            self.start = number
            return None
        return number, _clean(text)

    def feed_many(self, number: int, line: bytes) -> list[tuple[int, bytes]]:
        """:meth:`feed`, and a line that opens an object while one is pending
        ends the pending one there (a cut-off record, reported as it is)
        instead of being swallowed by it with the lines after it."""
        if self.parts and line.lstrip()[:1] == b"{":
            out = [self._done()]
            done = self.feed(number, line)
            return [*out, done] if done is not None else out
        done = self.feed(number, line)
        return [] if done is None else [done]

    def _done(self) -> tuple[int, bytes]:
        text = b"".join(self.parts)
        self.parts = []
        return self.start, _clean(text)

    def flush(self) -> tuple[int, bytes] | None:
        """At end of input: an unfinished object, to be reported."""
        return self._done() if self.parts else None


def _clean(text: bytes) -> bytes:
    if not text.startswith(b"{"):
        return text  # not an object: decoded and reported as what it is
    if text.endswith(b"]"):
        text = text[:-1].rstrip()
    if text.endswith(b","):
        text = text[:-1].rstrip()
    if _TRAILING_COMMA.search(text):
        text = _TRAILING_COMMA.sub(b"}", text)
    return text
