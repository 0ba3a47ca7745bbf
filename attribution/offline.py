"""Attribution without a running service: a RIB loaded from a table dump.

For reports over archived flows and for quick checks: the same parser, RIB,
resolver and JSON conversion as the service, in one process.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

from attribution.client import DEFAULT_BATCH
from attribution.config import Config, load_config, parse_config
from attribution.convert import columns_to_answers, resolution_to_columns
from attribution.resolver import Resolver, rows_to_columns
from ribd.parser import ExabgpParser, FeedError
from ribd.rib import Rib

log = logging.getLogger(__name__)


class OfflineResolver:
    def __init__(self, rib: Rib, config: Config) -> None:
        self.rib = rib
        self.config = config
        self.resolver = Resolver(rib, config)
        self.bad_lines = 0

    @classmethod
    def from_exabgp_dump(cls, path: str, config_path: str | None = None) -> OfflineResolver:
        """Load ExaBGP JSON lines (plain or .gz) into a RIB.

        Without a config, every router in the dump is usable and flows from
        any exporter fall back to the routers in the order they appear.
        """
        rib = Rib()
        parser = ExabgpParser(rib.interner)
        bad = 0
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(path, "rb") as f:
            for n, line in enumerate(f, 1):
                try:
                    rib.apply_many(parser.parse(line))
                except FeedError as exc:
                    bad += 1
                    if bad <= 10:
                        log.warning("%s:%d: %s", path, n, exc)
        if config_path:
            config = load_config(config_path)
        else:
            names = "\n".join(f'[[routers]]\nname = "{n}"\nneighbor = "{n}"\n' for n in rib.routers)
            fallback = ", ".join(f'"{n}"' for n in rib.routers)
            config = parse_config(
                f'[service]\nlocal_as = 0\nrouter_id = "127.0.0.1"\nfallback = [{fallback}]\n'
                + names,
                f"<routers of {Path(path).name}>",
            )
        resolver = cls(rib, config)
        resolver.bad_lines = bad
        return resolver

    def resolve_dicts(
        self, flows: Iterable[dict], batch_size: int = DEFAULT_BATCH
    ) -> Iterator[dict]:
        """Attributed dicts (input fields + answer fields), in order."""
        it = iter(flows)
        routing = self.resolver.routing
        while chunk := list(islice(it, batch_size)):
            exporters, exporter, src, dst, in_if, mac, bad = rows_to_columns(chunk)
            res = self.resolver.resolve_columns(exporters, exporter, src, dst, in_if, mac, bad)
            cols, errors = resolution_to_columns(res, routing.local_as, routing.highest_as_set)
            answers = columns_to_answers(cols, errors)
            for flow, answer in zip(chunk, answers, strict=True):
                yield {**flow, **answer} if isinstance(flow, dict) else answer


__all__ = ["OfflineResolver"]
