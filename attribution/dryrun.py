"""Override dry-run: what a candidate config would change, on a flow sample. No I/O.

Before a reload, an operator wants to know what a new override rule takes
(and from whom), not learn it from the next day's reports. The sample (flow
records given by the caller, or the service's recent flows, attribution.
flowring) is resolved twice by the resolver itself, under the running plan
and under the candidate's (``Resolver.resolve_columns(routing=...)``, which
neither counts nor records such batches), so the diff cannot disagree with
what a reload would do to the same flows at the same RIB. Reported:

* flows, bytes and packets by (old rule, new rule, old -> new src peer AS);
* the candidate's rules that no flow of the sample matched;
* the candidate's rules that are shadowed (an earlier rule takes all their
  traffic: same exporter and in_if, and no MAC or the same MAC), marked new
  when they were not shadowed in the running config;
* flows whose answer changed elsewhere (router, AS numbers, provenance,
  flags, error): a candidate also changes exporters, fallbacks, local_as or
  as_set_policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from attribution.config import Config, OverrideRule, parse_config
from attribution.config_file import MAX_CONFIG_BYTES, ConfigError
from attribution.flowring import KEY_DTYPE
from attribution.resolver import (
    SRC_ASYMMETRIC,
    Resolution,
    Resolver,
    Routing,
    row_volumes,
    rows_to_columns,
    unpack_address,
)


@dataclass(slots=True)
class Sample:
    """Flows as columns, with their volumes; ``bad``: rows that could not be read."""

    exporters: list[str]
    exporter: np.ndarray
    src: bytes
    dst: bytes
    in_if: np.ndarray
    src_mac: bytes
    bytes_: np.ndarray
    packets: np.ndarray
    bad: dict[int, tuple[str, str]] = field(default_factory=dict)
    recent: bool = False  # taken from the service's ring

    def __len__(self) -> int:
        return len(self.exporter)


@dataclass(slots=True)
class Change:
    old_rule: str  # "" = no rule
    new_rule: str
    old_peer_as: int
    new_peer_as: int
    flows: int = 0
    bytes: int = 0
    packets: int = 0


@dataclass(slots=True)
class Shadowed:
    rule: str
    shadowed_by: str
    new: bool  # not shadowed (or absent) in the running config


@dataclass(slots=True)
class OverrideDiff:
    flows: int = 0  # flows of the sample that were resolved
    bad_flows: int = 0  # sample rows that could not be read
    recent: bool = False
    changes: list[Change] = field(default_factory=list)
    unmatched_rules: list[str] = field(default_factory=list)
    shadowed: list[Shadowed] = field(default_factory=list)
    other_changed_flows: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes or self.other_changed_flows)


def candidate_config(text: str, name: str) -> Config:
    """Validate the candidate like a reload does; ConfigError names file:line: key."""
    if len(text.encode()) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{name}: larger than {MAX_CONFIG_BYTES} bytes")
    return parse_config(text, name or "<candidate>")


def sample_from_rows(flows: Sequence[object]) -> Sample:
    exporters, exporter, src, dst, in_if, mac, bad = rows_to_columns(flows)  # type: ignore[arg-type]
    b, p = row_volumes(flows)
    return Sample(
        exporters,
        np.asarray(exporter, dtype=np.int64),
        src,
        dst,
        np.asarray(in_if, dtype=np.int64),
        mac,
        b,
        p,
        bad,
    )


def sample_from_ring(keys: np.ndarray) -> Sample:
    """The ring's snapshot (KEY_DTYPE) as a sample."""
    assert keys.dtype == KEY_DTYPE
    uniq, inverse = np.unique(keys["exporter"], return_inverse=True)
    macs = keys["src_mac"].tobytes()
    return Sample(
        [unpack_address(bytes(u)) for u in uniq] or ["0.0.0.0"],
        inverse.astype(np.int64).reshape(-1),
        keys["src"].tobytes(),
        keys["dst"].tobytes(),
        keys["in_if"].astype(np.int64),
        macs if any(macs) else b"",
        keys["bytes"].copy(),
        keys["packets"].copy(),
        recent=True,
    )


def shadowed_rules(rules: Sequence[OverrideRule]) -> dict[str, str]:
    """rule name -> the earlier rule that takes all its traffic (as Explain says)."""
    out: dict[str, str] = {}
    first: dict[tuple[str, int], list[OverrideRule]] = {}
    for rule in rules:
        earlier = first.setdefault((rule.exporter, rule.in_if), [])
        by = next((p for p in earlier if p.src_mac is None or p.src_mac == rule.src_mac), None)
        if by is not None:
            out[rule.name] = by.name
        earlier.append(rule)
    return out


