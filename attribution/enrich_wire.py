"""`attribution enrich`'s side of the wire, in columns: replies decoded into an
:class:`AnswerBatch` (requests are packed by :mod:`attribution.enrich_pack`;
``pack_request`` is re-exported here for existing callers).

The answer is never turned into one dict per record on the hot path. The
packed records (``RECORD_DTYPE``) are read as numpy columns; each route of
the stream's dictionary (:class:`attribution.enrich_routes.RouteDictionary`,
re-exported here) is turned into its answer fields once, when it arrives;
a batch's answers are grouped (numpy ``unique``) by their src side, dst side
and the rest, so each distinct part is encoded once and a record's JSON
answer is three or four byte strings put together.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import orjson

from attribution.answers import FLAG_NAMES, RECORD_DTYPE
from attribution.convert import decode_records
from attribution.enrich_pack import pack_request
from attribution.enrich_records import ANSWER_FIELDS, FLOW_FIELDS
from attribution.enrich_routes import _NO_SIDE, _PROV_BYTES, _PROVENANCE, RouteDictionary, csv_path
from attribution.v1 import attribution_pb2 as pb

try:  # JSON lines assembled in C (built where a C compiler was at install time)
    from attribution import _enrich_json as JSON_COMPILED
except ImportError:
    JSON_COMPILED = None  # type: ignore[assignment]
if os.environ.get("ATTRIBUTION_ENRICH_READER") == "python":  # all Python, to compare
    JSON_COMPILED = None  # type: ignore[assignment]


def compiled_layout_ok(module: Any) -> bool:
    """Whether a compiled assembler reads the packed answers as RECORD_DTYPE lays
    them out: its RECORD_LAYOUT (one definition, attribution/_enrich_out.pxi,
    compiled into both the JSON and the CSV assembler) names every field of
    the dtype, in its order, at its offset and of its type. Not so (a field
    moved, added or retyped): the numpy / pyarrow paths until the .pxi follows."""
    layout = getattr(module, "RECORD_LAYOUT", None)
    if layout is None or getattr(module, "RECORD_SIZE", None) != RECORD_DTYPE.itemsize:
        return False
    fields = RECORD_DTYPE.fields
    if [name for name, _, _ in layout] != list(RECORD_DTYPE.names or ()):
        return False
    return all(
        fields[name][1] == at and fields[name][0] == np.dtype(kind) for name, at, kind in layout
    )


if JSON_COMPILED is not None and not compiled_layout_ok(JSON_COMPILED):
    JSON_COMPILED = None  # type: ignore[assignment]

_MAY_OPEN = (b"{", b" ", b"\t", b"\r", b"\n", b"")  # the byte before the closing brace


_FLAG_ITEMS = tuple(FLAG_NAMES.items())


def _group(*columns: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Rows equal in every column: (a row of each group, each row's group), in C."""
    n = len(columns[0])
    order = np.lexsort(columns)
    change = np.zeros(n, dtype=bool)
    change[:1] = True
    for c in columns:
        s = c[order]
        change[1:] |= s[1:] != s[:-1]
    inverse = np.empty(n, dtype=np.intp)
    inverse[order] = np.cumsum(change) - 1
    return order[change].tolist(), inverse


def _objects(items: list) -> np.ndarray:
    """A list as a 1-D object array (numpy would make a list of bytes an ``S`` array)."""
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


