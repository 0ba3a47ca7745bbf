"""ExaBGP JSON attributes and NLRI lists -> validated fields: the generic checks. No I/O.

Split out of ``ribd.parser``: every check of an update line's values, in
Python, one value at a time. This is the reference behaviour: the typed
path (``ribd.json_typed``) accepts only what these accept and builds the
same fields, and it hands anything it is unsure of back to them.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

from ribd.attributes import AS_CONFED_SEQUENCE, AS_CONFED_SET, AS_SEQUENCE, AS_SET, Segment
from ribd.checks import BadValue, ipv4, ipv4_list, show, text, u32, u32_list
from ribd.prefixes import _LENGTHS, _V4_HOST_MASK, BadPrefix, normalise_prefix

_pton = socket.inet_pton
_AF_INET = socket.AF_INET
_V4_MASK = _V4_HOST_MASK
_U32 = 0xFFFFFFFF

FAMILY_VERSION = {"ipv4 unicast": 4, "ipv6 unicast": 6}
_ORIGINS = {"igp": "igp", "egp": "egp", "incomplete": "incomplete"}
SEGMENT_KINDS = {
    "as-sequence": AS_SEQUENCE,
    "as-set": AS_SET,
    "as-confed-sequence": AS_CONFED_SEQUENCE,
    "as-confed-set": AS_CONFED_SET,
}


class BadAttributes(BadValue):
    """An attribute that fails its check: the UPDATE's routes are treated as withdrawn.

    The checks of ``ribd.checks`` raise its base class, BadValue; inside
    ``attribute_fields`` either means the same.
    """


def _as_path_v5(raw: Any) -> tuple[Segment, ...]:
    if type(raw) is not dict:
        raise BadAttributes("as-path is neither a segment dict (5.0) nor a list (4.2)")
    segments = []
    try:
        order = sorted(raw, key=int)
    except ValueError:
        raise BadAttributes("as-path segment keys are not numbers") from None
    for key in order:
        seg = raw[key]
        if type(seg) is not dict:
            raise BadAttributes(f"as-path segment {key} is not an object")
        kind = SEGMENT_KINDS.get(seg.get("element"))
        if kind is None:
            element = seg.get("element")
            raise BadAttributes(f"as-path segment {key} has unknown type {show(element)}")
        asns = u32_list(seg.get("value"), f"as-path segment {key}")
        if not asns:
            raise BadAttributes(f"as-path segment {key} is empty")
        segments.append((kind, asns))
    return tuple(segments)


def _as_path_v4(attrs: dict) -> tuple[Segment, ...]:
    segments: list[Segment] = []
    for key, kind in (
        ("confederation-path", AS_CONFED_SEQUENCE),
        ("confederation-set", AS_CONFED_SET),
        ("as-path", AS_SEQUENCE),
        ("as-set", AS_SET),
    ):
        if key in attrs:
            asns = u32_list(attrs[key], key)
            if asns:
                segments.append((kind, asns))
    return tuple(segments)


def _communities(raw: Any) -> tuple[int, ...]:
    if type(raw) is not list:
        raise BadAttributes("community is not a list")
    out = []
    for c in raw:
        if (
            type(c) is not list
            or len(c) != 2
            or type(c[0]) is not int
            or type(c[1]) is not int
            or not (0 <= c[0] <= 0xFFFF and 0 <= c[1] <= 0xFFFF)
        ):
            raise BadAttributes(f"bad community {show(c)}")
        out.append((c[0] << 16) | c[1])
    return tuple(out)


def _large_communities(raw: Any) -> tuple[tuple[int, int, int], ...]:
    if type(raw) is not list:
        raise BadAttributes("large-community is not a list")
    out = []
    for c in raw:
        if type(c) is not list or len(c) != 3:
            raise BadAttributes(f"bad large community {show(c)}")
        out.append(
            (
                u32(c[0], "large community"),
                u32(c[1], "large community"),
                u32(c[2], "large community"),
            )
        )
    return tuple(out)


def _extended_communities(raw: Any) -> tuple[str, ...]:
    if type(raw) is not list:
        raise BadAttributes("extended-community is not a list")
    out = []
    for c in raw:
        if type(c) is dict and type(c.get("string")) is str:
            out.append(c["string"])
        elif type(c) is dict and type(c.get("value")) is int:
            out.append(hex(c["value"]))
        else:
            raise BadAttributes(f"bad extended community {show(c)}")
    return tuple(out)


# An attribute set without its next hop, in make_attributes' (and the snapshot
# row's) order: as_path, origin, | next_hop goes here |, local_pref, med,
# communities, large_communities, extended_communities, originator_id,
# cluster_list, atomic_aggregate, aggregator.
Fields = tuple


def attribute_fields(attrs: Any) -> Fields:
    """Validate ExaBGP's attribute object; raise BadValue (BadAttributes) naming the fault."""
    if type(attrs) is not dict:
        raise BadAttributes("attribute is not an object")
    origin = _ORIGINS.get(attrs.get("origin"))  # type: ignore[arg-type]
    if origin is None:
        raise BadAttributes(f"missing or bad origin {show(attrs.get('origin'))}")
    raw_path = attrs.get("as-path")
    if type(raw_path) is dict:
        as_path = _as_path_v5(raw_path)
    elif raw_path is None or type(raw_path) is list:
        # 4.2 layout; a missing AS_PATH is an empty path (originated inside
        # our AS), possibly with confederation segments of its own.
        as_path = _as_path_v4(attrs)
    else:
        raise BadAttributes("as-path is neither a segment dict (5.0) nor a list (4.2)")
    local_pref = attrs.get("local-preference")
    med = attrs.get("med")
    cluster = ipv4_list(attrs.get("cluster-list", ()), "cluster-list")
    originator_id = ipv4(attrs.get("originator-id", ""), "originator-id", empty=True)
    atomic = attrs.get("atomic-aggregate", False)
    if type(atomic) is not bool:
        raise BadAttributes("atomic-aggregate is not a boolean")
    return (
        as_path,
        origin,
        None if local_pref is None else u32(local_pref, "local-preference"),
        None if med is None else u32(med, "med"),
        _communities(attrs["community"]) if "community" in attrs else (),
        _large_communities(attrs["large-community"]) if "large-community" in attrs else (),
        (
            _extended_communities(attrs["extended-community"])
            if "extended-community" in attrs
            else ()
        ),
        originator_id,
        cluster,
        atomic,
        text(attrs.get("aggregator", ""), "aggregator"),
    )


