"""Shared pieces of the benchmarks: data paths, result rows, /proc readings.

Every benchmark module is run by ``bench.run`` in its own process as
``python -m bench.<module> --out FILE [--quick]`` and writes its result rows
to FILE as JSON. One process per benchmark keeps RSS baselines clean and stops
one benchmark's heap (and garbage collector state) from slowing the next.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
FULL_TABLE = SHARED_DATA / "bgp" / "pch-as3856-fulltable-2015.exabgp5.jsonl.gz"
CHURN = SHARED_DATA / "bgp" / "ris-rrc-updates-20190101.exabgp5.jsonl.gz"

FULL_TABLE_PEER = "206.220.231.55"
FULL_TABLE_PEER_FIELD = b'"peer":"206.220.231.55"'
# The converged table: 577,706 prefixes are announced, three of them are
# withdrawn again after the End-of-RIB (see tests/ribd/test_rib.py).
FULL_TABLE_PREFIXES = 577_703
V4 = "ipv4 unicast"
V6 = "ipv6 unicast"

_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class Row:
    """One figure of the results table.

    ``baseline`` is a figure measured in the same run (bare pytricia, the
    orjson floor, the in-process resolver), so that ratios survive a noisy
    machine; ``target`` is the issue's goal in words and ``met`` the verdict
    (None: no target for this figure, or not measurable).
    """

    bench: str
    figure: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    target: str = ""
    met: bool | None = None
    note: str = ""


def at_least(value: float | None, goal: float) -> bool | None:
    return None if value is None else value >= goal


def at_most(value: float | None, goal: float) -> bool | None:
    return None if value is None else value <= goal


def data_available(*paths: Path) -> str:
    """Empty string when every path exists, else a reason to skip."""
    missing = [str(p) for p in paths if not p.exists()]
    return f"data absent: {', '.join(missing)}" if missing else ""


def read_lines(path: Path) -> list[bytes]:
    """The whole file's lines in memory (decompressed), so I/O is never timed."""
    with gzip.open(path, "rb") as f:
        return f.read().splitlines()


def rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def cpu_seconds(pid: int | str = "self") -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def now() -> float:
    """CLOCK_MONOTONIC: comparable across the processes of one machine."""
    return time.monotonic()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def bench_main(
    name: str, run: Callable[[argparse.Namespace], list[Row]], extra_args: Callable | None = None
) -> int:
    """The command line every benchmark module shares: --out FILE, --quick."""
    parser = argparse.ArgumentParser(prog=f"python -m bench.{name}")
    parser.add_argument("--out", help="write the result rows here (JSON); default: stdout")
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer repeats")
    if extra_args is not None:
        extra_args(parser)
    args = parser.parse_args()
    rows = run(args)
    text = json.dumps([asdict(r) for r in rows], indent=1)
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)
    return 0
