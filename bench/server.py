"""A real ``attribution serve`` process for the gRPC benchmarks, fed like production.

The service runs with ``[bgp] exabgp = "external"``: it listens on a feed
socket in a temporary directory, and ``bench.feeder`` plays the relay that an
operator's ExaBGP would run. One router is configured, the full table's
neighbor 206.220.231.55, with exporter 127.0.1.1. The gRPC port is picked
here (a free loopback port), since ``grpc_listen = "127.0.0.1:0"`` would not
tell us which one the server got.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import grpc

from bench.common import FULL_TABLE, FULL_TABLE_PEER, V4, cpu_seconds, log, rss_bytes
from bench.feeder import MARKER_NEIGHBOR
from ribd.speaker import free_port

EXPORTER = "127.0.1.1"
ROUTER = "pch"


def write_config(
    workdir: Path, port: int, snapshot: bool = False, extra_neighbors: Sequence[str] = ()
) -> Path:
    snap = f'snapshot_path = "{workdir / "rib.snapshot"}"\nsnapshot_interval = 3600\n'
    text = f"""
[service]
local_as = 64500
router_id = "127.0.0.1"
grpc_listen = "127.0.0.1:{port}"
{snap if snapshot else ""}
[bgp]
exabgp = "external"
feed_socket = "{workdir / "feed.sock"}"
work_dir = "{workdir}"

[[routers]]
name = "{ROUTER}"
neighbor = "{FULL_TABLE_PEER}"
exporters = ["{EXPORTER}"]

