"""The compiled decoder's memos, in Python: the reference of ``ribd/_rawattrs_memo.pxi``.

Why they exist: an attribute value that repeats across UPDATEs (a next hop, an
AS path, a community or cluster list) is decoded once and its value handed
again for the same octets, the very object (the interner's router-part memo
keys on those objects). ``ribd.rawattrs``' dicts do that for the Python
decoder; the compiled one keeps direct-mapped tables instead, keyed by a
cheap hash of the octets where they lie, so that a hit makes no bytes object
and runs no siphash (see the .pxi). This module states what those tables do,
slot by slot, for tests/ribd/test_decoder_memo.py to compare with.
"""

from __future__ import annotations

# The memos, in the order of the compiled module's kinds ("hops": IPv4
# addresses, next hops and ORIGINATOR_IDs; "hops6": IPv6 next hops), and each one's
# number of slots as a power of two: communities as many as the dicts'
# MEMO_SIZE (2**16), the rest fewer (a router has few distinct next hops and
# cluster lists; a 2-octet AS path is a rare session's). 4-octet AS paths 2**18
# (stop 39, late17): sixteen routers of the varied real table carry some 300 k
# distinct paths (estimated), and in 2**16 slots router 17 found 23% of its
# paths (77% decoded again, each a new object the interner compared item by
# item with its core's); in 2**18, 58%. The memory: 6 MB of slots and at most 2**18 keys of
# ~60 bytes (~16 MB) a process, ~16 MB more than 2**16 held; the values are the
# interner's cores' paths (``ribd/_rawattrs_memo.pxi``'s hand-back).
MEMO_KINDS = ("hops", "paths4", "paths2", "communities", "clusters", "hops6", "extended")
MEMO_BITS = (14, 18, 12, 16, 12, 12, 12)

_M64 = (1 << 64) - 1


def memo_hash(key: bytes) -> int:
    """The 64-bit hash the compiled memos pick a slot with: the length, then
    each 8-octet word (little-endian; the last one zero-padded) mixed in."""
    n = len(key)
    h = (n * 0x9E3779B97F4A7C15) & _M64
    for at in range(0, n, 8):
        w = int.from_bytes(key[at : at + 8], "little")
        h = ((h ^ w) * 0xBF58476D1CE4E5B9) & _M64
        h ^= h >> 29
    h = (h * 0x94D049BB133111EB) & _M64
    h ^= h >> 32
    return h


class DirectMemo:
    """One memo: ``2**bits`` slots, a key's slot its hash's low bits; a slot
    holds one (hash, key, value), replaced by the next key kept there."""

    def __init__(self, bits: int) -> None:
        self.mask = (1 << bits) - 1
        self.slots: list[tuple[int, bytes, object] | None] = [None] * (1 << bits)
        self.hits = self.misses = 0

    def find(self, key: bytes) -> object | None:
        """The value kept for ``key``, or None."""
        h = memo_hash(key)
        held = self.slots[h & self.mask]
        if held is not None and held[0] == h and held[1] == key:
            self.hits += 1
            return held[2]
        self.misses += 1
        return None

    def keep(self, key: bytes, value: object) -> None:
        h = memo_hash(key)
        self.slots[h & self.mask] = (h, key, value)

    def probe(self, key: bytes, value: object = None) -> object | None:
        """``find``; on a miss, ``value`` (unless None) kept for ``key``."""
        got = self.find(key)
        if got is None and value is not None:
            self.keep(key, value)
        return got

    def items(self) -> list[tuple[int, bytes, object]]:
        return [(i, s[1], s[2]) for i, s in enumerate(self.slots) if s is not None]


def memos() -> dict[str, DirectMemo]:
    """A fresh set of reference memos, one per kind."""
    return {name: DirectMemo(bits) for name, bits in zip(MEMO_KINDS, MEMO_BITS, strict=True)}
