"""RIB semantics: per-router isolation, replace/withdraw, ADD-PATH, purge, stale."""

from __future__ import annotations

import gzip
import re

import pytest

from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.events import (
    EndOfRib,
    ExabgpShutdown,
    RoutesAnnounced,
    RoutesWithdrawn,
    SessionState,
)
from ribd.parser import ExabgpParser
from ribd.rib import Rib
from ribd.store import PrefixStore
from tests.conftest import FULL_TABLE, need

V4 = "ipv4 unicast"
V6 = "ipv6 unicast"
R1, R2 = "192.0.2.1", "192.0.2.2"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def path(*asns, **kw):
    return make_attributes(((AS_SEQUENCE, asns),), next_hop="192.0.2.254", **kw)


def announce(rib, router, prefixes, attrs, family=V4, path_ids=None):
    rib.apply(RoutesAnnounced(router, family, tuple(prefixes), path_ids, attrs))


def withdraw(rib, router, prefixes, family=V4, path_ids=None):
    rib.apply(RoutesWithdrawn(router, family, tuple(prefixes), path_ids))


def up(rib, router):
    rib.apply(SessionState(router, "up"))


def down(rib, router):
    rib.apply(SessionState(router, "down", reason="test"))


def drain(rib):
    while rib.maintenance():
        pass


def test_longest_prefix_match_with_nested_prefixes():
    rib = Rib()
    up(rib, R1)
    announce(rib, R1, ["10.0.0.0/8"], path(1, 2))
    announce(rib, R1, ["10.1.0.0/16"], path(1, 3))
    assert rib.lookup(R1, V4, "10.1.2.3").attributes.origin_as == 3
    assert rib.lookup(R1, V4, "10.2.0.1").attributes.origin_as == 2
    assert rib.lookup(R1, V4, "10.1.2.3").prefix == "10.1.0.0/16"
    assert rib.lookup(R1, V4, "11.0.0.1") is None


def test_each_router_answers_only_from_its_own_routes():
    rib = Rib()
    up(rib, R1)
    up(rib, R2)
    announce(rib, R1, ["10.0.0.0/8"], path(1, 2))
    announce(rib, R2, ["10.1.0.0/16"], path(5, 6))
    # R2's more specific must not leak into R1's answer, and vice versa.
    assert rib.lookup(R1, V4, "10.1.2.3").prefix == "10.0.0.0/8"
    assert rib.lookup(R2, V4, "10.1.2.3").attributes.origin_as == 6
    assert rib.lookup(R2, V4, "10.2.0.1") is None


def test_announce_replaces_and_withdraw_removes():
    rib = Rib()
    up(rib, R1)
    announce(rib, R1, ["10.0.0.0/8"], path(1, 2))
    announce(rib, R1, ["10.0.0.0/8"], path(1, 9))
    assert rib.lookup(R1, V4, "10.0.0.1").attributes.origin_as == 9
    fs = rib.routers[R1].families[V4]
    assert (fs.prefixes, fs.paths) == (1, 1)
    withdraw(rib, R1, ["10.0.0.0/8"])
    assert rib.lookup(R1, V4, "10.0.0.1") is None
    assert (fs.prefixes, fs.paths) == (0, 0)
    assert len(rib.tables[V4].store) == 0


