"""bench.realistic: N routers derived from one table are deterministic and differ as claimed.

A small synthetic base (bench.synth, a few thousand prefixes of both
families) stands in for the full tables; the lines go through the project's
own parser and Rib, as the benchmark loads them.
"""

from __future__ import annotations

import pytest

from bench.realistic import (
    UPSTREAMS,
    V4,
    V6,
    Model,
    model_from_lines,
    neighbor,
    router_lines,
)
from bench.synth import generate
from ribd.parser import ExabgpParser
from ribd.rib import Rib

ROUTERS = 3


@pytest.fixture(scope="module")
def model() -> Model:
    lines, _ = generate(v4=4000, v6=1000, seed=5)
    return model_from_lines("tiny", lines)


@pytest.fixture(scope="module")
def rib(model: Model) -> Rib:
    rib = Rib()
    parse = ExabgpParser(rib.interner).parse
    for k in range(1, ROUTERS + 1):
        for line in router_lines(model, k)[0]:
            rib.apply_many(parse(line))
    return rib


def test_same_router_same_lines_whatever_else_is_generated(model: Model) -> None:
    first, _ = router_lines(model, 2)
    router_lines(model, 1)
    again, _ = router_lines(model, 2)
    assert first == again
    assert router_lines(model, 3)[0] != first


def test_the_base_model_keeps_every_prefix_of_the_table(model: Model) -> None:
    assert model.family_prefixes(V4) == 4000
    assert model.family_prefixes(V6) == 1000


def test_about_thirty_percent_of_prefixes_take_another_path(model: Model) -> None:
    for k in range(1, ROUTERS + 1):
        stats = router_lines(model, k)[1]
        assert stats.prefixes == 5000
        assert 0.2 < stats.diverted / stats.prefixes < 0.4


def test_every_router_holds_the_whole_table_and_is_converged(rib: Rib) -> None:
    for k in range(1, ROUTERS + 1):
        r = rib.routers[neighbor(k)]
        assert r.families[V4].prefixes == 4000
        assert r.families[V6].prefixes == 1000
        assert r.families[V4].converged and r.families[V6].converged


def test_routers_differ_in_next_hop_and_diverted_paths_in_upstream_and_local_pref(
    rib: Rib,
) -> None:
    routes = {
        k: {m.prefix: m.attributes for m in rib.routes(neighbor(k), V4)}
        for k in range(1, ROUTERS + 1)
    }
    one, two = routes[1], routes[2]
    assert one.keys() == two.keys()
    # Base routes: each router's own next hop, so no attribute set is shared.
    assert all(one[p] is not two[p] for p in one)
    same_path = [p for p in one if one[p].as_path == two[p].as_path]
    assert 0.3 < len(same_path) / len(one) < 0.7  # each router diverts its own ~30%
    assert {a.next_hop for a in one.values()}.isdisjoint(
        a.next_hop for a in two.values() if a.local_pref == 100 and a.peer_as not in UPSTREAMS
    )
    diverted = [a for a in one.values() if a.peer_as in UPSTREAMS]
    assert len(diverted) > 0.2 * len(one)
    assert len({a.local_pref for a in diverted}) > 1
    assert all(a.cluster_list and a.originator_id for a in one.values())
    assert {a.cluster_list for a in one.values()} != {a.cluster_list for a in two.values()}
