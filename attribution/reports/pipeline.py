"""Input files -> (attribution) -> normalized rows -> backend. The I/O edge of the report.

Attribution per file:

* flow JSON lines that already carry answer fields are used as they are;
* other flow JSON needs a resolver (the service, or an offline table dump);
* nfdump / pmacct records are resolved when a resolver is given (unless
  ``use_input_as``), otherwise their own AS fields are used (provenance
  ``nfdump``/``pmacct``; nfdump has no peer AS, the link's neighbor is used).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import IO, Any

from attribution.reports.config import ReportConfig
from attribution.reports.engine import AggregationBackend
from attribution.reports.progress import Progress
from attribution.reports.readers import (
    FORMATS,
    BadLines,
    iter_lines,
    make_parser,
    open_binary,
    sniff_format,
)
from attribution.reports.records import (
    Normalizer,
    OutsideWindow,
    RecordError,
    Row,
    input_part,
    is_attributed,
)

Resolver = Callable[[Iterable[dict[str, Any]]], Iterator[dict[str, Any]]]


class IngestError(RuntimeError):
    """A whole input cannot be used (unreadable, unknown format, needs attribution)."""


@dataclass
class InputStats:
    path: str
    format: str
    attribution: str = ""
    lines: int = 0
    records: int = 0
    bad_lines: int = 0
    outside_window: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def service_resolver(target: str, batch_size: int = 4096) -> Resolver:
    """Attribution through the running service's bulk gRPC path."""
    try:
        from attribution.client import (  # type: ignore[import-not-found]
            connection_from,
            resolve_dicts,
        )
    except ImportError as exc:
        raise IngestError(f"attribution via --target needs attribution.client: {exc}") from None
    # TLS files and token from ATTRIBUTION_* variables, like the other client commands
    connection = connection_from(target=target, env=os.environ)

    def resolve(flows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        return resolve_dicts(connection, flows, batch_size=batch_size)

    return resolve


def offline_resolver(dump: str, config_path: str | None = None) -> Resolver:
    """In-process attribution from an ExaBGP JSON table dump (no service needed)."""
    try:
        from attribution.offline import OfflineResolver  # type: ignore[import-not-found]
    except ImportError as exc:
        raise IngestError(f"attribution via --table needs attribution.offline: {exc}") from None
    resolver = OfflineResolver.from_exabgp_dump(dump, config_path)
    return resolver.resolve_dicts


class _Position:
    """Byte position in the raw (possibly compressed) file, for progress."""

    def __init__(self, fh: IO[bytes]) -> None:
        raw = getattr(fh, "fileobj", None) or fh
        self._tell = getattr(raw, "tell", None)

    def __call__(self) -> int:
        try:
            return int(self._tell()) if self._tell else 0
        except (OSError, ValueError):
            return 0


class Ingest:
    """Feeds input files into a backend; counts and reports bad lines, never stops on them."""

    def __init__(
        self,
        config: ReportConfig,
        backend: AggregationBackend,
        bad: BadLines,
        resolver: Resolver | None = None,
        resolver_name: str = "",
        use_input_as: bool = False,
        start: int | None = None,
        end: int | None = None,
        progress: Progress | None = None,
        batch_rows: int = 20_000,
    ) -> None:
        self.config = config
        self.backend = backend
        self.bad = bad
        self.resolver = resolver
        self.resolver_name = resolver_name or "service"
        self.use_input_as = use_input_as
        self.normalize = Normalizer(config, start, end)
        self.progress = progress
        self.batch_rows = batch_rows
        self.stats: list[InputStats] = []

    def add_files(self, paths: list[str], fmt: str = "auto") -> list[InputStats]:
        for i, path in enumerate(paths, start=1):
            if self.progress:
                self.progress.start_file(i, len(paths), path)
            self.add_file(path, fmt, file_id=i - 1)
        if self.progress:
            self.progress.done()
        return self.stats

    def add_file(self, path: str, fmt: str = "auto", file_id: int = 0) -> InputStats:
        if fmt == "auto":
            try:
                detected = sniff_format(path)
            except OSError as exc:
                raise IngestError(f"{path}: cannot read: {exc.strerror or exc}") from None
            if detected is None:
                raise IngestError(
                    f"{path}: cannot tell the input format from the first line; "
                    f"give --input-format {'|'.join(FORMATS)}"
                )
            fmt = detected or "flow-json"  # "" = nothing but blank lines
        stats = InputStats(path=path, format=fmt)
        self.stats.append(stats)
        try:
            fh = open_binary(path)
        except OSError as exc:
            raise IngestError(f"{path}: cannot read: {exc.strerror or exc}") from None
        try:
            self._ingest(fh, stats, file_id)
        except OSError as exc:  # e.g. truncated gzip: keep what was read, say so
            self.bad.add(path, stats.lines + 1, f"read error, rest of file skipped: {exc}")
            stats.bad_lines += 1
        finally:
            if path != "-":
                fh.close()
        return stats

    # ------------------------------------------------------------------ internals
    def _parsed(self, fh: IO[bytes], stats: InputStats) -> Iterator[tuple[int, dict[str, Any]]]:
        parse = make_parser(stats.format, self.config.nfdump_counters_scaled)
        cut_off = getattr(parse, "cut_off", None)
        position = _Position(fh)
        progress = self.progress
        for line_no, line in iter_lines(fh):
            stats.lines = line_no
            if progress is not None and line_no & 0x3FFF == 0:
                progress.update(line_no, position())
            if line is None:
                self._bad(stats, line_no, "line longer than 1 MiB")
                continue
            error = None
            try:
                flow = parse(line)
            except RecordError as exc:
                flow, error = None, str(exc)
            if cut_off is not None:  # nfdump JSON: objects a stray '{' cut off, first
                for start, reason in cut_off():
                    self._bad(stats, start, reason)
            if error is not None:
                self._bad(stats, line_no, error)
            if flow is not None:
                yield line_no, flow

    def _bad(self, stats: InputStats, line_no: int, reason: str) -> None:
        stats.bad_lines += 1
        self.bad.add(stats.path, line_no, reason)

    def _ingest(self, fh: IO[bytes], stats: InputStats, file_id: int) -> None:
        records = self._parsed(fh, stats)
        first = next(records, None)
        if first is None:
            stats.attribution = "empty"
            return
        records = _chain(first, records)
        if stats.format == "flow-json" and is_attributed(first[1]):
            stats.attribution = "input"
        elif self.resolver is not None and not (stats.format != "flow-json" and self.use_input_as):
            stats.attribution = self.resolver_name
            records = self._resolved(records)
        elif stats.format == "flow-json":
            raise IngestError(
                f"{stats.path}: flow records have no attribution (no dst_peer_as ...); "
                "give --target HOST:PORT (running service) or --table DUMP (offline)"
            )
        else:
            stats.attribution = stats.format.split("-")[0]
        self._stage(records, stats, file_id)

    def _resolved(
        self, records: Iterator[tuple[int, dict[str, Any]]]
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        assert self.resolver is not None
        pending: deque[int] = deque()

        def feed() -> Iterator[dict[str, Any]]:
            for line_no, flow in records:
                pending.append(line_no)
                yield input_part(flow)

        for answer in self.resolver(feed()):
            yield pending.popleft(), answer

    def _stage(
        self, records: Iterator[tuple[int, dict[str, Any]]], stats: InputStats, file_id: int
    ) -> None:
        normalize = self.normalize
        batch: list[Row] = []
        add = batch.append
        for line_no, flow in records:
            try:
                add(normalize(flow, file_id))
            except OutsideWindow:
                stats.outside_window += 1
                continue
            except RecordError as exc:
                self._bad(stats, line_no, str(exc))
                continue
            if len(batch) >= self.batch_rows:
                self.backend.add_rows(batch)
                stats.records += len(batch)
                batch = []
                add = batch.append
        if batch:
            self.backend.add_rows(batch)
            stats.records += len(batch)


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest
