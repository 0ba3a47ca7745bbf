"""The format 2 loader's vectorised de-duplication: equal rows found exactly, equal
values one object (``ribd.snapshot_v2_load``, ``ribd.snapshot_v2._shared``)."""

from __future__ import annotations

import numpy as np

from ribd.snapshot_v2 import _shared
from ribd.snapshot_v2_load import _first_equal_columns, _first_equal_rows, _first_of


def _first_by_dict(rows: np.ndarray) -> list[int]:
    seen: dict = {}
    return [seen.setdefault(r, i) for i, r in enumerate(map(tuple, rows.tolist()))]


def test_first_of_gives_each_values_first_index() -> None:
    values = np.array([7, 3, 7, 2**40, 3, 3, 2**40, 0], dtype=np.int64)
    assert _first_of(values).tolist() == [0, 1, 0, 3, 1, 1, 3, 7]


def test_equal_columns_find_the_same_first_rows_as_a_dict() -> None:
    rng = np.random.default_rng(11)
    limits = [1 << 32, 50, 3]
    rows = np.stack(
        [
            rng.choice([-1, 0, 100, (1 << 32) - 1], 5000),
            rng.integers(-1, 50, 5000),
            rng.integers(-1, 3, 5000),
        ],
        axis=1,
    ).astype(np.int64)
    expected = _first_by_dict(rows)
    assert _first_equal_columns(list(rows.T), limits).tolist() == expected
    assert _first_equal_rows(list(rows.T)).tolist() == expected


def test_equal_columns_too_wide_for_one_key_fall_back_to_row_hashes() -> None:
    rows = np.array([[5, 1 << 40], [5, 1 << 40], [5, 2]], dtype=np.int64)
    assert _first_equal_columns(list(rows.T), [1 << 32, 1 << 41]).tolist() == [0, 0, 2]


def test_equal_columns_of_no_rows_are_empty() -> None:
    empty = list(np.zeros((0, 3), dtype=np.int64).T)
    assert _first_equal_columns(empty, [4, 4, 4]).tolist() == []


def test_shared_values_are_one_object_each_and_none_is_none() -> None:
    values = np.array([70000, -1, 70000, 5, -1, 1 << 33], dtype=np.int64)
    got = _shared(values, none=-1)
    assert got == [70000, None, 70000, 5, None, 1 << 33]
    assert got[0] is got[2]
    assert _shared(np.zeros(0, dtype=np.uint32)) == []
