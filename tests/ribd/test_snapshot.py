"""RIB snapshots: exact round trips, stale-until-BGP-refreshes, hostile files refused."""

from __future__ import annotations

import gc
import gzip
import os
import zlib
from hashlib import blake2b
from pathlib import Path

import orjson
import pytest

from ribd.attributes import AS_CONFED_SEQUENCE, AS_SEQUENCE, AS_SET, make_attributes
from ribd.events import EndOfRib, RoutesAnnounced, RoutesWithdrawn, SessionState
from ribd.parser import ExabgpParser
from ribd.rib import Rib
from ribd.snapshot import (
    ATTRIBUTE_FIELDS,
    MAGIC,
    SnapshotError,
    _pack,
    _unpack,
    load_snapshot,
    write_snapshot,
)
from ribd.snapshot_format import _PIECE_MIN, deflate, unpack
from tests.conftest import FULL_TABLE, need

V4 = "ipv4 unicast"
V6 = "ipv6 unicast"
R1, R2, R3 = "192.0.2.1", "192.0.2.2", "2001:db8::3"
FIELDS = (
    *ATTRIBUTE_FIELDS,
    "peer_as",
    "origin_as",
    "origin_as_highest",
    "origin_from_set",
    "empty_path",
    "peer_as_highest",
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def seq(*asns: int, **kw):
    return make_attributes(((AS_SEQUENCE, asns),), next_hop="192.0.2.254", **kw)


def announce(rib, router, prefixes, attrs, family=V4, path_ids=None):
    rib.apply(RoutesAnnounced(router, family, tuple(prefixes), path_ids, attrs))


def session(rib, router, state, **kw):
    rib.apply(SessionState(router, state, **kw))


def routes(rib: Rib) -> dict:
    """Every (router, family, prefix) -> [(path id, all fields), ...], plus stale flags."""
    out = {}
    for neighbor in rib.routers:
        for family in (V4, V6):
            for m in rib.routes(neighbor, family):
                out[neighbor, family, m.prefix] = [
                    (x.path_id, tuple(getattr(x.attributes, f) for f in FIELDS))
                    for x in rib.exact(neighbor, family, m.prefix)
                ]
    return out


def assert_empty(rib: Rib) -> None:
    assert rib.routers == {}
    assert len(rib.interner) == 0
    assert all(len(t.store) == 0 for t in rib.tables.values())


def sample_rib() -> Rib:
    """Three routers, both families, ADD-PATH, an empty path, AS_SETs, every attribute."""
    rib = Rib(clock=Clock(), stale_hold_time=60)
    full = make_attributes(
        ((AS_CONFED_SEQUENCE, (65001,)), (AS_SEQUENCE, (64500, 3356)), (AS_SET, (7, 9, 8))),
        origin="incomplete",
        next_hop="198.51.100.1",
        local_pref=200,
        med=4_294_967_295,
        communities=((3356 << 16) | 100, 0xFFFFFFFF),
        large_communities=((4_200_000_000, 1, 2),),
        extended_communities=("target:65000:1",),
        originator_id="10.0.0.1",
        cluster_list=("10.0.0.2", "10.0.0.3"),
        atomic_aggregate=True,
        aggregator="64500:10.0.0.9",
    )
    empty = make_attributes((), next_hop="192.0.2.254")
    for r in (R1, R2, R3):
        session(rib, r, "up", peer_as=64500, router_id="10.9.9.9")
    announce(rib, R1, ["10.0.0.0/8", "10.1.0.0/16", "0.0.0.0/0"], seq(64500, 3356, 15169))
    announce(rib, R1, ["192.168.0.0/24"], full)
    announce(rib, R1, ["172.16.0.0/12"], empty)
    announce(rib, R1, ["2001:db8::/32", "::/0"], seq(64500, 6939), family=V6)
    # ADD-PATH: several paths per prefix, one with only a non-zero id.
    announce(rib, R2, ["10.0.0.0/8", "10.2.0.0/16"], seq(64500, 1), path_ids=(1, 7))
    announce(rib, R2, ["10.0.0.0/8"], seq(64500, 2, 2), path_ids=(2,))
    announce(rib, R2, ["10.0.0.0/8"], full, path_ids=(0,))
    announce(rib, R2, ["2001:db8:1::/48"], full, family=V6, path_ids=(5,))
    # R3 shares R1's attribute objects for some prefixes.
    announce(rib, R3, ["10.0.0.0/8"], seq(64500, 3356, 15169))
    announce(rib, R3, ["2001:db8::/32"], empty, family=V6)
    rib.apply(RoutesAnnounced(R1, V4, ("10.1.0.0/16",), None, seq(64500, 3356, 15169)))
    return rib


@pytest.mark.parametrize("version", [1, 2])
def test_round_trip_is_exact(tmp_path: Path, version: int) -> None:
    rib = sample_rib()
    rib.routers[R1].last_update = 1234.5
    path = tmp_path / "rib.snapshot"
    info = write_snapshot(rib, path, version=version)
    assert info.routers == 3
    assert info.prefixes == {V4: 6, V6: 3}
    assert info.paths == sum(fs.paths for r in rib.routers.values() for fs in r.families.values())
    assert not list(tmp_path.glob("*.tmp.*"))
    assert path.read_bytes().startswith(MAGIC)

    loaded = Rib(clock=Clock(), router_names={R2: "edge-2"})
    got = load_snapshot(loaded, path, hold_time=120)
    assert got.paths == info.paths and got.prefixes == info.prefixes
    # sample_rib builds equal sets as separate objects: written twice, loaded once.
    assert (info.attribute_sets, got.attribute_sets, len(loaded.interner)) == (8, 6, 6)
    assert routes(loaded) == routes(rib)
    for neighbor, r in rib.routers.items():
        lr = loaded.routers[neighbor]
        assert (lr.peer_as, lr.router_id, lr.last_update) == (r.peer_as, r.router_id, r.last_update)
        for family, fs in r.families.items():
            lfs = lr.families[family]
            assert (lfs.prefixes, lfs.paths) == (fs.prefixes, fs.paths)
            assert not lfs.converged and lfs.stale_slot is None
    assert loaded.routers[R2].name == "edge-2"  # configuration wins over the file
    # Interning: one object per distinct set, shared across routers and families.
    a1 = loaded.exact(R1, V4, "10.0.0.0/8")[0].attributes
    assert loaded.exact(R3, V4, "10.0.0.0/8")[0].attributes is a1
    assert loaded.exact(R1, V4, "10.1.0.0/16")[0].attributes is a1
    full = loaded.exact(R1, V4, "192.168.0.0/24")[0].attributes
    assert loaded.exact(R2, V6, "2001:db8:1::/48")[0].attributes is full
    # Derived AS numbers are recomputed, not read: trailing multi-member AS_SET.
    assert (full.peer_as, full.origin_as, full.origin_as_highest, full.origin_from_set) == (
        64500,
        3356,
        9,
        True,
    )
    assert loaded.exact(R1, V4, "172.16.0.0/12")[0].attributes.empty_path
    # ADD-PATH order is the RIB's preference order (local_pref 200 first).
    assert [m.path_id for m in loaded.exact(R2, V4, "10.0.0.0/8")] == [0, 1, 2]
    assert loaded.lookup(R2, V4, "10.2.3.4").path_id == 7


def test_loaded_routes_are_stale_until_bgp_replaces_them(tmp_path: Path) -> None:
    path = tmp_path / "rib.snapshot"
    write_snapshot(sample_rib(), path)
    clock = Clock()
    rib = Rib(clock=clock)
    load_snapshot(rib, path, hold_time=120)
    r1 = rib.routers[R1]
    assert r1.session == "down" and r1.stale_until == clock.now + 120
    assert rib.lookup(R1, V4, "10.1.2.3").stale
    assert rib.lookup(R1, V6, "2001:db8::1").stale

    # R1 comes back: re-announces one of its v4 prefixes (new attributes) and
    # one v6 prefix, then End-of-RIB for both families.
    session(rib, R1, "up")
    assert rib.lookup(R1, V4, "10.1.2.3").stale  # still the old generation
    announce(rib, R1, ["10.1.0.0/16"], seq(64500, 174, 13335))
    assert not rib.lookup(R1, V4, "10.1.2.3").stale
    announce(rib, R1, ["::/0"], seq(64500, 2914), family=V6)
    rib.apply(EndOfRib(R1, V4))
    rib.apply(EndOfRib(R1, V6))
    while rib.maintenance():
        pass
    assert {m.prefix for m in rib.routes(R1, V4)} == {"10.1.0.0/16"}
    assert {m.prefix for m in rib.routes(R1, V6)} == {"::/0"}
    assert not any(m.stale for f in (V4, V6) for m in rib.routes(R1, f))
    assert rib.lookup(R1, V4, "10.1.2.3").attributes.origin_as == 13335
    assert r1.stale_until == 0 and r1.families[V4].prefixes == 1

    # R2 never comes back: its routes go when the hold time expires.
    assert rib.lookup(R2, V4, "10.2.3.4").stale
    clock.now += 121
    while rib.maintenance():
        pass
    assert rib.lookup(R2, V4, "10.2.3.4") is None
    assert list(rib.routes(R2, V4)) == []


@pytest.mark.parametrize("extra", [{}, {"attribute-0x14-0xE0": "0x01"}])
def test_a_set_announced_again_after_load_is_the_loaded_object(tmp_path: Path, extra) -> None:
    """Parser and snapshot key sets alike: no second copy after a warm restart (the
    unknown attribute sends the line through the parser's generic path)."""
    path = tmp_path / "rib.snapshot"
    write_snapshot(sample_rib(), path)
    rib = Rib(clock=Clock())
    load_snapshot(rib, path, hold_time=120)
    loaded = rib.exact(R1, V4, "10.0.0.0/8")[0].attributes
    sets = len(rib.interner)
    path_attr = {"0": {"element": "as-sequence", "value": [64500, 3356, 15169]}}
    line = orjson.dumps(
        {
            "type": "update",
            "neighbor": {
                "address": {"peer": R1},
                "message": {
                    "update": {
                        "attribute": {"origin": "igp", "as-path": path_attr, **extra},
                        "announce": {V4: {"192.0.2.254": [{"nlri": "10.0.0.0/8"}]}},
                    }
                },
            },
        }
    )
    (event,) = ExabgpParser(rib.interner).parse(line)
    assert event.attributes is loaded
    assert len(rib.interner) == sets


def test_stale_and_current_generations_are_merged_on_write(tmp_path: Path) -> None:
    """A router mid-refresh: current routes win, stale ones fill the gaps."""
    rib = sample_rib()
    session(rib, R1, "down")  # stale_hold_time 60: kept stale
    session(rib, R1, "up")  # old routes -> stale slot
    announce(rib, R1, ["10.1.0.0/16"], seq(64500, 174))
    assert rib.routers[R1].families[V4].stale_slot is not None
    path = tmp_path / "rib.snapshot"
    write_snapshot(rib, path, version=1)  # a JSON body to read
    _, doc = _unpack(path.read_bytes())
    assert [r["stale"] for r in doc["routers"]] == [True, False, False]
    write_snapshot(rib, path)
    loaded = Rib(clock=Clock())
    load_snapshot(loaded, path, hold_time=60)
    want = {m.prefix: m.attributes.origin_as for m in rib.routes(R1, V4)}
    assert {m.prefix: m.attributes.origin_as for m in loaded.routes(R1, V4)} == want
    assert want["10.1.0.0/16"] == 174 and "192.168.0.0/24" in want


@pytest.mark.parametrize("version", [1, 2])
def test_routers_moved_to_new_slots_by_a_refresh_round_trip(tmp_path: Path, version: int) -> None:
    """After a refresh every router's routes sit in a new slot, with no stale generation
    left: the write reads each entry at those slots (the common layout after a restart)."""
    rib = sample_rib()
    before = routes(rib)
    slots = {r: rib.routers[r].families[V4].slot for r in (R1, R2, R3)}
    full = rib.exact(R1, V4, "192.168.0.0/24")[0].attributes
    for r in (R3, R1):  # down, up, the same routes again, End-of-RIB: new slots
        session(rib, r, "down")
        session(rib, r, "up", peer_as=64500, router_id="10.9.9.9")
    announce(rib, R1, ["10.0.0.0/8", "10.1.0.0/16", "0.0.0.0/0"], seq(64500, 3356, 15169))
    announce(rib, R1, ["192.168.0.0/24"], full)
    announce(rib, R1, ["172.16.0.0/12"], make_attributes((), next_hop="192.0.2.254"))
    announce(rib, R1, ["2001:db8::/32", "::/0"], seq(64500, 6939), family=V6)
    announce(rib, R3, ["10.0.0.0/8"], seq(64500, 3356, 15169))
    announce(rib, R3, ["2001:db8::/32"], make_attributes((), next_hop="192.0.2.254"), family=V6)
    for r in (R1, R3):
        for family in (V4, V6):
            rib.apply(EndOfRib(r, family))
    moved = {r: rib.routers[r].families[V4] for r in (R1, R3)}
    assert all(fs.stale_slot is None for fs in moved.values())
    assert all(moved[r].slot != slots[r] for r in moved)
    assert routes(rib) == before
    path = tmp_path / "rib.snapshot"
    write_snapshot(rib, path, version=version)
    loaded = Rib(clock=Clock())
    load_snapshot(loaded, path, hold_time=60)
    assert routes(loaded) == before


def test_write_reads_in_chunks_and_survives_changes_in_between(tmp_path: Path) -> None:
    """Between chunks the RIB may change: a withdrawn prefix must not pick up
    its parent's route (pytricia's get() is a longest-prefix match)."""
    rib = sample_rib()
    real_lock = rib.lock
    holds = 0

    class MeddlingLock:
        def __enter__(self):
            nonlocal holds
            holds += 1
            if holds == 3:  # after the key lists were taken
                rib._apply(RoutesWithdrawn(R1, V4, ("10.1.0.0/16",), None))
                rib._apply(SessionState(R3, "down"))
                rib._apply(SessionState(R3, "up"))  # R3 moves to new slots
            real_lock.acquire()

        def __exit__(self, *exc):
            real_lock.release()

    rib.lock = MeddlingLock()  # type: ignore[assignment]
    path = tmp_path / "rib.snapshot"
    write_snapshot(rib, path, chunk=1)
    rib.lock = real_lock
    assert holds > 5
    loaded = Rib(clock=Clock())
    load_snapshot(loaded, path, hold_time=60)
    assert loaded.exact(R1, V4, "10.1.0.0/16") == []
    assert loaded.lookup(R1, V4, "10.1.2.3").prefix == "10.0.0.0/8"
    assert loaded.lookup(R3, V4, "10.0.0.1").attributes.origin_as == 15169


def test_overwrites_atomically_and_restores_gc(tmp_path: Path) -> None:
    path = tmp_path / "rib.snapshot"
    path.write_bytes(b"old")
    write_snapshot(sample_rib(), path)
    assert sorted(os.listdir(tmp_path)) == ["rib.snapshot"]
    assert gc.isenabled()
    load_snapshot(Rib(), path, hold_time=1)
    assert gc.isenabled()
    gc.disable()  # write_snapshot turns the GC off while it runs: it must not turn it on
    try:
        write_snapshot(sample_rib(), path)
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize("threads", [1, 2, 3, 4])
def test_body_compressed_in_pieces_is_one_zlib_stream(threads: int) -> None:
    """The body is deflated a piece per thread (pigz style); any zlib reader, and
    unpack's whole-stream checks (eof, nothing after it), read it as one stream."""
    raw = b"".join(i.to_bytes(4, "little") * (i % 7 + 1) for i in range(1_000_000)) + b"end"
    assert len(raw) > _PIECE_MIN
    body = deflate(raw, threads=threads)
    assert zlib.decompress(body) == raw
    packed = (
        MAGIC
        + orjson.dumps(
            {
                "version": 2,
                "created": 1.0,
                "compression": "zlib",
                "body_bytes": len(body),
                "raw_bytes": len(raw),
                "blake2b": blake2b(body, digest_size=32).hexdigest(),
                "routers": 0,
                "attribute_sets": 0,
                "prefixes": {},
                "paths": 0,
            }
        )
        + b"\n"
        + body
    )
    assert unpack(packed)[1] == raw


def test_empty_rib_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "rib.snapshot"
    info = write_snapshot(Rib(), path)
    assert (info.routers, info.paths) == (0, 0)
    rib = Rib()
    assert load_snapshot(rib, path, hold_time=1).paths == 0
    assert_empty(rib)


def test_refuses_a_rib_that_is_not_empty(tmp_path: Path) -> None:
    path = tmp_path / "rib.snapshot"
    write_snapshot(sample_rib(), path)
    with pytest.raises(ValueError, match="empty"):
        load_snapshot(sample_rib(), path, hold_time=60)
    with pytest.raises(ValueError, match="hold_time"):
        load_snapshot(Rib(), path, hold_time=0)


def test_refuses_a_snapshot_older_than_max_age(tmp_path: Path) -> None:
    path = tmp_path / "rib.snapshot"
    write_snapshot(sample_rib(), path)
    clock = Clock()
    clock.now += 3600
    rib = Rib(clock=clock)
    with pytest.raises(SnapshotError, match="max_age"):
        load_snapshot(rib, path, hold_time=60, max_age=600)
    assert_empty(rib)
    load_snapshot(rib, path, hold_time=60, max_age=7200)


# -- hostile and broken files ------------------------------------------------


def _rewrite_body(path: Path, mutate) -> None:
    """Change the body and re-checksum it: only the content checks can object."""
    header, doc = _unpack(path.read_bytes())
    mutate(doc)
    path.write_bytes(_pack(doc, created=header["created"], paths=header["paths"]))


def _rewrite_header(path: Path, **fields) -> None:
    data = path.read_bytes()
    end = data.index(b"\n")
    header = orjson.loads(data[len(MAGIC) : end]) | fields
    path.write_bytes(MAGIC + orjson.dumps(header) + data[end:])


def _first_v4_prefix(doc):
    return doc["families"][V4]["prefixes"]


def _add_path_entry(doc):
    return next(v for e in doc["entries"] for v in e if type(v) is list and len(v) > 1)


HOSTILE = {
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[:-100]), "truncated: body has"),
    "truncated in the header": (lambda p: p.write_bytes(p.read_bytes()[:30]), "no header line"),
    "empty file": (lambda p: p.write_bytes(b""), "bad magic"),
    "bad magic": (lambda p: p.write_bytes(b"RIBD" + p.read_bytes()[4:]), "bad magic"),
    "garbage bytes": (lambda p: p.write_bytes(os.urandom(5000)), "bad magic"),
    "garbage after the magic": (
        lambda p: p.write_bytes(MAGIC + os.urandom(1000).replace(b"\n", b"") + b"\n"),
        "header is not JSON",
    ),
    "wrong version": (lambda p: _rewrite_header(p, version=3), "format version 3 is not supported"),
    "checksum mismatch": (
        lambda p: p.write_bytes(p.read_bytes()[:-10] + b"0123456789"),
        "checksum mismatch",
    ),
    "trailing bytes": (lambda p: p.write_bytes(p.read_bytes() + b"x"), "1 bytes after the end"),
    "lying counts": (lambda p: _rewrite_header(p, paths=1), "header counts"),
    "body not zlib": (
        lambda p: (
            _rewrite_header(p, body_bytes=4, raw_bytes=4, blake2b=_b2(b"abcd"))
            or p.write_bytes(p.read_bytes().split(b"\n")[0] + b"\nabcd")
        ),
        "does not decompress",
    ),
    "prefix with host bits": (
        lambda p: _rewrite_body(p, lambda d: _first_v4_prefix(d).__setitem__(0, "10.0.0.1/8")),
        r"ipv4 unicast: bad prefix '10.0.0.1/8': host bits set",
    ),
    "v6 prefix in the v4 family": (
        lambda p: _rewrite_body(p, lambda d: _first_v4_prefix(d).__setitem__(0, "2001:db8::/32")),
        "not an IPv4 address",
    ),
    "prefix twice": (
        lambda p: _rewrite_body(
            p, lambda d: _first_v4_prefix(d).__setitem__(1, _first_v4_prefix(d)[0])
        ),
        "appears twice",
    ),
    "AS number above 2**32-1": (
        lambda p: _rewrite_body(p, lambda d: d["attributes"][0][0][0][1].__setitem__(0, 2**32)),
        r"attribute set #0: as_path segment 0 has a value that is not 32-bit unsigned: 4294967296",
    ),
    "negative community": (
        lambda p: _rewrite_body(p, lambda d: d["attributes"][0].__setitem__(5, [-1])),
        "communities has a value that is not 32-bit",
    ),
    "unknown origin": (
        lambda p: _rewrite_body(p, lambda d: d["attributes"][0].__setitem__(1, "bogus")),
        "bad origin 'bogus'",
    ),
    "attribute index out of range": (
        lambda p: _rewrite_body(p, lambda d: d["entries"][0].__setitem__(0, len(d["attributes"]))),
        r"entry #0, router #0: attribute index \d+ out of range",
    ),
    "entry index out of range": (
        lambda p: _rewrite_body(p, lambda d: d["families"][V6]["entries"].__setitem__(0, 10**6)),
        "ipv6 unicast: entry index 1000000 out of range",
    ),
    "path id twice": (
        lambda p: _rewrite_body(
            p, lambda d: _add_path_entry(d).__setitem__(1, [_add_path_entry(d)[0][0], 0])
        ),
        "path id appears twice",
    ),
    "bool as index": (
        lambda p: _rewrite_body(p, lambda d: d["entries"][0].__setitem__(0, True)),
        "bad value True",
    ),
    "negative index among routes of every router": (
        lambda p: _rewrite_body(p, lambda d: d["entries"].__setitem__(0, [0, -1, 0])),
        r"entry #0, router #1: attribute index -1 out of range",
    ),
    "float index among routes of every router": (
        lambda p: _rewrite_body(p, lambda d: d["entries"].__setitem__(0, [0, 1.0, 0])),
        r"entry #0, router #1: bad value 1\.0",
    ),
    "bool as AS number": (
        lambda p: _rewrite_body(p, lambda d: d["attributes"][0][0][0][1].__setitem__(0, True)),
        r"attribute set #0: as_path segment 0 has a value that is not 32-bit unsigned: True",
    ),
    "attribute row too short": (
        lambda p: _rewrite_body(p, lambda d: d["attributes"][1].pop()),
        "attribute set #1 is not a list of 12 fields",
    ),
    "unknown family": (
        lambda p: _rewrite_body(
            p, lambda d: d["families"].__setitem__("ipv4 flow", {"prefixes": [], "entries": []})
        ),
        "unknown address families",
    ),
    "routers not a list": (
        lambda p: _rewrite_body(p, lambda d: d.__setitem__("routers", "R1")),
        "'routers' is missing or not a list",
    ),
}