def diff_overrides(
    resolver: Resolver,
    old: Routing,
    new: Routing,
    sample: Sample,
    warnings: Sequence[str] = (),
) -> OverrideDiff:
    """Resolve ``sample`` under ``old`` and ``new``; what changes (module doc)."""
    out = OverrideDiff(recent=sample.recent, warnings=list(warnings))
    n = len(sample)
    out.bad_flows = len(sample.bad)
    ok_all = np.ones(n, dtype=bool)
    if sample.bad:
        ok_all[list(sample.bad)] = False
    groups: dict[tuple[str, str, int, int], Change] = {}
    matched: set[str] = set()
    step = max(1, resolver.max_batch_flows)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        bad = {i - lo: e for i, e in sample.bad.items() if lo <= i < hi}
        a, b = (
            resolver.resolve_columns(
                sample.exporters,
                sample.exporter[lo:hi],
                sample.src[16 * lo : 16 * hi],
                sample.dst[16 * lo : 16 * hi],
                sample.in_if[lo:hi].tolist(),
                sample.src_mac[6 * lo : 6 * hi],
                bad,
                with_routes=False,
                routing=plan,
            )
            for plan in (old, new)
        )
        ok = ok_all[lo:hi]
        out.flows += int(ok.sum())
        old_rule, new_rule = _names(a.overrides, a.override), _names(b.overrides, b.override)
        matched.update(np.unique(new_rule[ok]).tolist())
        sp_a, sp_b = np.asarray(a.src_peer_as), np.asarray(b.src_peer_as)
        moved = ok & ((sp_a != sp_b) | (old_rule != new_rule))
        vb, vp = sample.bytes_[lo:hi], sample.packets[lo:hi]
        for i in np.nonzero(moved)[0].tolist():
            key = (str(old_rule[i]), str(new_rule[i]), int(sp_a[i]), int(sp_b[i]))
            c = groups.get(key)
            if c is None:
                c = groups[key] = Change(*key)
            c.flows += 1
            c.bytes += int(vb[i])
            c.packets += int(vp[i])
        out.other_changed_flows += int((ok & _other_fields_differ(a, b)).sum())
    out.changes = sorted(groups.values(), key=lambda c: (-c.bytes, -c.flows, c.new_rule))
    matched.discard("")
    out.unmatched_rules = [r.name for r in new.overrides.rules if r.name not in matched]
    was = shadowed_rules(old.overrides.rules)
    out.shadowed = [
        Shadowed(rule, by, was.get(rule) != by)
        for rule, by in shadowed_rules(new.overrides.rules).items()
    ]
    return out


def _names(names: list[str], index: Sequence[int]) -> np.ndarray:
    """Per flow: the override rule's name, "" for none."""
    table = np.array([*names, ""], dtype=object)
    idx = np.asarray(index, dtype=np.int64)
    return table[np.where(idx < 0, len(names), idx)]


def _other_fields_differ(a: Resolution, b: Resolution) -> np.ndarray:
    """Per flow: the answer differs elsewhere than the src peer AS and its rule."""
    n = len(a)
    ra = np.array([*a.routers, ""], dtype=object)[np.where(np.asarray(a.router) < 0, -1, a.router)]
    rb = np.array([*b.routers, ""], dtype=object)[np.where(np.asarray(b.router) < 0, -1, b.router)]
    diff = ra != rb
    for col in ("src_origin_as", "dst_origin_as", "dst_peer_as"):
        diff |= np.asarray(getattr(a, col)) != np.asarray(getattr(b, col))
    pa = np.frombuffer(a.provenance, dtype=np.uint8).reshape(n, 4)
    pb = np.frombuffer(b.provenance, dtype=np.uint8).reshape(n, 4)
    diff |= (pa[:, [0, 2, 3]] != pb[:, [0, 2, 3]]).any(axis=1)
    keep = np.uint32(~SRC_ASYMMETRIC & 0xFFFFFFFF)
    diff |= (np.asarray(a.flags) & keep) != (np.asarray(b.flags) & keep)
    ea = {i: code for i, code, _ in a.errors}
    eb = {i: code for i, code, _ in b.errors}
    for i in set(ea) | set(eb):
        if ea.get(i) != eb.get(i):
            diff[i] = True
    return diff
