"""The child process of ``bench.multirouter``: N realistic routers loaded, then measured.

One process per N (or one for all N with ``--checkpoints``), so no N inherits
another's heap: the load (parse + apply + maintenance per router, or the real
feed socket with ``--feed``), the RSS of the RIB and of the compiled views per
(router, prefix), the bulk rate against a bare pytricia loop in the same
process, and with ``--where`` the allocations by source line. The parent
(``bench.multirouter``) starts the children, projects memory and budget, and
prints the rows.
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

from bench.common import cpu_seconds, log, rss_bytes

COUNTS = (1, 2, 4, 8, 16, 32, 64)
MEMORY_LIMIT = 16 * 2**30
BATCH = 8192
BATCHES = 16
VIEW_ROOM = 1.3  # a child stops loading when RSS x this passes the limit (views to come)


def _available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return MEMORY_LIMIT


def _release() -> None:
    try:
        from ribd.heap import release_memory
    except ImportError:  # (a tree from before stop 47, ``--code``)
        from ribd.store import release_memory  # type: ignore[attr-defined,no-redef]

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
