"""Withdrawing a router's paths from the shared store. No I/O.

Split out of ``ribd.rib`` (a pure move, to keep that module to one job and
under ~500 lines): ``Withdrawals._withdraw`` is mixed into ``ribd.rib.Rib``
and works on its routers, tables and path-set intern dict, under its lock.
"""

from __future__ import annotations

from ribd.addpath import path_value
from ribd.attributes import PathAttributes
from ribd.entries import value_at
from ribd.events import RoutesWithdrawn


class Withdrawals:
    """The withdraw path of ``ribd.rib.Rib`` (a mixin: see the module docstring)."""

    def _withdraw(self, ev: RoutesWithdrawn) -> None:
        r = self.routers.get(ev.neighbor) or self.router(ev.neighbor)
        fs = r.families[ev.family]
        fs.writes += len(ev.prefixes)
        table = self.tables[ev.family]
        store = table.store
        locate = store.locate
        slot, stale = fs.slot, fs.stale_slot
        path_ids = ev.path_ids
        # The store's keys (an IPv4 store's are ints): what ``put`` logs.
        for i, prefix in enumerate(store.keys_of(ev.prefixes)):
            # The index found once serves every write below (FamilyTable.put).
            at, entry = locate(prefix)
            if entry is None:
                continue
            # (``value_at``: a wide entry's slot read where it lies; its ``len`` and
            # ``[i]`` build its whole value list, O(routers) a prefix; stop 58)
            if stale is not None and value_at(entry, stale) is not None:
                fs.stale_prefixes -= 1
                table.put(prefix, entry, stale, None, at=at)
                entry = store.values[at] if at >= 0 else store.get(prefix)
                if entry is None:
                    continue
            old = value_at(entry, slot)
            if old is None:
                continue
            path_id = 0 if path_ids is None else path_ids[i]
            if type(old) is PathAttributes:
                if path_id != 0:
                    continue
                new: object = None
            else:
                remaining = [p for p in old if p[0] != path_id]  # type: ignore[attr-defined]
                if len(remaining) == len(old):  # type: ignore[arg-type]
                    continue
                new = path_value(self._pathsets, remaining) if remaining else None
            fs.paths -= 1
            if new is None:
                fs.prefixes -= 1
            table.put(prefix, entry, slot, new, at=at)
