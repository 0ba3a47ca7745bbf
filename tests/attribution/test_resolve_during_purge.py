"""Flow batches keep being answered while one router's routes are purged.

A session reset in purge mode leaves every route and attribute set of that
router to sweep and collect. Collecting them in one go held the RIB lock for
seconds with many routers (6.1 CPU-s for one reset among 16), and every flow
batch, which takes the lock to choose its routers, waited. Progress is
counted, never timed: batches the main thread answered from start to end
while the maintenance thread (the daemon's loop: steps with a pause between
them) had swept the router's routes but not yet collected its sets.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from attribution.config import parse_config
from attribution.resolver import Resolver
from ribd.attributes import AS_SEQUENCE, attribute_row, make_attributes
from ribd.events import EndOfRib, RoutesAnnounced, SessionState
from ribd.rib import Rib

V4 = "ipv4 unicast"
KEEP, GONE = "127.0.2.1", "127.0.2.2"
PREFIXES = 6000

CONFIG = f"""
[service]
local_as = 64500
router_id = "127.0.0.1"
grpc_listen = "127.0.0.1:0"

[[routers]]
name = "keep"
neighbor = "{KEEP}"

[[routers]]
name = "gone"
neighbor = "{GONE}"
"""


def _load(rib: Rib, neighbor: str, hop: int) -> None:
    rib.apply(SessionState(neighbor, "up"))
    for i in range(PREFIXES):  # own attribute set per prefix: much to collect
        row = attribute_row(
            make_attributes(((AS_SEQUENCE, (65000 + hop, 100_000 + i)),), next_hop=f"127.0.3.{hop}")
        )
        a = rib.interner.intern(row)
        rib.apply(RoutesAnnounced(neighbor, V4, (f"10.{i >> 8}.{i & 255}.0/24",), None, a))
    rib.apply(EndOfRib(neighbor, V4))


def test_batches_are_answered_while_a_purged_router_is_collected():
    config = parse_config(CONFIG, "test.toml")
    rib = Rib(router_names={r.neighbor: r.name for r in config.routers})
    _load(rib, KEEP, 1)
    _load(rib, GONE, 2)
    while rib.maintenance():
        pass
    resolver = Resolver(rib, config)
    src = np.zeros((512, 16), dtype=np.uint8)
    src[:, 10:12] = 0xFF
    src[:, 12] = 10
    src[:, 13] = np.arange(512) % 23
    src[:, 14] = np.arange(512) % 251
    dst = src.copy()
    dst[:, 15] = 7
    columns = ([KEEP], [0] * 512, src.tobytes(), dst.tobytes())
    first = resolver.resolve_columns(*columns)
    assert (first.dst_origin_as >= 100_000).all()

    sets_before = len(rib.interner)
    rib.apply(SessionState(GONE, "down", reason="test"))  # purge: no stale hold
    purging = threading.Event()
    purging.set()

    def maintain() -> None:  # the daemon's loop (attribution.service._maintain)
        try:
            while rib.maintenance(budget=64):
                time.sleep(0.001)
        finally:
            purging.clear()

    def collecting() -> bool:
        """Swept, but the router's sets not all collected yet: garbage remains."""
        swept = not any(t._sweeps for t in rib.tables.values())
        return swept and len(rib.interner) > sets_before - PREFIXES

    thread = threading.Thread(target=maintain)
    answered_while_collecting = 0
    thread.start()
    try:
        while purging.is_set():
            before = collecting()
            res = resolver.resolve_columns(*columns)
            if before and collecting():
                answered_while_collecting += 1
            assert (res.dst_origin_as == first.dst_origin_as).all()
    finally:
        thread.join(120)
    assert not thread.is_alive()
    assert len(rib.interner) <= sets_before - PREFIXES  # the router's sets were collected
    assert answered_while_collecting >= 3
