"""A delta by prefix text: the IPv6 store's delta until stop 35. No I/O.

Both stores now key their deltas by int (``ribd.intdelta``: ``IntDelta``,
``IntDelta6``). This dict with the same interface stays for what still takes
a dict as a delta: the compiled readers accept one (``ribd._intdelta``'s
``is_delta``), and their tests (tests/ribd/test_ribload.py) run on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice


def py_add_lengths(lengths: set[int], prefixes: Iterator[str]) -> None:
    """Each prefix's length into ``lengths``: ``Delta.lengths``'s step, the
    reference of ``ribd._rawkeys.add_lengths`` (compiled, where built). A
    prefix is a text or an IPv4 store's int key (``ribd.prefix_keys``)."""
    lengths.update(
        p.bit_length() - 1 if type(p) is int else int(p.rpartition("/")[2]) for p in prefixes
    )


try:
    from ribd._rawkeys import add_lengths
except ImportError:
    add_lengths = py_add_lengths


class Delta(dict):
    """Prefix text -> entry (an IPv6 store's delta until stop 35).

    A dict, with the interface the IPv4 store's delta has (``ribd.intdelta``:
    ``get``, ``has_key``, ``insert``, ``add``, ``delete``, ``keys``, ``values``,
    ``items`` as lists, ``snapshot``, ``lengths``), which every reader uses, so
    that one reader serves both stores. Keys are
    canonical prefix texts (``ribd.prefixes``): the same text is the same
    prefix. What a
    dict lacks, longest-prefix match, ``covering`` does by
    probing each prefix length the delta holds, longest first; those lengths
    are counted lazily, at the first lookup after writes, and only over the
    keys added since the last count (a dict keeps insertion order, so they
    are its last ones; a removal makes the next lookup count them all).
    """

    __slots__ = ("_counted", "_lengths")

    has_key = dict.__contains__
    insert = dict.__setitem__

    def __init__(self) -> None:
        super().__init__()
        self._lengths: set[int] = set()
        self._counted = 0  # keys counted into _lengths; -1: count them all again

    def keys(self) -> list[str]:  # type: ignore[override]
        return list(self)

    def values(self) -> list:  # type: ignore[override]
        return list(dict.values(self))

    def items(self) -> list[tuple[str, object]]:  # type: ignore[override]
        return list(dict.items(self))

    def add(self, prefix: str, entry: object) -> bool:
        """``entry`` at ``prefix`` unless held; whether it was added."""
        if dict.__contains__(self, prefix):
            return False
        dict.__setitem__(self, prefix, entry)
        return True

    def snapshot(self) -> tuple[list, list]:
        """(keys, entries) in insertion order, as of one instant (``dict.copy``
        runs in C without a thread switch)."""
        copy = dict.copy(self)
        return list(copy), list(copy.values())

    def delete(self, prefix: str) -> None:
        del self[prefix]

    def __delitem__(self, prefix: str) -> None:
        dict.__delitem__(self, prefix)
        self._counted = -1

    def pop(self, *args):  # type: ignore[no-untyped-def]
        self._counted = -1
        return dict.pop(self, *args)

    def popitem(self):  # type: ignore[no-untyped-def]
        self._counted = -1
        return dict.popitem(self)

    def clear(self) -> None:
        self._counted = -1
        dict.clear(self)

    def lengths(self) -> list[int]:
        """The prefix lengths held (maybe a few no longer held), longest first."""
        n = len(self)
        counted = self._counted
        if counted != n:
            if counted < 0 or counted > n:
                self._lengths = set()
                new: Iterator[str] = iter(self)
            else:
                new = islice(reversed(self), n - counted)
            add_lengths(self._lengths, new)  # (an int key's length: its bit length - 1)
            self._counted = n
        return sorted(self._lengths, reverse=True)
