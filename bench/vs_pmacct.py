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

``python -m bench.vs_pmacct [--routers 1,2,4] [--source real,synth,real-varied] [--workers 1,2]
[--late]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import bgpsend
from bench.common import REPO, Row, at_most, bench_main, cpu_seconds, log, rss_bytes
from bench.ingest_session_profile import MODES, SessionProfile

TARGET_SHARE = 0.25  # relay + service <= 25% of ExaBGP's CPU
TARGET_RATIO = 8.0  # two routers' tables in <= 8x pmacct's time
REAL_PREFIXES = 577_703  # after the table's own withdrawals (bench.common)
POLL = 0.02


def nfacctd_path() -> str | None:
    return shutil.which("nfacctd") or (
        "/usr/sbin/nfacctd" if os.path.exists("/usr/sbin/nfacctd") else None
    )


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/children") as f:
                    kids = [int(x) for x in f.read().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for p in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(p)
    return total


def rss_of(pids: list[int]) -> int:
    total = 0
    for p in pids:
        with contextlib.suppress(OSError):
            total += rss_bytes(p)
    return total


def stop_process(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM the leader (it stops its own children), then SIGKILL whatever is
    left of it: its process group and every descendant seen before the stop
    (ExaBGP's API process leaves the group)."""
    family = descendants(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    for pid in family:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


# -- what to send ----------------------------------------------------------------


def _ipv4_nlri(msg: bytes) -> list[str]:
    _at, end = bgpsend._attributes_span(msg)
    data = msg[end:]
    out = []
    i = 0
    while i < len(data):
        n = data[i]
        size = (n + 7) // 8
        raw = data[i + 1 : i + 1 + size] + bytes(4 - size)
        out.append(f"{socket.inet_ntoa(raw)}/{n}")
        i += 1 + size
    return out


def last_unique_prefix(updates: list[bytes]) -> str:
    """The last IPv4 prefix of the table announced only once (classic NLRI field)."""
    seen: dict[str, int] = {}
    for m in updates:
        for p in _ipv4_nlri(m):
            seen[p] = seen.get(p, 0) + 1
    for m in reversed(updates):
        for p in reversed(_ipv4_nlri(m)):
            if seen[p] == 1:
                return p
    raise ValueError("no IPv4 prefix is announced only once")


@dataclass
class Load:
    name: str
    tables: bgpsend.Tables
    probe: str  # the last prefix announced once
    expected: dict[str, int]  # family -> prefixes per router in the end


def make_load(source: str, routers: int, quick: bool) -> Load:
    if source == "real":
        t = bgpsend.mrt_tables(routers, limit=20_000 if quick else None)
        expected = {"ipv4 unicast": 0 if quick else REAL_PREFIXES}
        return Load(
            "real 2015 table (577,703 IPv4)", t, last_unique_prefix(t.per_router[0]), expected
        )
    if source == "real-varied":
        from bench import realistic

        model = realistic.cached_model("real", Path(tempfile.gettempdir()))
        if quick:
            model = realistic.Model(f"{model.name}/20", model.groups[::20])
        t = bgpsend.realistic_tables(model, routers)
        return Load(
            "real 2015 table, routers varied as bench.realistic derives them "
            f"({t.prefixes.get('ipv4 unicast', 0):,} IPv4)",
            t,
            last_unique_prefix(t.per_router[0]),
            dict(t.prefixes),
        )
    v4, v6 = (100_000, 25_000) if quick else (None, None)
    t = bgpsend.synth_tables(routers, v4, v6)
    return Load(
        f"synthetic today-sized ({t.prefixes.get('ipv4 unicast', 0):,} IPv4 + "
        f"{t.prefixes.get('ipv6 unicast', 0):,} IPv6)",
        t,
        last_unique_prefix(t.per_router[0]),
        dict(t.prefixes),
    )


# -- pmacct ------------------------------------------------------------------------


@dataclass
class Result:
    receiver: str
    routers: int
    workers: int = 1
    seconds: float | None = None
    cpu_workers: dict[str, float] = field(default_factory=dict)  # "exabgp 1": CPU-s
    cpu: dict[str, float] = field(default_factory=dict)  # at answering
    cpu_idle: dict[str, float] = field(default_factory=dict)  # once quiet
    rss: dict[str, int] = field(default_factory=dict)  # at answering
    rss_idle: dict[str, int] = field(default_factory=dict)
    cpu_first: dict[str, float] = field(default_factory=dict)  # --late: routers 1..n-1
    cpu_first_idle: dict[str, float] = field(default_factory=dict)
    note: str = ""
    code: str = ""  # the checkout the service ran from (--code), by its directory name


class LookingGlass:
    """pmacct's BGP Looking Glass (ZeroMQ REQ/REP, docs/LOOKING_GLASS_FORMAT)."""

    def __init__(self, port: int) -> None:
        import zmq

        self.zmq = zmq
        self.ctx = zmq.Context()
        self.port = port
        self.sock = None

    def _socket(self):
        if self.sock is None:
            self.sock = self.ctx.socket(self.zmq.REQ)
            self.sock.setsockopt(self.zmq.LINGER, 0)
            self.sock.setsockopt(self.zmq.RCVTIMEO, 2000)
            self.sock.setsockopt(self.zmq.SNDTIMEO, 2000)
            self.sock.connect(f"tcp://127.0.0.1:{self.port}")
        return self.sock

    def query(self, head: dict, data: dict | None = None) -> list[dict]:
        s = self._socket()
        try:
            if data is None:
                s.send(json.dumps(head).encode())
            else:
                s.send(json.dumps(head).encode(), self.zmq.SNDMORE)
                s.send(json.dumps(data).encode())
            reply = json.loads(s.recv())
            return [json.loads(s.recv()) for _ in range(int(reply.get("results", 0)))]
        except self.zmq.ZMQError:
            s.close()
            self.sock = None  # a REQ socket that missed a reply cannot send again
            raise

    def lookup(self, prefix: str, peer: str) -> list[dict]:
        return self.query(
            {"query_type": 1, "queries": 1}, {"ip_prefix": prefix, "peer_ip_src": peer}
        )

    def peers(self) -> list[dict]:
        return self.query({"query_type": 2, "queries": 1})

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.ctx.term()


def run_pmacct(load: Load, workdir: Path, timeout: float) -> Result:
    n = len(load.tables.per_router)
    res = Result("pmacct nfacctd 1.7.7", n)
    bgp_port, lg_port, nf_port = free_port(), free_port(), free_port(socket.SOCK_DGRAM)
    conf = workdir / "nfacctd.conf"
    logfile = workdir / "nfacctd.log"
    conf.write_text(
        "\n".join(
            [
                "daemonize: false",
                f"logfile: {logfile}",
                "nfacctd_ip: 127.0.0.1",
                f"nfacctd_port: {nf_port}",
                "plugins: print",
                f"print_output_file: {workdir / 'flows.txt'}",
                "print_refresh_time: 3600",
                "aggregate: src_as, dst_as, peer_src_as, peer_dst_as",
                "nfacctd_as: bgp",
                "bgp_daemon: true",
                "bgp_daemon_ip: 127.0.0.1",
                f"bgp_daemon_port: {bgp_port}",
                "bgp_daemon_max_peers: 100",
                "bgp_daemon_lg: true",
                "bgp_daemon_lg_ip: 127.0.0.1",
                f"bgp_daemon_lg_port: {lg_port}",
                "",
            ]
        )
    )
    proc = subprocess.Popen(
        [nfacctd_path() or "nfacctd", "-f", str(conf)],
        stdout=open(workdir / "nfacctd.out", "wb"),  # noqa: SIM115 (the child owns it)
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lg = LookingGlass(lg_port)
    sessions: list[bgpsend.Session] = []
    try:
        t = load.tables
        sessions = [
            bgpsend.Session(
                ("127.0.0.1", bgp_port), bgpsend.router_address(k), t.asn, t.families, t.four_octet
            )
            for k in range(1, n + 1)
        ]
        for s in sessions:
            s.connect(timeout=30)
        pids = [proc.pid, *descendants(proc.pid)]
        cpu0 = cpu_of(pids)
        t0, sender = start_sending(sessions, t.per_router)
        pending = {s.local_address for s in sessions}
        deadline = time.monotonic() + timeout
        done = None
        while pending and time.monotonic() < deadline:
            bad = [f"{s.local_address}: {s.error}" for s in sessions if s.error]
            if bad:
                raise RuntimeError(f"session lost: {bad}")
            if proc.poll() is not None:
                raise RuntimeError(f"nfacctd exited ({proc.returncode}); see {logfile}")
            for peer in sorted(pending):
                with contextlib.suppress(Exception):
                    if any(r.get("ip_prefix") == load.probe for r in lg.lookup(load.probe, peer)):
                        pending.discard(peer)
            if pending:
                time.sleep(POLL)
            else:
                done = time.monotonic()
        if done is None:
            res.note = f"not answering for {sorted(pending)} within {timeout:.0f} s"
            return res
        res.seconds = done - t0
        pids = [proc.pid, *descendants(proc.pid)]
        res.cpu = {"nfacctd": cpu_of(pids) - cpu0}
        res.rss = {"nfacctd": rss_of(pids)}
        wait_quiet(lambda: cpu_of([proc.pid, *descendants(proc.pid)]))
        res.cpu_idle = {"nfacctd": cpu_of([proc.pid, *descendants(proc.pid)]) - cpu0}
        res.rss_idle = {"nfacctd": rss_of([proc.pid, *descendants(proc.pid)])}
        sender.join(30)
        # What pmacct made of the table: one well-known address per router.
        checks = []
        for s in sessions:
            with contextlib.suppress(Exception):
                r = lg.lookup("8.8.8.8/32", s.local_address)
                checks.append((r[0].get("as_path", "") if r else "no answer").split()[-1:])
        res.note = f"8.8.8.8 per router, last AS: {checks}; peers {len(lg.peers())}"
        return res
    finally:
        for s in sessions:
            s.close()
        lg.close()
        stop_process(proc)


def start_sending(
    sessions: list[bgpsend.Session], tables: list[list[bytes]]
) -> tuple[float, threading.Thread]:
    """Send in the background (a session's send blocks while its receiver is
    behind), so the receiver is polled meanwhile; the first UPDATE's time."""
    failed: list[BaseException] = []

    def send() -> None:
        try:
            bgpsend.send_parallel(sessions, tables)
        except BaseException as e:  # reported by the poll loops via the sessions
            failed.append(e)
            for s in sessions:
                s.error = s.error or f"send failed: {e}"

    thread = threading.Thread(target=send, name="vs-pmacct-send", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not all(s.first_update_at for s in sessions):
        if failed or time.monotonic() > deadline:
            raise RuntimeError(f"sending did not start: {failed}")
        time.sleep(0.001)
    return min(s.first_update_at for s in sessions), thread


def wait_quiet(cpu, quiet: float = 2.0, share: float = 0.2, timeout: float = 90.0) -> None:
    """Until ``cpu()`` grows by less than ``share`` of a core over ``quiet`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        c0 = cpu()
        time.sleep(quiet)
        if cpu() - c0 < share * quiet:
            return


# -- the service -------------------------------------------------------------------


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
) -> Path:
    asn = load.tables.asn
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

{bgp_section(workdir, bgp_port, workers, api_mode)}{routers}"""
    path = workdir / "attribution.toml"
    path.write_text(text)
    return path


def process_roles(service_pid: int) -> dict[str, list[int]]:
    roles: dict[str, list[int]] = {"service": [service_pid], "exabgp": [], "relay": []}
    for p in descendants(service_pid):
        line = cmdline(p)
        if "ribd.relay" in line:
            roles["relay"].append(p)
        elif "exabgp" in line:
            roles["exabgp"].append(p)
        else:
            roles["service"].append(p)
    return roles


def _worker_roles(roles: dict[str, list[int]]) -> dict[str, list[int]]:
    """ExaBGP and relay processes by worker: "exabgp 2" (its config is in
    worker-2/), "relay 2" (``--worker 2``); one worker: "exabgp 0"."""
    out: dict[str, list[int]] = {}
    for role in ("exabgp", "relay"):
        for p in roles[role]:
            words = cmdline(p).split()
            worker = "0"
            for i, w in enumerate(words):
                if w == "--worker" and i + 1 < len(words):
                    worker = words[i + 1]
                elif "/worker-" in w:
                    worker = w.split("/worker-")[1].split("/")[0]
            out.setdefault(f"{role} {worker}", []).append(p)
    return out


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
    The first phase's CPU is kept in ``cpu_first``."""
    import grpc

    from attribution.v1 import attribution_pb2 as pb
    from attribution.v1 import attribution_pb2_grpc as pb_grpc

    n = len(load.tables.per_router)
    res = Result("this service (ExaBGP + relay + service)", n, workers, code=code.name)
    bgp_port, grpc_port = free_port(), free_port()
    config = service_config(workdir, load, bgp_port, grpc_port, api_mode, workers)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(code) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
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
        per_worker = _worker_roles(roles)
        probe_addr = load.probe.split("/")[0]
        watch = _Watch(proc, stub, pb, load, probe_addr, roles, workdir)
        if late:
            cpu0 = {k: cpu_of(v) for k, v in roles.items()}
            _, sender = start_sending(first, t.per_router[: n - 1])
            if watch.until_answering(first, n - 1, timeout) is None:
                res.note = f"routers 1-{n - 1} not answering within {timeout:.0f} s"
                return res
            res.cpu_first = {k: cpu_of(v) - cpu0[k] for k, v in roles.items()}
            wait_quiet(lambda: sum(cpu_of(v) for v in roles.values()))
            res.cpu_first_idle = {k: cpu_of(v) - cpu0[k] for k, v in roles.items()}
            sender.join(30)
            sessions[-1].connect(timeout=120)
            first = sessions[-1:]
        cpu0 = {k: cpu_of(v) for k, v in roles.items()}
        cpu0_workers = {k: cpu_of(v) for k, v in per_worker.items()}
        named = [r for r in profile_process.split(",") if r in per_worker]
        spied = per_worker[named[0]][0] if named else proc.pid
        spy = SessionProfile(profile, spied, profile_mode) if profile else None
        if spy is not None:
            spy.start()
        t0, sender = start_sending(first, t.per_router[n - len(first) :])
        done = watch.until_answering(sessions, n, timeout, t0)
        if done is None:
            res.note = f"not answering within {timeout:.0f} s"
            return res
        res.seconds = done - t0
        res.cpu = {k: cpu_of(v) - cpu0[k] for k, v in roles.items()}
        res.cpu_workers = {k: cpu_of(v) - cpu0_workers[k] for k, v in per_worker.items()}
        res.rss = {k: rss_of(v) for k, v in roles.items()}
        if spy is not None:
            spy.mark("answering")
        wait_quiet(lambda: sum(cpu_of(v) for v in roles.values()))
        res.cpu_idle = {k: cpu_of(v) - cpu0[k] for k, v in roles.items()}
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
        for s in sessions:
            s.close()
        channel.close()
        stop_process(proc, timeout=60)


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
        self, sessions: list, n: int, timeout: float, t0: float | None = None
    ) -> float | None:
        """The monotonic time routers 1..n answer, or None after ``timeout``."""
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
                loaded, share = _service_loaded(self.stub, self.pb, self.load, self.probe_addr, n)
                if loaded:
                    return time.monotonic()
            # Every poll is a gRPC call the service answers (~1-2 ms of its CPU
            # over its gRPC threads): 20 a second cost it 0.2-0.3 CPU-s a table.
            # Far from the end, 4 a second; near it (or with no count to go
            # by), 20 a second, so answering is timed as finely as before.
            time.sleep(0.05 if share >= POLL_FINE_FROM or not share else 0.25)
        return None


def _service_loaded(stub, pb, load: Load, probe_addr: str, n: int) -> tuple[bool, float]:
    """(answering, the share of the expected prefixes the routers hold so far)."""
    reply = stub.ListRouters(pb.ListRoutersRequest(), timeout=5)
    ok = 0
    want_all = sum(w for w in load.expected.values() if w) * n
    have = sum(f.prefixes for r in reply.routers for f in r.families if load.expected.get(f.family))
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


# -- the run -----------------------------------------------------------------------


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
            load = make_load(source, n, args.quick)
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
                    )
                log(
                    f"vs-pmacct: service ({mode}, workers={workers}, code {code}) "
                    f"{us.seconds} s, "
                    f"CPU {us.cpu}, per worker {us.cpu_workers}, idle {us.cpu_idle} {us.note}"
                )
                rows += rows_late(load, us) if args.late else rows_for(load, pm, us)
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


def codes(arg: str) -> list[Path]:
    """The checkouts ``--code`` names (this one if none)."""
    return [Path(c).resolve() for c in arg.split(",") if c] or [REPO]


if __name__ == "__main__":
    sys.exit(bench_main("vs_pmacct", run, extra))
