"""The service with hostile input: routes only from the configured routers (external ExaBGP
mode), and a hostile snapshot refused at start."""

from __future__ import annotations

import contextlib
import os
import urllib.request
from pathlib import Path

from attribution.service import Service
from ribd.parser import ExabgpParser
from ribd.rib import Rib
from ribd.snapshot import _unpack, write_snapshot
from ribd.speaker import wait_until
from tests.attribution.helpers import CONFIG, EDGE1
from tests.ribd.test_feed import V4, announce_v4, path, send, update
from tests.ribd.test_snapshot_hostile import DEEP, pack_deep

GOOD = {"origin": "igp", "as-path": path(65001, 65002)}
MADE_UP = [f"127.66.{i // 250}.{i % 250 + 1}" for i in range(1000)]


def write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def config(tmp_path: Path, extra: str = "") -> str:
    return (
        CONFIG.replace(
            "[[routers]]",
            f'[bgp]\nexabgp = "external"\nfeed_socket = "{tmp_path}/run/feed.sock"\n\n[[routers]]',
            1,
        )
        + extra
    )


def scrape(service: Service, name: str, category: str | None = None) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics") as r:
        text = r.read().decode()
    want = name + (f'{{category="{category}"}}' if category else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{want} not in the scrape")


def test_forged_neighbors_get_no_rib_and_a_reload_updates_the_list(tmp_path: Path) -> None:
    conf = tmp_path / "attribution.toml"
    metrics = '\n[metrics]\nlisten = "127.0.0.1:0"\n'
    write(conf, config(tmp_path, metrics))
    service = Service(str(conf))
    service.start()
    try:
        feed = service.feed
        forged = [
            update(announce_v4("10.0.0.0/24", "10.0.1.0/24"), attribute=GOOD, peer=p)
            for p in MADE_UP
        ]
        real = update(announce_v4("10.0.0.0/24"), attribute=GOOD, peer=EDGE1)
        send(feed.socket_path, b"\n".join([*forged[:500], real, *forged[500:]]) + b"\n")
        # A line is counted as read before it is judged: wait for both counts
        # (on a loaded box the last forged line's verdict came a moment after).
        wait_until(
            lambda: (
                feed.stats()["lines"] == len(forged) + 1
                and sum(feed.stats()["bad_lines_by_category"].values()) >= len(MADE_UP)
            ),
            60,
            what="every line read and judged",
        )
        assert feed.stats()["bad_lines_by_category"] == {"unknown_neighbor": len(MADE_UP)}
        assert set(service.rib.routers) == {EDGE1}
        assert len(service.rib.tables[V4].store) == 1

        # A router added to the config (its session starts at the next restart)
        # may deliver routes as soon as the reload is done.
        # Counted where operators look: the metrics, scraped over HTTP.
        assert scrape(service, "attribution_feed_bad_lines_total", "unknown_neighbor") == 1000
        service.feed.allowed_uids = frozenset({os.geteuid() + 1})  # now we are a stranger
        with contextlib.suppress(OSError):  # closed at once: the send may fail
            send(feed.socket_path, real + b"\n")
        wait_until(lambda: feed.stats()["refused_connections"] == 1, 30, what="a refusal")
        assert scrape(service, "attribution_feed_refused_connections_total") == 1
        service.feed.allowed_uids = frozenset({os.geteuid()})

        newcomer = MADE_UP[0]
        router = f'\n[[routers]]\nname = "edge4"\nneighbor = "{newcomer}"\n'
        write(conf, config(tmp_path, router + metrics))
        assert service.reload().ok
        send(feed.socket_path, forged[0] + b"\n")
        wait_until(lambda: newcomer in service.rib.routers, 30, what="the new router's routes")
        assert service.rib.routers[newcomer].name == "edge4"
    finally:
        service.stop()


def test_a_hostile_snapshot_is_refused_at_start_and_the_service_starts_empty(
    tmp_path: Path, caplog
) -> None:
    """A deeply nested, re-checksummed snapshot: logged as refused, nothing loaded, serving."""
    snapshot = one_route_snapshot(tmp_path, version=1)  # a JSON body to edit
    header, doc = _unpack(snapshot.read_bytes())
    doc["routers"][0]["peer_as"] = DEEP
    snapshot.write_bytes(pack_deep(doc, header))
    assert_refused_then_serving(tmp_path, caplog, snapshot, "peer_as")


def one_route_snapshot(tmp_path: Path, **write_options: object) -> Path:
    """A snapshot of EDGE1 holding 10.0.0.0/24, for a test to spoil."""
    snapshot = tmp_path / "rib.snapshot"
    rib = Rib()
    rib.apply_many(ExabgpParser().parse(update(announce_v4("10.0.0.0/24"), peer=EDGE1)))
    write_snapshot(rib, snapshot, **write_options)  # type: ignore[arg-type]
    return snapshot


def assert_refused_then_serving(tmp_path: Path, caplog, snapshot: Path, named: str) -> None:
    """A service started on ``snapshot`` logs it refused (naming ``named``), loads
    nothing, and takes routes from the feed."""
    conf = tmp_path / "attribution.toml"
    write(conf, config(tmp_path).replace("[service]", f'[service]\nsnapshot_path = "{snapshot}"'))
    service = Service(str(conf))
    service.start()
    try:
        assert service.rib.routers == {}
        assert "RIB snapshot refused" in caplog.text and named in caplog.text
        send(service.feed.socket_path, update(announce_v4("10.0.0.0/24"), peer=EDGE1) + b"\n")
        wait_until(lambda: EDGE1 in service.rib.routers, 30, what="routes after the refusal")
    finally:
        service.stop()
