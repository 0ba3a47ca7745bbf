"""Start-up of the client commands: no idle library threads burning CPU."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = (
    "import os, attribution.cli, numpy\n"
    "print(os.environ.get('OPENBLAS_NUM_THREADS'), len(os.listdir('/proc/self/task')))\n"
)


def _probe(env: dict[str, str]) -> tuple[str, int]:
    run = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120
    )
    assert run.returncode == 0, run.stderr
    value, threads = run.stdout.split()
    return value, int(threads)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs /proc")
def test_importing_the_cli_starts_no_openblas_threads():
    """numpy's OpenBLAS started a thread a core at import, each spinning ~0.1 s
    of CPU before it sleeps, in every `attribution` process; nothing here
    multiplies matrices, so one thread (the caller's) is asked for."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    assert _probe(env) == ("1", 1)  # the main thread alone: no OpenBLAS server threads


def test_a_users_openblas_setting_is_kept():
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2"}
    assert _probe(env)[0] == "2"