@pytest.mark.parametrize("merged", [False, True])
def test_one_update_of_new_known_and_repeated_prefixes_counts_each_prefix_once(merged):
    """The table-load fast path (new prefixes, empty arrays) and the general loop agree."""
    rib = Rib()
    up(rib, R1)
    announce(rib, R1, ["10.1.0.0/16", "10.2.0.0/16"], path(1, 2))
    if merged:
        rib.merge_now(V4)
    announce(rib, R1, ["10.3.0.0/16", "10.1.0.0/16", "10.3.0.0/16", "10.4.0.0/16"], path(1, 7))
    announce(rib, R1, ["10.5.0.0/16", "10.5.0.0/16"], path(1, 8))
    fs = rib.routers[R1].families[V4]
    assert (fs.prefixes, fs.paths) == (5, 5)
    origins = {
        p: rib.lookup(R1, V4, p[:-3]).attributes.origin_as for p in rib.tables[V4].store.prefixes()
    }
    assert origins == {
        "10.1.0.0/16": 7,
        "10.2.0.0/16": 2,
        "10.3.0.0/16": 7,
        "10.4.0.0/16": 7,
        "10.5.0.0/16": 8,
    }
    table = rib.tables[V4]
    assert {"10.3.0.0/16", "10.4.0.0/16", "10.5.0.0/16"} <= set(table.store.texts_of(table.changes))
    withdraw(rib, R1, ["10.5.0.0/16", "10.3.0.0/16"])
    assert (fs.prefixes, fs.paths) == (3, 3)


@pytest.mark.parametrize("merged", [False, True])
def test_a_second_router_over_prefixes_of_mixed_entries_gets_each_its_own_entry(merged):
    """Entries rebuilt once per UPDATE for prefixes that shared one stay right when
    the prefixes' entries differ, alternate, or repeat."""
    rib = Rib()
    up(rib, R1)
    up(rib, R2)
    announce(rib, R1, ["10.1.0.0/16", "10.2.0.0/16"], path(1, 2))
    announce(rib, R1, ["10.3.0.0/16"], path(1, 3))
    if merged:
        rib.merge_now(V4)
    prefixes = ["10.1.0.0/16", "10.3.0.0/16", "10.2.0.0/16", "10.4.0.0/16", "10.1.0.0/16"]
    announce(rib, R2, prefixes, path(5, 9))
    want1 = {"10.1.0.0/16": 2, "10.2.0.0/16": 2, "10.3.0.0/16": 3, "10.4.0.0/16": None}
    for p, origin in want1.items():
        got = rib.lookup(R1, V4, p[:-3])
        assert (got.attributes.origin_as if got and got.prefix == p else None) == origin, p
        assert rib.lookup(R2, V4, p[:-3]).attributes.origin_as == 9
    store = rib.tables[V4].store
    assert store.get("10.1.0.0/16") is store.get("10.2.0.0/16")
    assert store.get("10.1.0.0/16") is not store.get("10.3.0.0/16")
    assert (rib.routers[R2].families[V4].prefixes, rib.routers[R2].families[V4].paths) == (4, 4)


def test_families_are_separate_tries():
    rib = Rib()
    up(rib, R1)
    announce(rib, R1, ["0.0.0.0/0"], path(1))
    announce(rib, R1, ["2001:db8::/32"], path(1, 7), family=V6)
    assert rib.lookup(R1, V6, "2001:db8::1").attributes.origin_as == 7
    assert rib.lookup(R1, V6, "2001:db9::1") is None  # no v4 default leaking into v6


def test_add_path_keeps_each_path_and_picks_the_best():
    rib = Rib()
    up(rib, R1)
    worse = path(1, 2, 3, 4)
    better = path(5, 4)
    announce(rib, R1, ["10.0.0.0/8"], worse, path_ids=(1,))
    announce(rib, R1, ["10.0.0.0/8"], better, path_ids=(2,))
    fs = rib.routers[R1].families[V4]
    assert (fs.prefixes, fs.paths) == (1, 2)
    best = rib.lookup(R1, V4, "10.0.0.1")
    assert (best.path_id, best.attributes) == (2, better)
    assert [m.path_id for m in rib.exact(R1, V4, "10.0.0.0/8")] == [2, 1]
    withdraw(rib, R1, ["10.0.0.0/8"], path_ids=(2,))
    assert rib.lookup(R1, V4, "10.0.0.1").path_id == 1
    withdraw(rib, R1, ["10.0.0.0/8"], path_ids=(7,))  # unknown path id: no change
    assert (fs.prefixes, fs.paths) == (1, 1)
    withdraw(rib, R1, ["10.0.0.0/8"], path_ids=(1,))
    assert rib.lookup(R1, V4, "10.0.0.1") is None
    assert (fs.prefixes, fs.paths) == (0, 0)


