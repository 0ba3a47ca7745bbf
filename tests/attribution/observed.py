"""A real `attribution serve` process for observability tests: its config, its
log output (read back line by line), its /metrics over HTTP and its gRPC health.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request

import grpc
import orjson
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ribd.speaker import free_port, wait_until

DASHBOARD = os.path.join(
    os.path.dirname(__file__), "..", "..", "deploy", "grafana", "attribution.json"
)
# Metrics the dashboard queries that are served only with TLS on.
TLS_ONLY_METRICS = {
    "attribution_tls_certificate_expiry_timestamp_seconds",
    "attribution_tls_reloads_total",
}
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def router_block(name: str, neighbor: str, exporter: str, local_as: int = 64500) -> str:
    return (
        f'[[routers]]\nname = "{name}"\nneighbor = "{neighbor}"\npeer_as = {local_as}\n'
        f'exporters = ["{exporter}"]\n'
    )


class ServedProcess:
    """`python -m attribution.cli serve` on free loopback ports, logs to a file."""

    def __init__(
        self,
        routers: str,
        *,
        service: str = "",
        bgp: str = "",
        log_args: tuple[str, ...] = ("--log-format", "json"),
        metrics_port: int | None = None,
        bgp_port: int | None = None,
        metrics: str = "",
    ) -> None:
        self.dir = tempfile.mkdtemp(prefix="attribution-observe-", dir="/tmp")
        # Tests read the log after stop(): the directory goes when pytest exits
        # (500 of them, with their logs, were left in /tmp by stop 29).
        atexit.register(shutil.rmtree, self.dir, True)
        self.grpc_port, self.bgp_port = free_port(), bgp_port or free_port()
        self.metrics_port = metrics_port or free_port()
        self.config_path = os.path.join(self.dir, "attribution.toml")
        with open(self.config_path, "w") as f:
            f.write(
                '[service]\nlocal_as = 64500\nrouter_id = "127.0.0.1"\n'
                f'grpc_listen = "127.0.0.1:{self.grpc_port}"\n{service}\n'
                f'[metrics]\nlisten = "127.0.0.1:{self.metrics_port}"\n{metrics}\n'
                '[bgp]\nlisten_address = "127.0.0.1"\n'
                f'listen_port = {self.bgp_port}\nwork_dir = "{self.dir}/work"\n{bgp}\n'
                f"{routers}"
            )
        self.log_path = os.path.join(self.dir, "service.log")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "attribution.cli",
                *log_args,
                "serve",
                "--config",
                self.config_path,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")
        self.health_stub = health_pb2_grpc.HealthStub(self.channel)

    # -- what it says --

    def log_text(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_records(self) -> list[dict]:
        """Every log line, parsed: JSON logs must be one object per line."""
        return [orjson.loads(line) for line in self.log_text().splitlines() if line.strip()]

    def events(self, event: str) -> list[dict]:
        return [r for r in self.log_records() if r.get("event") == event]

    def health(self, service: str = "") -> int | None:
        try:
            return self.health_stub.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=5
            ).status
        except grpc.RpcError:
            return None  # not listening yet

    def scrape(self) -> str:
        return scrape_text(self.metrics_port)

    def metrics(self) -> dict[tuple[str, tuple], float]:
        """{(sample name, sorted labels): value} from a real scrape."""
        return samples(self.scrape())

    def scraped(self) -> dict[tuple[str, tuple], float] | None:
        """``metrics()``, or None while the endpoint does not answer (starting)."""
        try:
            return self.metrics()
        except OSError:
            return None

    def exabgp_pid(self) -> int | None:
        """The supervised ExaBGP: our child whose command line names exabgp."""
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read()
            except (OSError, ValueError, IndexError):
                continue
            if ppid == self.proc.pid and b"exabgp" in cmd and b"ribd.relay" not in cmd:
                return int(entry)
        return None

    def wait_health(self, status: int, timeout: float = 60.0) -> None:
        wait_until(lambda: self.health() == status, timeout, 0.1, f"health {status}")

    # -- lifetime --

    def stop(self) -> int:
        self.channel.close()
        stop_process(self.proc)
        self._log.close()
        return self.proc.returncode


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM, 30 s to exit (a service writes its snapshot), then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def scrape_text(port: int) -> str:
    """What a scrape of ``/metrics`` on 127.0.0.1:``port`` over HTTP reads."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return answer.read().decode()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a scrape's text."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def metric(values: dict, name: str, **labels: str) -> float:
    return values[(name, tuple(sorted(labels.items())))]


def registry_sample(service: object, name: str) -> float | None:
    """One sample of an in-process service's registry, as a scrape would read it
    (None: no such sample)."""
    text = generate_latest(service.registry).decode()  # type: ignore[attr-defined]
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    return None
