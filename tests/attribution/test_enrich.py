"""`attribution enrich` against a real gRPC service over the hand-fed test world.

The fixtures under data/enrich/ are records written from each collector's
documented JSON format (goflow2 docs/protocols.md, pmacct's print plugin,
nfdump's output_json.c). Expected answers come from the world's routes in
tests/attribution/helpers.py, written out by hand here, not from the code
under test:

  edge1 (exporter 127.0.1.1, neighbor 127.0.0.11):
    10.0.0.0/8 65001 65002 · 10.1.0.0/16 65001 65003 · 10.1.2.0/24 65004.. 65005
    10.9.0.0/16 65001 65006 {65007,65008} · 192.168.0.0/16 (empty: local 64500)
    172.16.0.0/12 65010 65011 · 2001:db8::/32 65001 4200000001
    2001:db8:1::/48 65012 65013
  overrides on 127.0.1.1: in_if 20 + MAC 02:00:00:00:00:0a -> 65010 (ix-peer-a);
                          in_if 30 -> 65020 (pni-b)
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from attribution.answers import FLAG_NAMES
from attribution.enrich import CSV_COLUMNS, resolve_batches
from attribution.enrich_decode import FLOW_FIELDS
from attribution.enrich_records import FlowBatch
from attribution.enrich_sources import NEXT, _Splitter, chunk_lines
from attribution.flowformats import ObjectSplitter, goflow2_to_flow, nfdump_to_flow
from tests.attribution.helpers import wait_for_lines
from tests.attribution.served import Server

DATA = Path(__file__).parent / "data" / "enrich"
ASES = ("src_origin_as", "src_peer_as", "dst_origin_as", "dst_peer_as")


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


def enrich(server, *args, stdin=None, timeout=120):
    cmd = [sys.executable, "-m", "attribution.cli", "enrich", "--target", server.target, *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)


def rows(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def ases(row: dict) -> tuple:
    return tuple(row[k] for k in ASES)


def test_goflow2_records_get_the_answers_of_their_routes_and_keep_their_fields(server):
    out = enrich(server, str(DATA / "goflow2.jsonl"))
    assert out.returncode == 0, out.stderr
    got = rows(out.stdout)
    assert [r["sequence_num"] for r in got[:2]] == [41, 42]  # goflow2's own fields kept
    assert got[0]["time_flow_end_ns"] == 1700000000000000000
    assert ases(got[0]) == (65011, 65010, 65005, 65004)  # 172.16/12 -> 10.1.2/24
    # v6, in_if 20 with the IX MAC: the override sets the src peer, the RIB the rest
    assert ases(got[1]) == (65013, 65010, 4200000001, 65001)
    assert (got[1]["override"], got[1]["src_asymmetric"]) == ("ix-peer-a", True)
    # src_mac as a 48-bit integer (older goflow2, render: none); in_if 30 -> pni-b
    assert ases(got[2]) == (65006, 65020, 64500, 0)
    assert got[2]["override"] == "pni-b"
    assert got[2]["dst_origin_provenance"] == "local"
    assert got[3]["error_code"] == "bad_address"  # written, with the reason
    assert len(got) == 4


def test_pmacct_print_json_markers_skipped_and_records_answered(server):
    out = enrich(server, "--input-format", "pmacct", str(DATA / "pmacct.jsonl"))
    assert out.returncode == 0, out.stderr
    got = rows(out.stdout)
    assert len(got) == 3
    assert ases(got[0]) == (65003, 65020, 65011, 65010)
    assert got[0]["writer_id"] == "default_print/4711"
    assert got[1]["error_code"] == "family_mismatch"
    assert ases(got[2]) == (65002, 65001, 65005, 65004)
    assert "pmacct.jsonl:4: bad_record: pmacct: peer_ip_src: missing" in out.stderr


def test_nfdump_json_array_and_json_log_lines(server):
    out = enrich(server, str(DATA / "nfdump.json"), str(DATA / "nfdump-log.jsonl"))
    assert out.returncode == 0, out.stderr
    got = rows(out.stdout)
    assert len(got) == 3
    assert ases(got[0]) == (65006, 65010, 65005, 65004)  # in_if 20 + in_src_mac: ix-peer-a
    assert got[0]["tcp_flags"] == "...AP.S."
    assert ases(got[1]) == (65013, 65012, 4200000001, 65001)
    # json-log line from the router's neighbor address: no override on that exporter
    assert ases(got[2]) == (65002, 65001, 65011, 65010)
    # the third array object has no ip4_router: its first line is reported
    lines = (DATA / "nfdump.json").read_text().splitlines()
    third = [i for i, line in enumerate(lines, 1) if line == "{"][2]
    assert f"nfdump.json:{third}: bad_record: nfdump: ip4_router/ip6_router: missing" in (
        out.stderr
    )


def test_mixed_inputs_are_detected_per_record_and_counted(server, tmp_path):
    stats = tmp_path / "stats.json"
    files = ["goflow2.jsonl", "pmacct.jsonl", "nfdump.json", "nfdump-log.jsonl", "native.jsonl"]
    out = enrich(server, "--stats", str(stats), *(str(DATA / f) for f in files))
    assert out.returncode == 0, out.stderr
    got = rows(out.stdout)
    assert len(got) == 4 + 3 + 3 + 2
    native = got[-2]
    assert ases(native) == (64500, 0, 65006, 65001)
    assert native["dst_origin_as_set"] is True
    counts = json.loads(stats.read_text())
    assert counts["formats"] == {"goflow2": 5, "native": 2, "nfdump": 4, "pmacct": 4}
    assert counts["bad"] == {
        "bad_address": 1,
        "bad_json": 1,  # goflow2.jsonl:3
        "bad_record": 4,  # goflow2:5 no sampler, pmacct:4, nfdump 3rd object, native [1,2,3]
        "family_mismatch": 2,
    }
    assert counts["written"] == 12
    assert counts["enriched"] == 9
    assert any("goflow2.jsonl:3: bad_json" in e for e in counts["examples"])
    assert any(
        "native.jsonl:3: bad_record: expected a JSON object" in e for e in counts["examples"]
    )
    assert "enriched 9" in out.stderr


def test_csv_output_has_the_documented_columns(server):
    out = enrich(server, "--output-format", "csv", str(DATA / "goflow2.jsonl"))
    assert out.returncode == 0, out.stderr
    table = list(csv.reader(io.StringIO(out.stdout)))
    assert tuple(table[0]) == CSV_COLUMNS
    first = dict(zip(CSV_COLUMNS, table[1], strict=True))
    assert first["input_format"] == "goflow2"
    assert first["exporter"] == "127.0.1.1"
    assert float(first["time"]) == 1700000000.0  # time_flow_end_ns in seconds
    assert (first["bytes"], first["sampling_rate"], first["src_mac"]) == (
        "1500",
        "1000",
        "0c:00:00:00:00:01",
    )
    assert (first["dst_origin_as"], first["dst_peer_as"]) == ("65005", "65004")
    assert first["dst_as_path"] == "65004 65004 65004 65005 65005"
    assert first["src_unrouted"] == "false"
    assert len(table) == 5


LEGACY_CSV_COLUMNS = (  # the columns as first shipped: their order is kept
    "input_format",
    "time",
    *(f for f in FLOW_FIELDS if f != "time"),
    "router",
    *ASES,
    "src_origin_provenance",
    "src_peer_provenance",
    "dst_origin_provenance",
    "dst_peer_provenance",
    "src_prefix",
    "dst_prefix",
    "src_as_path",
    "dst_as_path",
    "override",
    "src_unrouted",
    "src_asymmetric",
    "src_stale",
    "dst_stale",
    "fallback",
    "error_code",
    "error",
)


def test_csv_has_a_column_for_every_flag_the_new_ones_at_the_end(server):
    out = enrich(server, "--output-format", "csv", str(DATA / "goflow2.jsonl"))
    assert out.returncode == 0, out.stderr
    table = list(csv.reader(io.StringIO(out.stdout)))
    header = tuple(table[0])
    assert header[: len(LEGACY_CSV_COLUMNS)] == LEGACY_CSV_COLUMNS
    assert set(FLAG_NAMES.values()) <= set(header)
    assert "src_ix_mac_unknown" in header[len(LEGACY_CSV_COLUMNS) :]
    got = [dict(zip(header, row, strict=True)) for row in table[1:]]
    assert [r["src_ix_mac_unknown"] for r in got] == ["false"] * 4
    # 172.16/12 -> 10.1.2/24 has no AS_SET; the v6 record's IX override makes it asymmetric
    assert (got[0]["dst_origin_as_set"], got[1]["src_asymmetric"]) == ("false", "true")


def test_a_slow_trickle_on_stdin_is_answered_before_a_batch_fills(server):
    """goflow2 | attribution enrich: one flow a minute must not wait for 4096 more."""
    cmd = [sys.executable, "-m", "attribution.cli", "enrich", "--target", server.target]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        line = (DATA / "goflow2.jsonl").read_bytes().splitlines()[0] + b"\n"
        proc.stdin.write(line)
        proc.stdin.flush()
        got = read_line_within(proc.stdout, 60)  # stdin still open
        assert ases(json.loads(got)) == (65011, 65010, 65005, 65004)
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
        proc.stdout.close()
        proc.stderr.close()


def read_line_within(stream, timeout: float) -> bytes:
    result: list[bytes] = []
    t = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    t.start()
    t.join(timeout)
    assert result and result[0], "no output line"
    return result[0]


def goflow(n: int, dst: str) -> str:
    return json.dumps(
        {"sampler_address": "127.0.1.1", "src_addr": "10.1.0.1", "dst_addr": dst, "bytes": n}
    )


@pytest.mark.parametrize("jobs", [1, 2])
def test_follow_survives_rotation_and_truncation(server, tmp_path, jobs):
    log = tmp_path / "flows.json"
    out = tmp_path / "out.json"
    stats = tmp_path / "stats.json"
    log.write_text(goflow(1, "10.1.2.1") + "\n")
    cmd = [
        sys.executable, "-m", "attribution.cli", "enrich", "--target", server.target,
        "--follow", str(log), "--stats", str(stats), "--jobs", str(jobs),
    ]  # fmt: skip
    with open(out, "wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.PIPE)
    try:
        wait_for_lines(out, 1)
        with open(log, "a") as f:  # appended, the last line in two writes
            f.write(goflow(2, "172.16.0.1") + "\n" + goflow(3, "10.9.0.1")[:40])
            f.flush()
            time.sleep(0.3)
            f.write(goflow(3, "10.9.0.1")[40:] + "\n")
        wait_for_lines(out, 3)
        os.rename(log, tmp_path / "flows.json.1")  # rotated: the old file gets one more line
        with open(tmp_path / "flows.json.1", "a") as f:
            f.write(goflow(4, "192.168.0.1") + "\n")
        log.write_text(goflow(5, "2001:db8::1") + "\n" + goflow(6, "10.8.0.1") + "\n")
        got = wait_for_lines(out, 6)
        with open(log, "w") as f:  # truncated in place, then written again
            f.write(goflow(7, "10.1.2.2") + "\n")
        got = wait_for_lines(out, 7)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=180)
    assert [r["bytes"] for r in got] == [1, 2, 3, 4, 5, 6, 7]
    assert [r["dst_origin_as"] for r in got] == [65005, 65011, 65006, 64500, 0, 65009, 65005]
    assert got[4]["error_code"] == "family_mismatch"  # v4 src, v6 dst: still written
    assert json.loads(stats.read_text())["written"] == 7, err


def test_read_ahead_and_in_flight_batches_are_bounded(server):
    """A source that never ends is read only as far as the writer has come."""
    pulled = itertools.count()
    seen = [0]

    def endless():
        row = ("127.0.1.1", "10.1.0.1", "10.1.2.3", *[None] * 8)
        raw = b'{"exporter":"127.0.1.1","src_addr":"10.1.0.1","dst_addr":"10.1.2.3"}'
        while True:
            seen[0] = next(pulled)
            yield FlowBatch(["x"] * 10, [1] * 10, ["native"] * 10, [raw] * 10, [row] * 10)

    answers = resolve_batches(server.target, endless(), max_in_flight=2, read_ahead=3)
    _, first = next(answers)
    assert first.column("dst_origin_as")[0] == 65005
    time.sleep(1.0)  # give an unbounded reader the chance to run away
    # one answered + 2 in flight + 3 queued + 1 held by the blocked reader (+1 slack)
    assert seen[0] <= 1 + 2 + 3 + 2
    answers.close()


def test_object_splitter_reads_nfdump_pretty_arrays_and_log_lines():
    split = ObjectSplitter()
    text = b'[\n{\n\t"a" : 1,\n\t"b" : "x",\n},\n{\n\t"a" : 2,\n}\n]\n'
    done = [split.feed(i, line) for i, line in enumerate(text.splitlines(), 1)]
    got = [d for d in done if d]
    assert [(n, json.loads(t)) for n, t in got] == [(2, {"a": 1, "b": "x"}), (6, {"a": 2})]
    assert split.feed(1, b'{"a" : 3,"b" : 4,}') == (1, b'{"a" : 3,"b" : 4}')
    assert split.feed(1, b"[1,2]") == (1, b"[1,2]")  # not an object: left for the decoder


def test_line_splitter_caps_line_length_and_keeps_counting():
    split = _Splitter("f", max_line=10)
    chunks = [split.feed(b"short\n" + b"x" * 25), split.feed(b"yy\nok\n"), split.feed(b"tail")]
    chunks.append(split.rest())
    got = [(c.first + k, text) for c in chunks if c for k, text in enumerate(c.lines)]
    assert got == [
        (1, b"short"),
        (2, None),
        (3, b"ok"),
        (4, b"tail"),
    ]


def numbered(chunks: list) -> list[tuple[int, bytes | None]]:
    """(line number, line) of a source's chunks, NEXT numbered on from the chunk before."""
    got: list[tuple[int, bytes | None]] = []
    following = 1
    for c in chunks:
        if not c:
            continue
        first = following if c.first == NEXT else c.first
        lines = chunk_lines(c)
        got += [(first + k, text) for k, text in enumerate(lines)]
        following = first + len(lines)
    return got


