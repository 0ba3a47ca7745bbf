"""Frozen settled loads lose nothing: the audit of ``ribd.gcpolicy`` through a service's life.

``ribd.gcpolicy`` freezes what a load leaves once it settles; a cycle among
frozen objects is never collected. tests/attribution/gc_audit.py runs a
service in a process of its own (loads, refreshes, view rebuilds, feed
connections, gRPC calls, config reloads, snapshots, RIB collections, seven
freezes) and lists every object a freeze froze that later died in a cycle.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _audit(*args: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="gca-", dir="/tmp") as d:  # a short socket path
        out = subprocess.run(
            [sys.executable, "-m", "tests.attribution.gc_audit", d, *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_nothing_frozen_at_a_settled_load_dies_in_a_cycle():
    """Every object frozen at a settled load that the service's life drops
    afterwards is freed by reference counting: none is left in a cycle the
    collector would never see. (Without the young collection before each
    freeze, ``ast.literal_eval``'s closures and ``inspect``'s local classes,
    garbage already, were frozen: 317 objects in this run.)"""
    got = _audit()
    assert got["freezes_at_load"] >= 1 and got["freezes"] > got["freezes_at_load"]
    assert got["leaked"] == {}, got
    # The metric counts the same freezes (README: Metrics and logs).
    assert got["freezes_exposed"] == got["freezes"], got


def test_the_audit_sees_a_cycle_frozen_then_dropped():
    """The audit itself: a self-referencing dict alive at the load's freeze
    and dropped after it is reported."""
    got = _audit("plant")
    assert got["leaked"].get("dict", 0) >= 1, got
