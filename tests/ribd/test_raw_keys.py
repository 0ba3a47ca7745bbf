"""The compiled key search (``ribd._rawkeys``) finds what the store's numpy search finds."""

from __future__ import annotations

import ipaddress
import random

import pytest

from ribd import store as store_module
from ribd import textdelta
from ribd.store import PrefixStore

compiled = pytest.importorskip("ribd._rawkeys")


def random_prefixes(rng: random.Random, bits: int, count: int) -> list[str]:
    out = set()
    while len(out) < count:
        length = rng.choice((0, 1, 8, 16, 19, 23, 24, 25, 32, 48, 64, 127, 128))
        length = min(length, bits)
        net = ipaddress.ip_network((rng.getrandbits(bits), bits), strict=False).supernet(
            new_prefix=length
        )
        out.add(str(net))
    return sorted(out)


@pytest.mark.parametrize("bits", [32, 128])
def test_compiled_search_gives_the_numpy_search_indexes(bits: int, monkeypatch) -> None:
    rng = random.Random(bits)
    stored = random_prefixes(rng, bits, 3000)
    store = PrefixStore(bits)
    for i, p in enumerate(stored):
        store.delta.insert(store.key_of(p), ("entry", i))
    store.merge()
    for p in stored[::7]:  # holes keep their keys: their index is still found
        store.set_at(store.find(p), None)
    wanted = stored[::3] + random_prefixes(rng, bits, 2000)  # present and mostly absent
    got = store.find_many(tuple(wanted))
    assert compiled.find_many(store.keys, tuple(wanted), bits == 128) == got
    monkeypatch.setattr(store_module, "_compiled_find_many", None)
    assert store.find_many(tuple(wanted)) == got  # the numpy way
    assert [store.find(p) for p in wanted[:300]] == got[:300]
    assert sum(i >= 0 for i in got) >= len(stored[::3])


def test_texts_not_parsed_exactly_here_are_left_to_the_python_way() -> None:
    store = PrefixStore(32)
    store.delta.insert(store.key_of("10.0.0.0/8"), 1)
    store.merge()
    for text in ("10.0.0.0/08", "10.0.0.0", "/8", "10.0.0.0/8x", "10.0.0/8", "10.0.0.0/129"):
        assert compiled.find_many(store.keys, (text,), False) is None, text
    assert compiled.find_many(store.keys, ("10.0.0.0/8", "10.0.0.0/9"), False) == [0, -1]
    with pytest.raises(KeyError):  # the store's own refusal, as before the compiled search
        store.find("10.0.0.0/08")


@pytest.mark.parametrize("bits", [32, 128])
def test_compiled_keys_are_the_numpy_keys(bits: int, monkeypatch) -> None:
    texts = random_prefixes(random.Random(bits + 1), bits, 5000)
    store = PrefixStore(bits)
    got = store.encode(texts)
    monkeypatch.setattr(store_module, "_compiled_encode", None)
    want = store.encode(texts)
    assert got.dtype == want.dtype and got.tolist() == want.tolist()
    assert len(store.encode([])) == 0
    assert compiled.encode(["10.0.0.0/08"], bits == 128) is None


def _lengths_outcome(add, prefixes: list) -> object:
    lengths: set = {999}
    try:
        add(lengths, iter(prefixes))
    except Exception as exc:  # the same class and message, or the test fails
        return (type(exc).__name__, str(exc), sorted(lengths))
    return sorted(lengths)


@pytest.mark.skipif(textdelta.add_lengths is textdelta.py_add_lengths, reason="not built")
def test_compiled_lengths_are_the_python_lengths() -> None:
    """``Delta.lengths``' step in C against the Python expression: real-looking
    prefixes of every length, then texts it must leave to Python (no slash,
    empty, 4 digits, signs, spaces, underscores, non-ASCII digits, surrogates,
    non-str), alone and among good ones: the same set or the same error."""
    rng = random.Random(20261201)
    add, ref = textdelta.add_lengths, textdelta.py_add_lengths
    good = [f"10.{rng.randrange(256)}.0.0/{rng.randrange(33)}" for _ in range(500)]
    good += [f"2001:db8::/{n}" for n in range(129)] + ["0.0.0.0/0", "1.2.3.4/032"]
    good += [1 << n | rng.getrandbits(n) for n in range(33)]  # an IPv4 store's int keys
    assert _lengths_outcome(add, good) == _lengths_outcome(ref, good)
    odd = [
        "10.0.0.0",
        "10.0.0.0/",
        "/",
        "/8",
        "10.0.0.0/0024",
        "10.0.0.0/+8",
        "10.0.0.0/-8",
        "10.0.0.0/ 8",
        "10.0.0.0/8 ",
        "10.0.0.0/1_0",
        "10.0.0.0/٣",
        "\ud800/24",
        "é/24",
        "a/b/16",
        "10.0.0.0/8/",
        "10.0.0.0/x",
        "",
        42,
        0,
        -5,
        1 << 70,
        True,
        None,
        b"10.0.0.0/8",
    ]
    for text in odd:
        for prefixes in ([text], [good[0], text, good[1]]):
            assert _lengths_outcome(add, prefixes) == _lengths_outcome(ref, prefixes), text
    for _ in range(2000):
        pick = [rng.choice(good + odd) for _ in range(rng.randrange(1, 6))]
        assert _lengths_outcome(add, pick) == _lengths_outcome(ref, pick), pick


