"""Address ranges of the prefixes changed since a compiled view was built.

Addresses inside them are answered by the exact per-flow path, not by the
view (``attribution.fastpath``); kept per view, extended with each new
change only.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class ChangedRanges:
    """Address ranges of the prefixes changed since a view was built, merged.

    Kept per view and extended with each new change only (never recomputed
    per batch): under churn a batch pays one searchsorted, not a pass over
    the change log.
    """

    v4: bool
    seq: int  # RIB change number up to which changes are included
    starts: np.ndarray  # sorted, disjoint
    lasts: np.ndarray  # inclusive ends

    @classmethod
    def empty(cls, v4: bool, seq: int = 0) -> ChangedRanges:
        dtype = np.uint32 if v4 else np.uint64
        return cls(v4, seq, np.zeros(0, dtype=dtype), np.zeros(0, dtype=dtype))

    def extend(self, prefixes: list[str], seq: int) -> ChangedRanges:
        if not prefixes:
            return ChangedRanges(self.v4, seq, self.starts, self.lasts)
        v4 = self.v4
        bounds = [_prefix_range(p, v4)[:2] for p in set(prefixes)]
        dtype = np.uint32 if v4 else np.uint64
        limit = (1 << (32 if v4 else 64)) - 1
        starts = np.concatenate([self.starts, np.array([b[0] for b in bounds], dtype=dtype)])
        lasts = np.concatenate(
            [self.lasts, np.array([min(b[1] - 1, limit) for b in bounds], dtype=dtype)]
        )
        order = np.argsort(starts, kind="stable")
        starts, lasts = starts[order], lasts[order]
        reach = np.maximum.accumulate(lasts)  # furthest end so far
        first = np.ones(len(starts), dtype=bool)  # a range that opens a merged group
        first[1:] = starts[1:] > reach[:-1]
        group_ends = np.append(np.nonzero(first)[0][1:] - 1, len(starts) - 1)
        return ChangedRanges(v4, seq, starts[first], reach[group_ends])

    def mask(self, keys: np.ndarray) -> np.ndarray:
        """True for each key inside a changed prefix."""
        if not len(self.starts):
            return np.zeros(len(keys), dtype=bool)
        i = np.searchsorted(self.starts, keys, side="right") - 1
        ok = i >= 0
        out = np.zeros(len(keys), dtype=bool)
        out[ok] = keys[ok] <= self.lasts[i[ok]]
        return out


def _prefix_range(prefix: str, v4: bool) -> tuple[int, int, int]:
    """(start, end, length) of a prefix on the interval axis (v4: 32 bits, v6: upper 64)."""
    net, _, length_text = prefix.partition("/")
    length = int(length_text)
    if v4:
        start = int.from_bytes(socket.inet_pton(socket.AF_INET, net), "big")
        return start, start + (1 << (32 - length)), length
    start = int.from_bytes(socket.inet_pton(socket.AF_INET6, net)[:8], "big")
    return start, start + (1 << (64 - min(length, 64))), length
