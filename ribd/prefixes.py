"""Strict prefix and address validation before anything reaches pytricia.

pytricia reads ``10.0.0.0/abc`` as ``/0``, keeps host bits, and a 32-bit trie
answers for IPv6 addresses, so every prefix is checked and normalised here.
``socket.inet_pton`` does the address parsing in C, which keeps ingest fast.
"""

from __future__ import annotations

import socket

_AF = {4: socket.AF_INET, 6: socket.AF_INET6}


class BadPrefix(ValueError):
    pass


_LENGTHS = {str(n): n for n in range(129)}
_INET_PTON = socket.inet_pton
_V4_HOST_MASK = [(1 << (32 - n)) - 1 for n in range(33)]
_V6_HOST_MASK = [(1 << (128 - n)) - 1 for n in range(129)]


def normalise_prefix(text: str, version: int) -> str:
    """Return the canonical ``network/len`` form or raise BadPrefix.

    Host bits set is an error, not silently cleared: a route with host bits is
    a broken UPDATE, and the caller treats it as such. This runs once per
    received prefix, so the common (valid) case is kept to a few C calls.
    """
    addr, _, length_text = text.partition("/")
    length = _LENGTHS.get(length_text)
    if length is None:
        raise BadPrefix(f"bad prefix {text[:64]!r}: bad or missing length")
    if length > (32 if version == 4 else 128):
        raise BadPrefix(f"bad prefix {text[:64]!r}: length {length} too long for IPv{version}")
    try:
        packed = _INET_PTON(socket.AF_INET if version == 4 else socket.AF_INET6, addr)
    except (OSError, ValueError):
        raise BadPrefix(f"bad prefix {text[:64]!r}: not an IPv{version} address") from None
    if version == 4:
        if int.from_bytes(packed, "big") & _V4_HOST_MASK[length]:
            raise BadPrefix(f"bad prefix {text[:64]!r}: host bits set")
        # glibc's inet_pton takes only plain dotted-quad decimal (no leading
        # zeros), which is already the canonical text.
        return text
    if int.from_bytes(packed, "big") & _V6_HOST_MASK[length]:
        raise BadPrefix(f"bad prefix {text[:64]!r}: host bits set")
    return f"{socket.inet_ntop(socket.AF_INET6, packed)}/{length}"


def parse_address(text: str) -> tuple[int, bytes]:
    """Return (IP version, packed bytes) for an address, or raise ValueError."""
    if ":" in text:
        try:
            return 6, socket.inet_pton(socket.AF_INET6, text)
        except (OSError, ValueError):
            raise ValueError(f"not an IP address: {text[:64]!r}") from None
    try:
        return 4, socket.inet_pton(socket.AF_INET, text)
    except (OSError, ValueError):
        raise ValueError(f"not an IP address: {text[:64]!r}") from None


def parse_prefix_or_address(text: str) -> tuple[int, str]:
    """For lookups: ``addr`` or ``net/len``; returns (version, canonical text)."""
    if "/" in text:
        version = 6 if ":" in text else 4
        return version, normalise_prefix(text, version)
    version, packed = parse_address(text)
    return version, socket.inet_ntop(_AF[version], packed)


def canonical_address(text: str) -> str:
    version, packed = parse_address(text)
    return socket.inet_ntop(_AF[version], packed)
