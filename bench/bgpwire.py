"""BGP messages as bytes, no I/O: framing, OPEN, End-of-RIB, ExaBGP 5 JSON UPDATEs packed.

The sender (``bench.bgpsend``) puts these on real sessions; kept apart so that
the packing (RFC 4271 framing, RFC 4760 MP_REACH / MP_UNREACH, RFC 6793 4-byte
AS paths, RFC 7911 path ids, UPDATEs split at 4096 bytes) can be read and
tested without a socket.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable, Sequence

MARKER = b"\xff" * 16
OPEN, UPDATE, NOTIFICATION, KEEPALIVE_TYPE = 1, 2, 3, 4
MAX_MESSAGE = 4096
AFI_SAFI = {"ipv4 unicast": (1, 1), "ipv6 unicast": (2, 1)}


def message(kind: int, payload: bytes) -> bytes:
    return MARKER + struct.pack("!HB", 19 + len(payload), kind) + payload


KEEPALIVE = message(KEEPALIVE_TYPE, b"")


def end_of_rib(family: str) -> bytes:
    afi, safi = AFI_SAFI[family]
    if (afi, safi) == (1, 1):
        return message(UPDATE, b"\x00\x00\x00\x00")
    attr = bytes((0x80, 15, 3)) + struct.pack("!HB", afi, safi)
    return message(UPDATE, b"\x00\x00" + struct.pack("!H", len(attr)) + attr)


def open_message(
    asn: int,
    router_id: str,
    *,
    hold: int = 180,
    families: Sequence[str] = ("ipv4 unicast",),
    four_octet: bool = True,
    add_path: Sequence[str] = (),
) -> bytes:
    """OPEN with one capability per optional parameter's worth (RFC 5492)."""
    caps = b""
    for fam in families:
        afi, safi = AFI_SAFI[fam]
        caps += bytes((1, 4)) + struct.pack("!HBB", afi, 0, safi)
    caps += bytes((2, 0))  # route refresh (RFC 2918)
    if four_octet:
        caps += bytes((65, 4)) + struct.pack("!I", asn)
    elif asn > 0xFFFF:
        raise ValueError(f"AS {asn} needs the 4-octet AS capability")
    if add_path:
        body = b"".join(struct.pack("!HBB", *AFI_SAFI[f], 2) for f in add_path)  # 2: send
        caps += bytes((69, len(body))) + body
    params = bytes((2, len(caps))) + caps
    my_as = asn if asn <= 0xFFFF else 23456  # AS_TRANS (RFC 6793)
    head = struct.pack("!BHH4sB", 4, my_as, hold, socket.inet_aton(router_id), len(params))
    return message(OPEN, head + params)


# -- ExaBGP JSON -> wire ----------------------------------------------------------

_SEGMENT = {"as-set": 1, "as-sequence": 2, "confed-sequence": 3, "confed-set": 4}


def _attr(flags: int, code: int, value: bytes) -> bytes:
    if len(value) > 255:
        return bytes((flags | 0x10, code)) + struct.pack("!H", len(value)) + value
    return bytes((flags, code, len(value))) + value


def _as_path(raw: dict) -> bytes:
    out = b""
    for key in sorted(raw, key=int):
        seg = raw[key]
        kind = _SEGMENT[seg["element"]]
        values = [int(a) for a in seg["value"]]
        for i in range(0, max(len(values), 1), 255):
            part = values[i : i + 255]
            out += bytes((kind, len(part))) + struct.pack(f"!{len(part)}I", *part)
    return out


