"""Replicas on one machine: a BIRD route reflector and N ``attribution serve`` processes.

Each replica is a complete service (its own supervised ExaBGP, RIB, snapshot, gRPC
and metrics) on its own loopback address, 127.0.0.N; BIRD (Debian's ``bird2``), on
127.0.15.1, holds an iBGP session with each replica and announces the same table to
all, as a route reflector in front of the routers would. Used by
tests/attribution/test_replicas.py (a few thousand synthetic routes) and
``python -m bench.replicas`` (the real table from ../shared/data).

Only loopback addresses are used; every process is started in its own session so a
``kill -9`` takes the replica's ExaBGP with it, as a pod's death would.
"""

from __future__ import annotations

import gzip
import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ribd.exabgp import die_with_parent
from ribd.speaker import free_port

ROOT = Path(__file__).resolve().parents[1]
REFLECTOR = "127.0.15.1"
LOCAL_AS = 64500
EXPORTER = "127.0.1.1"  # the flows' exporter: mapped to the reflector's RIB
SHARED_TABLE = (
    ROOT.parent / "shared" / "data" / "bgp" / "pch-as3856-fulltable-2015.exabgp5.jsonl.gz"
)


@dataclass(frozen=True, slots=True)
class Route:
    prefix: str
    as_path: tuple[int, ...]
    communities: tuple[tuple[int, int], ...] = ()