def test_local_pref_beats_path_length_in_add_path():
    rib = Rib()
    up(rib, R1)
    announce(rib, R1, ["10.0.0.0/8"], path(1, 2, 3, local_pref=200), path_ids=(1,))
    announce(rib, R1, ["10.0.0.0/8"], path(4, local_pref=100), path_ids=(2,))
    assert rib.lookup(R1, V4, "10.0.0.1").path_id == 1


def test_session_down_purges_that_router_only():
    rib = Rib()
    up(rib, R1)
    up(rib, R2)
    announce(rib, R1, ["10.0.0.0/8", "10.1.0.0/16"], path(1, 2))
    announce(rib, R2, ["10.0.0.0/8"], path(1, 2))
    down(rib, R1)
    assert rib.lookup(R1, V4, "10.1.0.1") is None  # at once, before any sweep
    assert rib.lookup(R2, V4, "10.1.0.1").prefix == "10.0.0.0/8"
    drain(rib)
    assert len(rib.tables[V4].store) == 1
    assert rib.routers[R1].families[V4].prefixes == 0
    assert rib.routers[R1].last_reason == "test"


def test_stale_routes_are_kept_for_the_hold_time_then_purged():
    clock = Clock()
    rib = Rib(stale_hold_time=60, clock=clock)
    up(rib, R1)
    announce(rib, R1, ["10.0.0.0/8"], path(1, 2))
    down(rib, R1)
    m = rib.lookup(R1, V4, "10.0.0.1")
    assert m is not None and m.stale
    clock.now += 59
    drain(rib)
    assert rib.lookup(R1, V4, "10.0.0.1").stale
    clock.now += 2
    drain(rib)
    assert rib.lookup(R1, V4, "10.0.0.1") is None
    assert not rib.routers[R1].stale


def test_session_back_refreshes_stale_routes_and_end_of_rib_drops_the_rest():
    clock = Clock()
    rib = Rib(stale_hold_time=60, clock=clock)
    up(rib, R1)
    announce(rib, R1, ["10.0.0.0/8", "10.1.0.0/16"], path(1, 2))
    rib.apply(EndOfRib(R1, V4))
    down(rib, R1)
    up(rib, R1)
    assert rib.lookup(R1, V4, "10.1.0.1").stale  # still the old generation
    announce(rib, R1, ["10.0.0.0/8"], path(1, 3))
    fresh = rib.lookup(R1, V4, "10.0.0.1")
    assert (fresh.stale, fresh.attributes.origin_as) == (False, 3)
    assert rib.routers[R1].families[V4].converged is False
    rib.apply(EndOfRib(R1, V4))
    assert rib.lookup(R1, V4, "10.1.0.1").prefix == "10.0.0.0/8"  # /16 gone with EoR
    assert rib.routers[R1].families[V4].converged
    assert not rib.routers[R1].stale


@pytest.mark.parametrize("merged", [False, True])
def test_withdrawing_a_stale_more_specific_leaves_it_gone_and_its_cover_alone(merged):
    """The withdrawal reads a prefix's entry once and writes at the index it found.
    Read again after its stale copy is cleared, a prefix the delta no longer holds
    must be absent, not answered by the trie's longest match (its /8 cover)."""
    clock = Clock()
    rib = Rib(stale_hold_time=60, clock=clock)
    up(rib, R1)
    announce(rib, R1, ["10.0.0.0/8", "10.1.0.0/16"], path(1, 2))
    rib.apply(EndOfRib(R1, V4))
    if merged:
        rib.compact()
    down(rib, R1)
    up(rib, R1)
    announce(rib, R1, ["10.0.0.0/8"], path(1, 3))
    withdraw(rib, R1, ["10.1.0.0/16"])
    fs = rib.routers[R1].families[V4]
    assert (fs.prefixes, fs.paths, fs.stale_prefixes) == (1, 1, 0)
    assert [(m.prefix, m.stale) for m in rib.routes(R1, V4)] == [("10.0.0.0/8", False)]
    assert rib.lookup(R1, V4, "10.1.0.1").attributes.origin_as == 3


