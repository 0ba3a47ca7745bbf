"""``attribution report`` end to end through :func:`attribution.reports.cli.main`."""

from __future__ import annotations

import argparse
import csv
import json

import pytest

from attribution.reports import cli


def test_all_formats_to_an_output_dir(data, tmp_path, capsys):
    out = tmp_path / "out"
    rc = cli.main(
        [
            str(data / "attributed.jsonl"),
            str(data / "pmacct.json"),
            "-c",
            str(data / "report.toml"),
            "-f",
            "table,csv",
            "-f",
            "json",
            "--format",
            "html",
            "--output-dir",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    for name in (
        "report.txt",
        "report.json",
        "report.html",
        "links.csv",
        "candidates.csv",
        "peers.csv",
        "origins.csv",
        "timeseries_peers.csv",
        "inputs.csv",
        "bad_lines.csv",
    ):
        assert (out / name).exists(), name
    doc = json.loads((out / "report.json").read_text())
    assert doc["meta"]["bad_lines"]["total"] == 3
    assert [i["records"] for i in doc["meta"]["inputs"]] == [6, 2]
    assert {r["link"] for r in doc["tables"]["links"]["rows"]} >= {"transit-a", "ix-fra"}
    with open(out / "links.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["link"] == "transit-a" and float(rows[0]["monthly_cost"]) == pytest.approx(850)
    with open(out / "bad_lines.csv", newline="") as fh:
        bad = list(csv.DictReader(fh))
    assert {(b["line"], b["file"].rsplit("/", 1)[-1]) for b in bad} == {
        ("5", "attributed.jsonl"),
        ("6", "attributed.jsonl"),
        ("4", "pmacct.json"),
    }
    err = capsys.readouterr().err
    assert "attributed.jsonl:6: not valid JSON" in err
    assert "3 bad lines skipped" in err


def test_table_to_stdout_by_default(data, capsys):
    rc = cli.main([str(data / "nfdump.csv"), "-c", str(data / "report.toml"), "--top", "3"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "Links: volume, billing percentile and monthly cost" in out
    assert "transit-a" in out and "Peering candidates" in out


def test_json_to_a_file(data, tmp_path):
    target = tmp_path / "r.json"
    assert cli.main([str(data / "pmacct.csv"), "-f", "json", "-o", str(target)]) == 0
    assert json.loads(target.read_text())["meta"]["records"] == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-f", "csv"], "--output-dir"),
        (["-f", "pdf"], "unknown --format"),
        (["-f", "json,html"], "several formats need --output-dir"),
        (["--from", "2024-03-02", "--to", "2024-03-01"], "--to must be after --from"),
    ],
)
def test_usage_errors_exit_2(data, capsys, argv, message):
    assert cli.main([str(data / "attributed.jsonl"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_bad_config_exits_2_naming_key(data, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[report.links]]\nname = "t"\nexporter = "192.0.2.1"\nif_index = 1\nkind = "tranzit"\n'
    )
    assert cli.main([str(data / "attributed.jsonl"), "-c", str(bad)]) == 2
    assert "report.links[0].kind" in capsys.readouterr().err


def test_unusable_input_is_reported_and_the_run_continues(data, tmp_path, capsys):
    junk = tmp_path / "junk.txt"
    junk.write_text("this is not a flow file\n")
    out = tmp_path / "r.json"
    rc = cli.main(
        [
            str(junk),
            str(data / "attributed.jsonl"),
            str(tmp_path / "missing.jsonl"),
            "-f",
            "json",
            "-o",
            str(out),
        ]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert "junk.txt: cannot tell the input format" in err
    assert "goflow2-json" in err and "nfdump-json" in err  # every format it reads is named
    assert "missing.jsonl: cannot read" in err
    assert json.loads(out.read_text())["meta"]["records"] == 6


def test_time_window_arguments(data, tmp_path):
    out = tmp_path / "r.json"
    rc = cli.main(
        [
            str(data / "attributed.jsonl"),
            "-f",
            "json",
            "-o",
            str(out),
            "--from",
            "2024-03-01T10:00:00Z",
            "--to",
            "1709287500",
        ]
    )
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["meta"]["records"] == 3 and doc["meta"]["outside_window"] == 3


def test_progress_is_shown_on_request(data, capsys):
    assert cli.main([str(data / "attributed.jsonl"), "--progress", "-f", "json"]) == 0
    assert "\r" in capsys.readouterr().err


def test_add_parser_registers_report_subcommand(data):
    parser = argparse.ArgumentParser(prog="attribution")
    sub = parser.add_subparsers(dest="command")
    cli.add_parser(sub)
    args = parser.parse_args(
        [
            "report",
            str(data / "attributed.jsonl"),
            "--target",
            "127.0.0.1:50051",
            "--input-format",
            "flow-json",
            "--top",
            "5",
        ]
    )
    assert args.func is cli.run and args.target == "127.0.0.1:50051" and args.top == 5
    with pytest.raises(SystemExit):
        parser.parse_args(["report", "x", "--target", "a:1", "--table", "dump.json"])
