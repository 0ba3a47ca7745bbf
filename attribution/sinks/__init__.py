"""Where `attribution enrich` stores attributed flows besides JSON lines and CSV.

``--output SPEC`` picks one:

* ``parquet:PATH`` — one Parquet file (:mod:`.parquet`);
* ``clickhouse://[USER@]HOST[:PORT]/[DATABASE]?table=flows`` (``clickhouses://`` for TLS) —
  a ClickHouse server through clickhouse-connect (:mod:`.clickhouse`);
* ``chdb:PATH`` — ClickHouse embedded (chdb), its data kept in the directory PATH
  (the schema of :mod:`attribution.clickhouse_schema` created there when missing,
  with ``ttl_days=``/``rollup_ttl_days=``).

Every sink has the writer interface of :mod:`attribution.enrich`
(``write_batch(records, answers)``, ``flush()``) plus ``close()``. Rows are
turned into Arrow once (:mod:`.table`) and buffered until a large batch is
ready: ClickHouse wants inserts of many thousands of rows, Parquet row groups
of about a hundred thousand. Memory is bounded by that batch size.
Credentials never come from the command line (it shows in ``ps``): the
password is read from ``ATTRIBUTION_CLICKHOUSE_PASSWORD`` or from the file
named by ``password_file=`` in the URL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit


class OutputError(ValueError):
    """An --output value that cannot be used; the message says what and why."""


class Sink(Protocol):
    batcher: Any  # attribution.sinks.table.ArrowBatcher

    def write_batch(self, batch: Sequence[Any], answers: Sequence[dict]) -> None: ...
    def write_table(self, table: Any) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...
    def durable_rows(self) -> int: ...


@dataclass
class OutputSpec:
    kind: str  # parquet | clickhouse | chdb
    path: str = ""
    host: str = ""
    port: int = 0
    secure: bool = False
    user: str = "default"
    database: str = "attribution"
    table: str = "flows"
    options: dict[str, str] = field(default_factory=dict)

    def option_int(self, name: str, default: int, lo: int, hi: int) -> int:
        text = self.options.get(name)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            raise OutputError(f"{name}={text!r}: not an integer") from None
        if not lo <= value <= hi:
            raise OutputError(f"{name}={value}: must be between {lo} and {hi}")
        return value

    def option_float(self, name: str, default: float, lo: float, hi: float) -> float:
        text = self.options.get(name)
        if text is None:
            return default
        try:
            value = float(text)
        except ValueError:
            raise OutputError(f"{name}={text!r}: not a number") from None
        if not lo <= value <= hi:  # also refuses nan
            raise OutputError(f"{name}={value}: must be between {lo:g} and {hi:g}")
        return value


_IDENT_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
OPTIONS = {
    "parquet": {"row_group", "compression", "max_delay"},
    "clickhouse": {"table", "batch", "max_delay", "password_file", "ca", "verify", "secure"},
    "chdb": {"database", "table", "batch", "max_delay", "ttl_days", "rollup_ttl_days"},
}


def identifier(text: str, what: str) -> str:
    """A database or table name we interpolate into SQL: letters, digits, underscore."""
    if not text or len(text) > 64 or not set(text) <= _IDENT_OK or text[0].isdigit():
        raise OutputError(
            f"{what} {text!r}: use 1 to 64 letters, digits or underscores, not starting "
            "with a digit"
        )
    return text


def parse_output(spec: str) -> OutputSpec:
    """``--output`` text -> :class:`OutputSpec`, or :class:`OutputError` saying what is wrong."""
    if spec.startswith("parquet:"):
        path, _, query = spec[len("parquet:") :].partition("?")
        if not path:
            raise OutputError("parquet: needs a file path (parquet:/var/lib/flows.parquet)")
        out = OutputSpec("parquet", path=path, options=_options(query, "parquet"))
        if out.options.get("compression", "zstd") not in ("zstd", "snappy", "gzip", "none"):
            raise OutputError(
                f"compression={out.options['compression']!r}: use zstd, snappy, gzip or none"
            )
        return out
    if spec.startswith("chdb:"):
        path, _, query = spec[len("chdb:") :].partition("?")
        if not path:
            raise OutputError("chdb: needs a directory for its data (chdb:/var/lib/flows-db)")
        opts = _options(query, "chdb")
        return OutputSpec(
            "chdb",
            path=path,
            database=identifier(opts.get("database", "attribution"), "database"),
            table=identifier(opts.get("table", "flows"), "table"),
            options=opts,
        )
    if spec.startswith(("clickhouse://", "clickhouses://")):
        return _clickhouse_url(spec)
    raise OutputError(
        f"{spec!r}: use parquet:PATH, clickhouse://HOST[:PORT]/DATABASE?table=NAME "
        "(clickhouses:// for TLS) or chdb:PATH"
    )


def _options(query: str, kind: str) -> dict[str, str]:
    opts = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False)) if query else {}
    unknown = sorted(set(opts) - OPTIONS[kind])
    if unknown:
        raise OutputError(
            f"{kind}: unknown option {', '.join(unknown)} "
            f"(known: {', '.join(sorted(OPTIONS[kind]))})"
        )
    return opts


def _clickhouse_url(spec: str) -> OutputSpec:
    url = urlsplit(spec)
    if url.password is not None:
        raise OutputError(
            "a password in the URL shows in `ps` and shell history: put it in "
            "ATTRIBUTION_CLICKHOUSE_PASSWORD or a file named by ?password_file=PATH"
        )
    if not url.hostname:
        raise OutputError(f"{spec!r}: no host (clickhouse://HOST[:PORT]/DATABASE?table=NAME)")
    try:
        port = url.port
    except ValueError as exc:
        raise OutputError(f"{spec!r}: {exc}") from None
    opts = _options(url.query, "clickhouse")
    secure = url.scheme == "clickhouses" or opts.get("secure", "") in ("1", "true")
    database = unquote(url.path.strip("/")) or "attribution"
    if "/" in database:
        raise OutputError(f"{spec!r}: the path is the database name, one level only")
    return OutputSpec(
        "clickhouse",
        host=url.hostname,
        port=port or (8443 if secure else 8123),
        secure=secure,
        user=unquote(url.username) if url.username else "default",
        database=identifier(database, "database"),
        table=identifier(opts.get("table", "flows"), "table"),
        options=opts,
    )


class BufferedSink:
    """Arrow batches buffered until ``batch_rows`` rows or ``max_delay`` seconds old.

    ``flush()`` (called by enrich after each answered batch) writes only when
    one of those is reached, so a fast run makes large inserts. A trickle
    (``--follow``) that then goes quiet makes no more calls: :meth:`start_timer`
    runs a thread that writes rows older than ``max_delay`` anyway, so they are
    stored within about ``max_delay`` whatever the input does. A failed write in
    that thread is raised by the next call. ``close()`` writes the rest.
    """

    def __init__(
        self, batch_rows: int, max_delay: float, clock: Callable[[], float] = time.monotonic
    ):
        from attribution.sinks.table import ArrowBatcher

        self.batcher = ArrowBatcher()
        self.batch_rows = batch_rows
        self.max_delay = max_delay
        self.clock = clock
        self._tables: list[Any] = []
        self._rows = 0
        self._since = 0.0
        self.rows_written = 0
        self.writes = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self._failure: BaseException | None = None

    def start_timer(self) -> None:
        tick = min(max(self.max_delay / 2, 0.05), 1.0)

        def run() -> None:
            while not self._stop.wait(tick):
                try:
                    self.flush()
                except BaseException as exc:
                    self._failure = exc
                    return

        self._timer = threading.Thread(target=run, name="sink-max-delay", daemon=True)
        self._timer.start()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def write_batch(self, batch: Sequence[Any], answers: Sequence[dict]) -> None:
        """Records (``flow``, ``fmt``) and their answer dicts."""
        if not batch:
            self._raise_failure()
            return
        self.write_table(
            self.batcher.table([r.flow for r in batch], answers, [r.fmt for r in batch])
        )

    # the low-cardinality columns as Arrow dictionaries (DICT_SCHEMA) or strings
    # (SCHEMA): what the store takes best; every table is made so before buffering
    dictionary = False

    def write_table(self, table: Any) -> None:
        """An Arrow table of :data:`attribution.sinks.table.SCHEMA` or ``DICT_SCHEMA``
        (enrich makes it from its columns: attribution.enrich_arrow, in the
        sink's :attr:`dictionary` form, so that nothing is converted here)."""
        from attribution.sinks.table import conform

        self._raise_failure()
        if not table.num_rows:
            return
        table = conform(table, self.dictionary)
        with self._lock:
            if not self._tables:
                self._since = self.clock()
            self._tables.append(table)
            self._rows += table.num_rows
            if self._rows >= self.batch_rows:
                self._write_buffered()

    def durable_rows(self) -> int:
        """Rows written for good: here, once the store took them (a ClickHouse
        insert acknowledged); a sink whose writes are not durable by
        themselves (one Parquet file, until its footer) says less."""
        return self.rows_written

    def flush(self) -> None:
        if threading.current_thread() is not self._timer:
            self._raise_failure()
        with self._lock:
            if self._tables and self.clock() - self._since >= self.max_delay:
                self._write_buffered()

    def close(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.join()
        try:
            self._raise_failure()
            with self._lock:
                if self._tables:
                    self._write_buffered()
        finally:
            self._close()

    def _write_buffered(self) -> None:
        import pyarrow as pa

        table = pa.concat_tables(self._tables)
        self._tables, self._rows = [], 0
        self._write(table)
        self.rows_written += table.num_rows
        self.writes += 1

    def _write(self, table: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _close(self) -> None:
        pass


def open_sink(spec: str | OutputSpec, env: dict[str, str] | None = None) -> Sink:
    """The sink for an --output value (checked, connected, table present or created)."""
    out = parse_output(spec) if isinstance(spec, str) else spec
    try:
        if out.kind == "parquet":
            from attribution.sinks.parquet import ParquetSink

            return ParquetSink(out)
        from attribution.sinks.clickhouse import ClickHouseSink
    except ImportError as exc:
        extra = "parquet" if out.kind == "parquet" else "clickhouse"
        raise OutputError(
            f"{out.kind} output needs {exc.name}: pip install 'bgp-attribution[{extra}]'"
        ) from None
    return ClickHouseSink(out, env)