def test_integer_keys_compiled_and_python_agree_and_round_trip() -> None:
    """The IPv4 store's integer keys (``ribd.prefix_keys``): the compiled twins give
    the Python reference's keys, texts, packed keys and indexes, on random prefixes
    of every length; keys are distinct per prefix and ``1 << length | network``."""
    from ribd import prefix_keys

    rng = random.Random(7)
    texts = random_prefixes(rng, 32, 3000)
    keys = [prefix_keys.py_int_key(t) for t in texts]
    assert compiled.int_keys(texts) == keys
    assert len(set(keys)) == len(keys)
    for t, k in zip(texts[:200], keys, strict=False):
        net = ipaddress.ip_network(t)
        assert k == 1 << net.prefixlen | int(net.network_address) >> (32 - net.prefixlen)
    assert compiled.int_texts(keys) == texts == [prefix_keys.py_int_text(k) for k in keys]
    assert bytes(compiled.encode(keys, False)) == bytes(compiled.encode(texts, False))
    store = PrefixStore(32)
    store.load(texts[::2], list(range(len(texts[::2]))))
    assert compiled.find_many(store.keys, keys, False) == compiled.find_many(
        store.keys, texts, False
    )
    assert store.find_many(keys) == store.find_many(texts)


@pytest.mark.parametrize(
    "text", ["10.0.0.1/8", "10.0.0.0/33", "10.0.0.0/08", "10.0.0/8", "x/8", "10.0.0.0", "::/0"]
)
def test_a_text_that_is_not_a_canonical_ipv4_prefix_has_no_integer_key(text: str) -> None:
    from ribd import prefix_keys

    assert compiled.int_keys([text]) is None  # the Python reference then decides
    with pytest.raises(ValueError):
        prefix_keys.int_keys([text])


@pytest.mark.parametrize("key", [0, -1, 1 << 33, (1 << 40) | 5, "10.0.0.0/8", 2.0])
def test_a_value_that_is_not_an_integer_key_has_no_text(key: object) -> None:
    from ribd import prefix_keys

    assert compiled.int_texts([key]) is None
    with pytest.raises(ValueError):
        prefix_keys.int_texts([key])
    if type(key) is not str:  # (a text is encode's other input)
        assert compiled.encode([key], False) is None


def test_ipv6_integer_keys_compiled_and_python_agree_and_round_trip() -> None:
    """The IPv6 store's integer keys (129 bits at most): the compiled twins give the
    Python reference's keys, texts, packed keys and indexes, on random prefixes of
    every length and the edges (::/0, /128s, a word's last bit)."""
    from ribd import prefix_keys

    rng = random.Random(9)
    texts = [*random_prefixes(rng, 128, 3000), "::/0", "::/128", "::1/128", "ffff::/16"]
    texts += ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", "0:0:0:1::/64", "0:0:0:1:8000::/65"]
    texts = list(dict.fromkeys(str(ipaddress.ip_network(t)) for t in texts))
    keys = [prefix_keys.py_int_key(t, 128) for t in texts]
    assert compiled.int_keys(texts, True) == keys == prefix_keys.int_keys(texts, 128)
    assert len(set(keys)) == len(keys)
    for t, k in zip(texts, keys, strict=True):
        net = ipaddress.ip_network(t)
        assert k == 1 << net.prefixlen | int(net.network_address) >> (128 - net.prefixlen)
    assert (
        compiled.int_texts(keys, True) == texts == [prefix_keys.py_int_text(k, 128) for k in keys]
    )
    assert bytes(compiled.encode(keys, True)) == bytes(compiled.encode(texts, True))
    store = PrefixStore(128)
    store.load(texts[::2], list(range(len(texts[::2]))))
    assert compiled.find_many(store.keys, keys, True) == compiled.find_many(store.keys, texts, True)
    assert store.find_many(keys) == store.find_many(texts)


