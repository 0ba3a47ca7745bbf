"""Load through real BGP sessions, side by side: this service vs pmacct's nfacctd.

Both receive the same UPDATE bytes from ``bench.bgpsend`` (one session per
router, each from its own 127.0.0.x), one receiver at a time so they never
share the 2 cores:

* **pmacct**: ``nfacctd`` (Debian package ``pmacct``, 1.7.7) with
  ``bgp_daemon: true`` on a loopback port and its BGP Looking Glass
  (``bgp_daemon_lg``, ZeroMQ) on another.
* **this service**: ``attribution serve`` with its supervised ExaBGP (and the
  relay ExaBGP runs), one ``[[routers]]`` entry per session.

Sources: ``real`` = the 2015 PCH table's UPDATEs from the MRT file, byte for
byte as the router packed them, router k with its own next hops
(``bgpsend.with_next_hops``); ``synth`` = the today-sized synthetic table
(IPv4 + IPv6) with routers derived as ``bench.realistic`` does, packed by
``bgpsend``.

"Table answering", from the first UPDATE sent:

* pmacct: for every router, a Looking Glass lookup of the *last* prefix of its
  table (announced only once, in the last UPDATE carrying such a prefix)
  returns that prefix with the router's next hop. pmacct reads each session in
  order, so that answer means every earlier UPDATE was applied. (nfacctd
  1.7.7 logs nothing at End-of-RIB, and its table dump runs at most every 60 s.)
* the service: ListRouters shows every router's families converged
  (End-of-RIB, after every UPDATE) with the table's prefix count, and a
  Resolve of the last prefix answers from each router.

CPU-seconds from /proc (utime + stime, all threads, child processes
included) of each process at "answering": ExaBGP, the relay, the service;
nfacctd (core and plugin processes). RSS at that moment. Then "idle": the
CPU once every process is quiet (background merges and view builds done).

With ``--workers 1,2`` the service runs once per value, with ``[bgp] workers``
set and, when above 1, each router's session on an address of its own on our
side (127.0.4.k), so the routers spread over the ExaBGP workers; ExaBGP and
relay CPU are also given per worker.

``--source real-varied``: the real table with routers derived as ``bench.realistic``
does (own next hops, ~30% other paths, local-pref and communities varying).

``--late``: routers 1..n-1 load together; once they answer and are quiet (merged
into the store's arrays), router n's session opens and sends its table, and the
rows are router n's alone (CPU by process, its share against ExaBGP's), beside
the first routers' per-table CPU. pmacct is not run then.

The parts: ``bench.vs_load`` (what is sent, the result), ``bench.vs_nfacctd``
(pmacct's side), ``bench.vs_service`` (this service's side), ``bench.procs``
(processes measured from /proc); this module runs them and makes the rows.

``python -m bench.vs_pmacct [--routers 1,2,4] [--source real,synth,real-varied] [--workers 1,2]
[--late]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench import bgpsend
from bench.common import REPO, Row, at_most, bench_main, log
from bench.ingest_session_profile import MODES
from bench.procs import codes
from bench.vs_flows import VIEW_METRICS
from bench.vs_load import Load, Result, cached_load
from bench.vs_nfacctd import nfacctd_path, run_pmacct
from bench.vs_service import run_service, worker_counts

TARGET_SHARE = 0.25  # relay + service <= 25% of ExaBGP's CPU
TARGET_RATIO = 8.0  # two routers' tables in <= 8x pmacct's time


def cpu_share(cpu: dict[str, float]) -> float | None:
    """(relay + service) / ExaBGP CPU, the item-2 target's figure (None: no ExaBGP CPU)."""
    ex = cpu.get("exabgp")
    return (cpu.get("relay", 0.0) + cpu.get("service", 0.0)) / ex if ex else None


