"""The learned IX table: MAC -> peer AS, from facts. No I/O.

Three kinds of facts meet here:

* **RIB next hops** (``NextHops``): a route learned from an IX peer carries
  the peer's IX LAN address as its BGP next hop (when nothing rewrote it on
  the way), and the first AS of its path is that peer. Kept per router and
  brought up to date from the RIB's change log, so a refresh costs the
  prefixes that changed, not a walk of the table (a walk only when the log
  no longer reaches back or the router's table was replaced).
* **PeeringDB** ``netixlan``: IX LAN address -> AS, for peers whose routes
  we do not hold. A RIB next hop beats it for the same address.
* **The neighbor table** (SNMP or a file): IX LAN address -> MAC.

``build_table`` joins them: a MAC's addresses, each address's AS, and the
source of each fact. A MAC whose addresses say two ASes (or one address two
ASes) is a **conflict**: listed, counted, and not used. Manual MAC-qualified
``[[overrides]]`` on the IX's ports are listed as facts too (source
``manual``); they win in resolution anyway (``attribution.ix_resolve``).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from ribd.attributes import PathAttributes
from ribd.events import FAMILIES
from ribd.rib import Rib, slot_value

RIB, PEERINGDB, MANUAL = "rib", "peeringdb", "manual"
MAX_PATCH = 50_000  # changed prefixes read one by one; beyond, the table is walked again
_Net = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Fact:
    """One thing we know about an IX LAN address, and where it comes from."""

    address: str  # "" for a manual rule (keyed by MAC only)
    peer_as: int
    source: str  # RIB | PEERINGDB | MANUAL
    detail: str = ""  # "3 routes", the rule's name


@dataclass(frozen=True, slots=True)
class MacEntry:
    mac: bytes
    peer_as: int  # 0: unknown, or a conflict
    addresses: tuple[str, ...]
    facts: tuple[Fact, ...]
    conflict: bool = False
    reason: str = ""  # why there is no usable AS (conflict, no fact)

    @property
    def usable(self) -> bool:
        return self.peer_as != 0 and not self.conflict


class Networks:
    """Membership of addresses in the IX LAN prefixes, cached per address text."""

    def __init__(self, prefixes: Iterable[str]) -> None:
        self.nets: tuple[_Net, ...] = tuple(ipaddress.ip_network(p) for p in prefixes)
        self._seen: dict[str, bool] = {}

    def __contains__(self, address: str) -> bool:
        hit = self._seen.get(address)
        if hit is None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                hit = False
            else:
                hit = any(ip.version == n.version and ip in n for n in self.nets)
            if len(self._seen) > 200_000:  # next hops are few; never let it grow unbounded
                self._seen.clear()
            self._seen[address] = hit
        return hit


class NextHops:
    """One router's routes whose next hop is in the IX LANs: next hop -> AS -> routes."""

    def __init__(self, neighbor: str, networks: Networks) -> None:
        self.neighbor = neighbor
        self.networks = networks
        self.by_prefix: dict[tuple[str, str], tuple[tuple[str, int], ...]] = {}
        self.counts: Counter[tuple[str, int]] = Counter()
        self._state: dict[str, tuple] = {}  # family -> (router signature, change seq)
        self.walks = 0  # full walks of the router's table (tests, stats)
        self.patches = 0  # updates from the change log

    def next_hops(self) -> dict[str, dict[int, int]]:
        out: dict[str, dict[int, int]] = {}
        for (nh, asn), n in self.counts.items():
            if n > 0:
                out.setdefault(nh, {})[asn] = n
        return out

    def update(self, rib: Rib) -> bool:
        """Catch up with the RIB; True when the facts changed."""
        changed = False
        for family in FAMILIES:
            changed |= self._update_family(rib, family)
        return changed

    def _facts(self, value: object) -> tuple[tuple[str, int], ...]:
        paths = (value,) if type(value) is PathAttributes else (a for _, a in value)  # type: ignore[attr-defined]
        out = []
        for a in paths:
            if a.peer_as and a.next_hop in self.networks:
                out.append((a.next_hop, a.peer_as))
        return tuple(dict.fromkeys(out))

    def _set(self, family: str, prefix: str, facts: tuple[tuple[str, int], ...]) -> bool:
        key = (family, prefix)
        old = self.by_prefix.get(key, ())
        if old == facts:
            return False
        for f in old:
            self.counts[f] -= 1
            if self.counts[f] <= 0:
                del self.counts[f]
        for f in facts:
            self.counts[f] += 1
        if facts:
            self.by_prefix[key] = facts
        else:
            self.by_prefix.pop(key, None)
        return {f for f in old} != {f for f in facts}

    def _update_family(self, rib: Rib, family: str) -> bool:
        table = rib.tables[family]
        with rib.lock:
            r = rib.routers.get(self.neighbor)
            if r is None:
                sig: tuple = ()
            else:
                fs = r.families[family]
                sig = (id(r), fs.slot, fs.stale_slot, r.current_stale)
            seq = table.change_seq
            old = self._state.get(family)
            if old is not None and old[0] == sig:
                if old[1] == seq:
                    return False
                changes = table.changes_since(old[1])
                if changes is not None and len(changes) <= MAX_PATCH:
                    changed = False
                    store = table.store
                    for prefix in set(changes):
                        entry = store.get(prefix) if sig else None
                        value = slot_value(entry, *sig[1:])[0] if entry is not None else None
                        facts = self._facts(value) if value is not None else ()
                        changed |= self._set(family, prefix, facts)
                    self._state[family] = (sig, seq)
                    self.patches += 1
                    return changed
            items = table.store.items() if sig else []
        # A walk: outside the lock (entries are immutable tuples).
        before = {k: v for k, v in self.by_prefix.items() if k[0] == family}
        for k in before:
            self._set(family, k[1], ())
        for prefix, entry in items:
            value = slot_value(entry, *sig[1:])[0]  # type: ignore[arg-type]
            if value is not None:
                facts = self._facts(value)
                if facts:
                    self._set(family, prefix, facts)
        self._state[family] = (sig, seq)
        self.walks += 1
        after = {k: v for k, v in self.by_prefix.items() if k[0] == family}
        return {v for f in before.values() for v in f} != {v for f in after.values() for v in f}


