"""How long ListRouters and a metrics scrape hold the RIB's lock, at N routers.

The feed takes ``rib.lock`` for every UPDATE, so whatever a status call does
under it, the feed waits that long. Both calls copy the routers' states under
the lock (``attribution.router_status.capture``) and build their protobuf
messages and Prometheus samples after it. Printed per N: the capture (the
hold), the whole ListRouters answer and the whole scrape of the RIB's figures
(what the hold was when they were built under the lock), medians in µs.

    python -m bench.status_hold [--routers 1,16,63,250]
"""

from __future__ import annotations

import argparse
import statistics
import time

from attribution.config import parse_config
from attribution.grpc_service import AttributionServicer, ReloadResult
from attribution.metrics_scrape import ServiceCollector, Sources
from attribution.resolver import Resolver
from attribution.router_status import capture
from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.events import EndOfRib, RoutesAnnounced, SessionState
from ribd.rib import Rib


def _world(n: int):
    routers = "".join(
        f'[[routers]]\nname = "edge{i}"\nneighbor = "127.0.{i // 250}.{i % 250 + 1}"\n'
        f'peer_as = {64512 + i}\nexporters = ["127.1.{i // 250}.{i % 250 + 1}"]\n'
        for i in range(n)
    )
    service = '[service]\nlocal_as = 64500\nrouter_id = "127.0.0.1"\n'
    config = parse_config(service + routers, "bench.toml")
    rib = Rib(router_names={r.neighbor: r.name for r in config.routers})
    attrs = make_attributes(((AS_SEQUENCE, (64512, 65000)),), next_hop="127.0.0.99")
    for r in config.routers:
        rib.apply(SessionState(r.neighbor, "up"))
        rib.apply(RoutesAnnounced(r.neighbor, "ipv4 unicast", ("10.0.0.0/8",), None, attrs))
        rib.apply(RoutesAnnounced(r.neighbor, "ipv6 unicast", ("2001:db8::/32",), None, attrs))
        rib.apply(EndOfRib(r.neighbor, "ipv4 unicast"))
    return rib, config


def _median_us(call, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--routers", default="1,16,63,250")
    ap.add_argument("--repeat", type=int, default=200)
    args = ap.parse_args()
    print("routers  capture (lock held) µs  ListRouters µs  scrape of the RIB µs")
    for n in (int(x) for x in args.routers.split(",")):
        hold, listing, scrape = _one(n, args.repeat)
        print(f"{n:7d}  {hold:22.0f}  {listing:14.0f}  {scrape:20.0f}")


def _one(n: int, repeat: int) -> tuple[float, float, float]:
    """Median µs of the capture, the whole ListRouters and the RIB's scrape at ``n`` routers."""
    rib, config = _world(n)
    servicer = AttributionServicer(
        rib, Resolver(rib, config), lambda: config, lambda: ReloadResult()
    )
    sources = Sources(rib, lambda: config, dict, None, None, lambda: 0.0, lambda: True)
    neighbors = [r.neighbor for r in config.routers]
    return (
        _median_us(lambda: capture(rib, neighbors), repeat),
        _median_us(servicer._list_routers, repeat),
        _median_us(lambda: list(ServiceCollector(sources)._rib()), repeat),
    )


if __name__ == "__main__":
    main()
