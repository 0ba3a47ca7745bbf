"""A real gRPC server over the hand-fed test world, with chosen [api] settings."""

from __future__ import annotations

from dataclasses import replace

from attribution.config import ApiSettings
from attribution.grpc_service import AttributionServicer, ReloadResult, start_server
from attribution.resolver import Resolver
from tests.attribution.helpers import build_world


class Server:
    def __init__(self, api: ApiSettings | None = None) -> None:
        api = api or ApiSettings()
        self.rib, config = build_world()
        self.config = replace(config, api=api)
        self.reloads = 0
        resolver = Resolver(self.rib, self.config, max_batch_flows=100_000)

        def reload() -> ReloadResult:
            self.reloads += 1
            return ReloadResult(ok=True, overrides=2)

        self.servicer = AttributionServicer(
            self.rib, resolver, lambda: self.config, reload, lambda: {"bad_lines": 3}
        )
        self.server, self.port = start_server(self.servicer, "127.0.0.1:0", 64 << 20, api)
        self.target = f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.stop(grace=None)
