"""Processes measured from /proc for the session benchmarks (``bench.vs_pmacct``,
``bench.restart_bgp``): a service's process tree by role (ExaBGP, relay,
service; per ExaBGP worker), their CPU-seconds and RSS, and stopping a tree
that ExaBGP's API process has partly left."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from bench.common import REPO, cpu_seconds, rss_bytes


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


def wait_quiet(cpu, quiet: float = 2.0, share: float = 0.2, timeout: float = 90.0) -> None:
    """Until ``cpu()`` grows by less than ``share`` of a core over ``quiet`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        c0 = cpu()
        time.sleep(quiet)
        if cpu() - c0 < share * quiet:
            return


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


def worker_roles(roles: dict[str, list[int]]) -> dict[str, list[int]]:
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


def tree_env(code: Path | None) -> dict[str, str]:
    """The environment that makes a child import ``ribd`` and ``attribution`` from
    the checkout ``code`` (None: this one), for benches that alternate trees
    (``--code``); run it with ``cwd=code`` too, since ``-m`` puts the cwd first."""
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code) + (
            os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
        )
    return env


def codes(arg: str) -> list[Path]:
    """The checkouts a ``--code`` argument names, comma-separated (this one if none)."""
    return [Path(c).resolve() for c in arg.split(",") if c] or [REPO]
