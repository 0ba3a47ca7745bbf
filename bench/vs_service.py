"""The service's side of ``bench.vs_pmacct``: ``attribution serve`` with its
supervised ExaBGP (and the relay ExaBGP runs) on loopback, one ``[[routers]]``
entry per session, polled over gRPC until every router answers; CPU and RSS
by process role, optionally a profile of one process (``--late``: routers
1..n-1 first, then router n alone)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from attribution.fastpath import VIEW_SETTLE_SECONDS
from bench import bgpsend
from bench.common import REPO, log
from bench.ingest_session_profile import SessionProfile, thread_cpu, thread_names, threads_since
from bench.procs import (
    cpu_of,
    process_roles,
    rss_of,
    stop_process,
    tree_env,
    wait_quiet,
    worker_roles,
)
from bench.vs_flows import FlowStream, view_metrics
from bench.vs_load import Load, Result, start_sending
from ribd.speaker import free_port

# "Idle": the processes' CPU still for longer than the service defers work
# (a view its router moved past waits for VIEW_SETTLE_SECONDS of quiet).
# With 2 s, routers 1..n-1's deferred view builds landed in router n's
# figures (BENCHMARKS.md, stop 42).
IDLE_QUIET = VIEW_SETTLE_SECONDS + 3.0


def our_address(k: int, workers: int) -> str:
    """Where router k's session goes: the listen address, or with several
    workers an address of its own (routers on one address share a worker)."""
    return "127.0.0.1" if workers <= 1 else f"127.0.4.{k}"


def worker_counts(values: str, routers: int) -> list[int]:
    """The ``--workers`` values that differ for this many routers: more workers
    than routers run as many workers as routers (``ribd.workers``), and one
    running worker is the single ExaBGP, listening on ``listen_address`` only
    (a router's own ``local_address`` would then be refused)."""
    out: list[int] = []
    for v in (int(x) for x in values.split(",")):
        if min(v, routers) not in out:
            out.append(min(v, routers))
    return out


def bgp_section(workdir: Path, bgp_port: int, workers: int, api_mode: str = "raw") -> str:
    """The ``[bgp]`` table of a service that runs ExaBGP itself on loopback."""
    return f"""
[bgp]
listen_address = "127.0.0.1"
listen_port = {bgp_port}
exabgp = "supervised"
api_mode = "{api_mode}"
feed_socket = "{workdir / "feed.sock"}"
work_dir = "{workdir}"
workers = {workers}
"""


def service_config(
    workdir: Path,
    load: Load,
    bgp_port: int,
    grpc_port: int,
    api_mode: str = "raw",
    workers: int = 1,
    metrics_port: int = 0,
) -> Path:
    asn = load.tables.asn
    metrics = f'\n[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n' if metrics_port else ""
    routers = "".join(
        f"""
[[routers]]
name = "r{k}"
neighbor = "{bgpsend.router_address(k)}"
peer_as = {asn}
add_path = false
exporters = ["127.0.2.{k}"]
"""
        + (f'local_address = "{our_address(k, workers)}"\n' if workers > 1 else "")
        for k in range(1, len(load.tables.per_router) + 1)
    )
    text = f"""
[service]
local_as = {asn}
router_id = "127.0.0.1"
grpc_listen = "127.0.0.1:{grpc_port}"
{metrics}
{bgp_section(workdir, bgp_port, workers, api_mode)}{routers}"""
    path = workdir / "attribution.toml"
    path.write_text(text)
    return path


POLL_FINE_FROM = 0.9  # polls 20 a second once the routers hold this share of their tables


def run_service(
    load: Load,
    workdir: Path,
    timeout: float,
    api_mode: str = "raw",
    workers: int = 1,
    code: Path = REPO,
    profile: Path | None = None,
    profile_mode: str = "gil",
    late: bool = False,
    profile_process: str = "",
    flows_rate: int = 0,
) -> Result:
    """One load through ``attribution serve``. ``profile``: a sampling profile of
    the service process from the first UPDATE until it is idle, and its CPU by
    thread (``bench.ingest_session_profile``, ``profile_mode``); of another
    process instead when ``profile_process`` names one of the per-worker roles
    (the first of its comma-separated names that this run has, e.g.
    ``"exabgp 0,exabgp 1"``: ExaBGP with one worker, else worker 1).

    ``late``: routers 1..n-1 load together first; once they answer and every
    process is quiet (their tables merged into the store's arrays), router n's
    session opens and sends its table, and the figures (time, CPU, RSS) are
    those of router n's load alone: a router that comes up after the others,
    which takes other code paths than a table loaded into an empty store.
    The first phase's CPU is kept in ``cpu_first``.

    ``flows_rate``: flows a second resolved from the first UPDATE to the end
    (``bench.vs_flows``), spread over every router's exporter; the view builds
    and the stream's figures go to ``Result.flows``."""
    import grpc

    from attribution.v1 import attribution_pb2 as pb
    from attribution.v1 import attribution_pb2_grpc as pb_grpc

    n = len(load.tables.per_router)
    res = Result("this service (ExaBGP + relay + service)", n, workers, code=code.name)
    bgp_port, grpc_port = free_port(), free_port()
    metrics_port = free_port() if flows_rate else 0
    config = service_config(workdir, load, bgp_port, grpc_port, api_mode, workers, metrics_port)
    env = tree_env(code)
    proc = subprocess.Popen(
        [sys.executable, "-m", "attribution.cli", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / "service.log", "wb"),  # noqa: SIM115
        cwd=code,
        env=env,
        start_new_session=True,
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
    stub = pb_grpc.AttributionStub(channel)
    sessions: list[bgpsend.Session] = []
    flows = FlowStream(f"127.0.0.1:{grpc_port}", n, flows_rate) if flows_rate else None
    try:
        t = load.tables
        sessions = [
            bgpsend.Session(
                (our_address(k, workers), bgp_port),
                bgpsend.router_address(k),
                t.asn,
                t.families,
                t.four_octet,
            )
            for k in range(1, n + 1)
        ]
        first = sessions[:-1] if late else sessions
        for s in first:
            s.connect(timeout=120)
        roles = process_roles(proc.pid)
        if not roles["exabgp"] or not roles["relay"]:
            raise RuntimeError(f"no ExaBGP/relay under the service: {roles}")
        per_worker = worker_roles(roles)
        probe_addr = load.probe.split("/")[0]
        watch = _Watch(proc, stub, pb, load, probe_addr, roles, workdir)
        if flows is not None:
            _flows_phase(res, "start", metrics_port, flows)
        if late:
            cpu0 = {k: cpu_of(v) for k, v in roles.items()}
            threads0 = thread_cpu(proc.pid)
            _, sender = start_sending(first, t.per_router[: n - 1])
            if flows is not None:
                flows.start()
            if watch.until_answering(first, n - 1, timeout) is None:
                res.note = f"routers 1-{n - 1} not answering within {timeout:.0f} s"
                return res
            res.cpu_first = {k: cpu_of(v) - cpu0[k] for k, v in roles.items()}
            res.threads_first = threads_since(proc.pid, threads0)
            if flows is not None:
                _flows_phase(res, "first answering", metrics_port, flows)
            wait_quiet(lambda: sum(cpu_of(v) for v in roles.values()), quiet=IDLE_QUIET)
            res.cpu_first_idle = {k: cpu_of(v) - cpu0[k] for k, v in roles.items()}
            res.rss_first_idle = {k: rss_of(v) for k, v in roles.items()}
            sender.join(30)
            sessions[-1].connect(timeout=120)
            first = sessions[-1:]
        cpu0 = {k: cpu_of(v) for k, v in roles.items()}
        cpu0_workers = {k: cpu_of(v) for k, v in per_worker.items()}
        threads0 = thread_cpu(proc.pid)
        named = [r for r in profile_process.split(",") if r in per_worker]
        spied = per_worker[named[0]][0] if named else proc.pid
        spy = SessionProfile(profile, spied, profile_mode) if profile else None
        if spy is not None:
            spy.start()
        t0, sender = start_sending(first, t.per_router[n - len(first) :])
        if flows is not None and not late:
            flows.start()
        done = watch.until_answering(sessions, n, timeout, t0, loading=len(first))
        if done is None:
            res.note = f"not answering within {timeout:.0f} s"
            return res
        if flows is not None:
            _flows_phase(res, "answering", metrics_port, flows)
        res.seconds = done - t0
        res.cpu = {k: cpu_of(v) - cpu0[k] for k, v in roles.items()}
        res.cpu_workers = {k: cpu_of(v) - cpu0_workers[k] for k, v in per_worker.items()}
        res.rss = {k: rss_of(v) for k, v in roles.items()}
        threads_at = thread_cpu(proc.pid)  # beside res.cpu (named once idle)
        if spy is not None:
            spy.mark("answering")
        wait_quiet(lambda: sum(cpu_of(v) for v in roles.values()), quiet=IDLE_QUIET)
        res.cpu_idle = {k: cpu_of(v) - cpu0[k] for k, v in roles.items()}
        threads_idle = thread_cpu(proc.pid)
        if flows is not None:
            _flows_phase(res, "idle", metrics_port, flows)
            res.flows["stream"] = flows.stop()
        if late or flows is not None:
            names = thread_names(proc.pid)
            res.threads = _by_thread(threads0, threads_at, names, res.cpu["service"])
            res.threads_idle = _by_thread(threads0, threads_idle, names, res.cpu_idle["service"])
        if spy is not None:
            spy.mark("idle")
            spy.stop()
        res.rss_idle = {k: rss_of(v) for k, v in roles.items()}
        sender.join(30)
        a = stub.Resolve(
            pb.Flow(exporter="127.0.2.1", src_addr="1.1.1.1", dst_addr="8.8.8.8"), timeout=10
        )
        res.note = f"8.8.8.8 from router 1: origin AS {a.dst_origin_as}"
        return res
    finally:
        if flows is not None:
            flows.stop()
        for s in sessions:
            s.close()
        channel.close()
        stop_process(proc, timeout=60)


def _flows_phase(res: Result, phase: str, metrics_port: int, flows: FlowStream) -> None:
    """The view builds and the flow stream's figures so far, as ``phase``."""
    res.flows[phase] = {**view_metrics(metrics_port), **flows.figures()}


def _by_thread(
    before: dict[int, tuple[str, float, float]],
    now: dict[int, tuple[str, float, float]],
    names: dict[int, str],
    service_cpu: float,
) -> list[dict]:
    """The service's CPU-s by thread between two ``thread_cpu`` readings
    (largest first, 0.05 CPU-s and up), plus a row for what its processes spent
    beyond their live threads' sum: threads that ended meanwhile (their CPU
    stays in the process's but leaves /proc/PID/task) and other processes."""
    rows = []
    for tid, (comm, u, s) in now.items():
        _, u0, s0 = before.get(tid, (comm, 0.0, 0.0))
        if u + s - u0 - s0 >= 0.05:
            name = names.get(tid, comm)
            rows.append({"tid": tid, "name": name, "cpu": round(u + s - u0 - s0, 2)})
    rows.sort(key=lambda r: -r["cpu"])
    gone = round(service_cpu - sum(t["cpu"] for t in rows), 2)
    return [*rows, {"tid": 0, "name": "(ended threads, small ones, other processes)", "cpu": gone}]


@dataclass
class _Watch:
    """Polls a loading service until its routers answer (or it fails)."""

    proc: subprocess.Popen
    stub: object
    pb: object
    load: Load
    probe_addr: str
    roles: dict[str, list[int]]
    workdir: Path

    def until_answering(
        self, sessions: list, n: int, timeout: float, t0: float | None = None, loading: int = 0
    ) -> float | None:
        """The monotonic time routers 1..n answer, or None after ``timeout``;
        ``loading``: how many of them (the last) load now (0: all), the share
        of their tables held setting the poll rate."""
        import grpc

        t0 = time.monotonic() if t0 is None else t0
        cpu0 = {k: cpu_of(v) for k, v in self.roles.items()}
        deadline = time.monotonic() + timeout
        next_log = time.monotonic() + 15
        while time.monotonic() < deadline:
            if time.monotonic() > next_log:
                next_log += 15
                log(
                    f"vs-pmacct: service loading, {time.monotonic() - t0:.0f} s, CPU "
                    + ", ".join(f"{k} {cpu_of(v) - cpu0[k]:.1f}" for k, v in self.roles.items())
                )
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"service exited ({self.proc.returncode}); see {self.workdir / 'service.log'}"
                )
            bad = [f"{s.local_address}: {s.error}" for s in sessions if s.error]
            if bad:
                raise RuntimeError(f"session lost: {bad}")
            share = 0.0
            with contextlib.suppress(grpc.RpcError):
                loaded, share = _service_loaded(
                    self.stub, self.pb, self.load, self.probe_addr, n, loading or n
                )
                if loaded:
                    return time.monotonic()
            # Every poll is a gRPC call the service answers (~1-2 ms of its CPU
            # over its gRPC threads): 20 a second cost it 0.2-0.3 CPU-s a table.
            # Far from the end, 4 a second; near it (or with no count to go
            # by), 20 a second, so answering is timed as finely as before.
            # The share is of the loading routers' tables: over all routers,
            # a late router after 16 started at 16/17 and was polled 20 a
            # second from its first UPDATE.
            time.sleep(0.05 if share >= POLL_FINE_FROM or not share else 0.25)
        return None


def _service_loaded(
    stub, pb, load: Load, probe_addr: str, n: int, loading: int
) -> tuple[bool, float]:
    """(answering, the share of their expected prefixes the last ``loading``
    of routers 1..n hold so far)."""
    reply = stub.ListRouters(pb.ListRoutersRequest(), timeout=5)
    ok = 0
    want_all = sum(w for w in load.expected.values() if w) * loading
    names = {f"r{k}" for k in range(n - loading + 1, n + 1)}
    have = sum(
        f.prefixes
        for r in reply.routers
        if r.name in names
        for f in r.families
        if load.expected.get(f.family)
    )
    share = have / want_all if want_all else 0.0
    for r in reply.routers:
        fams = {f.family: f for f in r.families}
        good = all(
            (f := fams.get(name)) is not None and f.converged and (not want or f.prefixes == want)
            for name, want in load.expected.items()
        )
        ok += good
    if ok < n:
        return False, share
    for k in range(1, n + 1):
        a = stub.Resolve(
            pb.Flow(exporter=f"127.0.2.{k}", src_addr="1.1.1.1", dst_addr=probe_addr), timeout=5
        )
        if a.HasField("error") or not a.dst_origin_as:
            return False, share
    return True, share
