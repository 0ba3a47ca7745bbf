"""src peer AS overrides: (exporter, input ifIndex[, src MAC]) -> peer AS.

Rules are matched in file order and the first match wins. They are compiled
into per-exporter dicts keyed by ifIndex, so a batch checks its ports, not
every rule, and the table is replaced whole on reload (readers keep the table they started with).
"""

from __future__ import annotations

from attribution.config import OverrideRule

# A port's candidate rules in file order: (src_mac or None, rule).
PortRules = tuple[tuple[bytes | None, OverrideRule], ...]


class OverrideTable:
    __slots__ = ("_by_exporter", "rules")

    def __init__(self, rules: tuple[OverrideRule, ...] = ()) -> None:
        self.rules = rules
        by_exporter: dict[str, dict[int, list[tuple[bytes | None, OverrideRule]]]] = {}
        for rule in rules:
            ports = by_exporter.setdefault(rule.exporter, {})
            ports.setdefault(rule.in_if, []).append((rule.src_mac, rule))
        self._by_exporter: dict[str, dict[int, PortRules]] = {
            exporter: {in_if: tuple(c) for in_if, c in ports.items()}
            for exporter, ports in by_exporter.items()
        }

    def __len__(self) -> int:
        return len(self.rules)

    def ports_of(self, exporter: str) -> dict[int, PortRules]:
        """The ifIndexes of ``exporter`` that have rules, with their rules in file order."""
        return self._by_exporter.get(exporter, {})


def first_match(candidates: PortRules, src_mac: bytes | None) -> OverrideRule | None:
    for mac, rule in candidates:
        if mac is None or mac == src_mac:
            return rule
    return None
