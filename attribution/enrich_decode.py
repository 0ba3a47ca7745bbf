"""The fast path of `attribution enrich`'s reader: one msgspec decode per record.

A line that is one JSON object is decoded straight into :data:`Fields`, a
struct naming every field any format's mapping reads, typed as collectors
write them (strings, integers), and skipping the rest in C. Its format is
told from which fields are present, as :func:`attribution.flowformats.detect`
does, and a ``_fast_*`` function makes its row of :data:`FLOW_FIELDS`, as
the format's mapping would. Whatever these functions do not expect they
hand back (None, or a failed decode) to the generic path, which alone
decides what is wrong with a record (tests/attribution/test_enrich_columns.py
pins that both give the same rows and errors).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import msgspec

from attribution.answers import FLAG_NAMES
from attribution.flowformats import NO_HOPS, NO_MACS
from attribution.reports.records import INPUT_FIELDS

FLOW_FIELDS = INPUT_FIELDS  # exporter, src_addr, dst_addr, in_if, out_if, src_mac,
# next_hop, bytes, packets, sampling_rate, time

# The answer's columns in the order both outputs begin with: the JSON record's
# answer fields (ANSWER_FIELDS) and the CSV columns (enrich_writers) read this
# one tuple, so a column renamed or added here is so in both.
ROUTE_COLUMNS = (
    "router",
    "src_origin_as",
    "src_peer_as",
    "dst_origin_as",
    "dst_peer_as",
    "src_origin_provenance",
    "src_peer_provenance",
    "dst_origin_provenance",
    "dst_peer_provenance",
    "src_prefix",
    "dst_prefix",
    "src_as_path",
    "dst_as_path",
)
ANSWER_FIELDS = (
    *ROUTE_COLUMNS,
    "dst_communities",
    "dst_large_communities",
    "dst_local_pref",
    "dst_med",
    "dst_next_hop",
    "src_communities",
    "src_large_communities",
    "src_local_pref",
    "src_med",
    "src_next_hop",
    "override",
    *FLAG_NAMES.values(),
    "error",
    "error_code",
)
ANSWER_SET = frozenset(ANSWER_FIELDS)

_U = msgspec.UNSET
_UT = msgspec.UnsetType
# An integer as orjson (the generic path) reads one: outside these bounds it
# gives a float, which the mappings refuse or keep as a float. msgspec would
# give an int, so a record's fate would hang on which path (and which format's
# struct, the last record's) read it: such a record takes the generic path
# (so do those in 2**63 .. 2**64 - 1: msgspec bounds stop at int64's).
_Int = Annotated[int, msgspec.Meta(ge=-(1 << 63), le=(1 << 63) - 1)]
_Time = _Int | float | str | None | _UT


_STR = str | _UT
_INT = _Int | _UT
_MAC = str | _Int | _UT

# Every field a mapping reads, as collectors type them; absent fields are UNSET.
_FIELD_TYPES: tuple[tuple[str, Any], ...] = (
    # native (docs/flow-json.md); goflow2 shares src_addr .. sampling_rate
    ("exporter", _STR),
    ("src_addr", _STR),
    ("dst_addr", _STR),
    ("in_if", _INT),
    ("out_if", _INT),
    ("src_mac", _MAC),
    ("next_hop", _STR),
    ("bytes", _INT),
    ("packets", _INT),
    ("sampling_rate", _INT),
    ("time", _Time),
    # goflow2
    ("sampler_address", _STR),
    ("bgp_next_hop", _STR),
    ("time_flow_end_ns", _INT),
    ("time_received_ns", _INT),
    # pmacct
    ("peer_ip_src", _STR),
    ("ip_src", _STR),
    ("ip_dst", _STR),
    ("iface_in", _INT),
    ("iface_out", _INT),
    ("mac_src", _STR),
    ("peer_ip_dst", _STR),
    ("event_type", _STR),
    ("timestamp_end", _Time),
    ("timestamp_start", _Time),
    ("stamp_inserted", _Time),
    ("stamp_updated", _Time),
    ("as_src", _INT),
    ("as_dst", _INT),
    ("peer_as_src", _INT),
    ("peer_as_dst", _INT),
    # nfdump
    ("type", str | None | _UT),
    ("export_sysid", _INT),
    ("ip4_router", _STR),
    ("ip6_router", _STR),
    ("src4_addr", _STR),
    ("src6_addr", _STR),
    ("dst4_addr", _STR),
    ("dst6_addr", _STR),
    ("input_snmp", _INT),
    ("output_snmp", _INT),
    ("in_src_mac", _MAC),
    ("bgp4_next_hop", _STR),
    ("bgp6_next_hop", _STR),
    ("in_bytes", _INT),
    ("in_packets", _INT),
    ("first", _Time),
    ("last", _Time),
)
# ... and the answer names as fields no value can fill: a record that has one
# fails the decode, and the generic path drops the field (the answer replaces it)
Fields = msgspec.defstruct(
    "_Fields",
    [
        *((name, kind, _U) for name, kind in _FIELD_TYPES),
        *((name, _UT, _U) for name in ANSWER_FIELDS),
    ],
)
decode = msgspec.json.Decoder(Fields).decode
FAST_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)

# Per format, the fields as its collector writes them, in that order. msgspec
# finds a struct field by scanning its fields from the last one matched: a
# key in order costs one comparison, a key the struct lacks a scan of every
# field. So each format gets a struct of its own: its fields in the
# collector's order (the ones no mapping reads kept as Raw, not parsed), the
# fields that tell the formats apart (so :func:`fast_format` answers as on
# :data:`Fields`), and the answer names (a record with one fails the decode
# and takes the generic path). Half the decode time of :data:`Fields` on a
# goflow2 line; the rows are the same (each format's reader is pinned against
# the generic path by tests/attribution/test_enrich_columns.py).
_ORDER: dict[str, str] = {  # space-separated
    "goflow2": (
        "type time_received_ns sequence_num sampling_rate sampler_address time_flow_start_ns "
        "time_flow_end_ns bytes packets src_addr dst_addr etype proto src_port dst_port in_if "
        "out_if src_mac dst_mac src_vlan dst_vlan vlan_id ip_tos forwarding_status ip_ttl "
        "ip_flags tcp_flags icmp_type icmp_code ipv6_flow_label fragment_id fragment_offset "
        "src_as dst_as next_hop next_hop_as src_net dst_net bgp_next_hop bgp_communities "
        "as_path mpls_ttl mpls_label mpls_ip observation_domain_id observation_point_id"
    ),
    "pmacct": (
        "event_type seq peer_ip_src peer_ip_dst iface_in iface_out mac_src mac_dst vlan "
        "as_src as_dst peer_as_src peer_as_dst ip_src ip_dst port_src port_dst tcp_flags "
        "ip_proto tos sampling_rate timestamp_start timestamp_end timestamp_arrival "
        "stamp_inserted stamp_updated packets flows bytes writer_id"
    ),
    "nfdump": (
        "type sampled export_sysid first last received in_packets in_bytes proto tcp_flags "
        "src_port dst_port fwd_status src_tos src4_addr src6_addr dst4_addr dst6_addr "
        "input_snmp output_snmp src_as dst_as src_mask dst_mask src_net dst_net in_src_mac "
        "out_dst_mac bgp4_next_hop bgp6_next_hop ip4_next_hop ip6_next_hop ip4_router "
        "ip6_router label"
    ),
    "native": (
        "exporter src_addr dst_addr in_if out_if src_mac next_hop bytes packets sampling_rate time"
    ),
}
_DETECT = (  # space-separated
    "exporter sampler_address time_flow_end_ns peer_ip_src ip_src event_type export_sysid "
    "src4_addr src6_addr ip4_router type"
)


def _format_struct(kind: str) -> Any:
    types = dict(_FIELD_TYPES)
    names = list(dict.fromkeys([*_ORDER[kind].split(), *_DETECT.split()]))
    return msgspec.defstruct(
        f"_{kind.capitalize()}Fields",
        [
            *((name, types.get(name, msgspec.Raw | _UT), _U) for name in names),
            *((name, _UT, _U) for name in ANSWER_FIELDS if name not in names),
        ],
    )


DECODERS: dict[str, Callable[[bytes], Any]] = {
    kind: msgspec.json.Decoder(_format_struct(kind)).decode for kind in _ORDER
}


def fast_format(r: Any) -> str | None:
    """:func:`attribution.flowformats.detect` on the struct (absent = UNSET)."""
    if r.exporter is not _U:
        return "native"
    if r.sampler_address is not _U or r.time_flow_end_ns is not _U:
        return "goflow2"
    if r.peer_ip_src is not _U or r.ip_src is not _U or r.event_type is not _U:
        return "pmacct"
    if (
        r.export_sysid is not _U
        or r.src4_addr is not _U
        or r.src6_addr is not _U
        or r.ip4_router is not _U
    ):
        return "nfdump"
    return None


def _v(value: Any, default: Any = None) -> Any:
    return default if value is _U else value


def _fast_mac(value: Any) -> str | bool | None:
    """flowformats._mac for the usual cases; False: let the generic path decide."""
    if value is _U or value in NO_MACS:
        return None
    if type(value) is str:
        return value
    return False


def _fast_hop(value: Any) -> Any:
    return None if value is _U or value in NO_HOPS else value


def _fast_goflow2(r: Any) -> tuple | None:
    if not r.sampler_address or not r.src_addr or not r.dst_addr:  # UNSET is falsy too
        return None
    mac = r.src_mac
    if mac is _U or mac in NO_MACS:
        mac = None
    elif type(mac) is not str:
        return None  # an integer MAC: flowformats._mac decides
    hop = r.bgp_next_hop
    if hop is _U or hop in NO_HOPS:
        hop = None
    end = r.time_flow_end_ns or r.time_received_ns  # UNSET and 0 are falsy
    return (
        r.sampler_address,
        r.src_addr,
        r.dst_addr,
        0 if r.in_if is _U else r.in_if,
        0 if r.out_if is _U else r.out_if,
        mac,
        hop,
        0 if r.bytes is _U else r.bytes,
        0 if r.packets is _U else r.packets,
        0 if r.sampling_rate is _U else r.sampling_rate,
        end / 1e9 if end else None,
    )


def _pmacct_time(r: Any) -> Any:
    for v in (r.timestamp_end, r.timestamp_start, r.stamp_inserted, r.stamp_updated):
        if (
            v is not _U
            and v not in (None, "", 0, "0")
            and not (isinstance(v, str) and v.startswith("0000"))
        ):
            return v
    return None


def _fast_pmacct(r: Any) -> tuple | None:
    if not r.peer_ip_src or r.bytes is _U:
        return None
    mac = r.mac_src
    mac = None if mac is _U or not mac or mac == "00:00:00:00:00:00" else mac
    return (
        r.peer_ip_src,
        _v(r.ip_src, ""),
        _v(r.ip_dst, ""),
        _v(r.iface_in, 0),
        _v(r.iface_out, 0),
        mac,
        _fast_hop(r.peer_ip_dst),
        r.bytes,
        _v(r.packets, 0),
        _v(r.sampling_rate, 0),
        _pmacct_time(r),
    )


def _fast_nfdump(r: Any) -> tuple | None:
    exporter = _v(r.ip4_router) or _v(r.ip6_router)
    src = _v(r.src4_addr) or _v(r.src6_addr)
    dst = _v(r.dst4_addr) or _v(r.dst6_addr)
    if not exporter or not src or not dst:
        return None
    mac = _fast_mac(r.in_src_mac)
    if mac is False:
        return None
    return (
        exporter,
        src,
        dst,
        _v(r.input_snmp, 0),
        _v(r.output_snmp, 0),
        mac,
        _fast_hop(_v(r.bgp4_next_hop) or _v(r.bgp6_next_hop)),
        _v(r.in_bytes, 0),
        _v(r.in_packets, 0),
        1,
        _v(r.last) or _v(r.first),
    )


def _fast_native(r: Any) -> tuple | None:
    return (
        _v(r.exporter),
        _v(r.src_addr),
        _v(r.dst_addr),
        _v(r.in_if),
        _v(r.out_if),
        _v(r.src_mac),
        _v(r.next_hop),
        _v(r.bytes),
        _v(r.packets),
        _v(r.sampling_rate),
        _v(r.time),
    )


FAST: dict[str, Callable[[Any], tuple | None]] = {
    "goflow2": _fast_goflow2,
    "pmacct": _fast_pmacct,
    "nfdump": _fast_nfdump,
    "native": _fast_native,
}


def fast_marker(kind: str, r: Any) -> bool:
    if kind == "pmacct":
        return r.event_type in ("purge_init", "purge_close")
    if kind == "nfdump":
        return r.type not in (_U, None, "FLOW")
    return False
