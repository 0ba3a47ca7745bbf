"""The compiled decoder writes IPv6 texts exactly as libc's inet_ntop does.

ExaBGP's JSON carries inet_ntop's texts and the IPv6 store is keyed by them,
so a raw-mode load must make the same text for every address, or a prefix
would be stored twice under two spellings. ``ribd._rawnlri`` formats IPv6
itself (inet_ntop's sprintf per group cost ~3.3k instructions a prefix), so
its rules (the first longest run of two or more zero groups as ``::``,
lowercase hex without leading zeros, dotted IPv4-compatible and IPv4-mapped
tails) are compared with ``socket.inet_ntop`` here.
"""

from __future__ import annotations

import random
import socket

import pytest

_rawnlri = pytest.importorskip("ribd._rawnlri")


def _inet_ntop(a: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, a)


def _groups(*words: int) -> bytes:
    return b"".join(w.to_bytes(2, "big") for w in words)


EDGES = [
    bytes(16),  # ::
    _groups(0, 0, 0, 0, 0, 0, 0, 1),  # ::1
    _groups(1, 0, 0, 0, 0, 0, 0, 0),  # 1::
    _groups(0, 0, 0, 0, 0, 0, 0x0102, 0x0304),  # ::1.2.3.4 (IPv4-compatible)
    _groups(0, 0, 0, 0, 0, 0xFFFF, 0x0102, 0x0304),  # ::ffff:1.2.3.4 (mapped)
    _groups(0, 0, 0, 0, 0, 0xFFFE, 0x0102, 0x0304),  # not mapped: hex
    _groups(0, 0, 0, 0, 1, 0xFFFF, 0x0102, 0x0304),
    _groups(0, 0, 0, 0, 0, 0, 0, 0xFFFF),  # ::ffff (a run of 7: no dotted tail)
    _groups(0, 0, 0, 0, 0, 0, 0xFFFF, 0),
    _groups(0x2001, 0xDB8, 0, 0, 1, 0, 0, 1),  # equal runs: the first is ::
    _groups(0x2001, 0, 0, 1, 0, 0, 0, 1),  # the longer (second) run is ::
    _groups(0x2001, 0xDB8, 0, 1, 1, 1, 1, 1),  # a single zero group stays 0
    _groups(0x2001, 0xDB8, 0xA, 0xAB, 0xABC, 0xABCD, 0xF000, 0x0F00),
    _groups(*([0xFFFF] * 8)),
    _groups(0, 1, 0, 1, 0, 1, 0, 1),
    _groups(1, 0, 0, 1, 0, 0, 1, 0),
]


@pytest.mark.parametrize("address", EDGES, ids=_inet_ntop)
def test_an_edge_address_is_written_as_inet_ntop_writes_it(address: bytes) -> None:
    assert _rawnlri.ipv6_texts([address]) == [_inet_ntop(address)]


def test_random_addresses_with_zero_runs_are_written_as_inet_ntop_writes_them() -> None:
    rng = random.Random(20261202)
    addresses = []
    for _ in range(200_000):
        words = [rng.choice((0, 0, 0, 1, 0xFFFF, rng.getrandbits(16))) for _ in range(8)]
        if rng.random() < 0.1:  # IPv4-compatible / mapped shapes with random tails
            words[:5] = [0] * 5
            words[5] = rng.choice((0, 0xFFFF, 1))
        addresses.append(_groups(*words))
    addresses += [rng.randbytes(16) for _ in range(50_000)]
    assert _rawnlri.ipv6_texts(addresses) == [_inet_ntop(a) for a in addresses]


def test_anything_but_sixteen_octets_is_refused() -> None:
    with pytest.raises(ValueError, match="not 16 octets"):
        _rawnlri.ipv6_texts([bytes(15)])
