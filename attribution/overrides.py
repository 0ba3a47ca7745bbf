"""src peer AS overrides: (exporter, input ifIndex[, src MAC]) -> peer AS.

Rules are matched in file order and the first match wins. They are compiled
into a dict keyed by (exporter, ifIndex) so a flow costs one dict lookup, and
the table is replaced whole on reload (readers keep the table they started with).
"""

from __future__ import annotations

from attribution.config import OverrideRule

# A port's candidate rules in file order: (src_mac or None, rule).
PortRules = tuple[tuple[bytes | None, OverrideRule], ...]


class OverrideTable:
    __slots__ = ("_by_exporter", "_by_port", "rules")

    def __init__(self, rules: tuple[OverrideRule, ...] = ()) -> None:
        self.rules = rules
        by_port: dict[tuple[str, int], list[tuple[bytes | None, OverrideRule]]] = {}
        for rule in rules:
            by_port.setdefault((rule.exporter, rule.in_if), []).append((rule.src_mac, rule))
        self._by_port: dict[tuple[str, int], PortRules] = {k: tuple(v) for k, v in by_port.items()}
        self._by_exporter: dict[str, dict[int, PortRules]] = {}
        for (exporter, in_if), rules_ in self._by_port.items():
            self._by_exporter.setdefault(exporter, {})[in_if] = rules_

    def __len__(self) -> int:
        return len(self.rules)

    def ports_of(self, exporter: str) -> dict[int, PortRules]:
        """The ifIndexes of ``exporter`` that have rules, with their rules in file order."""
        return self._by_exporter.get(exporter, {})

    def for_port(self, exporter: str, in_if: int) -> PortRules | None:
        return self._by_port.get((exporter, in_if))

    def match(self, exporter: str, in_if: int, src_mac: bytes | None) -> OverrideRule | None:
        candidates = self._by_port.get((exporter, in_if))
        if candidates is None:
            return None
        return first_match(candidates, src_mac)


def first_match(candidates: PortRules, src_mac: bytes | None) -> OverrideRule | None:
    for mac, rule in candidates:
        if mac is None or mac == src_mac:
            return rule
    return None
