"""The work directory: one the service made for itself goes at stop; a configured one stays."""

from __future__ import annotations

import os
from pathlib import Path

from attribution.service import Service
from tests.attribution.helpers import CONFIG


def _config(tmp_path: Path, work_dir: str = "") -> str:
    bgp = f'[bgp]\nexabgp = "external"\nfeed_socket = "{tmp_path}/feed.sock"\n'
    if work_dir:
        bgp += f'work_dir = "{work_dir}"\n'
    path = tmp_path / "attribution.toml"
    path.write_text(CONFIG.replace("[[routers]]", bgp + "\n[[routers]]", 1))
    return str(path)


def test_a_work_dir_made_for_the_service_is_removed_at_stop(tmp_path):
    service = Service(_config(tmp_path))
    made = service.settings.work_dir
    assert made and os.path.isdir(made)
    service.start()
    service.stop()
    assert not os.path.exists(made)


def test_a_configured_work_dir_is_kept_at_stop(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("the operator's")
    service = Service(_config(tmp_path, str(work)))
    assert service.settings.work_dir == str(work)
    service.start()
    service.stop()
    assert (work / "keep.txt").read_text() == "the operator's"