def rows_for(load: Load, pm: Result, us: Result) -> list[Row]:
    n = us.routers
    tag = f"{n} router{'s' if n > 1 else ''}, {load.name.split(' (')[0]}, workers={us.workers}"
    if us.code and us.code != REPO.name:
        tag += f", code {us.code}"
    rows = []
    ratio = us.seconds / pm.seconds if us.seconds and pm.seconds else None
    rows.append(
        Row("vs-pmacct", f"{tag}: first UPDATE -> answering, pmacct", pm.seconds, "s", note=pm.note)
    )
    rows.append(
        Row(
            "vs-pmacct",
            f"{tag}: first UPDATE -> answering, this service",
            us.seconds,
            "s",
            pm.seconds,
            "pmacct, same run",
            note=us.note,
        )
    )
    rows.append(
        Row(
            "vs-pmacct",
            f"{tag}: time ratio this service / pmacct",
            ratio,
            "x",
            target=f"<= {TARGET_RATIO:.0f}x (2 routers)" if n == 2 else "",
            met=at_most(ratio, TARGET_RATIO) if n == 2 else None,
        )
    )
    share = cpu_share(us.cpu)
    for who, res in (("ExaBGP", "exabgp"), ("relay", "relay"), ("service", "service")):
        rows.append(
            Row(
                "vs-pmacct",
                f"{tag}: CPU-s {who} (at answering / once idle)",
                us.cpu.get(res),
                "CPU-s",
                us.cpu_idle.get(res),
                "once idle",
            )
        )
    if len([k for k in us.cpu_workers if k.startswith("exabgp")]) > 1:
        rows.append(
            Row(
                "vs-pmacct",
                f"{tag}: CPU-s per worker at answering",
                max(v for k, v in us.cpu_workers.items() if k.startswith("exabgp")),
                "CPU-s",
                note=", ".join(f"{k} {v:.1f}" for k, v in sorted(us.cpu_workers.items())),
            )
        )
    rows.append(
        Row(
            "vs-pmacct",
            f"{tag}: CPU-s nfacctd (at answering / once idle)",
            pm.cpu.get("nfacctd"),
            "CPU-s",
            pm.cpu_idle.get("nfacctd"),
            "once idle",
        )
    )
    rows.append(
        Row(
            "vs-pmacct",
            f"{tag}: (relay + service) / ExaBGP CPU",
            share * 100 if share is not None else None,
            "%",
            target=f"<= {TARGET_SHARE:.0%}",
            met=at_most(share, TARGET_SHARE),
        )
    )
    mib = 2**20
    for who, res in (("exabgp", us), ("relay", us), ("service", us), ("nfacctd", pm)):
        rows.append(
            Row(
                "vs-pmacct",
                f"{tag}: RSS {who} (at answering / once idle)",
                res.rss[who] / mib if who in res.rss else None,
                "MiB",
                res.rss_idle[who] / mib if who in res.rss_idle else None,
                "once idle",
            )
        )
    return rows


def rows_late(load: Load, us: Result) -> list[Row]:
    """``--late``: router n's load after routers 1..n-1 were merged, beside theirs."""
    n = us.routers
    tag = f"router {n} after {n - 1} merged, {load.name.split(' (')[0]}"
    if us.code and us.code != REPO.name:
        tag += f", code {us.code}"

    rows = [Row("vs-pmacct", f"{tag}: first UPDATE -> answering", us.seconds, "s", note=us.note)]
    for when, late, first in (
        ("at answering", us.cpu, us.cpu_first),
        ("once idle", us.cpu_idle, us.cpu_first_idle),
    ):
        ours, theirs = cpu_share(late), cpu_share(first)
        rows.append(
            Row(
                "vs-pmacct",
                f"{tag}: (relay + service) / ExaBGP CPU, router {n} alone, {when}",
                ours * 100 if ours is not None else None,
                "%",
                theirs * 100 if theirs is not None else None,
                f"routers 1-{n - 1} loaded together before, {when}",
                target=f"<= {TARGET_SHARE:.0%}",
                met=at_most(ours, TARGET_SHARE),
            )
        )
    for who in ("exabgp", "relay", "service"):
        per_table = [c.get(who, 0.0) / (n - 1) for c in (us.cpu_first, us.cpu_first_idle) if c]
        rows.append(
            Row(
                "vs-pmacct",
                f"{tag}: CPU-s {who}, router {n}'s table (at answering / once idle)",
                us.cpu.get(who),
                "CPU-s",
                us.cpu_idle.get(who),
                f"once idle; routers 1-{n - 1} a table: "
                + " / ".join(f"{v:.2f}" for v in per_table),
            )
        )
    for when, threads in (("at answering", us.threads), ("once idle", us.threads_idle)):
        rows += [
            Row(
                "vs-pmacct",
                f"{tag}: service CPU-s by thread, router {n}'s table, {when}: {t['name']}",
                t["cpu"],
                "CPU-s",
            )
            for t in threads
        ]
    return rows


def rows_flows(us: Result) -> list[Row]:
    """``--flows-during-load``: the view builds and the stream's figures at
    each phase's end (counts since the service started)."""
    rows = []
    for phase, f in us.flows.items():
        if phase == "start":
            continue
        note = (
            f"flows asked {f['rate_asked']}/s, kept {f['rate_kept']}/s, "
            f"calls over 1 s {f['slow_calls']}, longest {f['longest_call_s']} s, "
            f"errors {f['errors']} {f['first_errors']}"
        )
        for metric, unit in VIEW_METRICS.items():
            rows.append(
                Row(
                    "vs-pmacct",
                    f"{us.routers} routers, flows during the load, at {phase}: {metric}",
                    f.get(metric),
                    unit,
                    note=note,
                )
            )
    return rows