class AnswerBatch:
    """One batch's answers in input order: packed records plus the names they index.

    ``records``: RECORD_DTYPE, one per record (zeros, and -1 indexes, where the
    record has an error); ``errors``: {index: (code, message)}. Writers take
    :meth:`json_parts`, :meth:`dicts` or :meth:`column` (any of ANSWER_FIELDS).
    """

    def __init__(
        self,
        records: np.ndarray,
        errors: dict[int, tuple[str, str]],
        routers: list[str],
        overrides: list[str],
        routes: RouteDictionary,
    ) -> None:
        self.records = records
        self.errors = errors
        self.routers = routers
        self.overrides = overrides
        self.routes = routes

    def __len__(self) -> int:
        return len(self.records)

    @classmethod
    def from_reply(
        cls,
        n: int,
        bad: dict[int, tuple[str, str]],
        good: list[int],
        reply: pb.AttributionBatch,
        routes: RouteDictionary,
    ) -> AnswerBatch:
        """``routes``: the stream's dictionary, already updated with this reply."""
        errors = dict(bad)
        if reply.batch_error:
            errors = {i: ("bad_batch", reply.batch_error) for i in range(n)}
            return cls(_empty(n), errors, [], [], routes)
        cols = reply.columns
        got = decode_records(cols) if cols.records else _unpacked(cols)
        for e in reply.errors:
            errors[good[e.index]] = (e.code, e.message)
        if len(good) == n and not reply.errors:
            records = got
        else:
            records = _empty(n)
            records[good] = got
            if errors:
                records[list(errors)] = _empty(1)[0]
        return cls(records, errors, list(cols.routers), list(cols.overrides), routes)

    # ------------------------------------------------------------------ JSON

    def json_parts(self) -> list[bytes]:
        """Per record: ``,"router":...,"error_code":...}`` and a newline, to follow
        the record's own fields (its JSON text without the closing brace)."""
        pieces = self._json_pieces(1)
        return [b"".join(p) for p in pieces[:, 1:].tolist()]

    def json_lines(
        self,
        raw: list[bytes] | list[bytes | None],
        spans: bytes | None = None,
        chunks: list[bytes] | None = None,
    ) -> bytes | bytearray:
        """The records (their JSON texts) with their answers, a line each, in one
        string (the compiled assembler's is a bytearray: written once, not copied).

        ``spans``, ``chunks``: where texts that are None in ``raw`` are
        (FlowBatch.texts: the compiled reader's records of whole chunks)."""
        if JSON_COMPILED is not None and len(self.records):
            return self._json_lines_compiled(raw, spans, chunks)
        if spans is not None:
            raise ValueError("texts as spans need the compiled JSON assembler")
        pieces = self._json_pieces(1)
        pieces[:, 0] = [r[:-1] for r in raw]
        for i, r in enumerate(raw):  # an empty object: its answer without the leading comma
            if r[-2:-1] in _MAY_OPEN and r[:-1].rstrip().endswith(b"{"):
                pieces[i, 1] = pieces[i, 1][1:]
        return b"".join(pieces.ravel().tolist())

    def _json_lines_compiled(
        self, raw: list[Any], spans: bytes | None = None, chunks: list[bytes] | None = None
    ) -> bytearray:
        """:meth:`json_lines` by attribution._enrich_json: the same bytes."""
        rec = np.ascontiguousarray(self.records)
        upto = int(max(rec["src_route"].max(), rec["dst_route"].max())) + 1
        routes = self.routes
        src_table = routes.piece_table("src", upto)
        dst_table = routes.piece_table("dst", upto)
        heads = [b',"router":null,']
        heads += [b',"router":' + orjson.dumps(r) + b"," for r in self.routers]
        errors = {
            i: b"," + orjson.dumps(error_dict(code, message))[1:] + b"\n"
            for i, (code, message) in self.errors.items()
        }
        tails: dict[tuple[int, int], bytes] = {}
        overrides = self.overrides

        def tail(override: int, flags: int) -> bytes:
            got = tails.get((override, flags))
            if got is None:
                t: dict[str, Any] = {"override": overrides[override] if override >= 0 else None}
                for bit, name in _FLAG_ITEMS:
                    t[name] = bool(flags & bit)
                t["error"] = t["error_code"] = None
                got = tails[(override, flags)] = b"," + orjson.dumps(t)[1:] + b"\n"
            return got

        return JSON_COMPILED.json_lines(
            raw,
            rec.view(np.uint8),
            heads,
            src_table,
            dst_table,
            _PROV_BYTES,
            tail,
            errors,
            spans,
            chunks,
        )

    def _json_pieces(self, before: int = 0) -> np.ndarray:
        """Per record, a row of ``before`` empty cells then six pieces: the router,
        the src side (AS numbers and provenances, then its route's fields), the
        dst side, and the rest (override, flags, error). Built in numpy: each
        distinct piece is encoded once (routes and AS number pairs once per
        stream, the rest per batch) and put in place by index, in C."""
        rec = self.records
        n = len(rec)
        out = np.empty((n, before + 6), dtype=object)
        if n == 0:
            return out
        out[:, :before] = b""
        routes = self.routes
        first, index = _group(rec["router"], rec["override"], rec["flags"])
        heads, tails = [], []
        for i in first:
            r, o, f = int(rec["router"][i]), int(rec["override"][i]), int(rec["flags"][i])
            heads.append(b',"router":' + orjson.dumps(self.routers[r] if r >= 0 else None) + b",")
            tail = {"override": self.overrides[o] if o >= 0 else None}
            for bit, name in _FLAG_ITEMS:
                tail[name] = bool(f & bit)
            tail["error"] = tail["error_code"] = None
            tails.append(b"," + orjson.dumps(tail)[1:] + b"\n")
        out[:, before] = _objects(heads)[index]
        out[:, before + 5] = _objects(tails)[index]
        prov = rec["provenance"]
        upto = int(max(rec["src_route"].max(), rec["dst_route"].max())) + 1
        for c, (side, a, b) in enumerate((("src", 0, 1), ("dst", 2, 3))):
            origin, peer = rec[f"{side}_origin_as"], rec[f"{side}_peer_as"]
            pa, pb_ = prov[:, a], prov[:, b]
            first, index = _group(origin, peer, pa, pb_)
            asns = routes.asn_pieces(
                side,
                zip(
                    origin[first].tolist(),
                    peer[first].tolist(),
                    pa[first].tolist(),
                    pb_[first].tolist(),
                    strict=True,
                ),
            )
            out[:, before + 1 + 2 * c] = _objects(asns)[index]
            table = routes.piece_table(side, upto)
            out[:, before + 2 + 2 * c] = table[rec[f"{side}_route"].astype(np.intp) + 1]
        for i, (code, message) in self.errors.items():
            out[i, before] = b"," + orjson.dumps(error_dict(code, message))[1:] + b"\n"
            out[i, before + 1 :] = b""
        return out

    # ------------------------------------------------------------------ dicts, columns

    def dicts(self) -> list[dict]:
        """One answer dict per record (the shape of convert.columns_to_answers)."""
        return [
            error_dict(*self.errors[i])
            if i in self.errors
            else dict(zip(ANSWER_FIELDS, row, strict=True))
            for i, row in enumerate(zip(*(self.column(f) for f in ANSWER_FIELDS), strict=True))
        ]

    def column(self, name: str) -> list:
        """One answer field (ANSWER_FIELDS) for every record, as flow JSON shows it."""
        rec = self.records
        if name in ("src_origin_as", "src_peer_as", "dst_origin_as", "dst_peer_as"):
            return rec[name].tolist()
        if name.endswith("_provenance"):
            k = ("src_origin", "src_peer", "dst_origin", "dst_peer").index(name[:-11])
            table = np.array(_PROVENANCE, dtype=object)
            return table[rec["provenance"][:, k]].tolist()
        if name in ("router", "override"):
            names = self.routers if name == "router" else self.overrides
            return [names[k] if k >= 0 else None for k in rec[name].tolist()]
        if name in ("error", "error_code"):
            k = 1 if name == "error" else 0
            got = self.errors
            return [got[i][k] if i in got else None for i in range(len(rec))]
        for bit, flag in _FLAG_ITEMS:
            if name == flag:
                return ((rec["flags"] & bit) != 0).tolist()
        side, key = name[:3], name[4:]
        if side in ("src", "dst") and name in ANSWER_FIELDS:
            summary = self.routes.summary
            return [summary(k)[key] for k in rec[f"{side}_route"].tolist()]
        raise KeyError(f"{name}: not an answer field")


