"""``ribd._intdelta6.IntDelta6`` (the IPv6 store's delta, compiled) against its
Python reference ``ribd.intdelta.PyIntDelta6``: on random and hostile
sequences of the interface's calls, the same results, the same contents in
the same order, the same errors; the keys' C form against ``ribd.prefix_keys``;
and the IPv6 store on it."""

from __future__ import annotations

import ipaddress
import random
import sys

import pytest

from ribd import intdelta, ribload
from ribd.intdelta import PyIntDelta6
from ribd.prefix_keys import py_int_key, py_int_text
from ribd.store import PrefixStore

compiled = pytest.importorskip("ribd._intdelta6")
IntDelta6 = compiled.IntDelta6

HOSTILE = [0, -1, 1 << 129, (1 << 129) + 5, 1 << 200, -(1 << 70), "2001:db8::/32", b"\x01", 1.0,
           None, True]  # fmt: skip


def _outcome(call, *args):  # type: ignore[no-untyped-def]
    try:
        return "ok", call(*args)
    except Exception as e:
        return type(e).__name__, str(e)


def _key(rng: random.Random, length: int) -> int:
    return 1 << length | rng.getrandbits(length) if length else 1


def _pool(rng: random.Random) -> list[int]:
    """Keys to draw from: random ones, runs of neighbours (a table's /48s), one
    network at every length, keys equal in a word, the edges."""
    shape = rng.randrange(5)
    if shape == 0:
        keys = [_key(rng, rng.randrange(129)) for _ in range(rng.choice([3, 40, 3000]))]
    elif shape == 1:  # consecutive /48s, as a table sends them
        start = rng.getrandbits(48)
        keys = [1 << 48 | ((start + i) & ((1 << 48) - 1)) for i in range(rng.choice([50, 4000]))]
    elif shape == 2:  # one network at every length
        a = rng.getrandbits(128)
        keys = [1 << n | a >> (128 - n) for n in range(129)]
    elif shape == 3:  # the same high word, the low one varying (/128s), and the reverse
        hi = rng.getrandbits(64)
        keys = [1 << 128 | hi << 64 | i << rng.choice([0, 30]) for i in range(1000)]
        keys += [1 << 128 | i << 64 | hi for i in range(1000)]
    else:  # one address at neighbouring lengths: equal words, lengths apart
        keys = [1 << n for n in range(129)] + [1 << n | 1 for n in range(1, 129)]
    return [*keys, 1, 2, 3, (1 << 129) - 1, 1 << 128, 1 << 64, (1 << 65) - 1]


def _run(seed: int, ops: int) -> tuple[IntDelta6, PyIntDelta6]:
    rng = random.Random(seed)
    a, b = IntDelta6(), PyIntDelta6()
    pool = _pool(rng)
    deletes = rng.choice([0.05, 0.3, 0.6])  # up to mostly deletes: the order squeezed
    for op in range(ops):
        key = rng.choice(HOSTILE) if rng.random() < 0.01 else rng.choice(pool)
        value = (op,) if rng.random() < 0.95 else None
        r = rng.random()
        if r < deletes:
            call = "delete", (key,)
        else:
            call = rng.choice(
                [("insert", (key, value))] * 4
                + [("add", (key, value)), ("get", (key, "absent")), ("has_key", (key,))]
                + [("__contains__", (key,)), ("lengths", ()), ("__len__", ())]
            )
        if rng.random() < 0.002:
            call = rng.choice([("clear", ()), ("snapshot", ()), ("items", ())])
        name, args = call
        got = _outcome(getattr(a, name), *args)
        want = _outcome(getattr(b, name), *args)
        assert got == want, (seed, op, name, args)
    return a, b


@pytest.mark.parametrize("seed", range(24))
def test_the_compiled_table_does_what_the_reference_does(seed: int) -> None:
    a, b = _run(seed, 6000)
    assert a.keys() == b.keys() and a.values() == b.values() and a.items() == b.items()
    assert a.snapshot() == b.snapshot() and a.lengths() == b.lengths() and len(a) == len(b)


def test_keys_come_back_as_they_went_in() -> None:
    """The C form (two words and a length) holds every key exactly: each length,
    the edges of each word, the texts ``ribd.prefix_keys`` makes."""
    rng = random.Random(5)
    keys = [1 << n | rng.getrandbits(n) for n in range(1, 129) for _ in range(20)]
    keys += [1, 1 << 128, (1 << 129) - 1, 1 << 64 | ((1 << 64) - 1), (1 << 65) - 1]
    t = IntDelta6()
    for i, k in enumerate(keys):
        t.add(k, i)
    assert t.keys() == list(dict.fromkeys(keys)) and t.snapshot()[0] == t.keys()
    for k in keys:
        text = py_int_text(k, 128)
        assert py_int_key(text, 128) == k
        assert str(ipaddress.ip_network(text)) == text


