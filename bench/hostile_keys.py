"""Prefixes picked to collide in our hash tables, against ordinary ones: CPU-s.

A peer chooses the prefixes it announces, so every table keyed by them must
hash under keys it cannot know. Two did not, until stop 60:

* the stores' delta tables (``ribd._intdelta``, ``_intdelta6``): constant
  multipliers, so /32s whose homes fall in one stretch made each insert walk
  the run the others made (quadratic in the table's crafted keys);
* the checks for a prefix twice in an UPDATE: sets of the keys, and CPython
  hashes an int as itself modulo 2**61 - 1 with no randomness, so IPv6 keys
  ``k + j * (2**61 - 1)`` all hash alike (quadratic in the UPDATE's keys).

* the decoders' LARGE_COMMUNITY set: CPython's tuple hash has no randomness
  either, and 100 triples of one hash (``bench/hostile_large_communities.txt``,
  found by a brute-force search of ~7 core-hours) made each UPDATE's decode
  quadratic in them;
* the view build's row matcher (``attribution._viewbuild.match_rows``): a
  fixed hash of answer rows, whose first bytes (origin AS, AS_SET's highest)
  a peer's AS paths choose, so rows could be picked to share a slot.

Printed: CPU-s for each case, crafted and ordinary keys, in this run.

    python -m bench.hostile_keys [--v4 40000] [--v6 3000] [--updates 200]
"""

from __future__ import annotations

import argparse
import random
import struct
import time
from pathlib import Path

import numpy as np

from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.events import IPV6_UNICAST, RoutesAnnounced, SessionState
from ribd.rib import Rib
from ribd.ribload import PY_FIRST_REPEAT, first_repeat
from ribd.store import PrefixStore

OLD_GOLDEN = 0x9E3779B97F4A7C15  # the IPv4 delta's multiplier until stop 60
MERSENNE = 2**61 - 1


def crafted_v4(count: int) -> list[int]:
    """/32 keys whose home under the old multiplier lies in the first 1/4096 of any table."""
    found: list[np.ndarray] = []
    start, chunk = 1 << 32, 1 << 22
    with np.errstate(over="ignore"):
        while sum(map(len, found)) < count:
            keys = np.arange(start, start + chunk, dtype=np.uint64)
            found.append(keys[keys * np.uint64(OLD_GOLDEN) < np.uint64(1 << 52)])
            start += chunk
    return [int(k) for k in np.concatenate(found)[:count]]


def random_v4(count: int, rng: random.Random) -> list[int]:
    return [(1 << 32) | k for k in rng.sample(range(1 << 32), count)]


def crafted_v6(count: int, base: int = 0x20010DB8) -> list[int]:
    """/128 keys CPython hashes alike."""
    return [(1 << 128) | (base << 96) + j * MERSENNE for j in range(count)]


def random_v6(count: int, rng: random.Random) -> list[int]:
    return [(1 << 128) | (0x20010DB8 << 96) | rng.getrandbits(96) for _ in range(count)]


