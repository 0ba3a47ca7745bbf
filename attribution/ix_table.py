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
from itertools import chain

import numpy as np

from attribution.compiledview import view_signature
from ribd.attributes import PathAttributes
from ribd.events import FAMILIES
from ribd.rib import Rib, slot_value

RIB, PEERINGDB, MANUAL = "rib", "peeringdb", "manual"
MAX_PATCH = 50_000  # changed prefixes read one by one; beyond, the table is walked again
PATCH_CHUNK = 2048  # changed prefixes read per hold of the RIB lock
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
        return set(old) != set(facts)

    def _update_family(self, rib: Rib, family: str) -> bool:
        table = rib.tables[family]
        with rib.lock:
            sig, seq, changes = self._signature(rib, family), table.change_seq, None
            old = self._state.get(family)
            if old is not None and old[0] == sig:
                if old[1] == seq:
                    return False
                changes = table.changes_since(old[1])
        if changes is not None and len(changes) <= MAX_PATCH:
            return self._patch(rib, family, sig, seq, changes)
        return self._walk(rib, family)

    def _signature(self, rib: Rib, family: str) -> tuple:
        """What the router's table is made of: a new one means a walk. Under the lock."""
        r = rib.routers.get(self.neighbor)
        if r is None:
            return ()
        # The layout a compiled view signs with (slots, stale flag, the slots'
        # births): the table read from it is as stale as such a view would be.
        return (id(r), *view_signature(r, family, rib.tables[family]))

    def _patch(self, rib: Rib, family: str, sig: tuple, seq: int, changes: list[str]) -> bool:
        """Re-read only the prefixes changed since the last round, a chunk per lock hold."""
        changed = False
        store = rib.tables[family].store
        todo = list(dict.fromkeys(changes))
        for start in range(0, len(todo), PATCH_CHUNK):
            with rib.lock:
                values = []
                for prefix in todo[start : start + PATCH_CHUNK]:
                    entry = store.get(prefix) if sig else None
                    values.append(slot_value(entry, *sig[1:4])[0] if entry is not None else None)
            for prefix, value in zip(todo[start : start + PATCH_CHUNK], values, strict=True):
                changed |= self._set(
                    family, prefix, self._facts(value) if value is not None else ()
                )
        self._state[family] = (sig, seq)
        self.patches += 1
        return changed

    def _walk(self, rib: Rib, family: str) -> bool:
        """Every route of the router, read as compiled views read them: under the
        lock only the store's merge and a copy of its entry references; per
        distinct entry (entries are interned) the facts once, outside it."""
        table = rib.tables[family]
        rib.merge_now(family)
        with rib.lock:
            sig, seq = self._signature(rib, family), table.change_seq
            table.store.merge()
            keys = table.store.keys  # never mutated: a new array per merge
            entries = table.store.values.tolist() if sig else []
        memo: dict[int, tuple] = {}
        hits: list[int] = []
        found: list[tuple] = []
        for i, entry in enumerate(entries):
            if entry is None:
                continue
            facts = memo.get(id(entry))
            if facts is None:
                value = slot_value(entry, *sig[1:4])[0]
                facts = memo[id(entry)] = self._facts(value) if value is not None else ()
            if facts:
                hits.append(i)
                found.append(facts)
        del entries, memo
        prefixes = table.store.texts(keys[np.array(hits, dtype=np.intp)]) if hits else []
        before = set(self.counts)
        kept = {k: v for k, v in self.by_prefix.items() if k[0] != family}
        kept.update(((family, p), f) for p, f in zip(prefixes, found, strict=True))
        self.by_prefix = kept
        self.counts = Counter(chain.from_iterable(kept.values()))
        self._state[family] = (sig, seq)
        self.walks += 1
        return before != set(self.counts)


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
