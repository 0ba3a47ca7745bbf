"""NLRI fields of raw BGP UPDATEs -> prefix texts, a whole list at a time. No I/O.

RFC 4271 4.3 (IPv4 NLRI and withdrawn routes), RFC 4760 (the same encoding
inside MP_REACH_NLRI / MP_UNREACH_NLRI, IPv6 too) and RFC 7911 (a 4-octet
path identifier before each prefix when ADD-PATH receive was negotiated for
the family). A prefix is one length octet and just enough octets to hold
that many bits; trailing bits "are irrelevant" (RFC 4271), so they are
masked off rather than refused, and every prefix comes out in the canonical
text the JSON path produces (``192.0.2.0/24``, ``2001:db8::/32``).

A table is 577 k prefixes: the per-prefix work is one slice, one padded
``int.from_bytes`` and one format, with the lengths' constants looked up in
tables built once. Anything malformed (a length beyond the family's bits, a
prefix running past the field) raises ``NlriError`` for the whole field:
RFC 7606 5.3, an NLRI field that cannot be parsed cannot be partly trusted.
"""

from __future__ import annotations

import socket

_ntoa = socket.inet_ntoa
_ntop = socket.inet_ntop
_AF_INET6 = socket.AF_INET6
_from_bytes = int.from_bytes


class NlriError(ValueError):
    """An NLRI field that cannot be decoded; the message says where and why."""


# Per prefix length: octets on the wire, the network mask, and the zero
# padding that makes the octets a full address.
_V4_OCTETS = [(n + 7) >> 3 for n in range(33)]
_V4_MASK = [(0xFFFFFFFF << (32 - n)) & 0xFFFFFFFF for n in range(33)]
_V4_PAD = [b"\0" * (4 - o) for o in _V4_OCTETS]
_V6_OCTETS = [(n + 7) >> 3 for n in range(129)]
_V6_MASK = [((1 << 128) - 1) ^ ((1 << (128 - n)) - 1) for n in range(129)]
_V6_PAD = [b"\0" * (16 - o) for o in _V6_OCTETS]


# Mask of the last octet of a prefix of each length (IPv4 text is built from octets).
_LAST = [0] + [(0xFF << (7 - (n - 1) % 8)) & 0xFF for n in range(1, 33)]


def ipv4_prefixes(data: bytes, add_path: bool) -> tuple[list[str], list[int] | None]:
    """The prefixes (and, with ADD-PATH, their path ids) of an IPv4 NLRI field."""
    if add_path:
        return _ipv4_with_ids(data)
    out: list[str] = []
    append = out.append
    end = len(data)
    at = 0
    last = _LAST
    try:
        # The octets formatted straight from the bytes: 2.5x inet_ntoa's way.
        while at < end:
            n = data[at]
            if n > 24:
                if n > 32:
                    raise NlriError(f"IPv4 NLRI: prefix length {n} at octet {at} exceeds 32")
                append(f"{data[at + 1]}.{data[at + 2]}.{data[at + 3]}.{data[at + 4] & last[n]}/{n}")
                at += 5
            elif n > 16:
                append(f"{data[at + 1]}.{data[at + 2]}.{data[at + 3] & last[n]}.0/{n}")
                at += 4
            elif n > 8:
                append(f"{data[at + 1]}.{data[at + 2] & last[n]}.0.0/{n}")
                at += 3
            elif n:
                append(f"{data[at + 1] & last[n]}.0.0.0/{n}")
                at += 2
            else:
                append("0.0.0.0/0")
                at += 1
    except IndexError:
        at = end + 1
    if at > end:
        raise NlriError(f"IPv4 NLRI: the last prefix runs past the field of {end} octets")
    return out, None


def _ipv4_with_ids(data: bytes) -> tuple[list[str], list[int] | None]:
    out: list[str] = []
    ids: list[int] = []
    end = len(data)
    at = 0
    octets, masks, pads = _V4_OCTETS, _V4_MASK, _V4_PAD
    try:
        while at < end:
            if at + 5 > end:
                raise NlriError(f"IPv4 NLRI: path id at octet {at} runs past the field")
            ids.append(_from_bytes(data[at : at + 4], "big"))
            at += 4
            length = data[at]
            stop = at + 1 + octets[length]
            if stop > end:
                raise NlriError(f"IPv4 NLRI: prefix /{length} at octet {at} runs past the field")
            value = _from_bytes(data[at + 1 : stop] + pads[length], "big") & masks[length]
            out.append(f"{_ntoa(value.to_bytes(4, 'big'))}/{length}")
            at = stop
    except IndexError:
        raise NlriError(f"IPv4 NLRI: prefix length {data[at]} at octet {at} exceeds 32") from None
    return out, ids


def ipv6_prefixes(data: bytes, add_path: bool) -> tuple[list[str], list[int] | None]:
    """The prefixes (and, with ADD-PATH, their path ids) of an IPv6 NLRI field."""
    out: list[str] = []
    ids: list[int] | None = [] if add_path else None
    append = out.append
    end = len(data)
    at = 0
    octets, masks, pads = _V6_OCTETS, _V6_MASK, _V6_PAD
    try:
        while at < end:
            if ids is not None:
                if at + 5 > end:
                    raise NlriError(f"IPv6 NLRI: path id at octet {at} runs past the field")
                ids.append(_from_bytes(data[at : at + 4], "big"))
                at += 4
            length = data[at]
            stop = at + 1 + octets[length]
            if stop > end:
                raise NlriError(f"IPv6 NLRI: prefix /{length} at octet {at} runs past the field")
            value = _from_bytes(data[at + 1 : stop] + pads[length], "big") & masks[length]
            append(f"{_ntop(_AF_INET6, value.to_bytes(16, 'big'))}/{length}")
            at = stop
    except IndexError:
        raise NlriError(f"IPv6 NLRI: prefix length {data[at]} at octet {at} exceeds 128") from None
    return out, ids
