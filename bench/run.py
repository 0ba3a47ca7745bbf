"""Run the benchmark suite and print one table.

    python -m bench                      # everything but routers (~7 minutes on 2 cores)
    python -m bench --quick              # shorter windows, fewer repeats (~5 minutes)
    python -m bench --only ingest,memory # some of: ingest memory throughput latency restart churn
                                         # routers (many routers whose tables differ: up to an
                                         # hour of CPU, see bench/multirouter.py; --quick: 4)
                                         # pmacct (real BGP sessions, this service beside
                                         # pmacct's nfacctd, 1/2/4 routers: ~15 minutes)
    python -m bench --json results.json  # also write the rows and the machine as JSON

Every benchmark job runs in its own Python process, one after the other, so
that RSS baselines are clean, one job's heap and GC state never slow another,
and the gRPC benchmarks get their own server. Benchmarks print progress on
stderr; the table (Markdown) goes to stdout, figures next to the baselines
measured in the same run, the issue's targets and whether they are met.
Nothing here is a test: no figure fails the run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, fields
from importlib import metadata
from pathlib import Path

from bench.common import REPO, Row, log

JOBS: dict[str, list[list[str]]] = {
    "ingest": [
        ["bench.ingest"],
        ["bench.ingest", "--default-gc"],
        ["bench.ingest_feed"],
    ],
    "memory": [
        ["bench.memory", "--part", "pytricia"],
        ["bench.memory", "--part", "routers"],
        ["bench.memory", "--part", "synth"],
    ],
    "throughput": [["bench.throughput"]],
    "latency": [["bench.latency"]],
    "restart": [["bench.restart"]],
    "churn": [["bench.ingest", "--churn"], ["bench.churn"]],
    "routers": [["bench.multirouter", "--checkpoints", "--budget", "2400"]],
    "pmacct": [["bench.vs_pmacct"]],
}
PACKAGES = ("pytricia", "grpcio", "protobuf", "orjson", "msgspec", "numpy", "exabgp")
JOB_TIMEOUT = 900
OPT_IN = ("routers", "pmacct")  # long: run only when --only names them
LONG_JOBS = {
    "bench.multirouter": 3 * 3600,
    "bench.vs_pmacct": 3600,
}  # stops itself (memory, CPU budget)


def sched_autogroup() -> bool | None:
    """Whether the kernel groups CPU time by session (None: not Linux, or unknown).

    With it on, ``nice`` only ranks a session's own processes: a niced job of
    another shell session takes as much CPU as this benchmark (stop 29: a CPU
    loop got 65% of a core beside three "niced" jobs; 97% with it off).
    """
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as f:
            return f.read().strip() == "1"
    except OSError:
        return None


def machine() -> dict:
    """What the figures were measured on (they mean little without it)."""
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])

    def git(*args: str) -> str:
        r = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return r.stdout.rstrip()  # not lstrip: porcelain lines start with a space

    status = git("status", "--porcelain").splitlines()
    dirty = [line[3:] for line in status if line[:2] != "??"]
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return {
        "sched_autogroup": sched_autogroup(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "ram_gib": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "packages": versions,
        "git": git("rev-parse", "--short", "HEAD"),
        "modified_files": dirty,
        "load_average": os.getloadavg(),
    }


def run_job(module_args: list[str], quick: bool, workdir: Path) -> tuple[list[Row], float, int]:
    """One benchmark process; its rows (or one FAILED row), seconds, exit code."""
    with tempfile.NamedTemporaryFile(suffix=".json", dir=workdir, delete=False) as f:
        out = Path(f.name)
    cmd = [sys.executable, "-m", *module_args, "--out", str(out)]
    if quick:
        cmd.append("--quick")
    if module_args[0] == "bench.memory":
        cmd += ["--workdir", str(workdir)]
    log(f"run: {' '.join(cmd[2:])}")
    t0 = time.monotonic()
    try:
        timeout = LONG_JOBS.get(module_args[0], JOB_TIMEOUT)
        rc = subprocess.run(cmd, cwd=REPO, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        rc = -1
    elapsed = time.monotonic() - t0
    rows: list[Row] = []
    if rc == 0 and out.stat().st_size:
        names = {f.name for f in fields(Row)}
        rows = [
            Row(**{k: v for k, v in r.items() if k in names}) for r in json.loads(out.read_text())
        ]
    else:
        rows = [
            Row(
                module_args[0].split(".")[-1],
                " ".join(module_args),
                None,
                "",
                note=f"FAILED (exit {rc}); see the output above",
            )
        ]
    out.unlink(missing_ok=True)
    return rows, elapsed, rc


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit.endswith(("/s", "/s/core")):
        if value >= 1e6:
            return f"{value / 1e6:.2f} M"
        if value >= 1e3:
            return f"{value / 1e3:.0f} k"
        return f"{value:.0f}"
    if unit in ("ms", "s"):
        return f"{value:.2f}"
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.1f}"


def table(rows: list[Row]) -> str:
    """Markdown: the figures, then the notes (numbered) below."""
    head = "| benchmark | figure | value | unit | baseline (same run) | target | met? | note |"
    lines = [head, "|---|---|---:|---|---|---|---|---|"]
    notes = []
    for r in rows:
        base = ""
        if r.baseline is not None:
            base = f"{fmt(r.baseline, r.unit)} {r.baseline_label}".strip()
        elif r.baseline_label:
            base = r.baseline_label
        met = {True: "yes", False: "**NO**", None: ""}[r.met]
        ref = ""
        if r.note:
            notes.append(r.note)
            ref = f"[{len(notes)}]"
        figure = r.figure.strip()
        if r.figure.startswith(" "):
            figure = f"↳ {figure}"
        lines.append(
            f"| {r.bench} | {figure} | {fmt(r.value, r.unit)} | {r.unit} | {base} | "
            f"{r.target} | {met} | {ref} |"
        )
    lines.append("")
    lines += [f"[{i}] {n}" for i, n in enumerate(notes, 1)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="shorter windows, fewer repeats")
    p.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(JOBS)}")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = p.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or [n for n in JOBS if n not in OPT_IN]
    unknown = [n for n in names if n not in JOBS]
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(JOBS)}")
    info = machine()
    if info["sched_autogroup"]:
        log(
            "note: the kernel's autogroup scheduling is on (sched_autogroup_enabled = 1):"
            " niced processes of other sessions compete with these benchmarks at equal weight"
        )
    rows: list[Row] = []
    jobs = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-run-") as d:
        for name in names:
            for module_args in JOBS[name]:
                job_rows, seconds, rc = run_job(module_args, args.quick, Path(d))
                rows += job_rows
                jobs.append({"job": " ".join(module_args), "seconds": round(seconds, 1), "rc": rc})
    info["load_average_after"] = os.getloadavg()
    command = "python -m bench " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    print(
        f"{info['date']}; {info['nproc']} x {info['cpu']}, {info['ram_gib']} GiB; "
        f"Python {info['python']}; git {info['git']}"
        + (
            f" (+ local changes: {', '.join(info['modified_files'])})"
            if info["modified_files"]
            else ""
        )
        + f"; load average {info['load_average'][0]:.2f} before, "
        f"{info['load_average_after'][0]:.2f} after; {time.monotonic() - t0:.0f} s in all\n"
    )
    print(table(rows))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "command": command.strip(),
                    "machine": info,
                    "jobs": jobs,
                    "rows": [asdict(r) for r in rows],
                },
                indent=1,
            )
        )
    return 1 if any(j["rc"] != 0 for j in jobs) else 0


if __name__ == "__main__":
    sys.exit(main())
