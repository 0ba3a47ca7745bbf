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
  next hops);
* ``spread``: the exact rows again with each batch spread round-robin over
  ``--exporters`` exporters of the router (a batch's groups: one per exporter).

Rates are flows per CPU-second of this single-threaded process; ratios are
to ``view`` in the same run (the box's speed cancels out). Zipf destinations
and sources over the table (``bench.flows``), batches of 8192 as the gRPC
load clients send. Prints one line per figure, and JSON with --out.

    python -m bench.exact_path [--exporters 64]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from pathlib import Path

import numpy as np

from bench.common import FULL_TABLE_PEER, log
from bench.flows import batches
from bench.inproc import load_rib, timed
from bench.server import ROUTER


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


def config_text(exporters: list[str]) -> str:
    """One router (the full table's neighbor) with ``exporters``."""
    listed = ", ".join(f'"{e}"' for e in exporters)
    return (
        '[service]\nlocal_as = 64500\nrouter_id = "127.0.0.1"\ngrpc_listen = "127.0.0.1:0"\n'
        f'[[routers]]\nname = "{ROUTER}"\nneighbor = "{FULL_TABLE_PEER}"\nexporters = [{listed}]\n'
    )


def run(count: int, size: int, kind: str, spread: int) -> dict[str, float]:
    from attribution.config import parse_config
    from attribution.resolver import Resolver

    all_exporters = [f"127.0.3.{k + 1}" for k in range(max(spread, 1))]
    config = parse_config(config_text(all_exporters), "exact_path.toml")
    log("exact_path: loading the full table")
    rib = load_rib()
    flows = batches(kind, count, size)
    exporters, exporter = all_exporters[:1], [0] * size
    out: dict[str, float] = {}

    with_view = Resolver(rib, config)
    with_view.resolve_columns(exporters, exporter, *flows[0])  # compiles the view
    no_view = Resolver(rib, config, build_views_inline=False)
    assert with_view.views.usable(FULL_TABLE_PEER, "ipv4 unicast") is not None
    assert no_view.views.usable(FULL_TABLE_PEER, "ipv4 unicast") is None
    hops = [next_hops(rib, FULL_TABLE_PEER, dst) for _, dst in flows]

    def rate(resolver, with_routes: bool, hop: bool = False, over: int = 1) -> float:
        index = (np.arange(size) % over).tolist()

        def one(i: int) -> None:
            resolver.resolve_columns(
                all_exporters[:over],
                index,
                *flows[i],
                with_routes=with_routes,
                next_hop=hops[i] if hop else None,
            )

        return timed(one, size, len(flows))

    rows = [
        ("view, AS numbers", with_view, False, False, 1),
        ("exact, AS numbers", no_view, False, False, 1),
        ("view, routes", with_view, True, False, 1),
        ("exact, routes", no_view, True, False, 1),
        ("next hop, AS numbers", with_view, False, True, 1),
        ("next hop, routes", with_view, True, True, 1),
    ]
    if spread > 1:
        rows += [
            (f"exact, AS numbers, {spread} exporters", no_view, False, False, spread),
            (f"exact, routes, {spread} exporters", no_view, True, False, spread),
        ]
    for name, resolver, with_routes, hop, over in rows:
        log(f"exact_path: {name}")
        out[name] = rate(resolver, with_routes, hop, over)
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
    p.add_argument("--exporters", type=int, default=64, help="the spread rows' exporters")
    p.add_argument("--out")
    args = p.parse_args()
    result = run(args.batches, args.batch, args.kind, args.exporters)
    for name, flows_per_s in result.items():
        base = result["view, routes" if "routes" in name else "view, AS numbers"]
        print(
            f"{name:36} {flows_per_s / 1e3:9.1f} k flows/CPU-s  {1e6 / flows_per_s:7.2f} us/flow"
            f"  {base / flows_per_s:6.1f}x the view's cost"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