def run(args: argparse.Namespace) -> list[Row]:
    if nfacctd_path() is None:
        log("vs-pmacct: skipped: nfacctd is not installed (Debian package 'pmacct')")
        return [
            Row(
                "vs-pmacct",
                "side by side with pmacct",
                None,
                "",
                note="skipped: nfacctd absent (apt-get install pmacct)",
            )
        ]
    try:
        import zmq  # noqa: F401
    except ImportError:
        return [
            Row(
                "vs-pmacct",
                "side by side with pmacct",
                None,
                "",
                note="skipped: pyzmq absent (pmacct's Looking Glass client)",
            )
        ]
    rows: list[Row] = []
    for source in args.source.split(","):
        if source == "real" and not bgpsend.MRT.exists():
            rows.append(
                Row("vs-pmacct", "real table", None, "", note=f"skipped: {bgpsend.MRT} absent")
            )
            continue
        for n in [int(x) for x in args.routers.split(",")]:
            log(f"vs-pmacct: {source}, {n} router(s): preparing the UPDATEs")
            load = cached_load(source, n, args.quick, Path(args.cache) if args.cache else None)
            log(f"vs-pmacct: {sum(map(len, load.tables.per_router))} UPDATEs; probe {load.probe}")
            if args.late and n < 2:
                log("vs-pmacct: --late needs at least 2 routers; skipped 1")
                continue
            if args.late:  # nothing of pmacct's to set beside a late router's share
                pm = Result("pmacct (not run: --late)", n)
            else:
                with tempfile.TemporaryDirectory(prefix="vspm-", dir="/tmp") as d:
                    pm = run_pmacct(load, Path(d), args.timeout)
                log(f"vs-pmacct: pmacct {pm.seconds} s, CPU {pm.cpu} {pm.note}")
            runs = [
                (mode, workers, code)
                for _ in range(args.repeat)
                for mode in args.api_mode.split(",")
                for workers in worker_counts(args.workers, n)
                for code in codes(args.code)
            ]
            for mode, workers, code in runs:
                with tempfile.TemporaryDirectory(prefix="vsus-", dir="/tmp") as d:
                    spy = (
                        Path(args.profile) / f"{source}-{n}-{mode}-{code.name}-{len(rows)}.txt"
                        if args.profile
                        else None
                    )
                    us = run_service(
                        load,
                        Path(d),
                        args.timeout,
                        mode,
                        workers,
                        code,
                        spy,
                        args.profile_mode,
                        args.late,
                        args.profile_process,
                        args.flows_during_load,
                    )
                log(
                    f"vs-pmacct: service ({mode}, workers={workers}, code {code}) "
                    f"{us.seconds} s, "
                    f"CPU {us.cpu}, per worker {us.cpu_workers}, idle {us.cpu_idle} {us.note}"
                )
                rows += rows_late(load, us) if args.late else rows_for(load, pm, us)
                rows += rows_flows(us)
                print(
                    json.dumps(
                        {
                            "source": source,
                            "routers": n,
                            "api_mode": mode,
                            "workers": workers,
                            "code": str(code),
                            "pmacct": pm.__dict__,
                            "service": us.__dict__,
                        }
                    ),
                    file=sys.stderr,
                    flush=True,
                )
    return rows


def extra(p: argparse.ArgumentParser) -> None:
    p.add_argument("--routers", default="1,2,4")
    p.add_argument(
        "--source",
        default="real",
        help="real,synth,real-varied (the real table, routers derived as bench.realistic does)",
    )
    p.add_argument(
        "--late",
        action="store_true",
        help="routers 1..n-1 load together, then router n alone once they are merged; "
        "the figures are router n's (pmacct not run)",
    )
    p.add_argument(
        "--workers", default="1", help="[bgp] workers values to run the service with, e.g. 1,2"
    )
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per load and receiver")
    p.add_argument(
        "--flows-during-load",
        type=int,
        default=0,
        metavar="RATE",
        help="flows a second resolved (ResolveBatch, AS numbers only, every router's "
        "exporter) from the first UPDATE until idle; view builds read from /metrics",
    )
    p.add_argument("--api-mode", default="raw", help="[bgp] api_mode of the service: raw,json")
    p.add_argument(
        "--code",
        default="",
        help="checkouts to run the service from, comma-separated, in turn for each load "
        "(before/after in one sitting: e.g. an unpacked 'git archive' of the old commit, "
        "then '.'); default: this one",
    )
    p.add_argument("--repeat", type=int, default=1, help="service runs per setting, in turn")
    p.add_argument(
        "--cache",
        default="",
        help="a directory: the UPDATEs derived for a source and router count are pickled "
        "there and read back by later runs (keyed by the generator's code)",
    )
    p.add_argument(
        "--profile",
        default="",
        help="a directory: py-spy (record --gil, raw stacks) on each service run, "
        "from the first UPDATE until idle, into a file there",
    )
    p.add_argument(
        "--profile-mode",
        default="gil",
        choices=MODES,
        help="gil: py-spy --gil; native: py-spy --native --idle --threads; perf: perf record "
        "-g (with each: the service's CPU by thread, <file>.threads.json)",
    )
    p.add_argument(
        "--profile-process",
        default="",
        help="profile this process instead of the service: a name of the 'per worker' "
        "figures ('exabgp 0' with one ExaBGP, 'exabgp K' / 'relay K' for worker K), or "
        "several comma-separated, the first one a run has",
    )


if __name__ == "__main__":
    sys.exit(bench_main("vs_pmacct", run, extra))
