"""The views' answers as ids into one table of distinct answer rows per family.

Each (router, route) of a compiled view holds one id into an answer table
the family's views share (``attribution.viewanswers``); these tests compare
what a key reads through that layout, the way the bulk path reads it (the
packed pools) and the way a lone view reads it, with the RIB's own
``lookup`` and the answer rules of ``attribution.lookup``, over many
routers, stale routes and ADD-PATH, fresh and after rounds of churn patched
into the views; and the ids widening past 65,536 distinct answers.
"""

from __future__ import annotations

import ipaddress
import random

import numpy as np
import pytest

from attribution.answers import BGP, DEFAULT, LOCAL, NONE
from attribution.resolver import Resolver
from attribution.viewanswers import ROW, AnswerTable, id_dtype, intern, merge
from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.events import IPV4_UNICAST, EndOfRib, RoutesAnnounced, RoutesWithdrawn, SessionState
from ribd.rib import Rib
from tests.attribution.test_bulk_many_exporters import (
    V4,
    V6,
    _address,
    _answers,
    _attrs,
    _more_churn,
    flows,
    neighbor,
    world,
)


def _expected(rib: Rib, neighbor: str, family: str, address: str) -> tuple | None:
    """(origin, origin highest, peer, peer highest, provenance, stale, from
    AS_SET) of the RIB's own longest match, by the rules of ``lookup``
    (empty path: provenance local, origin filled in per batch)."""
    m = rib.lookup(neighbor, family, address)
    if m is None:
        return None
    a = m.attributes
    if m.length == 0:
        return (0, 0, a.peer_as, a.peer_as_highest, DEFAULT, m.stale, False)
    if a.empty_path:
        return (0, 0, 0, 0, LOCAL, m.stale, False)
    row = (a.origin_as, a.origin_as_highest, a.peer_as, a.peer_as_highest, BGP, m.stale)
    return (*row, a.origin_from_set)


def _key(view, address: str) -> int:
    ip = ipaddress.ip_address(address)
    return int(ip) if ip.version == 4 else int(ip) >> 64


def _read(view, key: int) -> tuple | None:
    """A key's answer row through the view's own columns, and the same
    through the packed pools the bulk path reads: they must agree."""
    keys = np.array([key], dtype=view.starts.dtype)  # a Python int would compare as float
    i = int(view.lookup(keys)[0])
    if i < 0:
        return None
    own = view.answers.rows[view.answer[i]].tolist()
    packed = view.pack
    if packed is not None:
        k = int(view.starts.searchsorted(keys, side="right")[0]) - 1
        leaf_at = int(packed.offsets["leaf"][view.pack_row]) + k
        shared = int(packed.pools["leaf"][leaf_at])  # a family number: maybe a hole
        assert int(view.own(np.array([shared], dtype=np.int32))[0]) == i
        answer_at = int(packed.offsets["answer"][view.pack_row]) + shared
        row = packed.answers.rows[int(packed.pools["answer"][answer_at])].tolist()
        assert row == own
    return tuple(own)


def _check_views(rib: Rib, views, v4: list[str], v6: list[str], rng: random.Random) -> int:
    checked = 0
    for view in views.current():
        prefixes = v4 if view.family == V4 else v6
        for _ in range(150):
            address = _address(rng, prefixes, view.family == V4)
            key = _key(view, address)
            if view.family != V4 and key in set(view.long_v6.tolist()):
                continue  # under a prefix longer than /64: the exact path answers
            got = _read(view, key)
            want = _expected(rib, view.neighbor, view.family, address)
            assert got == want, (view.neighbor, view.family, address)
            checked += 1
    return checked


