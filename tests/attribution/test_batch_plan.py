"""The bulk plan's routing chains, kept across batches (``batch_plan.Chains``).

A batch spread over many exporters paid ``chain_for`` per exporter and batch;
the chains are now kept while the routing is the same object. What a kept
chain must not hide: a config reload (a new routing) and, for an exporter
the config does not name, a router of that address appearing in the RIB
(the exporter then answers from it, as ``chain_for`` says).
"""

from __future__ import annotations

import ipaddress

from attribution.config import parse_config
from attribution.resolver import Resolver
from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.events import EndOfRib, RoutesAnnounced, SessionState
from ribd.rib import Rib
from tests.attribution.test_bulk_many_exporters import V4, config_text, neighbor

NEW = "127.0.2.99"  # neither configured nor, at first, a router of the RIB


def _batch(resolver: Resolver, exporter: str, **kw):
    src = ipaddress.IPv6Address("::ffff:10.1.2.3").packed
    dst = ipaddress.IPv6Address("::ffff:10.9.9.9").packed
    return resolver.resolve_columns([exporter], [0] * 4, src * 4, dst * 4, **kw)


def _announce(rib: Rib, router: str, origin: int) -> None:
    rib.apply(SessionState(router, "up"))
    attrs = make_attributes(((AS_SEQUENCE, (64999, origin)),), next_hop="127.0.4.1")
    rib.apply(RoutesAnnounced(router, V4, ("10.0.0.0/8",), None, attrs))
    rib.apply(EndOfRib(router, V4))


def test_an_unconfigured_exporter_answers_from_its_router_once_the_rib_has_it():
    config = parse_config(config_text(), "t.toml")
    rib = Rib(router_names={r.neighbor: r.name for r in config.routers})
    _announce(rib, neighbor(6), 65106)  # r6: the global fallback
    resolver = Resolver(rib, config)
    first = _batch(resolver, NEW)
    assert list(first.dst_origin_as) == [65106] * 4  # the fallback's answer
    _announce(rib, NEW, 65199)  # the exporter is a router of the RIB now
    second = _batch(resolver, NEW)
    assert list(second.dst_origin_as) == [65199] * 4, second.routers
    assert not second.errors


def test_a_new_routing_replaces_the_kept_chains():
    config = parse_config(config_text(), "t.toml")
    rib = Rib(router_names={r.neighbor: r.name for r in config.routers})
    _announce(rib, neighbor(6), 65106)
    _announce(rib, neighbor(0), 65100)
    resolver = Resolver(rib, config)
    exporter = "127.0.3.1"  # r0's exporter
    assert list(_batch(resolver, exporter).dst_origin_as) == [65100] * 4
    moved = config_text().replace('exporters = ["127.0.3.1"]', 'exporters = ["127.0.3.77"]')
    resolver.reconfigure(parse_config(moved, "t.toml"))
    # No router names 127.0.3.1 any more: the global fallback r6 answers.
    assert list(_batch(resolver, exporter).dst_origin_as) == [65106] * 4