def error_dict(code: str, message: str) -> dict:
    out: dict[str, Any] = {
        "router": None,
        "src_origin_as": 0,
        "src_peer_as": 0,
        "dst_origin_as": 0,
        "dst_peer_as": 0,
        "src_origin_provenance": "none",
        "src_peer_provenance": "none",
        "dst_origin_provenance": "none",
        "dst_peer_provenance": "none",
    }
    out.update(_NO_SIDE["src"])
    out.update(_NO_SIDE["dst"])
    out["override"] = None
    for name in FLAG_NAMES.values():
        out[name] = False
    out["error"] = message
    out["error_code"] = code
    return out


def _empty(n: int) -> np.ndarray:
    out = np.zeros(n, dtype=RECORD_DTYPE)
    for k in ("router", "src_route", "dst_route", "override"):
        out[k] = -1
    return out


def _unpacked(cols: pb.AttributionColumns) -> np.ndarray:
    """An answer sent as separate fields (a server without packed_records)."""
    out = np.zeros(len(cols.flags), dtype=RECORD_DTYPE)
    for k in ("router", "src_origin_as", "src_peer_as", "dst_origin_as", "dst_peer_as"):
        out[k] = getattr(cols, k)
    for k in ("flags", "src_route", "dst_route", "override"):
        out[k] = getattr(cols, k)
    out["provenance"] = np.frombuffer(cols.provenance, dtype=np.uint8).reshape(-1, 4)
    return out


__all__ = [
    "FLOW_FIELDS",
    "AnswerBatch",
    "RouteDictionary",
    "csv_path",
    "error_dict",
    "pack_request",
]
