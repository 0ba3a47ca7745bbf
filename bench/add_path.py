"""One prefix announced with many ADD-PATH path ids: the feed's CPU as their number grows.

Each announce over a router's set of paths for a prefix builds the next set
(``ribd.addpath``). Until stop 59 that re-sorted the whole set, so N path ids
cost O(N^2 log N) preference keys (4,000: 9 CPU-s); now the new path is inserted
where it sorts and a prefix keeps at most ``[bgp] max_paths_per_prefix`` paths.
The UPDATEs are raw BGP bytes (``bench.fuzz_raw``'s packer) through
``ExabgpParser`` into a ``Rib``, as the service reads them; printed: CPU-s of
the parse and apply for N path ids, one a UPDATE and 400 a UPDATE, at the
default bound and at the largest one.

    python -m bench.add_path [--counts 500,1000,2000,4000,16000]
"""

from __future__ import annotations

import argparse
import logging
import time

from bench.fuzz_raw import basic_attributes, packets_line, prefix, session_lines, update
from ribd.addpath import MAX_PATHS_LIMIT, MAX_PATHS_PER_PREFIX
from ribd.parser import ExabgpParser
from ribd.rib import Rib

PEER = "2001:db8::2"


def feed_cpu(count: int, per_update: int, max_paths: int) -> float:
    """CPU-s to apply ``count`` path ids of one prefix, ``per_update`` an UPDATE."""
    rib = Rib()
    rib.max_paths = max_paths  # (no effect on a tree without the bound)
    parser = ExabgpParser(rib.interner)
    for line in session_lines(PEER, asn4=True, add_path=True):
        rib.apply_many(parser.parse(line))
    attrs = basic_attributes([64496, 64511])
    lines = []
    for start in range(1, count + 1, per_update):
        ids = range(start, min(start + per_update, count + 1))
        nlri = b"".join(prefix("198.51.100.0/24", pid) for pid in ids)
        lines.append(packets_line(update(attributes=attrs, nlri=nlri), peer=PEER))
    started = time.process_time()
    for line in lines:
        rib.apply_many(parser.parse(line))
    return time.process_time() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--counts", default="500,1000,2000,4000,16000")
    args = p.parse_args()
    logging.disable(logging.WARNING)  # (each path past the bound is logged, rate-limited)
    print(
        f"{'path ids':>8}  {'1 an UPDATE':>12}  {'400 an UPDATE':>14}  "
        f"{f'400, bound {MAX_PATHS_LIMIT}':>16}   (CPU-s; default bound {MAX_PATHS_PER_PREFIX})"
    )
    for count in (int(c) for c in args.counts.split(",")):
        one = feed_cpu(count, 1, MAX_PATHS_PER_PREFIX)
        many = feed_cpu(count, 400, MAX_PATHS_PER_PREFIX)
        widest = feed_cpu(count, 400, MAX_PATHS_LIMIT)
        print(f"{count:>8,}  {one:>12.3f}  {many:>14.3f}  {widest:>16.3f}", flush=True)


if __name__ == "__main__":
    main()
