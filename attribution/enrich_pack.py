"""`attribution enrich`'s requests: a batch of records packed into a FlowBatch.

Records the compiled reader took (attribution._enrich_scan) arrive packed
already: their columns are cut out of its buffer with numpy. The others, and
every record when the reader is the Python one, are packed here from their
rows, checked as :func:`attribution.records.validate_row` does: the usual
case inline (string addresses, integers in range), anything else through
``validate_row`` itself, so a bad record gets the same code and message as
on every other path.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

import numpy as np

from attribution.addresses import NO_MAC, NO_NEXT_HOP, V4_MAPPED, canonical_exporter, parse_mac
from attribution.enrich_records import FLOW_FIELDS, FlowBatch
from attribution.records import BadRecord, next_hop_of, validate_row
from attribution.v1 import attribution_pb2 as pb

_U32 = 0xFFFFFFFF

try:
    from attribution._enrich_scan import PACKED_FIELDS, RECORD_SIZE
except ImportError:  # no compiler at install time: every record is packed from its row
    PACKED_DTYPE = None
else:
    PACKED_DTYPE = np.dtype(
        {
            "names": [f[0] for f in PACKED_FIELDS],
            "formats": [f[1] for f in PACKED_FIELDS],
            "offsets": [f[2] for f in PACKED_FIELDS],
            "itemsize": RECORD_SIZE,
        }
    )


class _Slow(Exception):
    pass


class _Columns:
    """Packed columns of the good records, and the bad ones' errors."""

    def __init__(self, exporters: list[str], canon: dict[str, int], ids: dict[str, int]) -> None:
        self.exporters = exporters
        self.canon = canon
        self.ids = ids  # exporter as written -> index into exporters
        self.macs: dict[str, bytes] = {}
        self.hops: dict[str, bytes] = {}
        self.good: list[int] = []
        self.exporter: list[int] = []
        self.src: list[bytes] = []
        self.dst: list[bytes] = []
        self.in_if: list[int] = []
        self.mac: list[bytes] = []
        self.hop: list[bytes] = []
        self.bad: dict[int, tuple[str, str]] = {}


def _pack_rows(rows: list[tuple], indexes: Iterable[int], c: _Columns) -> None:
    """Rows ``indexes`` into ``c``: the good ones' columns, the bad ones' errors."""
    pton, af4, af6 = socket.inet_pton, socket.AF_INET, socket.AF_INET6
    exporters, ids, canon, macs, hops = c.exporters, c.ids, c.canon, c.macs, c.hops
    for i in indexes:
        exp, s, d, iif, oif, mac, hop = rows[i][:7]
        try:
            if type(s) is not str or type(d) is not str or type(exp) is not str:
                raise _Slow
            if iif is None:
                iif = 0
            elif type(iif) is not int or not 0 <= iif <= _U32:
                raise _Slow
            if oif is not None and (type(oif) is not int or not 0 <= oif <= _U32):
                raise _Slow
            s16 = pton(af6, s) if ":" in s else V4_MAPPED + pton(af4, s)
            d16 = pton(af6, d) if ":" in d else V4_MAPPED + pton(af4, d)
            j = ids.get(exp)
            if j is None:
                cn = canonical_exporter(exp)
                j = canon.get(cn)
                if j is None:
                    j = canon[cn] = len(exporters)
                    exporters.append(cn)
                ids[exp] = j
            if mac is None or mac == "":
                m = NO_MAC
            elif type(mac) is not str:
                raise _Slow
            else:
                m = macs.get(mac)
                if m is None:
                    m = macs[mac] = parse_mac(mac)
            if hop is None or hop == "":
                h = NO_NEXT_HOP
            elif type(hop) is not str:
                raise _Slow
            else:
                h = hops.get(hop)
                if h is None:
                    h = hops[hop] = next_hop_of({"next_hop": hop}) or NO_NEXT_HOP
        except (_Slow, OSError, ValueError, TypeError, BadRecord):
            try:
                j, s16, d16, iif, m, h = _reference(rows[i], exporters, canon)
            except BadRecord as exc:
                c.bad[i] = (exc.code, exc.message)
                continue
        c.good.append(i)
        c.exporter.append(j)
        c.src.append(s16)
        c.dst.append(d16)
        c.in_if.append(iif)
        c.mac.append(m)
        c.hop.append(h)


