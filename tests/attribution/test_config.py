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
