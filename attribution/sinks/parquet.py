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

Parts: a PATH with ``{part}`` in its file name (``parquet:/var/lib/flows/flows-{part}.parquet``)
is a series of files, one per row group, each written as ``.partial``,
fsynced and renamed when its row group is full or ``max_delay=`` seconds
(60 by default) after its first row: each part is readable, and durable,
as soon as it is there, without waiting for the run's end. A run
numbers its parts on from the highest one there (``{part}``: eight digits),
so a restarted run adds files and never replaces one: what
``--checkpoint`` needs (a single file is written whole at the end, and a
second run would replace it).
"""

from __future__ import annotations

import glob
import os
import re

import pyarrow.parquet as pq

from attribution.durable import replace_durably
from attribution.sinks import BufferedSink, OutputError, OutputSpec
from attribution.sinks.columns import COLUMNS
from attribution.sinks.table import SCHEMA

ROW_GROUP = 131_072
PLAIN = ("src_addr", "dst_addr")  # no dictionary: near unique in a row group
DICTIONARY = [name for name, _, _ in COLUMNS if name not in PLAIN]
STATISTICS = [name for name, kind, _ in COLUMNS if kind not in ("str", "path", "strs")]


PART = "{part}"
MAX_DELAY = 60.0  # a part is written at most this long after its first row


def next_part(template: str) -> int:
    """One past the highest part number of ``template``'s files there (0 for none)."""
    head, _, tail = template.partition(PART)
    pattern = re.compile(re.escape(os.path.basename(head)) + r"(\d+)" + re.escape(tail) + "$")
    numbers = [
        int(m.group(1))
        for name in glob.glob(glob.escape(head) + "*" + glob.escape(tail))
        if (m := pattern.match(os.path.basename(name)))
    ]
    return max(numbers, default=-1) + 1


class ParquetSink(BufferedSink):
    def __init__(self, spec: OutputSpec) -> None:
        rows = spec.option_int("row_group", ROW_GROUP, 1, 1 << 24)
        self.parts = PART in os.path.basename(spec.path)
        if PART in os.path.dirname(spec.path):
            raise OutputError(f"parquet:{spec.path}: {PART} goes in the file name")
        if "max_delay" in spec.options and not self.parts:
            raise OutputError(f"parquet:{spec.path}: max_delay= needs {PART} in the file name")
        # one file cannot be appended to: buffered without a time limit; parts: max_delay
        delay = spec.option_float("max_delay", MAX_DELAY, 0.0, 86400.0)
        super().__init__(rows, max_delay=delay if self.parts else float("inf"))
        self.path = spec.path
        self.compression = spec.options.get("compression", "zstd")
        self.durable = 0
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(parent):
            raise OutputError(f"parquet:{self.path}: directory {parent} does not exist")
        if self.parts:
            self.part = next_part(self.path)
            self.writer = None
            self.start_timer()  # a quiet --follow input: its part within max_delay
            return
        self.partial = spec.path + ".partial"
        self.writer = self._open(self.partial)

    def _open(self, path: str) -> pq.ParquetWriter:
        try:
            return pq.ParquetWriter(
                path,
                SCHEMA,
                compression=None if self.compression == "none" else self.compression,
                use_dictionary=DICTIONARY,
                write_statistics=STATISTICS,
            )
        except OSError as exc:
            raise OutputError(f"parquet:{self.path}: cannot write: {exc}") from None

    def _write(self, table) -> None:
        if not self.parts:
            self.writer.write_table(table, row_group_size=table.num_rows)
            return
        path = self.path.replace(PART, f"{self.part:08d}")
        writer = self._open(path + ".partial")
        try:
            writer.write_table(table, row_group_size=table.num_rows)
        finally:
            writer.close()
        replace_durably(path + ".partial", path)
        self.part += 1
        self.durable += table.num_rows

    def durable_rows(self) -> int:
        """Rows in parts written and renamed (one file: none until it is closed)."""
        return self.durable

    def _close(self) -> None:
        if self.parts:
            return
        self.writer.close()
        replace_durably(self.partial, self.path)
        self.durable = self.rows_written
