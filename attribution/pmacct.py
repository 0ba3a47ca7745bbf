"""Answers in pmacct 1.7.7's JSON shape, and pmacct's AS-path rules as a model.

Why: a pipeline that reads pmacct's print/Kafka JSON (``as_src``, ``peer_as_dst``,
``as_path`` as ``"64500_64496_{64505,64510}"`` ...) should be able to switch to
this service without touching its consumers. ``to_pmacct`` turns one flow-JSON
record (input fields plus our answer, docs/flow-json.md) into pmacct's field
names and conventions: 0, ``""``, ``0.0.0.0``/``::`` for none, never null.
docs/pmacct.md lists every mapping and every remaining difference.

The AS-path functions are a port of pmacct 1.7.7's rules (bgp_aspath.c: sets
sorted and deduplicated, sequences merged, the printed string; bgp_util.c:
``evaluate_last_asn``, ``evaluate_first_asn``), so tests can hold our
``as_set_policy = "highest"`` answers against what pmacct would say. No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ribd.attributes import AS_CONFED_SEQUENCE, AS_CONFED_SET, AS_SEQUENCE, AS_SET

Segment = tuple[int, Sequence[int]]

# pmacct prints these standard communities by name (bgp_community.c).
_WELL_KNOWN = {
    0x00000000: "internet",
    0xFFFFFF01: "no-export",
    0xFFFFFF02: "no-advertise",
    0xFFFFFF03: "local-AS",
}
_DELIMITERS = {AS_SET: "{}", AS_CONFED_SET: "[]", AS_CONFED_SEQUENCE: "()"}


def normalise(segments: Iterable[Segment]) -> list[tuple[int, list[int]]]:
    """pmacct's interned form: sets sorted without duplicates, adjacent sequences merged."""
    out: list[tuple[int, list[int]]] = []
    for kind, asns in segments:
        values = sorted(set(asns)) if kind in (AS_SET, AS_CONFED_SET) else list(asns)
        if out and kind == AS_SEQUENCE and out[-1][0] == AS_SEQUENCE:
            out[-1][1].extend(values)
        else:
            out.append((kind, values))
    return out


def as_path_text(segments: Iterable[Segment]) -> str:
    """The AS path as pmacct prints it (with spaces; its JSON writes them as ``_``)."""
    parts = []
    for kind, asns in normalise(segments):
        if kind == AS_SEQUENCE:
            parts.append(" ".join(map(str, asns)))
        else:
            sep = " " if kind == AS_CONFED_SEQUENCE else ","
            start, end = _DELIMITERS[kind]
            parts.append(start + sep.join(map(str, asns)) + end)
    return " ".join(parts)


def last_asn(segments: Iterable[Segment]) -> int:
    """pmacct's origin (``evaluate_last_asn``): the last AS printed, 0 for an empty path."""
    last = 0
    for _, asns in normalise(segments):
        if asns:
            last = asns[-1]
    return last


def first_asn(text: str, skip_subas: bool = False) -> int:
    """pmacct's peer AS (``evaluate_first_asn``) read from the printed path.

    The first blank- or ``)``-delimited token as a number: ``{...}`` or ``[...]``
    reads as 0, ``(65001`` as 65001. With ``bgp_peer_as_skip_subas`` a leading
    confederation token is skipped once, and the next token is taken.
    """

    def number(token: str) -> int:
        digits = ""
        for ch in token.lstrip(" \t"):
            if not ch.isdigit():
                break
            digits += ch
        return int(digits) if digits else 0

    start, first, rounds = 0, 0, 0
    while True:
        idx = start
        while idx < len(text) and text[idx] not in " )":
            idx += 1
        token = text[start:idx]
        sub_as = token.startswith("(")
        asn = number(token[1:] if sub_as else token)
        if skip_subas and sub_as:
            while idx < len(text) and text[idx] in " )":
                idx += 1
            if idx != len(text) - 1:
                start = idx
                if rounds == 0:
                    first = asn
                rounds += 1
                continue
        if first and (not asn or sub_as):
            asn = first
        return asn


