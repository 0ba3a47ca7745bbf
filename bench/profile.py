"""Where the time goes: sampling profiles of the benchmarked paths (py-spy, pyinstrument).

    python -m bench.profile ingest            # pyinstrument, parse+apply of the full table
    python -m bench.profile zipf              # py-spy on the server under bulk Zipf load
    python -m bench.profile uniform           # ... uniformly random addresses
    python -m bench.profile zipf --answer omit  # ... an answer shape of bench.flows.ANSWERS
    python -m bench.profile resolve           # ... sequential one-flow Resolve calls
    python -m bench.profile churn             # ... Zipf load while RIS churn is applied

Not part of ``python -m bench`` (profilers slow the code down). py-spy
samples only threads holding the GIL (``--gil``): on a Python server that is
the time that limits throughput. We print the top functions by self time
and by inclusive time, as shares of the samples; ``--out DIR`` keeps the raw
collapsed stacks (flamegraph input) too.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import CHURN, FULL_TABLE, FULL_TABLE_PREFIXES, log, read_lines
from bench.flows import ANSWERS

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def _short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    for marker in ("/site-packages/", "/work/main/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{m['func']} ({path})"


def summarize(collapsed: str, top: int = 18) -> str:
    """Top functions by self and inclusive share of the samples."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";")]
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        return "no samples"
    out = [f"{total} samples", "", "self %  function"]
    out += [f"{100 * n / total:5.1f}  {f}" for f, n in own.most_common(top)]
    out += ["", "incl %  function"]
    out += [f"{100 * n / total:5.1f}  {f}" for f, n in incl.most_common(top)]
    return "\n".join(out)


def py_spy(pid: int, seconds: float, out: Path) -> str:
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    subprocess.run(
        [exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
         "--gil", "--format", "raw", "--output", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    return out.read_text()


def profile_ingest(out: Path) -> str:
    from pyinstrument import Profiler

    from attribution.service import tune_gc
    from ribd.parser import ExabgpParser
    from ribd.rib import Rib

    lines = read_lines(FULL_TABLE)
    tune_gc()
    rib = Rib()
    parse = ExabgpParser(rib.interner).parse
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for line in lines:
        rib.apply_many(parse(line))
    profiler.stop()
    (out / "ingest.html").write_text(profiler.output_html())
    return profiler.output_text(unicode=False, color=False, show_all=False)


def profile_server(kind: str, seconds: float, out: Path, answer: str = "columns") -> str:
    from bench.server import EXPORTER, Server
    from bench.throughput import start_clients

    with tempfile.TemporaryDirectory(prefix="bench-prof-") as d, Server(Path(d)) as server:
        server.load_full_table(FULL_TABLE_PREFIXES)
        server.settle()
        if kind == "resolve":
            return _profile_resolve(server, EXPORTER, seconds, out)
        feeder = None
        if kind == "churn":
            from bench.common import FULL_TABLE_PEER

            feeder, _ = server.feeder(CHURN, remap_all_to=FULL_TABLE_PEER)
        clients = start_clients(
            server.target,
            "zipf" if kind == "churn" else kind,
            seconds + 4,
            answer=answer,
        )
        time.sleep(clients.start + 1.5 - time.monotonic())
        if feeder is not None:
            server.go(feeder)
        text = py_spy(server.pid, seconds, out / f"{kind}.collapsed")
        clients.wait()
        if feeder is not None:
            server.finish_feeder(feeder, stop=True)
    return summarize(text)


def _profile_resolve(server, exporter: str, seconds: float, out: Path) -> str:
    import threading

    from attribution.v1 import attribution_pb2 as pb

    stop = threading.Event()
    flow = pb.Flow(exporter=exporter, src_addr="1.1.1.1", dst_addr="8.8.8.8")

    def calls() -> None:
        while not stop.is_set():
            server._stub.Resolve(flow, timeout=5)

    t = threading.Thread(target=calls)
    t.start()
    try:
        text = py_spy(server.pid, seconds, out / "resolve.collapsed")
    finally:
        stop.set()
        t.join()
    return summarize(text)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    p.add_argument("what", choices=("ingest", "zipf", "uniform", "resolve", "churn"))
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument(
        "--answer", choices=sorted(ANSWERS), default="columns", help="answer shape of the load"
    )
    p.add_argument("--out", help="keep the raw profiles here")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-prof-out-") as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        log(f"profile: {args.what}")
        if args.what == "ingest":
            print(profile_ingest(out))
        else:
            print(profile_server(args.what, args.seconds, out, args.answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
