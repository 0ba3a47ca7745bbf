"""[report] config: defaults, fallbacks, and errors that name file, key path and problem."""

from __future__ import annotations

import tomllib

import pytest

from attribution.reports.config import (
    ReportConfigError,
    load_report_config,
    load_report_config_file,
)


def test_sample_config_loads_links_prices_and_sampling(config):
    assert config.local_as == {65000}  # from [service].local_as
    assert [link.name for link in config.links] == [
        "transit-a",
        "transit-b",
        "ix-fra",
        "pni-google",
        "cust-acme",
    ]
    assert config.links[2].peer_as == (64600, 64601)
    assert config.links[0].commit_mbps == 1000.0
    assert config.sampling == {"192.0.2.1": 1000}
    assert config.peering.ix_price_per_mbps == 0.10
    assert config.as_names[15169] == "Google"


def test_report_local_as_overrides_service():
    cfg = load_report_config(
        {"service": {"local_as": 1}, "report": {"local_as": [65000, 65001]}}, "x"
    )
    assert cfg.local_as == {65000, 65001}


def test_missing_report_table_gives_defaults():
    cfg = load_report_config({"service": {"listen": "127.0.0.1:1"}}, "svc.toml")
    assert cfg.links == () and cfg.bucket_seconds == 300 and cfg.percentile == 95


def test_standalone_file_with_only_report(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[report]\nlocal_as = 65000\ncurrency = "USD"\n')
    cfg = load_report_config_file(str(path))
    assert cfg.currency == "USD" and cfg.local_as == {65000}


def test_exporter_addresses_are_normalised():
    cfg = load_report_config({"report": {"sampling": {"2001:DB8:0::1": 512}}}, "x")
    assert cfg.sampling == {"2001:db8::1": 512}


def _link(**kw):
    base = {"name": "l", "exporter": "192.0.2.1", "if_index": 1, "kind": "transit"}
    base.update(kw)
    return base


@pytest.mark.parametrize(
    ("report", "key", "problem"),
    [
        (
            {"links": [_link(), _link(name="b", if_index=2, price_per_mbps="cheap")]},
            "report.links[1].price_per_mbps",
            "must be a number",
        ),
        ({"links": [_link(kind="peering")]}, "report.links[0].kind", "must be one of"),
        ({"links": [_link(price_per_mbps=-1)]}, "report.links[0].price_per_mbps", "between"),
        ({"links": [_link(price_per_mpbs=1)]}, "report.links[0].price_per_mpbs", "unknown key"),
        ({"links": [_link(exporter="router1")]}, "report.links[0].exporter", "IP address"),
        (
            {"links": [_link(), _link(name="b")]},
            "report.links[1].if_index",
            "already report.links[0]",
        ),
        ({"links": [_link(), _link(if_index=2)]}, "report.links[1].name", "duplicate"),
        ({"links": [{"name": "x"}]}, "report.links[0].exporter", "is required"),
        ({"links": [_link(peer_as=[64500, "x"])]}, "report.links[0].peer_as[1]", ""),
        ({"links": [_link(if_index=True)]}, "report.links[0].if_index", "integer"),
        ({"bucket_seconds": 7}, "report.bucket_seconds", "divide a day"),
        ({"sampling": {"192.0.2.1": 0}}, 'report.sampling."192.0.2.1"', "between 1"),
        ({"peering": {"ix_price": 0.1}}, "report.peering.ix_price", "unknown key"),
        ({"input_timezone": "Mars/Olympus"}, "report.input_timezone", "unknown time zone"),
        ({"links": {"name": "x"}}, "report.links", "array of tables"),
        ({"currenzy": "EUR"}, "report.currenzy", "unknown key"),
    ],
)
def test_errors_name_file_key_path_and_problem(report, key, problem):
    with pytest.raises(ReportConfigError) as exc:
        load_report_config({"report": report}, "/etc/attribution.toml")
    message = str(exc.value)
    assert message.startswith("/etc/attribution.toml: ")
    assert f": {key}: " in message
    assert problem in message


def test_bad_toml_file_is_a_config_error(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[report\n")
    with pytest.raises(ReportConfigError, match=r"broken\.toml: not valid TOML"):
        load_report_config_file(str(path))


def test_docs_example_config_is_valid():
    """The configuration shown in docs/reports.md must load."""
    from conftest import ROOT

    text = (ROOT / "docs" / "reports.md").read_text()
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    cfg = load_report_config(tomllib.loads(block), "docs/reports.md")
    assert cfg.links


def test_every_broken_key_and_link_is_named_in_one_error():
    report = {
        "currency": "EURO-DOLLAR",
        "links": [
            {"name": "a", "exporter": "127.0.1.1", "if_index": -1, "kind": "transit"},
            {"name": "b", "exporter": "127.0.1.1", "if_index": 2, "kind": "peering"},
            {"name": "c", "exporter": "127.0.1.1", "if_index": 3, "kind": "ix"},
        ],
        "top_n": 0,
    }
    with pytest.raises(ReportConfigError) as exc:
        load_report_config({"report": report}, "/etc/attribution.toml")
    lines = str(exc.value).splitlines()
    assert lines[0] == "/etc/attribution.toml: 4 problems in [report]:"
    assert [p.key for p in exc.value.problems] == [
        "report.currency",
        "report.links[0].if_index",
        "report.links[1].kind",
        "report.top_n",
    ]
    assert all(line.startswith("/etc/attribution.toml: report.") for line in lines[1:])
