"""The two-layer prefix store (ribd.store) against a plain dict and brute-force matching."""

from __future__ import annotations

import ipaddress
import random

import pytest

from ribd.prefixes import normalise_prefix
from ribd.store import PrefixStore


def _random_prefix(rng: random.Random, bits: int) -> str:
    length = rng.choice([0, 1, 8, 12, 16, 20, 22, 23, 24, 24, 24, bits // 2, bits - 1, bits])
    # A few top bits only, so that prefixes nest and share starts often.
    address = rng.getrandbits(6) << (bits - 6) | rng.getrandbits(bits - 6) & rng.choice([0, -1])
    network = ipaddress.IPv4Network if bits == 32 else ipaddress.IPv6Network
    net = network((address, length), strict=False)
    return normalise_prefix(str(net), 4 if bits == 32 else 6)


def _covering(model: dict[str, object], address: str, bits: int) -> list[tuple[str, int, object]]:
    a = ipaddress.ip_address(address)
    hits = [
        (p, int(p.rpartition("/")[2]), v)
        for p, v in model.items()
        if a in ipaddress.ip_network(p, strict=False)
    ]
    return sorted(hits, key=lambda h: -h[1])


@pytest.mark.parametrize("bits", [32, 128])
def test_store_matches_a_dict_through_inserts_removals_and_merges(bits):
    rng = random.Random(bits)
    store = PrefixStore(bits)
    model: dict[str, object] = {}
    for step in range(3000):
        prefix = _random_prefix(rng, bits)
        if rng.random() < 0.3:
            store.set(prefix, None)
            model.pop(prefix, None)
        else:
            value = ("v", step)
            store.set(prefix, value)
            model[prefix] = value
        if rng.random() < 0.01:
            store.merge()
        if step % 50 == 0:
            probe = _random_prefix(rng, bits).partition("/")[0]
            assert list(store.covering(probe)) == _covering(model, probe, bits)
            assert len(store) == len(model)
    assert sorted(store.items()) == sorted(model.items())
    for prefix, value in model.items():
        assert store.get(prefix) is value
    store.merge()
    assert not len(store.delta) and store.holes == 0
    assert sorted(store.items()) == sorted(model.items())
    for _ in range(300):
        probe = _random_prefix(rng, bits).partition("/")[0]
        assert list(store.covering(probe)) == _covering(model, probe, bits)


def test_updating_a_merged_prefix_changes_it_in_place_and_removing_leaves_a_hole():
    store = PrefixStore(32)
    store.set("10.0.0.0/8", "a")
    store.merge()
    keys = store.keys
    store.set("10.0.0.0/8", "b")
    assert store.keys is keys and not len(store.delta)
    assert store.get("10.0.0.0/8") == "b"
    store.set("10.0.0.0/8", None)
    assert store.holes == 1 and len(store) == 0
    assert list(store.covering("10.1.2.3")) == []
    store.set("10.0.0.0/8", "c")  # fills the hole
    assert store.holes == 0 and list(store.covering("10.1.2.3")) == [("10.0.0.0/8", 8, "c")]


def test_covering_takes_packed_addresses_and_prefixes():
    store = PrefixStore(32)
    for prefix in ("0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24"):
        store.set(prefix, prefix)
    store.merge()
    store.set("10.1.2.128/25", "new")  # in the delta
    want = ["10.1.2.128/25", "10.1.2.0/24", "10.1.0.0/16", "10.0.0.0/8", "0.0.0.0/0"]
    assert [p for p, _, _ in store.covering(bytes([10, 1, 2, 200]))] == want
    assert [p for p, _, _ in store.covering("10.1.2.3")] == want[1:]
    assert [p for p, _, _ in store.covering("10.1.0.0/16")] == want[2:]
    assert [p for p, _, _ in store.covering("11.0.0.1")] == ["0.0.0.0/0"]


def test_ipv6_keys_round_trip_through_the_arrays():
    store = PrefixStore(128)
    prefixes = ["::/0", "2001:db8::/32", "2001:db8:0:1::/64", "2001:db8::1/128", "ff00::/8"]
    for p in prefixes:
        store.set(p, p)
    store.merge()
    assert store.texts(store.keys) == sorted(prefixes, key=store.key)
    assert [p for p, _, _ in store.covering("2001:db8::1")] == [
        "2001:db8::1/128",
        "2001:db8::/32",
        "::/0",
    ]


def test_loading_a_prefix_twice_is_refused():
    store = PrefixStore(32)
    assert store.load(["10.0.0.0/8", "11.0.0.0/8", "10.0.0.0/8"], [1, 2, 3]) == "10.0.0.0/8"
    assert store.load(["11.0.0.0/8", "10.0.0.0/8"], [2, 1]) is None
    assert [p for p, _ in store.items()] == ["10.0.0.0/8", "11.0.0.0/8"]
    assert store.get("11.0.0.0/8") == 2


@pytest.mark.parametrize("bits", [32, 128])
def test_find_many_finds_what_find_finds(bits: int) -> None:
    """The per-UPDATE lookup of the ingest path: the arrays' index of each
    prefix (holes included), -1 for prefixes only in the delta or absent."""
    rng = random.Random(bits)
    store = PrefixStore(bits)
    assert store.find_many(["10.0.0.0/8" if bits == 32 else "2001:db8::/32"]) == [-1]
    prefixes = sorted({_random_prefix(rng, bits) for _ in range(400)})
    for p in prefixes[:300]:
        store.set(p, p)
    store.merge()
    for p in prefixes[:20]:
        store.set(p, None)  # holes: still found
    for p in prefixes[300:]:
        store.set(p, p)  # in the delta
    asked = [rng.choice(prefixes) for _ in range(200)] + prefixes
    assert store.find_many(asked) == [store.find(p) for p in asked]
    assert sorted(store.find_many(tuple(prefixes[:300]))) == list(range(300))
    assert store.find_many(()) == []


@pytest.mark.parametrize("bits", [32, 128])
def test_a_merge_read_in_chunks_gives_the_keys_and_entries_of_one_pass(bits, monkeypatch) -> None:
    """The merge's bulk steps: encode works a chunk at a time so a whole table's C
    loop no longer holds the GIL for seconds (across chunk edges it must give what
    one pass gives), read_delta gives the delta's texts and entries in its order,
    and the merged store must hold every prefix."""
    import ribd.store

    monkeypatch.setattr(ribd.store, "GIL_CHUNK", 7)
    rng = random.Random(bits)
    texts = sorted(
        {
            str(
                ipaddress.ip_network(
                    f"{ipaddress.ip_address(rng.getrandbits(bits))}/{rng.randint(8, 24)}",
                    strict=False,
                )
            )
            for _ in range(100)
        }
    )
    store = PrefixStore(bits)
    for i, text in enumerate(texts):
        store.delta.insert(store.key_of(text), ("entry", i))
    keys = store.delta.keys()
    assert len(keys) > 7 * 10
    assert (store.encode(keys) == store._encode(keys)).all()
    read, values = store.read_delta()  # (the store's keys: an IPv4 store's are ints)
    assert read == keys and values.tolist() == [store.delta.get(k) for k in keys]
    store.merge()
    assert not store.has_delta() and len(store.keys) == len(texts)
    assert dict(store.items()) == {t: ("entry", i) for i, t in enumerate(texts)}


@pytest.mark.parametrize("bits", [32, 128])
def test_the_delta_answers_longest_matches_as_a_trie_would_while_writes_go_on(bits) -> None:
    """The delta is a dict probed once per prefix length it holds, lengths counted
    lazily from the keys added since the last lookup: lookups between every few
    writes, removals (then all keys are counted again) and a removal followed
    by an insert of another length (the same count of keys: the case a count by
    size alone would miss) give what brute force over a model gives, for texts,
    packed addresses and ``net/len`` probes."""
    rng = random.Random(bits + 7)
    store = PrefixStore(bits)
    model: dict[str, object] = {}
    size = bits // 8
    for step in range(1500):
        prefix = _random_prefix(rng, bits)
        if model and rng.random() < 0.2:
            gone = rng.choice(sorted(model))
            store.set(gone, None)
            del model[gone]
        store.set(prefix, ("v", step))
        model[prefix] = ("v", step)
        if step % 3 == 0:
            probe = _random_prefix(rng, bits)
            address = probe.partition("/")[0]
            assert list(store.covering(address)) == _covering(model, address, bits)
            packed = ipaddress.ip_address(address).packed
            assert len(packed) == size
            assert list(store.covering(packed)) == _covering(model, address, bits)
            length = int(probe.rpartition("/")[2])
            want = [h for h in _covering(model, address, bits) if h[1] <= length]
            assert list(store.covering(probe)) == want
    assert not len(store.keys)  # never merged: every answer above came from the delta


def test_a_removal_then_an_insert_of_another_length_is_found_by_the_next_lookup() -> None:
    store = PrefixStore(32)
    store.set("10.0.0.0/8", "a")
    assert [p for p, _, _ in store.covering("10.1.2.3")] == ["10.0.0.0/8"]
    store.set("10.0.0.0/8", None)
    store.set("10.1.0.0/16", "b")  # the delta holds one key again, of a length not counted yet
    assert [p for p, _, _ in store.covering("10.1.2.3")] == ["10.1.0.0/16"]
    store.delta.delete(store.key_of("10.1.0.0/16"))
    store.delta.insert(store.key_of("10.1.2.0/24"), "c")
    assert [p for p, _, _ in store.covering("10.1.2.3")] == ["10.1.2.0/24"]


def test_an_ipv6_stores_delta_is_keyed_by_int() -> None:
    """The IPv6 delta was a dict by prefix text, which took any key; it is now the
    compiled table by int key (``ribd.intdelta.IntDelta6``), as the IPv4 store's:
    the store's methods take texts and make the key, the table refuses a text."""
    store = PrefixStore(128)
    store.set("2001:db8::/32", "a")
    store.set("2001:db8:1::/48", "b")
    assert store.delta.keys() == [1 << 32 | 0x20010DB8, 1 << 48 | 0x20010DB80001]
    with pytest.raises(TypeError):
        store.delta.insert("2001:db8::/32", "c")
    assert store.get("2001:db8::/32") == "a" and store.locate("2001:db8:1::/48") == (-1, "b")
    assert [p for p, _, _ in store.covering("2001:db8:1::1")] == [
        "2001:db8:1::/48",
        "2001:db8::/32",
    ]
    store.merge()
    assert store.items() == [("2001:db8::/32", "a"), ("2001:db8:1::/48", "b")]
