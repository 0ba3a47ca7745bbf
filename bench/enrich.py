"""`attribution enrich` throughput: is the reader the bottleneck, or the service?

Self-contained (no routing data needed): a server process serves a synthetic
RIB (``--prefixes`` /24s under 10.0.0.0/8, 1,000 distinct AS paths, exporter
127.0.1.1) over real gRPC on loopback. In the same run:

1. client CPU per record by stage, in process, per input format (goflow2,
   pmacct, nfdump's fields as one JSON object, and as ``nfdump -o json-log``
   prints them: ``"key" : value``, ``,}`` at the end): read/parse, build
   request columns, the gRPC call,
   answer decode, and for goflow2 each writer (JSON lines, CSV, Parquet, chdb);
2. the service's bulk rate: the same flows pre-packed (``pack_request``,
   packed_records + stream_routes) streamed on a ResolveStream, answers
   not decoded: flows per wall second;
3. end to end: ``attribution enrich FILE`` as a process, each input format to
   JSON lines, goflow2 to CSV, Parquet and chdb, and to JSON with ``--jobs``:
   records per wall second and per CPU second of the client (workers included).

The service's CPU (its process, all threads, from /proc) is measured over the
bulk-rate passes and over each end-to-end run: the target is the client's CPU
a record at most the service's. The client's start-up (the same command on
one record) is measured too, and shown subtracted.

Each stage and each end-to-end shape runs with each reader of ``--readers``
(default both, interleaved: the Python reader alone, as without a C compiler,
and the compiled one in front of it), so one run gives the before and after.

``--trees before=DIR,after=DIR`` runs the end-to-end shapes with each source
tree's ``attribution`` instead (its modules built; e.g. a ``git archive`` of
the commit before a change), run by run, against this tree's service, so one
sitting gives a before/after of two commits; ``--shapes`` and ``--repeat``
choose what and how often.

Run: ``python -m bench.enrich [--records N] [--prefixes N] [--jobs N]
[--full-goflow2] [--no-stages] [--readers python,compiled] [--trees L=DIR,...]
[--shapes json,csv,parquet,chdb,jobs] [--repeat N]``. Prints Markdown tables;
nothing asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import cpu_seconds
from bench.flow_records import EXPORTER, as_nfdump, as_nfdump_log, as_pmacct, goflow2_lines

# The environment the runs get: as this process had it before importing attribution,
# which sets OPENBLAS_NUM_THREADS for itself: a tree from before that change must
# start as it would (its own attribution decides)
RUN_ENV = dict(os.environ)


def serve(prefixes: int, port_file: str) -> None:
    """The server process: synthetic RIB, real gRPC server, runs until killed."""
    from attribution.config import parse_config
    from attribution.grpc_service import AttributionServicer, ReloadResult, start_server
    from attribution.resolver import Resolver
    from ribd.attributes import AS_SEQUENCE, make_attributes
    from ribd.events import EndOfRib, RoutesAnnounced, SessionState
    from ribd.rib import Rib

    config = parse_config(
        f"""