@pytest.mark.parametrize(
    "text", ["2001:db8::1/32", "::/129", "::/01", "2001:db8::", "x/8", "10.0.0.0/8", "::1/127"]
)
def test_a_text_that_is_not_a_canonical_ipv6_prefix_has_no_integer_key(text: str) -> None:
    from ribd import prefix_keys

    assert compiled.int_keys([text], True) is None  # the Python reference then decides
    with pytest.raises(ValueError):
        prefix_keys.int_keys([text], 128)


@pytest.mark.parametrize("key", [0, -1, 1 << 129, (1 << 140) | 5, -(1 << 100), "::/0", 2.0])
def test_a_value_that_is_not_an_ipv6_integer_key_has_no_text(key: object) -> None:
    from ribd import prefix_keys

    assert compiled.int_texts([key], True) is None
    with pytest.raises(ValueError):
        prefix_keys.int_texts([key], 128)
    if type(key) is not str:  # (a text is encode's other input)
        assert compiled.encode([key], True) is None


_announce = pytest.importorskip("ribd._announce")
py_int_key = pytest.importorskip("ribd.prefix_keys").py_int_key


def _int_store(rng: random.Random, stored: list[str]) -> PrefixStore:
    store = PrefixStore(32)
    for i, p in enumerate(stored):
        store.delta.insert(py_int_key(p), ("entry", i))
    store.merge()
    return store


@pytest.mark.parametrize("seed", range(4))
def test_the_announce_loops_search_gives_the_store_search_indexes(seed: int) -> None:
    """``ribd._announce._find_ints`` (the search of the IPv4 int keys, each within
    its /16 from a table of the keys' /16 bounds) finds what ``PrefixStore.find_many``'s
    numpy search finds: present and absent prefixes, in prefix order (searched
    from the last one found) and shuffled, prefixes crowded in one /16 beside
    empty ones, the ends of the space (0.0.0.0/0, 255.255.255.255/32), a second
    store searched between two searches of the first (the bounds made again)."""
    rng = random.Random(seed)
    stored = random_prefixes(rng, 32, 2000)
    crowded = [f"10.1.{i}.0/24" for i in range(256)] + [
        f"10.1.{i}.128/25" for i in range(0, 256, 3)
    ]
    ends = ["0.0.0.0/0", "0.0.0.0/32", "255.255.255.255/32", "255.255.0.0/16", "10.1.0.0/16"]
    stored = sorted(set(stored + crowded + ends))
    store = _int_store(rng, stored)
    other = _int_store(rng, [*random_prefixes(rng, 32, 300), "10.1.7.0/24"])
    absent = random_prefixes(rng, 32, 1000) + [f"10.1.{i}.64/26" for i in range(256)]
    absent += ["10.0.255.255/32", "10.2.0.0/16", "0.0.0.1/32", "255.255.255.254/32"]
    for wanted in (stored, stored[::-1], rng.sample(stored, len(stored)), absent + stored[::5]):
        for chunk in range(0, len(wanted), 97):
            part = [py_int_key(p) for p in wanted[chunk : chunk + 97]]
            rng.shuffle(part) if chunk % 2 else None
            got = _announce.find_ints(store.keys, part)
            assert got == store.find_many(part)
            if chunk % 3 == 0:  # another store's keys in between
                theirs = [py_int_key(p) for p in ("10.1.7.0/24", "10.1.8.0/24")]
                assert _announce.find_ints(other.keys, theirs) == other.find_many(theirs)


def test_the_announce_loops_search_declines_what_is_not_an_int_key() -> None:
    """Texts, out-of-range ints and an empty store: None (the caller asks the store)."""
    store = _int_store(random.Random(1), ["10.0.0.0/8", "10.1.0.0/16"])
    assert _announce.find_ints(store.keys, ["10.0.0.0/8"]) is None
    assert _announce.find_ints(store.keys, [0]) is None
    assert _announce.find_ints(store.keys, [1 << 33]) is None
    assert _announce.find_ints(store.keys, [-5]) is None
    assert _announce.find_ints(PrefixStore(32).keys, [py_int_key("10.0.0.0/8")]) is None
    assert _announce.find_ints(store.keys, []) == []
