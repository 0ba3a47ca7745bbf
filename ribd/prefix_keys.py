"""The stores' integer prefix keys: ``1 << length | network number``.

Why (``ribd.store`` holds the rest): a table load's decoder makes these from
the NLRI octets with no text formatted, an int hashes to itself (its low bits
are the network's, so a dict spreads consecutive prefixes over its slots,
which ``network << 8 | length`` would not: a /24's low 16 bits would all be
equal), an IPv4 key of up to /29 is a one-digit int, and packing one for the
store's sorted arrays needs no parse. ``10.0.0.0/8`` is ``1 << 8 | 10``;
``0.0.0.0/0`` is 1. The IPv6 store's keys are the same with 128-bit
addresses (``2001:db8::/32`` is ``1 << 32 | 0x20010db8``; up to 129 bits):
``bits`` says which family (32 or 128). The compiled twins are in
``ribd._rawkeys``; the Python ones here are the reference and the fallback
(tests/ribd/test_raw_keys.py).
"""

from __future__ import annotations

import socket

try:
    from ribd._rawkeys import int_keys as _compiled_int_keys
    from ribd._rawkeys import int_texts as _compiled_int_texts
except ImportError:
    _compiled_int_keys = _compiled_int_texts = None

_from_bytes = int.from_bytes
_FAMILY = {32: ("IPv4", socket.AF_INET), 128: ("IPv6", socket.AF_INET6)}


def py_int_key(prefix: str, bits: int = 32) -> int:
    """The integer key of a canonical prefix text of the family of ``bits``
    (32: IPv4, 128: IPv6); ValueError for a text that is not one (host bits
    set, a bad length or address)."""
    name, af = _FAMILY[bits]
    address, slash, length = prefix.partition("/")
    if not slash or not length.isdigit() or (length[0] == "0" and len(length) > 1):
        raise ValueError(f"not an {name} prefix: {prefix!r}")
    n = int(length)
    try:
        a = _from_bytes(socket.inet_pton(af, address), "big")
    except OSError:
        raise ValueError(f"not an {name} prefix: {prefix!r}") from None
    if n > bits or a & ((1 << (bits - n)) - 1):
        raise ValueError(f"not a canonical {name} prefix: {prefix!r}")
    return 1 << n | a >> (bits - n)


def py_int_text(key: int, bits: int = 32) -> str:
    """The prefix text of an integer key (``py_int_key``'s inverse)."""
    name, af = _FAMILY[bits]
    if type(key) is not int or not 1 <= key < 1 << (bits + 1):
        raise ValueError(f"not an {name} prefix key: {key!r}")
    n = key.bit_length() - 1
    a = (key ^ (1 << n)) << (bits - n)
    return f"{socket.inet_ntop(af, a.to_bytes(bits // 8, 'big'))}/{n}"


def int_keys(prefixes, bits: int = 32) -> list[int]:  # type: ignore[no-untyped-def]
    """``py_int_key`` of each text, in C where built."""
    if _compiled_int_keys is not None:
        got = _compiled_int_keys(prefixes, bits == 128)
        if got is not None:
            return got
    return [py_int_key(p, bits) for p in prefixes]


def int_texts(keys, bits: int = 32) -> list[str]:  # type: ignore[no-untyped-def]
    """``py_int_text`` of each key, in C where built."""
    if _compiled_int_texts is not None:
        got = _compiled_int_texts(keys, bits == 128)
        if got is not None:
            return got
    return [py_int_text(k, bits) for k in keys]