def test_whole_line_splitter_gives_the_lines_of_the_line_splitter_reads_cut_anywhere():
    """Whole-lines chunks (each read's complete lines as a span of it, the line
    an earlier read began as a head of its own) hold the lines, line numbers and
    over-long lines the line splitter gives, however the reads cut them; a read
    is handed on as it is (no copy), and its newlines are not counted (a whole
    chunk after the first is numbered on from the one before)."""
    rng = random.Random(3)
    for _ in range(300):
        lines = [b"x" * rng.choice((0, 1, 5, 9, 10, 11, 30)) for _ in range(rng.randint(0, 12))]
        data = b"".join(line + b"\n" for line in lines) + b"y" * rng.choice((0, 0, 3, 12))
        cuts = sorted(rng.sample(range(len(data) + 1), min(len(data) + 1, rng.randint(0, 6))))
        reads = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        reads = [r for r in reads if r]
        got = {}
        for whole in (False, True):
            split = _Splitter("f", max_line=10, whole=whole)
            got[whole] = numbered([split.feed(r) for r in reads] + [split.rest()])
        assert got[True] == got[False], (reads, got)
    split = _Splitter("f", whole=True)
    read = b'{"a":1}\n{"a":2}\n'
    first = split.feed(read)
    assert (first.data, first.first, first.start, first.end, first.head) == (read, 1, 0, -1, None)
    read = b'{"a":3}\n{"a"'
    second = split.feed(read)
    assert (second.data, second.first, second.end) == (read, NEXT, 8)
    assert chunk_lines(second) == [b'{"a":3}']
    third = split.feed(b":4}\n{}\n")
    assert (third.head, third.start, chunk_lines(third)) == (b'{"a":4}\n', 4, [b'{"a":4}', b"{}"])


