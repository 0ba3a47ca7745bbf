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
* ``feed`` (not in the default list): instead of parse and apply, every line
  through the feed's own loop (``FeedServer``'s compiled ``lines_in``, reads of
  ``READ_LINES`` lines, no socket): parse, checks, apply and counters, and where
  built the fused path of a table load's lines (``ribd._loadline``);
  ``--no-fused`` turns that off. Compare it with ``none`` (``--stages none,feed``).

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
READ_LINES = 500  # lines handed to the feed's loop at once (a read of ~250 KB)
# ``--stage time``: the whole table parsed, then applied, CPU-s of each printed (the A/B's).
# callgrind_annotate's function names (substrings) whose inclusive cost is reported.
FUNCTIONS = {
    "scan (RawLineScanner.events, decode included)": "RawLineScanner_3events",
    "decode (UpdateDecoder.decode, intern included)": "UpdateDecoder_3decode",
    "intern (ribd._intern.intern)": "7_intern_1intern",
    "apply: ribload.probe": "8_ribload_3probe",
    "apply: ribload.insert_new": "8_ribload_5insert_new",
    "fused (LineLoader.load, all its steps)": "LineLoader_3load",
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


def feed_lines(rib: object, lines: list[bytes], fused: bool) -> float:
    """CPU-s of ``lines`` through the feed's loop (compiled where built), as one
    connection's reads of READ_LINES lines; ``fused``: the fused path on."""
    import socket

    from ribd import feed

    server = feed.FeedServer("/tmp/unused-ingest-instr.sock", rib)
    server.fused_load = fused  # (an older tree's server has no such switch: ignored)
    lines_in = feed._compiled_lines or feed.FeedServer._lines
    a, b = socket.socketpair()
    conn = feed._Connection(a)
    t0 = time.process_time()
    for i in range(0, len(lines), READ_LINES):
        lines_in(server, conn, lines[i : i + READ_LINES])
    spent = time.process_time() - t0
    a.close()
    b.close()
    if conn.counters.bad_lines:
        raise SystemExit(f"bad lines: {conn.counters.bad_by_category}")
    return spent


def read_lines(path: str | Path) -> list[bytes]:
    """A lines file's lines (each without its newline), the file's bytes let go at once."""
    data = Path(path).read_bytes()
    lines = data.split(b"\n")[:-1]
    del data
    return lines


def run_stage(
    stage: str, routers: int, count: int, fused: bool = True, lines_file: str = ""
) -> None:
    """One stage, in this process (under callgrind when the driver runs it)."""
    from attribution.service import tune_gc
    from bench.ingest import new_rib

    lines = read_lines(lines_file or cache_path(routers))
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
    if stage in ("feed", "feedtime"):
        spent = feed_lines(rib, lines, fused)
        if stage == "feedtime":
            print(f"{spent:.3f}")
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


def time_ab_feed(codes: list[str], routers: int, rounds: int) -> None:
    """Interleaved A/B of the whole table through the feed's loop, CPU-s, a fresh
    process each; a code ``DIR:nofused`` runs DIR with the fused path off."""
    got: dict[str, list[float]] = {c: [] for c in codes}
    for _ in range(rounds):
        for code in codes:
            tree, _, flag = code.partition(":")
            env = dict(os.environ, PYTHONPATH=str(Path(tree).resolve()))
            cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", "feedtime"]
            cmd += ["--routers", str(routers), "--lines", "0"]
            cmd += ["--no-fused"] if flag == "nofused" else []
            out = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True).stdout
            got[code].append(float(out))
            print(f"{code}: feed {float(out):.2f} CPU-s", flush=True)
    for code, rows in got.items():
        print(f"{routers} router(s), {code}: feed " + " / ".join(f"{t:.2f}" for t in rows))


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


# ``--cache``: callgrind's cache simulation, this box's L1d and one core's L2
# (1 MiB) as its "last level", so LL misses are the L2 misses a line costs.
CACHE_SIM = ("--cache-sim=yes", "--D1=32768,8,64", "--LL=1048576,16,64")
CACHE_EVENTS = ("I1mr", "D1mr", "D1mw", "DLmr", "DLmw")
MISSES: dict[str, int] = {}  # the last callgrind run's cache misses by event (--cache)


