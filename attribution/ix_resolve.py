"""Learned IX MACs applied to answers, after the RIB and the override rules.

A flow entering on a declared IX port (exporter, in_if) whose source MAC the
learned table knows gets that peer's AS as ``src_peer_as``, provenance
``IX_MAC``, and ``SRC_ASYMMETRIC`` when the RIB's answer (the reverse lookup)
says another peer. A flow whose MAC is unknown, in conflict, or missing keeps
the reverse lookup and is flagged ``SRC_IX_MAC_UNKNOWN``. A manual override
rule that matched the flow wins: such flows are left alone. Both the bulk
path and the one-flow path come through here, so they cannot disagree.

``IxLookup`` is what the resolver reads: exporter -> in_if -> the IX's usable
MACs, replaced whole by ``attribution.ix.IxLearner`` when a table changes
(a batch keeps the mapping it started with).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from attribution.addresses import NO_MAC
from attribution.answers import BGP, IX_MAC, OVERRIDE, SRC_ASYMMETRIC, SRC_IX_MAC_UNKNOWN

if TYPE_CHECKING:
    from attribution.answers import FlowAnswer
    from attribution.batch import Batch


def mac_numbers(macs: np.ndarray) -> np.ndarray:
    """6-byte MACs (numpy ``S6``) as uint64, for a vectorised lookup."""
    raw = np.frombuffer(macs.tobytes(), dtype=np.uint8).reshape(-1, 6)
    padded = np.zeros((len(raw), 8), dtype=np.uint8)
    padded[:, 2:] = raw
    return padded.view(">u8").ravel().astype(np.uint64)


@dataclass(frozen=True, slots=True)
class IxPort:
    ix: str  # the IX's name
    macs: dict[bytes, int] = field(default_factory=dict)  # usable MAC -> peer AS
    entries: dict = field(default_factory=dict)  # every MAC -> ix_table.MacEntry (explain)
    # ``macs`` for the bulk path: MACs as sorted uint64, and their peer AS
    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    peers: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint32))

    @classmethod
    def build(cls, ix: str, macs: dict[bytes, int], entries: dict) -> IxPort:
        keys = mac_numbers(np.array(list(macs), dtype="S6")) if macs else np.zeros(0, np.uint64)
        order = np.argsort(keys)
        peers = np.array(list(macs.values()), dtype=np.uint32)[order]
        return cls(ix, macs, entries, keys[order], peers)


class IxLookup:
    """exporter -> in_if -> IxPort; ``ports`` is swapped whole, never edited."""

    __slots__ = ("ports",)

    def __init__(self) -> None:
        self.ports: dict[str, dict[int, IxPort]] = {}

    def port(self, exporter: str, in_if: int) -> IxPort | None:
        return self.ports.get(exporter, {}).get(in_if)


def ix_batch(
    batch: Batch,
    lookup: IxLookup,
    exporter: str,
    idx: np.ndarray,
    in_if: np.ndarray,
    macs: np.ndarray | None,
) -> None:
    """Learned MACs for flows ``idx`` of one exporter (after the override rules)."""
    ports = lookup.ports.get(exporter)
    if not ports:
        return
    iif = in_if[idx]
    hit = np.isin(iif, list(ports))
    if not hit.any():
        return
    for port in np.unique(iif[hit]).tolist():
        sel = idx[iif == port]
        sel = sel[batch.prov[sel, 1] != OVERRIDE]  # a manual rule matched: it wins
        if not len(sel):
            continue
        learned = ports[port]
        if macs is None or not len(learned.keys):
            batch.flags[sel] |= SRC_IX_MAC_UNKNOWN
            continue
        wanted = mac_numbers(macs[sel])
        at = np.minimum(np.searchsorted(learned.keys, wanted), len(learned.keys) - 1)
        known = (learned.keys[at] == wanted) & (wanted != 0)
        peer = np.where(known, learned.peers[at], 0).astype(np.uint32)
        batch.flags[sel[~known]] |= SRC_IX_MAC_UNKNOWN
        k, peer = sel[known], peer[known]
        asym = (batch.prov[k, 1] == BGP) & (batch.sp[k] != peer)
        batch.flags[k[asym]] |= SRC_ASYMMETRIC
        batch.sp[k] = peer
        batch.prov[k, 1] = IX_MAC


def ix_answer(out: FlowAnswer, lookup: IxLookup, exporter: str, in_if: int, mac: bytes) -> None:
    """The learned MAC of one flow, if its port is an IX port, applied to ``out``."""
    port = lookup.port(exporter, in_if)
    if port is None or out.provenance[1] == OVERRIDE:
        return
    peer = port.macs.get(mac, 0) if mac != NO_MAC else 0
    if not peer:
        out.flags |= SRC_IX_MAC_UNKNOWN
        return
    if out.provenance[1] == BGP and out.src_peer_as != peer:
        out.flags |= SRC_ASYMMETRIC
    out.src_peer_as = peer
    out.provenance[1] = IX_MAC
