"""The bulk path's exact lookups read a chunk of flows' routes at once.

``exact_routes.covering_routes`` (compiled) finds, per address, the route
``py_covering_routes`` (``Rib.lookup``'s walk, per address) finds: the same
attribute set, path id, stale flag, prefix length and count of paths, over
narrow and wide (Overlay) entries, stale slots, ADD-PATH, holes, the
delta and the arrays, IPv4 and IPv6. A batch answers its exact flows from
those routes by the views' rules without a per-flow lookup, flows carrying
a next hop too (the path a next hop chooses is picked once per distinct
(paths, next hop)); its answers are the one-flow path's.
"""

from __future__ import annotations

import ipaddress
import random

import numpy as np
import pytest

from attribution import exact_routes
from attribution.convert import columns_to_answers, flow_answer_json, resolution_to_columns
from attribution.records import row_next_hops, rows_to_columns
from attribution.resolver import Resolver
from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.entries import Overlay
from ribd.events import EndOfRib, RoutesAnnounced, RoutesWithdrawn, SessionState
from ribd.rib import Rib
from tests.attribution.test_bulk_many_exporters import (
    ROUTERS,
    V4,
    V6,
    _address,
    _answers,
    _churn,
    flows,
    neighbor,
    world,
)

compiled = pytest.importorskip("attribution._viewbuild")
compiled_covering = pytest.importorskip("ribd._covering")


def _packed(addresses: list[str]) -> bytes:
    return b"".join(ipaddress.ip_address(a).packed for a in addresses)


def _same_routes(rib: Rib, name: str, family: str, addresses: list[str]) -> int:
    """Compiled and Python routes of ``addresses`` equal; returns how many had one."""
    packed = _packed(addresses)
    with rib.lock:
        n = len(addresses)
        got = exact_routes.covering_routes(rib, family, packed, [name], [n])
        want = exact_routes.py_covering_routes(rib, family, packed, [name], [n])
    for field in ("set_of", "path_ids", "stale", "lengths", "paths", "value_of"):
        a, b = getattr(got, field), getattr(want, field)
        assert a.dtype == b.dtype and np.array_equal(a, b), (name, family, field)
    assert [id(s) for s in got.attribute_sets] == [id(s) for s in want.attribute_sets]
    assert [id(s) for s in got.path_sets] == [id(s) for s in want.path_sets]
    for i, a in enumerate(addresses):  # and both are Rib.lookup's route
        m = rib.lookup(name, family, a)
        k = int(got.set_of[i])
        assert (m is None) == (k < 0), a
        if m is not None:
            assert got.attribute_sets[k] is m.attributes and got.lengths[i] == m.length, a
            assert bool(got.stale[i]) == m.stale and int(got.path_ids[i]) == m.path_id, a
            paths = rib.exact(name, family, m.prefix)
            assert got.paths[i] == len(paths), a
            if len(paths) > 1:
                value = got.path_sets[got.value_of[i]]
                assert [(p.path_id, p.attributes) for p in paths] == list(value), a
    return int((got.set_of >= 0).sum())


@pytest.mark.parametrize("seed", range(4))
def test_compiled_routes_are_the_python_walks_in_the_delta_and_the_arrays(seed: int) -> None:
    """Stale routes (router 4), ADD-PATH (router 3), a router without routes
    (2), default routes; the prefixes in the delta first, then merged into
    the arrays, then changed again (delta and arrays, holes)."""
    rib, _config, v4, v6 = world(seed)
    rng = random.Random(seed)
    found = 0
    for stage in range(3):
        if stage == 1:
            with rib.lock:
                for table in rib.tables.values():
                    table.store.merge()
        if stage == 2:
            _churn(rib, v4, seed)
            for k in (0, 5):
                rib.apply(RoutesWithdrawn(neighbor(k), V6, tuple(v6[:5]), None))
        for k in range(ROUTERS):
            for family, prefixes in ((V4, v4), (V6, v6)):
                addresses = [_address(rng, prefixes, family == V4) for _ in range(150)]
                found += _same_routes(rib, neighbor(k), family, addresses)
    assert found > 3000
    assert _same_routes(rib, "127.0.9.9", V4, ["10.0.0.1"]) == 0  # not a router