# The feeder's marker line (bench.feeder): the service takes lines only from
# configured routers.
[[routers]]
name = "marker"
neighbor = "{MARKER_NEIGHBOR}"
"""
    # More routers without exporters (bench.churn's recorded peers): their
    # lines are applied, not refused as from unknown neighbors.
    for i, neighbor in enumerate(extra_neighbors):
        text += f'\n[[routers]]\nname = "peer{i}"\nneighbor = "{neighbor}"\n'
    path = workdir / "attribution.toml"
    path.write_text(text)
    return path


class Server:
    """One ``attribution serve`` child process and the ways to drive it."""

    def __init__(
        self, workdir: Path, snapshot: bool = False, extra_neighbors: Sequence[str] = ()
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.config = write_config(workdir, self.port, snapshot, extra_neighbors)
        self.target = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.spawned_at = 0.0
        self.log_path = workdir / "server.log"
        self._channel: grpc.Channel | None = None
        self._stub = None
        self._tokens = 0.0

    # -- lifetime --

    def start(self) -> None:
        from attribution.client import channel
        from attribution.v1 import attribution_pb2_grpc as pb_grpc

        self.spawned_at = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "attribution.cli", "serve", "--config", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.log_path, "ab"),  # noqa: SIM115 (the child owns it)
        )
        # Our client's channel (its reconnect backoff, 0.1-2 s): with gRPC's default
        # one (1 s growing) the bench measured its own waits, not the service's start.
        self._channel = channel(self.target)
        self._stub = pb_grpc.AttributionStub(self._channel)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, timeout: float = 60.0) -> float:
        """SIGTERM (the service writes its snapshot on the way out); seconds to exit."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return time.monotonic() - t0

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state --

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def list_routers(self, timeout: float = 5.0):
        from attribution.v1 import attribution_pb2 as pb

        return self._stub.ListRouters(pb.ListRoutersRequest(), timeout=timeout)  # type: ignore[union-attr]

    def prefixes(self, reply=None) -> tuple[int, int]:
        """(current, stale) IPv4 prefixes of the configured router."""
        reply = reply or self.list_routers()
        for r in reply.routers:
            if r.neighbor == FULL_TABLE_PEER:
                for f in r.families:
                    if f.family == V4:
                        return f.prefixes, f.stale_prefixes
        return 0, 0

    def marker(self, reply) -> float:
        for r in reply.routers:
            if r.neighbor == MARKER_NEIGHBOR:
                return r.last_update
        return 0.0

    def resolve_ok(self) -> bool:
        """One real answer: 8.8.8.8 is Google's (AS15169) in the 2015 table."""
        from attribution.v1 import attribution_pb2 as pb

        a = self._stub.Resolve(  # type: ignore[union-attr]
            pb.Flow(exporter=EXPORTER, src_addr="1.1.1.1", dst_addr="8.8.8.8"), timeout=5
        )
        return a.dst_origin_as == 15169

    def wait_serving(self, timeout: float = 60.0) -> float:
        """Until gRPC answers ListRouters; returns the monotonic time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(grpc.RpcError):
                self.list_routers(timeout=1.0)
                return time.monotonic()
            time.sleep(0.02)
        raise TimeoutError(f"server did not answer in {timeout}s; see {self.log_path}")

    def wait_table(self, expected: int, timeout: float = 180.0, poll: float = 0.05) -> float:
        """Until ListRouters shows ``expected`` prefixes (current or stale) and a
        Resolve answers from them; returns the monotonic time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(grpc.RpcError):
                current, stale = self.prefixes()
                if max(current, stale) >= expected and self.resolve_ok():
                    return time.monotonic()
            time.sleep(poll)
        raise TimeoutError(f"table not loaded in {timeout}s; see {self.log_path}")

    def wait_marker(self, token: float, timeout: float = 300.0, poll: float = 0.02) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(grpc.RpcError):
                if self.marker(self.list_routers()) == token:
                    return time.monotonic()
            time.sleep(poll)
        raise TimeoutError(f"feed marker {token} not applied in {timeout}s; see {self.log_path}")

    def settle(self, idle_share: float = 0.05, timeout: float = 60.0) -> float:
        """Ask for an answer, then wait until the server is idle; seconds waited.

        The first lookups after a load make the daemon compile its lookup
        views in the maintenance thread (seconds of CPU for a full table,
        holding the GIL most of the time); measuring during that build would
        measure the build. Idle = under ``idle_share`` of a core for 0.5 s.
        """
        t0 = time.monotonic()
        self.resolve_ok()
        while time.monotonic() - t0 < timeout:
            c0 = self.cpu()
            time.sleep(0.5)
            if self.cpu() - c0 < 0.5 * idle_share:
                break
        return time.monotonic() - t0

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log_path}")

    # -- feeding --

    def feeder(
        self,
        path: Path = FULL_TABLE,
        *,
        remap_all_to: str | None = None,
        state_up: str | None = None,
        repeat: int = 1,
        wait_go: bool = True,
        pace: float = 0.0,
    ) -> tuple[subprocess.Popen, float]:
        """Start a feeder process (ready, waiting for ``go`` unless not
        ``wait_go``); returns it and the marker token it will end with."""
        self._tokens += 1.0
        token = 1000.0 + self._tokens
        cmd = [
            sys.executable,
            "-m",
            "bench.feeder",
            "--socket",
            str(self.workdir / "feed.sock"),
            "--file",
            str(path),
            "--token",
            str(token),
            "--repeat",
            str(repeat),
        ]
        if remap_all_to:
            cmd += ["--remap-all-to", remap_all_to]
        if state_up:
            cmd += ["--state-up", state_up]
        if not wait_go:
            cmd.append("--no-wait")
        if pace:
            cmd += ["--pace", str(pace)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if wait_go:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("feeder failed to start")
        return proc, token

    @staticmethod
    def finish_feeder(proc: subprocess.Popen, stop: bool = False, timeout: float = 60) -> dict:
        """Wait for a feeder (SIGTERM it first if ``stop``); its JSON report."""
        if stop and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=timeout)
        lines = [x for x in (out or "").splitlines() if x.startswith("{")]
        return json.loads(lines[-1]) if lines else {}

    @staticmethod
    def go(proc: subprocess.Popen) -> float:
        assert proc.stdin is not None
        t = time.monotonic()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        return t

    def load_full_table(self, expected: int) -> float:
        """Push the full table through the feed socket; seconds until served."""
        self.wait_serving()
        while not os.path.exists(self.workdir / "feed.sock"):
            time.sleep(0.02)
        proc, token = self.feeder(state_up=FULL_TABLE_PEER)
        t0 = self.go(proc)
        self.wait_marker(token)
        t1 = self.wait_table(expected)
        self.finish_feeder(proc)
        log(f"server: full table loaded in {t1 - t0:.2f} s")
        return t1 - t0