def pack_request(batch: FlowBatch, batch_id: int) -> tuple[pb.FlowBatch, dict, list[int]]:
    """(request with the good records, bad: {index: (code, message)}, good indexes)."""
    packed = batch.packed
    if packed is not None and packed.taken and PACKED_DTYPE is not None:
        return _pack_scanned(batch, batch_id)
    c = _Columns([], {}, {})
    _pack_rows(batch.rows, range(len(batch)), c)
    mac = b"".join(c.mac)
    hop = b"".join(c.hop)
    return (
        _request(
            batch_id, c.exporters, c.exporter, b"".join(c.src), b"".join(c.dst), c.in_if, mac, hop
        ),
        c.bad,
        c.good,
    )


def _pack_scanned(batch: FlowBatch, batch_id: int) -> tuple[pb.FlowBatch, dict, list[int]]:
    """The compiled reader's records: when they are the whole batch, the request
    written in C (``Packed.request``); else :func:`_pack_mixed`."""
    packed = batch.packed
    n = len(batch)
    if packed.taken == n:
        data = packed.request(n, batch_id)
        if data is not None:
            return pb.FlowBatch.FromString(data), {}, list(range(n))
    return _pack_mixed(batch, batch_id)


def _pack_mixed(batch: FlowBatch, batch_id: int) -> tuple[pb.FlowBatch, dict, list[int]]:
    """The compiled reader's records cut from its buffer; the Python reader's
    records (``ok`` 0 there) packed from their rows into it."""
    packed = batch.packed
    n = len(batch)
    arr = np.frombuffer(packed.records(n), dtype=PACKED_DTYPE)
    todo = np.flatnonzero(arr["ok"] == 0).tolist()
    bad: dict[int, tuple[str, str]] = {}
    if todo:
        c = _Columns(packed.exporters, packed.canon, packed.ids)
        _pack_rows(batch.python_rows(), todo, c)
        bad = c.bad
        if c.good:
            at = np.array(c.good, dtype=np.intp)
            arr["ok"][at] = 1
            arr["exporter"][at] = c.exporter
            arr["in_if"][at] = c.in_if
            arr["src"][at] = c.src
            arr["dst"][at] = c.dst
            arr["mac"][at] = c.mac
            arr["hop"][at] = c.hop
    if bad:
        ok = arr["ok"] == 1
        good = np.flatnonzero(ok).tolist()
        arr = arr[ok]
    else:
        good = list(range(n))
    request = _request(
        batch_id,
        packed.exporters,
        arr["exporter"].tolist(),
        arr["src"].tobytes(),
        arr["dst"].tobytes(),
        arr["in_if"].tolist(),
        arr["mac"].tobytes(),
        arr["hop"].tobytes(),
    )
    return request, bad, good


def _request(
    batch_id: int,
    exporters: list[str],
    exporter: list[int],
    src: bytes,
    dst: bytes,
    in_if: list[int],
    mac: bytes,
    hop: bytes,
) -> pb.FlowBatch:
    if not exporters:
        exporters = ["0.0.0.0"]
    return pb.FlowBatch(
        batch_id=batch_id,
        columns=pb.FlowColumns(
            exporters=exporters,
            exporter=exporter,
            src_addr=src,
            dst_addr=dst,
            in_if=in_if,  # even all zeros: an override may name ifIndex 0
            src_mac=mac if mac.count(0) != len(mac) else b"",
            next_hop=hop if hop.count(0) != len(hop) else b"",
        ),
        packed_records=True,
        stream_routes=True,
    )


def _reference(
    row: tuple, exporters: list[str], canon: dict[str, int]
) -> tuple[int, bytes, bytes, int, bytes, bytes]:
    """The record checked by validate_row / next_hop_of (raises BadRecord)."""
    flow = _flow(row)
    cn, s16, d16, iif, mac = validate_row(flow)
    hop = next_hop_of(flow) or NO_NEXT_HOP
    j = canon.get(cn)
    if j is None:
        j = canon[cn] = len(exporters)
        exporters.append(cn)
    return j, s16, d16, iif, mac, hop


def _flow(row: tuple) -> dict:
    return {k: v for k, v in zip(FLOW_FIELDS, row, strict=True) if v is not None}


__all__ = ["PACKED_DTYPE", "pack_request"]
