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
  build the answer bytes), for each answer shape of ``bench.flows.ANSWERS``.
  Route entries are cached across batches by the service; we give the rate
  of a first, cold pass and of later passes (the load clients, too, cycle
  through their batches).

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
from bench.flows import ANSWERS, batch_requests, batches
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
    for prefix in rib.tables["ipv4 unicast"].store.prefixes():
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
    out: dict[str, dict] = {}
    for kind in kinds:
        log(f"inproc: {kind}")
        flows = batches(kind, count, size)
        resolver.resolve_columns([EXPORTER], [0] * size, *flows[0])  # compiles the views
        out[kind] = {
            "pytricia": bare_pytricia(rib, flows, frozen=False),
            "pytricia_frozen": bare_pytricia(rib, flows, frozen=True),
            "resolver": resolver_rate(resolver, flows),
            "resolver_no_routes": resolver_rate(resolver, flows, with_routes=False),
            "server_work": {
                a: server_rate(servicer, batch_requests(kind, count, size, EXPORTER, 7, a))
                for a in ANSWERS
            },
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


def server_rate(servicer, requests: list[bytes]) -> dict:
    """The server's work per batch without transport, as the gRPC clients load it.

    {"cold": first pass with fresh caches, "warm": later passes (the load
    clients cycle through their batches too), "routes_per_batch": route
    entries per answer when warm}. One stream state for all calls, as the
    clients use one stream.
    """
    from attribution.convert import RouteMessages
    from attribution.grpc_service import _StreamState
    from attribution.v1 import attribution_pb2 as pb
    from attribution.wire import RouteEncoder

    size = len(pb.FlowBatch.FromString(requests[0]).columns.exporter)
    stream = _StreamState()

    def one(i: int) -> bytes:
        request = pb.FlowBatch.FromString(requests[i])
        answer = servicer._resolve_batch(request, "ResolveStream", stream)
        return answer if type(answer) is bytes else answer.SerializeToString()

    servicer.route_messages = RouteMessages()
    servicer.route_encoder = RouteEncoder()
    t0 = time.process_time()
    for i in range(len(requests)):
        one(i)
    cold = size * len(requests) / (time.process_time() - t0)
    warm = timed(one, size, len(requests), warm=False)
    entries = [len(pb.AttributionBatch.FromString(one(i)).columns.routes) for i in range(4)]
    return {"cold": cold, "warm": warm, "routes_per_batch": sum(entries) / len(entries)}


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