def test_goflow2_mapping_units_and_next_hops():
    flow = goflow2_to_flow(
        {
            "sampler_address": "127.0.1.1",
            "src_addr": "10.0.0.1",
            "dst_addr": "10.0.0.2",
            "time_flow_end_ns": 1_700_000_000_250_000_000,
            "src_mac": 0x0C0000000001,
            "next_hop": "192.0.2.1",  # the IP next hop: not the BGP one
            "bgp_next_hop": "",
        }
    )
    assert flow["time"] == pytest.approx(1_700_000_000.25)
    assert flow["src_mac"] == "0c:00:00:00:00:01"
    assert "next_hop" not in flow
    nf = nfdump_to_flow(
        {"ip6_router": "::1", "src6_addr": "::2", "dst6_addr": "::3", "bgp6_next_hop": "::4"}
    )
    assert (nf["exporter"], nf["next_hop"], nf["sampling_rate"]) == ("::1", "::4", 1)


def test_a_quiet_followed_file_outlives_the_services_stream_idle_timeout(tmp_path):
    """The service cuts a stream idle for [api] stream_idle_timeout; enrich closes its
    own first and opens a new one for the next records (failed before: the run died)."""
    from attribution.config import ApiSettings

    server = Server(ApiSettings(stream_idle_timeout=1.0))
    log = tmp_path / "flows.json"
    out = tmp_path / "out.json"
    log.write_text(goflow(1, "10.1.2.1") + "\n")
    cmd = [
        sys.executable, "-m", "attribution.cli", "enrich", "--target", server.target,
        "--follow", str(log), "--stream-idle", os.environ.get("ENRICH_TEST_IDLE", "0.3"),
    ]  # fmt: skip
    try:
        with open(out, "wb") as sink:
            proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.PIPE)
        wait_for_lines(out, 1)
        time.sleep(4)  # quiet for longer than the service's idle cut-off
        assert proc.poll() is None, proc.stderr.read().decode()
        with open(log, "a") as f:
            f.write(goflow(2, "172.16.0.1") + "\n")
        got = wait_for_lines(out, 2)
        assert [r["dst_origin_as"] for r in got] == [65005, 65011]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=180)
        server.stop()


