"""Instructions a line of the raw-mode ingest path, by stage, under callgrind (exact, noise-free).

The real table as ``packets`` lines (``bench.ingest.raw_lines``, ``--routers``
interleaved), the first ``--lines`` of them, parsed and applied in this
process as the feed does (the service's GC tuning). Each stage runs in its own
process under ``valgrind --tool=callgrind``; a stage's figure is its total
instructions less the previous stage's, over the lines:

* ``none``: read the lines (the baseline every stage pays);
* ``split``: plus the lines joined once (outside the count) and split again as the
  feed's read does (``bytes.split``), to price the split;
* ``parse``: plus every line parsed (``ExabgpParser.parse``: scan, decode, intern);
* ``apply``: plus every parsed line applied (``Rib.apply_many``).

Within parse, the interner (``ribd._intern.intern``) and the compiled UPDATE
decode (``UpdateDecoder.decode``, the interner included) are read from the
callgrind profile's inclusive costs.

Run: ``python -m bench.ingest_instr --routers 2 --lines 40000`` (the driver: it
writes the lines once to a cache file, then runs the stages under callgrind
niced); ``--stage X`` runs one stage without callgrind. ``--code DIR`` runs the
stages against another tree's ``ribd`` (an unpacked ``git archive``, built), to
compare commits with the same script.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = ("none", "split", "parse", "apply")
# ``--stage time``: the whole table parsed, then applied, CPU-s of each printed (the A/B's).
# callgrind_annotate's function names (substrings) whose inclusive cost is reported.
FUNCTIONS = {
    "scan (RawLineScanner.events, decode included)": "RawLineScanner_3events",
    "decode (UpdateDecoder.decode, intern included)": "UpdateDecoder_3decode",
    "intern (ribd._intern.intern)": "7_intern_1intern",
    "apply: ribload.probe": "8_ribload_3probe",
    "apply: ribload.insert_new": "8_ribload_5insert_new",
}


def cache_path(routers: int) -> Path:
    return Path(tempfile.gettempdir()) / f"ingest_instr_raw_{routers}.lines"


def write_cache(routers: int) -> Path:
    path = cache_path(routers)
    if not path.exists():
        from bench.ingest import raw_lines

        lines, _ = raw_lines(routers)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(b"\n".join(lines) + b"\n")
        tmp.rename(path)
    return path


def run_stage(stage: str, routers: int, count: int) -> None:
    """One stage, in this process (under callgrind when the driver runs it)."""
    from attribution.service import tune_gc
    from bench.ingest import new_rib

    data = cache_path(routers).read_bytes()
    lines = data.split(b"\n")[:-1]
    del data
    # The session lines first, then the first ``count`` UPDATE lines.
    lines = lines[: 2 * routers + count] if count else lines  # 0: all
    rib, parse = new_rib()
    tune_gc()
    if stage == "none":
        return
    if stage == "split":
        blob = b"\n".join(lines)
        blob.split(b"\n")
        return
    t0 = time.process_time()
    events = [parse(line) for line in lines]
    t_parse = time.process_time() - t0
    if stage == "parse":
        return
    apply_many = rib.apply_many
    t0 = time.process_time()
    for ev in events:
        apply_many(ev)
    t_apply = time.process_time() - t0
    if stage == "time":
        print(f"{t_parse:.3f} {t_apply:.3f}")


def time_ab(codes: list[str], routers: int, rounds: int) -> None:
    """Interleaved A/B of the whole table's parse and apply CPU-s, a fresh process each."""
    got: dict[str, list[tuple[float, float]]] = {c: [] for c in codes}
    for _ in range(rounds):
        for code in codes:
            env = dict(os.environ, PYTHONPATH=str(Path(code).resolve()))
            cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", "time"]
            cmd += ["--routers", str(routers), "--lines", "0"]
            out = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True).stdout
            t_parse, t_apply = map(float, out.split())
            got[code].append((t_parse, t_apply))
            print(f"{code}: parse {t_parse:.2f} apply {t_apply:.2f} CPU-s", flush=True)
    for code, rows in got.items():
        parse = " / ".join(f"{p:.2f}" for p, _ in rows)
        apply = " / ".join(f"{a:.2f}" for _, a in rows)
        both = " / ".join(f"{p + a:.2f}" for p, a in rows)
        print(f"{routers} router(s), {code}: parse {parse}; apply {apply}; parse + apply {both}")


def callgrind(stage: str, routers: int, count: int, code: str | None) -> tuple[int, dict[str, int]]:
    """Total instructions of one stage's process, and the named functions' inclusive costs."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    env["PYTHONPATH"] = str(Path(code or ".").resolve())
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        cmd = [
            "nice",
            "-n",
            "19",
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(Path(__file__).resolve()),  # (a file: ``--code``'s tree may lack this module)
            "--stage",
            stage,
            "--routers",
            str(routers),
            "--lines",
            str(count),
        ]
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        text = subprocess.run(
            ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(out)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    totals = re.search(r"^([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", text, re.M)
    total = int(totals[1].replace(",", ""))
    found = {}
    for label, name in FUNCTIONS.items():
        m = re.search(rf"^\s*([\d,]+) \([^)]*\)\s+\S*{name}\b", text, re.M)
        found[label] = int(m[1].replace(",", "")) if m else 0
    return total, found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--routers", type=int, default=1)
    p.add_argument("--lines", type=int, default=30_000, help="UPDATE lines (all routers)")
    p.add_argument("--stage", choices=(*STAGES, "time"), help="one stage here, no callgrind")
    p.add_argument("--ab", help="trees A,B: interleaved in-process CPU-s of the whole table")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--code", help="another tree's root to import ribd from")
    p.add_argument("--stages", default=",".join(STAGES), help="comma-separated, in order")
    args = p.parse_args()
    if args.stage:
        run_stage(args.stage, args.routers, args.lines)
        return
    write_cache(args.routers)
    if args.ab:
        time_ab(args.ab.split(","), args.routers, args.rounds)
        return
    totals: dict[str, int] = {}
    functions: dict[str, int] = {}
    for stage in args.stages.split(","):
        totals[stage], found = callgrind(stage, args.routers, args.lines, args.code)
        if stage == "apply":
            functions = found
        print(f"{stage}: {totals[stage]:,} instructions", flush=True)
    n = args.lines
    print(f"per line, {n} lines, {args.routers} router(s), code {args.code or '.'}:")
    for label, stage, base in (
        ("split", "split", "none"),
        ("parse", "parse", "none"),
        ("apply", "apply", "parse"),
        ("parse + apply", "apply", "none"),
    ):
        if stage in totals and base in totals:
            print(f"  {label}  {(totals[stage] - totals[base]) / n:9,.0f}")
    for label, cost in functions.items():
        print(f"  {label}: {cost / n:9,.0f}")


if __name__ == "__main__":
    main()
