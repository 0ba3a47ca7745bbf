"""Config errors name the file, the line and the key; good files parse fully."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from attribution.config import (
    MAX_CONFIG_BYTES,
    SECTION_KEYS,
    ConfigError,
    load_config,
    parse_config,
)
from tests.attribution.helpers import CONFIG

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "attribution.example.toml"


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(text, "/etc/attribution.toml")
    return str(err.value)


def test_annotated_example_config_is_valid():
    config = load_config(EXAMPLE)
    assert config.local_as and config.routers and config.overrides
    assert config.warnings == ()


def test_every_accepted_key_is_documented_in_the_annotated_example():
    """A key the validator accepts but the example never shows is a key nobody finds."""
    text = EXAMPLE.read_text()
    shown = {m[1] for m in re.finditer(r"^#?\s*\[*([a-z0-9_]+)\]*\s*=?", text, re.M)}
    missing = {
        f"[{section}] {key}" if section else key
        for section, keys in SECTION_KEYS.items()
        for key in keys
        if key not in shown
    }
    assert not missing, f"not in config/attribution.example.toml: {sorted(missing)}"


def test_syntax_error_names_file_and_line():
    msg = error_of("[service]\nlocal_as = = 1\n")
    assert msg.startswith("/etc/attribution.toml: TOML syntax error")
    assert "line 2" in msg


def test_wrong_type_names_line_and_key_path():
    text = CONFIG.replace("in_if = 30", 'in_if = "thirty"')
    msg = error_of(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if 'in_if = "thirty"' in t)
    assert msg == f"/etc/attribution.toml:{line}: overrides[1].in_if: must be an integer, not str"


def test_bad_mac_is_explained():
    msg = error_of(CONFIG.replace("02:00:00:00:00:0a", "02:00:00:00:0a"))
    assert "overrides[0].src_mac" in msg and "not a MAC address" in msg


def test_unknown_key_suggests_the_right_one():
    msg = error_of(CONFIG.replace("peer_as = 65020", "peer_ass = 65020"))
    assert "overrides[1].peer_ass: unknown key (did you mean 'peer_as'?)" in msg


def test_fallback_to_an_unknown_router_is_refused():
    msg = error_of(CONFIG.replace('fallback = ["edge3"]', 'fallback = ["edge9"]'))
    assert "routers[0].fallback: item 0: no router named 'edge9'" in msg


def test_an_exporter_mapped_twice_is_refused():
    text = CONFIG.replace('name = "edge2"', 'name = "edge2"\nexporters = ["127.0.1.1"]')
    assert "already mapped to router 'edge1'" in error_of(text)


def test_as_number_out_of_range_is_refused():
    assert "not a 32-bit AS number" in error_of(CONFIG.replace("65020", "4294967296"))


def test_missing_service_table_is_required():
    assert error_of("[[routers]]\nname='a'\nneighbor='127.0.0.1'\n").endswith(
        "service: is required"
    )


def test_unreadable_file_says_why(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


MINIMAL = '[service]\nlocal_as = 64500\nrouter_id = "192.0.2.1"\n'


def test_operations_sections_have_safe_defaults():
    config = parse_config(MINIMAL)
    assert config.metrics_listen == ""
    assert config.log_format == "text"
    assert not config.api.tls and config.api.read_token_file == ""
    assert config.api.max_streams < config.api.workers
    assert config.bgp.converge_quiet_time == 60.0
    assert config.bgp.api_mode == "raw"


def test_operations_sections_parse():
    config = parse_config(
        MINIMAL
        + 'log_format = "json"\nready_timeout = 30\n'
        + '[metrics]\nlisten = "127.0.0.1:9179"\n'
        + '[api]\ntls_cert = "s.crt"\ntls_key = "s.key"\ntls_client_ca = "ca.crt"\n'
        + 'admin_token_file = "admin"\nworkers = 4\nmax_streams = 3\n'
        + "[bgp]\nconverge_quiet_time = 5\nrelay_spool_bytes = 2097152\n"
        + 'api_mode = "json"\n'
    )
    assert config.bgp.api_mode == "json"
    assert config.metrics_listen == "127.0.0.1:9179"
    assert config.log_format == "json" and config.ready_timeout == 30
    assert config.api.tls and config.api.tls_client_ca == "ca.crt"
    assert (config.api.workers, config.api.max_streams) == (4, 3)
    assert config.bgp.converge_quiet_time == 5 and config.bgp.relay_spool_bytes == 2 * 1024**2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[api]\ntls_cert = "s.crt"\n', "api.tls_key: tls_cert and tls_key go together"),
        ('[api]\ntls_client_ca = "ca.crt"\n', "api.tls_client_ca: mutual TLS needs"),
        ("[api]\nworkers = 4\nmax_streams = 4\n", "api.max_streams: must be between 1 and"),
        ('[metrics]\nlisten = "localhost"\n', "metrics.listen: 'localhost' is not HOST:PORT"),
        ('log_format = "xml"\n', "service.log_format: 'xml': expected one of text, json"),
        ('[bgp]\napi_mode = "hex"\n', "bgp.api_mode: 'hex': expected raw or json"),
    ],
)
def test_operations_sections_refuse_bad_values(extra, message):
    assert message in error_of(MINIMAL + extra)


@pytest.mark.parametrize("value", ["nan", "inf", "-1.0", "-inf"])
@pytest.mark.parametrize(
    "where",
    ["[bgp]\nstale_hold_time = {}\n", "[bgp]\nconverge_quiet_time = {}\n", "ready_timeout = {}\n"],
)
def test_durations_refuse_nan_infinity_and_negative(where, value):
    assert "seconds" in error_of(MINIMAL + where.format(value))


def test_router_stale_hold_time_refuses_nan():
    text = MINIMAL + '[[routers]]\nname = "r1"\nneighbor = "127.0.0.2"\nstale_hold_time = nan\n'
    assert "routers[0].stale_hold_time: must be between 0 and 86400 seconds" in error_of(text)


# -- hostile files ------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["[" * 600 + "]" * 600, "{a = " * 600 + "1" + "}" * 600, "[" * 40 + "]" * 40],
    ids=["array-600", "inline-table-600", "array-40"],
)
def test_deep_nesting_is_refused_with_a_clear_error(value):
    msg = error_of(MINIMAL + f"[report]\nx = {value}\n")
    assert msg.startswith("/etc/attribution.toml: ")
    assert "nested deeper than 32 levels" in msg


def test_a_dotted_key_nested_too_deep_is_refused():
    msg = error_of(MINIMAL + "[report]\n" + ".".join(["a"] * 2000) + " = 1\n")
    assert "nested deeper than 32 levels" in msg


def test_an_integer_with_too_many_digits_is_a_config_error():
    msg = error_of(MINIMAL + "[report]\nx = 1" + "0" * 5000 + "\n")
    assert msg.startswith("/etc/attribution.toml: ") and "digits" in msg


def test_a_file_over_the_size_limit_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.toml"
    with path.open("w") as f:
        f.write(MINIMAL)
        f.write("# " + "x" * 1000 + "\n")
        f.truncate(MAX_CONFIG_BYTES + 1)  # sparse: cheap to make
    with pytest.raises(ConfigError, match=r"16777217 bytes, more than the limit of 16 MiB"):
        load_config(path)
    assert "more than the limit of 16 MiB" in error_of(" " * (MAX_CONFIG_BYTES + 1))


# -- overrides at scale -----------------------------------------------------------


def override(i: int, in_if: int, mac: str = "", exporter: str = "127.0.1.1") -> str:
    mac_line = f'src_mac = "{mac}"\n' if mac else ""
    return (
        f'[[overrides]]\nname = "o{i}"\nexporter = "{exporter}"\nin_if = {in_if}\n'
        f"{mac_line}peer_as = {65000 + i % 1000}\n"
    )


def test_shadowed_rules_are_found_by_exporter_port_and_mac():
    """Each kind of shadowing, among thousands of rules that shadow nothing."""
    rules = [override(i, i) for i in range(5000)]  # distinct ports: no warnings
    first = len(rules)
    rules += [
        override(first, 7),  # shadowed by o7 (any MAC, same port)
        override(first + 1, 8, "02:00:00:00:00:01"),  # shadowed by o8 (o8 takes any MAC)
        override(first + 2, 9000, "02:00:00:00:00:01"),  # new port, one MAC
        override(first + 3, 9000, "02:00:00:00:00:02"),  # same port, other MAC: fine
        override(first + 4, 9000, "02-00-00-00-00-01"),  # same MAC, other spelling: shadowed
        override(first + 5, 9000),  # any MAC after MAC rules: fine
        override(first + 6, 9000, "02:00:00:00:00:03"),  # after the any-MAC rule: shadowed
        override(first + 7, 7, exporter="127.0.1.2"),  # other exporter: fine
    ]
    text = MINIMAL + "".join(rules)
    config = parse_config(text, "/etc/attribution.toml")
    assert len(config.overrides) == first + 8
    lines = text.splitlines()

    def header_line(rule: int) -> int:
        return [n for n, t in enumerate(lines, 1) if t == "[[overrides]]"][rule]

    assert list(config.warnings) == [
        f"/etc/attribution.toml:{header_line(first + k)}: overrides[{first + k}] "
        f"('o{first + k}') never matches: {by!r} comes first and matches the same traffic"
        for k, by in [(0, "o7"), (1, "o8"), (4, f"o{first + 2}"), (6, f"o{first + 5}")]
    ]


def test_errors_in_a_large_file_name_the_right_line():
    rules = [override(i, i) for i in range(3000)]
    rules[2500] = rules[2500].replace("in_if = 2500", 'in_if = "x"')
    text = MINIMAL + "".join(rules)
    line = text.splitlines().index('in_if = "x"') + 1
    assert error_of(text) == (
        f"/etc/attribution.toml:{line}: overrides[2500].in_if: must be an integer, not str"
    )


# -- [report] is part of the file ----------------------------------------------------

REPORT = """
[report]
currency = "EUR"

