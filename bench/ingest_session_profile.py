"""Whole-process profiles of the service while a table loads through real sessions.

In process, parse + apply of a real table costs ~1 CPU-s, but the service spends
2.5-3 CPU-s in a session before answering (BENCHMARKS, raw mode, eighth pass):
what is the rest? This module splits the service's CPU by thread (utime +
stime of each ``/proc/PID/task/TID``, named by ``py-spy dump``'s thread names,
C threads by their ``comm``) from the first UPDATE to answering and to idle,
and records one sampling profile over the same span:

- ``gil``: ``py-spy record --gil`` (Python stacks of whoever holds the GIL);
- ``native``: ``py-spy record --native --idle --threads`` (every thread's
  stacks with the C frames, idle ones included, so threads can be told apart);
- ``perf``: ``perf record -g`` on the process (C frames only on Python 3.11:
  the collector, malloc, dict work, recv, futex waits show by name);
- ``threads``: no sampler, the thread table alone (nothing slows the service).

``bench.vs_pmacct --profile DIR --profile-mode MODE`` uses it; the thread table
is written beside the profile as ``<name>.threads.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

MODES = ("gil", "native", "perf", "threads")
_TICKS = os.sysconf("SC_CLK_TCK")
_DUMP_THREAD = re.compile(r'^Thread (\d+) \([^)]*\): "(.*)"', re.M)


def thread_cpu(pid: int) -> dict[int, tuple[str, float, float]]:
    """Each thread of ``pid``: (its comm, its utime, its stime), in seconds."""
    out: dict[int, tuple[str, float, float]] = {}
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    text = f.read()
                comm = text[text.index("(") + 1 : text.rindex(")")]
                fields = text[text.rindex(")") + 2 :].split()
                out[int(tid)] = (comm, int(fields[11]) / _TICKS, int(fields[12]) / _TICKS)
    return out


def py_spy() -> str:
    return shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))


def thread_names(pid: int) -> dict[int, str]:
    """OS thread id -> Python thread name, from ``py-spy dump`` (empty if it fails)."""
    try:
        text = subprocess.run(
            [py_spy(), "dump", "--pid", str(pid)],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {int(tid): name for tid, name in _DUMP_THREAD.findall(text)}


def threads_since(pid: int, before: dict[int, tuple[str, float, float]]) -> list[dict]:
    """Each thread's CPU-s (and sys) since ``before`` (``thread_cpu``), named as
    py-spy names them where it can, largest first: which part of the service (the
    feed's thread, the maintenance's merges and view builds, gRPC) a span cost."""
    names = thread_names(pid)
    rows = []
    for tid, (comm, u, s) in thread_cpu(pid).items():
        _, u0, s0 = before.get(tid, (comm, 0.0, 0.0))
        cpu = round(u + s - u0 - s0, 2)
        if cpu >= 0.05:
            rows.append(
                {"tid": tid, "name": names.get(tid, comm), "cpu": cpu, "sys": round(s - s0, 2)}
            )
    return sorted(rows, key=lambda r: -r["cpu"])


class SessionProfile:
    """One profile of ``pid`` from ``start()`` to ``stop()``, with the per-thread
    CPU at ``mark(label)`` points (e.g. "answering", "idle")."""

    def __init__(self, path: Path, pid: int, mode: str = "gil") -> None:
        if mode not in MODES:
            raise ValueError(f"profile mode {mode!r}: one of {', '.join(MODES)}")
        self.path = path
        self.pid = pid
        self.mode = mode
        self.proc: subprocess.Popen | None = None
        self.start_cpu: dict[int, tuple[str, float, float]] = {}
        self.marks: dict[str, dict[int, tuple[str, float, float]]] = {}
        self.names: dict[int, str] = {}

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.names = thread_names(self.pid)
        if self.mode == "gil":
            cmd = [py_spy(), "record", "--gil", "-r", "100", "-f", "raw"]
            cmd += ["-o", str(self.path), "--pid", str(self.pid)]
        elif self.mode == "native":
            cmd = [py_spy(), "record", "--native", "--idle", "--threads", "-r", "100"]
            cmd += ["-f", "raw", "-o", str(self.path), "--pid", str(self.pid)]
        elif self.mode == "perf":
            cmd = ["perf", "record", "-g", "-F", "499", "-o", str(self.path)]
            cmd += ["-p", str(self.pid)]
        else:
            cmd = []
        if cmd:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)  # attached before the first UPDATE
        self.start_cpu = thread_cpu(self.pid)

    def mark(self, label: str) -> None:
        self.marks[label] = thread_cpu(self.pid)
        if label == "answering":  # threads started meanwhile (the feed's connection)
            self.names.update(thread_names(self.pid))

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)  # both write their file on SIGINT
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.names.update(thread_names(self.pid))
        self.path.with_suffix(".threads.json").write_text(json.dumps(self.table(), indent=1))

    def table(self) -> list[dict]:
        """One row per thread: name, comm, CPU-s to each mark since ``start``
        (``<mark>`` utime + stime, ``<mark> sys`` the stime alone)."""
        rows = []
        tids = set(self.start_cpu)
        for m in self.marks.values():
            tids |= set(m)
        for tid in sorted(tids):
            comm, u0, s0 = self.start_cpu.get(tid, ("", 0.0, 0.0))
            row: dict = {"tid": tid, "name": self.names.get(tid, ""), "comm": comm}
            for label, m in self.marks.items():
                c, u, s = m.get(tid, (comm, u0, s0))
                row["comm"] = row["comm"] or c
                row[label] = round(u + s - u0 - s0, 3)
                row[f"{label} sys"] = round(s - s0, 3)
            rows.append(row)
        last = list(self.marks)[-1] if self.marks else None
        if last:
            rows.sort(key=lambda r: -r[last])
        return rows
