"""ADD-PATH sets: a router's paths for one prefix, best first, at most ``max_paths``.

Reproduces stop 59's stall: each announce over a set re-sorted the whole set, so
k path ids for one prefix cost O(k^2 log k) preference keys (4,000 path ids: 9 CPU-s
of the feed; the raw fuzz target's slowest inputs). The UPDATEs here are raw BGP
bytes through ``ExabgpParser``, the service's path.
"""

from __future__ import annotations

import random

import pytest

import ribd.addpath
from bench.fuzz_raw import attr, basic_attributes, packets_line, prefix, session_lines, update
from ribd.parser import ExabgpParser
from ribd.rib import Rib, preference_key

PEER = "2001:db8::2"
PREFIX = "198.51.100.0/24"


def rib_with_session(max_paths: int) -> tuple[Rib, ExabgpParser]:
    rib = Rib()
    rib.max_paths = max_paths
    parser = ExabgpParser(rib.interner)
    for line in session_lines(PEER, asn4=True, add_path=True):
        rib.apply_many(parser.parse(line))
    return rib, parser


def attributes(path_len: int, local_pref: int) -> bytes:
    """ORIGIN, AS_PATH and NEXT_HOP of ``basic_attributes``, this LOCAL_PREF."""
    base = basic_attributes([64496 + i for i in range(path_len)])
    assert base.endswith(attr(5, (100).to_bytes(4)))
    return base[: -len(attr(5, b"1234"))] + attr(5, local_pref.to_bytes(4))


def announce(rib: Rib, parser: ExabgpParser, path_ids: list[int], attrs: bytes) -> None:
    nlri = b"".join(prefix(PREFIX, pid) for pid in path_ids)
    rib.apply_many(parser.parse(packets_line(update(attributes=attrs, nlri=nlri), peer=PEER)))


def withdraw(rib: Rib, parser: ExabgpParser, path_ids: list[int]) -> None:
    nlri = b"".join(prefix(PREFIX, pid) for pid in path_ids)
    rib.apply_many(parser.parse(packets_line(update(withdrawn=nlri), peer=PEER)))


def held(rib: Rib) -> list[tuple[int, int, int]]:
    """(path id, local-pref, AS path length) of the router's paths, best first."""
    return [
        (m.path_id, m.attributes.local_pref, len(m.attributes.as_path[0][1]))
        for m in rib.exact(PEER, "ipv4 unicast", PREFIX)
    ]


def family(rib: Rib):
    return rib.routers[PEER].families["ipv4 unicast"]


def entry(rib: Rib) -> object:
    return rib.tables["ipv4 unicast"].store.get(PREFIX)


def test_many_path_ids_for_one_prefix_cost_a_few_keys_each_not_a_sort_of_the_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = 0

    def counted(item):
        nonlocal calls
        calls += 1
        return preference_key(item)

    monkeypatch.setattr(ribd.addpath, "preference_key", counted)
    rib, parser = rib_with_session(max_paths=1024)
    n = 2000
    for start in range(1, n + 1, 100):  # 100 path ids an UPDATE, as the fuzzer's long ones
        announce(rib, parser, list(range(start, start + 100)), attributes(2, 100))
    # A re-sort of the set at each announce: ~1024 keys each, ~1.5 M in all.
    # An insertion: the new path's key and a binary search, ~12 keys each.
    assert calls < 15 * n
    assert len(held(rib)) == 1024
    assert rib.paths_over_limit == n - 1024
    assert family(rib).paths == 1024 and family(rib).prefixes == 1


def test_a_prefix_keeps_its_best_paths_up_to_the_bound_and_counts_the_others() -> None:
    rng = random.Random(59)
    rib, parser = rib_with_session(max_paths=8)
    announced = []
    for pid in rng.sample(range(1, 1000), 50):
        path_len, local_pref = rng.randint(1, 6), rng.choice((80, 100, 120, 150))
        announce(rib, parser, [pid], attributes(path_len, local_pref))
        announced.append((pid, local_pref, path_len))
    # The model: every path ranked as preference_key ranks them (local-pref
    # highest, then the shortest AS path, then the lowest path id), the best 8.
    best = sorted(announced, key=lambda p: (-p[1], p[2], p[0]))[:8]
    assert held(rib) == best
    assert rib.paths_over_limit == 42
    assert rib.stats()["paths_over_limit"] == 42
    assert family(rib).paths_over_limit == 42  # (the metric's router and family)
    assert family(rib).paths == 8 and family(rib).prefixes == 1
    # The answer is the best path's.
    match = rib.lookup(PEER, "ipv4 unicast", "198.51.100.1")
    assert match is not None and match.path_id == best[0][0]


