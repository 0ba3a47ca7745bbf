"""Neighbor tables and PeeringDB files -> typed facts. No I/O: bytes in, facts out.

Everything here is hostile input: a router's SNMP agent, a file another
program writes, a JSON document downloaded from PeeringDB. Each reader takes
what it can use and counts the rest by reason (``bad``), keeping the first
few reasons in words (``errors``) for the log and ``ix show``; one bad entry
never costs the good ones around it, and nothing here raises on content.
Limits are explicit: ``MAX_INPUT_BYTES`` per document, ``MAX_ENTRIES``
entries kept.

Formats:

* ``ip -j neigh`` (iproute2 JSON): a list of objects with ``dst`` and
  ``lladdr``; entries in state FAILED or INCOMPLETE (no MAC) are skipped.
* CSV: one ``address,mac`` per line; blank lines, ``#`` comments and a header
  line ``address,mac`` are skipped; further columns are ignored.
* SNMP IP-MIB ``ipNetToPhysicalPhysAddress`` (1.3.6.1.2.1.4.35.1.4): rows of
  (OID, value) whose index is ifIndex, address type (1 IPv4, 2 IPv6), the
  address length and its bytes; the value is the MAC (6 bytes).
* PeeringDB ``netixlan``: ``{"data": [{"asn": N, "ipaddr4": ..., "ipaddr6":
  ...}, ...]}`` (the API's answer) or the bare list.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field

import orjson

from attribution.config import parse_mac

MAX_INPUT_BYTES = 16 * 1024 * 1024  # one neighbor table or PeeringDB document
MAX_ENTRIES = 100_000  # addresses kept per document
MAX_ERRORS = 10  # reasons kept in words per document
_SKIP_STATES = {"FAILED", "INCOMPLETE"}
IP_NET_TO_PHYSICAL_PHYS_ADDRESS = (1, 3, 6, 1, 2, 1, 4, 35, 1, 4)


@dataclass(slots=True)
class Read:
    """What one document gave: facts keyed by address, and what was refused."""

    source: str  # "ip-json", "csv", "snmp", "peeringdb"
    macs: dict[str, bytes] = field(default_factory=dict)  # address -> MAC (neighbor tables)
    ases: dict[str, int] = field(default_factory=dict)  # address -> AS (PeeringDB)
    bad: Counter[str] = field(default_factory=Counter)  # reason -> entries refused
    errors: list[str] = field(default_factory=list)  # the first reasons, in words
    entries: int = 0  # entries seen (kept or not)

    def refuse(self, reason: str, what: str) -> None:
        self.bad[reason] += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(f"{reason}: {what[:200]}")

    def fatal(self, reason: str, what: str) -> Read:
        """The whole document is unusable (not JSON, too large, wrong shape)."""
        self.refuse(reason, what)
        self.macs.clear()
        self.ases.clear()
        return self

    def keep_mac(self, address: object, mac: object, where: str) -> None:
        addr = _address(address)
        if addr is None:
            self.refuse("address", f"{where}: {address!r} is not an IP address")
            return
        if isinstance(mac, str):
            try:
                mac = parse_mac(mac)
            except ValueError:
                mac = None
        if not isinstance(mac, bytes) or len(mac) != 6:
            self.refuse("mac", f"{where}: {addr}: not a MAC address")
            return
        if mac == b"\x00" * 6 or mac[0] & 1:  # none, or a multicast/broadcast address
            self.refuse("mac", f"{where}: {addr}: {mac.hex(':')} is not a unicast MAC")
            return
        if addr not in self.macs and len(self.macs) >= MAX_ENTRIES:
            self.refuse("too_many", f"more than {MAX_ENTRIES} addresses: the rest skipped")
            return
        old = self.macs.get(addr)
        if old is not None and old != mac:
            self.refuse("duplicate", f"{where}: {addr} has two MACs: {old.hex(':')} kept")
            return
        self.macs[addr] = mac


def _address(value: object) -> str | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return str(ipaddress.ip_address(value.split("%", 1)[0]))  # fe80::1%eth0
    except ValueError:
        return None


def _json(data: bytes, read: Read) -> object:
    if len(data) > MAX_INPUT_BYTES:
        read.fatal("too_large", f"{len(data)} bytes, more than {MAX_INPUT_BYTES}")
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        read.fatal("json", f"not JSON: {exc}")
        return None


def parse_ip_neigh_json(data: bytes) -> Read:
    """``ip -j neigh show`` output -> address -> MAC."""
    read = Read("ip-json")
    doc = _json(data, read)
    if read.bad:
        return read
    if not isinstance(doc, list):
        return read.fatal("shape", f"expected a JSON list of neighbors, got {type(doc).__name__}")
    for i, entry in enumerate(doc):
        read.entries += 1
        if not isinstance(entry, dict):
            read.refuse("shape", f"entry {i}: not an object")
            continue
        state = entry.get("state")
        states = (
            set(state)
            if isinstance(state, list) and all(isinstance(s, str) for s in state)
            else set()
        )
        if states & _SKIP_STATES or ("lladdr" not in entry and states):
            continue  # resolution failed or pending: no MAC to learn
        read.keep_mac(entry.get("dst"), entry.get("lladdr"), f"entry {i}")
    return read


def parse_neighbor_csv(data: bytes) -> Read:
    """``address,mac`` lines -> address -> MAC."""
    read = Read("csv")
    if len(data) > MAX_INPUT_BYTES:
        return read.fatal("too_large", f"{len(data)} bytes, more than {MAX_INPUT_BYTES}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return read.fatal("encoding", f"not UTF-8: {exc}")
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cols = [c.strip().strip('"') for c in line.split(",")]
        if n == 1 and cols[0].lower() in ("address", "ip", "ip_address"):
            continue
        read.entries += 1
        if len(cols) < 2:
            read.refuse("shape", f"line {n}: expected address,mac")
            continue
        read.keep_mac(cols[0], cols[1], f"line {n}")
    return read


def parse_snmp_rows(rows: list[tuple[tuple[int, ...], bytes]]) -> Read:
    """ipNetToPhysicalPhysAddress rows (OID, value) -> address -> MAC."""
    read = Read("snmp")
    base = IP_NET_TO_PHYSICAL_PHYS_ADDRESS
    for oid, value in rows:
        read.entries += 1
        if read.entries > 4 * MAX_ENTRIES:
            read.refuse("too_many", "the agent answered too many rows: the rest skipped")
            break
        if tuple(oid[: len(base)]) != base:
            read.refuse("oid", f"{'.'.join(map(str, oid))[:80]}: outside the table")
            continue
        index = tuple(oid[len(base) :])
        addr = _index_address(index)
        if addr is None:
            read.refuse("index", f"{'.'.join(map(str, index))[:80]}: not ifIndex.type.len.addr")
            continue
        if not isinstance(value, bytes | bytearray):
            read.refuse("mac", f"{addr}: the value is not an octet string")
            continue
        read.keep_mac(addr, bytes(value), "snmp")
    return read


def _index_address(index: tuple[int, ...]) -> str | None:
    """ipNetToPhysicalTable index (ifIndex, type, length, bytes...) -> address."""
    if len(index) < 3:
        return None
    kind, length, raw = index[1], index[2], index[3:]
    if len(raw) != length or not all(0 <= b <= 255 for b in raw):
        return None
    if kind == 1 and length == 4:
        return str(ipaddress.IPv4Address(bytes(raw)))
    if kind == 2 and length == 16:
        return str(ipaddress.IPv6Address(bytes(raw)))
    return None


def parse_peeringdb(data: bytes) -> Read:
    """PeeringDB ``netixlan`` records -> IX LAN address -> AS."""
    read = Read("peeringdb")
    doc = _json(data, read)
    if read.bad:
        return read
    records = doc.get("data") if isinstance(doc, dict) else doc
    if not isinstance(records, list):
        return read.fatal("shape", 'expected {"data": [netixlan records]} or a list of them')
    for i, rec in enumerate(records):
        read.entries += 1
        if not isinstance(rec, dict):
            read.refuse("shape", f"record {i}: not an object")
            continue
        asn = rec.get("asn")
        if not isinstance(asn, int) or isinstance(asn, bool) or not 0 < asn <= 0xFFFFFFFF:
            read.refuse("asn", f"record {i}: asn {asn!r} is not an AS number")
            continue
        for key in ("ipaddr4", "ipaddr6"):
            value = rec.get(key)
            if value is None or value == "":
                continue
            addr = _address(value)
            if addr is None:
                read.refuse("address", f"record {i}: {key} {value!r} is not an IP address")
                continue
            old = read.ases.get(addr)
            if old is not None and old != asn:
                read.refuse("duplicate", f"record {i}: {addr} is AS{old} and AS{asn}: dropped")
                read.ases[addr] = 0  # marked: neither is believed
                continue
            if old is None and len(read.ases) >= MAX_ENTRIES:
                read.refuse("too_many", f"more than {MAX_ENTRIES} addresses: the rest skipped")
                continue
            read.ases[addr] = asn
    read.ases = {a: n for a, n in read.ases.items() if n}
    return read


NEIGHBOR_PARSERS = {"ip-json": parse_ip_neigh_json, "csv": parse_neighbor_csv}
