"""`attribution enrich --output`: Parquet files and ClickHouse (chdb, embedded, a real engine).

Expected answers are the hand-written ones of test_enrich.py (the world of
tests/attribution/helpers.py); rollup sums are computed here in Python from
the records the test writes, not by the code under test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from attribution.clickhouse import ChdbConnection, ClickHouseError
from attribution.convert import error_answer
from attribution.enrich import Record
from attribution.sinks import OutputError, open_sink, parse_output
from attribution.sinks.table import NAMES
from tests.attribution.served import Server

DATA = Path(__file__).parent / "data" / "enrich"
ASES = ("src_origin_as", "src_peer_as", "dst_origin_as", "dst_peer_as")
GOFLOW2_ASES = [
    (65011, 65010, 65005, 65004),
    (65013, 65010, 4200000001, 65001),
    (65006, 65020, 64500, 0),
]


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


def enrich(server, *args, stdin=None, timeout=120):
    cmd = [sys.executable, "-m", "attribution.cli", "enrich", "--target", server.target, *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)


def chdb_rows(path: Path, query: str) -> list[tuple]:
    conn = ChdbConnection(str(path))
    try:
        return conn.rows(query)
    finally:
        conn.close()


def test_parquet_output_holds_each_record_with_its_answer(server, tmp_path):
    out = tmp_path / "flows.parquet"
    run = enrich(server, "--output", f"parquet:{out}", str(DATA / "goflow2.jsonl"))
    assert run.returncode == 0, run.stderr
    assert "written 4" in run.stderr
    assert not (tmp_path / "flows.parquet.partial").exists()
    rows = pq.read_table(out).to_pylist()
    assert [tuple(r[k] for k in ASES) for r in rows[:3]] == GOFLOW2_ASES
    first = rows[0]
    assert first["time"].timestamp() == 1700000000  # time_flow_end_ns / 1e9
    assert (first["exporter"], first["in_if"], first["out_if"]) == ("127.0.1.1", 10, 11)
    assert (first["bytes"], first["packets"], first["sampling_rate"]) == (1500, 1, 1000)
    assert first["input_format"] == "goflow2"
    assert first["dst_as_path"] == [65004, 65004, 65004, 65005, 65005]  # helpers.py, prepended
    assert first["dst_via_as"] == 65005  # the AS behind the neighbor, prepends skipped
    assert rows[1]["override"] == "ix-peer-a" and rows[1]["src_asymmetric"] is True
    assert rows[2]["dst_origin_provenance"] == "local"
    assert rows[3]["error_code"] == "bad_address"  # kept, with its reason
    assert rows[3]["src_origin_as"] == 0


def test_chdb_output_stores_the_records_in_the_schema_it_creates(server, tmp_path):
    db = tmp_path / "db"
    # the fixture's flows are from 2023: a 30-day TTL would drop them on insert
    spec = f"chdb:{db}?ttl_days=36500&rollup_ttl_days=36500"
    run = enrich(server, "--output", spec, str(DATA / "goflow2.jsonl"))
    assert run.returncode == 0, run.stderr
    got = chdb_rows(
        db,
        "SELECT toUnixTimestamp(time), exporter, src_origin_as, src_peer_as, dst_origin_as, "
        "dst_peer_as, override, error_code FROM attribution.flows ORDER BY time",
    )
    assert [r[2:6] for r in got[:3]] == GOFLOW2_ASES
    assert [r[0] for r in got] == [1700000000, 1700000001, 1700000002, 1700000004]
    assert got[1][6] == "ix-peer-a"
    assert got[3][7] == "bad_address"
    # the 5-minute rollup got the three answered flows, not the error
    rollup = chdb_rows(db, "SELECT sum(flows), sum(bytes) FROM attribution.flows_5m")
    assert rollup == [(3, 1500 + 3000 + 64)]


def test_a_second_run_appends_to_the_chdb_store(server, tmp_path):
    spec = f"chdb:{tmp_path / 'db'}?ttl_days=36500&rollup_ttl_days=36500"
    for _ in range(2):
        run = enrich(server, "--output", spec, str(DATA / "goflow2.jsonl"))
        assert run.returncode == 0, run.stderr
    assert chdb_rows(tmp_path / "db", "SELECT count() FROM attribution.flows") == [(8,)]


def _records(n: int, now: int) -> tuple[list[Record], list[dict]]:
    recs, answers = [], []
    for i in range(n):
        flow = {
            "exporter": "192.0.2.1",
            "src_addr": "10.0.0.1",
            "dst_addr": "8.8.8.8",
            "in_if": 1 + i % 2,
            "bytes": 100 * (i + 1),
            "packets": 1,
            "sampling_rate": 10,
            "time": now - 600 * (i % 3),  # three 5-minute buckets
        }
        recs.append(Record(f"t:{i}", "native", flow, flow))
        answer = error_answer("", "")
        answer.update(
            router="r1",
            dst_origin_as=15169 + i % 2,
            dst_peer_as=3356,
            dst_as_path=[3356, 15169 + i % 2],
            error=None,
            error_code=None,
        )
        answers.append(answer)
    return recs, answers


def test_the_rollup_sums_bytes_packets_and_flows_per_5_minutes_and_key(tmp_path):
    now = (int(time.time()) // 300) * 300 + 17
    recs, answers = _records(30, now)
    sink = open_sink(f"chdb:{tmp_path / 'db'}?batch=7")
    try:
        for i in range(0, 30, 4):
            sink.write_batch(recs[i : i + 4], answers[i : i + 4])
            sink.flush()
    finally:
        sink.close()
    expected: dict[tuple, list[int]] = {}
    for r, a in zip(recs, answers, strict=True):
        key = (r.flow["time"] - r.flow["time"] % 300, r.flow["in_if"], a["dst_origin_as"])
        sums = expected.setdefault(key, [0, 0, 0])
        sums[0] += r.flow["bytes"]
        sums[1] += 1
        sums[2] += 1
    got = chdb_rows(
        tmp_path / "db",
        "SELECT toUnixTimestamp(time), in_if, dst_origin_as, sum(bytes), sum(packets), "
        "sum(flows) FROM attribution.flows_5m GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )
    assert {r[:3]: list(r[3:]) for r in got} == expected
    assert chdb_rows(
        tmp_path / "db", "SELECT DISTINCT dst_via_as FROM attribution.flows_5m ORDER BY 1"
    ) == [(15169,), (15170,)]


def test_rows_are_buffered_into_large_writes_and_a_trickle_is_written_after_max_delay(tmp_path):
    recs, answers = _records(12, int(time.time()))
    path = tmp_path / "f.parquet"
    sink = open_sink(f"parquet:{path}?row_group=5")
    for i in range(0, 12, 4):
        sink.write_batch(recs[i : i + 4], answers[i : i + 4])
    sink.close()
    meta = pq.ParquetFile(path).metadata
    # 4 + 4 reach 5 -> one group of 8; the last 4 at close: memory holds one group
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [8, 4]
    # statistics where readers prune with them, not for text and lists; addresses plain
    group = meta.row_group(0)
    columns = {group.column(k).path_in_schema: group.column(k) for k in range(group.num_columns)}
    assert columns["time"].statistics.has_min_max
    assert columns["dst_origin_as"].statistics.has_min_max
    assert columns["router"].statistics.has_min_max
    assert columns["src_addr"].statistics is None
    assert columns["dst_prefix"].statistics is None
    assert "PLAIN_DICTIONARY" not in str(columns["dst_addr"].encodings)
    assert "RLE_DICTIONARY" not in str(columns["dst_addr"].encodings)
    assert "RLE_DICTIONARY" in str(columns["router"].encodings)
    table = pq.read_table(path)
    assert table["src_addr"].to_pylist() == [r.flow["src_addr"] for r in recs]

    clock = [0.0]
    sink = open_sink(f"chdb:{tmp_path / 'db'}?batch=1000&max_delay=5")
    sink.clock = lambda: clock[0]
    try:
        sink.write_batch(recs[:2], answers[:2])
        sink.flush()
        assert sink.writes == 0  # young and small: kept
        clock[0] = 5.0
        sink.flush()
        assert sink.writes == 1 and sink.rows_written == 2
        assert sink.conn.rows("SELECT count() FROM attribution.flows") == [(2,)]
    finally:
        sink.close()


def test_rows_reach_clickhouse_within_max_delay_when_the_input_goes_quiet(tmp_path):
    """enrich calls flush() only after a batch: a --follow input that stops after a
    few records made no more calls, and its rows waited in the buffer until the next
    records came (hours, on a quiet night). The sink's own timer writes them."""
    recs, answers = _records(3, int(time.time()))
    sink = open_sink(f"chdb:{tmp_path / 'db'}?batch=1000&max_delay=0.2")
    try:
        sink.write_batch(recs, answers)
        sink.flush()  # the last call enrich makes before the input goes quiet
        deadline = time.monotonic() + 60
        while sink.conn.rows("SELECT count() FROM attribution.flows") != [(3,)]:
            assert time.monotonic() < deadline, "buffered rows never written"
            time.sleep(0.05)
    finally:
        sink.close()
    assert sink.rows_written == 3