def test_a_table_grows_and_shrinks_in_order() -> None:
    """Growth by doubling, then most keys deleted (the order squeezed), then re-added:
    the same order and contents as the reference at every stage."""
    rng = random.Random(7)
    keys = list(dict.fromkeys(1 << 48 | rng.getrandbits(48) for _ in range(100_000)))
    a, b = IntDelta6(), PyIntDelta6()
    for k in keys:
        a.insert(k, k)
        b.insert(k, k)
    assert a.snapshot() == b.snapshot()
    gone = keys[::3] + keys[1::3]
    for k in gone:
        a.delete(k)
        b.delete(k)
    for k in gone[::5]:
        a.add(k, -k)
        b.add(k, -k)
    assert a.snapshot() == b.snapshot() and a.lengths() == b.lengths() == [48]
    tail = keys[-10:]  # the last keys added, deleted in the order added (an UPDATE undone)
    for k in tail:
        a.delete(k) if k in a else None
        b.delete(k) if k in b else None
    assert a.keys() == b.keys()
    a.clear()
    assert not len(a) and a.keys() == [] and a.snapshot() == ([], []) and a.get(keys[0]) is None


def test_entries_are_held_and_released() -> None:
    a = IntDelta6()
    value = ("an", "entry")
    before = sys.getrefcount(value)
    keys = [1 << 64 | k for k in range(1000)]
    for k in keys[1:]:
        a.insert(k, value)
    assert sys.getrefcount(value) == before + 999
    a.insert(keys[5], ("other",))  # replaced: the old entry's reference dropped
    a.delete(keys[6])
    assert sys.getrefcount(value) == before + 997
    got_keys, values = a.snapshot()
    assert sys.getrefcount(value) == before + 997 * 2
    del got_keys, values
    a.clear()
    assert sys.getrefcount(value) == before
    a.insert(3, value)
    del a
    assert sys.getrefcount(value) == before


def test_an_ipv6_stores_delta_is_the_compiled_table_keyed_by_ints() -> None:
    """The IPv6 delta was a dict by prefix text: each load made, hashed and compared
    a ~20-character text per prefix. Now the table, by int key, as the IPv4 store's;
    a text is refused there and taken by the store's methods."""
    store = PrefixStore(128)
    assert type(store.delta) is intdelta.IntDelta6 is IntDelta6
    with pytest.raises(TypeError):
        store.delta.insert("2001:db8::/32", 1)
    store.set("2001:db8::/32", "a")
    assert store.delta.keys() == [1 << 32 | 0x20010DB8] and store.get("2001:db8::/32") == "a"
    assert store.items() == [("2001:db8::/32", "a")]


def test_the_store_reads_the_table_as_it_reads_the_reference() -> None:
    """Every reader of the store on both tables: items, covering, locate, merge."""
    rng = random.Random(3)
    texts = set()
    for _ in range(2000):
        a, b, n = rng.randrange(65536), rng.randrange(65536), rng.choice([32, 40, 48, 56, 64])
        texts.add(str(ipaddress.ip_network(f"2001:db8:{a:x}:{b:x}::/{n}", strict=False)))
    texts = sorted(texts)
    stores = []
    for kind in (IntDelta6, PyIntDelta6):
        store = PrefixStore(128)
        store.delta = kind()
        for i, t in enumerate(texts):
            store.set(t, ("e", i))
        for t in texts[::4]:
            store.set(t, None)
        stores.append(store)
    a, b = stores
    assert a.items() == b.items() and len(a) == len(b)
    for addr in ("2001:db8:1:2::3", "2001:db8:ff00::1", "2001:db8::/40", "2002::1"):
        assert list(a.covering(addr)) == list(b.covering(addr))
    for t in texts[:50]:
        assert a.locate(t) == b.locate(t)
    ka, va = a.read_delta()
    kb, vb = b.read_delta()
    assert ka == kb and va.tolist() == vb.tolist()
    a.merge()
    b.merge()
    assert a.items() == b.items() and type(a.delta) is type(b.delta) is IntDelta6


@pytest.mark.skipif(not ribload.COMPILED, reason="ribd._ribload is not built here")
def test_the_load_loops_write_the_table_as_the_reference_loops() -> None:
    rng = random.Random(11)
    for _ in range(2000):
        names = [1 << 48 | rng.randrange(40) << 8 for _ in range(12)]
        held = rng.sample(names, rng.randrange(len(names)))
        prefixes = tuple(rng.choice(names) for _ in range(rng.randrange(9)))
        if rng.random() < 0.05:
            prefixes = (*prefixes, rng.choice(HOSTILE[:7]))
        values = [rng.choice([("a",), None, 0]) for _ in held]
        pair = []
        for kind in (IntDelta6, PyIntDelta6):
            d = kind()
            for k, v in zip(held, values, strict=True):
                d.insert(k, v)
            pair.append(d)
        got = []
        for d, probe, insert_new in (
            (pair[0], ribload.probe, ribload.insert_new),
            (pair[1], ribload.PY_PROBE, ribload.PY_INSERT_NEW),
        ):
            changes: list = []
            got.append((_outcome(probe, d, prefixes),
                        _outcome(insert_new, d, prefixes, ("new",), changes),
                        d.items(), d.lengths()))  # fmt: skip
        assert got[0] == got[1]
