"""The fused path of a table load's lines (``ribd._loadline``) against the reference.

The same streams of ``packets`` lines go through two feeds: one through the
compiled feed loop with the fused path on (a load's common line from its
bytes to the store in one call), one through ``FeedServer._lines`` (each line
parsed into events, then ``rib.apply_many``). After every read they must hold
the same RIB (store, delta in insertion order, counters, change log, slot
sequence numbers, interned entries, time stamps), the same attribute sets,
and count and log the same lines: good ones, hostile ones, unknown
neighbors, ADD-PATH sessions, 2-octet AS sessions, withdrawals, merges and
session restarts between reads; IPv4 UPDATEs and IPv6 ones (MP_REACH_NLRI,
``load_update6``), both families in one UPDATE.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import socket
import struct

import pytest

from bench.fuzz_mutate import mutate_bytes, mutate_line
from bench.fuzz_raw import (
    as_path,
    attr,
    basic_attributes,
    mp_reach,
    mp_unreach,
    packets_line,
    prefix,
    seed_updates,
    session_lines,
    update,
)
from ribd import feed
from ribd.events import SessionState
from ribd.feed import FeedServer
from ribd.rib import Rib
from tests.ribd.test_announce_shared import Clock
from tests.ribd.test_apply_compiled import _state

try:
    from ribd._loadline import LineLoader
except ImportError:  # not built: the feed runs today's path only
    LineLoader = None

pytestmark = pytest.mark.skipif(
    LineLoader is None or feed._compiled_lines is None, reason="ribd._loadline is not built"
)

ROUTERS = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
OLD_AS = "127.0.0.6"  # a 2-octet AS session
ADD_PATH = "127.0.0.7"  # ADD-PATH for IPv4: never the fused path's
STRANGER = "127.0.0.9"  # not a configured router (with ``neighbors``)
PEERS = [*ROUTERS, OLD_AS, ADD_PATH, STRANGER]


def _pool() -> list[str]:
    return [f"10.{i // 256}.{i % 256}.0/24" for i in range(2000)] + [
        f"10.200.{i}.0/25" for i in range(100)
    ]


def _pool6() -> list[str]:
    return [f"2001:db8:{i:x}::/48" for i in range(1500)] + [
        f"2001:db9:{i:x}::/32" for i in range(1, 60)
    ]


def _hop6(rng: random.Random, peer: str) -> bytes:
    """An MP_REACH_NLRI next hop: 16 octets mostly, 32 (a link-local after it) or 4."""
    hop = socket.inet_pton(socket.AF_INET6, f"2001:db8:ffff::{PEERS.index(peer) + 1}")
    roll = rng.random()
    if roll < 0.8:
        return hop
    if roll < 0.9:
        return hop + socket.inet_pton(socket.AF_INET6, "fe80::1")
    return socket.inet_aton("192.0.2.1")


def _announce(
    rng: random.Random, peer: str, group: list[str], ids: bool = False, v6: list[str] = ()
) -> bytes:
    """An UPDATE announcing ``group`` (IPv4 NLRI, or IPv6 in MP_REACH_NLRI when its
    prefixes are IPv6) and ``v6`` (IPv6, beside IPv4 ones: both families in one)."""
    size = 2 if peer == OLD_AS else 4
    path = [64496 + rng.randrange(5), 65000 + rng.randrange(3)]
    hop = f"192.0.2.{PEERS.index(peer) + 1}"
    if group and ":" in group[0]:  # IPv6 only: no NEXT_HOP attribute, the hop in MP_REACH
        v6, group = group, []
        attributes = basic_attributes(path, next_hop="", size=size)
    else:
        attributes = basic_attributes(path, next_hop=hop, size=size)
    if v6:
        nlri6 = b"".join(prefix(p, rng.randrange(3) if ids else None) for p in v6)
        attributes += mp_reach(2, _hop6(rng, peer), nlri6)
    if rng.random() < 0.3:
        attributes += attr(8, struct.pack("!I", (64496 << 16) | rng.randrange(3)))
    if rng.random() < 0.2:
        attributes += attr(4, struct.pack("!I", rng.randrange(3)))
    if rng.random() < 0.05:  # AS4_PATH on a 2-octet session: merged (the general decode)
        attributes += attr(17, as_path((2, [64496, 4200000000])))
    nlri = b"".join(prefix(p, rng.randrange(3) if ids else None) for p in group)
    return update(attributes=attributes, nlri=nlri)


def _stream(seed: int) -> list[list[bytes] | str]:
    """Reads of lines, and between them "merge" or "restart PEER"."""
    rng = random.Random(seed)
    pools = (_pool(), _pool6())
    reads: list[list[bytes] | str] = []
    first = [ln for p in PEERS if p not in (OLD_AS, ADD_PATH) for ln in session_lines(p)]
    first += session_lines(OLD_AS, asn4=False) + session_lines(ADD_PATH, add_path=True)
    lines: list[bytes] = first
    for step in range(1500):
        roll = rng.random()
        peer = rng.choice(PEERS)
        pool = pools[rng.random() < 0.35]  # a third IPv6
        start = rng.randrange(len(pool))
        group = pool[start : start + rng.randint(1, 9)]
        stamp = rng.choice((1.5, 7, 0, -1.0, 1e20, 123.25))
        if roll < 0.5:  # a table load's shape: routers in turn send one group
            for r in rng.sample(PEERS, rng.randint(1, 4)):
                body = _announce(rng, r, group, ids=r == ADD_PATH)
                lines.append(packets_line(body, peer=r, time_=stamp))
        elif roll < 0.55:  # a prefix twice
            body = _announce(rng, peer, [*group, group[0]])
            lines.append(packets_line(body, peer=peer, time_=stamp))
        elif roll < 0.6:  # partly held
            body = _announce(rng, peer, group + rng.sample(pool, 2))
            lines.append(packets_line(body, peer=peer, time_=stamp))
        elif roll < 0.62:  # both families in one UPDATE
            body = _announce(rng, peer, rng.sample(pools[0], 2), v6=rng.sample(pools[1], 2))
            lines.append(packets_line(body, peer=peer, time_=stamp))
        elif roll < 0.68:
            if ":" in group[0]:
                body = update(attributes=mp_unreach(2, b"".join(prefix(p) for p in group)))
            else:
                body = update(withdrawn=b"".join(prefix(p) for p in group))
            lines.append(packets_line(body, peer=peer, time_=stamp))
        elif roll < 0.76:  # hostile: mutated bodies and lines of a good announcement
            body = _announce(rng, peer, group)
            if rng.random() < 0.5:
                body = mutate_bytes(rng, body)
            line = packets_line(body, peer=peer, time_=stamp)
            lines.append(mutate_line(rng, line) if rng.random() < 0.5 else line)
        elif roll < 0.8:  # every other kind the decoder reads
            lines.append(packets_line(rng.choice(seed_updates()), peer=peer, time_=stamp))
        elif roll < 0.81:
            lines.append(packets_line(b"\0\0\0\0", peer=peer))  # End-of-RIB
        elif roll < 0.82:
            lines.append(b'{"exabgp": "5.0.0", "type": "x"}')  # JSON API, not a packets line
        elif roll < 0.84:
            # A session whose OPENs were never seen.
            body = _announce(rng, ROUTERS[0], group)
            lines.append(packets_line(body, peer="127.0.0.99", time_=stamp))
        else:
            continue
        if rng.random() < 0.12:
            reads.append([ln for ln in lines if ln and b"\n" not in ln])
            lines = []
            if step > 900 and rng.random() < 0.3:
                reads.append("merge")
            elif rng.random() < 0.1:
                reads.append(f"restart {rng.choice(ROUTERS)}")
    reads.append([ln for ln in lines if ln and b"\n" not in ln])
    return reads


def _feeds(neighbors: bool) -> list[tuple[FeedServer, object, Rib]]:
    out = []
    for fused in (True, False):
        rib = Rib(clock=Clock(), stale_hold_time=600.0)
        if neighbors:
            rib.neighbors = frozenset(PEERS) - {STRANGER}
        server = FeedServer("/tmp/unused-test-loadline.sock", rib)
        server.fused_load = fused
        a, b = socket.socketpair()
        a.close()
        b.close()
        out.append((server, feed._Connection(a), rib))
    return out


def _run(server: FeedServer, conn: object, lines: list[bytes], fused: bool) -> None:
    if fused:
        feed._compiled_lines(server, conn, lines)
    else:
        FeedServer._lines(server, conn, lines)


def _plain(value: object) -> object:
    """``value`` with each attribute set (and what holds one: path sets, wide
    entries) as its repr: the two feeds have their own interners, and sets
    compare by identity."""
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_plain(v) for v in value)
    if value is None or type(value) in (str, int, float, bool):
        return value
    return repr(value)  # sets, path sets, wide entries' rows


def _same_ribs(a: Rib, b: Rib, where: str) -> None:
    sa, sb = _plain(_state(a)), _plain(_state(b))
    for key in sa:
        assert sa[key] == sb[key], f"{where}: {key}"


def _sets(rib: Rib) -> list[str]:
    return sorted(repr(a) for a in rib.interner.sets())


def _counted(conn: object) -> dict:
    c = conn.counters  # type: ignore[attr-defined]
    return {k: getattr(c, k) for k in ("lines", "updates", "prefixes_announced")} | {
        "withdrawn": c.prefixes_withdrawn,
        "taw": c.treated_as_withdraw,
        "eor": c.end_of_rib,
        "bad": (c.bad_lines, dict(c.bad_by_category)),
    }


@pytest.mark.parametrize("neighbors", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_the_fused_path_leaves_what_the_reference_leaves(seed, neighbors, caplog) -> None:
    feeds = _feeds(neighbors)
    reads = _stream(seed)
    last = len(reads) - 1
    for k, step in enumerate(reads):
        logged = []
        for fused, (server, conn, rib) in zip((True, False), feeds, strict=True):
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="ribd.feed"):
                if step == "merge":
                    for table in rib.tables.values():
                        rib._merge(table)
                elif isinstance(step, str):  # a restart: the old routes kept stale
                    peer = step.split()[1]
                    rib.apply(SessionState(peer, "down", reason="test"))
                    rib.apply(SessionState(peer, "up"))
                else:
                    _run(server, conn, step, fused)
            logged.append([r.getMessage() for r in caplog.records])
        (_, c1, r1), (_, c2, r2) = feeds
        assert logged[0] == logged[1], f"read {k}"
        assert _counted(c1) == _counted(c2), f"read {k}"
        if k % 8 == 0 or k == last:  # (the whole state: a few ms a read)
            _same_ribs(r1, r2, f"read {k}")
            assert _sets(r1) == _sets(r2), f"read {k}"
        assert not r1.lock.locked()
    server = feeds[0][0]
    # The fused path took most good lines, and the rest went the reference's way.
    taken = server.stats()["fused_lines"]
    assert taken > 300, taken
    assert feeds[1][0].stats()["fused_lines"] == 0
    c = feeds[0][1].counters  # type: ignore[attr-defined]
    assert c.bad_lines > 50 and c.treated_as_withdraw > 0 and c.prefixes_withdrawn > 0
    assert feeds[0][2].shared_writes > 50
    if neighbors:
        assert c.bad_by_category.get("unknown_neighbor", 0) > 0


def test_the_fused_path_is_on_where_built() -> None:
    server = FeedServer("/tmp/unused-test-loadline.sock", Rib())
    assert server.fused_load
    rib = server.rib
    body = _announce(random.Random(1), ROUTERS[0], ["10.0.0.0/24"])
    lines = [*session_lines(ROUTERS[0]), packets_line(body, peer=ROUTERS[0])]
    a, b = socket.socketpair()
    conn = feed._Connection(a)
    feed._compiled_lines(server, conn, lines)
    a.close()
    b.close()
    assert server.stats()["fused_lines"] == 1
    assert [m.prefix for m in rib.routes(ROUTERS[0], "ipv4 unicast")] == ["10.0.0.0/24"]
    assert rib.routers[ROUTERS[0]].last_update == 1.5


def test_an_ipv6_table_load_takes_the_fused_path() -> None:
    """Two routers' IPv6 UPDATEs (MP_REACH_NLRI only, 16- or 32-octet next hops,
    one shared path for a group and another router's own): every line fused
    (before ``load_update6``, none), and the RIB, sets and counters as the
    reference's."""
    rng = random.Random(7)
    pool = _pool6()
    lines = [ln for p in ROUTERS[:2] for ln in session_lines(p)]
    updates = 0
    for start in range(0, 600, 6):
        for r in ROUTERS[:2]:
            group = pool[start : start + rng.randint(1, 6)]
            lines.append(packets_line(_announce(rng, r, group), peer=r, time_=2.5))
            updates += 1
    feeds = _feeds(False)
    for fused, (server, conn, _rib) in zip((True, False), feeds, strict=True):
        _run(server, conn, lines, fused)
    (s1, c1, r1), (_, c2, r2) = feeds
    assert _counted(c1) == _counted(c2)
    _same_ribs(r1, r2, "IPv6 load")
    assert _sets(r1) == _sets(r2)
    assert s1.stats()["fused_lines"] == updates
    assert len(r1.tables["ipv6 unicast"].store) > 300 and r1.shared_writes > 0
    assert r1.routers[ROUTERS[1]].last_update == 2.5


def test_an_ipv6_load_keeps_int_keys_and_hands_out_texts() -> None:
    """The fused IPv6 load writes the prefixes as the IPv6 store's int keys
    (``ribd.prefix_keys``, made from the NLRI octets: no text), into the
    compiled delta and the change log, and readers get the NLRI's texts back.
    Before stop 35 both held texts (the delta a dict by text)."""
    rng = random.Random(3)
    pool = _pool6()[:400]
    lines = list(session_lines(ROUTERS[0]))
    sent: list[str] = []
    for start in range(0, 400, 5):
        group = pool[start : start + 5]
        sent.extend(str(ipaddress.ip_network(p)) for p in group)  # (canonical texts)
        lines.append(packets_line(_announce(rng, ROUTERS[0], group), peer=ROUTERS[0], time_=1.0))
    server, conn, rib = _feeds(False)[0]
    _run(server, conn, lines, True)
    table = rib.tables["ipv6 unicast"]
    assert server.stats()["fused_lines"] == 80
    assert type(table.store.delta).__name__ == "IntDelta6"
    assert {type(k) for k in table.changes} == {int}
    assert {type(k) for k in table.store.delta.keys()} == {int}  # noqa: SIM118 (a list)
    assert table.changes_since(table.changes_start) == sent
    assert [p for p, _ in table.store.items()] == sent


