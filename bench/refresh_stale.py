"""A router back after a restart re-sends its table over its stale copy: the RIB's cost.

In process, no sessions: R routers each hold N IPv4 prefixes (20 per UPDATE, paths drawn
from 2,000), merged into the store's arrays; router 1 goes down with a stale hold, comes
back, and re-sends its table. Prints the CPU-seconds of that re-send and the entries left
interned after it (each returning route replaces its prefix's entry: its stale copy
cleared, the new path set), next to the live ones. Use it for before/after of the apply
path's stale branch (``Rib._announce``, ``FamilyTable.put``); the whole refresh over real
sessions is ``python -m bench.restart --routers 16 --refresh bgp``.

    python -m bench.refresh_stale [--prefixes 200000] [--routers 16]
"""

from __future__ import annotations

import argparse
import random
import time

from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.events import EndOfRib, RoutesAnnounced, SessionState
from ribd.rib import Rib

V4 = "ipv4 unicast"


class _Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(prefixes: int, routers: int, seed: int = 1) -> dict:
    rng = random.Random(seed)
    paths = [
        make_attributes(((AS_SEQUENCE, (64500 + i % 50, 100 + i)),), next_hop="192.0.2.254")
        for i in range(2000)
    ]
    texts = [f"{10 + i // 65536}.{(i // 256) % 256}.{i % 256}.0/24" for i in range(prefixes)]
    rib = Rib(stale_hold_time=600, clock=_Clock())

    def send(neighbor: str) -> None:
        for k in range(0, prefixes, 20):
            update = RoutesAnnounced(
                neighbor, V4, tuple(texts[k : k + 20]), None, paths[rng.randrange(2000)]
            )
            rib.apply(update)

    for r in range(routers):
        neighbor = f"127.0.0.{r + 1}"
        rib.apply(SessionState(neighbor, "up"))
        send(neighbor)
        rib.apply(EndOfRib(neighbor, V4))
    rib.compact()
    first = "127.0.0.1"
    rib.apply(SessionState(first, "down", reason="restart"))
    rib.apply(SessionState(first, "up"))
    started = time.process_time()
    send(first)
    cpu = time.process_time() - started
    table = rib.tables[V4]
    live = len({id(e) for _, e in table.store.items()})
    return {"cpu": cpu, "interned": table.distinct_entries, "live": live}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prefixes", type=int, default=200_000)
    ap.add_argument("--routers", type=int, default=16)
    args = ap.parse_args()
    r = run(args.prefixes, args.routers)
    print(
        f"router 1 re-sent {args.prefixes:,} prefixes over its stale copy ({args.routers} "
        f"routers): {r['cpu']:.2f} CPU-s; entries interned after it {r['interned']:,} "
        f"({r['live']:,} live)"
    )


if __name__ == "__main__":
    main()