def test_the_reports_read_goflow2_and_nfdump_json_with_the_same_mappings():
    from attribution.reports.readers import detect_format, make_parser
    from attribution.reports.records import RecordError

    def parse(name: str) -> tuple[str | None, list[dict], list[str]]:
        lines = (DATA / name).read_bytes().splitlines(keepends=True)
        fmt = detect_format(lines[0])
        parser = make_parser(fmt)
        flows, errors = [], []
        for line in lines:
            try:
                flow = parser(line)
            except RecordError as exc:
                errors.append(str(exc))
                continue
            if flow is not None:
                flows.append(flow)
        return fmt, flows, errors

    fmt, flows, errors = parse("goflow2.jsonl")
    assert fmt == "goflow2-json"
    assert [f["time"] for f in flows[:2]] == [1700000000.0, 1700000001.0]  # a report needs it
    assert flows[0]["sampling_rate"] == 1000
    assert len(flows) == 4 and len(errors) == 2  # not JSON; no sampler_address
    fmt, flows, errors = parse("nfdump.json")
    assert fmt == "nfdump-json"
    assert [(f["src_addr"], f["time"]) for f in flows] == [
        ("10.9.0.1", "2023-11-14T22:14:20.456"),
        ("2001:db8:1::1", "2023-11-14T22:14:21.000"),
    ]
    assert errors == ["ip4_router/ip6_router: missing (the exporter's address)"]
    assert parse("nfdump-log.jsonl")[0] == "nfdump-json"


