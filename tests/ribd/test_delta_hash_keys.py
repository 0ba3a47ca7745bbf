"""The delta tables' homes come from random hash keys, one set per table.

Reproduces a stall a peer could cause: with constant multipliers (Fibonacci
hashing for IPv4, a fixed fold then one multiply for IPv6), prefixes could be
picked whose home slots all lie in one stretch of the table, so that every
insert walked the run the others made (40,000 such /32s: 1.08 CPU-s to insert
against 0.013 for random ones, growing with their square). Here the same
prefixes, crafted against the old hashes, spread like any others.
"""

from __future__ import annotations

import pytest

from bench.hostile_keys import crafted_v4  # (/32s of one home under the old multiplier)

try:
    from ribd._intdelta import IntDelta
    from ribd._intdelta6 import IntDelta6
except ImportError:  # not built: the dict-backed reference has no slots
    IntDelta = IntDelta6 = None

pytestmark = pytest.mark.skipif(IntDelta is None, reason="ribd._intdelta is not built")

OLD_MIX = 0xC2B2AE3D27D4EB4F
MASK64 = (1 << 64) - 1


def crafted_v6(count: int) -> list[int]:
    """/128 keys whose old fold (hi ^ lo * mix ^ (length) * mix) is one value:
    one home whatever the table's size or multiplier."""
    keys = []
    for lo in range(1, count + 1):
        hi = (0x20010DB8 << 32) ^ ((lo * OLD_MIX) & MASK64)
        keys.append((1 << 128) | (hi << 64) | lo)
    return keys


def mean_walk(table, keys: list[int]) -> float:
    for k in keys:
        table.insert(k, None)
    assert len(table) == len(keys)
    return table.displacement() / len(keys)


def test_ipv4_keys_crafted_against_the_old_multiplier_spread() -> None:
    keys = crafted_v4(20_000)
    # Under the old hash all of them homed in ~8 slots of a 32,768-slot table:
    # a mean walk of ~10,000 slots a key. Random keys at this load walk ~1-2.
    assert mean_walk(IntDelta(), keys) < 4


def test_ipv6_keys_crafted_against_the_old_fold_spread() -> None:
    assert mean_walk(IntDelta6(), crafted_v6(5_000)) < 4