@pytest.mark.parametrize("seed", range(4))
def test_each_views_answers_equal_the_ribs_own_lookup_fresh_and_after_churn(seed):
    rib, config, v4, v6 = world(seed, same_prefixes=seed % 2 == 0)
    resolver = Resolver(rib, config, build_views_inline=False)
    views = resolver.views
    with rib.lock:  # every router's, router 4's stale table too
        views._wanted.update((n, f) for n in rib.routers for f in (V4, V6))
    views.refresh()
    rng = random.Random(seed)
    assert any(v.answers.rows["stale"].any() for v in views.current())  # router 4's
    for round_ in range(3):
        for family in (V4, V6):
            family_views = [v for v in views.current() if v.family == family]
            tables = {id(v.answers) for v in family_views}
            packed = {id(v.pack) for v in family_views}
            if len(family_views) > 1 and len({id(v.starts) for v in family_views}) == 1:
                assert len(tables) == 1 and len(packed) == 1, (round_, family)
            for v in family_views:
                assert v.answer.dtype == id_dtype(len(v.answers))
                rows = v.answers.rows
                assert len(intern(rows)[1]) == len(rows)  # distinct rows
        assert _check_views(rib, views, v4, v6, rng) > 500
        records = flows(seed + round_, v4, v6, 400)
        exact = _answers(Resolver(rib, config, build_views_inline=False), config, records)
        assert _answers(resolver, config, records) == exact
        _more_churn(rib, v4, v6, seed * 10 + round_)
        with rib.lock:
            views._wanted.update((v.neighbor, v.family) for v in views.current())
        patches = views.patches
        views.refresh()
        assert views.patches > patches  # patched, not rebuilt


def test_answer_ids_widen_past_65536_distinct_answers():
    """Two routers with 40,000 distinct origin ASes each (none shared): the
    family's one table then has over 65,536 rows, and the 2-byte ids of each
    router's own table must become 4-byte ones, or answers would wrap."""
    rib = Rib()
    routers = ("127.0.1.1", "127.0.1.2")
    for k, n in enumerate(routers):
        rib.apply(SessionState(n, "up"))
        for i in range(40_000):
            prefix = f"10.{i >> 8 & 255}.{i & 255}.0/24"
            path = ((AS_SEQUENCE, (64512, 100_000 + k * 50_000 + i)),)
            attrs = make_attributes(path, next_hop=f"127.0.2.{k + 1}")
            rib.apply(RoutesAnnounced(n, IPV4_UNICAST, (prefix,), None, attrs))
        rib.apply(EndOfRib(n, IPV4_UNICAST))
    from attribution.config import parse_config
    from tests.attribution.test_bulk_many_exporters import config_text

    resolver = Resolver(rib, parse_config(config_text(), "t.toml"), build_views_inline=False)
    with rib.lock:
        resolver.views.want_missing(list(routers))
    resolver.views.refresh()
    views = resolver.views.current()
    assert len(views) == 2 and views[0].answers is views[1].answers
    assert len(views[0].answers) > 65_536
    assert all(v.answer.dtype == np.uint32 for v in views)
    for v in views:
        for i in (0, 1, 39_999, 20_000):
            address = f"10.{i >> 8 & 255}.{i & 255}.7"
            assert _read(v, _key(v, address)) == _expected(rib, v.neighbor, IPV4_UNICAST, address)


def _rows(origins: list[int], stale: bool = False) -> np.ndarray:
    rows = np.zeros(len(origins), dtype=ROW)
    rows["origin_as"] = rows["origin_as_highest"] = origins
    rows["peer_as"] = rows["peer_as_highest"] = 64512
    rows["provenance"] = BGP
    rows["stale"] = stale
    return rows


def test_tables_merge_to_distinct_rows_and_map_every_id():
    a = AnswerTable(intern(_rows([5, 3, 9]))[1])
    b = AnswerTable(intern(_rows([9, 4, 3], stale=True))[1])
    ext, ids = a.ids_of([(7, 7, 64512, 64512, BGP, False, False), tuple(a.rows[0].tolist())])
    assert ext is not a and ext.parent is a and ids == [3, 0]
    same, ids = a.ids_of([tuple(a.rows[2].tolist())])
    assert same is a and ids == [2]
    for tables in ([a, b], [a, ext], [a, b, ext]):
        table, remaps = merge(tables)
        assert len(intern(table.rows)[1]) == len(table)
        for t, remap in zip(tables, remaps, strict=True):
            assert table.rows[remap].tolist() == t.rows.tolist()
    assert merge([a, ext])[0].rows.tolist()[:3] == a.rows.tolist()  # a's ids kept
    assert id_dtype(65_536) is np.uint16 and id_dtype(65_537) is np.uint32
    assert NONE not in {int(r["provenance"]) for r in merge([a, b])[0].rows}