def test_records_without_a_usable_time_get_the_time_they_were_written(tmp_path):
    recs, answers = _records(3, 0)
    recs[0].flow["time"] = None
    recs[1].flow["time"] = "not a time"
    recs[2].flow["time"] = "2026-01-02T03:04:05Z"
    before = int(time.time())
    sink = open_sink(f"parquet:{tmp_path / 'f.parquet'}")
    sink.write_batch(recs, answers)
    sink.close()
    after = int(time.time())
    times = [r["time"].timestamp() for r in pq.read_table(tmp_path / "f.parquet").to_pylist()]
    assert before <= times[0] <= after and before <= times[1] <= after
    assert times[2] == 1767323045


def test_hostile_field_values_are_stored_as_zero_not_a_crash(tmp_path):
    recs, answers = _records(2, int(time.time()))
    recs[0].flow.update(in_if=-1, bytes=2**70, sampling_rate="x", exporter=["no"])
    answers[0].update(dst_local_pref=-5, dst_as_path=[[1, "a"], 2**40, 7])
    sink = open_sink(f"parquet:{tmp_path / 'f.parquet'}")
    sink.write_batch(recs, answers)
    sink.close()
    rows = pq.read_table(tmp_path / "f.parquet").to_pylist()
    assert (rows[0]["in_if"], rows[0]["bytes"], rows[0]["sampling_rate"]) == (0, 0, 0)
    assert rows[0]["exporter"] == "['no']" and rows[0]["dst_local_pref"] is None
    assert rows[0]["dst_as_path"] == [1, 7]
    assert rows[1]["bytes"] == 200  # the good record next to it is intact


