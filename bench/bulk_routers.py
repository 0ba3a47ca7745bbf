"""Bulk rate with many exporters in a batch: N = 1, 4, 16, 64 routers in one process.

``bench.multirouter`` measures the bulk rate beside memory and load CPU, on
whole tables: 64 real-table routers take an hour of CPU to load on a shared
box. What falls with N is per-exporter work in ``resolve_columns`` (issue 11),
which does not depend on how many prefixes a router has, so this bench loads
``--share`` of the real table per router (the first base attribute groups of
``bench.realistic``'s model: each router's own next hops and ~30% of
prefixes through another upstream, as there), adds routers one by one and at
each N of ``--counts``, with every view compiled as the daemon compiles it:

* ``spread``: ``Resolver.resolve_columns`` (the daemon's, no inline builds),
  16 x 8,192 zipf IPv4 flows over the loaded prefixes, the flows' exporters
  spread over all N routers, AS numbers only (and with routes);
* ``router 1``: the same flows, all from router 1's exporter;
* ``pytricia``: a bare pytricia loop (two lookups per flow) on the same
  flows in the same process, best of 3: the yardstick that makes rates of
  different N comparable while other processes move per-CPU-s rates.

Flows per CPU second of this process. ``--profile N`` prints a cProfile of
the spread AS-only rate at N instead of the rows.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from pathlib import Path

from bench.common import FULL_TABLE, Row, at_least, bench_main, data_available, log

NAME = "bulk_routers"
COUNTS = (1, 4, 16, 64)
DROP_TARGET = 0.8  # spread rate at 64 routers >= 80% of one router's (issue 11)


def _partial_model(workdir: Path, share: float):
    from bench.realistic import Model, cached_model

    model = cached_model("real", workdir)
    want = share * model.prefixes
    groups, total = [], 0
    for g in model.groups:
        if total >= want:
            break
        groups.append(g)
        total += len(g.nlri)
    return Model(model.name, groups)


def _measure(rib, k: int, flows, prefixes, profile: bool) -> dict:
    from attribution.resolver import Resolver
    from bench.inproc import timed
    from bench.multirouter import BATCH, _config, bare_pytricia
    from bench.realistic import neighbor

    resolver = Resolver(rib, _config(), build_views_inline=False)
    with rib.lock:
        resolver.views.want_missing(list(rib.routers))
    resolver.views.refresh()
    exporters = [neighbor(j) for j in range(1, k + 1)]
    spread = [(s, d, [x % k for x in ex]) for s, d, ex in flows]
    one = [0] * BATCH
    res = resolver.resolve_columns(exporters, spread[0][2], spread[0][0], spread[0][1])
    assert not res.errors, res.errors[:3]

    def rate(exs, column_of, with_routes):
        def call(i):
            s, d, ex = spread[i]
            resolver.resolve_columns(exs, column_of(ex), s, d, with_routes=with_routes)

        return timed(call, BATCH, len(spread))

    if profile:
        prof = cProfile.Profile()
        prof.enable()
        rate(exporters, lambda ex: ex, False)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return {}
    out = {
        "routers": k,
        "spread_as_only": rate(exporters, lambda ex: ex, False),
        "one_as_only": rate(exporters[:1], lambda ex: one, False),
        "spread_routes": rate(exporters, lambda ex: ex, True),
        "one_routes": rate(exporters[:1], lambda ex: one, True),
        "pytricia": bare_pytricia(prefixes, flows),
    }
    log(
        f"N={k}: spread {out['spread_as_only'] / 1e6:.2f} M/CPU-s, router 1"
        f" {out['one_as_only'] / 1e6:.2f} M, pytricia {out['pytricia'] / 1e6:.2f} M"
    )
    return out


def run(args: argparse.Namespace) -> list[Row]:
    skip = data_available(FULL_TABLE)
    if skip:
        log(skip)
        return []
    from attribution.service import tune_gc
    from bench.multirouter import _zipf_batches
    from bench.realistic import router_lines
    from ribd.parser import ExabgpParser
    from ribd.rib import Rib

    counts = [int(c) for c in args.counts.split(",")]
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    model = _partial_model(workdir, args.share)
    prefixes = model.v4_prefixes()
    flows = _zipf_batches(prefixes, max(counts))
    tune_gc()
    rib = Rib()
    parse = ExabgpParser(rib.interner).parse
    results = []
    t0 = time.process_time()
    for k in range(1, max(counts) + 1):
        lines, _ = router_lines(model, k)
        for line in lines:
            rib.apply_many(parse(line))
        while rib.maintenance():
            pass
        if k in counts:
            log(
                f"{k} routers of {len(prefixes)} prefixes loaded,"
                f" {time.process_time() - t0:.0f} CPU-s"
            )
            if args.profile == k:
                _measure(rib, k, flows, prefixes, True)
                return []
            results.append(_measure(rib, k, flows, prefixes, False))
    return rows_for(results, len(prefixes))


def rows_for(results: list[dict], prefixes: int) -> list[Row]:
    rows = []
    base = results[0] if results else None
    for r in results:
        k = r["routers"]
        ratio = r["spread_as_only"] / r["one_as_only"]
        for key in ("spread_as_only", "one_as_only", "spread_routes", "one_routes", "pytricia"):
            rows.append(Row(NAME, f"{k} routers x {prefixes} prefixes: {key}", r[key], "flows/s"))
        rows.append(Row(NAME, f"{k} routers: spread / router 1 (AS only)", ratio, "x"))
        if base is not None:
            rel = (r["spread_as_only"] / r["pytricia"]) / (
                base["spread_as_only"] / base["pytricia"]
            )
            last = k == 64
            rows.append(
                Row(
                    NAME,
                    f"{k} routers: spread rate vs 1 router (pytricia-relative)",
                    rel,
                    "x",
                    target=">= 0.8 at 64 routers" if last else "",
                    met=at_least(rel, DROP_TARGET) if last else None,
                )
            )
    return rows


def extra_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--counts", default=",".join(map(str, COUNTS)), help="router counts")
    p.add_argument("--share", type=float, default=0.1, help="share of the table per router")
    p.add_argument("--workdir", default="/tmp/bench-bulk-routers", help="model cache")
    p.add_argument("--profile", type=int, default=0, help="cProfile the spread rate at this N")


def main() -> int:
    return bench_main(NAME, run, extra_args)


if __name__ == "__main__":
    raise SystemExit(main())