[service]
local_as = 64500
router_id = "127.0.0.1"
max_batch_flows = 65536
[[routers]]
name = "edge"
neighbor = "127.0.0.11"
exporters = ["{EXPORTER}"]
""",
        "bench.toml",
    )
    rib = Rib(router_names={"127.0.0.11": "edge"})
    rib.apply(SessionState("127.0.0.11", "up"))
    groups: dict[int, list[str]] = {}
    for i in range(prefixes):
        groups.setdefault(i % 1000, []).append(f"10.{(i >> 8) & 255}.{i & 255}.0/24")
    for g, pfx in groups.items():
        attrs = make_attributes(
            ((AS_SEQUENCE, (65000 + g % 50, 64512 + g)),), next_hop="127.0.0.99"
        )
        rib.apply(RoutesAnnounced("127.0.0.11", "ipv4 unicast", tuple(pfx), None, attrs))
    rib.apply(EndOfRib("127.0.0.11", "ipv4 unicast"))
    resolver = Resolver(rib, config, max_batch_flows=65536)
    servicer = AttributionServicer(rib, resolver, lambda: config, lambda: ReloadResult(ok=True))
    server, port = start_server(servicer, "127.0.0.1:0", 64 << 20)
    Path(port_file).write_text(str(port))
    server.wait_for_termination()


def chunks(lines: list[bytes], name: str = "bench") -> list:
    """The lines as a file source cuts them: 64 KiB reads."""
    from attribution.enrich_sources import _Splitter

    split = _Splitter(name)
    data = b"\n".join(lines) + b"\n"
    out = [split.feed(data[i : i + (1 << 16)]) for i in range(0, len(data), 1 << 16)]
    return [c for c in out if c]


def reader_rate(lines: list[bytes]) -> float:
    from attribution.enrich_records import Counters, read_batches

    src = chunks(lines)
    counters = Counters()
    t0 = time.process_time()
    n = sum(len(b) for b in read_batches(iter(src), None, counters, 4096))
    cpu = time.process_time() - t0
    assert n == len(lines) and not counters.bad, counters.summary()
    return n / cpu


def service_rate(
    target: str,
    lines: list[bytes],
    batch: int = 4096,
    repeat: int = 3,
    fresh: bool = False,
    server_pid: int | None = None,
) -> tuple[float, float | None]:
    """Pre-packed batches on ResolveStreams: the service's bulk rate, client work excluded.

    ``fresh``: each pass over the flows on a new stream, so every route is new to
    the stream's dictionary, as for ``attribution enrich`` reading the file once;
    else the passes follow each other on one stream (its dictionary warm after
    the first)."""
    from attribution.client import channel
    from attribution.enrich_records import Counters, read_batches
    from attribution.enrich_wire import pack_request
    from attribution.v1 import attribution_pb2_grpc as pb_grpc

    requests = []
    for i, b in enumerate(read_batches(iter(chunks(lines)), None, Counters(), batch)):
        req, bad, _ = pack_request(b, i)
        assert not bad
        requests.append(req.SerializeToString())
    with channel(target) as ch:
        call = ch.stream_stream(
            "/attribution.v1.Attribution/ResolveStream",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        del pb_grpc
        for _ in call(iter(requests[:2])):  # warm-up (caches, route dictionary)
            pass
        t0 = time.perf_counter()
        c0 = cpu_seconds(server_pid) if server_pid else 0.0
        n = 0
        for stream in [requests] * repeat if fresh else [requests * repeat]:
            for _ in call(iter(stream)):
                n += 1
        wall = time.perf_counter() - t0
        cpu = cpu_seconds(server_pid) - c0 if server_pid else None
    assert n == len(requests) * repeat
    flows = len(lines) * repeat
    return flows / wall, (cpu / flows * 1e6 if cpu is not None else None)


def stages(
    target: str, lines: list[bytes], outputs: list[str], tmp: Path, reader: str = "compiled"
) -> list[tuple]:
    """Client CPU per record for each stage, in process, one format's lines.

    read/parse (lines -> FlowBatch), build request columns (pack_request), the
    gRPC call (the packed requests on one ResolveStream, replies kept as
    messages: the client's serialising and receiving), answer decode (route
    dictionary + AnswerBatch.from_reply), then each output writer on the
    answered batches (JSON lines and CSV to /dev/null, Parquet and chdb files),
    each from answers decoded afresh: a route's output fields are made once per
    stream, so each writer pays for every route as one run would.
    """
    import attribution.enrich_records as er
    import attribution.enrich_wire as ew

    saved = er.SCANNER, ew.JSON_COMPILED
    compiled = reader == "compiled"  # python: no compiled part, as without a C compiler
    er.SCANNER = er._enrich_scan if compiled else None
    ew.JSON_COMPILED = saved[1] if compiled else None
    try:
        return _stages(target, lines, outputs, tmp)
    finally:
        er.SCANNER, ew.JSON_COMPILED = saved


def _stages(target: str, lines: list[bytes], outputs: list[str], tmp: Path) -> list[tuple]:
    from attribution.client import channel
    from attribution.enrich import _StreamRoutes
    from attribution.enrich_records import Counters, read_batches
    from attribution.enrich_wire import AnswerBatch, pack_request
    from attribution.v1 import attribution_pb2_grpc as pb_grpc

    n = len(lines)
    src = chunks(lines)
    out: list[tuple] = []

    def timed(name: str, fn):
        t0 = time.process_time()
        got = fn()
        out.append((name, (time.process_time() - t0) / n * 1e6))
        return got

    batches = timed("read/parse", lambda: list(read_batches(iter(src), None, Counters(), 4096)))
    packed = timed(
        "build request columns", lambda: [pack_request(b, i) for i, b in enumerate(batches)]
    )
    with channel(target) as ch:
        stub = pb_grpc.AttributionStub(ch)
        replies = timed(
            "gRPC call (one stream)",
            lambda: list(stub.ResolveStream(iter([p[0] for p in packed]), timeout=300)),
        )

    def decode():
        routes = _StreamRoutes()
        return [
            AnswerBatch.from_reply(len(b), bad, good, r, routes.on_reply(r))
            for b, (_, bad, good), r in zip(batches, packed, replies, strict=True)
        ]

    timed("answer decode", decode)
    for spec in outputs:
        from attribution.enrich import OUTPUTS, SinkWriter

        answers = decode()  # each writer from a fresh route dictionary, as one run

        library = [0.0]  # CPU in the library's own writer: pyarrow.csv, Parquet, chdb

        def inside(fn, library=library):
            def timed_call(*a, **k):
                t0 = time.process_time()
                try:
                    return fn(*a, **k)
                finally:
                    library[0] += time.process_time() - t0

            return timed_call

        def write(spec=spec, answers=answers):
            if spec in OUTPUTS:
                with open(os.devnull, "wb") as sink:
                    w = OUTPUTS[spec].make(sink)
                    if hasattr(w, "write_csv"):  # pyarrow.csv (else the csv module: ours)
                        w.write_csv = inside(w.write_csv)
                    for b, a in zip(batches, answers, strict=True):
                        w.write(b, a)
                    w.close()
                return
            from attribution.sinks import open_sink

            store = open_sink(spec)
            # the buffered tables concatenated and handed to pyarrow.parquet / chdb
            store._write_buffered = inside(store._write_buffered)
            w = SinkWriter(store)
            for b, a in zip(batches, answers, strict=True):
                w.write(b, a)
            w.close()

        kind = spec.split(":")[0]
        t_spec = spec.replace("TMP", str(tmp))
        timed(f"write {kind}", lambda t_spec=t_spec: write(t_spec))
        if kind != "json":
            out.append((f"of which {kind}'s library", library[0] / n * 1e6))
    return out


def end_to_end(
    target: str,
    path: Path,
    n: int,
    *args: str,
    server_pid: int | None = None,
    reader: str = "compiled",
    tree: str | None = None,
) -> tuple[float, float, float] | None:
    """``attribution enrich FILE`` as a process (output to /dev/null or a store):
    (records per wall second, its CPU seconds incl. workers, the service's CPU
    seconds meanwhile); None if it refused the arguments (an older version
    without --jobs). ``tree``: run that source tree's attribution (its modules
    built), for a before/after of two commits in one sitting."""
    cmd = [sys.executable, "-m", "attribution.cli", "enrich", "--target", target]
    cmd += ["--progress", "0", *args, str(path)]
    t0 = time.perf_counter()
    s0 = cpu_seconds(server_pid) if server_pid else 0.0
    before = os.times()
    env = dict(RUN_ENV)
    if reader == "python":  # the Python reader alone (attribution.enrich_records)
        env["ATTRIBUTION_ENRICH_READER"] = "python"
    else:
        env.pop("ATTRIBUTION_ENRICH_READER", None)
    if tree is not None:
        env["PYTHONPATH"] = tree
    with open(os.devnull, "wb") as sink:
        done = subprocess.run(cmd, stdout=sink, stderr=subprocess.PIPE, env=env, cwd=tree)
    wall = time.perf_counter() - t0
    after = os.times()
    served = cpu_seconds(server_pid) - s0 if server_pid else 0.0
    if done.returncode == 2 and b"unrecognized arguments" in done.stderr:
        return None
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)}: {done.stderr.decode()[-2000:]}")
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return n / wall, cpu, served


def fresh_store(extra: list[str], tree: str) -> list[str]:
    """``extra`` with a chdb store of the tree's own (``{tree}``), removed first:
    each run makes the schema of its own tree's code and inserts into an empty
    store (no merges of an earlier run's parts counted in its CPU)."""
    import shutil

    out = [a.replace("{tree}", tree) for a in extra]
    for a in out:
        if a.startswith("chdb:"):
            shutil.rmtree(a[len("chdb:") :], ignore_errors=True)
    return out


CHECKPOINT_STATS: list[dict] = []  # each --checkpoint run's --stats "checkpoint" part


def followed(
    target: str,
    path: Path,
    n: int,
    size: int,
    tmp: Path,
    checkpoint: bool,
    server_pid: int | None = None,
    tree: str | None = None,
) -> tuple[float, float, float] | None:
    """``attribution enrich --follow FILE`` (``checkpoint``: with ``--checkpoint``,
    committed at the default interval) to a real file, stopped with SIGTERM once
    its output is ``size`` bytes (the output of the same records unfollowed):
    (records per wall second, its CPU seconds, the service's). A followed
    run never ends by itself; its CPU is its own rusage (os.wait4)."""
    import signal

    out, ckpt, stats = tmp / "followed.out", tmp / "followed.ckpt", tmp / "followed.stats"
    for f in (out, ckpt, stats):
        f.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "attribution.cli", "enrich", "--target", target]
    cmd += ["--progress", "0", "--stats", str(stats), "--follow", str(path)]
    if checkpoint:
        cmd += ["--checkpoint", str(ckpt)]
    env = dict(RUN_ENV)
    env.pop("ATTRIBUTION_ENRICH_READER", None)
    if tree is not None:
        env["PYTHONPATH"] = tree
    t0 = time.perf_counter()
    s0 = cpu_seconds(server_pid) if server_pid else 0.0
    with open(out, "wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.PIPE, env=env, cwd=tree)
    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # reaped here, not by poll()
    while out.stat().st_size < size and not pid:
        time.sleep(0.02)
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    wall = time.perf_counter() - t0
    if not pid:
        proc.send_signal(signal.SIGTERM)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    served = cpu_seconds(server_pid) - s0 if server_pid else 0.0
    err = proc.stderr.read() if proc.stderr else b""
    if b"unrecognized arguments" in err:
        return None
    if out.stat().st_size != size:
        raise SystemExit(f"{' '.join(cmd)}: {out.stat().st_size} bytes of {size}: {err[-2000:]}")
    if checkpoint:
        CHECKPOINT_STATS.append(json.loads(stats.read_text()).get("checkpoint", {}))
    return n / wall, usage.ru_utime + usage.ru_stime, served


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.enrich")
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--prefixes", type=int, default=50_000)
    p.add_argument("--jobs", type=int, default=2, help="also end to end with --jobs N")
    p.add_argument(
        "--full-goflow2",
        action="store_true",
        help="goflow2 records with every field goflow2 prints (~870 bytes), not the ~470 read",
    )
    p.add_argument("--no-stages", action="store_true", help="end to end and service rate only")
    p.add_argument("--no-end-to-end", action="store_true", help="the in-process stages only")
    p.add_argument(
        "--readers",
        default="python,compiled",
        help="the readers to compare, run by run: python (the Python reader alone), compiled",
    )
    p.add_argument(
        "--trees",
        help="LABEL=DIR,...: end to end with each source tree's attribution (its modules "
        "built), run by run, instead of the two readers (e.g. before=/tmp/main-at-start,"
        "after=.); the service is this tree's",
    )
    p.add_argument(
        "--shapes",
        default="json,csv,parquet,chdb,jobs",
        help="end-to-end shapes: json (each input format), csv, parquet, chdb, jobs, "
        "follow (goflow2 -> JSON lines, --follow, to a file), checkpoint (the same with "
        "--checkpoint at its default interval)",
    )
    p.add_argument("--repeat", type=int, default=1, help="end-to-end runs of each shape")
    p.add_argument("--serve", metavar="PORT_FILE", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args.prefixes, args.serve)
        return 0
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        port_file = tmp / "port"
        cmd = [sys.executable, "-m", "bench.enrich", "--prefixes", str(args.prefixes)]
        server = subprocess.Popen([*cmd, "--serve", str(port_file)])
        try:
            deadline = time.monotonic() + 300
            while not port_file.exists() or not port_file.read_text():
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("bench server did not start")
                time.sleep(0.1)
            target = f"127.0.0.1:{port_file.read_text()}"
            lines = goflow2_lines(args.records, args.prefixes, full=args.full_goflow2)
            inputs = {
                "goflow2": lines,
                "pmacct": [as_pmacct(x) for x in lines],
                "nfdump": [as_nfdump(x) for x in lines],
                "nfdump-log": [as_nfdump_log(x) for x in lines],
            }
            paths = {}
            for name, got in inputs.items():
                paths[name] = tmp / f"{name}.jsonl"
                paths[name].write_bytes(b"\n".join(got) + b"\n")
            n = len(lines)
            sample = min(n, 50_000)
            readers = args.readers.split(",")
            trees: dict[str, str | None] = {r: None for r in readers}
            if args.trees:
                trees = dict(t.split("=", 1) for t in args.trees.split(","))
                readers = ["compiled"]
            stage_rows = []
            for name, got in [] if args.no_stages else inputs.items():
                outputs = ["json", "csv", "parquet:TMP/s.parquet", "chdb:TMP/s-db"]
                for reader in readers:
                    done = stages(
                        target, got[:sample], outputs if name == "goflow2" else [], tmp, reader
                    )
                    stage_rows.append((f"{name}, {reader} reader", done))
            pid = server.pid
            svc, svc_cpu = service_rate(target, lines, fresh=True, server_pid=pid)
            warm, warm_cpu = service_rate(target, lines, server_pid=pid)
            e2e: list[tuple[str, str, tuple[float, float, float] | None]] = []
            wanted = set(args.shapes.split(","))
            shapes = [(f"{name} -> JSON lines", paths[name], []) for name in inputs]
            shapes = shapes if "json" in wanted else []
            for key, label, extra in (
                ("csv", "CSV", ["--output-format", "csv"]),
                ("parquet", "Parquet", ["--output", f"parquet:{tmp}/e.parquet"]),
                # a store of each tree's own schema, made afresh for each run ({tree}, below)
                ("chdb", "chdb (ClickHouse embedded)", ["--output", f"chdb:{tmp}/e-db-{{tree}}"]),
                ("jobs", f"JSON lines, --jobs {args.jobs}", ["--jobs", str(args.jobs)]),
            ):
                if key in wanted:
                    shapes.append((f"goflow2 -> {label}", paths["goflow2"], extra))
            one = tmp / "one.jsonl"  # start-up: the same command on one record
            one.write_bytes(lines[0] + b"\n")
            startup = min(end_to_end(target, one, 1)[1] for _ in range(3))  # type: ignore[index]
            # each shape's own start-up too: a store's first Arrow array makes pyarrow
            # import pandas (~0.3-0.5 CPU-s), chdb starts its engine
            startups: dict[tuple[str, str], float] = {}
            for label, path, extra in [] if args.no_end_to_end else shapes:
                for name, tree in trees.items():
                    own = fresh_store(extra, name)
                    got_one = [end_to_end(target, one, 1, *own, tree=tree) for _ in range(2)]
                    ok = [g[1] for g in got_one if g]
                    startups[label, name] = min(ok) if ok else startup
                for _ in range(args.repeat):
                    for name, tree in trees.items():  # interleaved: the load of the box moves
                        reader = "compiled" if args.trees else name
                        own = fresh_store(extra, name)
                        got_e2e = end_to_end(
                            target, path, n, *own, server_pid=pid, reader=reader, tree=tree
                        )
                        e2e.append((label, name, got_e2e))
            follow_shapes = [k for k in ("follow", "checkpoint") if k in wanted]
            if follow_shapes and not args.no_end_to_end:
                plain = tmp / "plain.out"
                cmd = [sys.executable, "-m", "attribution.cli", "enrich", "--target", target]
                with open(plain, "wb") as sink:
                    subprocess.run([*cmd, "--progress", "0", str(paths["goflow2"])], stdout=sink)
                size = plain.stat().st_size
                for _ in range(args.repeat):
                    for key in follow_shapes:
                        label = "goflow2 -> JSON lines, --follow" + (
                            " --checkpoint" if key == "checkpoint" else ""
                        )
                        for name, tree in trees.items() if args.trees else [("compiled", None)]:
                            got_f = followed(
                                target, paths["goflow2"], n, size, tmp, key == "checkpoint",
                                server_pid=pid, tree=tree,
                            )  # fmt: skip
                            e2e.append((label, name, got_f))
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"records {n:,}, prefixes {args.prefixes:,}, cpus {os.cpu_count()}\n")
    print(f"Client CPU per record by stage, in process ({sample:,} records), µs:\n")
    names = [k for k, _ in stage_rows[0][1]] if stage_rows else []
    print("| input | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for name, done in stage_rows:
        got = dict(done)
        print(
            f"| {name} | " + " | ".join(f"{got[k]:.1f}" if k in got else "" for k in names) + " |"
        )
    print(f"\nService bulk rate (same flows, pre-packed): new stream per pass {svc / 1000:,.0f} k")
    print(f"flows/s, {svc_cpu:.2f} service CPU-µs a flow; one stream (routes sent once)")
    print(f"{warm / 1000:,.0f} k flows/s, {warm_cpu:.2f} CPU-µs a flow\n")
    print(f"client start-up (the command on one record): {startup:.2f} CPU-s\n")
    print(
        "| end to end (`attribution enrich` process) | reader or tree | records/s (wall) "
        "| records per client CPU-s | client CPU-µs a record | the same less the JSON start-up "
        "| less its own start-up (CPU-s) | service CPU-µs a record (same run) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for label, reader, got in e2e:
        if got is None:
            print(f"| {label} | {reader} | — | — | — | — | — | — |")
        else:
            own = startups.get((label, reader), startup)
            print(
                f"| {label} | {reader} | {got[0] / 1000:,.0f} k | {n / got[1] / 1000:,.0f} k "
                f"| {got[1] / n * 1e6:.2f} | {(got[1] - startup) / n * 1e6:.2f} "
                f"| {(got[1] - own) / n * 1e6:.2f} ({own:.2f}) | {got[2] / n * 1e6:.2f} |"
            )
    json_rate = (
        (e2e[-1][2] if e2e else None)
        if len(trees) == 1
        else next(
            (
                g
                for label, r, g in e2e
                if r == list(trees)[-1] and label.startswith("goflow2 -> JSON")
            ),
            None,
        )
    )
    if json_rate:
        print(f"\nend to end (goflow2 -> JSON) / service bulk rate: {json_rate[0] / svc:.2f}")
    for got_ck in CHECKPOINT_STATS:
        commits = got_ck.get("commits", 0)
        spent = got_ck.get("commit_seconds", 0.0)
        print(
            f"--checkpoint run: {commits} commits, {spent:.4f} s in them "
            f"({spent / max(commits, 1) * 1e3:.2f} ms a commit: fsync of the output, "
            "the checkpoint written, fsynced, renamed, its directory fsynced)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