@pytest.mark.parametrize("seed", range(3))
def test_a_batch_filling_one_axis_answers_as_the_rib(seed, monkeypatch):
    """IPv4 flows of routers that each have their own view on the family's
    one axis: the groups then fill the batch in order, and the keys' router
    offsets are read without the slot scatter (``batch_views.slots``); the
    answers must stay the RIB's, fresh and after churn."""
    import attribution.batch_views as batch_views
    from tests.attribution.test_bulk_many_exporters import exporter

    rib, config, v4, v6 = world(seed, same_prefixes=True)
    resolver = Resolver(rib, config, build_views_inline=False)
    views = resolver.views
    with rib.lock:
        views._wanted.update((n, f) for n in rib.routers for f in (V4, V6))
    views.refresh()
    seen: list[bool] = []
    read = batch_views._read_packed

    def spy(*args):
        seen.append(args[5] is None)  # spans: None when the groups fill the batch
        return read(*args)

    monkeypatch.setattr(batch_views, "_read_packed", spy)
    rng = random.Random(seed)
    for round_ in range(2):
        records = [
            {
                "exporter": exporter(rng.choice((0, 1, 3, 4, 5, 6))),
                "src_addr": _address(rng, v4, True),
                "dst_addr": _address(rng, v4, True),
            }
            for _ in range(600)
        ]
        exact = _answers(Resolver(rib, config, build_views_inline=False), config, records)
        assert _answers(resolver, config, records) == exact, round_
        _more_churn(rib, v4, v6, seed * 10 + round_)
        with rib.lock:
            views._wanted.update((v.neighbor, v.family) for v in views.current())
        views.refresh()
    assert any(seen), seen


def test_views_of_twenty_routers_with_overlay_entries_answer_as_the_rib():
    """Tables of 16+ routers keep a prefix's entry as a row its set shares
    plus the prefix's own differing slots (``ribd.entries.Overlay``): the
    views' build and patches read those through ``slot_value``; each view's
    answers must be the RIB's, fresh and after churn that moves single
    prefixes of some routers elsewhere."""
    from attribution.config import parse_config
    from tests.attribution.test_bulk_many_exporters import config_text

    rng = random.Random(5)
    rib = Rib()
    routers = [f"127.0.5.{k + 1}" for k in range(20)]
    prefixes = [f"10.{i >> 4}.{(i & 15) << 4}.0/20" for i in range(400)]
    prefixes += [f"10.{i}.0.0/16" for i in range(0, 25, 3)] + ["0.0.0.0/0"]

    def attrs(k: int, origin: int):
        path = ((AS_SEQUENCE, (64512 + k % 3, origin)),)
        return make_attributes(path, next_hop=f"127.0.6.{k + 1}")

    for k, n in enumerate(routers):
        rib.apply(SessionState(n, "up"))
        shared = attrs(k, 65000)
        rib.apply(RoutesAnnounced(n, IPV4_UNICAST, tuple(prefixes), None, shared))
        for p in rng.sample(prefixes, 20):  # this router's own paths for a few prefixes
            rib.apply(RoutesAnnounced(n, IPV4_UNICAST, (p,), None, attrs(k, 66000 + k)))
        rib.apply(EndOfRib(n, IPV4_UNICAST))
    resolver = Resolver(rib, parse_config(config_text(), "t.toml"), build_views_inline=False)
    views = resolver.views
    with rib.lock:
        views.want_missing(routers)
    views.refresh()
    from ribd.entries import Overlay

    entries = rib.tables[IPV4_UNICAST].store.values.tolist()
    assert any(type(e) is Overlay for e in entries)  # what this test is about
    for round_ in range(3):
        current = views.current()
        assert len(current) == 20 and len({id(v.answers) for v in current}) == 1
        for v in current:
            for _ in range(60):
                address = _address(rng, prefixes, True)
                want = _expected(rib, v.neighbor, IPV4_UNICAST, address)
                assert _read(v, _key(v, address)) == want, (round_, v.neighbor, address)
        for k in rng.sample(range(20), 8):  # churn: single prefixes moved, some withdrawn
            for p in rng.sample(prefixes, 5):
                origin = rng.choice((65000, 67000 + round_))
                rib.apply(RoutesAnnounced(routers[k], IPV4_UNICAST, (p,), None, attrs(k, origin)))
        with rib.lock:
            views._wanted.update((v.neighbor, v.family) for v in views.current())
        views.refresh()


