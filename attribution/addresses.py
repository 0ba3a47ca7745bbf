"""Flow addresses as the resolver keys them: 16 bytes, IPv4 as ::ffff:a.b.c.d.

One packing for both families lets a batch carry src/dst/next hop as plain
16-byte columns; the sentinels below are the "none" values of those columns.
"""

from __future__ import annotations

import re
import socket

V4_MAPPED = b"\x00" * 10 + b"\xff\xff"
NO_MAC = b"\x00" * 6
NO_NEXT_HOP = b"\x00" * 16
V4_ZERO = V4_MAPPED + b"\x00" * 4  # 0.0.0.0: exporters send it for "no BGP next hop"


def pack_address(text: str) -> bytes:
    """Text address -> 16 bytes (IPv4 as ::ffff:a.b.c.d). Raises ValueError."""
    if ":" in text:
        try:
            return socket.inet_pton(socket.AF_INET6, text)
        except (OSError, ValueError):
            raise ValueError(f"{text[:64]!r} is not an IP address") from None
    try:
        return V4_MAPPED + socket.inet_pton(socket.AF_INET, text)
    except (OSError, ValueError):
        raise ValueError(f"{text[:64]!r} is not an IP address") from None


def unpack_address(packed: bytes) -> str:
    if packed[:12] == V4_MAPPED:
        return socket.inet_ntop(socket.AF_INET, packed[12:])
    return socket.inet_ntop(socket.AF_INET6, packed)


def canonical_exporter(text: str) -> str:
    return unpack_address(pack_address(text))


_MAC = re.compile(r"^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$|^[0-9a-f]{4}(\.[0-9a-f]{4}){2}$")


def parse_mac(text: str) -> bytes:
    """``aa:bb:cc:dd:ee:ff``, ``aa-bb-...`` or ``aabb.ccdd.eeff`` -> 6 bytes."""
    t = text.strip().lower()
    if not _MAC.match(t):
        raise ValueError(f"{text!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    return bytes.fromhex(re.sub(r"[:.-]", "", t))


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)
