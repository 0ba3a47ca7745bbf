"""The attribute interner's per-core index: a core's set found by its router part in O(1).

Why: a core's list (``AttributeInterner._cores``) holds one set per router
that carries the path, and finding a router's set was a scan comparing each
set's ``own`` (router part) with the new one: O(routers) an UPDATE. With 64
routers on the realistic real table (a tenth), router 64's parse cost 2.3x
router 1's, ``intern`` and its compares most of the difference (stop 30
wide1, stop 31 intern2: BENCHMARKS.md). Past ``INDEX_PAST`` sets, a core's
list gets an index here; lists that short are still scanned.

The index is an ``array('H')``: slot 0 holds the length of the list it
covers (``len(held)``), slots 1..m an open-addressing table (linear
probing from slot ``((h & 0xFFFFFFFF) * m) >> 32``, so any m; at most 7/8
full, rebuilt 2/3 full) of ``(tag << 9) | position``: the set's position
in the list (1..511) and 7 bits of its router part's hash ``h``, so a probe
rejects another set without reading it (each set is a cache miss, the
slots are contiguous). Two bytes a slot, ~1.3 slots a set: ~270 bytes for
a core carried by 64 routers with the array and its dict entry, against
the ~2 KB of a dict of sets. No key objects.

Not persisted and never trusted blindly: a lookup compares the set's ``own``
with the one looked for; an index that does not cover the list as it is
(``held`` appended to elsewhere, e.g. a snapshot load, or shortened by the
collection) is rebuilt from the list. Crafted hash collisions make the
probe at worst the scan of the list it replaces (at most SCAN_VARIANTS sets).
Equal router parts are found in list order (the first inserted is met
first along its probe chain), as the scan found them.

``ribd._intern`` does the same in C; both use these constants.
"""

from __future__ import annotations

from array import array

from ribd.attributes import PathAttributes, RouterPart

INDEX_PAST = 8  # a core's list of more sets than this is indexed
POS_BITS = 9
POS_MASK = (1 << POS_BITS) - 1  # positions 1..511: a longer list is scanned
TAG_MASK = 0x7F  # the tag: the hash's low 7 bits (the slot comes from bits 31 down)
# A first index's slots: 20 hold 17 sets under 7/8, so a core carried by 9 to 17
# routers (16 loading together, then a 17th) is built once, not again at its
# 15th set. Its ``array('H')`` of 21 items is 42 bytes, the same 48-byte pymalloc
# block as 16 slots' 34: no memory added (stop 38, internc).
FIRST_SLOTS = 20


def slots_for(sets: int) -> int:
    """Slots of a new index for ``sets`` sets: 2/3 full (entered sets may
    fill it to 7/8, ``added``), at least FIRST_SLOTS."""
    return max(FIRST_SLOTS, sets * 3 // 2 + 1)


def full(sets: int, m: int) -> bool:
    """Whether an index of ``m`` slots cannot take ``sets`` sets (over 7/8)."""
    return sets * 8 > m * 7


def indexable(n: int) -> bool:
    """Whether a core's list of ``n`` items (the core, then its sets) is indexed."""
    return INDEX_PAST + 1 < n <= POS_MASK + 1


def build(held: list) -> array:
    """A new index of ``held`` (the core, then its sets), as it is now."""
    n = len(held)
    ix = array("H", bytes(2 * (slots_for(n - 1) + 1)))
    ix[0] = n
    for pos in range(1, n):
        put(ix, hash(held[pos].own), pos)
    return ix


def put(ix: array, h: int, pos: int) -> None:
    """Enter position ``pos`` of a set whose router part hashes to ``h``."""
    m = len(ix) - 1
    s = ((h & 0xFFFFFFFF) * m) >> 32
    while ix[1 + s]:
        s = s + 1 if s + 1 < m else 0
    ix[1 + s] = (h & TAG_MASK) << POS_BITS | pos


def get(ix: array, held: list, h: int, own: RouterPart) -> PathAttributes | None:
    """The set of ``held`` whose router part equals ``own`` (hash ``h``), or None."""
    m = len(ix) - 1
    tag = h & TAG_MASK
    s = ((h & 0xFFFFFFFF) * m) >> 32
    while True:
        v = ix[1 + s]
        if not v:
            return None
        if v >> POS_BITS == tag:
            pos = v & POS_MASK
            # (the collection, another thread, may shorten the list meanwhile)
            if pos < len(held):
                a = held[pos]
                if a.own == own:
                    return a
        s = s + 1 if s + 1 < m else 0


def added(ix: array, held: list, attrs: PathAttributes) -> bool:
    """Enter ``attrs``, just appended to ``held``; False if the index must be
    built again (it did not cover the list before, or is full) or dropped
    (the list is past what it can index)."""
    n = len(held)
    if ix[0] != n - 1 or full(n - 1, len(ix) - 1) or n > POS_MASK + 1:
        return False
    put(ix, hash(attrs.own), n - 1)
    ix[0] = n
    return True
