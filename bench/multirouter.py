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
import linecache
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from bench.common import (
    FULL_TABLE,
    Row,
    at_least,
    at_most,
    bench_main,
    cpu_seconds,
    data_available,
    log,
    rss_bytes,
)

COUNTS = (1, 2, 4, 8, 16, 32, 64)
MEMORY_LIMIT = 16 * 2**30
BYTES_TARGET = 40  # per (router, prefix), RIB + views (issue 11)
DROP_TARGET = 0.8  # bulk rate at 64 routers >= 80% of one router's
BATCH = 8192
BATCHES = 16
CHILD_TIMEOUT = 3 * 3600  # a busy box: one child took over an hour for 8 today-sized routers
VIEW_ROOM = 1.3  # a child stops loading when RSS x this passes the limit (views to come)


def _available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return MEMORY_LIMIT


def _release() -> None:
    from ribd.store import release_memory

    release_memory()


def _zipf_batches(prefixes: list[str], n_routers: int, seed: int = 7) -> list[tuple]:
    """BATCHES x (src, dst, exporter index column) over the table's IPv4 prefixes."""
    from bench.flows import ZipfSampler, mapped16

    rows = np.array(
        [
            (*(int(x) for x in net.split(".")), int(length))
            for net, _, length in (p.partition("/") for p in prefixes)
        ],
        dtype=np.uint64,
    )
    nets = (rows[:, 0] << np.uint64(24)) | (rows[:, 1] << np.uint64(16))
    nets |= (rows[:, 2] << np.uint64(8)) | rows[:, 3]
    lens = rows[:, 4]
    keep = lens > 0
    sampler = ZipfSampler.__new__(ZipfSampler)  # same model, this table's prefixes
    rng = np.random.default_rng(seed)
    sampler.nets, sampler.lens = nets[keep], lens[keep]
    sampler.ranks = rng.permutation(len(sampler.nets))
    weights = 1.0 / np.arange(1, len(sampler.nets) + 1, dtype=np.float64) ** 1.1
    sampler.cdf = np.cumsum(weights) / weights.sum()
    out = []
    for _ in range(BATCHES):
        src, dst = mapped16(sampler(rng, BATCH)), mapped16(sampler(rng, BATCH))
        out.append((src, dst, rng.integers(0, n_routers, BATCH).tolist()))
    return out


def _config():
    from attribution.config import load_config

    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write('[service]\nlocal_as = 64500\nrouter_id = "127.0.0.1"\n')
    try:
        return load_config(f.name)
    finally:
        Path(f.name).unlink()


