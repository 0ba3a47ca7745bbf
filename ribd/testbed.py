"""The service side of a BGP test: Rib + FeedServer + supervised ExaBGP on loopback.

Split out of ``ribd.speaker`` (which still answers ``from ribd.speaker import
BgpTestbed``): the speaker is the router's side, this is ours, wired as
``attribution serve`` wires it, on a free loopback port, for tests and
``attribution demo``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence

from ribd.feed import FeedServer, RibMaintenance
from ribd.rib import Rib
from ribd.settings import BgpSettings, NeighborSettings
from ribd.speaker import Speaker, free_port
from ribd.workers import ExabgpWorkers, reread_wave, waits_on


class BgpTestbed:
    """Rib + FeedServer + supervised ExaBGP listening on 127.0.0.1:<free port>.

    ``neighbors`` default to one iBGP router at 127.0.0.2. Start speakers with
    ``speaker(routes=...)``; everything is stopped by ``close()``.
    """

    def __init__(
        self,
        *,
        local_as: int = 65000,
        neighbors: Sequence[NeighborSettings] | None = None,
        stale_hold_time: float = 0.0,
        restart_hold_time: float = 60.0,
        restart_backoff_initial: float = 0.2,
        restart_backoff_max: float = 2.0,
        work_dir: str | None = None,
        api_mode: str = "raw",
        workers: int = 1,
    ) -> None:
        self._own_dir = work_dir is None
        self.work_dir = work_dir or tempfile.mkdtemp(prefix="ribd-bgp-", dir="/tmp")
        self.port = free_port()
        self.settings = BgpSettings(
            local_as=local_as,
            router_id="127.0.0.1",
            listen_address="127.0.0.1",
            listen_port=self.port,
            neighbors=tuple(
                neighbors
                if neighbors is not None
                else [NeighborSettings(name="r1", address="127.0.0.2", peer_as=local_as)]
            ),
            feed_socket=os.path.join(self.work_dir, "feed.sock"),
            stale_hold_time=stale_hold_time,
            restart_hold_time=restart_hold_time,
            restart_backoff_initial=restart_backoff_initial,
            restart_backoff_max=restart_backoff_max,
            work_dir=self.work_dir,
            api_mode=api_mode,
            workers=workers,
        )
        self.rib = Rib(
            stale_hold_time=stale_hold_time,
            router_names={n.address: n.name for n in self.settings.neighbors},
        )
        self.feed = FeedServer(
            self.settings.feed_socket,
            self.rib,
            exabgp_gone_hold_time=restart_hold_time,
            reread_wave=reread_wave(self.settings),
        )
        # One supervised ExaBGP per worker (one in all, unless ``workers``).
        self.supervisor = ExabgpWorkers(self.settings, self.rib)
        self.feed.worker_scopes = self.supervisor.scopes()
        self.maintenance = RibMaintenance(self.rib, interval=0.05)
        self.speakers: list[Speaker] = []

    def start(self) -> BgpTestbed:
        self.feed.start()
        self.maintenance.start()
        self.supervisor.start()
        return self

    def speaker(self, *, local_address: str = "127.0.0.2", **kwargs: object) -> Speaker:
        """A started Speaker aimed at our ExaBGP (stopped by ``close()``)."""
        kwargs.setdefault("peer_as", self.settings.local_as)
        for n in self.settings.neighbors:  # the address our side waits on for it
            if n.address == local_address and n.passive:
                kwargs.setdefault("peer_address", waits_on(self.settings, n))
        kwargs.setdefault("local_as", self.settings.local_as)
        s = Speaker(peer_port=self.port, local_address=local_address, **kwargs)  # type: ignore[arg-type]
        self.speakers.append(s)
        return s.start()

    def close(self) -> None:
        for s in self.speakers:
            s.close()
        self.supervisor.stop()
        self.feed.stop()
        self.maintenance.stop()
        if self._own_dir and not os.environ.get("RIBD_KEEP_TESTBED"):
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> BgpTestbed:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
