"""A router's view built alone after the others' (a late router's End-of-RIB).

A build reads the router's slot of each prefix's entry in one pass
(``viewbuild.slot_routes``), where it numbered every entry of the store every
router shares and read per distinct entry; the refresh then merges the new
view's answer table onto the family's, keeping the family's ids
(``viewanswers.merge``, ``match_rows``), so the other views' ``answer``
arrays stay as they were.
What must hold, on randomized tables (wide ``Overlay`` entries, stale slots,
withdrawn routes, default routes, IPv6 prefixes longer than /64, ADD-PATH,
a router gone mid-build): the view built alone is the view a batch read and
the Python references make, column for column; refreshed alone after the
others, every view answers every key as a refresh of all at once does.
"""

from __future__ import annotations

import ipaddress
import random

import numpy as np
import pytest

from attribution import viewbuild
from attribution.fastpath import CompiledViews
from attribution.viewanswers import ROW, c_match_rows, intern, match_rows, py_match_rows
from attribution.viewfamily import NONE_ROW
from ribd.attributes import AS_SEQUENCE, AS_SET, make_attributes
from ribd.entries import Overlay
from ribd.events import (
    IPV4_UNICAST,
    IPV6_UNICAST,
    EndOfRib,
    RoutesAnnounced,
    RoutesWithdrawn,
    SessionState,
)
from ribd.rib import Rib
from tests.attribution.view_compare import assert_same_view

FAMILIES = (IPV4_UNICAST, IPV6_UNICAST)
PYTHON = ("_compiled_slot_routes", "_compiled_set_fields", "_compiled_flatten")


def _prefixes(rng: random.Random) -> dict[str, list[str]]:
    """Nested and disjoint prefixes of both families, the default routes and
    IPv6 prefixes longer than /64 among them."""
    v4 = {"0.0.0.0/0"}
    for _ in range(120):
        length = rng.choice((8, 12, 16, 20, 24, 24, 24, 32))
        net = ipaddress.ip_network((rng.getrandbits(32) >> (32 - length) << (32 - length), length))
        v4.add(str(net))
    v6 = {"::/0", "2001:db8::/32"}
    for _ in range(80):
        length = rng.choice((32, 48, 56, 64, 64, 80, 96, 128))
        high = (0x2001_0DB8 << 96) | rng.getrandbits(96)
        v6.add(str(ipaddress.ip_network((high >> (128 - length) << (128 - length), length))))
    return {IPV4_UNICAST: sorted(v4), IPV6_UNICAST: sorted(v6)}


def _attrs(rng: random.Random, k: int, family: str):
    hop = f"127.0.7.{k + 1}" if family == IPV4_UNICAST else f"2001:db8:ffff::{k + 1:x}"
    roll = rng.random()
    if roll < 0.05:
        return make_attributes((), next_hop=hop)  # empty path: local
    if roll < 0.12:
        path = ((AS_SEQUENCE, (64512, 65001)), (AS_SET, (65010, rng.randint(65011, 65020))))
        return make_attributes(path, next_hop=hop)
    path = ((AS_SEQUENCE, (64512 + k % 4, rng.choice((65001, 65002, 65003, 66000 + k)))),)
    return make_attributes(path, next_hop=hop)