def _b2(data: bytes) -> str:
    from hashlib import blake2b

    return blake2b(data, digest_size=32).hexdigest()


@pytest.mark.parametrize("version", [1, 2])
def test_many_routers_round_trip_counts_every_entry_shape(tmp_path: Path, version: int) -> None:
    """Entries with a route from every router (the loader's bulk path), with holes,
    a missing last router and ADD-PATH sets give the same routes and per-router counts."""
    rib = Rib(clock=Clock())
    routers = [f"192.0.2.{k}" for k in range(1, 9)]
    for k, r in enumerate(routers):
        session(rib, r, "up", peer_as=64500 + k)
        for i in range(40):
            if (i % 5 == 1 and k % 3 == 1) or (i % 7 == 2 and k == len(routers) - 1):
                continue  # holes, and prefixes the last router lacks
            prefix = f"10.{i}.0.0/16"
            if i % 9 == 4 and k % 2:
                announce(rib, r, [prefix], seq(k, i, local_pref=50), path_ids=(3,))
                announce(rib, r, [prefix], seq(i, local_pref=200), path_ids=(5,))
            else:
                announce(rib, r, [prefix], seq(k % 4, i % 6), path_ids=None)
    path = tmp_path / "rib.snapshot"
    info = write_snapshot(rib, path, version=version)
    loaded = Rib(clock=Clock())
    got = load_snapshot(loaded, path, hold_time=120)
    assert got.paths == info.paths and got.prefixes == info.prefixes
    assert routes(loaded) == routes(rib)
    for r in routers:
        for family, fs in rib.routers[r].families.items():
            lfs = loaded.routers[r].families[family]
            assert (lfs.prefixes, lfs.paths) == (fs.prefixes, fs.paths), (r, family)
    assert loaded.lookup(routers[1], V4, "10.4.1.1").path_id == 5  # local_pref 200 first
    assert len(loaded.interner) == got.attribute_sets


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_snapshot_is_refused_and_rib_left_empty(tmp_path: Path, case: str) -> None:
    """Format 1 files (format 2's own cases: tests/ribd/test_snapshot_v2.py)."""
    path = tmp_path / "rib.snapshot"
    write_snapshot(sample_rib(), path, version=1)
    damage, message = HOSTILE[case]
    damage(path)
    rib = Rib(clock=Clock())
    with pytest.raises(SnapshotError, match=message) as err:
        load_snapshot(rib, path, hold_time=60)
    assert str(path) in str(err.value)
    assert_empty(rib)
    assert gc.isenabled()
    # Nothing half-loaded: the same RIB still takes a good snapshot.
    write_snapshot(sample_rib(), path)
    load_snapshot(rib, path, hold_time=60)
    assert len(rib.routers) == 3


