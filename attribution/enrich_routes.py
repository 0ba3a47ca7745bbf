"""The client's copy of a ResolveStream's route dictionary (stream_routes),
each route's answer fields made once per stream in the forms the writers of
`attribution enrich` ask for (JSON pieces, dicts, the CSV AS path).

Moved out of :mod:`attribution.enrich_wire` (which decodes replies into
answer batches and re-exports these names): one job a module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson

from attribution.answers import PROVENANCE_NAMES
from attribution.convert import route_summary_json
from attribution.v1 import attribution_pb2 as pb

_PROVENANCE = [PROVENANCE_NAMES.get(i, "none") for i in range(256)]
_PROV_BYTES = [p.encode() for p in _PROVENANCE]


# --------------------------------------------------------------------------- answers

_SIDE_KEYS = ("prefix", "as_path", "communities", "large_communities", "local_pref", "med")
_NO_ROUTE = {
    "prefix": None,
    "as_path": [],
    "communities": [],
    "large_communities": [],
    "local_pref": None,
    "med": None,
    "next_hop": None,
}


def _side(side: str, summary: dict) -> dict:
    return {f"{side}_{k}": summary[k] for k in (*_SIDE_KEYS, "next_hop")}


_SIDE_ALL = (*_SIDE_KEYS, "next_hop")
_SIDE_NAMES = {side: tuple(f"{side}_{k}" for k in _SIDE_ALL) for side in ("src", "dst")}


def _body(summary: dict) -> bytes:
    """A route's answer fields as JSON members, each key ``"@@name"`` (no braces):
    encoded once, then ``"@@`` becomes ``"src_`` or ``"dst_`` (no value of these
    fields holds an ``@``: prefixes, AS numbers, communities, addresses)."""
    return orjson.dumps({"@@" + k: summary[k] for k in _SIDE_ALL})[1:-1]


def _side_json(side: str, summary: dict) -> bytes:
    """``"src_prefix":..,"src_as_path":..,...`` (no braces) of a route summary."""
    return _body(summary).replace(b'"@@', _KEY[side])


_KEY = {"src": b'"src_', "dst": b'"dst_'}


class RouteDictionary:
    """The client's copy of a ResolveStream's route dictionary (stream_routes).

    A route's answer fields are made when a record first needs them, in the
    form its writer asks for (JSON bytes, dicts, the CSV AS path), once.
    """

    def __init__(self) -> None:
        self.routes: list[pb.Route] = []
        self._summaries: list[dict | None] = []
        self._paths: list[str | None] = []
        self._bodies: list[bytes | None] = []
        self.extra: dict[str, Any] = {}  # other writers' per-route caches (enrich_arrow)
        self._asns: dict[tuple, bytes] = {}
        self._pieces: dict[str, dict[int, bytes]] = {"src": {}, "dst": {}}
        # side_json of route k at row k + 1 (row 0: no route), made once per stream
        self._tables = {side: np.empty(64, dtype=object) for side in ("src", "dst")}
        self._made = 0  # rows filled in both tables

    def __len__(self) -> int:
        return len(self.routes)

    def update(self, cols: pb.AttributionColumns) -> RouteDictionary:
        """The dictionary with a reply's new routes: this one, or a new one when
        the server started over (``routes_reset``; answers made against this one
        keep it)."""
        if cols.routes_reset and self.routes:
            return RouteDictionary().update(cols)
        if cols.route_base != len(self.routes):
            raise RuntimeError(
                f"route dictionary out of step: the server numbers from {cols.route_base}, "
                f"we hold {len(self.routes)} routes"
            )
        if cols.routes:
            n = len(cols.routes)
            self.routes.extend(cols.routes)
            self._summaries.extend([None] * n)
            self._paths.extend([None] * n)
            self._bodies.extend([None] * n)
        return self

    def summary(self, k: int) -> dict:
        """Route k as route_summary_json shows it; k < 0: no route."""
        if k < 0:
            return _NO_ROUTE
        s = self._summaries[k]
        if s is None:
            s = self._summaries[k] = route_summary_json(self.routes[k])
        return s

    def asn_json(self, side: str, origin: int, peer: int, pa: int, pb_: int) -> bytes:
        """``"src_origin_as":..,"src_peer_as":..,"src_origin_provenance":..,
        "src_peer_provenance":..,`` (or dst_), made once per stream."""
        key = (side, origin, peer, pa, pb_)
        got = self._asns.get(key)
        if got is None:
            if len(self._asns) >= 100_000:
                self._asns.clear()
            s = side.encode()
            got = self._asns[key] = (
                b'"%s_origin_as":%d,"%s_peer_as":%d,"%s_origin_provenance":"%s",'
                b'"%s_peer_provenance":"%s",'
                % (s, origin, s, peer, s, _PROV_BYTES[pa], s, _PROV_BYTES[pb_])
            )
        return got

    def asn_pieces(self, side: str, keys: Iterator[tuple[int, int, int, int]]) -> list[bytes]:
        """:meth:`asn_json` of each (origin, peer, provenances) key."""
        got = self._asns
        make = self.asn_json
        return [got.get((side, *k)) or make(side, *k) for k in keys]

    def pieces(self, side: str, ks: list[int]) -> list[bytes]:
        """side_json of routes ``ks``; the src side's ends with a comma (the dst
        side follows it in a JSON answer). A route's fields are encoded once for
        both sides (:func:`_body`)."""
        table = self._pieces[side]
        key = _KEY[side]
        comma = b"," if side == "src" else b""
        bodies = self._bodies
        out = []
        for k in ks:
            got = table.get(k)
            if got is None:
                if k < 0:
                    got = _side_json(side, _NO_ROUTE) + comma
                else:
                    body = bodies[k]
                    if body is None:  # the summary itself is not kept: JSON needs it once
                        summary = self._summaries[k] or route_summary_json(self.routes[k])
                        body = bodies[k] = _body(summary)
                    got = table[k] = body.replace(b'"@@', key) + comma
            out.append(got)
        return out

    def piece_table(self, side: str, upto: int) -> np.ndarray:
        """Both sides' ``side_json`` of routes ``-1 .. upto - 1`` at rows ``0 ..
        upto`` (the src side's ends with a comma), so a batch takes its records'
        pieces with one numpy index; each route is encoded once per stream, for
        both sides at once (:func:`_body`). A route past the dictionary (a bad
        reply) raises IndexError before any table grows to it."""
        if upto > len(self.routes):
            raise IndexError(
                f"route {upto - 1} is not in the dictionary ({len(self.routes)} routes)"
            )
        rows = upto + 1
        if rows > self._made:
            tables = self._tables
            if rows > len(tables["src"]):
                size = max(rows, 2 * len(tables["src"]))
                for side_ in ("src", "dst"):
                    grown = np.empty(size, dtype=object)
                    grown[: self._made] = tables[side_][: self._made]
                    tables[side_] = grown
            bodies = self._bodies
            new: list[bytes] = []
            for k in range(self._made - 1, upto):
                if k < 0:
                    new.append(_body(_NO_ROUTE))
                    continue
                body = bodies[k]
                if body is None:  # the summary itself is not kept: JSON needs it once
                    summary = self._summaries[k] or route_summary_json(self.routes[k])
                    body = bodies[k] = _body(summary)
                new.append(body)
            tables["src"][self._made : rows] = [b.replace(b'"@@', b'"src_') + b"," for b in new]
            tables["dst"][self._made : rows] = [b.replace(b'"@@', b'"dst_') for b in new]
            self._made = rows
        return self._tables[side]

    def side_json(self, side: str, k: int) -> bytes:
        return _side_json(side, self.summary(k))

    def side_dict(self, side: str, k: int) -> dict:
        return _side(side, self.summary(k))

    def csv_path(self, k: int) -> str:
        if k < 0:
            return ""
        got = self._paths[k]
        if got is None:
            got = self._paths[k] = csv_path(self.summary(k)["as_path"])
        return got


def csv_path(path: list) -> str:
    """An AS path as CSV shows it: space-separated, an AS_SET as ``{a,b}``."""
    return " ".join(
        "{" + ",".join(map(str, v)) + "}" if isinstance(v, list) else str(v) for v in path
    )


_NO_SIDE = {side: _side(side, _NO_ROUTE) for side in ("src", "dst")}


__all__ = ["RouteDictionary", "csv_path"]