def _wide_rib(routers: int = 20) -> tuple[Rib, list[str]]:
    """Routers enough for wide entries (Overlays: a shared row and a few
    routers' own values), each router's own next hop on a few prefixes."""
    rng = random.Random(7)
    rib = Rib()
    prefixes = sorted({f"10.{rng.randrange(256)}.{rng.randrange(256)}.0/24" for _ in range(300)})
    prefixes += ["10.0.0.0/8", "0.0.0.0/0"]
    shared = make_attributes(((AS_SEQUENCE, (65001, 65002)),), next_hop="127.0.4.1")
    for k in range(routers):
        n = neighbor(k)
        rib.apply(SessionState(n, "up"))
        rib.apply(RoutesAnnounced(n, V4, tuple(prefixes), None, shared))
        own = make_attributes(((AS_SEQUENCE, (65100 + k, 65200 + k)),), next_hop="127.0.4.2")
        rib.apply(RoutesAnnounced(n, V4, tuple(rng.sample(prefixes, 3)), None, own))
        rib.apply(EndOfRib(n, V4))
    return rib, prefixes


def test_compiled_routes_read_wide_entries_as_the_python_walk() -> None:
    rib, prefixes = _wide_rib()
    store = rib.tables[V4].store
    with rib.lock:
        store.merge()
    assert any(type(v) is Overlay for v in store.values.tolist())
    rng = random.Random(8)
    addresses = [_address(rng, prefixes, True) for _ in range(400)]
    for k in range(20):
        assert _same_routes(rib, neighbor(k), V4, addresses) == 400  # the default route


# A flow answer's fields read from its route (left empty without routes).
ROUTE_FIELDS = (
    "prefix", "as_path", "communities", "large_communities", "local_pref", "med", "next_hop",
)  # fmt: skip


def _answers_as_numbers(resolver: Resolver, config, records: list[dict]) -> list[dict]:
    """``_answers`` with no route dictionary (``with_routes=False``: AS numbers,
    provenance, flags), as collectors ask for them."""
    columns = rows_to_columns(records)
    next_hop = row_next_hops(records, columns[-1])
    res = resolver.resolve_columns(*columns, with_routes=False, next_hop=next_hop)
    assert res.routes == []
    cols, errors = resolution_to_columns(res, config.local_as)
    return list(columns_to_answers(cols, errors))


def _batch_without_lookups_as_alone(monkeypatch, rib, config, records, with_routes) -> list[dict]:
    """``records`` answered by a batch with no views (every flow exact) while
    ``Rib.lookup`` refuses to run, each answer checked against the one-flow
    path's (without routes, the route's fields are left empty and not compared)."""

    def per_flow(*args, **kwargs):
        raise AssertionError("a flow was looked up on its own")

    resolver = Resolver(rib, config, build_views_inline=False)
    monkeypatch.setattr(Rib, "lookup", per_flow)
    batch = (_answers if with_routes else _answers_as_numbers)(resolver, config, records)
    monkeypatch.undo()
    for i, record in enumerate(records):
        if batch[i].get("error_code") == "bad_exporter":
            continue
        one = flow_answer_json(resolver.resolve_one(record), config.local_as)
        fields = set(batch[i]) - {"error"}
        if not with_routes:
            fields -= {f"{side}_{k}" for side in ("src", "dst") for k in ROUTE_FIELDS}
        assert {k: batch[i][k] for k in fields} == {k: one.get(k) for k in fields}, (i, record)
    return batch


@pytest.mark.parametrize("with_routes", [True, False])
def test_a_batch_answers_exact_flows_without_a_lookup_per_flow(monkeypatch, with_routes) -> None:
    """No views: every flow is exact. Without next hops none goes through
    ``Rib.lookup``, routes asked or not; the answers are the one-flow path's
    (with routes: the AS path, communities, next hop and prefix too)."""
    rib, config, v4, v6 = world(3)
    records = [f for f in flows(3, v4, v6, 500) if "next_hop" not in f]
    _batch_without_lookups_as_alone(monkeypatch, rib, config, records, with_routes)


@pytest.mark.parametrize("with_routes", [True, False])
def test_flows_with_next_hops_are_answered_without_a_lookup_per_flow(
    monkeypatch, with_routes
) -> None:
    """Router 3 holds ADD-PATH paths for half its prefixes: a flow's next hop
    chooses among them (mismatch flagged where none has it), once per
    distinct (paths, next hop), with no ``Rib.lookup`` per flow; each flow
    answers as the one-flow path does (``lookup.path_by_next_hop``)."""
    rib, config, v4, v6 = world(5, same_prefixes=True)
    records = [f for f in flows(5, v4, v6, 1500) if "next_hop" in f]
    with rib.lock:  # some flows meet several paths, each of several next hops
        dst = [r["dst_addr"] for r in records if "." in r["dst_addr"]]
        several = exact_routes.py_covering_routes(rib, V4, _packed(dst), [neighbor(3)], [len(dst)])
    assert (several.value_of >= 0).sum() > 20
    batch = _batch_without_lookups_as_alone(monkeypatch, rib, config, records, with_routes)
    # Some next hop no path had: the best path, flagged.
    assert any(a.get("dst_next_hop_mismatch") for a in batch)