def child(args: argparse.Namespace) -> list[dict]:
    """Load routers 1..N in this process; measure at N (and, with ``--checkpoints``,
    at every count of COUNTS on the way). Returns one dict per measurement."""
    from attribution.service import tune_gc
    from bench.realistic import V4, V6, cached_model, router_lines
    from ribd.parser import ExabgpParser
    from ribd.rib import Rib

    n = args.routers
    model = cached_model(args.base, Path(args.workdir), fraction_step(args.fraction))
    v4_prefixes = model.v4_prefixes()
    flows = _zipf_batches(v4_prefixes, n)
    per_router = {V4: model.family_prefixes(V4), V6: model.family_prefixes(V6)}
    limit = min(MEMORY_LIMIT, _available() - 2**30)
    stops = {n} | ({c for c in COUNTS if c < n} if args.checkpoints else set())
    tune_gc()
    _release()
    if args.where:
        tracemalloc.start(1)
    base = rss_bytes()
    rib = Rib()
    parse = ExabgpParser(rib.interner).parse
    apply_many = rib.apply_many
    load_cpu, gen_cpu, diverted, sets = [], [], [], []
    out: list[dict] = []
    feed = Feed(rib, Path(args.workdir)) if args.feed else None
    for k in range(1, n + 1):
        t0 = time.process_time()
        lines, st = router_lines(model, k)
        if feed is not None:
            feed.prepare(lines)
        t1 = time.process_time()
        if feed is not None:  # all threads' CPU: the feed server applies in its own
            lines = []
            c0 = cpu_seconds()
            feed.send(float(k))
        else:
            for line in lines:
                apply_many(parse(line))
        settle(rib)
        load_cpu.append(time.process_time() - t1 if feed is None else cpu_seconds() - c0)
        gen_cpu.append(t1 - t0)
        diverted.append(st.diverted / st.prefixes)
        sets.append(st.attribute_sets)
        del lines
        if k in stops or k % 8 == 0:
            log(f"multirouter {args.base}: {k}/{n} routers, RSS {rss_bytes() / 2**30:.2f} GiB")
        stopped = ""
        rss = rss_bytes()
        if k < n and (rss * VIEW_ROOM > limit or _available() < rss * (VIEW_ROOM - 1) + 2 * 2**30):
            stopped = (
                f"stopped after {k} routers: RSS {rss / 2**30:.1f} GiB, with room for the "
                f"views it would pass {limit / 2**30:.1f} GiB or the memory available"
            )
            log(f"multirouter: {stopped}")
        if k not in stops and not stopped:
            continue
        prev = out[-1]["routers"] if out else 0
        r = {
            "base": args.base,
            "routers": k,
            "process": "one process, routers added one by one" if args.checkpoints else "own",
            "via": "feed socket (bench.feeder process -> FeedServer)" if feed else "in-process",
            "stopped": stopped,
            "expected_pairs": k * sum(per_router.values()),
            "prefixes_per_router": per_router,
            "load_cpu": load_cpu[prev:],  # the routers loaded since the last measurement
            "gen_cpu": gen_cpu[prev:],
            "first_load_cpu": load_cpu[0],
            "diverted": sum(diverted) / len(diverted),
            "sets_per_router": sum(sets) / len(sets),
            "rss_base": base,
        }
        r.update(measure_loaded(rib, base, args.where, v4_prefixes, flows, k))
        _release()
        out.append(r)
        if args.out:  # what is measured survives a child stopped from outside
            Path(args.out).write_text(json.dumps(out))
        log(
            f"multirouter {args.base}: N={k}: RIB {r['rib_bytes'] / r['pairs']:.0f} + views "
            f"{r['view_bytes'] / r['pairs']:.0f} B/(router, prefix)"
        )
        if stopped:
            break
        later = [c for c in stops if c > k]
        if later and args.budget:
            per = (sum(load_cpu) + sum(gen_cpu)) / k
            need = per * (min(later) - k) + 30
            if time.process_time() + need > args.budget:
                r["stopped"] = (
                    f"stopped after {k} routers: ~{need:.0f} CPU-s more for N={min(later)} "
                    f"would pass the budget of {args.budget:.0f} CPU-s"
                )
                log(f"multirouter: {r['stopped']}")
                break
    return out


def fraction_step(fraction: float) -> int:
    """``--fraction`` as the step between the base groups kept (1: all)."""
    return 1 if fraction >= 1.0 else max(1, round(1 / fraction))


def settle(rib) -> None:
    """The RIB as a running service has it a few seconds after a load: maintenance
    until idle, the stores' new prefixes merged into their arrays (the maintenance
    merges once writes have paused for a second of wall time, which a loop of
    ``maintenance()`` calls never waits for) and the change logs trimmed (compiled
    views catch up and trim them). Without this, router 1's RIB was measured with
    its whole table still in the pytricia delta, and the views' build, which merges
    first, showed up as negative view bytes."""
    while rib.maintenance():
        pass
    rib.compact()
    with rib.lock:
        for table in rib.tables.values():
            table.trim_changes(table.change_seq)


class Feed:
    """Routers' lines through the real feed socket: a ``bench.feeder`` process (the
    relay protocol) sends them, a ``FeedServer`` in this process applies them. The
    load's cost is this process's CPU (all its threads) from go to the marker line."""

    def __init__(self, rib, workdir: Path) -> None:
        import atexit
        import shutil

        from ribd.feed import FeedServer

        self.rib = rib
        self.dir = Path(tempfile.mkdtemp(prefix="feed-", dir=workdir))
        atexit.register(shutil.rmtree, self.dir, True)
        self.socket = str(self.dir / "feed.sock")
        self.server = FeedServer(self.socket, rib, resync_on_loss=False)
        self.server.start()
        self.file = self.dir / "router.jsonl.gz"

    def prepare(self, lines: list[bytes]) -> None:
        import gzip

        with gzip.open(self.file, "wb", compresslevel=1) as f:
            f.write(b"\n".join(lines) + b"\n")

    def send(self, token: float) -> None:
        from bench.ingest_feed import _wait_marker

        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.feeder", "--socket", self.socket, "--file",
             str(self.file), "--token", str(token)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stdin and proc.stdout
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("feeder failed to start")
        proc.stdin.write("go\n")
        proc.stdin.flush()
        _wait_marker(self.rib, token, timeout=1800)
        proc.communicate(timeout=120)


