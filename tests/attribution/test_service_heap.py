"""The service's maintenance gives the memory its view builds freed back to the OS (ribd.heap)."""

from __future__ import annotations

from pathlib import Path

from ribd import heap
from ribd.events import EndOfRib, RoutesAnnounced, SessionState
from ribd.speaker import wait_until
from tests.attribution.helpers import EDGE1, attrs, external_service
from tests.attribution.observed import registry_sample

V4 = "ipv4 unicast"


def test_view_builds_in_the_maintenance_are_followed_by_a_release_and_counted(
    tmp_path: Path, monkeypatch
) -> None:
    # Any growth across the builds releases (a few routes grow the RSS by little).
    monkeypatch.setattr(heap, "RELEASE_GROWTH", -(1 << 40))
    service = external_service(tmp_path)
    service.start()
    try:
        releases = heap.releases()
        rib = service.rib
        rib.apply(SessionState(EDGE1, "up"))
        prefixes = tuple(f"10.{i}.0.0/16" for i in range(200))
        rib.apply(RoutesAnnounced(EDGE1, V4, prefixes, None, attrs((65001, 64501))))
        rib.apply(EndOfRib(EDGE1, V4))  # complete: the maintenance builds its view
        wait_until(lambda: service.resolver.views.builds >= 1 and heap.releases() > releases, 20)
        # (the maintenance keeps releasing meanwhile: every pass, at this threshold)
        low, low_bytes = heap.releases(), heap.released_bytes()
        scraped = registry_sample(service, "attribution_heap_releases_total")
        scraped_bytes = registry_sample(service, "attribution_heap_released_bytes_total")
        assert low <= scraped <= heap.releases() and scraped > releases
        assert low_bytes <= scraped_bytes <= heap.released_bytes()
    finally:
        service.stop()


def test_a_snapshot_write_is_followed_by_a_release_when_it_grew_the_rss(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(heap, "RELEASE_GROWTH", -(1 << 40))
    service = external_service(tmp_path, f'snapshot_path = "{tmp_path}/rib.snapshot"\n')
    service.rib.apply(SessionState(EDGE1, "up"))
    service.rib.apply(RoutesAnnounced(EDGE1, V4, ("10.1.0.0/16",), None, attrs((65001,))))
    releases = heap.releases()
    service.write_snapshot()
    assert (tmp_path / "rib.snapshot").exists()
    assert heap.releases() == releases + 1


def test_a_scrape_shows_the_heap_releases_when_none_were_done(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(heap, "_releases", 0)
    monkeypatch.setattr(heap, "_released", 0)
    service = external_service(tmp_path)
    assert registry_sample(service, "attribution_heap_releases_total") == 0
    assert registry_sample(service, "attribution_heap_released_bytes_total") == 0
