"""Shared test helpers: where the real routing data lives."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SAMPLES = SHARED_DATA / "exabgp-samples"
FULL_TABLE = SHARED_DATA / "bgp" / "pch-as3856-fulltable-2015.exabgp5.jsonl.gz"
CHURN = SHARED_DATA / "bgp" / "ris-rrc-updates-20190101.exabgp5.jsonl.gz"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared/data is not here)")
    return path