def test_a_chdb_table_without_the_columns_is_refused_naming_them(tmp_path):
    conn = ChdbConnection(str(tmp_path / "db"))
    try:
        conn.command("CREATE DATABASE attribution")
        conn.command(
            "CREATE TABLE attribution.flows (time DateTime, exporter String) "
            "ENGINE = MergeTree ORDER BY time"
        )
    finally:
        conn.close()
    with pytest.raises(ClickHouseError, match=r"lacks the columns input_format, src_addr"):
        open_sink(f"chdb:{tmp_path / 'db'}")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("clickhouse://default:secret@127.0.0.1/db", "ATTRIBUTION_CLICKHOUSE_PASSWORD"),
        ("clickhouse:///db", "no host"),
        ("clickhouse://127.0.0.1/db?tabel=x", "unknown option tabel"),
        ("clickhouse://127.0.0.1/db?table=flows;DROP", "letters, digits or underscores"),
        ("clickhouse://127.0.0.1/a/b", "one level only"),
        ("clickhouse://127.0.0.1:99999/db", "Port out of range"),
        ("parquet:", "needs a file path"),
        ("parquet:/tmp/x.parquet?compression=lzma", "compression='lzma'"),
        ("chdb:", "needs a directory"),
        ("chdb:/tmp/x?batch=0", None),
        ("kafka://broker/topic", "use parquet:PATH"),
    ],
)
def test_bad_output_specs_are_refused_with_the_reason(spec, message):
    if message is None:  # valid syntax, bad value: refused when the sink opens
        out = parse_output(spec)
        with pytest.raises(OutputError, match="batch=0: must be between 1"):
            out.option_int("batch", 1, 1, 10)
        return
    with pytest.raises(OutputError, match=message):
        parse_output(spec)


def test_clickhouse_urls_name_host_port_database_table_and_tls():
    out = parse_output("clickhouses://writer@ch.example.net/netflow?table=attributed")
    assert (out.host, out.port, out.secure, out.user) == ("ch.example.net", 8443, True, "writer")
    assert (out.database, out.table) == ("netflow", "attributed")
    out = parse_output("clickhouse://127.0.0.1")
    assert (out.port, out.secure, out.database, out.table) == (8123, False, "attribution", "flows")