def late_world(seed: int, routers: int = 18) -> tuple[Rib, list[str]]:
    """``routers`` routers (entries are Overlays past 16) over random prefixes:
    each sends most prefixes of each family (router 3 with ADD-PATH), some
    withdrawn again; router 2 restarted (its old routes in a stale slot, some
    re-sent, End-of-RIB not yet come); router 5 down (its routes stale)."""
    rng = random.Random(seed)
    prefixes = _prefixes(rng)
    rib = Rib(stale_hold_time=600)
    names = [f"127.0.8.{k + 1}" for k in range(routers)]
    for k, n in enumerate(names):
        rib.apply(SessionState(n, "up"))
        for family in FAMILIES:
            mine = [p for p in prefixes[family] if rng.random() < 0.85]
            base = _attrs(rng, k, family)
            rib.apply(RoutesAnnounced(n, family, tuple(mine), None, base))
            for p in rng.sample(mine, len(mine) // 5):  # a path of their own
                if k == 3:
                    for path_id in (1, 2):
                        attrs = _attrs(rng, k, family)
                        rib.apply(RoutesAnnounced(n, family, (p,), (path_id,), attrs))
                else:
                    rib.apply(RoutesAnnounced(n, family, (p,), None, _attrs(rng, k, family)))
            gone = rng.sample(mine, len(mine) // 10)
            rib.apply(RoutesWithdrawn(n, family, tuple(gone), (1,) * len(gone) if k == 3 else None))
            rib.apply(EndOfRib(n, family))
    rib.apply(SessionState(names[2], "down", reason="test"))
    rib.apply(SessionState(names[2], "up"))  # its routes now in a stale slot
    resent = prefixes[IPV4_UNICAST][: len(prefixes[IPV4_UNICAST]) // 3]
    rib.apply(RoutesAnnounced(names[2], IPV4_UNICAST, tuple(resent), None, _attrs(rng, 2, "")))
    rib.apply(SessionState(names[5], "down", reason="test"))  # current routes stale
    with rib.lock:
        for family in FAMILIES:
            rib.tables[family].store.merge()
        entries = rib.tables[IPV4_UNICAST].store.values.tolist()
    assert any(type(e) is Overlay for e in entries)
    return rib, names


@pytest.mark.parametrize("seed", range(3))
def test_a_view_built_alone_equals_the_batch_reads_and_the_python_references(
    seed: int, monkeypatch
) -> None:
    rib, names = late_world(seed)
    for family in FAMILIES:
        read = viewbuild.read_family(rib, family, names)
        alone = {n: viewbuild.build_view(rib, n, family) for n in names}
        assert sum(v is not None and len(v) > 0 for v in alone.values()) >= len(names) - 1
        for n in names:
            assert_same_view(viewbuild.build_view(rib, n, family, read=read), alone[n], (n, family))
        with monkeypatch.context() as m:
            for name in PYTHON:
                m.setattr(viewbuild, name, None)
            for n in names:
                assert_same_view(
                    viewbuild.build_view(rib, n, family), alone[n], (n, family, "python")
                )
    stale = viewbuild.build_view(rib, names[5], IPV4_UNICAST)
    assert stale is not None and stale.stale.all()
    long = viewbuild.build_view(rib, names[0], IPV6_UNICAST)
    assert long is not None and len(long.long_v6)  # prefixes past /64: the exact path's


def test_a_read_for_one_router_reads_its_slot_per_prefix_and_a_gone_one_builds_nothing() -> None:
    rib, names = late_world(7)
    read = viewbuild.read_family(rib, IPV4_UNICAST, [names[0]])
    set_of = read.routes[names[0]][1][0]
    assert set(read.routes) == {names[0]} and len(set_of) == len(read.keys)
    assert viewbuild.read_family(rib, IPV4_UNICAST, ["127.9.9.9"]).routes == {}
    assert viewbuild.build_view(rib, "127.9.9.9", IPV4_UNICAST) is None


def _keys(rib: Rib, family: str, rng: random.Random) -> np.ndarray:
    """Keys at every stored prefix's first and last address and at random ones."""
    v4 = family == IPV4_UNICAST
    out = [rng.getrandbits(32 if v4 else 64) for _ in range(300)]
    with rib.lock:
        prefixes = [p for p, _ in rib.tables[family].store.items()]
    for p in prefixes:
        net = ipaddress.ip_network(p)
        for address in (int(net.network_address), int(net.broadcast_address)):
            out.append(address if v4 else address >> 64)
    return np.unique(np.array(out, dtype=np.uint32 if v4 else np.uint64))


def _answers(view, keys: np.ndarray) -> list:
    """Each key's answer row through the packed pools the bulk path reads,
    checked against the view's own columns."""
    routes = view.lookup(keys)
    own = view.answers.rows[view.answer[np.maximum(routes, 0)]].tolist()
    own = [row if r >= 0 else None for row, r in zip(own, routes.tolist(), strict=True)]
    packed = view.pack
    if packed is not None:
        at = view.starts.searchsorted(keys, side="right") - 1
        leaf = packed.pools["leaf"][packed.offsets["leaf"][view.pack_row] + at]
        assert np.array_equal(view.own(leaf.astype(np.int32)), routes)
        ids = packed.pools["answer"][packed.offsets["answer"][view.pack_row] + np.maximum(leaf, 0)]
        rows = packed.answers.rows[ids].tolist()
        # (no route: no leaf, or a family number the router has no route under)
        leaves = leaf.tolist()
        rows = [r if k >= 0 and r != NONE_ROW else None for r, k in zip(rows, leaves, strict=True)]
        assert rows == own
    return own


def _refreshed(rib: Rib, names: list[str], late: list[str]) -> CompiledViews:
    """The views of ``names`` refreshed, those of ``late`` one at a time after the rest."""
    views = CompiledViews(rib)
    with rib.lock:
        views.want_missing([n for n in names if n not in late])
    views.refresh()
    for n in late:
        with rib.lock:
            views.want_missing([n])
        views.refresh()
    return views


@pytest.mark.parametrize("seed", range(3))
def test_views_refreshed_alone_after_the_others_answer_as_a_refresh_of_all(seed: int) -> None:
    rib, names = late_world(seed + 10)
    late = names[-2:]  # two late routers, one after the other
    together = _refreshed(rib, names, [])
    one_by_one = _refreshed(rib, names, late)
    rng = random.Random(seed)
    for family in FAMILIES:
        keys = _keys(rib, family, rng)
        mine = {v.neighbor: v for v in one_by_one.current() if v.family == family}
        theirs = {v.neighbor: v for v in together.current() if v.family == family}
        assert set(mine) == set(theirs) and set(late) <= set(mine)
        assert len({id(v.pack) for v in mine.values()}) == 1  # packed together
        assert len({id(v.answers) for v in mine.values()}) == 1
        for n in mine:
            assert _answers(mine[n], keys) == _answers(theirs[n], keys), (n, family)


def test_a_late_router_leaves_the_other_views_answer_ids_and_shares_their_columns() -> None:
    """The family's table keeps its ids when a late router's view joins it:
    the other views' ``answer`` arrays hold the same ids (only the new view's
    are mapped), their rows first in the table; the new view shares the others'
    interval axis, leaf and prefix columns (``share_columns``, one axis)."""
    rib, names = late_world(3)
    views = _refreshed(rib, names[:-1], [])
    before = {(v.neighbor, v.family): v for v in views.current()}
    with rib.lock:
        views.want_missing([names[-1]])
    assert views.refresh() == 2  # its two families
    for family in FAMILIES:
        old = [v for k, v in before.items() if k[1] == family]
        table = old[0].answers
        now = {v.neighbor: v for v in views.current() if v.family == family}
        new = now[names[-1]]
        assert np.array_equal(new.answers.rows[: len(table)], table.rows)
        for v in old:
            assert np.array_equal(now[v.neighbor].answer, v.answer), (v.neighbor, family)
        shared = [v for v in now.values() if v is not new and v.starts is new.starts]
        assert shared and all(v.leaf is new.leaf and v.nets is new.nets for v in shared)


def test_a_router_gone_mid_build_leaves_no_view_and_the_others_packed(monkeypatch) -> None:
    rib, names = late_world(5)
    views = _refreshed(rib, names[:-1], [])
    late = names[-1]
    with rib.lock:
        views.want_missing([late])
    real = viewbuild.read_family

    def gone_first(r, family, neighbors):
        with r.lock:
            r.routers.pop(late, None)  # removed between the want and the read
        return real(r, family, neighbors)

    monkeypatch.setattr(viewbuild, "read_family", gone_first)
    assert views.refresh() == 0
    assert all(v.neighbor != late for v in views.current())
    for family in FAMILIES:
        packs = {id(v.pack) for v in views.current() if v.family == family}
        assert len(packs) == 1 and None not in packs


def _rows(rng: np.random.Generator, count: int) -> np.ndarray:
    rows = np.zeros(count, dtype=ROW)
    for name in ("origin_as", "origin_as_highest", "peer_as", "peer_as_highest"):
        rows[name] = rng.integers(0, 6, count) * 1_000_000_000 + rng.integers(0, 3, count)
    rows["provenance"] = rng.integers(1, 6, count)
    rows["stale"] = rng.random(count) < 0.3
    rows["from_set"] = rng.random(count) < 0.3
    return rows


@pytest.mark.parametrize("seed", range(6))
def test_answer_rows_matched_in_c_equal_the_sort_reference(seed: int) -> None:
    """A new view's answer rows merged onto the family's table: the base's rows
    keep their ids, each other row takes its equal base row's id or an id
    appended in first-seen order (once, across tables), and the table stays
    distinct; empty tables, tables all new and all known alike. (``match_rows``
    takes the C table when the others' rows are fewer than the base's.)"""
    rng = np.random.default_rng(seed)
    base = intern(_rows(rng, int(rng.choice((0, 1, 500, 3000)))))[1]
    others = []
    for _ in range(int(rng.integers(1, 4))):
        known = base[rng.integers(0, len(base), int(rng.integers(0, 400)))] if len(base) else []
        rows = np.concatenate([known, _rows(rng, int(rng.choice((0, 5, 800))))]).astype(ROW)
        others.append(intern(rows)[1])
    got = c_match_rows(base, others)
    want = py_match_rows(base, others)
    via = match_rows(base, others)[1]
    assert all(np.array_equal(a, b) for a, b in zip(via, want[1], strict=True))
    assert got[0].dtype == ROW and got[0].tobytes() == want[0].tobytes()
    assert got[0][: len(base)].tobytes() == base.tobytes()
    for rows, a, b in zip(others, got[1], want[1], strict=True):
        assert np.array_equal(a, b) and got[0][a].tobytes() == rows.tobytes()
    assert len(intern(got[0])[1]) == len(got[0])  # distinct