def test_exabgp_shutdown_keeps_routes_stale_when_a_restart_hold_is_given():
    clock = Clock()
    rib = Rib(clock=clock)
    up(rib, R1)
    announce(rib, R1, ["10.0.0.0/8"], path(1, 2))
    rib.with_lock_exabgp_gone("ExaBGP died", hold_time=300)
    assert rib.lookup(R1, V4, "10.0.0.1").stale
    assert rib.routers[R1].session == "down"
    rib.apply(ExabgpShutdown())  # no hold configured: purge
    assert rib.lookup(R1, V4, "10.0.0.1").stale  # already stale: hold kept


def test_purged_slots_are_reused_and_entries_collected():
    rib = Rib()
    for _ in range(5):
        up(rib, R1)
        announce(rib, R1, [f"10.{i}.0.0/16" for i in range(100)], path(1, 2))
        down(rib, R1)
        drain(rib)
    assert rib.tables[V4]._next_slot <= 3
    rib.collect_garbage()
    assert len(rib.tables[V4].store) == 0
    assert rib.tables[V4].distinct_entries == 0


def test_a_second_router_with_the_same_paths_shares_entries():
    rib = Rib()
    a, b = path(1, 2), path(1, 3)
    for router in (R1, R2):
        up(rib, router)
        announce(rib, router, [f"10.{i}.0.0/16" for i in range(50)], a)
        announce(rib, router, [f"11.{i}.0.0/16" for i in range(50)], b)
    rib.collect_garbage()
    assert rib.tables[V4].distinct_entries == 2  # (a, a) and (b, b)


@pytest.mark.parametrize("merged", [False, True])
def test_entries_no_prefix_holds_leave_the_intern_dict_without_a_collection(merged):
    """Each router loaded rebuilds every prefix's entry one slot wider: the old
    entries used to wait in the intern dict (a third of the entries' bytes on
    average) until a collection; they go as they are replaced, and withdrawn."""
    rib = Rib()
    a, b, c = path(1, 2), path(1, 3), path(1, 4)
    prefixes = [f"10.{i}.0.0/16" for i in range(60)]
    for router, attrs in ((R1, a), (R2, b), (R1, c)):
        up(rib, router)
        announce(rib, router, prefixes[:40], attrs)
        announce(rib, router, prefixes[40:], attrs)
        if merged:
            rib.compact()
    table = rib.tables[V4]
    live = {id(e) for _, e in table.store.items()}
    assert len(live) == 1  # (c, b) everywhere
    assert table.distinct_entries == 1
    withdraw(rib, R2, prefixes[:30])
    withdraw(rib, R1, prefixes[50:])
    live = {id(e) for _, e in table.store.items()}
    assert len(live) == table.distinct_entries == 3  # (c,), (c, b) and (None, b)
    assert rib.collect_garbage() == 0
    assert [m.attributes for m in rib.routes(R1, V4)] == [c] * 50
    assert [m.attributes for m in rib.routes(R2, V4)] == [b] * 30


@pytest.mark.parametrize("merged", [False, True])
def test_routes_back_after_a_restart_leave_no_dead_entry_interned(merged):
    """A router back after a restart re-sends its routes over their stale copies;
    each returning route replaces its prefix's entry (stale copy cleared, new one
    set). The replaced entries used to stay interned until the End-of-RIB's
    collection: a whole table's worth of dead entries (~0.5 KB each at 64
    routers) during every refresh."""
    rib = Rib(stale_hold_time=60, clock=Clock())
    prefixes = [f"10.{i}.0.0/16" for i in range(50)]
    up(rib, R1)
    announce(rib, R1, prefixes, path(1, 2))
    rib.apply(EndOfRib(R1, V4))
    up(rib, R2)
    for k, prefix in enumerate(prefixes):  # an entry of its own for each prefix
        announce(rib, R2, [prefix], path(1, 200 + k))
    rib.apply(EndOfRib(R2, V4))
    if merged:
        rib.compact()
    down(rib, R1)
    up(rib, R1)
    table = rib.tables[V4]
    for k, prefix in enumerate(prefixes):  # one UPDATE each: entries differ per prefix
        announce(rib, R1, [prefix], path(1, 100 + k))
    live = {id(e) for _, e in table.store.items()}
    assert len(live) == 50
    assert table.distinct_entries == 50  # nothing but the live entries interned
    assert rib.collect_garbage() == 0
    assert [m.attributes.origin_as for m in rib.routes(R1, V4)] == [100 + k for k in range(50)]
    assert not any(m.stale for m in rib.routes(R1, V4))
    assert [m.attributes.origin_as for m in rib.routes(R2, V4)] == [200 + k for k in range(50)]


