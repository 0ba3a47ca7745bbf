"""The shape of an answer, shared by every path that makes or sends one.

Provenance and flag codes (the proto's enums), the packed record layout of
AttributionColumns, the column and one-flow answer types, and the route
dictionary that numbers the routes an answer refers to. No lookups here: the
bulk path (``batch``), the one-flow path (``one_flow``), explain and the wire
encoder all read these one definitions, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # types only: clients read answers without the RIB's modules
    from attribution.compiledview import CompiledView
    from ribd.rib import RouteMatch

# The largest gRPC message either side takes by default ([service]
# max_message_bytes, the client's channel): here so a client need not load the config.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

# Provenance values, as in the proto enum.
BGP, OVERRIDE, LOCAL, DEFAULT, NONE = 1, 2, 3, 4, 5
IX_MAC = 6  # src peer AS from the flow's source MAC, learned at an IX (attribution.ix)
PROVENANCE_NAMES = {
    0: "none",
    BGP: "bgp",
    OVERRIDE: "override",
    LOCAL: "local",
    DEFAULT: "default",
    NONE: "none",
    IX_MAC: "ix_mac",
}

# Flag bits, as in the proto enum.
SRC_UNROUTED = 1
SRC_ASYMMETRIC = 2
SRC_ORIGIN_AS_SET = 4
DST_ORIGIN_AS_SET = 8
SRC_STALE = 16
DST_STALE = 32
FALLBACK = 64
# The flow's BGP next hop (NetFlow/IPFIX BGP_IPV4/IPV6_NEXT_HOP) is none of
# the dst prefix's ADD-PATH paths' next hops: the best path answered.
DST_NEXT_HOP_MISMATCH = 128
# The flow entered on an IX port and its source MAC is not in the learned
# table (unknown, in conflict, or no MAC): src peer AS is the reverse lookup.
SRC_IX_MAC_UNKNOWN = 256
FLAG_NAMES = {
    SRC_UNROUTED: "src_unrouted",
    SRC_ASYMMETRIC: "src_asymmetric",
    SRC_ORIGIN_AS_SET: "src_origin_as_set",
    DST_ORIGIN_AS_SET: "dst_origin_as_set",
    SRC_STALE: "src_stale",
    DST_STALE: "dst_stale",
    FALLBACK: "fallback",
    DST_NEXT_HOP_MISMATCH: "dst_next_hop_mismatch",
    SRC_IX_MAC_UNKNOWN: "src_ix_mac_unknown",
}


# One answer per flow, as AttributionColumns.records carries it (the layout is
# documented in the proto). A batch's answer columns are views into one array
# of these, so packed answers need no copy but the final ``tobytes``.
RECORD_DTYPE = np.dtype(
    [
        ("router", "<i4"),
        ("src_origin_as", "<u4"),
        ("src_peer_as", "<u4"),
        ("dst_origin_as", "<u4"),
        ("dst_peer_as", "<u4"),
        ("provenance", "u1", (4,)),
        ("flags", "<u4"),
        ("src_route", "<i4"),
        ("dst_route", "<i4"),
        ("override", "<i4"),
    ]
)


class BatchTooLarge(ValueError):
    pass


@dataclass(slots=True)
class Resolution:
    """A resolved batch, in columns (the shape of the proto's AttributionColumns).

    Per-flow columns are numpy arrays when the resolver built them.
    """

    routers: list[str] = field(default_factory=list)
    router: Sequence[int] = field(default_factory=list)
    src_origin_as: Sequence[int] = field(default_factory=list)
    src_peer_as: Sequence[int] = field(default_factory=list)
    dst_origin_as: Sequence[int] = field(default_factory=list)
    dst_peer_as: Sequence[int] = field(default_factory=list)
    provenance: bytes = b""  # 4 per flow: src origin, src peer, dst origin, dst peer
    flags: Sequence[int] = field(default_factory=list)
    routes: list[tuple[str, RouteMatch]] = field(default_factory=list)
    src_route: Sequence[int] = field(default_factory=list)
    dst_route: Sequence[int] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    override: Sequence[int] = field(default_factory=list)
    errors: list[tuple[int, str, str]] = field(default_factory=list)
    records: np.ndarray | None = None  # RECORD_DTYPE; the columns above are views into it

    def __len__(self) -> int:
        return len(self.flags)


@dataclass(slots=True)
class FlowAnswer:
    """One flow's answer (``Resolver.resolve_one``); ``error``: (code, message)."""

    router: str | None = None
    src_origin_as: int = 0
    src_peer_as: int = 0
    dst_origin_as: int = 0
    dst_peer_as: int = 0
    provenance: list[int] = field(default_factory=lambda: [NONE, NONE, NONE, NONE])
    flags: int = 0
    src_route: tuple[str, RouteMatch] | None = None
    dst_route: tuple[str, RouteMatch] | None = None
    override: str | None = None
    error: tuple[str, str] | None = None


class RouteDictionary:
    """Numbers the routes an answer refers to (its route dictionary)."""

    def from_view(self, name: str, view: CompiledView, leaves: np.ndarray) -> np.ndarray:
        """Dictionary index of each route ``leaves`` (route indices of ``view``, >= 0)."""
        raise NotImplementedError

    def from_match(self, name: str, m: RouteMatch) -> int:
        raise NotImplementedError


class BatchRoutes(RouteDictionary):
    """One batch's dictionary as (router name, RouteMatch) pairs, each route once."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, RouteMatch]] = []
        self._index: dict[tuple, int] = {}

    def from_match(self, name: str, m: RouteMatch) -> int:
        key = (name, m.prefix, m.path_id, m.stale)
        idx = self._index.get(key)
        if idx is None:
            idx = self._index[key] = len(self.routes)
            self.routes.append((name, m))
        return idx

    def from_view(self, name: str, view: CompiledView, leaves: np.ndarray) -> np.ndarray:
        unique, inverse = np.unique(leaves, return_inverse=True)
        ids = [self.from_match(name, view.route(leaf)) for leaf in unique.tolist()]
        return np.array(ids, dtype=np.int32)[inverse]
