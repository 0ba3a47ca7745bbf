"""``ribd._repeats.first_repeat_in``: where an UPDATE's keys first repeat, the
same answers as the set-based reference (``ribd.ribload.PY_FIRST_REPEAT``) on
IPv4 and IPv6 keys, on texts (the set decides), and on IPv6 keys crafted so
that CPython hashes them all alike (``k + j * (2**61 - 1)``), which made a set
quadratic: ``bench.hostile_keys`` times that case against ordinary keys."""

from __future__ import annotations

import random

import pytest

from bench.hostile_keys import crafted_v6  # (/128s that CPython hashes alike)
from ribd.ribload import PY_FIRST_REPEAT, runs_without_repeats

try:
    from ribd._repeats import first_repeat_in
except ImportError:
    first_repeat_in = None

pytestmark = pytest.mark.skipif(first_repeat_in is None, reason="ribd._repeats is not built")


def test_crafted_ipv6_keys_hash_alike_in_python_and_are_told_apart() -> None:
    keys = crafted_v6(3000)
    assert len({hash(k) for k in keys}) == 1  # what made a set quadratic
    assert first_repeat_in(keys) == len(keys)
    assert first_repeat_in([*keys, keys[1234]]) == len(keys)
    assert first_repeat_in([*keys[:10], keys[3], *keys[10:]]) == 10


@pytest.mark.parametrize("seed", range(20))
def test_the_same_answers_as_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    pools = [
        [(1 << 24) | rng.randrange(1 << 24) for _ in range(50)],  # IPv4 /24 keys
        [(1 << 48) | rng.randrange(1 << 48) for _ in range(50)],  # IPv6 /48 keys
        crafted_v6(50),
        [f"10.{i}.0.0/16" for i in range(50)],  # texts: the set decides
        [1 << 128, (1 << 129) - 1, 1, 2],  # the extremes of the key range
    ]
    for _ in range(200):
        pool = rng.choice(pools)
        keys = [rng.choice(pool) for _ in range(rng.randint(0, 200))]
        start = rng.randint(0, len(keys))
        assert first_repeat_in(keys, start) == PY_FIRST_REPEAT(keys, start), keys


def test_keys_out_of_the_key_range_fall_back_to_the_set() -> None:
    assert first_repeat_in([0, -5, 1 << 200, 0]) == 3
    assert first_repeat_in([1, "1", 1.0]) == 2  # (1.0 == 1, as a set has it)


def test_runs_cut_where_a_crafted_key_comes_again() -> None:
    keys = crafted_v6(5)
    assert runs_without_repeats([*keys, keys[2], keys[0]], None) == [
        (keys, None),
        ([keys[2], keys[0]], None),
    ]
