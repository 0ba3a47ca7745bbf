"""The IPv4 store's integer prefix keys: ``1 << length | network number``.

Why (``ribd.store`` holds the rest): a table load's decoder makes these from
the NLRI octets with no text formatted, an int hashes to itself (its low bits
are the network's, so a dict spreads consecutive prefixes over its slots,
which ``network << 8 | length`` would not: a /24's low 16 bits would all be
equal), a key of up to /29 is a one-digit int, and packing one for the
store's sorted arrays needs no parse. ``10.0.0.0/8`` is ``1 << 8 | 10``;
``0.0.0.0/0`` is 1. The compiled twins are in ``ribd._rawkeys``; the Python
ones here are the reference and the fallback (tests/ribd/test_raw_keys.py).
"""

from __future__ import annotations

import socket

try:
    from ribd._rawkeys import int_keys as _compiled_int_keys
    from ribd._rawkeys import int_texts as _compiled_int_texts
except ImportError:
    _compiled_int_keys = _compiled_int_texts = None

_from_bytes = int.from_bytes


def py_int_key(prefix: str) -> int:
    """The IPv4 store's integer key of a canonical prefix text; ValueError
    for a text that is not one (host bits set, a bad length or address)."""
    address, slash, length = prefix.partition("/")
    if not slash or not length.isdigit() or (length[0] == "0" and len(length) > 1):
        raise ValueError(f"not an IPv4 prefix: {prefix!r}")
    n = int(length)
    try:
        a = _from_bytes(socket.inet_pton(socket.AF_INET, address), "big")
    except OSError:
        raise ValueError(f"not an IPv4 prefix: {prefix!r}") from None
    if n > 32 or a & ((1 << (32 - n)) - 1):
        raise ValueError(f"not a canonical IPv4 prefix: {prefix!r}")
    return 1 << n | a >> (32 - n)


def py_int_text(key: int) -> str:
    """The prefix text of an IPv4 integer key (``py_int_key``'s inverse)."""
    if type(key) is not int or not 1 <= key < 1 << 33:
        raise ValueError(f"not an IPv4 prefix key: {key!r}")
    n = key.bit_length() - 1
    a = (key ^ (1 << n)) << (32 - n)
    return f"{socket.inet_ntoa(a.to_bytes(4, 'big'))}/{n}"


def int_keys(prefixes) -> list[int]:  # type: ignore[no-untyped-def]
    """``py_int_key`` of each text, in C where built."""
    if _compiled_int_keys is not None:
        got = _compiled_int_keys(prefixes)
        if got is not None:
            return got
    return [py_int_key(p) for p in prefixes]


def int_texts(keys) -> list[str]:  # type: ignore[no-untyped-def]
    """``py_int_text`` of each key, in C where built."""
    if _compiled_int_texts is not None:
        got = _compiled_int_texts(keys)
        if got is not None:
            return got
    return [py_int_text(k) for k in keys]
