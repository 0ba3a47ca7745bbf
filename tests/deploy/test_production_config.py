"""config/attribution.production.toml: loads, and has every protection turned on."""

from __future__ import annotations

from pathlib import Path

from attribution.config import load_config
from tests.deploy.common import PRODUCTION_CONFIG


def test_the_production_config_loads_without_warnings():
    config = load_config(PRODUCTION_CONFIG)
    assert config.warnings == ()
    assert config.routers


def test_the_api_serves_mutual_tls_and_wants_tokens():
    api = load_config(PRODUCTION_CONFIG).api
    assert api.tls and api.tls_key and api.tls_client_ca
    assert api.read_token_file and api.admin_token_file
    assert api.read_token_file != api.admin_token_file
    # secrets live together, where the unit and the image expect /etc/attribution
    for path in (api.tls_cert, api.tls_key, api.tls_client_ca, api.read_token_file):
        assert Path(path).is_relative_to("/etc/attribution")


def test_metrics_json_logs_and_the_snapshot_are_on():
    config = load_config(PRODUCTION_CONFIG)
    assert config.metrics_listen
    assert config.log_format == "json"
    assert config.snapshot_path == "/var/lib/attribution/rib.snapshot"
    assert config.snapshot_interval > 0
    assert config.bgp.exabgp_mode == "supervised"
    assert config.bgp.work_dir.startswith("/var/lib/attribution/")