def flat_segments(path: Sequence[int | Sequence[int]]) -> list[Segment]:
    """Flow JSON's AS path (ints, a set as a list) back to segments."""
    out: list[Segment] = []
    for item in path:
        if isinstance(item, int):
            out.append((AS_SEQUENCE, (item,)))
        else:
            out.append((AS_SET, tuple(item)))
    return out


def _communities(values: Sequence[str]) -> str:
    numbers = set()
    for text in values:
        high, low = text.split(":")
        numbers.add((int(high) << 16) | int(low))
    return "_".join(_WELL_KNOWN.get(n, f"{n >> 16}:{n & 0xFFFF}") for n in sorted(numbers))


def _large_communities(values: Sequence[str]) -> str:
    triples = sorted({tuple(int(x) for x in text.split(":")) for text in values})
    return "_".join(f"{a}:{b}:{c}" for a, b, c in triples)


def _net(prefix: str | None, none: str) -> tuple[str, int]:
    if not prefix:
        return none, 0
    net, _, length = prefix.partition("/")
    return net, int(length)


# Input fields of a flow record and their pmacct names (kept when present).
_INPUT_NAMES = (
    ("src_addr", "ip_src"),
    ("dst_addr", "ip_dst"),
    ("exporter", "peer_ip_src"),
    ("in_if", "iface_in"),
    ("out_if", "iface_out"),
    ("src_mac", "mac_src"),
    ("packets", "packets"),
    ("bytes", "bytes"),
    ("sampling_rate", "sampling_rate"),
)


def to_pmacct(record: dict) -> dict:
    """One flow-JSON record (input fields + answer) in pmacct 1.7.7's JSON names.

    Values are the service's answer (so ``as_set_policy``, ``local_as`` and
    overrides apply); only names and the spelling of "none" change. A record
    answered with an error keeps ``error`` and ``error_code`` (pmacct has no
    such record: consumers that must not see new keys should drop them).
    """
    src = str(record.get("src_addr", ""))
    dst = str(record.get("dst_addr", ""))
    zero = "::" if ":" in src or ":" in dst else "0.0.0.0"
    out: dict = {}
    for ours, theirs in _INPUT_NAMES:
        if ours in record:
            out[theirs] = record[ours]
    net_src, mask_src = _net(record.get("src_prefix"), zero)
    net_dst, mask_dst = _net(record.get("dst_prefix"), zero)
    dst_path = as_path_text(flat_segments(record.get("dst_as_path") or []))
    src_path = as_path_text(flat_segments(record.get("src_as_path") or []))
    out.update(
        {
            "as_src": record.get("src_origin_as", 0),
            "as_dst": record.get("dst_origin_as", 0),
            "peer_as_src": record.get("src_peer_as", 0),
            "peer_as_dst": record.get("dst_peer_as", 0),
            "peer_ip_dst": record.get("dst_next_hop") or zero,
            "as_path": dst_path.replace(" ", "_"),
            "as_path_src": src_path.replace(" ", "_"),
            "comms": _communities(record.get("dst_communities") or ()),
            "comms_src": _communities(record.get("src_communities") or ()),
            "lcomms": _large_communities(record.get("dst_large_communities") or ()),
            "lcomms_src": _large_communities(record.get("src_large_communities") or ()),
            "local_pref": record.get("dst_local_pref") or 0,
            "local_pref_src": record.get("src_local_pref") or 0,
            "med": record.get("dst_med") or 0,
            "med_src": record.get("src_med") or 0,
            "net_src": net_src,
            "mask_src": mask_src,
            "net_dst": net_dst,
            "mask_dst": mask_dst,
        }
    )
    if record.get("error_code"):
        out["error"] = record.get("error")
        out["error_code"] = record["error_code"]
    return out


__all__ = [
    "as_path_text",
    "first_asn",
    "flat_segments",
    "last_asn",
    "normalise",
    "to_pmacct",
]
