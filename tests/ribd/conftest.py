"""Shared fixtures for ribd tests. Reusable helpers live in ribd.speaker."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # tests run from a checkout, ribd need not be installed
    sys.path.insert(0, str(ROOT))

from ribd.speaker import BgpTestbed  # noqa: E402

SHARED_DATA = ROOT.parent / "shared" / "data"


def child_env() -> dict[str, str]:
    """Environment for our own child processes (relay, senders): ribd importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    return env


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short directory under /tmp (Unix socket paths are limited to 107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="ribd-t-", dir="/tmp") as d:
        yield Path(d)


@pytest.fixture
def processes() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start child processes that are killed at teardown, whatever the test did."""
    started: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        kwargs.setdefault("env", child_env())
        proc = subprocess.Popen(args, **kwargs)  # type: ignore[call-overload]
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def testbed() -> Iterator[Callable[..., BgpTestbed]]:
    """Factory for started BgpTestbeds (supervised ExaBGP + feed + RIB), all closed at teardown."""
    beds: list[BgpTestbed] = []

    def make(**kwargs: object) -> BgpTestbed:
        bed = BgpTestbed(**kwargs)  # type: ignore[arg-type]
        beds.append(bed)
        return bed.start()

    yield make
    for bed in beds:
        bed.close()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent")
    return SHARED_DATA
