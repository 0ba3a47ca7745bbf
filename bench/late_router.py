"""A router loaded after others: its load CPU against the first router's, in process.

Issue 11 item 2 asks the service's ingest to cost "the 64th router as the
first". The first router's table lands in an empty store (the compiled short
paths of ``ribd._apply`` / ``ribd._loadline``); every router after the first
merge finds its prefixes in the store's arrays and takes ``Rib._announce``'s
general loop. This loads routers 1..N one after another, the RIB settled
(maintenance, merge) between them as a running service has it, and prints each
router's CPU-s and its ratio to router 1:

* ``raw``: the real table as ``packets`` lines (``bench.ingest.raw_lines``,
  router k with its own next hops), each router's lines through the feed's own
  loop (``bench.ingest_instr.feed_lines``, the fused path on);
* ``json``: the realistic model (``bench.realistic``: per-router next hops, ~30%
  of prefixes on another path), ExaBGP JSON lines parsed, then applied
  (``Rib.apply_many``); parse and apply apart.

``--code DIR`` runs another tree's ``ribd`` (an unpacked, built ``git archive``)
with the same script, for A/B runs interleaved in one sitting. ``--upto K``
(raw only) stops after router K's lines without settling, for callgrind: router
K's instructions are ``--upto K`` less ``--upto K-1``.

Run: ``python -m bench.late_router --path both --routers 4 --fraction 1``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def _split_raw(lines: list[bytes], peers: list[str]) -> list[list[bytes]]:
    """Each router's lines of ``raw_lines``: its session lines, UPDATEs, End-of-RIB."""
    per: list[list[bytes]] = [[] for _ in peers]
    tags = [f'"peer":"{p}"'.encode() for p in peers]
    for line in lines:
        for k, tag in enumerate(tags):
            if tag in line:
                per[k].append(line)
                break
        else:
            raise SystemExit(f"a line of no router: {line[:120]!r}")
    return per


def raw_tables(routers: int, cache: str | None) -> list[list[bytes]]:
    """Each router's lines (``cache``: a pickle of them, written at the first run)."""
    import pickle

    if cache and os.path.exists(cache):
        per = pickle.loads(Path(cache).read_bytes())
        if len(per) >= routers:
            return per[:routers]
    from bench.ingest import raw_lines

    lines, peers = raw_lines(routers)
    per = _split_raw(lines, peers)
    if cache:
        Path(cache).write_bytes(pickle.dumps(per))
    return per


def run_raw(routers: int, upto: int, rounds: int, cache: str | None) -> list[list[float]]:
    from attribution.service import tune_gc
    from bench.ingest import new_rib
    from bench.ingest_instr import feed_lines
    from bench.multirouter_child import settle

    per = raw_tables(routers, cache)
    tune_gc()
    out = []
    for _ in range(rounds):
        rib, _parse = new_rib()
        cpu = []
        for k in range(upto if upto else routers):
            cpu.append(feed_lines(rib, per[k], True))
            if upto and k + 1 == upto:
                break
            settle(rib)
        out.append(cpu)
        del rib
    return out


def run_json(routers: int, fraction: float, rounds: int) -> list[list[tuple[float, float]]]:
    from attribution.service import tune_gc
    from bench.multirouter_child import fraction_step, settle
    from bench.realistic import cached_model, router_lines
    from ribd.parser import ExabgpParser
    from ribd.rib import Rib

    model = cached_model("real", Path("/tmp/mrwork"), fraction_step(fraction))
    tables = [router_lines(model, k)[0] for k in range(1, routers + 1)]
    tune_gc()
    out = []
    for _ in range(rounds):
        rib = Rib()
        parse = ExabgpParser(rib.interner).parse
        apply_many = rib.apply_many
        cpu = []
        for lines in tables:
            t0 = time.process_time()
            events = [parse(line) for line in lines]
            t1 = time.process_time()
            for e in events:
                apply_many(e)
            t2 = time.process_time()
            del events
            settle(rib)
            cpu.append((t1 - t0, t2 - t1))
        out.append(cpu)
        del rib
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--path", choices=("raw", "json", "both"), default="both")
    p.add_argument("--routers", type=int, default=3)
    p.add_argument("--fraction", type=float, default=1.0, help="json: share of the model")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--upto", type=int, default=0, help="raw: stop after router K (callgrind)")
    p.add_argument("--cache", help="raw: a pickle of the routers' lines (made if absent)")
    p.add_argument("--code", help="another tree's root (its ribd, attribution) to run")
    a = p.parse_args()
    if a.code:
        sys.path.insert(0, os.path.abspath(a.code))
    import ribd.rib

    where = Path(ribd.rib.__file__).parent.parent
    load = os.getloadavg()
    print(f"code {where}, load {load[0]:.2f} {load[1]:.2f}", flush=True)
    if a.path in ("raw", "both"):
        for cpu in run_raw(a.routers, a.upto, a.rounds, a.cache):
            row = ", ".join(f"r{k + 1} {c:.2f}" for k, c in enumerate(cpu))
            ratio = ", ".join(f"{c / cpu[0]:.2f}x" for c in cpu[1:])
            print(f"raw CPU-s: {row}; later / router 1: {ratio}", flush=True)
    if a.path in ("json", "both"):
        for cpu in run_json(a.routers, a.fraction, a.rounds):
            row = ", ".join(
                f"r{k + 1} parse {p_:.2f} apply {ap:.2f}" for k, (p_, ap) in enumerate(cpu)
            )
            ratio = ", ".join(f"{ap / cpu[0][1]:.2f}x" for _, ap in cpu[1:])
            print(
                f"json CPU-s (fraction {a.fraction}): {row}; apply / router 1: {ratio}", flush=True
            )
    load = os.getloadavg()
    print(f"load at the end {load[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
