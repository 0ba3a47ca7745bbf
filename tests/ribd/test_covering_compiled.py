"""The compiled walks of the covering keys (``ribd._covering``) find what the
Python walks (``PrefixStore._covering_walk``, ``_covering_delta``) find: the
same prefixes, longest first, holes skipped, for IPv4 and IPv6, for packed and
text addresses and for prefixes given as ``net/len``, in the arrays and in a
delta not merged yet."""

from __future__ import annotations

import ipaddress
import random

import pytest

from ribd import store as store_module
from ribd.store import PrefixStore

compiled = pytest.importorskip("ribd._covering")


def _nested_prefixes(rng: random.Random, bits: int, count: int) -> list[str]:
    """Prefixes that nest as a table's do: random networks, each with some
    of its supernets and subnets, and a default route."""
    out = {str(ipaddress.ip_network((0, 0)) if bits == 32 else ipaddress.ip_network("::/0"))}
    lengths = (
        (8, 12, 16, 19, 20, 22, 23, 24, 25, 28, 32)
        if bits == 32
        else (16, 24, 29, 32, 40, 44, 48, 56, 64, 96, 128)
    )
    while len(out) < count:
        length = rng.choice(lengths)
        net = ipaddress.ip_network((rng.getrandbits(bits), bits)).supernet(new_prefix=length)
        out.add(str(net))
        for up in range(rng.randrange(3)):
            out.add(str(net.supernet(prefixlen_diff=min(net.prefixlen, 1 + 4 * up))))
    return sorted(out)


def _addresses(rng: random.Random, bits: int, stored: list[str], count: int) -> list[bytes]:
    """Addresses inside stored prefixes (most) and anywhere (the rest)."""
    out = []
    for _ in range(count):
        if rng.random() < 0.8:
            net = ipaddress.ip_network(rng.choice(stored))
            address = net.network_address + rng.randrange(net.num_addresses)
        else:
            kind = ipaddress.IPv4Address if bits == 32 else ipaddress.IPv6Address
            address = kind(rng.getrandbits(bits))
        out.append(address.packed)
    return out


def _store(bits: int, seed: int, unmerged: int = 0) -> tuple[PrefixStore, list[str]]:
    """A store of nested prefixes, a ninth of them holes; the last
    ``unmerged`` written after the merge (in the delta)."""
    rng = random.Random(seed)
    stored = _nested_prefixes(rng, bits, 4000)
    rng.shuffle(stored)
    store = PrefixStore(bits)
    merged = stored[: len(stored) - unmerged]
    for i, p in enumerate(merged):
        store.delta.insert(store.key_of(p), ("entry", i))
    store.merge()
    for p in merged[::9]:  # holes: keys whose value was removed
        store.set_at(store.find(p), None)
    for i, p in enumerate(stored[len(merged) :]):
        store.set(store.key_of(p), ("new", i))
    return store, stored


@pytest.mark.parametrize("bits", [32, 128])
def test_compiled_covering_finds_the_python_walks_prefixes(bits: int) -> None:
    store, stored = _store(bits, bits)
    rng = random.Random(bits + 1)
    found = 0
    for address in _addresses(rng, bits, stored, 3000):
        got = list(store._covering_arrays(address))
        assert got == list(store._covering_walk(address)), address
        found += len(got)
    assert found > 3000  # addresses inside nested prefixes: several each


@pytest.mark.parametrize("bits", [32, 128])
def test_compiled_covering_of_text_addresses_and_prefixes(bits: int) -> None:
    store, stored = _store(bits, bits + 7)
    rng = random.Random(bits + 8)
    texts = [str(ipaddress.ip_address(a)) for a in _addresses(rng, bits, stored, 500)]
    texts += rng.sample(stored, 500)  # "net/len": the prefixes covering all of it
    for text in texts:
        assert list(store._covering_arrays(text)) == list(store._covering_walk(text)), text


def test_lookups_answer_the_same_without_the_compiled_walk(monkeypatch) -> None:
    store, stored = _store(32, 5)
    rng = random.Random(6)
    addresses = _addresses(rng, 32, stored, 500)
    with_it = [list(store.covering(a)) for a in addresses]
    monkeypatch.setattr(store_module, "_compiled_covering", None)
    assert [list(store.covering(a)) for a in addresses] == with_it