def test_enrich_refuses_a_bad_output_before_reading_anything(server):
    run = enrich(server, "--output", "clickhouse://u:pw@127.0.0.1/db", stdin="")
    assert run.returncode == 2
    assert "--output: a password in the URL" in run.stderr
    run = enrich(server, "--output", "parquet:/nonexistent-dir/x.parquet", stdin="")
    assert run.returncode == 2
    assert "directory /nonexistent-dir does not exist" in run.stderr
    run = enrich(server, "--output-format", "csv", "--output", "parquet:/tmp/x.parquet", stdin="")
    assert run.returncode == 2 and "--output-format applies to stdout" in run.stderr


def test_stored_columns_are_the_documented_schema():
    # the JSON answer fields a store keeps: every flag, the four AS numbers, provenance
    answer = error_answer("x", "y")
    kept = {k for k in answer if k in NAMES}
    assert {"router", *ASES, "fallback", "dst_next_hop_mismatch", "error"} <= kept
    assert json.dumps(NAMES)  # plain names, no dotted paths


def test_arrow_columns_from_the_packed_answers_equal_those_from_answer_dicts(server):
    """The stores' fast path (attribution.enrich_arrow: numpy records -> Arrow) and
    the answer-dict path give the same table, errors, AS_SETs, communities and
    overrides included (every fixture file through the real service)."""
    from attribution.enrich import resolve_batches
    from attribution.enrich_arrow import answer_arrays
    from attribution.enrich_records import Counters, read_batches
    from attribution.enrich_sources import Chunk, read_fd
    from attribution.sinks.table import ArrowBatcher

    files = ["goflow2.jsonl", "pmacct.jsonl", "nfdump.json", "nfdump-log.jsonl", "native.jsonl"]
    chunks = []
    for name in files:
        with open(DATA / name, "rb") as f:
            chunks.extend(c for c in read_fd(f.fileno(), name) if c is not None)
    # routes with communities, local_pref, MED-less, an AS_SET, no route, v6
    lines = [
        b'{"exporter":"127.0.1.1","src_addr":"2001:db8:1::1","dst_addr":"2001:db8::9"}',
        b'{"exporter":"127.0.1.1","src_addr":"10.9.1.1","dst_addr":"192.168.1.1","in_if":30}',
        b'{"exporter":"127.0.1.1","src_addr":"10.8.0.1","dst_addr":"10.9.0.7"}',
        b'{"exporter":"127.0.9.9","src_addr":"10.8.0.1","dst_addr":"10.9.0.7"}',
    ]
    chunks.append(Chunk("extra", 1, lines))
    batches = list(read_batches(iter(chunks), None, Counters(), 5))
    checked = errors = 0
    for batch, answers in resolve_batches(server.target, iter(batches)):
        n = len(batch)
        by_dicts = ArrowBatcher(now=lambda: 1_700_000_000).table(
            [batch.flow(i) for i in range(n)], answers.dicts(), batch.formats
        )
        by_columns = ArrowBatcher(now=lambda: 1_700_000_000).from_arrays(
            n, batch.column, batch.formats, answer_arrays(answers)
        )
        assert by_columns.schema == by_dicts.schema
        for name in by_dicts.column_names:
            assert by_columns[name].to_pylist() == by_dicts[name].to_pylist(), name
        checked += n
        errors += len(answers.errors)
    assert checked == 4 + 3 + 3 + 2 + 4  # every record read, per file
    assert errors >= 3  # bad address, family mismatches, the unknown exporter


