"""In-process baselines for attribution throughput, on the flows the gRPC clients send.

With the full table loaded in this process (as the service loads it):

* ``pytricia``: a bare pytricia trie of the same prefixes, two lookups per
  flow in a plain Python loop (the naive path's ceiling), and the same on a
  frozen trie;
* ``resolver``: ``Resolver.resolve_columns`` on the same batches, with the
  compiled lookup views warm (the daemon builds them in its maintenance
  thread; here the first call builds them);
* ``server work``: what the server does per batch minus the gRPC transport:
  parse the FlowBatch, ``AttributionServicer._resolve_batch`` (resolve and
  build the answer message), serialize the answer. Route messages are cached
  across batches by the service; we give the rate of a first, cold pass and
  of later passes (the load clients, too, cycle through their batches).

The batches are those of the first load client (``bench.flows``, seed 7).

Rates are per CPU second of this (single-threaded) process, i.e. per core,
like the server figure they are compared with.

Prints a JSON object {kind: {figure: flows/s}} (or writes it to --out).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench.common import FULL_TABLE, log, read_lines
from bench.flows import batch_requests, batches
from bench.server import EXPORTER, ROUTER

MIN_SECONDS = 1.0  # repeat a measurement until it has run this long


def load_rib():
    from attribution.service import tune_gc
    from ribd.parser import ExabgpParser
    from ribd.rib import Rib

    lines = read_lines(FULL_TABLE)
    tune_gc()
    rib = Rib(router_names={"206.220.231.55": ROUTER})
    parse = ExabgpParser(rib.interner).parse
    for line in lines:
        rib.apply_many(parse(line))
    return rib


def timed(fn, flows_per_call: int, calls: int, warm: bool = True) -> float:
    """flows/s of ``fn(i)`` over ``calls`` rounds, repeated to MIN_SECONDS.

    ``warm``: one untimed round first, so caches are in the state a server
    that has seen these batches before would have (the load clients cycle
    through the same batches).
    """
    if warm:
        for i in range(calls):
            fn(i)
    done = 0
    t0 = time.process_time()
    while True:
        for i in range(calls):
            fn(i)
        done += calls
        elapsed = time.process_time() - t0
        if elapsed >= MIN_SECONDS:
            return done * flows_per_call / elapsed


def bare_pytricia(rib, flows: list[tuple[bytes, bytes]], frozen: bool) -> float:
    import pytricia

    trie = pytricia.PyTricia(32)
    value = ("shared",)
    for prefix in rib.tables["ipv4 unicast"].trie.keys():  # noqa: SIM118 (a list)
        trie.insert(prefix, value)
    if frozen:
        trie.freeze()
    keys = [
        [(src[16 * i + 12 : 16 * i + 16], dst[16 * i + 12 : 16 * i + 16]) for i in range(n)]
        for src, dst in flows
        for n in (len(src) // 16,)
    ]
    get = trie.get

    def one(i: int) -> None:
        for s, d in keys[i]:
            get(s)
            get(d)

    return timed(one, len(keys[0]), len(keys))


def run(kinds: list[str], count: int, size: int, config_path: Path) -> dict:
    from attribution.config import load_config
    from attribution.grpc_service import AttributionServicer, ReloadResult
    from attribution.resolver import Resolver

    rib = load_rib()
    config = load_config(config_path)
    resolver = Resolver(rib, config)
    servicer = AttributionServicer(rib, resolver, lambda: config, lambda: ReloadResult(ok=True))
    out: dict[str, dict[str, float | None]] = {}
    for kind in kinds:
        log(f"inproc: {kind}")
        flows = batches(kind, count, size)
        resolver.resolve_columns([EXPORTER], [0] * size, *flows[0])  # compiles the views
        cold, warm = server_rate(servicer, batch_requests(kind, count, size, EXPORTER))
        try:
            omit = batch_requests(kind, count, size, EXPORTER, omit_routes=True)
        except AttributeError:  # no FlowBatch.omit_routes in this proto
            omit = None
        out[kind] = {
            "pytricia": bare_pytricia(rib, flows, frozen=False),
            "pytricia_frozen": bare_pytricia(rib, flows, frozen=True),
            "resolver": resolver_rate(resolver, flows),
            "resolver_no_routes": resolver_rate(resolver, flows, with_routes=False),
            "server_work": warm,
            "server_work_cold": cold,
            "server_work_omit": server_rate(servicer, omit)[1] if omit else None,
            "routes_per_batch": routes_per_batch(resolver, flows),
        }
    return out


def resolver_rate(
    resolver, flows: list[tuple[bytes, bytes]], with_routes: bool = True
) -> float | None:
    """Resolver.resolve_columns alone, per CPU-s (None: no ``with_routes`` here)."""
    size = len(flows[0][0]) // 16
    exporters, exporter = [EXPORTER], [0] * size
    kw = {} if with_routes else {"with_routes": False}
    try:
        resolver.resolve_columns(exporters, exporter, *flows[0], **kw)
    except TypeError:
        return None
    return timed(
        lambda i: resolver.resolve_columns(exporters, exporter, *flows[i], **kw), size, len(flows)
    )


def routes_per_batch(resolver, flows: list[tuple[bytes, bytes]]) -> float:
    """Distinct routes in the answer's route dictionary, per batch (mean)."""
    size = len(flows[0][0]) // 16
    n = [len(resolver.resolve_columns([EXPORTER], [0] * size, *f).routes) for f in flows]
    return sum(n) / len(n)


def server_rate(servicer, requests: list[bytes]) -> tuple[float, float]:
    """(rate with a cold Route-message cache: first pass, rate once warm)."""
    from attribution.v1 import attribution_pb2 as pb

    size = len(pb.FlowBatch.FromString(requests[0]).columns.exporter)

    def one(i: int) -> None:
        request = pb.FlowBatch.FromString(requests[i])
        servicer._resolve_batch(request).SerializeToString()

    # Route messages are cached across batches (by the servicer): start cold.
    messages = getattr(servicer, "route_messages", None)
    if messages is not None:
        servicer.route_messages = type(messages)()
    t0 = time.process_time()
    for i in range(len(requests)):
        one(i)
    cold = size * len(requests) / (time.process_time() - t0)
    return cold, timed(one, size, len(requests), warm=False)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.inproc")
    p.add_argument("--kinds", default="zipf,uniform")
    p.add_argument("--batches", type=int, default=32)
    p.add_argument("--batch", type=int, default=8192)
    p.add_argument("--config", required=True, help="the service config the server uses")
    p.add_argument("--out")
    args = p.parse_args()
    result = run(args.kinds.split(","), args.batches, args.batch, Path(args.config))
    text = json.dumps(result)
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
