"""The stores' and CSV's flow columns made in C from the records' texts
(attribution._enrich_columns) against the rows they replace.

Whatever the compiled reader took whole, the CSV bytes and the Arrow tables
(Parquet, ClickHouse) must be those the rows give, value for value; and the
files `attribution enrich` writes with the compiled reader must be those of
the Python reader, hostile lines counted and the good records around them
kept.
"""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import attribution.enrich_arrow as ea
import attribution.enrich_records as er
from attribution.enrich import resolve_batches
from attribution.enrich_records import Counters, read_batches
from attribution.enrich_sources import Chunk, _Splitter
from attribution.enrich_writers import CsvWriter
from attribution.sinks.table import NAMES, ArrowBatcher
from tests.attribution.served import Server
from tests.attribution.test_enrich_columns import GOFLOW2, NFDUMP, PMACCT, mutations, variants
from tests.attribution.test_enrich_scan import hostile, noise
from tests.attribution.test_enrich_stores import chdb_rows

DATA = Path(__file__).parent / "data" / "enrich"
needs_columns = pytest.mark.skipif(
    ea.COLUMNS is None or er._enrich_scan is None, reason="compiled modules not built"
)
NOW = 1_650_000_000


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


def _clean(n: int, seed: int) -> list[bytes]:
    """Good records of the three formats the columns are made for, their
    values varied (times, counters, MACs, next hops, v6, exporters)."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        kind = rng.choice((GOFLOW2, PMACCT, NFDUMP))
        rec = dict(kind)
        if kind is GOFLOW2:
            rec["time_flow_end_ns"] = rng.choice(
                [
                    0,
                    1700000000123456789 + k,
                    1700000000987654321 + k,
                    2**62,
                    -5,
                    1,
                    10**18 * 9,
                    2**33 * 10**9,
                ]
            )
            if rng.random() < 0.3:
                rec["time_received_ns"] = 1600000000000000000 + k
            rec["src_mac"] = rng.choice(
                ["", "00:00:00:00:00:00", "0c:00:00:00:00:01", "aa-bb-cc-dd-ee-ff"]
            )
            rec["bgp_next_hop"] = rng.choice(
                ["", "0.0.0.0", "::", "10.0.0.1", "2001:db8::1", "::ffff:0.0.0.0"]
            )
            rec["bytes"] = rng.choice([0, 1500, -1, 2**63 - 1])
            rec["sampling_rate"] = rng.choice([0, 1000, 2**32, -3])
            rec["sampler_address"] = rng.choice(
                ["127.0.1.1", "127.0.1.2", "::ffff:127.0.1.1", "0::1"]
            )
            if rng.random() < 0.2:
                rec.pop("time_flow_end_ns")
        elif kind is PMACCT:
            rec["timestamp_end"] = rng.choice(
                ["2023-11-14 22:14:20.000000", "0000-00-00 00:00:00", "", "0", 0, None,
                 1700000000, 1700000000.25, "1700000001.5", "nonsense"]
            )  # fmt: skip
            if rng.random() < 0.5:
                rec["timestamp_start"] = "2023-11-14 22:00:00"
            rec["packets"] = rng.choice([1, 0, -2])
        else:
            rec["last"] = rng.choice(["2023-11-14T22:14:20.456", "", 0, None, 1700000000, 12.5])
            if rng.random() < 0.5:
                rec["first"] = rng.choice(["2023-11-14T22:00:00", 1600000000])
            if rng.random() < 0.3:
                rec.pop("src4_addr", None)
                rec["src6_addr"] = "2001:db8:1::1"
            rec["bgp4_next_hop"] = rng.choice(["", "0.0.0.0", "10.0.0.7"])
        rec["src_addr" if "src_addr" in rec else "ip_src" if "ip_src" in rec else "src4_addr"] = (
            f"10.{rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        )
        line = json.dumps(rec, separators=(",", ":") if k % 2 else (", ", ": ")).encode()
        if kind is NFDUMP and k % 3 == 0:
            line = line[:-1] + b",}"  # nfdump -o json-log
        out.append(line)
    return out


def _inputs(seed: int) -> list[bytes]:
    """Runs of good records between hostile lines, so that batches are taken
    whole by the compiled reader and others are not."""
    bad = variants() + mutations(seed, 300) + hostile(seed, 600) + noise(seed, 200)
    rng = random.Random(seed)
    rng.shuffle(bad)
    good = _clean(1500, seed)
    out: list[bytes] = []
    while good or bad:
        k = rng.randint(0, 250)
        out += good[:k]
        del good[:k]
        k = rng.randint(0, 8)
        out += bad[:k]
        del bad[:k]
    for path in sorted(DATA.glob("*")):
        out += path.read_bytes().splitlines()
    return out


def _batches(lines: list[bytes], size: int, fmt: str | None = None, whole: bool = True):
    """The batches `enrich` reads with the compiled reader: from whole chunks
    (texts are spans), or from lists of lines (texts are bytes: goflow2-pb)."""
    data = b"\n".join(lines) + b"\n"
    split = _Splitter("in.jsonl", whole=whole)
    chunks = [split.feed(data[at : at + 5000]) for at in range(0, len(data), 5000)]
    chunks.append(split.rest())
    chunks = [*([Chunk("in.jsonl", 1, None, b"")] if whole else []), *(c for c in chunks if c)]
    return list(read_batches(iter(chunks), fmt, Counters(keep=0), size))


def _csv(batch, answers) -> bytes:
    out = io.BytesIO()
    CsvWriter(out).write(batch, answers)
    return out.getvalue()


@needs_columns
@pytest.mark.parametrize(
    ("size", "whole"), [(1, True), (64, True), (4096, True), (1, False), (64, False)]
)
@pytest.mark.parametrize("seed", [1, 2])
def test_flow_columns_in_c_give_the_csv_bytes_and_tables_of_the_rows(
    server, monkeypatch, seed, size, whole
):
    lines = _inputs(seed)
    batches = _batches(lines, size, whole=whole)
    taken = 0
    checked = 0
    for batch, answers in resolve_batches(server.target, iter(batches)):
        n = len(batch)
        got = ea.compiled_flows(batch, now=lambda: NOW)
        batcher = ArrowBatcher(now=lambda: NOW)
        csv = _csv(batch, answers)
        if got is not None:
            taken += n
            table = batcher.from_flow_arrays(
                ea.store_flows(batcher, got, batch.formats), ea.answer_arrays(answers)
            )
        with monkeypatch.context() as m:
            m.setattr(ea, "compiled_flows", lambda *a, **k: None)
            assert _csv(batch, answers) == csv
        expected = ArrowBatcher(now=lambda: NOW).from_arrays(
            n, batch.column, batch.formats, ea.answer_arrays(answers)
        )
        if got is not None:
            assert table.schema == expected.schema
            for name in NAMES:
                assert table[name].equals(expected[name]), name
        checked += n
    assert checked > 1500
    assert taken > {1: 1000, 64: 200, 4096: -1}[size]  # it ran (batches taken whole)


@needs_columns
def test_every_format_alone_is_taken_whole_and_gives_the_rows_values(server):
    rng = random.Random(5)
    for fmt in ("goflow2", "pmacct", "nfdump"):
        marker = {"goflow2": b"sampler_address", "pmacct": b"peer_ip_src"}.get(fmt, b"sysid")
        lines = [x for x in _clean(2000, 9) if marker in x]
        rng.shuffle(lines)
        for size in (7, 4096):
            for batch, answers in resolve_batches(server.target, iter(_batches(lines, size, fmt))):
                got = ea.compiled_flows(batch, now=lambda: NOW)
                assert got is not None
                batcher = ArrowBatcher(now=lambda: NOW)
                table = batcher.from_flow_arrays(
                    ea.store_flows(batcher, got, batch.formats), ea.answer_arrays(answers)
                )
                expected = batcher.from_arrays(
                    len(batch), batch.column, batch.formats, ea.answer_arrays(answers)
                )
                assert table.equals(expected), fmt


FIELD = np.dtype(
    [("ival", "<i8"), ("start", "<i4"), ("length", "<i4"), ("vtype", "<i4"), ("unused", "<i4")]
)
SPAN = np.dtype([("s", "<i8"), ("n", "<i4"), ("c", "<i4")])


def _odd_fields(rng: random.Random, size: int) -> bytes:
    """A record's field table the scanner never makes: offsets inside, at the
    edge of and outside a text of ``size`` bytes, any type, any value."""
    slots = er._enrich_scan.SLOTS
    table = np.zeros(slots, FIELD)
    edges = [-(2**31), -1, 0, 1, 2, size - 2, size - 1, size, size + 1, 2**31 - 1]
    for slot in range(slots):
        if rng.random() < 0.7:
            table[slot] = (
                rng.choice([0, -1, 1, 2**32, 2**40, -(2**63), 2**63 - 1]),
                rng.choice(edges),
                rng.choice(edges),
                rng.choice(range(-1, 9)),
                0,
            )
    return table.tobytes()


@needs_columns
def test_flow_columns_refuse_or_survive_any_field_table_they_are_handed():
    """Field tables the scanner never makes (offsets outside the text or at its
    edge, odd types and values), with texts it would never take, as bytes and as
    spans of a chunk: columns, None or an error naming the record, never a crash
    or a read out of bounds (run under ASan: the recipe in BENCHMARKS.md). Spans
    outside their chunk are an error; no field table, the rows' path (None)."""
    cols = ea.COLUMNS
    slots = er._enrich_scan.SLOTS
    rng = random.Random(6)
    lines = mutations(3, 800) + hostile(4, 1200) + noise(5, 600) + variants()
    lines += [b"", b"{", b"}", b"{}", b'{"', b'{"a":', b'{"a":1', b'{"bytes":-}', b'{"x":[}']
    for k, text in enumerate(lines):
        kind = ("goflow2", "pmacct", "nfdump")[k % 3]
        fields = _odd_fields(rng, len(text))
        try:
            got = cols.flow_columns([text], None, [], [kind], fields=fields)
        except (IndexError, ValueError):  # outside the text; not ASCII, not a number
            pass
        else:
            assert got is None or got["n"] == 1
        if len(text) > 1:  # as a span of a chunk: the text without its last byte
            span = np.array([(3, len(text) - 1, 0)], SPAN).tobytes()
            try:
                got = cols.flow_columns([None], span, [b"xyz" + text], [kind], fields=fields)
            except (IndexError, ValueError):
                pass
            else:
                assert got is None or got["n"] == 1
    none = bytes(slots * FIELD.itemsize)
    bad_spans = [(0, 10, 0), (-1, 5, 0), (0, 0, 0), (2, 2**31 - 1, 0), (0, 3, 1), (0, 3, -1)]
    for start, length, chunk in bad_spans:
        span = np.array([(start, length, chunk)], SPAN).tobytes()
        with pytest.raises(IndexError):
            cols.flow_columns([None], span, [b'{"a":1}'], ["goflow2"], fields=none)
    inside = np.zeros(slots, FIELD)
    inside[0] = (0, 3, 5, 1, 0)  # a string at 3..8 of a 6-byte text
    with pytest.raises(IndexError):
        cols.flow_columns([b'{"a":1}'], None, [], ["goflow2"], fields=inside.tobytes())
    with pytest.raises(ValueError):  # a table shorter than the batch
        cols.flow_columns([b'{"a":1}', b'{"a":1}'], None, [], ["goflow2"] * 2, fields=none)
    assert cols.flow_columns([None], b"", [b'{"a":1}'], ["goflow2"], fields=none) is None
    assert cols.flow_columns([b'{"a":1}'], None, [], ["goflow2"]) is None  # no table
    assert cols.flow_columns([b'{"exporter":"1.2.3.4"}'], None, [], ["native"], fields=none) is None