def crafted_rows(count: int, rng: random.Random) -> np.ndarray:
    """Answer rows whose hash under the row matcher's constants until stop 60 has
    the same low 32 bits (the same slot in any table): the hash inverted step by
    step for a chosen result, its first word (origin AS, AS_SET's highest) free."""
    from attribution.viewanswers import ROW

    mask = (1 << 64) - 1
    c0, c1, c2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
    i1, i2 = pow(c1, -1, 1 << 64), pow(c2, -1, 1 << 64)
    peer = 64500
    w1, tail = peer | peer << 32, 1 << 16  # (peer AS twice; provenance 0, not stale, from_set)

    def unshift(h: int, s: int) -> int:  # the inverse of h ^= h >> s
        x = h
        for _ in range(64 // s + 1):
            x = h ^ (x >> s)
        return x & mask

    rows = np.zeros(count, dtype=ROW)
    i = 0
    while i < count:
        h = unshift((rng.getrandbits(32) << 32) | 0x1234, 29)
        h = unshift(((h * i2) & mask) ^ tail, 31)
        h = unshift(((h * i1) & mask) ^ w1, 31)
        w0 = ((h * i1) & mask) ^ c0
        if w0 & 0xFFFFFFFF and w0 >> 32 >= 2:
            rows[i] = (w0 & 0xFFFFFFFF, w0 >> 32, peer, peer, 0, False, True)
            i += 1
    return rows


def random_rows(count: int, rng: random.Random) -> np.ndarray:
    from attribution.viewanswers import ROW

    rows = np.zeros(count, dtype=ROW)
    rows["origin_as"] = [rng.randrange(1, 2**32) for _ in range(count)]
    rows["origin_as_highest"] = [rng.randrange(2, 2**32) for _ in range(count)]
    rows["peer_as"] = rows["peer_as_highest"] = 64500
    rows["from_set"] = True
    return rows


def row_match(rows: np.ndarray, others: np.ndarray) -> float:
    """A view's rows matched against its family's table, both holding ``rows``."""
    from attribution._viewbuild import match_rows

    from attribution.viewanswers import _bytes

    base = _bytes(np.concatenate([others, rows])).tobytes()
    rest = _bytes(np.concatenate([others[: len(others) // 2], rows])).tobytes()
    return cpu(lambda: match_rows(base, rest, len(base) // (len(others) + len(rows))))


def large_communities_decode(triples: list[tuple[int, int, int]], updates: int) -> float:
    """CPU-s to decode ``updates`` times an UPDATE carrying ``triples`` as its
    LARGE_COMMUNITY (the decoder the feed uses: compiled where built)."""
    from bench.fuzz_raw import attr, basic_attributes, packets_line, prefix, session_lines, update
    from ribd.parser import ExabgpParser

    value = b"".join(struct.pack("!III", *t) for t in triples)
    body = update(
        attributes=basic_attributes([65001]) + attr(32, value, 0xC0), nlri=prefix("10.1.2.0/24")
    )
    rib = Rib()
    parser = ExabgpParser(rib.interner)
    for line in session_lines():
        parser.parse(line)
    line = packets_line(body)
    assert len(parser.parse(line)[-1].attributes.large_communities) == len(set(triples))
    return cpu(lambda: [parser.parse(line) for _ in range(updates)])


def cpu(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.process_time()
    fn()
    return time.process_time() - t


def delta_inserts(keys: list[int]) -> float:
    delta = PrefixStore(32).new_delta()
    return cpu(lambda: [delta.insert(k, None) for k in keys])


def repeat_checks(check, keys: list[int], times: int) -> float:  # type: ignore[no-untyped-def]
    return cpu(lambda: [check(keys) for _ in range(times)])


def second_router(keys: list[int], updates: int) -> float:
    """Router 2 announcing the prefixes router 1 holds, ``updates`` times, one
    UPDATE of all of them each time (the load's shared short path, which checks
    for a prefix twice)."""
    rib = Rib()
    a = make_attributes(((AS_SEQUENCE, (65001,)),), next_hop="2001:db8::1")
    b = make_attributes(((AS_SEQUENCE, (65002,)),), next_hop="2001:db8::2")
    texts = rib.tables[IPV6_UNICAST].store.texts_of(keys)
    for r in ("2001:db8::a", "2001:db8::b"):
        rib.apply(SessionState(r, "up"))
    rib.apply_many([RoutesAnnounced("2001:db8::a", IPV6_UNICAST, tuple(texts), None, a)])
    event = RoutesAnnounced("2001:db8::b", IPV6_UNICAST, tuple(texts), None, b)
    return cpu(lambda: [rib.apply_many([event]) for _ in range(updates)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--v4", type=int, default=40_000, help="keys inserted in an IPv4 delta")
    parser.add_argument("--v6", type=int, default=3_000, help="IPv6 keys of one UPDATE")
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--rows", type=int, default=20_000, help="crafted answer rows")
    args = parser.parse_args()
    rng = random.Random(60)
    v4c, v4r = crafted_v4(args.v4), random_v4(args.v4, rng)
    v6c, v6r = crafted_v6(args.v6), random_v6(args.v6, rng)
    rows = [
        (f"IPv4 delta, {args.v4:,} inserts", delta_inserts(v4c), delta_inserts(v4r)),
        (
            f"a prefix twice? {args.v6:,} IPv6 keys x {args.updates} (set, the reference)",
            repeat_checks(PY_FIRST_REPEAT, v6c, args.updates),
            repeat_checks(PY_FIRST_REPEAT, v6r, args.updates),
        ),
        (
            f"a prefix twice? {args.v6:,} IPv6 keys x {args.updates} (in use)",
            repeat_checks(first_repeat, v6c, args.updates),
            repeat_checks(first_repeat, v6r, args.updates),
        ),
        (
            f"router 2 re-sends {args.v6:,} IPv6 prefixes x {args.updates}",
            second_router(v6c, args.updates),
            second_router(v6r, args.updates),
        ),
    ]
    hostile = [
        tuple(map(int, line.split()))
        for line in (Path(__file__).parent / "hostile_large_communities.txt")
        .read_text()
        .splitlines()
    ]
    ordinary = [(rng.getrandbits(32), rng.getrandbits(32), rng.getrandbits(32)) for _ in hostile]
    rows.append(
        (
            f"an UPDATE with {len(hostile)} large communities, decoded x {args.updates * 10}",
            large_communities_decode(hostile, args.updates * 10),
            large_communities_decode(ordinary, args.updates * 10),
        )
    )
    others = np.unique(random_rows(100_000, rng))
    rows.append(
        (
            f"a view build's row match, {args.rows:,} rows among 100,000",
            row_match(crafted_rows(args.rows, rng), others),
            row_match(random_rows(args.rows, rng), others),
        )
    )
    print("| case | crafted CPU-s | ordinary CPU-s | ratio |")
    print("|---|---:|---:|---:|")
    for name, bad, good in rows:
        print(f"| {name} | {bad:.3f} | {good:.3f} | {bad / max(good, 1e-9):.1f}x |")


if __name__ == "__main__":
    main()