@pytest.mark.fulltable
def test_real_full_table_loads_with_every_prefix_and_path():
    """The PCH AS3856 table: 577,706 distinct prefixes are announced; three of
    them (incl. the RIS beacon 84.205.78.0/24) are withdrawn again before the
    End-of-RIB, so the converged RIB holds 577,703."""
    data = gzip.decompress(need(FULL_TABLE).read_bytes())
    announced = {p.decode() for p in re.findall(rb'"nlri":"([^"]+)"', data)}
    assert len(announced) == 577_706
    rib = Rib()
    parser = ExabgpParser(rib.interner)
    for line in data.splitlines():
        rib.apply_many(parser.parse(line))
    peer = "206.220.231.55"
    fs = rib.routers[peer].families[V4]
    assert fs.prefixes == 577_703
    assert fs.converged
    routes = {m.prefix: m for m in rib.routes(peer, V4)}
    assert announced - set(routes) == {"114.57.40.0/22", "202.155.148.0/24", "84.205.78.0/24"}
    first = routes["178.215.220.0/22"].attributes
    assert first.flat_path() == [61417, 51336]
    assert first.community_strings() == ["3856:52400"]
    assert (first.local_pref, first.med, first.next_hop) == (100, 0, "185.1.1.241")
    last = routes["76.191.107.0/24"].attributes
    assert (last.peer_as, last.origin_as) == (11404, 22059)
    assert rib.lookup(peer, V4, "8.8.8.8").attributes.origin_as == 15169
    assert rib.lookup(peer, V4, "0.0.0.1").prefix == "0.0.0.0/0"


def test_maintenance_frees_attribute_sets_that_churn_left_unused():
    """The daemon only calls maintenance(): replaced attribute sets must not pile up."""
    rib = Rib()
    parser = ExabgpParser(rib.interner)
    up(rib, R1)
    line = (
        '{"exabgp": "5.0.0", "type": "update", "neighbor": {"address": {"peer": "192.0.2.1"},'
        ' "message": {"update": {"attribute": {"origin": "igp", "med": %d},'
        ' "announce": {"ipv4 unicast": {"192.0.2.254": [{"nlri": "10.%d.0.0/16"}]}}}}}}'
    )
    for med in range(20):  # each round replaces every route's attributes
        for i in range(200):
            rib.apply_many(parser.parse((line % (med * 1000 + i, i)).encode()))
        drain(rib)
    assert rib.routers[R1].families[V4].prefixes == 200
    # 20 rounds x 200 distinct sets were made; without collection all 4,000 stay.
    assert len(rib.interner) < 2000
    rib.collect_garbage()
    assert len(rib.interner) == 200  # only the sets the routes still use


