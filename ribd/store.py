"""Prefix -> entry map of one address family: sorted arrays plus a table of new prefixes. No I/O.

Why two layers (an LSM tree's shape, in two levels):

* A pytricia trie costs ~145 bytes per prefix; two sorted numpy arrays, the
  prefixes as fixed-width byte keys and the entries as object references,
  cost 13 (IPv4) or 25 (IPv6) bytes. The arrays are the store.
* Arrays cannot take inserts cheaply, so a prefix the arrays do not hold yet
  goes into the *delta* (``ribd.intdelta``: a compiled table by prefix key), which ``merge``
  folds into the arrays (the RIB's maintenance does it once writes pause).
  A full table load fills the delta and is merged once. (The delta was a
  pytricia trie: a table load paid a trie walk per prefix to probe it and
  another to insert, and the merge two more to list it; a dict costs a
  hash each, and longest-prefix matches probe it once per prefix length
  it holds.)
* A prefix that is already in the arrays is updated in place; removing it
  leaves a *hole* (entry None) that the next merge drops. So the delta and
  the arrays never hold the same prefix, and readers never reconcile them.

Keys are the packed network address followed by one byte, length + 1: byte
order is then (address, length) order, i.e. a prefix sorts before the
prefixes it covers, and no key ends with a NUL byte (numpy's ``S`` dtype
strips trailing NULs). Prefix texts must be canonical (``ribd.prefixes``).

Both stores' deltas and their tables' change logs hold a prefix as an
integer, ``1 << length | network number`` (``10.0.0.0/8``: ``1 << 8 | 10``;
``ribd.prefix_keys``), not as its text, and the delta is not a dict but a
compiled table (``ribd.intdelta``: ``IntDelta`` of 33-bit keys for IPv4,
``IntDelta6`` of 129-bit ones for IPv6; the key's bits and the entry in one
slot, one cache line an operation where a dict read three): the load's
decoder makes a key from the NLRI octets in a few instructions (no text
formatted, no siphash), and packing it for the merge needs no parse. Every
method here takes a text or that integer (``key_of`` makes one from the
other) and hands texts out (``items``, ``covering``): readers never see the
integers, except the RIB's write paths (``ribd.rib``, ``ribd._apply``), which
write them. (The IPv6 delta was a dict by text, ``ribd.textdelta.Delta``,
until stop 35.)

Not thread-safe: the RIB's lock guards every call, as it did the trie.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from itertools import repeat

import numpy as np

from ribd.intdelta import IntDelta, IntDelta6
from ribd.prefix_keys import int_keys, int_texts, py_int_key, py_int_text

try:  # compiled key search (setup.py builds it where a C compiler is): same indexes
    from ribd._rawkeys import encode as _compiled_encode
    from ribd._rawkeys import find_many as _compiled_find_many
except ImportError:
    _compiled_encode = _compiled_find_many = None
COMPILED_FIND = _compiled_find_many is not None
try:  # compiled walks of the covering keys (ribd/_covering.pyx): same keys, same order
    from ribd._covering import bucket_starts as _compiled_buckets
    from ribd._covering import covering_indices as _compiled_covering
    from ribd._covering import delta_covering4 as _compiled_delta4
    from ribd._intdelta import IntDelta as _CompiledIntDelta
except ImportError:
    _compiled_buckets = _compiled_covering = _compiled_delta4 = _CompiledIntDelta = None


_LENGTH_BYTE = {str(n): bytes((n + 1,)) for n in range(129)}
# Prefixes per C loop in the merges' bulk steps: each loop holds the GIL, so a
# reader waits at most one chunk's time (~50 ms), not a whole table's.
GIL_CHUNK = 32_768
_pton = socket.inet_pton
_ntop = socket.inet_ntop
_from_bytes = int.from_bytes


class PrefixStore:
    """The prefixes of one family and the entry held at each."""

    __slots__ = (
        "_addr_bytes",
        "_af",
        "_buckets",
        "bits",
        "delta",
        "holes",
        "int_keys",
        "keys",
        "values",
        "width",
    )

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self._af = socket.AF_INET if bits == 32 else socket.AF_INET6
        self._addr_bytes = bits // 8
        self.width = self._addr_bytes + 1
        self.keys = np.empty(0, dtype=f"S{self.width}")  # sorted; replaced, never mutated
        self.values = np.empty(0, dtype=object)  # entry per key; None: a hole
        self.holes = 0
        self.int_keys = True  # the delta's and change log's keys: ints (ribd.prefix_keys)
        self.delta = self.new_delta()  # prefixes not in ``keys``
        self._buckets: tuple[np.ndarray, bytearray] | None = None  # (keys, their buckets)

    def buckets(self) -> bytearray | None:
        """Where the keys of each first 16 bits start (``_covering.bucket_starts``),
        built once per keys array; None where the compiled walks were not built.
        Read under the RIB lock (the batch's exact lookups)."""
        if _compiled_buckets is None:
            return None
        held = self._buckets
        keys = self.keys
        if held is None or held[0] is not keys:
            held = self._buckets = (keys, _compiled_buckets(keys))
        return held[1]

    def new_delta(self) -> IntDelta | IntDelta6:
        """An empty delta: by int key, a compiled table (``ribd.intdelta``) of
        33-bit keys in an IPv4 store, of 129-bit ones in an IPv6 one."""
        return IntDelta() if self.bits == 32 else IntDelta6()

    def __len__(self) -> int:
        """Prefixes held."""
        return len(self.keys) - self.holes + len(self.delta)

    def has_delta(self) -> bool:
        """Whether the delta holds any prefix."""
        return len(self.delta) > 0

    # -- keys ----------------------------------------------------------------

    def key_of(self, prefix: str | int) -> str | int:
        """The delta's key of a prefix given as text or as that key already."""
        if self.int_keys and type(prefix) is str:
            return py_int_key(prefix, self.bits)
        return prefix

    def keys_of(self, prefixes) -> list | tuple:  # type: ignore[no-untyped-def]
        """``key_of`` of many: the RIB's write paths convert an event's texts once."""
        if self.int_keys and prefixes and type(prefixes[0]) is str:
            return int_keys(prefixes, self.bits)
        return prefixes

    def text_of(self, key: str | int) -> str:
        """The text of a delta key (or of a text)."""
        return py_int_text(key, self.bits) if type(key) is int else key  # type: ignore[return-value]

    def texts_of(self, keys: list) -> list[str]:
        """``text_of`` of many (the change log's readers get texts)."""
        if self.int_keys and keys and type(keys[0]) is int:
            return int_texts(keys, self.bits)
        return keys

    def key(self, prefix: str | int) -> bytes:
        if type(prefix) is int:
            n = prefix.bit_length() - 1
            bits = self.bits
            return ((prefix ^ (1 << n)) << (bits - n)).to_bytes(bits // 8, "big") + bytes((n + 1,))
        address, _, length = prefix.partition("/")  # type: ignore[union-attr]
        return _pton(self._af, address) + _LENGTH_BYTE[length]

    def encode(self, prefixes: list[str]) -> np.ndarray:
        """Keys of many canonical prefix texts, in C loops.

        A chunk at a time: each C loop holds the GIL throughout, and a whole
        table's (~1 s) held every other thread (Resolve, the feed) for as
        long during the merge that follows a load.
        """
        if len(prefixes) <= GIL_CHUNK:
            return self._encode(prefixes)
        return np.concatenate(
            [self._encode(prefixes[i : i + GIL_CHUNK]) for i in range(0, len(prefixes), GIL_CHUNK)]
        )

    def _encode(self, prefixes: list[str]) -> np.ndarray:
        # Split from ``encode``, which is the merges' (tests count merges by it).
        if _compiled_encode is not None:  # ribd/_rawkeys.pyx: the same keys, built in C
            packed = _compiled_encode(prefixes, self._addr_bytes == 16)
            if packed is not None:
                return np.frombuffer(packed, dtype=f"S{self.width}")
        if prefixes and type(prefixes[0]) is int:
            prefixes = [py_int_text(k, self.bits) for k in prefixes]
        n = len(prefixes)
        out = np.empty((n, self.width), dtype=np.uint8)
        if n:
            parts = "/".join(prefixes).split("/")
            packed = b"".join(map(_pton, repeat(self._af), parts[0::2]))
            out[:, :-1] = np.frombuffer(packed, dtype=np.uint8).reshape(n, self._addr_bytes)
            lengths = b"".join(map(_LENGTH_BYTE.__getitem__, parts[1::2]))
            out[:, -1] = np.frombuffer(lengths, dtype=np.uint8)
        return out.view(f"S{self.width}").reshape(n)

    def text(self, key: bytes) -> str:
        """The prefix text of a key (as numpy hands it out)."""
        return f"{_ntop(self._af, key[:-1])}/{key[-1] - 1}"

    def texts(self, keys: np.ndarray) -> list[str]:
        raw = keys.view(np.uint8).reshape(len(keys), self.width)
        addrs = raw[:, :-1].tobytes()
        step = self._addr_bytes
        af = self._af
        return [
            f"{_ntop(af, addrs[i : i + step])}/{length}"
            for i, length in zip(range(0, len(addrs), step), (raw[:, -1] - 1).tolist(), strict=True)
        ]

    # -- reading -------------------------------------------------------------

    def find(self, prefix: str | int) -> int:
        """Index of ``prefix`` in the arrays, or -1 (a hole's index is returned)."""
        keys = self.keys
        if not len(keys):
            return -1
        if _compiled_find_many is not None:
            found = _compiled_find_many(keys, (prefix,), self._addr_bytes == 16)
            if found is not None:
                return found[0]
        k = self.key(prefix)
        i = int(keys.searchsorted(k))
        return i if i < len(keys) and keys[i] == k else -1

    def find_many(self, prefixes: tuple[str, ...] | list[str]) -> list[int]:
        """``find`` of each prefix, in a few numpy calls for all of them.

        A scalar ``find`` costs ~2 us (a key, a numpy searchsorted and a
        compare, each a call with its own overhead): loading a table the
        arrays already hold (every router after the first) spent more time
        finding its prefixes than storing them.
        """
        keys = self.keys
        if not len(keys) or not prefixes:
            return [-1] * len(prefixes)
        if _compiled_find_many is not None:  # ribd/_rawkeys.pyx: C keys, a memcmp search
            found = _compiled_find_many(keys, prefixes, self._addr_bytes == 16)
            if found is not None:
                return found
        wanted = self._encode(list(prefixes))
        at = keys.searchsorted(wanted)
        at[at >= len(keys)] = 0
        return np.where(keys[at] == wanted, at, -1).tolist()

    def get(self, prefix: str) -> object:
        """The entry at exactly ``prefix``, or None."""
        return self.locate(prefix)[1]

    def locate(self, prefix: str) -> tuple[int, object]:
        """(index in the arrays, or -1 when in the delta or absent; the entry or None).

        The index lets a writer store at once (``set_at``) what it read here,
        without finding the prefix again.
        """
        delta = self.delta
        if self.int_keys and type(prefix) is str:
            prefix = py_int_key(prefix, self.bits)
        if delta.has_key(prefix):
            return -1, delta.get(prefix)
        i = self.find(prefix)
        return i, (None if i < 0 else self.values[i])

    def items(self) -> list[tuple[str, object]]:
        """Every (prefix, entry), arrays first (sorted), then the delta's."""
        keys, values = self.keys, self.values
        live = np.flatnonzero(values != None) if self.holes else None  # noqa: E711 (elementwise)
        if live is not None:
            keys, values = keys[live], values[live]
        out = list(zip(self.texts(keys), values.tolist(), strict=True))
        keys, entries = self.delta.snapshot()
        out.extend(zip(int_texts(keys, self.bits) if self.int_keys else keys, entries, strict=True))
        return out

    def prefixes(self) -> list[str]:
        return [p for p, _ in self.items()]

    def covering(self, address: str | bytes) -> Iterator[tuple[str, int, object]]:
        """(prefix, length, entry) of every prefix holding ``address``, longest first.

        ``address`` is packed (4 or 16 bytes) or text, optionally ``net/len``
        (then prefixes covering the whole of it). Both layers are walked and
        their answers interleaved by length; they never hold the same prefix.
        """
        delta = self.delta
        if self.has_delta():
            from_delta = self._covering_delta(delta, address)
            from_arrays = self._covering_arrays(address)
            d = next(from_delta, None)
            a = next(from_arrays, None)
            while d is not None or a is not None:
                if a is None or (d is not None and d[1] > a[1]):
                    yield d  # type: ignore[misc]
                    d = next(from_delta, None)
                else:
                    yield a
                    a = next(from_arrays, None)
        else:
            yield from self._covering_arrays(address)

    def _address_packed(self, address: str | bytes) -> tuple[bytes, int]:
        """``address`` (packed octets, or a text address or prefix) packed, and
        the longest prefix length a covering prefix may have."""
        if isinstance(address, bytes):
            return address, self.bits
        text, _, length = address.partition("/")
        return _pton(self._af, text), int(length) if length else self.bits

    def _address_bits(self, address: str | bytes) -> tuple[int, int]:
        """``_address_packed`` with the address as an integer."""
        packed, limit = self._address_packed(address)
        return _from_bytes(packed, "big"), limit

    def _covering_delta(
        self, delta: IntDelta | IntDelta6, address: str | bytes
    ) -> Iterator[tuple[str, int, object]]:
        """The delta's prefixes holding ``address``, longest first: one dict
        probe per length the delta holds (the text of the address cut to it)."""
        bits = self.bits
        a, limit = self._address_bits(address)
        size, af, get = self._addr_bytes, self._af, delta.get
        if self.int_keys:
            if _compiled_delta4 is not None and type(delta) is _CompiledIntDelta and a >> 32 == 0:
                found = _compiled_delta4(delta, a, limit)  # the same probes, in C
            else:
                found = (
                    (length, entry)
                    for length in delta.lengths()
                    if length <= limit
                    and (entry := get(1 << length | a >> (bits - length))) is not None
                )
            for length, entry in found:
                cut = a >> (bits - length) << (bits - length)
                yield f"{_ntop(af, cut.to_bytes(size, 'big'))}/{length}", length, entry
            return
        for length in delta.lengths():
            if length > limit:
                continue
            cut = a >> (bits - length) << (bits - length)
            prefix = f"{_ntop(af, cut.to_bytes(size, 'big'))}/{length}"
            entry = get(prefix)
            if entry is not None:
                yield prefix, length, entry

    def _covering_arrays(self, address: str | bytes) -> Iterator[tuple[str, int, object]]:
        """The arrays' prefixes holding ``address``, longest first: the compiled
        walk (``ribd._covering``) where it was built, else ``_covering_walk``."""
        keys, values = self.keys, self.values
        if _compiled_covering is None or not len(keys):
            yield from self._covering_walk(address)
            return
        packed, limit = self._address_packed(address)
        if len(packed) != self._addr_bytes:
            yield from self._covering_walk(address)  # (what it makes of such an address)
            return
        for i, length in _compiled_covering(keys, packed, limit):
            value = values[i]
            if value is not None:
                yield self.text(keys[i]), length, value

    def _covering_walk(self, address: str | bytes) -> Iterator[tuple[str, int, object]]:
        """Longest match by binary search, then shorter ones (the reference).

        The last key <= (address, limit) either holds the address or shares
        only its first ``c`` bits with it; then no key between can hold it,
        and the next candidate is the last key <= (address cut to c, c).
        """
        keys, values = self.keys, self.values
        n = len(keys)
        if not n:
            return
        bits = self.bits
        a, limit = self._address_bits(address)
        size = self._addr_bytes
        search = keys.searchsorted
        while limit >= 0:
            cut = a >> (bits - limit) << (bits - limit)
            i = int(search(cut.to_bytes(size, "big") + bytes((limit + 1,)), side="right")) - 1
            if i < 0:
                return
            k = keys[i]
            net = _from_bytes(k[:-1], "big")
            length = k[-1] - 1
            if (a ^ net) >> (bits - length) == 0:
                value = values[i]
                if value is not None:
                    yield self.text(k), length, value
                limit = length - 1
            else:
                limit = min(limit, bits - (a ^ net).bit_length())

    # -- writing -------------------------------------------------------------

    def set(self, prefix: str | int, entry: object) -> None:
        """Store ``entry`` at ``prefix`` (a text or its delta key); None removes it."""
        delta = self.delta
        if self.int_keys and type(prefix) is str:
            prefix = py_int_key(prefix, self.bits)
        if delta.has_key(prefix):
            if entry is None:
                delta.delete(prefix)
            else:
                delta.insert(prefix, entry)
            return
        i = self.find(prefix)
        if i < 0:
            if entry is not None:
                delta.insert(prefix, entry)
            return
        self.set_at(i, entry)

    def set_at(self, i: int, entry: object) -> None:
        """Store ``entry`` (None: remove) at index ``i`` of the arrays."""
        values = self.values
        old = values[i]
        values[i] = entry
        self.holes += (entry is None) - (old is None)

    def merge(self) -> int:
        """Fold the delta into the arrays and drop holes; returns prefixes moved."""
        if self.has_delta():
            texts, values = self.read_delta()
            self.fold(self.delta, self.encode(texts), values)
            return len(texts)
        if self.holes:
            self.fold(self.delta, self.keys[:0], self.values[:0])
        return 0

    def read_delta(self) -> tuple[list, np.ndarray]:
        """The delta's keys (texts, or ints: ``encode`` takes both) and their
        entries (an object array), as of one instant: either delta's
        ``snapshot`` copies them in C without a thread switch, so the merge may
        call this with the lock free while writes go on (it checks the table's
        write count under the lock before it folds)."""
        keys, entries = self.delta.snapshot()
        return keys, np.fromiter(entries, dtype=object, count=len(entries))

    def fold(self, delta: IntDelta | IntDelta6, keys: np.ndarray, values: np.ndarray) -> None:
        """Replace ``delta`` (the current one), whose contents are ``keys``/``values``,
        by new arrays holding them too; drop holes.

        Split from ``merge`` so that a caller can read the delta and encode
        its keys outside its lock, and only fold under it (``Rib.maintenance``).
        """
        assert delta is self.delta
        base_keys, base_values = self.keys, self.values
        if self.holes:
            live = np.flatnonzero(base_values != None)  # noqa: E711 (elementwise)
            base_keys, base_values = base_keys[live], base_values[live]
        if len(keys):
            order = np.argsort(keys, kind="stable")
            keys, values = keys[order], values[order]
            at = base_keys.searchsorted(keys)
            base_keys = np.insert(base_keys, at, keys)
            base_values = np.insert(base_values, at, values)
            self.delta = self.new_delta()
        self.keys, self.values, self.holes = base_keys, base_values, 0
        self._buckets = None  # (they held the keys replaced)

    def load_sorted(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Fill an empty store from keys already checked to be valid, sorted and
        distinct (a format 2 snapshot's), and their entries (an object array)."""
        self.keys, self.values, self.holes = keys.astype(f"S{self.width}"), values, 0
        self._buckets = None  # (they held the keys replaced)
        self.delta = self.new_delta()

    def load(self, prefixes: list[str], entries: list[object]) -> str | None:
        """Fill an empty store (a snapshot load); returns a prefix given twice, or None."""
        keys = self.encode(prefixes)
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        twice = np.flatnonzero(keys[1:] == keys[:-1])
        if len(twice):
            return self.text(keys[int(twice[0])])
        values = np.fromiter(entries, dtype=object, count=len(entries))[order]
        self.keys, self.values, self.holes = keys, values, 0
        self._buckets = None  # (they held the keys replaced)
        self.delta = self.new_delta()
        return None
