"""``--output parquet:PATH``: attributed flows into one Parquet file, row group by row group.

The file is written as ``PATH.partial`` and renamed to PATH when the run ends
(also on Ctrl-C), so a reader never sees a file without its footer; a run that
is killed leaves only the ``.partial``. Memory: one row group
(``row_group=`` rows, 131,072 by default) of Arrow columns.

Encoding: Parquet's dictionary encoding and min/max statistics cost CPU for
every value (together ~25% of the writer's instructions). Flow addresses are
nearly unique within a row group, so their dictionary overflows its page
and is dropped anyway: they are written plain (smaller files too, with zstd).
Statistics are kept where a reader prunes row groups with them (time, AS
numbers, routers, counters, flags: the numeric and low-cardinality columns)
and not written for free text and lists (addresses, prefixes, AS paths,
communities, error messages), whose ranges span every row group. Neither
changes a value read back.
"""

from __future__ import annotations

import os

import pyarrow.parquet as pq

from attribution.sinks import BufferedSink, OutputError, OutputSpec
from attribution.sinks.columns import COLUMNS
from attribution.sinks.table import SCHEMA

ROW_GROUP = 131_072
PLAIN = ("src_addr", "dst_addr")  # no dictionary: near unique in a row group
DICTIONARY = [name for name, _, _ in COLUMNS if name not in PLAIN]
STATISTICS = [name for name, kind, _ in COLUMNS if kind not in ("str", "path", "strs")]


class ParquetSink(BufferedSink):
    def __init__(self, spec: OutputSpec) -> None:
        rows = spec.option_int("row_group", ROW_GROUP, 1, 1 << 24)
        # a Parquet file cannot be appended to: buffer without a time limit
        super().__init__(rows, max_delay=float("inf"))
        self.path = spec.path
        self.partial = spec.path + ".partial"
        compression = spec.options.get("compression", "zstd")
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(parent):
            raise OutputError(f"parquet:{self.path}: directory {parent} does not exist")
        try:
            self.writer = pq.ParquetWriter(
                self.partial,
                SCHEMA,
                compression=None if compression == "none" else compression,
                use_dictionary=DICTIONARY,
                write_statistics=STATISTICS,
            )
        except OSError as exc:
            raise OutputError(f"parquet:{self.path}: cannot write: {exc}") from None

    def _write(self, table) -> None:
        self.writer.write_table(table, row_group_size=table.num_rows)

    def _close(self) -> None:
        self.writer.close()
        os.replace(self.partial, self.path)