def _random_events(seed: int) -> list:
    """Announces, withdrawals (ADD-PATH too), session flaps and End-of-RIBs on three routers."""
    import random

    rng = random.Random(seed)
    routers = [R1, R2, "192.0.2.3"]
    prefixes = [f"10.{a}.0.0/16" for a in range(8)] + [
        f"10.{a}.{b}.0/24" for a in range(8) for b in range(4)
    ]
    prefixes += ["10.0.0.0/8", "0.0.0.0/0"]
    paths = [path(65000 + i, 64500 + i) for i in range(6)]
    events: list = [SessionState(r, "up") for r in routers]
    for _ in range(1500):
        r = rng.choice(routers)
        roll = rng.random()
        chosen = tuple(rng.sample(prefixes, rng.randint(1, 6)))
        ids = tuple(rng.choice([1, 2]) for _ in chosen) if rng.random() < 0.2 else None
        if roll < 0.6:
            events.append(RoutesAnnounced(r, V4, chosen, ids, rng.choice(paths)))
        elif roll < 0.9:
            events.append(RoutesWithdrawn(r, V4, chosen, ids))
        elif roll < 0.95:
            events.append(SessionState(r, rng.choice(["down", "up"]), reason="flap"))
        else:
            events.append(EndOfRib(r, V4))
    return events


def _answers(rib: Rib) -> list:
    out = []
    for r in (R1, R2, "192.0.2.3"):
        fs = rib.routers[r].families[V4]
        out.append((r, fs.prefixes, fs.paths, fs.stale_prefixes))
        for a in range(9):
            for b in (0, 1, 5):
                m = rib.lookup(r, V4, f"10.{a}.{b}.1")
                out.append(m and (m.prefix, m.path_id, m.stale, m.attributes.origin_as))
        out.append(sorted((m.prefix, m.path_id, m.stale) for m in rib.routes(r, V4)))
        out.append([(m.prefix, m.path_id) for m in rib.exact(r, V4, "10.1.0.0/16")])
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_merging_the_store_at_any_point_never_changes_an_answer(seed):
    clock = Clock()
    plain = Rib(stale_hold_time=30, clock=clock)
    merged = Rib(stale_hold_time=30, clock=clock)
    import random

    rng = random.Random(seed)
    for i, event in enumerate(_random_events(seed)):
        plain.apply(event)
        merged.apply(event)
        if rng.random() < 0.05:
            merged.compact()
        if rng.random() < 0.02:
            clock.now += 20  # some stale generations expire
            drain(plain)
            drain(merged)
        if i % 100 == 99:
            assert _answers(merged) == _answers(plain)
    drain(plain)
    drain(merged)
    merged.compact()
    assert _answers(merged) == _answers(plain)


def _count_encodes_and_write_meanwhile(monkeypatch, rib, writing):
    """Count PrefixStore.encode calls (one per merge attempt); while
    ``writing[0]``, a feed write lands in each one that runs with the lock free."""
    encode = PrefixStore.encode
    calls = [0]
    extra = iter(range(1 << 30))

    def encode_while_a_write_lands(self, texts):
        calls[0] += 1
        if writing[0] and not rib.lock.locked():
            announce(rib, R1, [f"11.{next(extra) % 256}.0.0/16"], path(1, 3))
        return encode(self, texts)

    monkeypatch.setattr(PrefixStore, "encode", encode_while_a_write_lands)
    return calls


def test_a_merge_overtaken_by_writes_backs_off_instead_of_retrying_every_round(monkeypatch):
    """Writes never stop for 80 s, and each merge that reads the delta with
    the lock free is overtaken by one. Before, the first overtaken merge made
    the next one due at once, so it was retried (and its whole delta encoded
    again) every 0.1 s round for the whole load. Now it backs off, and the
    fourth attempt in a row folds under the lock. (A converged router's
    writes: a table streaming in is not merged before MAX_DELTA or its end,
    tests/ribd/test_maintenance_schedule.py.)"""
    import ribd.maintenance

    monkeypatch.setattr(ribd.maintenance, "MERGE_UNLOCKED", 0)  # always the two-phase merge
    clock = Clock()
    rib = Rib(clock=clock)
    up(rib, R1)
    rib.apply(EndOfRib(R1, V4))
    writing = [True]
    attempts = _count_encodes_and_write_meanwhile(monkeypatch, rib, writing)
    for i in range(800):  # 80 s of 0.1 s maintenance rounds, a write in each
        announce(rib, R1, [f"10.{i // 256}.{i % 256}.0/24"], path(1, 2))
        clock.now += 0.1
        rib.maintenance()
    assert 1 <= attempts[0] <= 5
    store = rib.tables[V4].store
    assert len(store.keys)  # merged, under the lock, despite the writes
    writing[0] = False
    for _ in range(20):  # writes pause: the rest is merged
        clock.now += 0.1
        rib.maintenance()
    assert not len(store.delta) and not store.holes
    for i in range(800):
        assert rib.lookup(R1, V4, f"10.{i // 256}.{i % 256}.1").attributes.origin_as == 2
    assert rib.lookup(R1, V4, "11.0.0.1").attributes.origin_as == 3
    assert rib.routers[R1].families[V4].prefixes == len(store)


