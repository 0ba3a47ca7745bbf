"""One check that two compiled views are the same, for the tests that build a
view two ways (batched and alone, compiled and Python, late and from scratch)."""

from __future__ import annotations

import numpy as np

VIEW_COLUMNS = (
    "starts", "leaf", "nets", "nets_low", "lengths", "path_ids", "attribute_index",
    "answer", "long_v6",
)  # fmt: skip


def assert_same_view(a, b, what) -> None:
    """``a`` and ``b`` (CompiledView or None) equal column for column, dtypes
    included, with the same answer rows and the same attribute set objects."""
    assert (a is None) == (b is None), what
    if a is None:
        return
    assert a.signature == b.signature and a.seq == b.seq, what
    for name in VIEW_COLUMNS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), (what, name)
    assert np.array_equal(a.answers.rows, b.answers.rows), what
    assert [id(s) for s in a.attribute_sets] == [id(s) for s in b.attribute_sets], what
