"""The bulk path's exact lookups against its compiled views, in one process.

Flows a router's compiled view cannot answer take exact RIB lookups: every
flow of a router still loading, flows in prefixes changed since its view was
built, flows carrying a BGP next hop (goflow2's ``bgp_next_hop``, pmacct's
``peer_ip_dst``, nfdump's ``bgp4_next_hop``), IPv6 prefixes longer than /64.
This measures what a flow costs there, beside the same batches on the view,
with the real full table loaded as the service loads it (one router):

* ``view``: ``Resolver.resolve_columns`` with the router's view built;
* ``exact``: the same batches with no view (as mid-load), AS numbers only
  and with the route dictionary;
* ``next_hop``: on the view, each flow carrying a next hop (its route's own,
  so no mismatch: the exact path's common case with a collector that exports
  next hops).

Rates are flows per CPU-second of this single-threaded process; ratios are
to ``view`` in the same run (the box's speed cancels out). Zipf destinations
and sources over the table (``bench.flows``), batches of 8192 as the gRPC
load clients send. Prints one line per figure, and JSON with --out.

    python -m bench.exact_path --config <attribution.toml from bench.server>
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.common import log
from bench.flows import batches
from bench.inproc import load_rib, timed
from bench.server import EXPORTER, free_port, write_config


def next_hops(rib, router: str, dst: bytes) -> bytes:
    """Each flow's dst route's own next hop (16 bytes, v4-mapped; none: zero)."""
    out = bytearray(len(dst))
    with rib.lock:
        for i in range(len(dst) // 16):
            m = rib.lookup(router, "ipv4 unicast", dst[16 * i + 12 : 16 * i + 16])
            if m is not None and m.attributes.next_hop:
                hop = ipaddress.ip_address(m.attributes.next_hop)
                out[16 * i : 16 * i + 16] = ipaddress.IPv6Address(f"::ffff:{hop}").packed
    return bytes(out)


def run(count: int, size: int, kind: str) -> dict[str, float]:
    from attribution.config import load_config
    from attribution.resolver import Resolver
    from bench.common import FULL_TABLE_PEER

    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(write_config(Path(tmp), free_port()))
    log("exact_path: loading the full table")
    rib = load_rib()
    flows = batches(kind, count, size)
    exporters, exporter = [EXPORTER], [0] * size
    out: dict[str, float] = {}

    with_view = Resolver(rib, config)
    with_view.resolve_columns(exporters, exporter, *flows[0])  # compiles the view
    no_view = Resolver(rib, config, build_views_inline=False)
    assert with_view.views.usable(FULL_TABLE_PEER, "ipv4 unicast") is not None
    assert no_view.views.usable(FULL_TABLE_PEER, "ipv4 unicast") is None
    hops = [next_hops(rib, FULL_TABLE_PEER, dst) for _, dst in flows]

    def rate(resolver, with_routes: bool, hop: bool = False) -> float:
        def one(i: int) -> None:
            resolver.resolve_columns(
                exporters,
                exporter,
                *flows[i],
                with_routes=with_routes,
                next_hop=hops[i] if hop else None,
            )

        return timed(one, size, len(flows))

    for name, resolver, with_routes, hop in (
        ("view, AS numbers", with_view, False, False),
        ("exact, AS numbers", no_view, False, False),
        ("view, routes", with_view, True, False),
        ("exact, routes", no_view, True, False),
        ("next hop, AS numbers", with_view, False, True),
        ("next hop, routes", with_view, True, True),
    ):
        log(f"exact_path: {name}")
        out[name] = rate(resolver, with_routes, hop)
    check = no_view.resolve_columns(exporters, exporter, *flows[0], with_routes=False)
    view = with_view.resolve_columns(exporters, exporter, *flows[0], with_routes=False)
    for column in ("src_origin_as", "src_peer_as", "dst_origin_as", "dst_peer_as"):
        assert np.array_equal(getattr(check, column), getattr(view, column)), column
    return out


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.exact_path")
    p.add_argument("--batches", type=int, default=16)
    p.add_argument("--batch", type=int, default=8192)
    p.add_argument("--kind", default="zipf", choices=("zipf", "uniform"))
    p.add_argument("--out")
    args = p.parse_args()
    result = run(args.batches, args.batch, args.kind)
    for name, flows_per_s in result.items():
        base = result["view, routes" if "routes" in name else "view, AS numbers"]
        print(
            f"{name:24} {flows_per_s / 1e3:9.1f} k flows/CPU-s  {1e6 / flows_per_s:7.2f} us/flow"
            f"  {base / flows_per_s:6.1f}x the view's cost"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