def test_a_table_load_is_merged_once_writes_pause_not_while_it_streams_in(monkeypatch):
    """Before, the first merge was due at the first round (nothing merged
    yet) and again at any 0.1 s round without a write: a table arriving in
    bursts was merged over and over, each time a pass over all of it."""
    clock = Clock()
    rib = Rib(clock=clock)
    up(rib, R1)
    attempts = _count_encodes_and_write_meanwhile(monkeypatch, rib, [False])
    for burst in range(30):  # a write every other round: 0.1 s gaps
        announce(rib, R1, [f"10.{burst}.{i}.0/24" for i in range(100)], path(1, 2))
        for _ in range(2):
            clock.now += 0.1
            rib.maintenance()
    assert attempts[0] == 0
    store = rib.tables[V4].store
    assert rib.lookup(R1, V4, "10.29.99.1").attributes.origin_as == 2  # read from the delta
    for _ in range(11):
        clock.now += 0.1
        rib.maintenance()
    assert attempts[0] == 1 and not len(store.delta) and len(store.keys) == 3000
    assert rib.lookup(R1, V4, "10.29.99.1").attributes.origin_as == 2


def test_a_merge_overtaken_by_a_write_loses_nothing(monkeypatch):
    import ribd.maintenance

    monkeypatch.setattr(ribd.maintenance, "MERGE_UNLOCKED", 0)
    clock = Clock()
    rib = Rib(clock=clock)
    up(rib, R1)
    announce(rib, R1, ["10.0.0.0/8", "10.1.0.0/16"], path(1, 2))
    writing = [True]
    attempts = _count_encodes_and_write_meanwhile(monkeypatch, rib, writing)
    rib.maintenance()  # sees the writes
    clock.now += 5
    rib.maintenance()
    store = rib.tables[V4].store
    assert attempts[0] == 1 and len(store.delta) == 3 and not len(store.keys)  # the write won
    writing[0] = False
    clock.now += 0.5
    rib.maintenance()
    assert attempts[0] == 1  # backing off
    clock.now += 5
    rib.maintenance()
    assert attempts[0] == 2 and not len(store.delta) and len(store.keys) == 3
    assert rib.lookup(R1, V4, "11.0.0.1").attributes.origin_as == 3
    assert rib.lookup(R1, V4, "10.1.3.4").attributes.origin_as == 2


def _interned_sets(rib: Rib, n: int, first_as: int = 100) -> list:
    """``n`` attribute sets made by the RIB's interner, as the parser makes them."""
    from ribd.attributes import attribute_row

    return [rib.interner.intern(attribute_row(path(1, first_as + i))) for i in range(n)]


def test_garbage_collection_runs_in_steps_with_the_lock_free_between_them():
    """Before, a collection walked every entry and set in one go under the
    RIB lock (seconds with many routers: flows and the feed stalled)."""
    rib = Rib()
    up(rib, R1)
    sets = _interned_sets(rib, 3000)
    for i, a in enumerate(sets):
        announce(rib, R1, [f"10.{i // 256}.{i % 256}.0/24"], a)
    del a
    keep = path(1, 2)
    announce(rib, R1, [f"10.{i // 256}.{i % 256}.0/24" for i in range(3000)], keep)
    del sets  # every one of the 3000 sets is unused now
    assert rib.maintenance(budget=100)  # a step: work remains
    assert rib._collection is not None
    assert len(rib.interner) > 2000  # most of them not checked yet
    assert not rib.lock.locked()
    drain(rib)
    assert rib._collection is None
    assert len(rib.interner) == 0  # ``keep`` was made outside the interner


