"""The service's CPU for the real table's ``packets`` lines through the feed
socket, delivered at once or paced as ExaBGP and the relay deliver them.

In a real session (``bench.vs_pmacct``) the feed's thread costs ~1.7-2.4 CPU-s
for the real table; in process, parse + apply cost ~1.0-1.2. One difference is
how the lines arrive: ExaBGP writes them at its own pace and the relay hands
them on in small batches (``ribd.relay``: what came in ~2 ms), so the feed's
thread wakes for a few dozen lines at a time, its caches cold after ExaBGP and
the relay ran on the same cores. This replays the table from another process
(the sender, as the relay is) either as fast as the socket takes it or as
``--chunk`` bytes every ``--gap`` seconds, into a ``FeedServer`` and ``Rib``
tuned as the service tunes them, and reports the process's CPU and the feed
thread's from the first byte until the last line was applied, and the number
of reads.

``python -m bench.ingest_paced [--routers 1] [--chunk 32768] [--gap 0.002]
[--rounds 2] [--maintenance]``: each round runs the bulk and the paced delivery
interleaved, each in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ribd.feed import FeedServer

_SENDER = r"""
import socket, sys, time
path, data_path, chunk, gap = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
data = open(data_path, "rb").read()
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
print("ready", flush=True)
sys.stdin.readline()
view = memoryview(data)
pos, n = 0, len(data)
while pos < n:
    end = min(n, pos + chunk)
    if end < n:
        cut = data.rfind(b"\n", pos, end)
        end = cut + 1 if cut >= pos else end
    s.sendall(view[pos:end])
    pos = end
    if gap:
        time.sleep(gap)
print("sent", flush=True)
sys.stdin.readline()
"""


# ExaBGP's side: one write a line into the relay's stdin, at ``rate`` lines a second.
_WRITER = r"""
import os, sys, time
data_path, rate = sys.argv[1], float(sys.argv[2])
lines = open(data_path, "rb").read().splitlines(keepends=True)
print("ready", file=sys.stderr, flush=True)
sys.stdin.readline()
write, t0 = os.write, time.monotonic()
for i, line in enumerate(lines):
    write(1, line)
    if not i % 16:
        ahead = t0 + i / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
sys.stdin.readline()
"""


def _feed_thread_id(server: FeedServer, what: str) -> int:
    """The native id of the thread reading the server's first connection (its CPU
    is the feed's), once the sender has connected: ``what`` names a timeout."""
    deadline = time.monotonic() + 30
    while not server._connections or server._connections[0].thread is None:
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.01)
    thread = server._connections[0].thread
    while thread.native_id is None:
        time.sleep(0.01)
    return thread.native_id


def _proc_cpu(pid: int) -> float:
    user, system = _proc_times(pid)
    return user + system


def _proc_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU-s of a process."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2 :].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _thread_cpu(tid: int) -> float:
    return sum(_thread_times(tid))


def _thread_times(tid: int) -> tuple[float, float]:
    """(user, system) CPU-s of a thread of this process."""
    with open(f"/proc/self/task/{tid}/stat") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2 :].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _faults(path: str) -> int:
    """Minor page faults of a process or thread (``/proc/.../stat``)."""
    with open(path) as f:
        text = f.read()
    return int(text[text.rindex(")") + 2 :].split()[7])


def _table(routers: int, lines_file: str) -> list[bytes]:
    """The real table's packets lines: ``bench.ingest.raw_lines`` (orjson's form),
    or a file of them (``--form exabgp``: bench.scan_instr's, ExaBGP's own form)."""
    if lines_file:
        return Path(lines_file).read_bytes().split(b"\n")[:-1]
    from bench.ingest import raw_lines

    return raw_lines(routers)[0]