def test_jobs_store_what_one_process_stores(server, tmp_path):
    """--jobs 2 --output parquet: the workers send Arrow to the main process, which
    stores it in input order: the same rows as one process."""
    files = ["goflow2.jsonl", "pmacct.jsonl", "nfdump.json", "nfdump-log.jsonl", "native.jsonl"]
    tables = []
    for jobs in (1, 2):
        path = tmp_path / f"flows-{jobs}.parquet"
        out = enrich(
            server, "--jobs", str(jobs), "--batch-size", "2", "--output", f"parquet:{path}",
            *(str(DATA / f) for f in files),
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        tables.append(pq.read_table(path))
    one, two = tables
    assert one.num_rows == two.num_rows == 12
    for name in NAMES:
        if name != "time":  # records without one get the time they were stored
            assert two[name].to_pylist() == one[name].to_pylist(), name


def test_jobs_store_into_chdb_what_one_process_stores(server, tmp_path):
    """--jobs 2 --output chdb: the workers send the low-cardinality columns as
    Arrow dictionaries (each block its own), the main process inserts them:
    the same rows as one process."""
    files = ["goflow2.jsonl", "pmacct.jsonl", "nfdump.json", "nfdump-log.jsonl", "native.jsonl"]
    rows = []
    for jobs in (1, 2):
        db = tmp_path / f"db-{jobs}"
        out = enrich(
            server, "--jobs", str(jobs), "--batch-size", "2",
            "--output", f"chdb:{db}?ttl_days=36500&rollup_ttl_days=36500",
            *(str(DATA / f) for f in files),
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        names = ", ".join(n for n in NAMES if n != "time")  # no time: the time stored
        rows.append(chdb_rows(db, f"SELECT {names} FROM attribution.flows ORDER BY ALL"))
    one, two = rows
    assert len(one) == 12
    assert two == one


def test_route_columns_taken_from_the_growing_stream_table_are_each_routes_own_fields():
    """A stream's routes arrive a few per reply; the Arrow route table grows with
    them (its chunks merged as they pile up) and each batch takes its records'
    route fields by index: the same fields as made route by route, no route
    (-1) included, after every growth."""
    import numpy as np

    from attribution.enrich_arrow import _NO_ROUTE, _route_columns, _route_row
    from attribution.enrich_wire import RouteDictionary, csv_path
    from attribution.v1 import attribution_pb2 as pb

    def route(k: int) -> pb.Route:
        segs = [pb.AsPathSegment(type=pb.AsPathSegment.AS_SEQUENCE, asns=[65000 + k % 7, k])]
        if k % 5 == 0:
            segs.append(pb.AsPathSegment(type=pb.AsPathSegment.AS_SET, asns=[k + 1, k + 2]))
        return pb.Route(
            prefix=f"10.{k >> 8}.{k & 255}.0/24",
            as_path=segs,
            next_hop="" if k % 3 else "127.0.0.99",
            local_pref=k,
            has_local_pref=k % 2 == 0,
            med=k * 2,
            has_med=k % 4 == 0,
            communities=[f"65000:{k}"] * (k % 3),
            large_communities=[f"65000:1:{k}"] * (k % 2),
        )

    routes = RouteDictionary()
    rng = np.random.default_rng(3)
    made = 0
    for step in range(60):  # more growths than the table keeps chunks
        new = [route(k) for k in range(made, made + int(rng.integers(1, 9)))]
        routes = routes.update(pb.AttributionColumns(routes=new, route_base=made))
        made += len(new)
        ks = rng.integers(-1, made, size=int(rng.integers(1, 40)))
        rows = [_NO_ROUTE if k < 0 else _route_row(routes.routes[k]) for k in ks.tolist()]
        got = _route_columns(routes, ks, dst=True)
        text = _route_columns(routes, ks, dst=False, text=True)
        assert got["prefix"].to_pylist() == [r[0] for r in rows], step
        assert got["as_path"].to_pylist() == [r[1] for r in rows]
        assert got["via"].tolist() == [r[2] for r in rows]
        assert got["communities"].to_pylist() == [r[3] for r in rows]
        assert got["large_communities"].to_pylist() == [r[4] for r in rows]
        assert got["local_pref"].to_pylist() == [r[5] for r in rows]
        assert got["med"].to_pylist() == [r[6] for r in rows]
        assert got["next_hop"].to_pylist() == [r[7] for r in rows]
        assert text["as_path"].to_pylist() == [csv_path(r[8]) for r in rows]
    assert len(routes.extra[("arrow_table", False)].chunks) <= 17


def test_json_route_pieces_from_the_growing_stream_table_are_each_routes_own_fields():
    """The JSON writer's per-stream piece table (grown past its first capacity)
    holds each route's src and dst fields as side_json encodes them one by one."""
    from attribution.enrich_wire import RouteDictionary
    from attribution.v1 import attribution_pb2 as pb

    routes = RouteDictionary()
    made = 0
    for step in range(30):
        new = [
            pb.Route(
                prefix=f"10.0.{k}.0/24",
                as_path=[pb.AsPathSegment(type=pb.AsPathSegment.AS_SEQUENCE, asns=[k, 65001])],
                communities=[f"65000:{k}"] * (k % 2),
                local_pref=k,
                has_local_pref=k % 3 == 0,
            )
            for k in range(made, made + 7)
        ]
        routes = routes.update(pb.AttributionColumns(routes=new, route_base=made))
        made += len(new)
        src = routes.piece_table("src", made)
        dst = routes.piece_table("dst", made)
        for k in range(-1, made):
            assert src[k + 1] == routes.side_json("src", k) + b",", (step, k)
            assert dst[k + 1] == routes.side_json("dst", k), (step, k)
