"""Each input format, read from small real-looking files; bad lines are counted, not fatal."""

from __future__ import annotations

import gzip
import shutil

import pytest
from conftest import by, run_files

from attribution.reports.readers import (
    BadLines,
    NfdumpCsvParser,
    PmacctCsvParser,
    detect_format,
    iter_lines,
    sniff_format,
)
from attribution.reports.records import RecordError

BUCKET_MBPS = 8 / 300 / 1e6  # bytes in one 5-minute bucket -> Mbps


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("attributed.jsonl", "flow-json"),
        ("flows.jsonl", "flow-json"),
        ("nfdump.csv", "nfdump-csv"),
        ("pmacct.csv", "pmacct-csv"),
        ("pmacct.json", "pmacct-json"),
    ],
)
def test_format_is_detected_from_the_first_line(data, name, fmt):
    assert sniff_format(str(data / name)) == fmt


def test_unknown_first_line_is_not_guessed():
    assert detect_format(b"hello world\n") is None


def test_attributed_flow_json_uses_answers_and_reports_bad_lines(data, config):
    report, ingest, bad = run_files([data / "attributed.jsonl"], config)
    stats = ingest.stats[0]
    assert (stats.attribution, stats.lines, stats.records, stats.bad_lines) == ("input", 8, 6, 2)
    lines = {(b.line, b.reason.split(":")[0]) for b in bad.examples}
    assert lines == {(5, "attribution family_mismatch"), (6, "not valid JSON")}
    assert bad.counts == {str(data / "attributed.jsonl"): 2}
    links = by(report.tables["links"].rows, "link")
    # 1.5 MB sampled 1:1000 (exporter default) in one bucket -> 40 Mbps
    assert links["transit-a"]["bytes_in"] == 1.5e9
    assert links["transit-a"]["p95_in_mbps"] == pytest.approx(40.0)
    assert links["pni-google"]["bytes_in"] == 3e9
    # the record's own rate (100) wins over the exporter default
    assert links["transit-b"]["bytes_out"] == 4e7
    assert links["ix-fra"]["bytes_in"] == 8e8


def test_nfdump_csv_reads_counters_router_and_skips_summary(data, config):
    report, ingest, bad = run_files([data / "nfdump.csv"], config)
    stats = ingest.stats[0]
    assert stats.attribution == "nfdump"  # no resolver: the exporter's sas/das
    assert stats.records == 3
    assert [(b.line, b.reason) for b in bad.examples] == [
        (4, "expected 48 comma-separated fields, got 8")
    ]
    links = by(report.tables["links"].rows, "link")
    # nfcapd already renormalised: counters taken as they are
    assert links["transit-a"]["bytes_in"] == 1_500_000
    assert links["pni-google"]["bytes_out"] == 52_000
    assert links["ix-fra"]["bytes_in"] == 90_000
    origins = by(report.tables["origins"].rows, "origin_as")
    assert origins[2906]["bytes_in"] == 1_500_000
    assert origins[15169]["bytes_out"] == 52_000
    # no peer AS from nfdump: the link's single configured neighbor is used
    peers = by(report.tables["peers"].rows, "peer_as")
    assert peers[64500]["bytes_in"] == 1_500_000
    assert peers[0]["bytes_in"] == 90_000  # the IX port has two neighbors: unknown


def test_nfdump_times_are_read_in_the_configured_zone():
    parser = NfdumpCsvParser()
    header = b"ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,in,out,sas,das,ra\n"
    assert parser(header) is None
    flow = parser(
        b"2024-03-01 10:00:00,2024-03-01 10:04:00,240.000,1.1.1.1,2.2.2.2,1,2,TCP,"
        b"......,0,0,1,100,0,0,3,4,0,0,192.0.2.9\n"
    )
    assert (
        flow is not None
        and flow["exporter"] == "192.0.2.9"
        and flow["time"] == "2024-03-01 10:04:00"
    )
    assert flow["in_if"] == 3 and flow["bytes"] == 100 and flow["sampling_rate"] == 1


def test_nfdump_unscaled_counters_use_the_exporter_default(data, config):
    from dataclasses import replace

    report, _, _ = run_files([data / "nfdump.csv"], replace(config, nfdump_counters_scaled=False))
    links = by(report.tables["links"].rows, "link")
    assert links["transit-a"]["bytes_in"] == 1_500_000 * 1000


def test_pmacct_csv_uses_pmacct_as_fields_and_sampling_rate(data, config):
    report, ingest, bad = run_files([data / "pmacct.csv"], config)
    stats = ingest.stats[0]
    assert (stats.attribution, stats.records, stats.bad_lines) == ("pmacct", 3, 1)
    assert bad.examples[0].line == 4 and "not-a-time" in bad.examples[0].reason
    links = by(report.tables["links"].rows, "link")
    assert links["transit-a"]["bytes_in"] == 15000 * 1000
    assert links["transit-b"]["bytes_out"] == 2000 * 1000
    # SAMPLING_RATE 0 -> exporter default (1000)
    assert links["pni-google"]["bytes_in"] == 60000 * 1000
    peers = by(report.tables["peers"].rows, "peer_as")
    assert peers[64501]["bytes_out"] == 2e6
    origins = by(report.tables["origins"].rows, "origin_as")
    assert origins[13335]["bytes_out"] == 2e6


