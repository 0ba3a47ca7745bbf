"""The store's arrays read from C (ribd/_storeread.pyx): a packed IPv4 key read
as one number, the keys' buffer held while they are searched, and the values'
cells found once per array (``store_cells``) where each UPDATE exported the
array's buffer. The search itself against ``PrefixStore.find_many``:
tests/ribd/test_raw_keys.py."""

from __future__ import annotations

import gc
import random

import numpy as np
import pytest

from ribd.prefix_keys import py_int_key
from tests.ribd.test_raw_keys import _int_store

_storeread = pytest.importorskip("ribd._storeread", reason="ribd/_storeread.pyx not built")


def test_a_packed_key_reads_as_its_big_endian_number():
    """``_key5`` (one load and a byte swap) against ``int.from_bytes``: random
    keys and the hostile ends (all zero, all 0xff, one bit set at each place)."""
    rng = random.Random(5)
    keys = [bytes(rng.randrange(256) for _ in range(5)) for _ in range(2000)]
    keys += [bytes(5), b"\xff" * 5]
    keys += [bytes(1 << (b % 8) if i == b // 8 else 0 for i in range(5)) for b in range(40)]
    for key in keys:
        assert _storeread.key5(key) == int.from_bytes(key, "big"), key
    # numbers order as the bytes do (the search's premise)
    ordered = sorted(keys)
    assert [_storeread.key5(k) for k in ordered] == sorted(_storeread.key5(k) for k in keys)
    with pytest.raises(ValueError):
        _storeread.key5(b"1234")


def test_the_keys_buffer_is_held_while_searched_and_let_go_for_others():
    """After a search the keys' buffer is held (no export per UPDATE); another
    keys array takes its place and the first is searched right again (its
    bounds made again); a keys array that is not packed IPv4 keys is declined
    and holds nothing new."""
    rng = random.Random(2)
    a = _int_store(rng, sorted({f"10.{i}.{j}.0/24" for i in range(4) for j in range(0, 256, 7)}))
    b = _int_store(rng, ["10.1.7.0/24", "192.0.2.0/24"])
    want = [py_int_key(p) for p in ("10.1.7.0/24", "10.3.14.0/24", "10.9.0.0/24")]
    for keys, store in ((a.keys, a), (b.keys, b), (a.keys, a), (a.keys, a)):
        assert _storeread.find_ints(keys, want) == store.find_many(want)
        assert _storeread.bounds_held()
    assert _storeread.find_ints(np.zeros(3, np.int64), want) is None  # not 5-byte keys
    assert _storeread.find_ints(a.keys, want) == a.find_many(want)


def test_the_values_cells_are_found_once_per_array():
    """``store_cells``: an array's cells and length, with one buffer export per
    array however often it is asked (fails before: an export per UPDATE); two
    arrays asked in turn (two families) keep theirs."""
    a = np.empty(7, dtype=object)
    b = np.empty(3, dtype=object)
    start = _storeread.cells_lookups()
    for _ in range(5):
        assert _storeread.cells_of(a) == (a.__array_interface__["data"][0], 7)
        assert _storeread.cells_of(b) == (b.__array_interface__["data"][0], 3)
    assert _storeread.cells_lookups() - start == 2


def test_a_freed_array_is_not_taken_for_a_new_one():
    """An array freed (a merge made new ones) and another made, perhaps at its
    address, with another length: the new one's own cells and length, never
    the freed one's (weak references, not addresses)."""
    for n in range(1, 40):
        old = np.empty(n, dtype=object)
        assert _storeread.cells_of(old)[1] == n
        del old
        gc.collect()
        new = np.empty(n + 5, dtype=object)
        assert _storeread.cells_of(new) == (new.__array_interface__["data"][0], n + 5)


@pytest.mark.parametrize(
    "values",
    [
        np.zeros(4, np.int64),  # not objects
        np.empty((2, 2), dtype=object),  # not one dimension
        np.empty(8, dtype=object)[::2],  # not contiguous
    ],
    ids=["ints", "2-d", "strided"],
)
def test_values_that_are_not_a_flat_object_array_are_refused(values):
    before = _storeread.cells_lookups()
    with pytest.raises((TypeError, BufferError, ValueError)):
        _storeread.cells_of(values)
    assert _storeread.cells_lookups() == before
