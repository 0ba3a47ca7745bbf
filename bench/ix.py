"""IX MAC learning at full-table size: what keeping the learned table costs.

An in-process RIB with a today-sized IPv4 table (``--prefixes``, 1 M by
default) in which a share of the routes (``--ix-share``, 30%) come from
``--peers`` IX peers (their next hops in one IX LAN), then:

* the first walk of the router's table for IX next hops (CPU seconds, and
  how long the RIB lock was held),
* catching up after ``--changes`` changed prefixes from the change log,
* ``build_table`` joining the next hops with a neighbor table of every peer,
* the bulk path (compiled views, AS numbers only) on 65,536 flows entering
  on the IX port, with and without the learned table applied.

``python -m bench.ix`` (run it under ``flock /tmp/heavy.lock``: it builds a
full table). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import ipaddress
import threading
import time

import numpy as np

from attribution.config import parse_config
from attribution.ix import IxLearner, SourceState
from attribution.ix_inputs import Read
from attribution.ix_table import Networks, NextHops
from attribution.resolver import Resolver
from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.events import EndOfRib, RoutesAnnounced, SessionState
from ribd.rib import Rib

ROUTER, EXPORTER, PORT = "127.0.0.2", "127.0.1.9", 7
V4 = "ipv4 unicast"


def build_rib(prefixes: int, peers: int, ix_share: float, seed: int = 14) -> Rib:
    rng = np.random.default_rng(seed)
    rib = Rib(router_names={ROUTER: "r1"})
    rib.apply(SessionState(ROUTER, "up"))
    nets = np.unique(rng.integers(1 << 24, 223 << 24, size=int(prefixes * 1.05)) >> 8)[:prefixes]
    rng.shuffle(nets)
    per_event = 64
    transit = [make_attributes(((AS_SEQUENCE, (64990 + t, 65000 + t * 7)),), next_hop="127.0.0.2")
               for t in range(200)]  # fmt: skip
    ix_sets = [
        make_attributes(
            ((AS_SEQUENCE, (64512 + p % 4000, 70000 + (p * 31 + k) % 50000)),),
            next_hop=f"10.99.{p // 250}.{p % 250 + 1}",
        )
        for p in range(peers)
        for k in range(8)
    ]
    for start in range(0, len(nets), per_event):
        chunk = nets[start : start + per_event]
        texts = tuple(f"{ipaddress.IPv4Address(int(n) << 8)}/24" for n in chunk)
        if rng.random() < ix_share:
            a = ix_sets[int(rng.integers(len(ix_sets)))]
        else:
            a = transit[int(rng.integers(len(transit)))]
        rib.apply(RoutesAnnounced(ROUTER, V4, texts, None, a))
    rib.apply(EndOfRib(ROUTER, V4))
    while rib.maintenance():
        pass
    rib.compact()  # merged, as the service's maintenance leaves a loaded table
    return rib


def lock_held(rib: Rib, work) -> tuple[float, float, float]:
    """(wall, CPU, longest wait of a reader for the RIB lock) while ``work`` runs."""
    longest = 0.0
    stop = threading.Event()

    def reader() -> None:
        nonlocal longest
        while not stop.is_set():
            t = time.perf_counter()
            with rib.lock:
                pass
            longest = max(longest, time.perf_counter() - t)
            time.sleep(0.001)

    th = threading.Thread(target=reader)
    th.start()
    w, c = time.perf_counter(), time.process_time()
    work()
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    stop.set()
    th.join()
    return wall, cpu, longest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prefixes", type=int, default=1_000_000)
    ap.add_argument("--peers", type=int, default=800)
    ap.add_argument("--ix-share", type=float, default=0.3)
    ap.add_argument("--changes", type=int, default=1000)
    args = ap.parse_args(argv)

    t = time.perf_counter()
    rib = build_rib(args.prefixes, args.peers, args.ix_share)
    print(f"table: {args.prefixes} IPv4 prefixes, {args.peers} IX peers, built in "
          f"{time.perf_counter() - t:.1f} s")  # fmt: skip
    nets = Networks(["10.99.0.0/16"])
    tracker = NextHops(ROUTER, nets)
    wall, cpu, held = lock_held(rib, lambda: tracker.update(rib))
    routes, hops = len(tracker.by_prefix), len(tracker.next_hops())
    print(f"first walk: {wall:.2f} s wall, {cpu:.2f} CPU-s, RIB lock held at most "
          f"{held * 1000:.0f} ms; {routes} routes via {hops} IX next hops")  # fmt: skip

    rng = np.random.default_rng(1)
    keys = list(tracker.by_prefix)[: args.changes]
    moved = make_attributes(((AS_SEQUENCE, (64511, 64999)),), next_hop="10.99.0.1")
    for _, prefix in keys:
        rib.apply(RoutesAnnounced(ROUTER, V4, (prefix,), None, moved))
    walks = tracker.walks
    wall, cpu, held = lock_held(rib, lambda: tracker.update(rib))
    print(f"{len(keys)} changed prefixes: caught up in {wall * 1000:.1f} ms wall, "
          f"{cpu * 1000:.1f} CPU-ms, lock held at most {held * 1000:.1f} ms "
          f"({'a walk' if tracker.walks > walks else 'from the change log'})")  # fmt: skip

    config = parse_config(
        '[service]\nlocal_as = 65000\nrouter_id = "127.0.0.1"\n'
        f'[[routers]]\nname = "r1"\nneighbor = "{ROUTER}"\nexporters = ["{EXPORTER}"]\n'
        f'[[ix]]\nname = "ix"\nrouter = "r1"\nin_if = [{PORT}]\nprefixes = ["10.99.0.0/16"]\n',
        "bench.toml",
    )
    resolver = Resolver(rib, config)
    learner = IxLearner(rib, resolver.ix, config)
    (st,) = learner.status()
    st.next_hops[ROUTER] = tracker
    macs = {nh: bytes([2, 0, 0, 0, i >> 8, i & 255]) for i, nh in enumerate(tracker.next_hops())}
    st.neighbors = SourceState("csv", "bench", last=Read("csv", macs=macs))  # every peer's MAC
    c = time.process_time()
    st.table = learner._build(st)
    learner._publish()
    print(f"build_table: {len(st.table)} MACs in {(time.process_time() - c) * 1000:.1f} CPU-ms")

    n = 65_536
    mac_list = list(macs.values())
    src = np.zeros((n, 16), dtype=np.uint8)
    src[:, 10:12] = 0xFF
    src[:, 12:] = rng.integers(1, 223, size=(n, 4))
    dst = src.copy()
    dst[:, 15] ^= 1
    mac_col = b"".join(mac_list[int(i)] for i in rng.integers(len(mac_list), size=n))
    args_cols = ([EXPORTER], [0] * n, src.tobytes(), dst.tobytes())
    resolver.resolve_columns(*args_cols, [PORT] * n, mac_col, with_routes=False)  # views
    for label, port in (("on the IX port", PORT), ("elsewhere (no IX)", PORT + 1)):
        best = min(
            _timed(
                lambda p=port: resolver.resolve_columns(
                    *args_cols, [p] * n, mac_col, with_routes=False
                )
            )
            for _ in range(5)
        )
        print(f"bulk, {n} flows {label}: {n / best / 1e6:.2f} M flows/CPU-s")
    return 0


def _timed(fn) -> float:
    c = time.process_time()
    fn()
    return time.process_time() - c


if __name__ == "__main__":
    raise SystemExit(main())
