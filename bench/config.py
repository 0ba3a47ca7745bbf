"""Config parsing at scale and under hostile input: prints figures, asserts nothing.

``python -m bench.config`` times ``attribution.config`` on generated files:
many ``[[overrides]]`` (all distinct, and half of them shadowed, the case
whose check used to be quadratic), the largest file accepted (16 MiB), and how
fast the refusals are (a 41 MB file, an array nested 600 deep). ``--fuzz N``
also runs N fuzzed documents (the CI fuzz test's generators, more seeds) and
counts escapes other than ConfigError (crashes) and documents slower than 10 s
(hangs).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time

from attribution.config import MAX_CONFIG_BYTES, ConfigError, load_config, parse_config

HEAD = '[service]\nlocal_as = 64500\nrouter_id = "192.0.2.1"\n'


def overrides(n: int, shadowed: bool) -> str:
    """``n`` rules; with ``shadowed`` the second half repeats the first half's ports."""
    return HEAD + "".join(rule(i, i % (n // 2) if shadowed else i) for i in range(n))


def rule(i: int, port: int) -> str:
    return (
        f'[[overrides]]\nname = "o{i}"\nexporter = "192.0.2.10"\nin_if = {port}\npeer_as = 65001\n'
    )


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    try:
        result = fn()
    except ConfigError as exc:
        result = exc
    return time.perf_counter() - start, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fuzz", type=int, default=0, help="also run N fuzzed documents")
    args = ap.parse_args()
    print("| case | size | parse | result |")
    print("|---|---:|---:|---|")
    for n in (1_000, 5_000, 20_000, 100_000):
        for shadowed in (False, True):
            text = overrides(n, shadowed)
            seconds, config = timed(lambda t=text: parse_config(t, "bench.toml"))
            what = f"{len(config.warnings)} shadow warnings" if shadowed else "no warnings"
            kind = "half shadowed" if shadowed else "distinct"
            print(
                f"| {n:,} overrides, {kind} | {len(text) / 2**20:.1f} MiB "
                f"| {seconds:.2f} s | {what} |"
            )
    rule_bytes = len(rule(1_000_000, 1_000_000))  # at most 7-digit numbers below
    largest = overrides(MAX_CONFIG_BYTES // rule_bytes, False)
    seconds, config = timed(lambda: parse_config(largest, "bench.toml"))
    print(
        f"| largest file accepted: {len(config.overrides):,} overrides "
        f"| {len(largest) / 2**20:.1f} MiB | {seconds:.2f} s | accepted |"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big.toml")
        with open(path, "w") as f:
            f.write(HEAD)
            f.truncate(41 * 10**6)
        seconds, err = timed(lambda: load_config(path))
        print(f"| 41 MB file | 39.1 MiB | {seconds * 1000:.2f} ms | refused: {err} |")
    deep = HEAD + "x = " + "[" * 600 + "]" * 600 + "\n"
    seconds, err = timed(lambda: parse_config(deep, "bench.toml"))
    print(f"| array nested 600 deep | 1 KiB | {seconds * 1000:.2f} ms | refused: {err} |")
    if args.fuzz:
        fuzz(args.fuzz)


def fuzz(count: int) -> None:
    from tests.attribution.test_config_fuzz import SEEDS, damage, mutate, random_document

    rng = random.Random(20261130)
    crashes, hangs, refused, slowest = 0, 0, 0, 0.0
    start = time.perf_counter()
    for n in range(count):
        kind = n % 3
        doc = (
            mutate(rng.choice(SEEDS), rng)
            if kind == 0
            else random_document(rng)
            if kind == 1
            else damage(rng.choice(SEEDS), rng)
        )
        t = time.perf_counter()
        try:
            parse_config(doc, "fuzz.toml")
        except ConfigError:
            refused += 1
        except Exception as exc:  # counting them is the point
            crashes += 1
            print(f"crash: {type(exc).__name__}: {exc!r:.200}")
        took = time.perf_counter() - t
        slowest = max(slowest, took)
        hangs += took > 10
    print(
        f"\nfuzz: {count:,} documents in {time.perf_counter() - start:.1f} s, "
        f"{refused:,} refused with a ConfigError, crashes {crashes}, hangs (> 10 s) {hangs}, "
        f"slowest {slowest * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
