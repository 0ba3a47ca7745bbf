"""``--output parquet:PATH``: attributed flows into one Parquet file, row group by row group.

The file is written as ``PATH.partial`` and renamed to PATH when the run ends
(also on Ctrl-C), so a reader never sees a file without its footer; a run that
is killed leaves only the ``.partial``. Memory: one row group
(``row_group=`` rows, 131,072 by default) of Arrow columns.
"""

from __future__ import annotations

import os

import pyarrow.parquet as pq

from attribution.sinks import BufferedSink, OutputError, OutputSpec
from attribution.sinks.table import SCHEMA

ROW_GROUP = 131_072


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
            )
        except OSError as exc:
            raise OutputError(f"parquet:{self.path}: cannot write: {exc}") from None

    def _write(self, table) -> None:
        self.writer.write_table(table, row_group_size=table.num_rows)

    def _close(self) -> None:
        self.writer.close()
        os.replace(self.partial, self.path)
