"""Shared fixtures for the report tests: sample data, config, a one-call pipeline."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the package is not necessarily installed in the venv
    sys.path.insert(0, str(ROOT))

from attribution.reports.config import ReportConfig, load_report_config_file  # noqa: E402
from attribution.reports.engine import DuckDBBackend  # noqa: E402
from attribution.reports.pipeline import Ingest, Resolver  # noqa: E402
from attribution.reports.readers import BadLines  # noqa: E402
from attribution.reports.records import Normalizer  # noqa: E402
from attribution.reports.report import Report, ReportBuilder  # noqa: E402

DATA = Path(__file__).parent / "data"


@pytest.fixture
def data() -> Path:
    return DATA


@pytest.fixture
def config() -> ReportConfig:
    return load_report_config_file(os.fspath(DATA / "report.toml"))


def run_files(
    paths: Iterable[Path | str],
    config: ReportConfig,
    resolver: Resolver | None = None,
    fmt: str = "auto",
    **kw: Any,
) -> tuple[Report, Ingest, BadLines]:
    backend = DuckDBBackend()
    bad = BadLines()
    try:
        ingest = Ingest(config, backend, bad, resolver=resolver, **kw)
        for i, path in enumerate(paths):
            ingest.add_file(os.fspath(path), fmt, file_id=i)
        backend.finish_load()
        report = ReportBuilder(backend, config, kw.get("start"), kw.get("end")).build({})
    finally:
        backend.close()
    return report, ingest, bad


def run_rows(
    flows: Iterable[dict[str, Any]],
    config: ReportConfig,
    start: int | None = None,
    end: int | None = None,
) -> Report:
    """Attributed flow dicts -> Normalizer -> backend -> report (no files involved)."""
    normalize = Normalizer(config)
    backend = DuckDBBackend()
    try:
        backend.add_rows([normalize(f, 0) for f in flows])
        backend.finish_load()
        return ReportBuilder(backend, config, start, end).build({})
    finally:
        backend.close()


def row(ts: int, in_if: int, out_if: int, nbytes: int, **kw: Any) -> dict[str, Any]:
    """An attributed flow from exporter 192.0.2.1, unsampled, answers default to 0."""
    flow: dict[str, Any] = {
        "time": ts,
        "exporter": "192.0.2.1",
        "in_if": in_if,
        "out_if": out_if,
        "bytes": nbytes,
        "packets": 1,
        "sampling_rate": 1,
        "dst_peer_as": 0,
    }
    local = {"src_local": "src_origin_provenance", "dst_local": "dst_origin_provenance"}
    for key, value in kw.items():
        if key in local:
            flow[local[key]] = "local" if value else "bgp"
        else:
            flow[key] = value
    return flow


def by(table_rows: list[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    return {r[key]: r for r in table_rows}