def test_csv_through_pyarrow_and_through_the_csv_module_hold_the_same_values(server):
    """CSV is written by pyarrow.csv when pyarrow is installed, else by Python's
    csv module: the same cells either way (Arrow quotes text and writes an
    integral float without '.0': the values are compared, not the quoting)."""
    from attribution.enrich_records import Counters, read_batches
    from attribution.enrich_sources import read_fd
    from attribution.enrich_writers import CsvWriter

    files = ["goflow2.jsonl", "pmacct.jsonl", "nfdump.json", "nfdump-log.jsonl", "native.jsonl"]
    chunks = []
    for name in files:
        with open(DATA / name, "rb") as f:
            chunks.extend(c for c in read_fd(f.fileno(), name) if c is not None)
    answered = list(resolve_batches(server.target, read_batches(iter(chunks), None, Counters(), 3)))
    outs = []
    for arrow in (True, False):
        buf = io.BytesIO()
        w = CsvWriter(buf, arrow=arrow)
        for batch, answers in answered:
            w.write(batch, answers)
        w.close()
        outs.append(list(csv.reader(io.StringIO(buf.getvalue().decode()))))

    def value(cell: str):
        try:
            return float(cell)
        except ValueError:
            return cell

    by_arrow, by_module = outs
    assert by_arrow[0] == by_module[0] == list(CSV_COLUMNS)
    assert len(by_arrow) == len(by_module) == 1 + 12
    for a, m in zip(by_arrow[1:], by_module[1:], strict=True):
        assert [value(c) for c in a] == [value(c) for c in m]
    assert by_arrow[1][CSV_COLUMNS.index("dst_as_path")] == "65004 65004 65004 65005 65005"


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_jobs_write_what_one_process_writes_in_the_same_order(server, tmp_path, fmt):
    """--jobs 3 with batches of 2: many blocks over three workers, the nfdump array's
    objects across block ends, bad records among them: the same bytes and counters."""
    files = ["goflow2.jsonl", "pmacct.jsonl", "nfdump.json", "nfdump-log.jsonl", "native.jsonl"]
    runs = []
    for jobs in (1, 3):
        stats = tmp_path / f"stats-{jobs}.json"
        out = enrich(
            server, "--jobs", str(jobs), "--batch-size", "2", "--output-format", fmt,
            "--progress", "0",  # a slow run (a loaded box) would add a progress line
            "--stats", str(stats), *(str(DATA / f) for f in files),
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        counts = json.loads(stats.read_text())
        counts["examples"] = sorted(counts["examples"])
        assert counts.pop("failover")["streams_failed"] == 0  # one stream per worker
        runs.append((out.stdout, counts, sorted(out.stderr.splitlines())))
    assert runs[1][0] == runs[0][0]
    assert runs[1][1] == runs[0][1]
    assert runs[1][2] == runs[0][2]  # each bad record reported once, with its file:line
    assert runs[0][1]["written"] == 12