def measure_loaded(rib, base: int, trace: bool, v4_prefixes, flows, k: int) -> dict:
    """RSS of the RIB, then of the views the daemon would compile, then bulk rates.
    The views are dropped again afterwards (the next routers load without them)."""
    from attribution import routecache
    from attribution.resolver import Resolver
    from bench.inproc import timed
    from bench.realistic import neighbor

    _release()
    rib_bytes = rss_bytes() - base
    pairs = sum(fs.prefixes for r in rib.routers.values() for fs in r.families.values())
    resolver = Resolver(rib, _config(), build_views_inline=False)
    views = resolver.views
    before = rss_bytes()
    with rib.lock:
        views.want_missing(list(rib.routers))
    t0 = time.process_time()
    built = views.refresh()
    view_cpu = time.process_time() - t0
    _release()
    result = {
        "pairs": pairs,
        "rib_bytes": rib_bytes,
        "view_bytes": rss_bytes() - before,
        "views_built": built,
        "view_cpu": view_cpu,
        "interned_sets": len(rib.interner),
    }
    if trace:
        result["where"] = where(tracemalloc.take_snapshot(), pairs)
        return result

    exporters_all = [neighbor(j) for j in range(1, k + 1)]
    spread = [(s, d, [x % k for x in ex]) for s, d, ex in flows]
    one = [0] * BATCH
    checks = []
    for s, d, ex in spread[:2]:
        res = resolver.resolve_columns(exporters_all, ex, s, d)
        if res.errors:
            checks.append(f"{len(res.errors)} errors, first {res.errors[0]}")
        answered = int((np.asarray(res.dst_origin_as) != 0).sum())
        if answered < BATCH // 2:
            checks.append(f"only {answered} of {BATCH} flows have a dst origin AS")

    def rate(exporters, column_of, with_routes):
        def call(i):
            s, d, ex = spread[i]
            resolver.resolve_columns(exporters, column_of(ex), s, d, with_routes=with_routes)

        return timed(call, BATCH, len(spread))

    _release()
    before_routes = rss_bytes()
    result["bulk"] = {
        "spread_as_only": rate(exporters_all, lambda ex: ex, False),
        "one_as_only": rate(exporters_all[:1], lambda ex: one, False),
        "spread_routes": rate(exporters_all, lambda ex: ex, True),
        "one_routes": rate(exporters_all[:1], lambda ex: one, True),
    }
    # What batches with routes leave behind: the views' kept route objects
    # (attribution.routecache, bounded for the process), measured before
    # the pytricia baseline allocates its own trie.
    _release()
    result["routes_bytes"] = rss_bytes() - before_routes
    result["routes_kept"] = routecache.BUDGET.held()
    result["bulk"]["pytricia"] = bare_pytricia(v4_prefixes, flows)
    result["checks"] = checks
    return result  # the views go with the resolver; the caller gives the memory back


def bare_pytricia(prefixes: list[str], flows: list[tuple]) -> float:
    """Two lookups per flow in a Python loop on a bare trie of the same prefixes."""
    import pytricia

    from bench.inproc import timed

    trie = pytricia.PyTricia(32)
    value = ("shared",)
    for p in prefixes:
        trie.insert(p, value)
    keys = [
        [(s[16 * i + 12 : 16 * i + 16], d[16 * i + 12 : 16 * i + 16]) for i in range(BATCH)]
        for s, d, _ in flows
    ]
    get = trie.get

    def one(i: int) -> None:
        for a, b in keys[i]:
            get(a)
            get(b)

    return max(timed(one, BATCH, len(keys)) for _ in range(3))  # best of 3: it is noisy


def where(snapshot: tracemalloc.Snapshot, pairs: int, top: int = 20) -> list[dict]:
    """The largest allocation sites still alive, per (router, prefix)."""
    stats = snapshot.statistics("lineno")
    total = sum(s.size for s in stats)
    out = [{"site": "all traced", "source": "", "bytes_per_pair": total / pairs, "blocks": 0}]
    for s in stats[:top]:
        frame = s.traceback[0]
        out.append(
            {
                "site": f"{Path(frame.filename).name}:{frame.lineno}",
                "source": linecache.getline(frame.filename, frame.lineno).strip()[:90],
                "bytes_per_pair": s.size / pairs,
                "blocks": s.count,
            }
        )
    return out


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