def _prefix(text: str, path_id: int | None) -> bytes:
    addr, _, length = text.partition("/")
    n = int(length)
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    body = socket.inet_pton(family, addr)[: (n + 7) // 8]
    head = struct.pack("!I", path_id) if path_id is not None else b""
    return head + bytes((n,)) + body


def _path_attributes(attrs: dict) -> dict[int, bytes]:
    """Attribute code -> encoded attribute, for the keys ExaBGP 5 writes."""
    out: dict[int, bytes] = {}
    for key, value in attrs.items():
        if key == "origin":
            out[1] = _attr(0x40, 1, bytes((("igp", "egp", "incomplete").index(value),)))
        elif key == "as-path":
            out[2] = _attr(0x40, 2, _as_path(value))
        elif key == "med":
            out[4] = _attr(0x80, 4, struct.pack("!I", int(value)))
        elif key == "local-preference":
            out[5] = _attr(0x40, 5, struct.pack("!I", int(value)))
        elif key == "atomic-aggregate":
            if value:
                out[6] = _attr(0x40, 6, b"")
        elif key == "aggregator":
            asn, _, ip = str(value).partition(":")
            out[7] = _attr(0xC0, 7, struct.pack("!I", int(asn)) + socket.inet_aton(ip))
        elif key == "community":
            out[8] = _attr(0xC0, 8, b"".join(struct.pack("!HH", a, b) for a, b in value))
        elif key == "originator-id":
            out[9] = _attr(0x80, 9, socket.inet_aton(value))
        elif key == "cluster-list":
            out[10] = _attr(0x80, 10, b"".join(socket.inet_aton(c) for c in value))
        elif key == "extended-community":  # RFC 4360: 8 octets each, ExaBGP's "value"
            out[16] = _attr(0xC0, 16, b"".join(struct.pack("!Q", int(c["value"])) for c in value))
        elif key == "large-community":
            out[32] = _attr(0xC0, 32, b"".join(struct.pack("!III", *c) for c in value))
        elif key.startswith("attribute-0x") and str(value).startswith("0x"):
            # ExaBGP's name for an attribute it does not know: code and flags in hex,
            # the value as hex: sent back as it came (the real table has two).
            code, flags = (int(x, 16) for x in key[len("attribute-") :].split("-"))
            out[code] = _attr(flags & ~0x10, code, bytes.fromhex(str(value)[2:]))
        else:
            raise ValueError(f"attribute {key!r} is not encoded by bench.bgpsend")
    if attrs and 2 not in out:
        # ExaBGP leaves an empty AS_PATH out of its JSON (a route originated inside
        # the AS); the router sent one, and a receiver treats a missing one as a
        # withdrawal (RFC 7606).
        out[2] = _attr(0x40, 2, b"")
    return out


def _packed(prefixes: list[bytes], fixed: int) -> list[list[bytes]]:
    """Prefixes in runs that fit one UPDATE beside ``fixed`` bytes of the rest."""
    runs: list[list[bytes]] = [[]]
    size = fixed
    for p in prefixes:
        if runs[-1] and size + len(p) > MAX_MESSAGE:
            runs.append([])
            size = fixed
        runs[-1].append(p)
        size += len(p)
    return runs


def encode_json_update(update: dict, *, add_path: bool = False) -> list[bytes]:
    """The UPDATE message(s) of one ExaBGP 5 ``message.update`` object (4-octet AS paths).

    ``path-information`` of an NLRI is sent as its path id when ``add_path``
    (else refused: the session could not carry it).
    """

    def nlri(item: dict) -> bytes:
        pid = item.get("path-information")
        if pid is not None and not add_path:
            raise ValueError("a path id needs an ADD-PATH session")
        if pid is not None:
            pid = int(ipaddress.IPv4Address(pid)) if "." in str(pid) else int(pid)
        return _prefix(item["nlri"], pid if add_path else None)

    out: list[bytes] = []
    base = _path_attributes(update.get("attribute") or {})
    for family, hops in (update.get("announce") or {}).items():
        afi, safi = AFI_SAFI[family]
        for hop, items in hops.items():
            prefixes = [nlri(i) for i in items]
            attrs = dict(base)
            if afi == 1:
                attrs[3] = _attr(0x40, 3, socket.inet_aton(hop))
                fixed = 23 + sum(len(a) for a in attrs.values())
                for run in _packed(prefixes, fixed):
                    pa = b"".join(attrs[c] for c in sorted(attrs))
                    out.append(
                        message(
                            UPDATE, b"\x00\x00" + struct.pack("!H", len(pa)) + pa + b"".join(run)
                        )
                    )
            else:
                nh = socket.inet_pton(socket.AF_INET6, hop)
                head = struct.pack("!HBB", afi, safi, len(nh)) + nh + b"\x00"
                fixed = 23 + sum(len(a) for a in attrs.values()) + 4 + len(head)
                for run in _packed(prefixes, fixed):
                    attrs[14] = _attr(0x80, 14, head + b"".join(run))
                    pa = b"".join(attrs[c] for c in sorted(attrs))
                    out.append(message(UPDATE, b"\x00\x00" + struct.pack("!H", len(pa)) + pa))
    for family, items in (update.get("withdraw") or {}).items():
        afi, safi = AFI_SAFI[family]
        prefixes = [nlri(i) for i in items]
        if afi == 1:
            for run in _packed(prefixes, 23):
                w = b"".join(run)
                out.append(message(UPDATE, struct.pack("!H", len(w)) + w + b"\x00\x00"))
        else:
            for run in _packed(prefixes, 23 + 4 + 3):
                pa = _attr(0x80, 15, struct.pack("!HB", afi, safi) + b"".join(run))
                out.append(message(UPDATE, b"\x00\x00" + struct.pack("!H", len(pa)) + pa))
    return out


def json_updates(
    lines: Iterable[bytes], *, add_path: bool = False
) -> tuple[list[bytes], tuple[str, ...]]:
    """ExaBGP 5 JSON lines -> UPDATE messages (End-of-RIB and state lines left
    out) and the families they announce."""
    import orjson

    out: list[bytes] = []
    families: set[str] = set()
    for line in lines:
        msg = orjson.loads(line)
        if msg.get("type") != "update":
            continue
        update = msg["neighbor"]["message"].get("update")
        if not update:
            continue
        families.update(update.get("announce") or {})
        families.update(update.get("withdraw") or {})
        out.extend(encode_json_update(update, add_path=add_path))
    return out, tuple(sorted(families))