def callgrind(
    stage: str,
    routers: int,
    count: int,
    code: str | None,
    extra: tuple[str, ...] = (),
    cache: bool = False,
) -> tuple[int, dict[str, int]]:
    """Total instructions of one stage's process, and the named functions' inclusive
    costs; with ``cache``, its cache misses in MISSES."""
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
            *(CACHE_SIM if cache else ()),
            f"--callgrind-out-file={out}",
            sys.executable,
            str(Path(__file__).resolve()),  # (a file: ``--code``'s tree may lack this module)
            "--stage",
            stage,
            "--routers",
            str(routers),
            "--lines",
            str(count),
            *extra,
        ]
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        text = subprocess.run(
            ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(out)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    totals = re.search(r"^([\d,]+) \(100\.0%\).*PROGRAM TOTALS", text, re.M)
    total = int(totals[1].replace(",", ""))
    if cache:
        events = re.search(r"^Events shown:\s+(.*)$", text, re.M)[1].split()
        values = [int(v.replace(",", "")) for v in re.findall(r"([\d,]+) \(", totals[0])]
        MISSES.clear()
        MISSES.update({e: v for e, v in zip(events, values, strict=False) if e in CACHE_EVENTS})
    found = {}
    for label, name in FUNCTIONS.items():
        m = re.search(rf"^\s*([\d,]+) \([^)]*\).*?\s\S*{name}\b", text, re.M)
        found[label] = int(m[1].replace(",", "")) if m else 0
    return total, found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--routers", type=int, default=1)
    p.add_argument("--lines", type=int, default=30_000, help="UPDATE lines (all routers)")
    p.add_argument(
        "--stage", choices=(*STAGES, "time", "feed", "feedtime"), help="one stage, no callgrind"
    )
    p.add_argument("--ab", help="trees A,B: interleaved in-process CPU-s of the whole table")
    p.add_argument("--feed", action="store_true", help="--ab through the feed's loop")
    p.add_argument("--no-fused", action="store_true", help="the feed's fused path off")
    p.add_argument("--cache", action="store_true", help="callgrind's cache simulation too")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--code", help="another tree's root to import ribd from")
    p.add_argument("--stages", default=",".join(STAGES), help="comma-separated, in order")
    p.add_argument(
        "--form",
        choices=("compact", "exabgp"),
        default="compact",
        help="the UPDATE lines as bench.fuzz_raw.packets_line writes them (orjson's form, "
        "the default) or as ExaBGP 5 does (its spacing and keys, a time.time() stamp)",
    )
    p.add_argument("--lines-file", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.stage:
        run_stage(args.stage, args.routers, args.lines, not args.no_fused, args.lines_file)
        return
    write_cache(args.routers)
    form_extra: tuple[str, ...] = ()
    if args.form == "exabgp":
        from bench import scan_instr

        scan_instr.write_cache(args.routers)
        form_extra = ("--lines-file", str(scan_instr.cache_path(args.routers, "exabgp")))
    if args.ab:
        ab = time_ab_feed if args.feed else time_ab
        ab(args.ab.split(","), args.routers, args.rounds)
        return
    extra = (("--no-fused",) if args.no_fused else ()) + form_extra
    totals: dict[str, int] = {}
    functions: dict[str, int] = {}
    misses: dict[str, dict[str, int]] = {}
    for stage in args.stages.split(","):
        totals[stage], found = callgrind(
            stage, args.routers, args.lines, args.code, extra, cache=args.cache
        )
        misses[stage] = dict(MISSES)
        if stage in ("apply", "feed"):
            functions = found
        print(f"{stage}: {totals[stage]:,} instructions {misses[stage]}", flush=True)
    n = args.lines
    print(f"per line, {n} lines, {args.routers} router(s), code {args.code or '.'}:")
    for label, stage, base in (
        ("split", "split", "none"),
        ("parse", "parse", "none"),
        ("apply", "apply", "parse"),
        ("parse + apply", "apply", "none"),
        ("feed (parse, apply, the feed's loop)", "feed", "none"),
    ):
        if stage in totals and base in totals:
            print(f"  {label}  {(totals[stage] - totals[base]) / n:9,.0f}")
    for label, cost in functions.items():
        print(f"  {label}: {cost / n:9,.0f}")
    if args.cache and "none" in misses:
        for stage in misses:
            if stage != "none":
                less = {e: (v - misses["none"].get(e, 0)) / n for e, v in misses[stage].items()}
                print(
                    f"  cache misses a line, {stage} less none: "
                    + ", ".join(f"{e} {v:,.0f}" for e, v in less.items())
                )


if __name__ == "__main__":
    main()