def test_without_the_compiled_walk_a_batch_answers_the_same(monkeypatch) -> None:
    rib, config, v4, v6 = world(1)
    records = flows(1, v4, v6, 600)
    want = _answers(Resolver(rib, config, build_views_inline=False), config, records)
    monkeypatch.setattr(exact_routes, "_compiled_covering_routes", None)
    got = _answers(Resolver(rib, config, build_views_inline=False), config, records)
    assert got == want


def _one_router(n: int, slot: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``covering_routes``' per-address router arrays: slot ``slot``, no stale slot."""
    return (
        np.full(n, slot, dtype=np.int32),
        np.full(n, -1, dtype=np.int32),
        np.zeros(n, dtype=np.uint8),
    )


def test_compiled_routes_refuse_addresses_of_the_wrong_width_or_count() -> None:
    rib, _config, _v4, _v6 = world(0)
    store = rib.tables[V4].store
    keys, values, delta = store.keys, store.values, store.delta
    with rib.lock, pytest.raises(ValueError, match="not addresses of 4"):
        compiled.covering_routes(keys, values, delta, b"\x0a\x00\x00", *_one_router(1))
    with rib.lock, pytest.raises(ValueError, match="routers for 2 addresses, not 1"):
        compiled.covering_routes(keys, values, delta, b"\x0a\x00\x00\x01", *_one_router(2))
    with pytest.raises(ValueError, match="not addresses of 4"):
        exact_routes.py_covering_routes(rib, V4, b"\x0a\x00\x00", [neighbor(0)], [1])
    with pytest.raises(ValueError, match="routers for 2 addresses, not 1"):
        exact_routes.py_covering_routes(rib, V4, b"\x0a\x00\x00\x01", [neighbor(0)], [2])
    assert compiled.covering_routes(keys, values, {}, b"", *_one_router(0)) is None


def test_routes_of_several_routers_in_one_read_are_each_routers_own() -> None:
    """Runs of addresses for different routers (a batch's groups), one not a
    router: each address read in its own router's slot, as alone."""
    rib, _config, v4, _v6 = world(2)
    rng = random.Random(3)
    addresses = [_address(rng, v4, True) for _ in range(90)]
    runs = [neighbor(0), neighbor(4), "127.0.9.9", neighbor(3), neighbor(0)]
    counts = [20, 25, 5, 30, 10]
    with rib.lock:
        got = exact_routes.covering_routes(rib, V4, _packed(addresses), runs, counts)
        want = exact_routes.py_covering_routes(rib, V4, _packed(addresses), runs, counts)
    at = 0
    for name, count in zip(runs, counts, strict=True):
        for i in range(at, at + count):
            m = rib.lookup(name, V4, addresses[i])
            for found in (got, want):
                k = int(found.set_of[i])
                assert (m is None) == (k < 0), (name, addresses[i])
                if m is not None:
                    assert found.attribute_sets[k] is m.attributes and found.stale[i] == m.stale
        at += count
    assert got.stale.any() and (got.set_of >= 0).sum() > 60  # router 4's routes are stale


def test_compiled_routes_refuse_buckets_of_other_keys() -> None:
    """Buckets not built from the keys searched would send a search outside
    them: refused before any read."""
    rib, _config, _v4, _v6 = world(0)
    store = rib.tables[V4].store
    with rib.lock:
        store.merge()
        keys, values, delta = store.keys, store.values, store.delta
        good = store.buckets()
        other = compiled_covering.bucket_starts(keys[: len(keys) // 2])
        backwards = bytearray(good)
        backwards[8 * 100 : 8 * 101] = (len(keys)).to_bytes(8, "little")
        address = bytes((10, 0, 0, 1))
        assert compiled.covering_routes(keys, values, delta, address, *_one_router(1), good)
        for bad, why in ((other, "other keys"), (backwards, "out of order"), (b"\0" * 8, "of 8")):
            with pytest.raises(ValueError, match=why):
                compiled.covering_routes(keys, values, delta, address, *_one_router(1), bytes(bad))
