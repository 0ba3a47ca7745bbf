"""Read paths of the RIB: longest-prefix match, exact prefix, full dumps. No I/O.

Split out of ``ribd.rib``: the functions here (``slot_value``,
``route_match``, ``all_matches``) are also what compiled lookup tables
(``attribution.fastpath``, ``attribution.viewpatch``) call, so a router's
answer is decided in one place. ``Reads`` is mixed into ``ribd.rib.Rib``.
"""

from __future__ import annotations

from collections.abc import Iterator

from ribd.attributes import PathAttributes
from ribd.entries import Overlay
from ribd.table import RouteMatch


class Reads:
    """The lookups of ``ribd.rib.Rib`` (a mixin: see the module docstring)."""

    def lookup(self, neighbor: str, family: str, key: str | bytes) -> RouteMatch | None:
        """Longest-prefix match of an address (text or packed) in one router's RIB."""
        r = self.routers.get(neighbor)
        if r is None:
            return None
        fs = r.families[family]
        slot, stale, current_stale = fs.slot, fs.stale_slot, r.current_stale
        for prefix, length, entry in self.tables[family].store.covering(key):
            value, is_stale = slot_value(entry, slot, stale, current_stale)  # type: ignore[arg-type]
            if value is not None:
                return route_match(prefix, value, is_stale, length)
        return None

    def exact(self, neighbor: str, family: str, prefix: str) -> list[RouteMatch]:
        """All paths a router has for exactly ``prefix`` (normalised), best first."""
        r = self.routers.get(neighbor)
        if r is None:
            return []
        entry = self.tables[family].store.get(prefix)
        if entry is None:
            return []
        fs = r.families[family]
        value, is_stale = slot_value(entry, fs.slot, fs.stale_slot, r.current_stale)  # type: ignore[arg-type]
        return [] if value is None else all_matches(prefix, value, is_stale)

    def routes(self, neighbor: str, family: str) -> Iterator[RouteMatch]:
        """Every best route of one router (current, then stale-only), for dumps and tests."""
        r = self.routers.get(neighbor)
        if r is None:
            return
        fs = r.families[family]
        with self.lock:
            items = self.tables[family].store.items()
        for prefix, entry in items:
            value, is_stale = slot_value(entry, fs.slot, fs.stale_slot, r.current_stale)  # type: ignore[arg-type]
            if value is not None:
                yield route_match(prefix, value, is_stale)

    def stats(self) -> dict:
        return {
            "routers": len(self.routers),
            "attribute_sets": len(self.interner),
            "attribute_cores": self.interner.cores(),  # shared by every router
            "distinct_entries": {f: t.distinct_entries for f, t in self.tables.items()},
            "prefixes_stored": {f: len(t.store) for f, t in self.tables.items()},
            "treated_as_withdraw": self.treated_as_withdraw,
            "unknown_neighbor_events": self.unknown_neighbor_events,
            "paths_over_limit": self.paths_over_limit,  # (ribd.addpath)
            "prefixes_refused": self.prefixes_refused,  # (ribd.prefix_limit)
        }


def slot_value(
    entry: tuple, slot: int, stale_slot: int | None, current_stale: bool
) -> tuple[object, bool]:
    """A router's value in ``entry`` and whether it is stale: its current slot,
    else the stale generation kept behind it."""
    if type(entry) is Overlay:  # a wide entry: a shared row and overrides (ribd.entries)
        value = entry.get(slot)
        if value is None and stale_slot is not None:
            return entry.get(stale_slot), True
        return value, current_stale
    value = entry[slot] if slot < len(entry) else None
    if value is None and stale_slot is not None and stale_slot < len(entry):
        return entry[stale_slot], True
    return value, current_stale


def route_match(prefix: str, value: object, stale: bool, length: int = -1) -> RouteMatch:
    """The best route of a slot value (one path, or an ADD-PATH set best first)."""
    if type(value) is PathAttributes:
        attrs, path_id = value, 0
    else:
        path_id, attrs = value[0]  # type: ignore[index]
    if length < 0:
        length = int(prefix.rpartition("/")[2])
    return RouteMatch(prefix, length, attrs, path_id, stale)


def all_matches(prefix: str, value: object, stale: bool) -> list[RouteMatch]:
    length = int(prefix.rpartition("/")[2])
    if type(value) is PathAttributes:
        return [RouteMatch(prefix, length, value, 0, stale)]
    return [RouteMatch(prefix, length, a, pid, stale) for pid, a in value]  # type: ignore[attr-defined]
