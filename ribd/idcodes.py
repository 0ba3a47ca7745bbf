"""Codes of objects by identity (``id``), for a snapshot's capture and encoding.

Why its own module: a snapshot of 64 routers codes 6.6 M attribute sets by
identity, and numbers their cores and router parts in order of first use.
With numpy that is sorts and binary searches (~23 cache misses a value);
``ribd._idcodes`` does both with a hash table of the ids. Where the compiled
module is not built, the numpy versions here give the same answers
(``tests/ribd/test_idcodes.py`` compares them).
"""

from __future__ import annotations

import numpy as np

try:  # an open-addressing table of ids, passes over codes in place (ribd/_idcodes.pyx)
    from ribd._idcodes import IdCodes as _CompiledIdCodes
    from ribd._idcodes import first_use as _compiled_first_use
    from ribd._idcodes import mark_codes as _compiled_mark
    from ribd._idcodes import recode as _compiled_recode
except ImportError:  # pragma: no cover - built wherever a C compiler is
    _CompiledIdCodes = _compiled_first_use = _compiled_mark = _compiled_recode = None


class SortedIdCodes:
    """``ribd._idcodes.IdCodes`` in numpy: the ids sorted once, then a binary
    search per id looked up."""

    def __init__(self, ids: np.ndarray, codes: np.ndarray) -> None:
        order = np.argsort(ids)
        self.ids, self.codes = ids[order], codes[order]

    def lookup(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(codes, found) of ``ids``; a code where not found is meaningless."""
        if not len(self.ids):
            return np.zeros(len(ids), np.int64), np.zeros(len(ids), bool)
        at = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        return self.codes[at], self.ids[at] == ids


def id_codes(ids: np.ndarray, codes: np.ndarray, compiled: bool = True):
    """A fixed map of ``ids`` (distinct, non-zero) to ``codes``: ``.lookup(ids)``
    gives (codes, found)."""
    if compiled and _CompiledIdCodes is not None:
        return _CompiledIdCodes(ids, codes)
    return SortedIdCodes(ids, codes)


def sorted_first_use(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``ribd._idcodes.first_use`` in numpy: two sorts."""
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty(len(first), np.int64)
    rank[order] = np.arange(len(first))
    return rank[inverse.reshape(-1)], first[order]


def first_use(ids: np.ndarray, compiled: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(numbers, firsts): each id's number in order of first use, and the place of
    each distinct id's first use."""
    if compiled and _compiled_first_use is not None:
        return _compiled_first_use(ids)
    return sorted_first_use(ids)


def _shifted(codes: np.ndarray, shift: int, size: int) -> np.ndarray:
    shifted = codes.reshape(-1) + shift
    if len(shifted) and (int(shifted.min()) < 0 or int(shifted.max()) >= size):
        bad = int(np.flatnonzero((shifted < 0) | (shifted >= size))[0])
        code = int(shifted[bad]) - shift
        raise ValueError(f"code {code} at {bad} is outside 0..{size - 1} - {shift}")
    return shifted


def mark_codes(codes: np.ndarray, shift: int, used: np.ndarray, compiled: bool = True) -> None:
    """``used[code + shift]`` set for every code of ``codes`` (int64, C-contiguous)."""
    if compiled and _compiled_mark is not None:
        _compiled_mark(codes, shift, used)
    else:
        used[_shifted(codes, shift, len(used))] = True


def recode(codes: np.ndarray, lut: np.ndarray, shift: int, compiled: bool = True) -> None:
    """``codes`` (int64, C-contiguous) renumbered in place to ``lut[code + shift]``; a
    code outside ``lut`` is refused before anything is written."""
    if compiled and _compiled_recode is not None:
        _compiled_recode(codes, lut, shift)
    else:
        np.copyto(codes, lut[_shifted(codes, shift, len(lut))].reshape(codes.shape))


__all__ = [
    "SortedIdCodes",
    "first_use",
    "id_codes",
    "mark_codes",
    "recode",
    "sorted_first_use",
]
