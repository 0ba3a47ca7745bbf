"""The replicas' route reflector (BIRD, bench.replicaset) does not outlive its parent.

A test run killed mid-way (a timeout, Ctrl-C twice) left BIRD running and
holding 127.0.15.1:179, so every later run's reflector failed to bind and the
replicas never peered. BIRD now gets SIGKILL when the process that started it
dies (PR_SET_PDEATHSIG, as ExaBGP does).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bench.replicaset import bird_available
from ribd.speaker import wait_until

REPO = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not bird_available(), reason="bird (Debian bird2) is not installed")
def test_the_reflector_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, sys, time
        from pathlib import Path
        from bench.replicaset import Route, RouteReflector
        r = RouteReflector(Path({str(tmp_path)!r}), [Route("192.0.2.0/24", (64501,))], [])
        r.start()
        print(r.proc.pid, flush=True)
        time.sleep(1.0)
        os._exit(0)  # no stop(): as a killed test run
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    pid = int(out.stdout.split()[0])
    try:
        wait_until(lambda: not alive(pid), 20, what="BIRD gone with its parent")
    finally:
        if alive(pid):
            os.kill(pid, 9)
            time.sleep(0.1)