def test_a_path_announced_worse_than_every_kept_one_changes_nothing() -> None:
    rib, parser = rib_with_session(max_paths=2)
    announce(rib, parser, [1], attributes(1, 150))
    announce(rib, parser, [2], attributes(2, 150))
    before = entry(rib)
    announce(rib, parser, [3], attributes(3, 150))
    assert held(rib) == [(1, 150, 1), (2, 150, 2)]
    assert rib.paths_over_limit == 1
    assert entry(rib) is before


def test_a_better_path_past_the_bound_takes_the_worst_ones_place() -> None:
    rib, parser = rib_with_session(max_paths=2)
    announce(rib, parser, [1], attributes(2, 100))
    announce(rib, parser, [2], attributes(3, 100))
    announce(rib, parser, [3], attributes(1, 100))
    assert held(rib) == [(3, 100, 1), (1, 100, 2)]
    assert rib.paths_over_limit == 1 and family(rib).paths == 2


def test_a_kept_path_announced_again_moves_to_its_new_rank_without_counting_twice() -> None:
    rib, parser = rib_with_session(max_paths=3)
    for pid, path_len in ((1, 1), (2, 2), (3, 3)):
        announce(rib, parser, [pid], attributes(path_len, 100))
    announce(rib, parser, [1], attributes(4, 100))  # path 1, now the longest
    assert held(rib) == [(2, 100, 2), (3, 100, 3), (1, 100, 4)]
    assert rib.paths_over_limit == 0 and family(rib).paths == 3


def test_withdrawing_the_best_kept_path_answers_with_the_next_kept_one() -> None:
    rib, parser = rib_with_session(max_paths=2)
    for pid, path_len in ((1, 1), (2, 2), (3, 3)):
        announce(rib, parser, [pid], attributes(path_len, 100))
    withdraw(rib, parser, [1])
    assert held(rib) == [(2, 100, 2)]  # path 3 was not kept: it cannot come back
    withdraw(rib, parser, [3])  # a path id the set does not hold: nothing to do
    assert held(rib) == [(2, 100, 2)] and family(rib).paths == 1


def test_one_kept_path_of_id_zero_is_held_as_the_set_itself() -> None:
    rib, parser = rib_with_session(max_paths=1)
    announce(rib, parser, [0], attributes(1, 100))
    announce(rib, parser, [7], attributes(2, 100))  # worse: not kept
    value = entry(rib)[family(rib).slot]  # type: ignore[index]
    assert type(value) is ribd.addpath.PathAttributes
    assert held(rib) == [(0, 100, 1)] and rib.paths_over_limit == 1


def test_a_set_longer_than_the_bound_is_cut_at_its_next_announce() -> None:
    """A snapshot written under a larger bound loads as written (sorted); the
    next announce for the prefix cuts it, the paths counted."""
    rib, parser = rib_with_session(max_paths=6)
    for pid in range(1, 7):
        announce(rib, parser, [pid], attributes(pid, 100))
    rib.max_paths = 3  # (as a restart with a smaller [bgp] max_paths_per_prefix)
    announce(rib, parser, [10], attributes(1, 120))
    assert held(rib) == [(10, 120, 1), (1, 100, 1), (2, 100, 2)]
    assert rib.paths_over_limit == 4 and family(rib).paths == 3


def test_paths_not_kept_are_counted_on_the_router_and_family_that_sent_them() -> None:
    """Two ADD-PATH routers on one prefix (the compiled loops over a shared entry):
    only the one past the bound counts."""
    rib, parser = rib_with_session(max_paths=2)
    other = "2001:db8::3"
    for line in session_lines(other, asn4=True, add_path=True):
        rib.apply_many(parser.parse(line))
    announce(rib, parser, [1, 2, 3, 4], attributes(2, 100))
    nlri = b"".join(prefix(PREFIX, pid) for pid in (1, 2))
    rib.apply_many(
        parser.parse(packets_line(update(attributes=attributes(2, 100), nlri=nlri), peer=other))
    )
    assert family(rib).paths_over_limit == 2
    assert rib.routers[other].families["ipv4 unicast"].paths_over_limit == 0
    assert rib.routers[PEER].families["ipv6 unicast"].paths_over_limit == 0
    assert len(rib.exact(other, "ipv4 unicast", PREFIX)) == 2


def test_paths_not_kept_are_logged_ten_then_one_in_ten_thousand() -> None:
    logged = [n for n in range(1, 30_001) if ribd.addpath.logs_over_limit(n)]
    assert logged == [*range(1, 11), 10_000, 20_000, 30_000]
