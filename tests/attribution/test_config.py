"""Config errors name the file, the line and the key; good files parse fully."""

from __future__ import annotations

from pathlib import Path

import pytest

from attribution.config import ConfigError, load_config, parse_config
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


def test_operations_sections_parse():
    config = parse_config(
        MINIMAL
        + 'log_format = "json"\nready_timeout = 30\n'
        + '[metrics]\nlisten = "127.0.0.1:9179"\n'
        + '[api]\ntls_cert = "s.crt"\ntls_key = "s.key"\ntls_client_ca = "ca.crt"\n'
        + 'admin_token_file = "admin"\nworkers = 4\nmax_streams = 3\n'
        + "[bgp]\nconverge_quiet_time = 5\nrelay_spool_bytes = 2097152\n"
    )
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