[[report.links]]
name = "transit-a"
exporter = "127.0.1.1"
if_index = 10
kind = "transit"

[[report.links]]
name = "ix"
exporter = "127.0.1.1"
if_index = 20
kind = "ix"
"""


def test_report_section_is_validated_with_file_line_and_key():
    assert parse_config(MINIMAL + REPORT).report["currency"] == "EUR"
    text = MINIMAL + REPORT.replace('kind = "ix"', 'kind = "peering"')
    line = text.splitlines().index('kind = "peering"') + 1
    assert error_of(text) == (
        f"/etc/attribution.toml:{line}: report.links[1].kind: "
        "must be one of transit, ix, pni, customer, got 'peering'"
    )


@pytest.mark.parametrize(
    ("edit", "key", "needle"),
    [
        (('currency = "EUR"', "bucket_seconds = 7"), "report.bucket_seconds", "bucket_seconds"),
        (('currency = "EUR"', "colour = 1"), "report.colour", "colour = 1"),
        (("if_index = 10", "if_index = -1"), "report.links[0].if_index", "if_index = -1"),
        (('currency = "EUR"', "[report.peering]\nix_fee = 1"), "report.peering.ix_fee", "ix_fee"),
    ],
)
def test_report_errors_point_at_their_line(edit, key, needle):
    text = MINIMAL + REPORT.replace(*edit)
    line = next(n for n, t in enumerate(text.splitlines(), 1) if t.startswith(needle))
    assert error_of(text).startswith(f"/etc/attribution.toml:{line}: {key}: ")
