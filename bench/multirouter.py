"""Many routers whose tables differ: memory, load CPU and bulk rate at N = 1 ... 64.

The tables come from ``bench.realistic`` (per-router next hops, RR client
attributes, ~30% of prefixes through another upstream, local-pref and
communities varying), derived from the real 2015 table and from the
synthetic today-sized one. Each N runs in its own process (``--child``), GC
tuned as the service tunes it, so that no N inherits another's heap:

* load: router by router, generate its lines (not timed), parse + apply them
  in-process (``ExabgpParser`` -> ``Rib.apply_many``), then the service's
  maintenance until it has nothing left to do (merges, garbage); CPU seconds
  of parse + apply + maintenance per router. With ``--feed`` the lines go
  through the real feed socket instead (a ``bench.feeder`` process speaking
  the relay protocol, a ``FeedServer`` here): CPU of this whole process;
* memory: RSS (/proc) after the load and ``malloc_trim``, minus the RSS
  before the first router, per (router, prefix): the RIB; then the compiled
  lookup views of every router and family, built as the daemon builds them
  (``Resolver.views``: ``want_missing`` + ``refresh``): the views;
* bulk: ``Resolver.resolve_columns`` (the daemon's: no inline view builds)
  on zipf-distributed IPv4 flows (``bench.flows``' model over this table's
  prefixes), AS numbers only and with routes, the flows' exporters spread
  over all N routers, and all from router 1; a bare pytricia loop (two
  lookups per flow) on the same flows in the same process as the baseline
  that makes rates of different processes comparable.

The parent stops before an N whose projected RSS (from the previous N's
bytes per (router, prefix)) would pass ``MEMORY_LIMIT`` or the memory
available, and before its CPU budget runs out; a child stops loading when
its RSS passes the limit. ``--where N`` instead traces allocations
(tracemalloc) while loading N routers and prints where the bytes go, by
source line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import (
    FULL_TABLE,
    Row,
    at_least,
    at_most,
    bench_main,
    data_available,
    log,
)
from bench.multirouter_child import (
    BATCH,
    COUNTS,
    MEMORY_LIMIT,
    _available,
    child,
    fraction_step,
)

BYTES_TARGET = 40  # per (router, prefix), RIB + views (issue 11)
DROP_TARGET = 0.8  # bulk rate at 64 routers >= 80% of one router's
CHILD_TIMEOUT = 3 * 3600  # a busy box: one child took over an hour for 8 today-sized routers


# -- the parent: one child per N ---------------------------------------------------


def run_child(
    base: str, n: int, workdir: Path, *extra: str, budget: float = 0.0
) -> list[dict] | None:
    with tempfile.NamedTemporaryFile(suffix=".json", dir=workdir, delete=False) as f:
        out = Path(f.name)
    cmd = [sys.executable, "-m", "bench.multirouter", "--child", "--base", base]
    cmd += ["--routers", str(n), "--workdir", str(workdir), "--out", str(out), *extra]
    if FRACTION[0] < 1.0:
        cmd += ["--fraction", str(FRACTION[0])]
    if budget:
        cmd += ["--budget", str(budget)]
    log(f"run: {' '.join(cmd[2:])}")
    try:
        rc = subprocess.run(cmd, timeout=CHILD_TIMEOUT).returncode
    except subprocess.TimeoutExpired:
        rc = -1
    try:
        got = json.loads(out.read_text()) if out.stat().st_size else []
    finally:
        out.unlink(missing_ok=True)
    if rc != 0 and got:  # killed or failed after some measurements: keep them
        got[-1]["stopped"] = f"the process ended (exit {rc}) after this measurement"
    return got or None


def _model_ready(base: str, workdir: Path) -> None:
    """Build the base model (or its ``--fraction``) once, in a process of its own
    (its temporaries stay there)."""
    code = (
        "import sys; from pathlib import Path; from bench.realistic import cached_model; "
        f"cached_model({base!r}, Path(sys.argv[1]), {fraction_step(FRACTION[0])})"
    )
    subprocess.run([sys.executable, "-c", code, str(workdir)], check=True, timeout=1800)


def _cost(r: dict) -> float:
    return sum(r["load_cpu"]) + sum(r["gen_cpu"]) + r["view_cpu"]


def measure(args: argparse.Namespace, base: str, workdir: Path) -> list[dict]:
    """Every N of COUNTS up to --max-routers: one process each, or one process in all
    (``--checkpoints``); stops before memory or the CPU budget would run out."""
    _model_ready(base, workdir)
    counts = [c for c in COUNTS if c <= args.max_routers]
    via = ("--feed",) if args.feed else ()
    if args.checkpoints:
        got = run_child(base, counts[-1], workdir, "--checkpoints", *via, budget=args.budget)
        if got is None:
            return [{"base": base, "skipped": counts[-1], "why": "FAILED, see the output above"}]
        return got
    results: list[dict] = []
    spent = 0.0
    for n in counts:
        if results:
            last = results[-1]
            per_pair = (last["rib_bytes"] + last["view_bytes"]) / last["pairs"]
            per_router = sum(last["prefixes_per_router"].values())
            projected = last["rss_base"] + per_pair * per_router * n
            limit = min(MEMORY_LIMIT, _available() - 2**30)
            cpu_per_router = (sum(last["load_cpu"]) + sum(last["gen_cpu"])) / last["routers"]
            projected_cpu = cpu_per_router * n * 1.3 + 30
            why = ""
            if projected > limit:
                why = f"projected RSS {projected / 2**30:.1f} GiB > {limit / 2**30:.1f} GiB"
            elif spent + projected_cpu > args.budget:
                why = (
                    f"CPU budget: ~{projected_cpu:.0f} CPU-s more would pass "
                    f"{args.budget:.0f} (spent {spent:.0f})"
                )
            if why:
                results.append({"base": base, "skipped": n, "why": why})
                log(f"multirouter: {base} N={n} skipped, {why}")
                break
        got = run_child(base, n, workdir, *via)
        if got is None:
            results.append({"base": base, "skipped": n, "why": "FAILED, see the output above"})
            break
        spent += sum(_cost(r) for r in got)
        results += got
        if got[-1]["stopped"]:
            break
    return results


LABEL = {"real": "real 2015 table", "synth": "synthetic today-sized table"}


def rows_for(results: list[dict]) -> list[Row]:
    rows: list[Row] = []
    done = [r for r in results if "skipped" not in r]
    first = done[0] if done else None
    for r in results:
        label = LABEL[r["base"]]
        if "skipped" in r:
            rows.append(Row("routers", f"{label}, {r['skipped']} routers", None, "", note=r["why"]))
            continue
        n, pairs = r["routers"], r["pairs"]
        rib, view = r["rib_bytes"] / pairs, r["view_bytes"] / pairs
        kept = r.get("routes_bytes", 0) / pairs  # (absent from older dumps)
        per_router = sum(r["prefixes_per_router"].values())
        load = r["load_cpu"]
        want = r["expected_pairs"]
        check = "" if pairs == want else f"; RIB holds {pairs} pairs, not {want}"
        b = r["bulk"]
        ratio = b["spread_as_only"] / b["pytricia"]
        rows += [
            Row(
                "routers",
                f"{label}, {n} routers: RIB + views + routes kept",
                rib + view + kept,
                "bytes/(router, prefix)",
                target="<= 40",
                met=at_most(rib + view + kept, BYTES_TARGET),
                note=f"{n} x {per_router:,} prefixes ({pairs:,} pairs): RIB "
                f"{r['rib_bytes'] / 2**20:,.0f} MiB, views {r['view_bytes'] / 2**20:,.0f} MiB, "
                f"routes kept after the bulk runs {r.get('routes_bytes', 0) / 2**20:,.0f} MiB "
                f"({r.get('routes_kept', 0):,} routes) "
                f"({r['views_built']} built in {r['view_cpu']:.1f} CPU-s); "
                f"{r['sets_per_router']:,.0f} attribute sets per router, {r['interned_sets']:,} "
                f"interned; {r['diverted']:.1%} of prefixes through another path"
                + (f"; {r['stopped']}" if r["stopped"] else "")
                + ("; " + r["process"] if r["process"] != "own" else "; a process of its own")
                + check,
            ),
            Row("routers", "  of which RIB", rib, "bytes/(router, prefix)"),
            Row("routers", "  of which lookup views", view, "bytes/(router, prefix)"),
            Row(
                "routers",
                "  of which routes kept for batches with routes",
                kept,
                "bytes/(router, prefix)",
                note="RSS after the bulk runs less before them; bounded for the process "
                "(attribution.routecache.ROUTE_CACHE_BUDGET routes)",
            ),
            Row(
                "routers",
                "  load: parse + apply + maintenance, per router"
                + (", through the feed socket" if r.get("via", "").startswith("feed") else ""),
                sum(load) / len(load),
                "CPU-s",
                note=f"routers {n - len(load) + 1}-{n}: {min(load):.1f}-{max(load):.1f} CPU-s "
                f"each ({per_router / (sum(load) / len(load)):,.0f} prefixes per CPU-s); "
                f"router 1 took {r['first_load_cpu']:.1f}; generating the lines (not counted) "
                f"{sum(r['gen_cpu']) / len(load):.1f} CPU-s per router",
            ),
            Row(
                "routers",
                f"  bulk, AS only, flows over {n} routers' exporters",
                b["spread_as_only"],
                "flows/s",
                b["one_as_only"],
                "all from router 1",
                note=f"Resolver.resolve_columns per CPU-s, {BATCH}-flow zipf batches; "
                f"{ratio:.2f}x the bare pytricia loop of this run "
                f"({b['pytricia'] / 1e6:.2f} M flows/s)"
                + (f"; CHECK: {r['checks']}" if r["checks"] else ""),
            ),
            Row(
                "routers",
                f"  bulk, with routes, flows over {n} routers' exporters",
                b["spread_routes"],
                "flows/s",
                b["one_routes"],
                "all from router 1",
            ),
        ]
        if first is not None and r is not first and r is done[-1]:
            f0 = first["bulk"]["spread_as_only"] / first["bulk"]["pytricia"]
            kept = ratio / f0
            rows.append(
                Row(
                    "routers",
                    f"  bulk rate kept from {first['routers']} to {n} routers (AS only)",
                    kept * 100,
                    "%",
                    target=">= 80% at 64",
                    met=at_least(kept, DROP_TARGET) if n == max(COUNTS) else None,
                    note="rates as multiples of each run's bare pytricia loop, so that load "
                    "from other processes cancels out",
                )
            )
    return rows


def run(args: argparse.Namespace) -> list[Row]:
    bases = [b for b in args.bases.split(",") if b]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-multi-", dir=args.workdir) as d:
        for base in bases:
            if base == "real" and data_available(FULL_TABLE):
                # Said on stderr too: a run from a copy of the tree without ../shared next
                # to it otherwise printed one quiet row and measured nothing.
                log(f"multirouter: {base} skipped, {data_available(FULL_TABLE)}")
                rows.append(Row("routers", LABEL[base], None, "", note=data_available(FULL_TABLE)))
                continue
            # Models are kept in --workdir when given (the synthetic one takes minutes).
            results = measure(args, base, Path(args.workdir or d))
            if args.json_dump:
                with open(args.json_dump, "a") as f:
                    f.write(json.dumps(results) + "\n")
            rows += rows_for(results)
    return rows


def where_main(args: argparse.Namespace) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-multi-", dir=args.workdir) as d:
        work = Path(args.workdir or d)
        _model_ready(args.bases.split(",")[0], work)
        got = run_child(args.bases.split(",")[0], args.where_routers, work, "--where")
    if got is None:
        return [Row("routers", "where the bytes go", None, "", note="FAILED")]
    r = got[-1]
    if args.json_dump:
        with open(args.json_dump, "a") as f:
            f.write(json.dumps(r) + "\n")
    return [
        Row(
            "routers",
            f"where the bytes go, {r['routers']} routers: {w['site']}",
            w["bytes_per_pair"],
            "bytes/(router, prefix)",
            note=f"{w['blocks']:,} blocks: {w['source']}" if w["source"] else "",
        )
        for w in r["where"]
    ]


def extra_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bases", default="real,synth", help="real, synth or both")
    p.add_argument("--max-routers", type=int, default=max(COUNTS))
    p.add_argument("--budget", type=float, default=3000.0, help="CPU-s for all children")
    p.add_argument("--workdir", help="keep the base models here (default: a temp dir)")
    p.add_argument("--json-dump", help="append the raw measurements here (JSON lines)")
    p.add_argument("--where-routers", type=int, default=0, help="trace allocations at this N")
    # child process
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--base", default="real", help=argparse.SUPPRESS)
    p.add_argument("--routers", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--where", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--feed", action="store_true", help="load through the feed socket")
    p.add_argument(
        "--fraction",
        type=float,
        default=1.0,
        help="load every (1/F)-th base attribute set's prefixes only (e.g. 0.1: a tenth of "
        "the table, same shape), for quick runs",
    )
    p.add_argument(
        "--checkpoints",
        action="store_true",
        help="one process loads routers one by one and is measured at each N (half the "
        "CPU of a process per N; the RIB then has grown, and views were built and freed, "
        "as in a service adding routers)",
    )


FRACTION = [1.0]  # --fraction of the parent, handed to its children


def main_run(args: argparse.Namespace) -> list[Row]:
    FRACTION[0] = args.fraction
    if args.where_routers:
        return where_main(args)
    if args.quick:
        args.max_routers = min(args.max_routers, 4)
    return run(args)


def main() -> int:
    if "--child" in sys.argv:
        p = argparse.ArgumentParser(prog="python -m bench.multirouter")
        p.add_argument("--out", required=True)
        extra_args(p)
        args = p.parse_args()
        # (the child also writes args.out after each measurement)
        Path(args.out).write_text(json.dumps(child(args)))
        return 0
    return bench_main("multirouter", main_run, extra_args)


if __name__ == "__main__":
    raise SystemExit(main())
