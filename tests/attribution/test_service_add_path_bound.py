"""[bgp] max_paths_per_prefix reaches the service's RIB, and paths not kept are
counted in its metrics (ribd.addpath; the bound itself: tests/ribd/test_add_path_bound.py)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest

from attribution.service import Service
from bench.fuzz_raw import basic_attributes, packets_line, prefix, session_lines, update
from ribd.parser import ExabgpParser
from tests.attribution.helpers import CONFIG, EDGE1

NEIGHBOR = EDGE1  # router edge1 of the helpers' CONFIG


def _service(tmp_path: Path, bgp_extra: str) -> Service:
    bgp = f'[bgp]\nexabgp = "external"\nfeed_socket = "{tmp_path}/feed.sock"\n{bgp_extra}\n'
    path = tmp_path / "attribution.toml"
    path.write_text(CONFIG.replace("[[routers]]", bgp + "\n[[routers]]", 1))
    return Service(str(path))


def test_the_configured_bound_holds_in_the_service_and_its_overflow_is_scraped(tmp_path, caplog):
    service = _service(tmp_path, "max_paths_per_prefix = 3")
    assert service.rib.max_paths == 3
    parser = ExabgpParser(service.rib.interner)
    for line in session_lines(NEIGHBOR, add_path=True):
        service.rib.apply_many(parser.parse(line))
    nlri = b"".join(prefix("198.51.100.0/24", pid) for pid in range(1, 11))
    body = update(attributes=basic_attributes([64496]), nlri=nlri)
    service.rib.apply_many(parser.parse(packets_line(body, peer=NEIGHBOR)))
    assert len(service.rib.exact(NEIGHBOR, "ipv4 unicast", "198.51.100.0/24")) == 3
    scraped = generate_latest(service.registry).decode()
    assert (
        'attribution_rib_paths_over_limit_total{family="ipv4 unicast",neighbor="127.0.0.11",'
        'router="edge1"} 7.0'
    ) in scraped
    assert service.rib.stats()["paths_over_limit"] == 7
    warnings = [r.getMessage() for r in caplog.records if "max_paths_per_prefix" in r.getMessage()]
    assert len(warnings) == 7 and warnings[0].startswith(
        "ADD-PATH: a prefix of edge1 (127.0.0.11) already held 3 better paths"
    )


def test_the_bound_defaults_to_64(tmp_path):
    assert _service(tmp_path, "").rib.max_paths == 64
