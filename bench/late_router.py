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

``--source varied`` (raw only) sends the varied real table instead, as
``bench.vs_pmacct --source real-varied`` does through sessions
(``bgpsend.realistic_tables``: ~30% of prefixes on another path, local-pref and
communities varying): the table the through-session figure for router 17 is
measured on.

``--code DIR`` runs another tree's ``ribd`` (an unpacked, built ``git archive``)
with the same script, for A/B runs interleaved in one sitting. ``--upto K``
(raw only) stops after router K's lines without settling.

``--views`` (raw only): each router's views built after its feed, as the service's
maintenance builds them at End-of-RIB (a line of their CPU-s per router): a late
router's build reads and numbers the whole shared store for one router.

``--batch`` (with ``--views``): no view built between the routers, every
router's at once after the last router's feed, as after a restart or a
refresh (one figure: the batch's, read ``READ_BATCH`` routers at a time).

``--stages`` (with ``--views``): each router's build split into its stages
(``BuildStages``: the maintenance's merge and collection, the store read's
merge, lock-held copy and numbering, the view's flatten and answers, the
family's ``_one_axis`` as the refresh runs it with the other views present, the
change log's trim), a line per router.

``--callgrind OUT`` (raw only): this script again under ``valgrind
--tool=callgrind --instr-atstart=no``, routers 1..N-1 loaded and settled
uninstrumented, then ``callgrind_control -i on`` on itself for router N's feed
only (``-i off`` after it): OUT holds router N's instructions alone (the feed's
loop and its reads; ``PYTHONHASHSEED=0``), and the driver prints its total and
the main functions' inclusive costs. ~10 min for 17 routers of the varied table.

``--per-router`` (varied only): each router's lines made when it is fed, not all
held (64 routers' lines took 24 GB), each router's UPDATEs cached in the
``--cache`` directory. ``--perf OUT``: the last router's feed under ``perf
record`` (DWARF call graphs) into OUT.

Run: ``python -m bench.late_router --path both --routers 4 --fraction 1``;
``python -m bench.late_router --path raw --source varied --per-router --routers 64
--cache /tmp/late64 --perf /tmp/late64.perf``;
``python -m bench.late_router --path raw --source varied --routers 17
--cache /tmp/late17v.pickle --callgrind /tmp/late17.cg``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from bench.late_tables import RouterByRouter, raw_tables


class PerfRecord:
    """``perf record`` of this process while entered (``--perf OUT``: the last
    router's feed alone): where a late router's feed goes, by C function, in a
    second of overhead where callgrind takes ~10 min."""

    def __init__(self, out: str | None) -> None:
        self.out = out
        self._proc = None

    def __enter__(self) -> PerfRecord:
        import subprocess

        if self.out:
            self._proc = subprocess.Popen(
                ["perf", "record", "-F", "999", "--call-graph", "dwarf,16384", "-o", self.out,
                 "-p", str(os.getpid())],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1.0)  # perf attached before the feed starts
        return self

    def __exit__(self, *exc) -> None:
        import signal

        if self._proc is not None:
            self._proc.send_signal(signal.SIGINT)
            self._proc.wait()


def _instrument(on: bool) -> None:
    """callgrind's instrumentation of this process on or off (``--instr-router``)."""
    import subprocess

    state = "on" if on else "off"
    subprocess.run(
        ["callgrind_control", "-i", state, str(os.getpid())], check=True, capture_output=True
    )


def run_raw(
    routers: int,
    upto: int,
    rounds: int,
    cache: str | None,
    source: str = "plain",
    instr_router: int = 0,
    views: list[list[float]] | None = None,
    stages: list[list[dict[str, float]]] | None = None,
    batch: bool = False,
    per_router: bool = False,
    perf: str | None = None,
) -> list[list[float]]:
    """CPU-s of each router's feed, routers loaded in turn and settled between;
    ``instr_router`` K: callgrind's instrumentation on for router K's feed only;
    ``views``: a list to which each round's view builds are appended (see
    ``_build_views``); ``stages``: one to which each round's builds' stages are
    (``BuildStages``); ``batch``: no views built between the routers, every
    router's at once after the last (as after a restart or a refresh: one
    figure a round); ``per_router``: each router's lines made when fed
    (``RouterByRouter``); ``perf``: the last router's feed under ``perf record``
    into this file (``PerfRecord``)."""
    from attribution.fastpath import CompiledViews
    from attribution.service import tune_gc
    from bench.ingest import new_rib
    from bench.ingest_instr import feed_lines
    from bench.multirouter_child import settle

    per = RouterByRouter(routers, cache) if per_router else raw_tables(routers, cache, source)
    tune_gc()
    out = []
    for _ in range(rounds):
        rib, _parse = new_rib()
        cpu = []
        compiled = CompiledViews(rib) if views is not None else None
        built = []
        split: list[dict[str, float]] = []
        for k in range(upto if upto else routers):
            if k + 1 == instr_router:
                _instrument(True)
            lines = per[k]
            with PerfRecord(perf if k + 1 == routers else None):
                cpu.append(feed_lines(rib, lines, True))
            del lines
            if k + 1 == instr_router:
                _instrument(False)
            if upto and k + 1 == upto:
                break
            if compiled is not None and (not batch or k + 1 == routers):
                if stages is not None:
                    with BuildStages(rib, compiled) as timer:
                        built.append(_build_views(rib, compiled, timer))
                    split.append(timer.spent)
                else:
                    built.append(_build_views(rib, compiled))
            settle(rib)
        out.append(cpu)
        if views is not None:
            views.append(built)
        if stages is not None:
            stages.append(split)
        del rib
    return out


def _build_views(rib, compiled, timer: BuildStages | None = None) -> float:
    """CPU-s of the views the service's maintenance builds once a router's table is
    complete (End-of-RIB): its store's pending writes applied, then
    ``want_missing`` and ``refresh`` as ``attribution.service`` runs them. A
    first router's build reads a store of its own prefixes; a late one's reads
    (and numbers) every entry of a store shared with the routers before it."""
    started = time.process_time()
    while rib.maintenance():
        pass
    if timer is not None:
        timer.spent["maintenance"] += time.process_time() - started
    with rib.lock:
        compiled.want_missing(list(rib.routers))
    if not compiled.refresh():
        raise SystemExit("no view was built: the router's table is not complete")
    return time.process_time() - started


# What ``BuildStages`` times: (label, module, function name), inclusive CPU-s.
# A name a tree lacks (``--code`` of an older one) is left out.
STAGES = (
    ("read_family", "attribution.viewbuild", "read_family"),
    ("read_family", "attribution.fastpath", "read_family"),
    ("identity_codes", "attribution.viewbuild", "identity_codes"),
    ("entry_routes", "attribution.viewbuild", "entry_routes"),
    ("slot_routes", "attribution.viewbuild", "slot_routes"),
    ("build_view", "attribution.fastpath", "build_view"),
    ("flatten", "attribution.viewbuild", "flatten"),
    ("set_fields", "attribution.viewbuild", "set_fields"),
    ("answers", "attribution.viewbuild", "answers_of_routes"),
    ("answers", "attribution.viewbuild", "_answers"),  # (its name to stop 44)
    ("share_columns", "attribution.viewbuild", "share_columns"),
    ("patch_view", "attribution.fastpath", "patch_view"),
    ("one_axis", "attribution.fastpath", "one_axis"),
    ("renumber", "attribution.fastpath", "renumber"),
    ("pack", "attribution.fastpath", "pack"),
    ("add_view", "attribution.fastpath", "add_view"),
)


class BuildStages:
    """CPU-s of a view build's stages while entered: ``STAGES``, the RIB's
    ``merge_now``, the refresh's ``_one_axis`` and ``_trim``, each function
    wrapped. Exclusive times (a stack of the stages running): a lone build's
    ``build_view`` less the store read inside it, the read less its merge and
    numbering (what is left of it: the signatures and the lock-held copy),
    ``_one_axis`` less ``one_axis``/``renumber``/``pack``."""

    def __init__(self, rib, compiled) -> None:
        import importlib

        self.spent: dict[str, float] = dict.fromkeys(
            ["maintenance", "merge_now", "_one_axis", "_trim"], 0.0
        )
        self._stack: list[float] = []  # inner stages' CPU-s, per stage running
        self._undo: list[tuple[object, str, object]] = []
        self._targets = [(rib, "merge_now", "merge_now")]
        self._targets += [(compiled, "_one_axis", "_one_axis"), (compiled, "_trim", "_trim")]
        for label, module, name in STAGES:
            mod = importlib.import_module(module)
            if hasattr(mod, name):
                self._targets.append((mod, name, label))
                self.spent.setdefault(label, 0.0)

    def _timed(self, label: str, fn):
        spent, stack = self.spent, self._stack

        def timed(*args, **kwargs):
            stack.append(0.0)
            t0 = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                took = time.process_time() - t0
                spent[label] += took - stack.pop()
                if stack:
                    stack[-1] += took

        return timed

    def __enter__(self) -> BuildStages:
        for owner, name, label in self._targets:
            own = name in vars(owner)  # a module's function, or an instance's own attribute
            self._undo.append((owner, name, getattr(owner, name) if own else None))
            setattr(owner, name, self._timed(label, getattr(owner, name)))
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, fn in reversed(self._undo):
            if fn is None:
                delattr(owner, name)  # an instance's wrapper: its class's method again
            else:
                setattr(owner, name, fn)
        self._undo.clear()


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


# callgrind_annotate's names (substrings) whose inclusive cost ``--callgrind`` prints.
FUNCTIONS = {
    "the feed's loop (lines_in)": "_feedloop_1lines_in",
    "decode (load_update)": "load_update",
    "intern (ribd._intern.intern)": "7_intern_1intern",
    "announce (announce_parts)": "announce_parts",
    "wide (wide_parts)": "_wide_1wide_parts",
    "delta probe (IntDelta.get_c)": "IntDelta_get_c",
    "delta write (IntDelta.set_c)": "IntDelta_set_c",
}


def callgrind_router(a: argparse.Namespace, out: str) -> None:
    """This script under callgrind, instrumented for the last router's feed only;
    its total and FUNCTIONS' inclusive costs printed."""
    import re
    import subprocess

    cmd = [sys.executable, "-m", "bench.late_router", "--path", "raw"]
    cmd += ["--routers", str(a.routers), "--source", a.source, "--instr-router", str(a.routers)]
    cmd += ["--cache", a.cache] if a.cache else []
    cmd += ["--code", a.code] if a.code else []
    vg = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    env = dict(os.environ, PYTHONHASHSEED="0")
    root = Path(__file__).resolve().parent.parent  # (this tree's bench, ``--code``'s ribd)
    subprocess.run(["nice", "-n", "19", *vg, *cmd], check=True, env=env, cwd=root)
    text = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", out],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    total = int(re.search(r"^([\d,]+) \(100\.0%\).*PROGRAM TOTALS", text, re.M)[1].replace(",", ""))
    print(f"router {a.routers}: {total:,} instructions ({out}, code {a.code or '.'})")
    for label, name in FUNCTIONS.items():
        m = re.search(rf"^\s*([\d,]+) \([^)]*\).*?\s\S*{name}\b", text, re.M)
        cost = int(m[1].replace(",", "")) if m else 0
        print(f"  {label}: {cost:,} ({cost / total:.1%})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--path", choices=("raw", "json", "both"), default="both")
    p.add_argument("--routers", type=int, default=3)
    p.add_argument("--fraction", type=float, default=1.0, help="json: share of the model")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--upto", type=int, default=0, help="raw: stop after router K (callgrind)")
    p.add_argument("--cache", help="raw: a pickle of the routers' lines (made if absent)")
    p.add_argument("--code", help="another tree's root (its ribd, attribution) to run")
    p.add_argument(
        "--source",
        choices=("plain", "varied"),
        default="plain",
        help="raw: the real table (own next hops) or the varied real table",
    )
    p.add_argument(
        "--views",
        action="store_true",
        help="raw: also build each router's views after its feed, as the service does",
    )
    p.add_argument(
        "--batch",
        action="store_true",
        help="with --views: every router's views at once after the last feed",
    )
    p.add_argument(
        "--stages",
        action="store_true",
        help="with --views: each router's build by stage (BuildStages)",
    )
    p.add_argument("--callgrind", metavar="OUT", help="raw: the last router under callgrind")
    p.add_argument(
        "--per-router",
        action="store_true",
        help="raw, varied: each router's lines made when fed, not all held (64 routers); "
        "--cache is then a directory of each router's UPDATEs",
    )
    p.add_argument("--perf", metavar="OUT", help="raw: the last router's feed under perf record")
    p.add_argument("--instr-router", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.per_router and a.source != "varied":
        p.error("--per-router makes the varied table's routers (--source varied)")
    if a.callgrind:
        callgrind_router(a, a.callgrind)
        return
    if a.code:
        sys.path.insert(0, os.path.abspath(a.code))
    import ribd.rib

    where = Path(ribd.rib.__file__).parent.parent
    load = os.getloadavg()
    print(f"code {where}, load {load[0]:.2f} {load[1]:.2f}", flush=True)
    if a.path in ("raw", "both"):
        views: list[list[float]] | None = [] if a.views or a.stages or a.batch else None
        stages: list[list[dict[str, float]]] | None = [] if a.stages else None
        runs = run_raw(
            a.routers, a.upto, a.rounds, a.cache, a.source, a.instr_router, views, stages, a.batch,
            a.per_router, a.perf,
        )  # fmt: skip
        for cpu in runs:
            row = ", ".join(f"r{k + 1} {c:.2f}" for k, c in enumerate(cpu))
            ratio = ", ".join(f"{c / cpu[0]:.2f}x" for c in cpu[1:])
            print(f"raw CPU-s: {row}; later / router 1: {ratio}", flush=True)
        for built in views or []:
            if a.batch:
                print(f"views CPU-s: routers 1-{a.routers} at once {built[0]:.2f}", flush=True)
                continue
            row = ", ".join(f"r{k + 1} {c:.2f}" for k, c in enumerate(built))
            ratio = ", ".join(f"{c / built[0]:.2f}x" for c in built[1:])
            print(f"views CPU-s: {row}; later / router 1: {ratio}", flush=True)
        for split, built in zip(stages or [], views or [], strict=True):
            for k, (spent, total) in enumerate(zip(split, built, strict=True)):
                parts = ", ".join(f"{n} {c:.3f}" for n, c in spent.items() if c >= 0.0005)
                rest = total - sum(spent.values())
                who = f"1-{a.routers}" if a.batch else f"r{k + 1}"
                print(f"  {who} build {total:.3f} CPU-s: {parts}; rest {rest:.3f}", flush=True)
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