@needs_columns
def test_a_batch_read_without_field_tables_takes_the_rows_path_with_the_same_values():
    """read_batches(fields=False) (JSON lines out keeps no field table): the
    stores' columns come from the rows, the same values."""
    data = b"\n".join(_clean(300, 11)) + b"\n"

    def read(fields: bool):
        chunk = _Splitter("-", whole=True).feed(data)
        return read_batches(iter([chunk]), None, Counters(), 64, fields)

    for with_fields, without in zip(read(True), read(False), strict=True):
        assert without.packed.field_table(len(without)) is None
        assert ea.compiled_flows(without, now=lambda: NOW) is None
        made = ea.compiled_flows(with_fields, now=lambda: NOW)
        assert made is not None and made["n"] == len(without)
        assert with_fields.rows == without.rows


@needs_columns
def test_the_field_table_is_a_view_the_table_cannot_move_under():
    """Packed.field_table hands a read-only view of the scanner's table, not a
    copy; while one is alive the table refuses to grow (it would move the
    memory the view reads), and grows again once the view is gone. Records of
    the three formats mixed in one table (only the slots a record has are
    written) give the columns their rows give."""
    data = b"\n".join(_clean(300, 12)) + b"\n"
    chunk = _Splitter("-", whole=True).feed(data)
    (batch,) = read_batches(iter([chunk]), None, Counters(), 4096, True)
    assert len(batch) == 300 and batch.packed.taken == 300
    view = batch.packed.field_table(len(batch))
    assert type(view) is memoryview and view.readonly
    assert len(view) == 300 * er.SCANNER.SLOTS * er.SCANNER.FIELD_SIZE
    with pytest.raises(BufferError):
        batch.packed.field_table(1 << 20)
    made = ea.compiled_flows(batch, now=lambda: NOW)
    assert made is not None and made["n"] == 300
    del view
    assert (
        len(batch.packed.field_table(1 << 20))
        == (1 << 20) * er.SCANNER.SLOTS * er.SCANNER.FIELD_SIZE
    )
    batch.rows  # noqa: B018 - made from the texts, as a writer asks for them
    assert ea.compiled_flows(batch, now=lambda: NOW) is None  # rows made: the rows path