class _Flipping(Rib):
    """A RIB whose configured routers change between the feed's check and the
    lock (another thread's reload): None at the first read, nobody after."""

    reads = 0

    @property  # type: ignore[override]
    def neighbors(self) -> frozenset[str] | None:
        self.reads += 1
        return None if self.reads == 1 else frozenset()

    @neighbors.setter
    def neighbors(self, value: object) -> None:
        pass


@pytest.mark.parametrize("stamp", [1.5, -1.0])
def test_neighbors_changed_before_the_lock_count_as_the_reference(stamp) -> None:
    body = _announce(random.Random(3), ROUTERS[0], ["10.0.0.0/24", "10.0.1.0/24"])
    lines = [packets_line(body, peer=ROUTERS[0], time_=stamp)]
    got = []
    for fused in (True, False):
        rib = _Flipping(clock=Clock())
        server = FeedServer("/tmp/unused-test-loadline.sock", rib)
        server.fused_load = fused
        a, b = socket.socketpair()
        conn = feed._Connection(a)
        _run(server, conn, session_lines(ROUTERS[0]), fused)  # the OPENs
        rib.reads = 0
        before = rib.unknown_neighbor_events
        _run(server, conn, lines, fused)
        a.close()
        b.close()
        assert server.stats()["fused_lines"] == (1 if fused else 0)
        held = rib.tables["ipv4 unicast"].store.delta.keys()
        got.append((rib.unknown_neighbor_events - before, _counted(conn), held))
    assert got[0] == got[1]
    assert got[0][0] == (2 if stamp > 0 else 1)


