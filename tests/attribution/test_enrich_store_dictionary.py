"""The low-cardinality columns as Arrow dictionaries, for ClickHouse.

ClickHouse stores routers, exporters, provenances, overrides, error codes and
input formats as LowCardinality; enrich hands them to it as Arrow dictionaries
(indices into a few names) instead of a string a row. Whatever form a table
has, the rows stored must be the same: value for value against the string
tables (which Parquet files keep) and the answer-dict reference, through chdb's
insert and through the Arrow file a ClickHouse server is sent.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

import attribution.enrich_arrow as ea
from attribution.clickhouse import ChdbConnection, arrow_payload
from attribution.enrich import resolve_batches
from attribution.sinks import open_sink
from attribution.sinks.table import (
    DICT_SCHEMA,
    LC_DICTIONARY,
    LOW_CARDINALITY,
    NAMES,
    SCHEMA,
    ArrowBatcher,
    conform,
)
from tests.attribution.served import Server
from tests.attribution.test_enrich_store_columns import _batches, _clean, needs_columns
from tests.attribution.test_enrich_stores import DATA

NOW = 1_700_000_000
FILES = ["goflow2.jsonl", "pmacct.jsonl", "nfdump.json", "nfdump-log.jsonl", "native.jsonl"]
# an AS_SET, no route, v6, an unknown exporter (an error), interface override inputs
EXTRA = [
    b'{"exporter":"127.0.1.1","src_addr":"2001:db8:1::1","dst_addr":"2001:db8::9"}',
    b'{"exporter":"127.0.1.1","src_addr":"10.9.1.1","dst_addr":"192.168.1.1","in_if":30}',
    b'{"exporter":"127.0.1.1","src_addr":"10.8.0.1","dst_addr":"10.9.0.7"}',
    b'{"exporter":"127.0.9.9","src_addr":"10.8.0.1","dst_addr":"10.9.0.7"}',
    b'{"exporter":"127.0.1.1","src_addr":"bogus","dst_addr":"10.9.0.7"}',
]


class Made:
    """One answered batch's tables, made while the batch is current (the
    compiled reader's tables of a batch live until the next one is read)."""

    def __init__(self, batch, answers) -> None:
        n = len(batch)
        self.rows = n
        self.errors = len(answers.errors)
        self.compiled = ea.compiled_flows(batch) is not None
        self.strings = ea.store_table(ArrowBatcher(now=lambda: NOW), batch, answers)
        self.dicts = ea.store_table(ArrowBatcher(now=lambda: NOW), batch, answers, True)
        self.python = conform(
            ArrowBatcher(now=lambda: NOW).from_arrays(
                n, batch.column, batch.formats, ea.answer_arrays(answers)
            ),
            True,
        )
        self.reference = ArrowBatcher(now=lambda: NOW).table(
            [batch.flow(i) for i in range(n)], answers.dicts(), batch.formats
        )


@pytest.fixture(scope="module")
def made():
    """Good records of the three compiled formats (their values varied), every
    fixture file and the extra records, in batches of 7 read as enrich reads a
    file: most are taken whole by the compiled reader, and batches differ in
    routers, exporters, formats and errors."""
    lines = _clean(400, 3)
    for name in FILES:
        lines += (DATA / name).read_bytes().splitlines()
    lines += EXTRA
    server = Server()
    try:
        return [Made(b, a) for b, a in resolve_batches(server.target, iter(_batches(lines, 7)))]
    finally:
        server.stop()


@needs_columns
def test_dictionary_tables_hold_the_values_of_the_string_tables_and_the_answer_dicts(made):
    for m in made:
        assert m.strings.schema.equals(SCHEMA)
        assert m.dicts.schema.equals(DICT_SCHEMA)
        for name in NAMES:
            want = m.reference[name].to_pylist()
            assert m.dicts[name].to_pylist() == m.strings[name].to_pylist() == want, name
        for name in LOW_CARDINALITY:
            assert m.dicts.schema.field(name).type == LC_DICTIONARY
    assert sum(m.errors for m in made) >= 3  # the unknown exporter, the bad address, ...
    assert sum(m.compiled for m in made) > len(made) // 2  # the compiled columns' path ran
    assert sum(m.rows for m in made) == 400 + 12 + len(EXTRA)  # every record


def test_the_python_paths_tables_conformed_equal_the_compiled_ones(made):
    for m in made:
        assert m.python.schema.equals(DICT_SCHEMA)
        assert m.dicts.to_pylist() == m.python.to_pylist()


def test_conform_goes_both_ways_with_nulls_and_empty_columns():
    n = 5
    cols = {name: pa.nulls(n, f.type) for name, f in zip(NAMES, SCHEMA, strict=True)}
    cols["router"] = pa.array(["a", None, "b", "a", "b"])
    cols["time"] = pa.array([NOW] * n, pa.timestamp("s", tz="UTC"))
    table = pa.Table.from_arrays([cols[x] for x in NAMES], schema=SCHEMA)
    there = conform(table, True)
    assert there.schema.equals(DICT_SCHEMA)
    back = conform(there, False)
    assert back.schema.equals(SCHEMA)
    assert back.to_pylist() == table.to_pylist()
    assert conform(table, False) is table and conform(there, True) is there


def _rows(conn: ChdbConnection, db: str) -> tuple[list, list]:
    flows = conn.rows(f"SELECT * FROM {db}.flows ORDER BY ALL")
    rollup = conn.rows(
        f"SELECT time, exporter, src_origin_as, dst_origin_as, src_local, dst_local, "
        f"sum(bytes), sum(packets), sum(flows) FROM {db}.flows_5m GROUP BY ALL ORDER BY ALL"
    )
    return flows, rollup


def test_chdb_and_the_server_payload_store_the_rows_of_the_string_tables(made, tmp_path):
    """The sink's dictionary tables (each batch its own dictionaries), the same
    tables as one Arrow IPC file (what clickhouse-connect sends a server; read
    by ClickHouse's Arrow input here) and the string tables: the same rows and
    the same rollup."""
    from clickhouse_connect.driver.query import arrow_buffer

    # one engine per process: every store is a database of one directory; TTLs
    # longer than the fixtures' age (rows past the TTL are dropped as inserted)
    keep = "ttl_days=36500&rollup_ttl_days=36500"
    sink = open_sink(f"chdb:{tmp_path}/db?batch=7&{keep}")
    assert sink.dictionary
    for m in made:
        sink.write_table(m.dicts)
    sink.close()
    conn = ChdbConnection(str(tmp_path / "db"))
    try:
        from attribution.clickhouse_schema import statements

        for db in ("strings", "payload"):
            for stmt in statements(db, "flows", 36500, 36500):
                conn.command(stmt)
        conn.insert_arrow("strings", "flows", pa.concat_tables([m.strings for m in made]))
        dicts = pa.concat_tables([m.dicts for m in made])
        with pytest.raises(pa.ArrowInvalid):  # why arrow_payload merges the dictionaries
            arrow_buffer(dicts)
        names, data = arrow_buffer(arrow_payload(dicts))
        columns = ", ".join(f"`{x}`" for x in names)
        with conn.session.send_insert(f"INSERT INTO payload.flows ({columns})", "Arrow") as ins:
            ins.append(bytes(data))
            ins.finish()
        want = _rows(conn, "strings")
        assert len(want[0]) == sum(m.rows for m in made)
        assert want[1]  # the rollup has rows (errors left out)
        assert _rows(conn, "attribution") == want
        assert _rows(conn, "payload") == want
    finally:
        conn.close()