def one(
    routers: int,
    chunk: int,
    gap: float,
    maintenance: bool,
    coalesce: float | None,
    lines_file: str = "",
) -> dict:
    """One load in this process: the table from a sender process, then the figures."""
    from attribution.service import tune_gc
    from bench.feeder import marker_line, wait_marker
    from ribd.feed import FeedServer, RibMaintenance
    from ribd.relay import control_line
    from ribd.rib import Rib

    lines = _table(routers, lines_file)
    token = 7.0
    hello = control_line("hello", pid=4242, ppid=4241, started=1.0, delivered=0, spooled=0)
    data = hello + b"\n".join(lines) + b"\n" + marker_line(token) + b"\n"
    del lines
    import ribd.feed

    reads = [0]

    class CountingSplitter(ribd.feed.LineSplitter):  # counts the feed's reads
        def split(self, data: bytes):  # type: ignore[override]
            reads[0] += 1
            return super().split(data)

    ribd.feed.LineSplitter = CountingSplitter  # type: ignore[misc]
    tune_gc()
    rib = Rib()
    with tempfile.TemporaryDirectory(prefix="bench-paced-") as d:
        data_path = Path(d) / "lines"
        data_path.write_bytes(data)
        sock = str(Path(d) / "feed.sock")
        server = FeedServer(sock, rib, resync_on_loss=False)
        if coalesce is not None:  # the feed's wait after a short read (where it has one)
            server.coalesce_seconds = coalesce
        server.start()
        maint = RibMaintenance(rib) if maintenance else None
        if maint is not None:
            maint.start()
        proc = subprocess.Popen(
            [sys.executable, "-c", _SENDER, sock, str(data_path), str(chunk), str(gap)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdin and proc.stdout
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("sender failed")
        tid = _feed_thread_id(server, "no connection")
        cpu0, feed0, t0 = time.process_time(), _thread_cpu(tid), time.monotonic()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        wait_marker(rib, token, timeout=600, poll=0.01)
        out = {
            "wall": time.monotonic() - t0,
            "cpu": time.process_time() - cpu0,
            "feed_thread": _thread_cpu(tid) - feed0,
            "bytes": len(data),
            "reads": reads[0],
        }
        proc.stdin.write("end\n")
        proc.stdin.flush()
        proc.communicate(timeout=30)
        if maint is not None:
            maint.stop()
        server.stop()
    return out


def one_relay(
    routers: int, rate: float, relay_coalesce: float | None, lines_file: str = ""
) -> dict:
    """One load through the real relay (``ribd.relay`` in its own process, its
    stdin a pipe written a line at a time at ``rate`` lines/s, as ExaBGP
    writes), into a FeedServer here; the relay's CPU and the feed thread's."""
    from attribution.service import tune_gc
    from bench.feeder import marker_line, wait_marker
    from ribd.feed import FeedServer
    from ribd.rib import Rib

    lines = _table(routers, lines_file)
    token = 7.0
    data = b"\n".join(lines) + b"\n" + marker_line(token) + b"\n"
    del lines
    tune_gc()
    rib = Rib()
    with tempfile.TemporaryDirectory(prefix="bench-paced-") as d:
        data_path = Path(d) / "lines"
        data_path.write_bytes(data)
        sock = str(Path(d) / "feed.sock")
        server = FeedServer(sock, rib, resync_on_loss=False)
        server.start()
        r, w = os.pipe()
        writer = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(data_path), str(rate)],
            stdin=subprocess.PIPE,
            stdout=w,
            stderr=subprocess.PIPE,
            text=True,
        )
        set_co = "" if relay_coalesce is None else f"r.COALESCE_SECONDS = {relay_coalesce!r}; "
        code = f"import sys, ribd.relay as r; {set_co}sys.exit(r.main())"
        relay = subprocess.Popen(
            [sys.executable, "-c", code, "--socket", sock, "--grace", "120"],
            stdin=r,
            stderr=subprocess.DEVNULL,
        )
        os.close(r)
        os.close(w)
        assert writer.stdin and writer.stderr
        if writer.stderr.readline().strip() != "ready":
            raise RuntimeError("writer failed")
        tid = _feed_thread_id(server, "no relay connection")
        (user0, sys0), t0 = _proc_times(relay.pid), time.monotonic()
        feed_user0, feed_sys0 = _thread_times(tid)
        faults0 = _faults(f"/proc/self/task/{tid}/stat"), _faults(f"/proc/{relay.pid}/stat")
        writer.stdin.write("go\n")
        writer.stdin.flush()
        wait_marker(rib, token, timeout=600, poll=0.01)
        user1, sys1 = _proc_times(relay.pid)
        feed_user1, feed_sys1 = _thread_times(tid)
        out = {
            "wall": time.monotonic() - t0,
            "relay": user1 + sys1 - user0 - sys0,
            "relay_system": sys1 - sys0,
            "feed_thread": feed_user1 + feed_sys1 - feed_user0 - feed_sys0,
            "feed_system": feed_sys1 - feed_sys0,
            "feed_faults": _faults(f"/proc/self/task/{tid}/stat") - faults0[0],
            "relay_faults": _faults(f"/proc/{relay.pid}/stat") - faults0[1],
            "reads": server.stats().get("reads"),  # (not counted before 7579c0f)
        }
        writer.stdin.write("end\n")
        writer.stdin.flush()
        writer.wait(30)
        relay.wait(30)
        server.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--routers", type=int, default=1)
    p.add_argument("--chunk", type=int, default=32768, help="paced: bytes a send")
    p.add_argument("--gap", type=float, default=0.002, help="paced: seconds between sends")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument(
        "--coalesce",
        default="",
        help="FeedServer.coalesce_seconds values to run paced, e.g. 0,0.02 (default: as built)",
    )
    p.add_argument("--maintenance", action="store_true", help="run RibMaintenance meanwhile")
    p.add_argument(
        "--relay",
        default="",
        help="through the real relay instead: its COALESCE_SECONDS values, e.g. 0.002,0.02 "
        "('-': as built)",
    )
    p.add_argument("--rate", type=float, default=14000.0, help="--relay: lines/s written")
    p.add_argument(
        "--code",
        default="",
        help="--relay: checkouts to run in turn, comma-separated (each with this script "
        "copied into its bench/); default: this one",
    )
    p.add_argument(
        "--form",
        choices=("compact", "exabgp"),
        default="compact",
        help="the lines in orjson's compact form (default) or ExaBGP 5's own",
    )
    p.add_argument("--lines-file", default="", help=argparse.SUPPRESS)
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--one-relay", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one_relay is not None:
        co = args.one_relay
        res = one_relay(args.routers, args.rate, float(co) if co else None, args.lines_file)
        print(json.dumps(res))
        return 0
    form: list[str] = []
    if args.form == "exabgp":
        from bench import scan_instr

        scan_instr.write_cache(args.routers)
        form = ["--lines-file", str(scan_instr.cache_path(args.routers, "exabgp"))]
    if args.relay:
        trees = [Path(c).resolve() for c in args.code.split(",") if c] or [Path.cwd()]
        for tree in trees:
            mine = Path(__file__).resolve()
            if (tree / "bench" / mine.name).resolve() != mine:
                (tree / "bench" / mine.name).write_bytes(mine.read_bytes())
        for _ in range(args.rounds):
            for tree in trees:
                for co in args.relay.split(","):
                    cmd = [sys.executable, "-m", "bench.ingest_paced"]
                    cmd += ["--routers", str(args.routers), "--rate", str(args.rate)]
                    cmd += [f"--one-relay={'' if co == '-' else co}", *form]
                    env = dict(os.environ, PYTHONPATH=str(tree))
                    out = subprocess.run(cmd, capture_output=True, check=True, cwd=tree, env=env)
                    res = json.loads(out.stdout)
                    print(f"{tree.name} relay coalesce {co}", json.dumps(res), flush=True)
        return 0
    if args.one:
        chunk, gap, co = args.one.split(",")
        res = one(
            args.routers,
            int(chunk),
            float(gap),
            args.maintenance,
            float(co) if co else None,
            args.lines_file,
        )
        print(json.dumps(res))
        return 0
    variants = [("bulk", 1 << 20, 0.0, "")]
    for co in args.coalesce.split(",") if args.coalesce else [""]:
        variants.append((f"paced{' coalesce ' + co if co else ''}", args.chunk, args.gap, co))
    for _ in range(args.rounds):
        for label, chunk, gap, co in variants:
            cmd = [sys.executable, "-m", "bench.ingest_paced", "--routers", str(args.routers)]
            cmd += ["--one", f"{chunk},{gap},{co}", *form]
            cmd += ["--maintenance"] if args.maintenance else []
            res = json.loads(subprocess.run(cmd, capture_output=True, check=True).stdout)
            print(label, json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