def test_pmacct_csv_header_names_map_to_json_names():
    parser = PmacctCsvParser()
    assert parser(b"PEER_SRC_IP\tIN_IFACE\tOUT_IFACE\tSTAMP_INSERTED\tPACKETS\tBYTES\n") is None
    flow = parser(b"192.0.2.1\t10\t5\t2024-03-01 10:00:00\t3\t4500\n")
    assert flow is not None
    assert (flow["exporter"], flow["in_if"], flow["bytes"], flow["time"]) == (
        "192.0.2.1",
        10,
        4500,
        "2024-03-01 10:00:00",
    )


def test_pmacct_csv_without_exporter_column_is_a_clear_error():
    parser = PmacctCsvParser()
    parser(b"SRC_IP,DST_IP,PACKETS,BYTES\n")
    with pytest.raises(RecordError, match="peer_ip_src"):
        parser(b"1.1.1.1,2.2.2.2,1,100\n")


def test_pmacct_json_skips_markers_and_counts_bad_records(data, config):
    report, ingest, bad = run_files([data / "pmacct.json"], config)
    stats = ingest.stats[0]
    assert (stats.attribution, stats.lines, stats.records, stats.bad_lines) == ("pmacct", 5, 2, 1)
    assert bad.examples[0].line == 4 and "bytes" in bad.examples[0].reason
    links = by(report.tables["links"].rows, "link")
    assert links["transit-a"]["bytes_in"] == 15e6
    # paths from pmacct give the AS behind our provider for candidates
    cands = by(report.tables["candidates"].rows, "asn")
    assert 2906 in cands and 13335 in cands
    assert 64500 not in cands and 64501 not in cands


def test_gzip_input_is_read_transparently(data, config, tmp_path):
    gz = tmp_path / "attributed.jsonl.gz"
    with open(data / "attributed.jsonl", "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    _report, ingest, _ = run_files([gz], config)
    assert ingest.stats[0].records == 6


def test_hostile_lines_are_rejected_with_their_line_number(tmp_path, config):
    path = tmp_path / "hostile.jsonl"
    good = (
        b'{"exporter":"192.0.2.1","src_addr":"1.1.1.1","dst_addr":"2.2.2.2","in_if":10,"out_if":5,'
        b'"bytes":100,"time":1709287200,"dst_peer_as":0,"src_origin_as":2906}\n'
    )
    path.write_bytes(
        good
        + b"\xff\xfe\x00garbage\n"  # binary junk
        + b"[1, 2, 3]\n"  # JSON, but not an object
        + b'{"exporter":"192.0.2.1","bytes":-5,"time":1709287200,"dst_peer_as":0}\n'
        + b'{"exporter":"192.0.2.1","bytes":1e400,"time":1709287200,"dst_peer_as":0}\n'
        + b'{"exporter":"192.0.2.1","bytes":99999999999999999999999,"time":1,"dst_peer_as":0}\n'
        + b'{"exporter":"not-an-ip","bytes":1,"time":1709287200,"dst_peer_as":0}\n'
        + b'{"exporter":"192.0.2.1","bytes":1,"time":"yesterday","dst_peer_as":0}\n'
        + b'{"exporter":"192.0.2.1","bytes":1,"dst_peer_as":0}\n'
        + b'{"exporter":"192.0.2.1","bytes":1,"time":1709287200,"in_if":"ten","dst_peer_as":0}\n'
        + b'{"exporter":"192.0.2.1","bytes":1,"time":1709287200,"src_origin_as":4294967296}\n'
        + b"{"
        + b" " * (1 << 20)
        + b"}\n"  # 1 MiB line
        + good
    )
    _report, ingest, bad = run_files([path], config)
    stats = ingest.stats[0]
    assert stats.records == 2
    assert stats.bad_lines == 11
    assert [b.line for b in bad.examples] == list(range(2, 13))
    assert "longer than 1 MiB" in bad.examples[-1].reason


def test_iter_lines_caps_line_length():
    import io

    lines = list(iter_lines(io.BytesIO(b"a\n" + b"x" * 50 + b"\nb\n"), max_len=10))
    assert lines == [(1, b"a\n"), (2, None), (3, b"b\n")]


def test_bad_lines_echo_is_capped_per_file():
    import io

    out = io.StringIO()
    sink = BadLines(echo=out, echo_per_file=2)
    for i in range(5):
        sink.add("f", i + 1, "broken")
    assert sink.counts == {"f": 5}
    assert out.getvalue().count("\n") == 3  # two shown + "more bad lines"


def test_a_stray_brace_in_nfdump_json_does_not_swallow_the_records_after_it(tmp_path, config):
    """nfdump -o json-log lines with a line holding only ``{`` (a cut-off object):
    that line is reported, the records after it are read (enrich's reader does the same)."""

    def record(n: int) -> bytes:
        return (
            b'{"type":"FLOW","export_sysid":1,"last":"2024-03-01T10:01:00.000",'
            b'"in_packets":1,"in_bytes":%d,"src4_addr":"198.51.100.1","dst4_addr":"10.1.2.3",'
            b'"input_snmp":10,"output_snmp":5,"ip4_router":"192.0.2.1"}\n' % (1000 * n)
        )

    path = tmp_path / "nfdump-log.jsonl"
    path.write_bytes(record(1) + b"{\n" + record(2) + record(3) + b"{\n" + b"[1, 2]\n" + record(4))
    _report, ingest, bad = run_files([path], config, fmt="nfdump-json")
    stats = ingest.stats[0]
    assert stats.records == 4
    assert [b.line for b in bad.examples] == [2, 5]
    assert all("not valid JSON" in b.reason for b in bad.examples)
    assert stats.bad_lines == 2
