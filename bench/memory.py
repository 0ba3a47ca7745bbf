"""Memory: RSS growth per prefix of the RIB, as the service holds it.

Three parts, each run in its own process by ``bench.run`` so that no part
inherits another's freed-but-not-returned heap:

* ``routers``: the real full table loaded as 1, 2, 4 and 8 routers carrying
  the same table (only the neighbor's ``"peer":"206.220.231.55"`` field is
  rewritten, to 127.0.0.k); bytes per prefix for the first router and per
  additional router; then the RSS cost of compiling the IPv4 lookup view
  (``attribution.fastpath``) of two of those routers, which the daemon does
  for every router that flows are resolved against.
* ``synth``: the synthetic today-sized table (``bench.synth``: 1.04 M IPv4 +
  0.23 M IPv6 prefixes) loaded into one router; bytes per prefix and ingest
  rate.
* ``pytricia``: the baseline, bare pytricia tries holding the same prefixes
  (one shared value object), in a process of their own.

RSS is read from /proc/self/statm after the input lines are in memory (they
are not the RIB's cost) and after the service's maintenance step (which
forgets interned entries no prefix uses any more). GC is tuned as the
service tunes it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

from bench.common import (
    FULL_TABLE,
    FULL_TABLE_PEER_FIELD,
    Row,
    at_most,
    bench_main,
    data_available,
    log,
    read_lines,
    rss_bytes,
)

FIRST_TARGET = 150  # bytes per prefix, first full table
EXTRA_TARGET = 40  # bytes per prefix, each additional router with the same table
_NLRI = re.compile(rb'"nlri":"([^"]+)"')
_KEEP: list[object] = []  # measured structures stay alive until the process ends


def _settle(rib) -> None:
    """What the service's maintenance thread would have done by now."""
    while rib.maintenance():
        pass


def part_routers(args: argparse.Namespace) -> list[Row]:
    from attribution.service import tune_gc
    from ribd.parser import ExabgpParser
    from ribd.rib import Rib

    lines = read_lines(FULL_TABLE)
    tune_gc()
    rib = Rib()
    parse = ExabgpParser(rib.interner).parse
    apply_many = rib.apply_many
    base = rss_bytes()
    rss: dict[int, int] = {}
    counts: dict[int, int] = {}
    times: list[float] = []
    entries: dict[int, int] = {}
    routers = 4 if args.quick else 8
    for k in range(1, routers + 1):
        field = b'"peer":"127.0.0.%d"' % k
        t0 = time.process_time()
        for line in lines:
            apply_many(parse(line.replace(FULL_TABLE_PEER_FIELD, field)))
        times.append(time.process_time() - t0)
        _settle(rib)
        counts[k] = sum(r.families["ipv4 unicast"].prefixes for r in rib.routers.values())
        entries[k] = rib.tables["ipv4 unicast"].distinct_entries
        if k in (1, 2, 4, 8):
            rss[k] = rss_bytes()
            log(f"memory: {k} router(s), RSS +{(rss[k] - base) / 2**20:.0f} MiB")
    n = counts[1]
    view_bytes = compiled_view_bytes(rib, ["127.0.0.1", "127.0.0.2"])
    rows = [
        Row(
            "memory",
            "full table, 1st router",
            (rss[1] - base) / n,
            "bytes/prefix",
            baseline_label="bare pytricia: see below",
            target="<= 150",
            met=at_most((rss[1] - base) / n, FIRST_TARGET),
            note=f"{n} prefixes, RSS +{(rss[1] - base) / 2**20:.0f} MiB; "
            f"{len(rib.interner)} attribute sets, "
            f"{entries[1]} distinct entries",
        )
    ]
    for k in sorted(rss):
        if k == 1:
            continue
        per_extra = (rss[k] - rss[1]) / (counts[k] - counts[1])
        rows.append(
            Row(
                "memory",
                f"full table, {k} routers: per additional router (identical tables)",
                per_extra,
                "bytes/prefix",
                target="<= 40",
                met=at_most(per_extra, EXTRA_TARGET),
                note=f"RSS +{(rss[k] - base) / 2**20:.0f} MiB in all, "
                f"{entries[k]} distinct entries; "
                f"router 1 loaded in {times[0]:.2f} CPU-s, router {k} in {times[k - 1]:.2f} CPU-s",
            )
        )
    if view_bytes:
        rows.append(
            Row(
                "memory",
                "compiled lookup view, per router (daemon, bulk path)",
                sum(view_bytes) / len(view_bytes) / n,
                "bytes/prefix",
                note="RSS growth per router whose IPv4 view is compiled "
                f"(attribution.fastpath; views of 2 routers: "
                f"{', '.join(f'{b / 2**20:.0f} MiB' for b in view_bytes)}); the daemon "
                "compiles one per (router, family) that flows are resolved against, on top "
                "of the RIB",
            )
        )
    return rows


