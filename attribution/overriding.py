"""Applying src peer AS override rules to answers, after the RIB has answered.

An override sets src_peer_as only (provenance ``override``) and flags
SRC_ASYMMETRIC when the RIB's BGP answer differs. The bulk path applies the
rules per exporter and port to a batch's columns, the one-flow path to one
answer; both here, so they cannot disagree. Matching a rule is
``overrides.OverrideTable``'s job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from attribution.addresses import NO_MAC
from attribution.answers import BGP, OVERRIDE, SRC_ASYMMETRIC, FlowAnswer
from attribution.config import OverrideRule
from attribution.overrides import first_match
from attribution.routing import Routing

if TYPE_CHECKING:
    from attribution.batch import Batch


def override_batch(
    batch: Batch, exporter: str, idx: np.ndarray, in_if: np.ndarray, macs: np.ndarray | None
) -> None:
    """src peer AS overrides for flows ``idx`` of one exporter (after the RIB answers)."""
    ports = batch.routing.overrides.ports_of(exporter)
    if not ports:
        return
    iif = in_if[idx]
    hit = np.isin(iif, list(ports))
    if not hit.any():
        return
    for port in np.unique(iif[hit]).tolist():
        sel = idx[iif == port]
        cands = ports[port]
        if cands[0][0] is None:  # first rule takes the whole port
            _override(batch, sel, cands[0][1])
            continue
        for i in sel.tolist():
            mac = bytes(macs[i]).ljust(6, b"\x00") if macs is not None else None
            rule = first_match(cands, None if mac in (None, NO_MAC) else mac)
            if rule is not None:
                _override(batch, np.array([i]), rule)


def _override(batch: Batch, sel: np.ndarray, rule: OverrideRule) -> None:
    asym = (batch.prov[sel, 1] == BGP) & (batch.sp[sel] != rule.peer_as)
    batch.flags[sel[asym]] |= SRC_ASYMMETRIC
    batch.sp[sel] = rule.peer_as
    batch.prov[sel, 1] = OVERRIDE
    batch.override[sel] = batch.overrides.setdefault(rule.name, len(batch.overrides))


def override_answer(
    out: FlowAnswer, routing: Routing, exporter: str, in_if: int, mac: bytes
) -> None:
    """The override rule of one flow, if any, applied to its answer ``out``."""
    cands = routing.overrides.ports_of(exporter).get(in_if)
    if cands:
        rule = first_match(cands, None if mac == NO_MAC else mac)
        if rule is not None:
            if out.provenance[1] == BGP and out.src_peer_as != rule.peer_as:
                out.flags |= SRC_ASYMMETRIC
            out.src_peer_as = rule.peer_as
            out.provenance[1] = OVERRIDE
            out.override = rule.name
