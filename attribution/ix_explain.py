"""Explain's part for IX ports: what the learned table said for the source MAC.

Kept out of ``attribution.explain`` (one job per module). The words come
from the same ``IxPort`` the resolver read (``attribution.ix_resolve``), its
usable MACs and every entry behind them (addresses, facts, conflicts), so
the explanation cannot tell another story than the answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from attribution.addresses import NO_MAC
from attribution.answers import BGP, IX_MAC, SRC_ASYMMETRIC, SRC_IX_MAC_UNKNOWN
from attribution.config import format_mac
from attribution.ix_resolve import IxLookup

if TYPE_CHECKING:
    from attribution.explain import Explanation
    from attribution.explain_paths import Side

__all__ = ["IX_MAC", "explain_ix", "ix_flags"]


def explain_ix(e: Explanation, lookup: IxLookup, exporter: str, in_if: int, mac: bytes) -> None:
    """Set ``e.ix_reason`` and ``e.ix_peer_as`` for a flow on an IX port."""
    port = lookup.port(exporter, in_if)
    if port is None:
        return
    where = f"exporter {exporter} in_if {in_if} is a port of IX {port.ix}"
    if e.override is not None:
        e.ix_reason = f"{where}; override {e.override} matched first and wins"
        return
    if mac == NO_MAC:
        e.ix_reason = f"{where}; the flow carries no source MAC"
        return
    text = format_mac(mac)
    entry = port.entries.get(mac)
    peer = port.macs.get(mac, 0)
    if peer:
        facts = (
            "; ".join(
                f"{f.address or 'MAC'} is AS{f.peer_as} ({f.source}"
                + (f", {f.detail})" if f.detail else ")")
                for f in entry.facts
            )
            if entry is not None
            else ""
        )
        e.ix_peer_as = peer
        e.ix_reason = f"{where}; source MAC {text} is AS{peer}: {facts}"
    elif entry is None:
        e.ix_reason = f"{where}; source MAC {text} is not in the learned table"
    elif entry.conflict:
        e.ix_reason = f"{where}; source MAC {text} is in conflict: {entry.reason}"
    else:
        e.ix_reason = f"{where}; source MAC {text} has no AS: {entry.reason}"


def ix_flags(e: Explanation, src: Side | None) -> int:
    """The flags the IX step sets, with their causes appended to ``e``."""
    from attribution.explain import FlagCause

    if not e.ix_reason or e.override is not None:
        return 0
    if not e.ix_peer_as:
        e.flag_causes.append(
            FlagCause(
                "src_ix_mac_unknown",
                e.ix_reason.split("; ", 1)[-1] + ": the reverse lookup answers",
            )
        )
        return SRC_IX_MAC_UNKNOWN
    if src is not None and src.provenance == BGP and src.peer_as != e.ix_peer_as:
        e.flag_causes.append(
            FlagCause(
                "src_asymmetric",
                f"the learned MAC says peer AS {e.ix_peer_as}, the RIB's best path to the "
                f"source says {src.peer_as}",
            )
        )
        return SRC_ASYMMETRIC
    return 0