def path_id(raw: Any) -> int:
    if type(raw) is int and 0 <= raw <= _U32:
        return raw
    if type(raw) is str:
        parts = raw.split(".")
        if len(parts) == 4 and all(p.isdigit() and int(p) <= 255 for p in parts):
            a, b, c, d = (int(p) for p in parts)
            return (a << 24) | (b << 16) | (c << 8) | d
    raise BadPrefix(f"bad path-information {show(raw)}")


def nlri_list(entries: Any, version: int) -> tuple[list[str], list[int] | None]:
    """Validate one NLRI list; returns prefixes and (ADD-PATH only) path ids.

    This is the per-prefix hot loop of ingest, hence the inlined IPv4 check.
    """
    if type(entries) is not list:
        raise BadPrefix("NLRI list is not a list")
    prefixes: list[str] = []
    path_ids: list[int] | None = None
    append = prefixes.append
    for entry in entries:
        text = entry.get("nlri") if type(entry) is dict else None
        if type(text) is not str:
            raise BadPrefix(f"bad NLRI entry {show(entry)}")
        if version == 4:
            addr, _, length_text = text.partition("/")
            length = _LENGTHS.get(length_text, 99)
            try:
                bad = length > 32 or int.from_bytes(_pton(_AF_INET, addr), "big") & _V4_MASK[length]
            except OSError:
                bad = True
            if bad:
                normalise_prefix(text, 4)  # raises with the precise reason
            append(text)
        else:
            append(normalise_prefix(text, 6))
        if "path-information" in entry:
            if path_ids is None:
                path_ids = [0] * (len(prefixes) - 1)
            path_ids.append(path_id(entry["path-information"]))
        elif path_ids is not None:
            path_ids.append(0)
    return prefixes, path_ids


def is_link_local(next_hop: str) -> bool:
    return next_hop[:3].lower() in ("fe8", "fe9", "fea", "feb")  # fe80::/10


def with_next_hop(fields: Fields, next_hop: str) -> tuple:
    """The full attribute row (make_attributes' argument order) for one next hop."""
    return (fields[0], fields[1], sys.intern(next_hop), *fields[2:])


def opt_tuple(values: list[int] | None) -> tuple[int, ...] | None:
    return None if values is None else tuple(values)
