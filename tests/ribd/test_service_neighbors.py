"""The service accepts routes only from the routers in its config (external ExaBGP mode)."""

from __future__ import annotations

import os
from pathlib import Path

from attribution.service import Service
from ribd.speaker import wait_until
from tests.attribution.helpers import CONFIG, EDGE1
from tests.ribd.test_feed import V4, announce_v4, path, send, update

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


def test_forged_neighbors_get_no_rib_and_a_reload_updates_the_list(tmp_path: Path) -> None:
    conf = tmp_path / "attribution.toml"
    write(conf, config(tmp_path))
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
        wait_until(lambda: feed.stats()["lines"] == len(forged) + 1, 60, what="every line")
        assert feed.stats()["bad_lines_by_category"] == {"unknown_neighbor": len(MADE_UP)}
        assert set(service.rib.routers) == {EDGE1}
        assert len(service.rib.tables[V4].store) == 1

        # A router added to the config (its session starts at the next restart)
        # may deliver routes as soon as the reload is done.
        newcomer = MADE_UP[0]
        write(conf, config(tmp_path, f'\n[[routers]]\nname = "edge4"\nneighbor = "{newcomer}"\n'))
        assert service.reload().ok
        send(feed.socket_path, forged[0] + b"\n")
        wait_until(lambda: newcomer in service.rib.routers, 30, what="the new router's routes")
        assert service.rib.routers[newcomer].name == "edge4"
    finally:
        service.stop()