def compiled_view_bytes(rib, neighbors: list[str]) -> list[int]:
    """RSS growth of compiling each router's IPv4 lookup view, as the daemon does
    for every router flows are resolved against ([] without attribution.fastpath)."""
    try:
        from attribution.fastpath import CompiledViews
    except ImportError:
        return []
    views = CompiledViews(rib)
    out = []
    for neighbor in neighbors:
        before = rss_bytes()
        with rib.lock:
            views.usable(neighbor, "ipv4 unicast")  # asks for a build
        views.refresh()
        out.append(rss_bytes() - before)
    _KEEP.append(views)
    return out


def synth_lines(workdir: Path) -> list[bytes]:
    """The synthetic table, generated once per run in another process (its
    temporaries never touch this process's heap)."""
    path = workdir / "synth-table.jsonl"
    if not path.exists():
        log("memory: generating the synthetic table (bench.synth)")
        tmp = path.with_suffix(".tmp")
        subprocess.run(
            [sys.executable, "-m", "bench.synth", "--out", str(tmp)], check=True, timeout=300
        )
        tmp.rename(path)
    return path.read_bytes().splitlines()


def part_synth(args: argparse.Namespace) -> list[Row]:
    from attribution.service import tune_gc
    from bench.synth import PEER
    from ribd.parser import ExabgpParser
    from ribd.rib import Rib

    lines = synth_lines(Path(args.workdir))
    tune_gc()
    rib = Rib()
    parse = ExabgpParser(rib.interner).parse
    apply_many = rib.apply_many
    base = rss_bytes()
    t0 = time.process_time()
    for line in lines:
        apply_many(parse(line))
    elapsed = time.process_time() - t0
    _settle(rib)
    grown = rss_bytes() - base
    fams = rib.routers[PEER].families
    v4, v6 = fams["ipv4 unicast"].prefixes, fams["ipv6 unicast"].prefixes
    n = v4 + v6
    return [
        Row(
            "memory",
            "synthetic today-sized table, 1 router",
            grown / n,
            "bytes/prefix",
            target="<= 150",
            met=at_most(grown / n, FIRST_TARGET),
            note=f"{v4} IPv4 + {v6} IPv6 prefixes, RSS +{grown / 2**20:.0f} MiB, "
            f"{len(rib.interner)} attribute sets",
        ),
        Row(
            "ingest",
            "synthetic today-sized table, parser+Rib",
            n / elapsed,
            "prefixes/s",
            target=">= 300k/s",
            met=n / elapsed >= 300_000,
            note=f"{elapsed:.2f} CPU-s for {n} prefixes in {len(lines)} lines; service GC tuning",
        ),
    ]


def _bare_trie_bytes(prefixes: list[str], bits: int) -> float:
    import pytricia

    value = ("shared",)
    before = rss_bytes()
    trie = pytricia.PyTricia(bits)
    for p in prefixes:
        trie.insert(p, value)
    grown = rss_bytes() - before
    _KEEP.append(trie)
    return grown / len(prefixes)


def part_pytricia(args: argparse.Namespace) -> list[Row]:
    # The input lines stay referenced until the end: freeing them would leave
    # holes in the C heap that the tries' nodes would fill, hiding their cost.
    real_lines = read_lines(FULL_TABLE)
    synth_input = synth_lines(Path(args.workdir))
    real = sorted({m.decode() for line in real_lines for m in _NLRI.findall(line)})
    synth = [m.decode() for line in synth_input for m in _NLRI.findall(line)]
    synth_v4 = [p for p in synth if ":" not in p]
    synth_v6 = [p for p in synth if ":" in p]
    real_bytes = _bare_trie_bytes(real, 32)
    v4_bytes = _bare_trie_bytes(synth_v4, 32)
    v6_bytes = _bare_trie_bytes(synth_v6, 128)
    both = (v4_bytes * len(synth_v4) + v6_bytes * len(synth_v6)) / len(synth)
    del real_lines, synth_input
    return [
        Row(
            "memory",
            "baseline: bare pytricia, full table",
            real_bytes,
            "bytes/prefix",
            note=f"{len(real)} prefixes, one shared value object",
        ),
        Row(
            "memory",
            "baseline: bare pytricia, synthetic table",
            both,
            "bytes/prefix",
            note=f"IPv4 {v4_bytes:.0f} B/prefix ({len(synth_v4)}), "
            f"IPv6 {v6_bytes:.0f} B/prefix ({len(synth_v6)})",
        ),
    ]


def run(args: argparse.Namespace) -> list[Row]:
    skip = data_available(FULL_TABLE)
    if skip and args.part != "synth":
        return [Row("memory", f"{args.part}", None, "bytes/prefix", note=skip)]
    return {"routers": part_routers, "synth": part_synth, "pytricia": part_pytricia}[args.part](
        args
    )


def extra_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--part", choices=("routers", "synth", "pytricia"), default="routers")
    p.add_argument("--workdir", default="/tmp", help="where the synthetic table is cached")


if __name__ == "__main__":
    raise SystemExit(bench_main("memory", run, extra_args))
