"""[bgp] and [[routers]] max_prefixes_* reach the service's RIB (routers met
later too, and after a snapshot load), and refused prefixes are counted in its
metrics and ListRouters (ribd.prefix_limit; the rule itself:
tests/ribd/test_prefix_limit.py)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest

from attribution.service import Service
from bench.fuzz_raw import basic_attributes, packets_line, prefix, session_lines, update
from ribd.events import RoutesAnnounced, SessionState
from ribd.parser import ExabgpParser
from ribd.rib import Rib
from ribd.snapshot import write_snapshot
from tests.attribution.helpers import CONFIG, EDGE1, attrs, external_service

V4, V6 = "ipv4 unicast", "ipv6 unicast"


def _service(tmp_path: Path, bgp_extra: str, edge1_extra: str = "") -> Service:
    bgp = f'[bgp]\nexabgp = "external"\nfeed_socket = "{tmp_path}/feed.sock"\n{bgp_extra}\n'
    text = CONFIG.replace("[[routers]]", bgp + "\n[[routers]]", 1)
    text = text.replace('name = "edge1"', f'name = "edge1"\n{edge1_extra}', 1)
    path = tmp_path / "attribution.toml"
    path.write_text(text)
    return Service(str(path))


def _announce(service: Service, count: int) -> None:
    parser = ExabgpParser(service.rib.interner)
    for line in session_lines(EDGE1):
        service.rib.apply_many(parser.parse(line))
    nlri = b"".join(prefix(f"198.51.{i}.0/24") for i in range(count))
    body = update(attributes=basic_attributes([64496]), nlri=nlri)
    service.rib.apply_many(parser.parse(packets_line(body, peer=EDGE1)))


def test_the_defaults_hold_for_every_router_even_one_met_later(tmp_path):
    service = _service(tmp_path, "")
    fs = service.rib.router(EDGE1).families
    assert (fs[V4].max_prefixes, fs[V6].max_prefixes) == (4_000_000, 1_000_000)


def test_a_router_s_own_limit_refuses_past_it_and_the_scrape_counts_them(tmp_path, caplog):
    service = _service(tmp_path, "max_prefixes_ipv4 = 100", "max_prefixes_ipv4 = 3")
    _announce(service, 10)
    scraped = generate_latest(service.registry).decode()
    labels = '{family="ipv4 unicast",neighbor="127.0.0.11",router="edge1"}'
    assert f"attribution_rib_prefixes_refused_total{labels} 7.0" in scraped
    assert f"attribution_rib_max_prefixes{labels} 3.0" in scraped
    assert f"attribution_rib_prefixes{labels} 3.0" in scraped
    assert service.rib.stats()["prefixes_refused"] == 7
    (warning,) = [r.getMessage() for r in caplog.records if "max_prefixes_ipv4" in r.getMessage()]
    assert warning.startswith("router edge1 (127.0.0.11) is at its limit of 3 ipv4 unicast")


def test_limits_are_set_on_the_routers_a_snapshot_brings_and_remove_nothing(tmp_path):
    rib = Rib()
    rib.apply(SessionState(EDGE1, "up"))
    held = tuple(f"10.9.{i}.0/24" for i in range(10))
    rib.apply(RoutesAnnounced(EDGE1, V4, held, None, attrs((65009,))))
    snapshot = tmp_path / "rib.snapshot"
    write_snapshot(rib, snapshot)
    limited = CONFIG.replace('name = "edge1"', 'name = "edge1"\nmax_prefixes_ipv4 = 2', 1)
    service = external_service(tmp_path, f'snapshot_path = "{snapshot}"\n', config=limited)
    service.start()
    try:
        fs = service.rib.routers[EDGE1].families[V4]
        assert (fs.prefixes, fs.max_prefixes) == (10, 2)  # loaded whole, the limit set
        service.rib.apply(SessionState(EDGE1, "up"))
        service.rib.apply(
            RoutesAnnounced(EDGE1, V4, (*held[:2], "10.8.0.0/24"), None, attrs((65010,)))
        )
        # The session back: its table counts from 0 again (the loaded one kept stale
        # meanwhile), so two re-sent prefixes fit and the third is refused.
        assert (fs.prefixes, fs.prefixes_refused, fs.stale_prefixes) == (2, 1, 8)
    finally:
        service.stop()
