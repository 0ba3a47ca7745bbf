"""Views built from one read of the store for a batch (``viewbuild.read_family``).

After a restart or a refresh every router's view is built at once (16 at a
time in ``bench.restart --refresh bgp``); each build read the store, copied
its entry references and numbered them by identity: ~50 ms each over a full
table of wide entries. ``CompiledViews`` now reads a family once for up to
``READ_BATCH`` builds. What must hold: a view built from the shared read is
the view a build alone makes at that change number (every column, its
answer table, its attribute sets by identity, signature and seq), whatever
the entries (wide ``Overlay`` rows, stale slots, ADD-PATH, routers gone);
a write after the read leaves the view at the read's change number, with
the change in the log for lookups to see.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from attribution import fastpath, viewbuild
from attribution.fastpath import CompiledViews
from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.entries import Overlay
from ribd.events import IPV4_UNICAST, IPV6_UNICAST, EndOfRib, RoutesAnnounced, SessionState
from ribd.rib import Rib
from tests.attribution.test_bulk_many_exporters import world
from tests.attribution.view_compare import VIEW_COLUMNS, assert_same_view


def _wide_rib(routers: int = 20, seed: int = 7) -> tuple[Rib, list[str]]:
    """``routers`` routers (entries become Overlays past 16), each with a few
    prefixes of its own path; one router restarted (its routes in a stale
    slot, some re-sent) and lost again before End-of-RIB (a router still
    re-sending gets its view at the end: ``fastpath.refreshing``), one down
    (current routes stale)."""
    rng = random.Random(seed)
    rib = Rib(stale_hold_time=600)
    names = [f"127.0.5.{k + 1}" for k in range(routers)]
    prefixes = [f"10.{i >> 4}.{(i & 15) << 4}.0/20" for i in range(300)] + ["0.0.0.0/0"]
    for k, n in enumerate(names):
        rib.apply(SessionState(n, "up"))
        shared = make_attributes(((AS_SEQUENCE, (64512 + k % 3, 65000)),), next_hop=f"127.0.6.{k}")
        rib.apply(RoutesAnnounced(n, IPV4_UNICAST, tuple(prefixes), None, shared))
        for p in rng.sample(prefixes, 20):
            own = make_attributes(((AS_SEQUENCE, (64512, 66000 + k)),), next_hop="127.0.6.99")
            rib.apply(RoutesAnnounced(n, IPV4_UNICAST, (p,), None, own))
        rib.apply(EndOfRib(n, IPV4_UNICAST))
    rib.apply(SessionState(names[2], "down", reason="test"))
    rib.apply(SessionState(names[2], "up"))  # its routes now in a stale slot
    again = make_attributes(((AS_SEQUENCE, (64512, 65000)),), next_hop="127.0.6.2")
    rib.apply(RoutesAnnounced(names[2], IPV4_UNICAST, tuple(prefixes[:100]), None, again))
    rib.apply(SessionState(names[2], "down", reason="test"))
    rib.apply(SessionState(names[5], "down", reason="test"))  # current routes stale
    with rib.lock:
        rib.tables[IPV4_UNICAST].store.merge()
        assert any(type(e) is Overlay for e in rib.tables[IPV4_UNICAST].store.values.tolist())
    return rib, names


@pytest.mark.parametrize("family", [IPV4_UNICAST, IPV6_UNICAST])
def test_views_from_one_read_equal_views_built_alone(family: str) -> None:
    rib, names = _wide_rib()
    world_rib, _, _, _ = world(1)  # ADD-PATH (router 3), stale (router 4), IPv6
    for r, routers in ((rib, names), (world_rib, list(world_rib.routers))):
        alone = {n: viewbuild.build_view(r, n, family) for n in routers}
        read = viewbuild.read_family(r, family, [*routers, "127.9.9.9"])  # one unknown
        assert "127.9.9.9" not in read.routes
        for n in routers:
            assert_same_view(viewbuild.build_view(r, n, family, read=read), alone[n], (n, family))
        assert not read.routes  # each router's part taken by its build


def test_a_write_after_the_read_leaves_the_view_at_the_reads_change_number() -> None:
    rib, names = _wide_rib()
    read = viewbuild.read_family(rib, IPV4_UNICAST, names[:4])
    before = viewbuild.build_view(rib, names[0], IPV4_UNICAST)
    other = make_attributes(((AS_SEQUENCE, (64999,)),), next_hop="127.0.6.1")
    rib.apply(RoutesAnnounced(names[0], IPV4_UNICAST, ("10.0.0.0/20",), None, other))
    table = rib.tables[IPV4_UNICAST]
    view = viewbuild.build_view(rib, names[0], IPV4_UNICAST, read=read)
    assert_same_view(view, before, "from the read")
    assert view.seq == read.seq < table.change_seq
    assert "10.0.0.0/20" in table.changes_since(view.seq)
    after = viewbuild.build_view(rib, names[0], IPV4_UNICAST)  # read alone: sees it
    assert after.seq == table.change_seq and not np.array_equal(after.answer, view.answer)


def _refreshed(rib: Rib, names: list[str]) -> dict:
    views = CompiledViews(rib)
    with rib.lock:
        views.want_missing(names)
    assert views.refresh() == len(names) - 1  # the router down has no converged table
    return {(v.neighbor, v.family): v for v in views.current()}


def test_a_refresh_reads_each_family_once_per_batch(monkeypatch) -> None:
    """``CompiledViews.refresh`` of every router (as after a restart): one read
    per ``READ_BATCH`` builds of a family, and the views (put on one axis and
    packed together afterwards) those of a refresh that reads per build."""
    rib, names = _wide_rib()
    with monkeypatch.context() as m:
        m.setattr(fastpath, "READ_BATCH", 1)  # every build reads for itself
        alone = _refreshed(rib, names)
    calls = []
    real = viewbuild.read_family

    def counted(r, family, batch):
        calls.append((family, list(batch)))
        return real(r, family, batch)

    monkeypatch.setattr(fastpath, "read_family", counted)
    batched = _refreshed(rib, names)
    wanted = len(names) - 1
    assert len(calls) == -(-wanted // fastpath.READ_BATCH)
    assert all(1 < len(b) <= fastpath.READ_BATCH for _, b in calls)
    assert batched.keys() == alone.keys()
    for key, v in batched.items():
        w = alone[key]
        assert v.seq == w.seq and v.signature == w.signature  # nothing written since
        for name in VIEW_COLUMNS:
            assert np.array_equal(getattr(v, name), getattr(w, name)), (key, name)
        assert np.array_equal(v.answers.rows[v.answer], w.answers.rows[w.answer]), key
