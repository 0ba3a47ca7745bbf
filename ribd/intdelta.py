"""The stores' deltas (prefix key -> entry): the Python reference of
``ribd._intdelta.IntDelta`` (IPv4) and ``ribd._intdelta6.IntDelta6`` (IPv6)
and the fallback where they were not built.

The interface every reader of an IPv4 store's delta uses (``ribd.store``,
``ribd.rib``, ``ribd.ribload``, ``ribd.entries``, the maintenance, and the
compiled loops through ``ribd/_intdelta.pxd``): ``get``, ``has_key``,
``insert``, ``add``, ``delete``, ``keys``, ``values``, ``items``,
``snapshot``, ``lengths``, ``clear`` and ``len``; nothing else of a dict's,
so the compiled table need not emulate one. Keys are ints
``1 << length | network`` (``ribd.prefix_keys``), 1 <= key < 2**33 in an
IPv4 store, < 2**129 in an IPv6 one: another type is a TypeError, an int out
of range a ValueError (a dict took anything, so a text key in an IPv4 store
went unnoticed). The order is the insertion order (a key written again keeps
its place), as a dict's.
"""

from __future__ import annotations

import contextlib

KEY_LIMIT = 1 << 33


def check_key(key: object, bits: int = 32) -> int:
    """``key`` if it is a prefix key of the family of ``bits`` (32: IPv4, 128:
    IPv6), else the compiled table's error."""
    name = "IPv4" if bits == 32 else "IPv6"
    if not isinstance(key, int):
        raise TypeError(f"an {name} delta's key is an int, not a {type(key).__name__}")
    if not 1 <= key < 1 << (bits + 1):
        raise ValueError(f"not an {name} prefix key: {key!r}")
    return key


class PyIntDelta:
    """A dict behind the IPv4 delta's interface, with the compiled table's checks."""

    __slots__ = ("_counts", "_d")
    BITS = 32

    def __init__(self) -> None:
        self._d: dict[int, object] = {}
        self._counts = [0] * (self.BITS + 1)  # keys held per prefix length

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key: int, default: object = None) -> object:
        return self._d.get(check_key(key, self.BITS), default)

    def has_key(self, key: int) -> bool:
        return check_key(key, self.BITS) in self._d

    __contains__ = has_key

    def insert(self, key: int, value: object) -> None:
        d = self._d
        if check_key(key, self.BITS) not in d:
            self._counts[key.bit_length() - 1] += 1
        d[key] = value

    def add(self, key: int, value: object) -> bool:
        if check_key(key, self.BITS) in self._d:
            return False
        self.insert(key, value)
        return True

    def delete(self, key: int) -> None:
        del self._d[check_key(key, self.BITS)]  # (KeyError(key) if not held)
        self._counts[key.bit_length() - 1] -= 1

    def clear(self) -> None:
        self._d.clear()
        self._counts = [0] * (self.BITS + 1)

    def lengths(self) -> list[int]:
        return [n for n in range(self.BITS, -1, -1) if self._counts[n]]

    def keys(self) -> list[int]:
        return list(self._d)

    def values(self) -> list:
        return list(self._d.values())

    def items(self) -> list[tuple[int, object]]:
        return list(self._d.items())

    def snapshot(self) -> tuple[list[int], list]:
        copy = self._d.copy()  # (one C call: no write lands inside it)
        return list(copy), list(copy.values())

    @property
    def nbytes(self) -> int:
        return 0  # (not measured: the reference)

    def __repr__(self) -> str:
        return f"{'IntDelta' if self.BITS == 32 else 'IntDelta6'}({len(self._d)} keys)"


class PyIntDelta6(PyIntDelta):
    """The IPv6 delta's reference: keys 1 <= key < 2**129."""

    __slots__ = ()
    BITS = 128


IntDelta: type = PyIntDelta
IntDelta6: type = PyIntDelta6
with contextlib.suppress(ImportError):  # the compiled tables, where setup.py built them
    from ribd._intdelta import IntDelta  # type: ignore[no-redef]
with contextlib.suppress(ImportError):
    from ribd._intdelta6 import IntDelta6  # type: ignore[no-redef]
COMPILED = IntDelta is not PyIntDelta
COMPILED6 = IntDelta6 is not PyIntDelta6