@needs_columns
def test_string_buffers_hold_the_values_pa_array_makes():
    rng = random.Random(8)
    for _ in range(200):
        values = [
            None
            if rng.random() < 0.2
            else "".join(rng.choice("aé€😀:.0 ") for _ in range(rng.randint(0, 9)))
            for _ in range(rng.randint(0, 40))
        ]
        assert ea._strings(values).equals(pa.array(values, pa.string()))
    with pytest.raises(TypeError):
        ea.COLUMNS.strings(["a", 1])


def _run(server, args: list[str], python: bool) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("ATTRIBUTION_ENRICH_READER", None)
    if python:
        env["ATTRIBUTION_ENRICH_READER"] = "python"
    cmd = [sys.executable, "-m", "attribution.cli", "enrich", "--target", server.target, *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def _stats(path: Path) -> dict:
    stats = json.loads(path.read_text())
    # the first 100 examples: which come first hangs on the reader and writer threads
    for key in ("reader", "compiled_records", "examples"):
        stats.pop(key)
    return stats


@needs_columns
def test_stores_hold_what_the_python_reader_stores_hostile_lines_counted(server, tmp_path):
    """Parquet files and a chdb store written by `attribution enrich` with the
    compiled reader (its columns in C) and with the Python reader: the same
    rows, the same counters, bad records counted with their reason."""
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(_inputs(3)) + b"\n")
    got = {}
    for python in (False, True):
        name = "python" if python else "compiled"
        pq_path = tmp_path / f"{name}.parquet"
        db = tmp_path / f"{name}-db"
        stats = tmp_path / f"{name}.json"
        for output in (f"parquet:{pq_path}", f"chdb:{db}?ttl_days=36500&rollup_ttl_days=36500"):
            done = _run(
                server,
                ["--batch-size", "300", "--stats", str(stats), "--output", output, str(path)],
                python,
            )
            assert done.returncode == 0, done.stderr
        table = pq.read_table(pq_path)
        rows = chdb_rows(
            db, f"SELECT {', '.join(n for n in NAMES if n != 'time')} FROM attribution.flows"
        )
        rows.sort(key=repr)  # the order of a part's rows is the table's key, not the input's
        rollup = chdb_rows(  # its buckets hang on the time of writing for some records
            db, "SELECT sum(bytes), sum(packets), sum(flows) FROM attribution.flows_5m"
        )
        got[name] = (table, rows, rollup, _stats(stats), done.stderr)
    compiled, python = got["compiled"], got["python"]
    assert compiled[3] == python[3]  # the counters, bad records and their reasons
    assert compiled[3]["bad_total"] > 500 and compiled[3]["written"] > 1500
    assert compiled[0].schema == python[0].schema
    for name in NAMES:
        if name == "time":  # records without a usable time get the time of writing
            continue
        assert compiled[0][name].equals(python[0][name]), name
    timed = [t is not None for t in compiled[0]["time"].to_pylist()]
    assert all(timed)
    assert compiled[1] == python[1]
    assert compiled[2] == python[2] and compiled[2][0][2] > 1000  # the rollup
    assert len(compiled[1]) == compiled[3]["written"]


@needs_columns
def test_a_store_run_of_the_compiled_reader_does_not_import_pandas(server, tmp_path):
    """pyarrow imports pandas on its first ``pa.array`` (~0.35 CPU-s of start-up):
    the compiled path makes its arrays from buffers."""
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(_clean(500, 4)) + b"\n")
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('pandas' in sys.modules, file=sys.stderr))\n"
        "from attribution.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    for output in (["--output", f"parquet:{tmp_path / 'x.parquet'}"], ["--output-format", "csv"]):
        args = ["enrich", "--target", server.target, *output, str(path)]
        done = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr.strip().splitlines()[-1] == "False", done.stderr