def _churn_some(rib: Rib, v4: list[str], v6: list[str], routers: tuple[int, ...], seed: int):
    """New more-specifics, path changes and withdrawals of ``routers`` only,
    on prefixes the other routers hold too."""
    rng = random.Random(seed)
    for k in routers:
        n = neighbor(k)
        for p in rng.sample(v4, 6):
            rib.apply(RoutesAnnounced(n, V4, (p,), None, _attrs(rng, "127.0.4.77")))
        for p in rng.sample(v4, 3):
            net = ipaddress.ip_network(p)
            if net.prefixlen <= 28:
                sub = next(net.subnets(new_prefix=net.prefixlen + rng.randint(1, 4)))
                rib.apply(RoutesAnnounced(n, V4, (str(sub),), None, _attrs(rng, "127.0.4.78")))
        rib.apply(RoutesWithdrawn(n, V4, tuple(rng.sample(v4, 3)), None))
        p = rng.choice(v6)
        rib.apply(RoutesAnnounced(n, V6, (p,), None, _attrs(rng, "2001:db8::77")))


@pytest.mark.parametrize("seed", range(3))
def test_a_refresh_patches_only_the_views_whose_router_changed(seed):
    """The change log is the family's, so every router's view was patched at
    each refresh under churn: new attribute sets, so a stream's route numbers
    of routers that changed nothing were dropped too. Views of routers none
    of whose routes changed since the view's change number are made current
    as they are (same arrays, same route numbers), the batch reads them
    without the changed ranges, and every view still answers as the RIB."""
    rib, config, v4, v6 = world(seed, same_prefixes=seed % 2 == 0)
    resolver = Resolver(rib, config, build_views_inline=False)
    views = resolver.views
    with rib.lock:
        views._wanted.update((n, f) for n in rib.routers for f in (V4, V6))
    views.refresh()
    rng = random.Random(seed)
    churned = {neighbor(k) for k in (0, 5)}
    for round_ in range(3):
        before = {(v.neighbor, v.family): v for v in views.current()}
        _churn_some(rib, v4, v6, (0, 5), seed * 10 + round_)
        with rib.lock:  # unchanged routers: no changed ranges to send to the exact path
            for n, family in before:
                got = views.usable(n, family)
                assert got is not None
                assert (len(got[1].starts) > 0) == (n in churned), (n, family)
        records = flows(seed + round_, v4, v6, 400)
        exact = _answers(Resolver(rib, config, build_views_inline=False), config, records)
        assert _answers(resolver, config, records) == exact
        with rib.lock:  # every view asked for, as after a bench's churn
            views._wanted.update(before)
        patches = views.patches
        views.refresh()
        after = {(v.neighbor, v.family): v for v in views.current()}
        assert views.patches - patches == sum(k[0] in churned for k in after), round_
        for key, v in after.items():
            old = before[key]
            if key[0] in churned:
                assert v.attribute_sets is not old.attribute_sets
                continue
            assert v.attribute_sets is old.attribute_sets, key  # the same routes
            assert v.same_routes(old), key
        for family in (V4, V6):
            table = rib.tables[family]
            assert table.changes_start == table.change_seq  # every view current: log trimmed
        assert _check_views(rib, views, v4, v6, rng) > 500
        assert _answers(resolver, config, records) == exact
