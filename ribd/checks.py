"""Checks for untrusted values, shared by the feed parser and the snapshot loader. No I/O.

Both read input an attacker may have written (a forged feed line, a crafted
snapshot file) and both build the same RIB objects, so they check values the
same way: a snapshot written from any RIB the parser can build must load, and
nothing either accepts may break a reader later (ListRouters, a metrics
scrape, the next snapshot). Each check returns the value (canonical where that
matters) or raises ``BadValue`` naming what is wrong; callers turn that into
their own error type.

Error messages describe values with ``show``, which never recurses and never
formats more than a few dozen characters: ``repr`` of a list nested a thousand
deep raises RecursionError, and of a 10 MB string costs 10 MB.
"""

from __future__ import annotations

import math
import socket
from typing import Any

MAX_TEXT = 256  # free-text attributes (aggregator), names, reasons kept per router
MAX_DEPTH = 32  # JSON nesting: ExaBGP's deepest line is ~10 levels
# Latest time a protobuf Timestamp can hold (9999-12-31T23:59:59Z): a stamp we
# keep must survive every reader.
MAX_TIME = 253402300799.0
_U32 = 0xFFFFFFFF
_ADDRESS_CHARS = 45  # INET6_ADDRSTRLEN - 1
_CACHE_SIZE = 65536

_pton = socket.inet_pton
_ntop = socket.inet_ntop
_AF_INET = socket.AF_INET
_AF_INET6 = socket.AF_INET6


class BadValue(ValueError):
    """An untrusted value failed a check; the message names it and why."""


def show(value: Any, limit: int = 40) -> str:
    """A short description of an untrusted value for an error message.

    Scalars are shown (strings cut to ``limit``), containers by kind and size
    only: no recursion, bounded cost, whatever the value is.
    """
    kind = type(value)
    if kind is str:
        text = repr(value[:limit])
        return text if len(value) <= limit else f"{text}... ({len(value)} chars)"
    if value is None or kind is bool or kind is float:
        return repr(value)
    if kind is int:
        bits = value.bit_length()
        return str(value) if bits <= 64 else f"an integer of {bits} bits"
    if kind is list or kind is tuple:
        return f"a list of {len(value)} items"
    if kind is dict:
        return f"an object of {len(value)} keys"
    if kind is bytes or kind is bytearray:
        return f"{len(value)} bytes"
    return f"a {kind.__name__}"


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether a decoded JSON value nests containers more than ``limit`` deep (no recursion)."""
    stack = [(value, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        kind = type(item)
        if kind is dict:
            children = item.values()
        elif kind is list:
            children = item
        else:
            continue
        if depth >= limit:
            return True
        for child in children:
            if type(child) is dict or type(child) is list:
                push((child, depth + 1))
    return False


# text -> canonical text, for texts seen valid (never replaced: callers keep .get)
KNOWN_ADDRESSES: dict[str, str] = {}
_addresses = KNOWN_ADDRESSES
_ipv4s: set[str] = set()


def canonical_address(text: Any) -> str | None:
    """The canonical text of an IPv4 or IPv6 address, None if ``text`` is not one.

    Canonical is ``inet_ntop``'s form (what the config's addresses are
    compared in). Results are cached: the feed checks every line's peer and
    next hop, and there are few distinct ones.
    """
    if type(text) is not str:
        return None
    hit = _addresses.get(text)
    if hit is not None:
        return hit
    if len(text) > _ADDRESS_CHARS:
        return None
    family = _AF_INET6 if ":" in text else _AF_INET
    try:
        canonical = _ntop(family, _pton(family, text))
    except (OSError, ValueError):  # ValueError: an embedded NUL
        return None
    if len(_addresses) >= _CACHE_SIZE:
        _addresses.clear()
    _addresses[text] = canonical
    return canonical


def is_ipv4(text: Any) -> bool:
    """Whether ``text`` is a dotted-quad IPv4 address (a BGP identifier, cluster id)."""
    if type(text) is not str:
        return False
    if text in _ipv4s:
        return True
    if len(text) > 15:
        return False
    try:
        ok = _ntop(_AF_INET, _pton(_AF_INET, text)) == text
    except (OSError, ValueError):
        return False
    if ok:
        if len(_ipv4s) >= _CACHE_SIZE:
            _ipv4s.clear()
        _ipv4s.add(text)
    return ok


def address(value: Any, what: str) -> str:
    """An IPv4 or IPv6 address, canonical (neighbor, next hop)."""
    canonical = canonical_address(value)
    if canonical is None:
        raise BadValue(f"{what} is not an IP address: {show(value)}")
    return canonical


def ipv4(value: Any, what: str, *, empty: bool = False) -> str:
    """A dotted-quad IPv4 address (router id, originator id, cluster id); "" if ``empty``."""
    if not is_ipv4(value) and not (empty and value == ""):
        raise BadValue(f"{what} is not an IPv4 address: {show(value)}")
    return value


def ipv4_list(values: Any, what: str) -> tuple[str, ...]:
    if type(values) not in (list, tuple):
        raise BadValue(f"{what} is not a list of IPv4 addresses: {show(values)}")
    for v in values:
        if not is_ipv4(v):
            raise BadValue(f"{what} has an entry that is not an IPv4 address: {show(v)}")
    return tuple(values)


def u32(value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value <= _U32:
        raise BadValue(f"{what} is not a 32-bit unsigned integer: {show(value)}")
    return value


def u32_list(values: Any, what: str) -> tuple[int, ...]:
    """A list of 32-bit unsigned integers (AS numbers, communities)."""
    if type(values) is not list:
        raise BadValue(f"{what} is not a list: {show(values)}")
    for v in values:
        if type(v) is not int or not 0 <= v <= _U32:
            raise BadValue(f"{what} has a value that is not 32-bit unsigned: {show(v)}")
    return tuple(values)


def u8(value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value <= 255:
        raise BadValue(f"{what} is not an integer 0-255: {show(value)}")
    return value


def timestamp(value: Any, what: str) -> float:
    """Unix seconds: a finite number from 0 to MAX_TIME."""
    if type(value) not in (int, float) or not 0 <= value <= MAX_TIME or math.isnan(value):
        raise BadValue(f"{what} is not a time (0 to {MAX_TIME:.0f} s): {show(value)}")
    return float(value)


def text(value: Any, what: str, limit: int = MAX_TEXT) -> str:
    if type(value) is not str:
        raise BadValue(f"{what} is not a string: {show(value)}")
    if len(value) > limit:
        raise BadValue(f"{what} is longer than {limit} characters ({len(value)})")
    return value


def texts(values: Any, what: str) -> tuple[str, ...]:
    """A list of strings of any length (extended communities)."""
    if type(values) is not list or any(type(v) is not str for v in values):
        raise BadValue(f"{what} is not a list of strings: {show(values)}")
    return tuple(values)


__all__ = [
    "KNOWN_ADDRESSES",
    "MAX_DEPTH",
    "MAX_TEXT",
    "MAX_TIME",
    "BadValue",
    "address",
    "canonical_address",
    "ipv4",
    "ipv4_list",
    "is_ipv4",
    "show",
    "text",
    "texts",
    "timestamp",
    "too_deep",
    "u8",
    "u32",
    "u32_list",
]