def test_the_real_table_loads_the_same_as_two_routers() -> None:
    """The real table's first 6,000 UPDATE lines as two routers interleaved (skips
    without ../shared/data): the same RIB, sets and counters, each line fused."""
    from bench.ingest import raw_lines

    try:
        lines, _ = raw_lines(2)
    except (FileNotFoundError, OSError) as exc:
        pytest.skip(f"no routing data: {exc}")
    lines = lines[:4] + lines[4:12004]
    feeds = _feeds(False)
    for fused, (server, conn, _rib) in zip((True, False), feeds, strict=True):
        for i in range(0, len(lines), 500):
            _run(server, conn, lines[i : i + 500], fused)
    (s1, c1, r1), (_, c2, r2) = feeds
    assert _counted(c1) == _counted(c2)
    _same_ribs(r1, r2, "the real table")
    assert _sets(r1) == _sets(r2)
    assert s1.stats()["fused_lines"] >= 11_900


@pytest.mark.parametrize(
    ("family", "size", "twice"),
    [
        ("ipv4", 6, True),  # an UPDATE's few keys: compared pair by pair
        ("ipv4", 6, False),
        ("ipv4", 63, True),  # 64 keys: the most compared pair by pair
        ("ipv4", 80, True),  # past them: the set
        ("ipv4", 80, False),
        ("ipv6", 6, True),  # /48 keys (below 2**60): pair by pair
        ("ipv6/96", 6, True),  # /96 keys (past 2**60): the set
        ("ipv6/96", 6, False),
    ],
)
def test_a_prefix_twice_on_the_shared_entry_is_counted_once(family, size, twice) -> None:
    """Router 2 announces router 1's group again, every prefix held by the one
    entry router 1's UPDATE made (the shared path's case), one of them twice: the
    fused path leaves what the reference leaves, the prefix counted once."""
    if family == "ipv6/96":
        family, pool = "ipv6", [f"2001:db8:0:{i:x}::/96" for i in range(200)]
    else:
        pool = _pool() if family == "ipv4" else _pool6()
    group = pool[100 : 100 + size]
    second = [*group, group[size // 2]] if twice else list(group)
    rng = random.Random(size)
    lines = [ln for p in ROUTERS[:2] for ln in session_lines(p)]
    lines.append(packets_line(_announce(rng, ROUTERS[0], group), peer=ROUTERS[0], time_=1.5))
    lines.append(packets_line(_announce(rng, ROUTERS[1], second), peer=ROUTERS[1], time_=1.5))
    feeds = _feeds(False)
    for fused, (server, conn, _rib) in zip((True, False), feeds, strict=True):
        _run(server, conn, lines, fused)
    (s1, c1, r1), (_, c2, r2) = feeds
    assert _counted(c1) == _counted(c2)
    _same_ribs(r1, r2, f"{family} x{size}")
    assert s1.stats()["fused_lines"] == 2
    fs = r1.routers[ROUTERS[1]].families[f"{family} unicast"]
    assert (fs.prefixes, fs.paths) == (size, size)
    # Without the prefix twice the shared path wrote them all (or this proves nothing).
    assert r1.shared_writes == (0 if twice else size)
