"""A family's views keep one route numbering and one leaf through churn.

After churn that adds and withdraws prefixes, each router's patched view
used to number its new routes on its own, so each had its own leaf and
prefix columns (twice the views' bytes, issue 11). ``viewfamily.renumber``
puts them back on one numbering; a router that lacks the family's longest
prefix somewhere answers there with its own covering route (a hole). These
tests pin the shared arrays and that every answer stays the RIB's, through
the bulk path (with routes) and through each view's own lookup.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from attribution.config import parse_config
from attribution.resolver import Resolver
from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.events import EndOfRib, RoutesAnnounced, RoutesWithdrawn, SessionState
from ribd.rib import Rib
from tests.attribution.test_bulk_many_exporters import (
    V4,
    V6,
    _answers,
    _more_churn,
    config_text,
    exporter,
    flows,
    neighbor,
    world,
)
from tests.attribution.test_view_answers import _check_views


def _refresh_all(rib, views) -> None:
    with rib.lock:
        views._wanted.update((v.neighbor, v.family) for v in views.current())
    views.refresh()


@pytest.mark.parametrize("seed", range(3))
def test_views_share_one_leaf_and_prefix_columns_after_churn_that_adds_and_withdraws_prefixes(
    seed,
):
    rib, config, v4, v6 = world(seed, same_prefixes=True)
    resolver = Resolver(rib, config, build_views_inline=False)
    views = resolver.views
    with rib.lock:
        views.want_missing(list(rib.routers))
    views.refresh()
    rng = random.Random(seed)
    for round_ in range(3):
        _more_churn(rib, v4, v6, seed * 10 + round_)
        patches = views.patches
        _refresh_all(rib, views)
        assert views.patches > patches  # patched, not rebuilt
        for family in (V4, V6):
            fam = [v for v in views.current() if v.family == family]
            assert len(fam) >= 3
            for name in ("starts", "leaf", "nets", "nets_low", "lengths"):
                assert len({id(getattr(v, name)) for v in fam}) == 1, (round_, family, name)
            packed = fam[0].pack
            assert packed is not None and packed.pools["leaf"] is fam[0].leaf
        assert any(len(v.holes) for v in views.current())  # withdrawals: holes
        assert _check_views(rib, views, v4, v6, rng) > 500
        records = flows(seed + round_, v4, v6, 400)
        exact = _answers(Resolver(rib, config, build_views_inline=False), config, records)
        assert _answers(resolver, config, records) == exact, round_


def _three_routers():
    """r0 holds 10.0.0.0/8 and 10.1.0.0/16, r1 only 10.0.0.0/8, r2 neither
    (11.0.0.0/8 only)."""
    rib = Rib()
    config = parse_config(config_text(), "t.toml")

    def attrs(k: int):
        return make_attributes(((AS_SEQUENCE, (64512, 65000 + k)),), next_hop=f"127.0.6.{k + 1}")

    tables = {0: ["10.0.0.0/8", "10.1.0.0/16"], 1: ["10.0.0.0/8"], 2: ["11.0.0.0/8"]}
    for k, prefixes in tables.items():
        n = neighbor(k)
        rib.apply(SessionState(n, "up"))
        rib.apply(RoutesAnnounced(n, V4, tuple(prefixes), None, attrs(k)))
        rib.apply(EndOfRib(n, V4))
    resolver = Resolver(rib, config, build_views_inline=False)
    with rib.lock:
        resolver.views.want_missing([neighbor(k) for k in tables])
    resolver.views.refresh()
    return rib, config, resolver, attrs


def test_a_router_without_the_familys_longest_prefix_answers_with_its_own_route_there():
    rib, config, resolver, attrs = _three_routers()
    views = resolver.views
    # Churn: r1 gets 10.2.0.0/16 (a patch: its numbering then differs), r0
    # loses 10.1.0.0/16 and r2 gets it.
    rib.apply(RoutesAnnounced(neighbor(1), V4, ("10.2.0.0/16",), None, attrs(1)))
    rib.apply(RoutesWithdrawn(neighbor(0), V4, ("10.1.0.0/16",), None))
    rib.apply(RoutesAnnounced(neighbor(2), V4, ("10.1.0.0/16",), None, attrs(2)))
    _refresh_all(rib, views)
    fam = {v.neighbor: v for v in views.current()}
    assert len({id(v.leaf) for v in fam.values()}) == 1
    assert all(len(v.holes) for v in fam.values())  # each lacks one of the family's
    records = [
        {"exporter": exporter(k), "src_addr": src, "dst_addr": dst}
        for k in range(3)
        for src, dst in (
            ("10.1.2.3", "10.2.3.4"),
            ("10.9.9.9", "11.1.1.1"),
            ("12.0.0.1", "10.1.0.0"),
        )
    ]
    exact = _answers(Resolver(rib, config, build_views_inline=False), config, records)
    got = _answers(resolver, config, records)
    assert got == exact
    by = {(r["exporter"], r["dst_addr"]): a for r, a in zip(records, got, strict=True)}
    # r1 to 10.1.0.0: its own /8 (the family's longest there is the /16 r2 has)
    assert by[(exporter(1), "10.1.0.0")]["dst_origin_as"] == 65001
    assert by[(exporter(0), "10.2.3.4")]["dst_origin_as"] == 65000  # r0's /8
    assert by[(exporter(2), "10.2.3.4")]["dst_origin_as"] == 0  # r2: no route
    key = np.array([int.from_bytes(bytes([10, 1, 0, 0]), "big")], dtype=np.uint32)
    for k, want in ((0, "10.0.0.0/8"), (1, "10.0.0.0/8"), (2, "10.1.0.0/16")):
        v = fam[neighbor(k)]
        assert v.route(int(v.lookup(key)[0])).prefix == want


def test_an_unchanged_view_keeps_its_route_numbers_when_the_family_is_renumbered():
    """Caches keyed by route number (streams' route dictionaries, the route
    encoder's entries) survive a refresh that renumbered the family for
    another router's new prefixes: the unchanged view's numbers stay."""
    rib, _, resolver, attrs = _three_routers()
    views = resolver.views
    before = {v.neighbor: v for v in views.current()}
    rib.apply(RoutesAnnounced(neighbor(1), V4, ("10.2.0.0/16",), None, attrs(1)))
    with rib.lock:
        views._wanted.add((neighbor(1), V4))  # only r1's view is patched
    views.refresh()
    after = {v.neighbor: v for v in views.current()}
    for k in (0, 2):
        old, new = before[neighbor(k)], after[neighbor(k)]
        assert new is not old and new.same_routes(old), k
        assert len(new) > len(old)  # the new prefix numbered past the old ones
    assert not after[neighbor(1)].same_routes(before[neighbor(1)])
