"""Instructions a line of the ``packets`` line scan alone (``ribd._rawline``), under callgrind.

The feed's scan (``RawLineScanner.events`` / ``_rawline.line_update``) reads the
whole JSON line ExaBGP writes for a received UPDATE, finds the peer, the time
and the body, and unhexlifies the body. ``bench.ingest_instr`` prices the
feed's whole line on the lines ``bench.fuzz_raw.packets_line`` writes (orjson's
compact form, ``"time":1.0``); ExaBGP 5.0.15 writes them spaced, with ``host``,
``pid``, ``counter``, a ``router-id`` and a ``time.time()`` stamp of 16-17
digits (``bench.fuzz_raw.exabgp_packets_line``). This prices the scan on both
forms: the real table's first ``--lines`` UPDATE lines of ``--routers``
sessions interleaved, scanned by ``RawLineScanner.events`` with a decoder that
returns a constant (the decode is priced elsewhere), less the same process
that does not scan. Each stage runs in its own process under
``valgrind --tool=callgrind``, niced.

``python -m bench.scan_instr [--routers 2] [--lines 20000] [--code DIR,...]
[--stages scan,split]``; ``split`` prices the feed's split of its reads
(``ribd.lines.LineSplitter``, reads of READ_BYTES) instead of the scan.
``--stage none|scan|split --form compact|exabgp`` runs one stage without callgrind.
``--time`` instead: CPU-s of the scan of the whole table, each code in turn.
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

FORMS = ("compact", "exabgp")
READ_BYTES = 150_000  # a feed read during a load (~20 ms of ExaBGP's output)


def cache_path(routers: int, form: str) -> Path:
    return Path(tempfile.gettempdir()) / f"scan_instr_{form}_{routers}.lines"


def write_cache(routers: int) -> None:
    """Both forms of the real table's lines, once (the session lines first)."""
    if all(cache_path(routers, f).exists() for f in FORMS):
        return
    import orjson

    from bench.fuzz_raw import exabgp_packets_line
    from bench.ingest import raw_lines

    lines, _ = raw_lines(routers)
    out = []
    t = 1796177918.705422
    for k, line in enumerate(lines):
        doc = orjson.loads(line)
        n, m = doc["neighbor"], doc["neighbor"]["message"]
        if m["category"] != 2:
            out.append(line)  # the OPENs: as they are (the scan does not read them)
            continue
        body = bytes.fromhex(m["body"][2:])
        t += 0.0000137  # a time.time() a message: 16 or 17 digits
        out.append(exabgp_packets_line(body, peer=n["address"]["peer"], time_=t, counter=k))
    for form, got in (("compact", lines), ("exabgp", out)):
        tmp = cache_path(routers, form).with_suffix(".tmp")
        tmp.write_bytes(b"\n".join(got) + b"\n")
        tmp.rename(cache_path(routers, form))


class _Decoder:
    """A decoder that decodes nothing: the scan is what is priced."""

    interner = None

    def decode(self, peer: object, body: bytes, caps: object) -> list:
        return []


def run_stage(stage: str, routers: int, form: str, count: int) -> float:
    from bench.fuzz_raw import session_lines
    from ribd.parser import ExabgpParser
    from ribd.rawlines import raw_scanner

    lines = cache_path(routers, form).read_bytes().split(b"\n")[:-1]
    updates = [ln for ln in lines if b'"category":2' in ln or b'"category": 2' in ln]
    updates = updates[:count] if count else updates
    parser = ExabgpParser()
    peers = {re.search(rb'"peer": ?"([^"]+)"', ln)[1].decode() for ln in updates[:100]}
    for peer in sorted(peers):
        for line in session_lines(peer):
            parser.parse(line)
    parser.raw.decoder = _Decoder()
    scan = raw_scanner(parser.raw)
    reads = []  # the lines as the feed reads them: ~READ_BYTES a read, cut anywhere
    blob = b"\n".join(updates) + b"\n"
    for at in range(0, len(blob), READ_BYTES):
        reads.append(blob[at : at + READ_BYTES])
    del blob
    if stage == "none":
        return 0.0
    if stage == "split":  # the feed's split of its reads into lines (ribd.lines)
        from ribd.lines import LineSplitter

        splitter = LineSplitter(1 << 20)
        t0 = time.process_time()
        got = sum(len(splitter.split(data)[0]) for data in reads)
        if got != len(updates):
            raise SystemExit(f"the split gave {got} of {len(updates)} lines")
        return time.process_time() - t0
    t0 = time.process_time()
    taken = 0
    for line in updates:
        taken += scan(line) is not None
    spent = time.process_time() - t0
    if taken != len(updates):
        raise SystemExit(f"the scan took {taken} of {len(updates)} lines")
    return spent


def callgrind(stage: str, routers: int, form: str, count: int, code: str) -> int:
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=str(Path(code).resolve()))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        cmd = ["nice", "-n", "19", "valgrind", "--tool=callgrind"]
        cmd += [f"--callgrind-out-file={out}", sys.executable, str(Path(__file__).resolve())]
        cmd += ["--stage", stage, "--routers", str(routers), "--form", form]
        cmd += ["--lines", str(count)]
        subprocess.run(cmd, check=True, env=env, capture_output=True, cwd=code)
        text = subprocess.run(
            ["callgrind_annotate", "--threshold=100", str(out)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    return int(re.search(r"^([\d,]+) \(100\.0%\).*PROGRAM TOTALS", text, re.M)[1].replace(",", ""))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--routers", type=int, default=2)
    p.add_argument("--lines", type=int, default=20_000)
    p.add_argument("--code", default=".", help="trees to import ribd from, comma-separated")
    p.add_argument("--forms", default=",".join(FORMS))
    p.add_argument("--stage", choices=("none", "scan", "split"))
    p.add_argument("--stages", default="scan", help="what --code prices: scan, split or both")
    p.add_argument("--form", choices=FORMS, default="exabgp")
    p.add_argument("--time", action="store_true", help="CPU-s of the whole table's scan")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    if args.stage:
        spent = run_stage(args.stage, args.routers, args.form, args.lines)
        print(f"{spent:.4f}")
        return
    write_cache(args.routers)
    codes = args.code.split(",")
    if args.time:
        for _ in range(args.rounds):
            for code in codes:
                for form in args.forms.split(","):
                    env = dict(os.environ, PYTHONPATH=str(Path(code).resolve()))
                    cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", "scan"]
                    cmd += ["--routers", str(args.routers), "--form", form, "--lines", "0"]
                    out = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
                    print(f"{code} {form}: scan {float(out.stdout):.3f} CPU-s", flush=True)
        return
    for code in codes:
        for form in args.forms.split(","):
            base = callgrind("none", args.routers, form, args.lines, code)
            for stage in args.stages.split(","):
                cost = callgrind(stage, args.routers, form, args.lines, code)
                print(
                    f"{code} {form}: {stage} {(cost - base) / args.lines:,.0f} instructions a "
                    f"line ({args.lines} lines, {args.routers} router(s))",
                    flush=True,
                )


if __name__ == "__main__":
    main()
