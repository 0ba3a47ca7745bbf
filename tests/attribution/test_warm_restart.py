"""The daemon writes its RIB on shutdown and starts from it, stale until BGP is back."""

from __future__ import annotations

import gc
from pathlib import Path

from attribution.service import Service
from ribd.events import RoutesAnnounced, SessionState
from tests.attribution.helpers import CONFIG, EDGE1, attrs


def config_file(tmp_path: Path) -> Path:
    text = CONFIG.replace(
        'grpc_listen = "127.0.0.1:0"',
        f'grpc_listen = "127.0.0.1:0"\nsnapshot_path = "{tmp_path}/rib.snapshot"',
    ).replace(
        "[[routers]]",
        f'[bgp]\nexabgp = "external"\nfeed_socket = "{tmp_path}/feed.sock"\n\n[[routers]]',
        1,
    )
    path = tmp_path / "attribution.toml"
    path.write_text(text)
    return path


def test_restart_serves_the_last_routes_marked_stale(tmp_path):
    path = config_file(tmp_path)
    first = Service(str(path))
    first.start()
    first.rib.apply(SessionState(EDGE1, "up"))
    first.rib.apply(
        RoutesAnnounced(EDGE1, "ipv4 unicast", ("10.0.0.0/8",), None, attrs((65001, 65002)))
    )
    first.stop()
    assert (tmp_path / "rib.snapshot").exists()

    second = Service(str(path))
    second.start()
    try:
        m = second.rib.lookup(EDGE1, "ipv4 unicast", "10.1.2.3")
        assert m is not None and m.stale and m.attributes.origin_as == 65002
        assert second.rib.routers[EDGE1].name == "edge1"
        assert second.rib.routers[EDGE1].session == "down"
    finally:
        second.stop()


def test_a_corrupt_snapshot_is_refused_and_the_service_starts_empty(tmp_path, caplog):
    path = config_file(tmp_path)
    (tmp_path / "rib.snapshot").write_bytes(b"ribd-snapshot {not json\n garbage")
    service = Service(str(path))
    service.start()
    try:
        assert service.rib.routers == {}
        assert "RIB snapshot refused" in caplog.text
    finally:
        service.stop()


def test_start_runs_no_full_collection_over_the_loaded_snapshot(tmp_path):
    """Before, start-up ran ``gc.collect()`` after loading the snapshot: a walk
    of every loaded object (~18 s with 16 routers before gRPC answered). The
    loaded RIB is frozen out of the collector's reach instead."""
    path = config_file(tmp_path)
    first = Service(str(path))
    first.start()
    first.rib.apply(SessionState(EDGE1, "up"))
    first.rib.apply(
        RoutesAnnounced(EDGE1, "ipv4 unicast", ("10.0.0.0/8",), None, attrs((65001, 65002)))
    )
    first.stop()

    second = Service(str(path))
    full_after_load = []

    def watch(phase: str, info: dict) -> None:
        if phase == "start" and info["generation"] == 2 and second.rib.routers:
            full_after_load.append(info)

    gc.callbacks.append(watch)
    try:
        second.start()
    finally:
        gc.callbacks.remove(watch)
    try:
        assert second.rib.routers[EDGE1].name == "edge1"  # the snapshot was loaded
        assert full_after_load == []
        assert gc.isenabled()
    finally:
        second.stop()