def test_an_address_of_the_wrong_size_is_refused_not_read_past() -> None:
    store, _ = _store(32, 9)
    with pytest.raises(ValueError, match="do not fit"):
        compiled.covering_indices(store.keys, bytes(16), 32)
    assert compiled.covering_indices(store.keys[:0], bytes(4), 32) == []


@pytest.mark.parametrize("bits", [32, 128])
def test_lookups_with_a_delta_answer_as_the_python_walks(bits: int, monkeypatch) -> None:
    store, stored = _store(bits, bits + 3, unmerged=1500)
    assert store.has_delta()
    addresses = _addresses(random.Random(bits + 4), bits, stored, 2000)
    texts = [str(ipaddress.ip_address(a)) for a in addresses[:300]] + stored[:300]
    with_it = [list(store.covering(a)) for a in addresses + texts]
    assert sum(1 for got in with_it for _, _, e in got if e[0] == "new") > 300
    monkeypatch.setattr(store_module, "_compiled_covering", None)
    monkeypatch.setattr(store_module, "_compiled_delta4", None)
    assert [list(store.covering(a)) for a in addresses + texts] == with_it


def test_keys_out_of_order_or_out_of_range_end_the_walk() -> None:
    """Keys no store writes (unsorted, lengths past the address): an answer,
    maybe wrong, never a loop or a read past the buffer."""
    import numpy as np

    rng = random.Random(12)
    for _ in range(200):
        raw = bytes(rng.getrandbits(8) for _ in range(5 * 64))
        keys = np.frombuffer(raw, dtype="S5")
        got = compiled.covering_indices(keys, bytes(rng.getrandbits(8) for _ in range(4)), 32)
        assert len(got) <= 33 and all(0 <= i < 64 for i, _ in got)


@pytest.mark.parametrize("bits", [32, 128])
def test_buckets_hold_each_keys_first_16_bits(bits: int) -> None:
    """``bucket_starts``: the keys of bucket b (their first 16 bits) are those
    from starts[b] to starts[b + 1]; built once per keys array."""
    import numpy as np

    store, _ = _store(bits, bits + 21)
    starts = np.frombuffer(store.buckets(), dtype=np.intp)
    assert len(starts) == 65537 and starts[0] == 0 and starts[-1] == len(store.keys)
    first = store.keys.view(np.uint8).reshape(len(store.keys), store.width)[:, :2]
    of_key = first[:, 0].astype(np.int64) << 8 | first[:, 1]
    assert np.array_equal(starts, np.searchsorted(of_key, np.arange(65537), side="left"))
    assert store.buckets() is store.buckets()  # the same keys: not built again
    store.set(store.key_of("10.99.0.0/16" if bits == 32 else "2001:db8:99::/48"), ("x",))
    store.merge()
    assert store.buckets() is not None and store._buckets[0] is store.keys


def test_buckets_of_keys_out_of_order_stay_inside_the_keys() -> None:
    """Unsorted keys (none a store writes) give buckets that are still in
    order and inside the array: a walk through them never reads past it."""
    import numpy as np

    rng = random.Random(13)
    raw = bytes(rng.getrandbits(8) for _ in range(5 * 300))
    keys = np.frombuffer(raw, dtype="S5")
    starts = np.frombuffer(compiled.bucket_starts(keys), dtype=np.intp)
    assert starts[0] == 0 and starts[-1] == 300 and (np.diff(starts) >= 0).all()
    with pytest.raises(ValueError, match="no buckets"):
        compiled.bucket_starts(np.zeros(3, dtype="S2"))


def test_a_merge_lets_go_of_the_keys_it_replaced() -> None:
    """The buckets are built for one keys array and hold it: a merge that
    replaces the keys drops them, so the old array is freed with it."""
    import gc
    import weakref

    store, _ = _store(32, 23)
    store.buckets()
    old = weakref.ref(store.keys)
    store.set(store.key_of("10.99.0.0/16"), ("x",))
    store.merge()
    gc.collect()
    assert old() is None
    assert store._buckets is None and store.buckets() is not None