def test_a_collection_interleaved_with_writes_frees_exactly_the_unused_sets():
    """Writes between the steps of a collection: a set unused when the
    collection starts but used again before its turn is kept; a set
    interned by a parse whose event is not applied yet is kept (before, it
    was dropped and the next equal set made a second copy); sets unused
    throughout are freed; a set a route uses is never dropped. The test
    holds no set itself: routes do, as in the daemon."""
    from ribd.attributes import attribute_row

    rib = Rib()
    up(rib, R1)

    def row(asn):
        return attribute_row(path(1, asn))

    def pfx(i):
        return f"10.{i // 256}.{i % 256}.0/24"

    for i in range(1050):  # 500 used, 500 to become garbage, 50 to be used again
        announce(rib, R1, [pfx(i)], rib.interner.intern(row(1000 + i)))
    withdraw(rib, R1, [pfx(i) for i in range(500, 1050)])
    garbage_rows = [row(1000 + i) for i in range(500, 1000)]
    in_flight = rib.interner.intern(row(9999))  # parsed, its event not applied yet
    rib.start_collection()
    steps = 0
    while rib.maintenance(budget=8):
        if steps < 50:  # a route per step takes an unused set back
            announce(rib, R1, [f"11.0.{steps}.0/24"], rib.interner.intern(row(2000 + steps)))
        if steps == 30:  # a used set loses its route mid-collection
            withdraw(rib, R1, [pfx(0)])
        steps += 1
    assert steps > 50  # dozens of steps, writes between them
    announce(rib, R1, ["12.0.0.0/24"], in_flight)
    assert rib.interner.intern(row(9999)) is in_flight  # still shared, not copied
    routes = list(rib.routes(R1, V4))
    assert len(routes) == 499 + 50 + 1
    for m in routes:  # every set a route uses is the interned one
        assert rib.interner.find(attribute_row(m.attributes)) is m.attributes
    assert not any(rib.interner.find(r) is not None for r in garbage_rows)
    del m, routes
    rib.collect_garbage()  # the set unused since step 30 goes now at the latest
    assert len(rib.interner) == 499 + 50 + 1
    assert rib.interner.find(row(1000)) is None


def test_past_max_delta_writes_the_maintenance_counts_the_delta_once_per_stretch_of_writes(
    monkeypatch,
):
    """Two routers' tables pass MAX_DELTA writes with half as many prefixes in the
    delta: each maintenance round used to walk the whole trie to count it (fails
    before: 50 counts for 50 rounds). A delta that does reach MAX_DELTA is still merged."""
    import ribd.table

    monkeypatch.setattr(ribd.table, "MAX_DELTA", 100)
    monkeypatch.setattr(ribd.table, "COUNT_DELTA_EVERY", 40, raising=False)
    rib = Rib(clock=Clock())  # the clock stands still: no merge for quiet or age
    table = rib.tables[V4]
    counts = [0]
    size = table.delta_size

    def counted() -> int:  # (the delta was a trie: counting it walked it)
        counts[0] += 1
        return size()

    monkeypatch.setattr(table, "delta_size", counted)
    up(rib, R1)
    up(rib, R2)
    prefixes = [f"10.{i}.0.0/16" for i in range(60)]
    announce(rib, R1, prefixes, path(1, 2))
    announce(rib, R2, prefixes, path(1, 3))  # 120 writes, 60 prefixes in the delta
    counts[0] = 0
    for _ in range(50):
        rib.maintenance()
    assert counts[0] == 1
    assert table.store.has_delta()  # not merged: the delta is below MAX_DELTA
    announce(rib, R1, [f"11.{i}.0.0/16" for i in range(45)], path(1, 4))  # 105 in the delta
    for _ in range(50):
        rib.maintenance()
    assert counts[0] == 2
    assert not table.store.has_delta() and len(table.store) == 105  # merged