def synthetic_table(count: int) -> list[Route]:
    """``count`` IPv4 routes (/24s and /16s, paths of 1-4 ASes) and a tenth as many IPv6."""
    routes = []
    for i in range(count):
        a, b = divmod(i, 250)
        prefix = f"{20 + a % 100}.{b}.{a // 100}.0/24" if i % 10 else f"{120 + a % 100}.{b}.0.0/16"
        path = tuple(65001 + (i * k) % 997 for k in range(1, 2 + i % 4))
        routes.append(Route(prefix, path, ((65001, i % 50),) if i % 3 == 0 else ()))
    for i in range(count // 10):
        path = (65001, 66000 + i % 500)
        routes.append(Route(f"2001:db8:{i // 256:x}:{i % 256:x}00::/56", path))
    return routes


def real_table(path: Path = SHARED_TABLE) -> list[Route]:
    """The real 2015 table's IPv4 routes (AS_SETs flattened into the path: BIRD's
    static routes carry sequences only; the origin and peer AS stay the same)."""
    import orjson

    routes: dict[str, Route] = {}
    with gzip.open(path, "rb") as f:
        for line in f:
            msg = orjson.loads(line)
            update = msg.get("neighbor", {}).get("message", {}).get("update", {})
            attrs = update.get("attribute", {})
            segments = attrs.get("as-path", {})
            path_ = tuple(
                a for _, seg in sorted(segments.items(), key=lambda kv: int(kv[0]))
                for a in seg.get("value", [])
            )  # fmt: skip
            for _family, hops in update.get("announce", {}).get("ipv4 unicast", {}).items():
                for nlri in hops:
                    prefix = nlri["nlri"] if isinstance(nlri, dict) else nlri
                    routes[prefix] = Route(prefix, path_)
            for _family, prefixes in update.get("withdraw", {}).items():
                for nlri in prefixes:
                    routes.pop(nlri["nlri"] if isinstance(nlri, dict) else nlri, None)
    return list(routes.values())


def bird_config(routes: Iterable[Route], neighbors: Iterable[tuple[str, int]]) -> str:
    """BIRD 2: the table as static routes with their AS paths, exported over iBGP to
    each replica (a route-reflector client), next hop self."""
    lines = [f"router id {REFLECTOR};", "protocol device {}"]
    v4, v6 = ["protocol static st4 {", "  ipv4;"], ["protocol static st6 {", "  ipv6;"]
    for r in routes:
        ops = [f"bgp_path.prepend({a});" for a in reversed(r.as_path)]
        ops += [f"bgp_community.add(({a},{b}));" for a, b in r.communities]
        text = f"  route {r.prefix} blackhole {{ {' '.join(ops)} }};"
        (v6 if ":" in r.prefix else v4).append(text)
    lines += [*v4, "}", *v6, "}"]
    for n, (address, port) in enumerate(neighbors):
        lines += [
            f"protocol bgp replica{n} {{",
            f"  local {REFLECTOR} as {LOCAL_AS};",
            f"  neighbor {address} port {port} as {LOCAL_AS};",
            # listen on the reflector's own address only: BIRD's default is 0.0.0.0:179,
            # which takes port 179 from every other test on the machine
            "  strict bind yes;",
            "  rr client;",
            "  connect retry time 1;",
            "  error wait time 1, 5;",
            "  ipv4 { export all; import none; next hop self; };",
            "  ipv6 { export all; import none; next hop address 2001:db8::10; };",
            "}",
        ]
    return "\n".join(lines) + "\n"


def bird_available() -> bool:
    return shutil.which("bird") is not None or Path("/usr/sbin/bird").exists()


class RouteReflector:
    """A BIRD process announcing ``routes`` to every replica."""

    def __init__(self, work: Path, routes: list[Route], neighbors: list[tuple[str, int]]):
        self.work = work
        self.routes = routes
        self.neighbors = neighbors
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RouteReflector:
        conf = self.work / "bird.conf"
        conf.write_text(bird_config(self.routes, self.neighbors))
        bird = shutil.which("bird") or "/usr/sbin/bird"
        self.proc = subprocess.Popen(
            [bird, "-f", "-c", str(conf), "-s", str(self.work / "bird.ctl")],
            stdout=subprocess.DEVNULL,
            stderr=open(self.work / "bird.log", "wb"),  # noqa: SIM115 (closed with the process)
            start_new_session=True,
            # Dies with us: a test run killed mid-way left BIRD holding its
            # address's port 179, and the next run's reflector never peered.
            preexec_fn=die_with_parent(os.getpid()),
        )
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@dataclass
class Replica:
    """One ``attribution serve`` on 127.0.0.N with its own ports, work dir and snapshot."""

    n: int
    work: Path
    bgp_port: int = 0
    grpc_port: int = 0
    metrics_port: int = 0
    snapshot_interval: int = 10
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    starts: int = 0

    def __post_init__(self) -> None:
        self.address = f"127.0.0.{self.n}"
        self.work.mkdir(parents=True, exist_ok=True)
        self.bgp_port = self.bgp_port or free_port(self.address)
        self.grpc_port = self.grpc_port or free_port(self.address)
        self.metrics_port = self.metrics_port or free_port(self.address)
        self.config = self.work / "attribution.toml"
        self.snapshot = self.work / "rib.snapshot"
        self.config.write_text(
            f"""
[service]
local_as = {LOCAL_AS}
router_id = "{self.address}"
grpc_listen = "{self.target}"
snapshot_path = "{self.snapshot}"
snapshot_interval = {self.snapshot_interval}
ready_timeout = 600

[metrics]
listen = "{self.address}:{self.metrics_port}"

[bgp]
listen_address = "{self.address}"
listen_port = {self.bgp_port}
work_dir = "{self.work}/exabgp"
# BIRD sends End-of-RIB: readiness waits for it. A quiet time would let a table that is
# slow to start arriving (a busy machine) count as converged early, partly loaded.
converge_quiet_time = 0
restart_hold_time = 300

[[routers]]
name = "reflector"
neighbor = "{REFLECTOR}"
exporters = ["{EXPORTER}"]
"""
        )

    @property
    def target(self) -> str:
        return f"{self.address}:{self.grpc_port}"

    @property
    def log(self) -> Path:
        return self.work / f"serve-{self.starts}.log"

    def start(self) -> Replica:
        self.starts += 1
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "attribution.cli", "serve", "--config", str(self.config)],
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "wb"),  # noqa: SIM115 (closed with the process)
            start_new_session=True,  # kill -9 of the group takes ExaBGP and its relay too
        )
        return self

    def kill9(self) -> None:
        """What a crash or an OOM kill does: no snapshot written, no goodbye."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)

    def serving(self) -> bool:
        """gRPC health says SERVING (its RIB has converged)."""
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        try:
            with grpc.insecure_channel(self.target) as ch:
                reply = health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(), timeout=2
                )
        except grpc.RpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    def metric(self, name: str, **labels: str) -> float:
        """One sample's value from the Prometheus endpoint (0 when absent or down)."""
        from prometheus_client.parser import text_string_to_metric_families

        url = f"http://{self.address}:{self.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                text = reply.read().decode()
        except OSError:
            return 0.0
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    total += sample.value
        return total

    def batches_answered(self) -> float:
        return self.metric("attribution_rpc_requests_total", rpc="ResolveStream")


def flows_for(routes: list[Route], count: int) -> Iterator[dict]:
    """Flows towards and from addresses inside the table's IPv4 prefixes (deterministic)."""
    v4 = [r for r in routes if ":" not in r.prefix]
    for i in range(count):
        dst = ipaddress.ip_network(v4[(i * 7919) % len(v4)].prefix)
        src = ipaddress.ip_network(v4[(i * 104729 + 13) % len(v4)].prefix)
        yield {
            "exporter": EXPORTER,
            "src_addr": str(src.network_address + 1 + i % 200),
            "dst_addr": str(dst.network_address + 1 + i % 250),
            "in_if": i % 64,
        }


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)
