"""Flow records (JSON objects, proto Flow messages as dicts) -> checked columns.

Record validation lives apart from resolving so that every reader of records
(the service, the offline tools, the client, explain, the dry-run) rejects the
same records with the same error codes and messages naming the field: a bad
record gets ``bad_record``/``bad_address`` and placeholder columns, and the
good records around it are resolved as usual.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from attribution.addresses import (
    NO_MAC,
    NO_NEXT_HOP,
    V4_ZERO,
    canonical_exporter,
    pack_address,
    parse_mac,
)
from ribd.checks import show


class BadRecord(Exception):
    """A flow record that cannot be resolved: (code, message naming the field)."""

    def __init__(self, code: str, message: str) -> None:
        self.code, self.message = code, message


def rows_to_columns(
    flows: Sequence[dict],
) -> tuple[list[str], list[int], bytes, bytes, list[int], bytes, dict[int, tuple[str, str]]]:
    """Validate flow rows; bad rows get an error and placeholder columns."""
    exporters: list[str] = []
    exporter_ids: dict[str, int] = {}
    exporter: list[int] = []
    src = bytearray()
    dst = bytearray()
    in_if: list[int] = []
    macs = bytearray()
    any_mac = False
    bad: dict[int, tuple[str, str]] = {}
    zero16 = b"\x00" * 16
    for i, f in enumerate(flows):
        try:
            exp_c, s16, d16, iif, mac = validate_row(f)
            any_mac = any_mac or mac != NO_MAC
        except BadRecord as exc:
            bad[i] = (exc.code, exc.message)
            exporter.append(0)
            src += zero16
            dst += zero16
            in_if.append(0)
            macs += NO_MAC
            continue
        j = exporter_ids.get(exp_c)
        if j is None:
            j = exporter_ids[exp_c] = len(exporters)
            exporters.append(exp_c)
        exporter.append(j)
        src += s16
        dst += d16
        in_if.append(iif)
        macs += mac
    if not exporters:
        exporters.append("0.0.0.0")
    return exporters, exporter, bytes(src), bytes(dst), in_if, bytes(macs) if any_mac else b"", bad


def next_hop_of(f: dict) -> bytes | None:
    """A flow record's ``next_hop`` (16 bytes), None for none ("", 0.0.0.0, ::);
    raises BadRecord naming the field."""
    text = f.get("next_hop")
    if text in (None, ""):
        return None
    if not isinstance(text, str):
        raise BadRecord("bad_record", f"next_hop: must be a string, not {type(text).__name__}")
    try:
        packed = pack_address(text)
    except ValueError as exc:
        raise BadRecord("bad_address", f"next_hop: {exc}") from None
    return None if packed in (NO_NEXT_HOP, V4_ZERO) else packed


def row_next_hops(flows: Sequence[object], bad: dict[int, tuple[str, str]]) -> bytes:
    """The next_hop column of rows (b"" when no row has one); a row with a bad
    next hop is added to ``bad``."""
    out: list[bytes] = []
    any_hop = False
    for i, f in enumerate(flows):
        hop = None
        if i not in bad and isinstance(f, dict):
            try:
                hop = next_hop_of(f)
            except BadRecord as exc:
                bad[i] = (exc.code, exc.message)
        any_hop = any_hop or hop is not None
        out.append(hop or NO_NEXT_HOP)
    return b"".join(out) if any_hop else b""


def row_volumes(flows: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
    """(bytes, packets) per row; 0 where missing or not a non-negative integer
    (volumes are never an error: only the dry-run's sample reads them)."""

    def num(f: object, key: str) -> int:
        v = f.get(key) if isinstance(f, dict) else None
        ok = isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 64
        return v if ok else 0  # type: ignore[return-value]

    return (
        np.array([num(f, "bytes") for f in flows], dtype=np.uint64),
        np.array([num(f, "packets") for f in flows], dtype=np.uint64),
    )


def validate_row(f: object) -> tuple[str, bytes, bytes, int, bytes]:
    """One flow record -> (canonical exporter, src 16 bytes, dst 16 bytes, in_if, src MAC).

    Raises BadRecord naming the field. The MAC is NO_MAC when there is none.
    """
    if not isinstance(f, dict):
        raise BadRecord("bad_record", "a flow record must be a JSON object")
    exp = _required_text(f, "exporter")
    s = _required_text(f, "src_addr")
    d = _required_text(f, "dst_addr")
    try:
        exp_c = canonical_exporter(exp)
    except ValueError as exc:
        raise BadRecord("bad_address", f"exporter: {exc}") from None
    try:
        s16 = pack_address(s)
    except ValueError as exc:
        raise BadRecord("bad_address", f"src_addr: {exc}") from None
    try:
        d16 = pack_address(d)
    except ValueError as exc:
        raise BadRecord("bad_address", f"dst_addr: {exc}") from None
    iif = _optional_uint(f, "in_if")
    _optional_uint(f, "out_if")
    mac_text = f.get("src_mac")
    if mac_text in (None, ""):
        mac = NO_MAC
    elif isinstance(mac_text, str):
        try:
            mac = parse_mac(mac_text)
        except ValueError as exc:
            raise BadRecord("bad_record", f"src_mac: {exc}") from None
    else:
        raise BadRecord("bad_record", "src_mac: must be a string like aa:bb:cc:dd:ee:ff")
    return exp_c, s16, d16, iif, mac


def _required_text(f: dict, key: str) -> str:
    value = f.get(key)
    if value is None or value == "":
        raise BadRecord("bad_record", f"{key}: missing")
    if not isinstance(value, str):
        raise BadRecord("bad_record", f"{key}: must be a string, not {type(value).__name__}")
    return value


def _optional_uint(f: dict, key: str) -> int:
    value = f.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
        raise BadRecord("bad_record", f"{key}: must be an integer 0..4294967295, not {show(value)}")
    return value