def test_missing_file_is_not_a_snapshot_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_snapshot(Rib(), tmp_path / "absent", hold_time=60)


# -- the real table ----------------------------------------------------------


@pytest.mark.fulltable
def test_full_table_round_trip(tmp_path: Path) -> None:
    data = gzip.decompress(need(FULL_TABLE).read_bytes())
    rib = Rib()
    parser = ExabgpParser(rib.interner)
    gc.disable()
    try:
        for line in data.splitlines():
            rib.apply_many(parser.parse(line))
    finally:
        gc.enable()
    path = tmp_path / "rib.snapshot"
    written = write_snapshot(rib, path)
    loaded = Rib()
    info = load_snapshot(loaded, path, hold_time=300)
    peer = "206.220.231.55"
    assert info.prefixes[V4] == written.prefixes[V4] == 577_703
    assert info.paths == 577_703
    want = {m.prefix: m for m in rib.routes(peer, V4)}
    got = {m.prefix: m for m in loaded.routes(peer, V4)}
    assert got.keys() == want.keys()
    for prefix, m in want.items():
        g = got[prefix]
        assert g.path_id == m.path_id and g.stale
        for f in FIELDS:
            assert getattr(g.attributes, f) == getattr(m.attributes, f), (prefix, f)
    for family, fs in rib.routers[peer].families.items():
        lfs = loaded.routers[peer].families[family]
        assert (lfs.prefixes, lfs.paths) == (fs.prefixes, fs.paths)
    assert loaded.lookup(peer, V4, "8.8.8.8").attributes.origin_as == 15169


@pytest.mark.parametrize("version", [1, 2])
def test_a_snapshot_written_before_int_keys_loads_the_same(version: int) -> None:
    """Files main wrote before the IPv4 store's delta took integer keys (f71d5f8,
    ``sample_rib`` with R1's last update at 1234.5) load into today's RIB with
    every route, and the loaded store holds ints in its delta and change log
    from then on (one key type per store)."""
    path = Path(__file__).parent / "data" / f"main-f71d5f8-v{version}.ribsnap"
    rib = sample_rib()
    loaded = Rib(clock=Clock())
    got = load_snapshot(loaded, path, hold_time=120)
    assert got.prefixes == {V4: 6, V6: 3} and got.paths == 14
    assert routes(loaded) == routes(rib)
    assert loaded.routers[R1].last_update == 1234.5
    announce(loaded, R1, ["10.7.0.0/16"], seq(64500, 7))  # a new prefix: into the delta
    table = loaded.tables[V4]
    assert [type(k) for k in table.store.delta.keys()] == [int]  # noqa: SIM118
    assert {type(k) for k in table.changes} == {int}
    assert loaded.lookup(R1, V4, "10.7.1.1").attributes.origin_as == 7