def build_table(
    networks: Networks,
    next_hops: dict[str, dict[int, int]],
    peeringdb: dict[str, int],
    neighbors: dict[str, bytes],
    manual: Iterable[tuple[bytes, int, str]] = (),
) -> dict[bytes, MacEntry]:
    """MAC -> entry, from every fact that falls in the IX LAN prefixes.

    ``next_hops``: address -> AS -> routes (RIB); ``peeringdb``: address ->
    AS; ``neighbors``: address -> MAC; ``manual``: (MAC, AS, rule name).
    """
    by_mac: dict[bytes, list[str]] = {}
    for address, mac in neighbors.items():
        if address in networks:
            by_mac.setdefault(mac, []).append(address)
    manual_by_mac: dict[bytes, list[Fact]] = {}
    for mac, asn, name in manual:
        manual_by_mac.setdefault(mac, []).append(Fact("", asn, MANUAL, name))
    out: dict[bytes, MacEntry] = {}
    for mac in sorted({*by_mac, *manual_by_mac}):
        addresses = tuple(sorted(by_mac.get(mac, ()), key=_address_key))
        facts: list[Fact] = []
        ases: set[int] = set()
        reasons: list[str] = []
        for address in addresses:
            rib = next_hops.get(address)
            if rib:
                for asn, routes in sorted(rib.items()):
                    facts.append(Fact(address, asn, RIB, f"{routes} route{'s' * (routes != 1)}"))
                ases.update(rib)
                if len(rib) > 1:
                    reasons.append(
                        f"next hop {address} has routes from "
                        + " and ".join(f"AS{a}" for a in sorted(rib))
                    )
                pdb = peeringdb.get(address)
                if pdb is not None and pdb not in rib:
                    facts.append(Fact(address, pdb, PEERINGDB, "not used: the RIB says otherwise"))
            elif address in peeringdb:
                facts.append(Fact(address, peeringdb[address], PEERINGDB))
                ases.add(peeringdb[address])
        facts.extend(manual_by_mac.get(mac, ()))
        conflict = len(ases) > 1
        if conflict and not reasons:
            reasons.append(
                "its addresses belong to " + " and ".join(f"AS{a}" for a in sorted(ases))
            )
        elif not ases:
            reasons.append("no route has its addresses as next hop, and PeeringDB has none")
        out[mac] = MacEntry(
            mac=mac,
            peer_as=next(iter(ases)) if len(ases) == 1 else 0,
            addresses=addresses,
            facts=tuple(facts),
            conflict=conflict,
            reason="; ".join(reasons),
        )
    return out


def _address_key(address: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(address)
    return ip.version, int(ip)
