"""How the attribute interner keys what it holds: a core's fields, their hash and digest.

Split out of ``ribd.interner`` (the intern path) so that its snapshot loading
(``ribd.interner_load``), its collection (``ribd.interner_collect``) and its
compiled twin (``ribd._intern``) share one definition of each key.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import blake2b
from operator import attrgetter

import orjson

from ribd.attributes import CORE_FIELDS, PathCore


def _digest(values: tuple) -> bytes:
    """160 bits of a BLAKE2b of the JSON of ``values``: the key of a core whose
    ``hash()`` another core already has, and of a set past SCAN_VARIANTS.

    Cryptographic rather than ``hash()`` of a tuple: AS numbers and
    communities come from the network, and colliding Python hashes are easy
    to craft. The full digest cut to 160 bits rather than ``digest_size=20``:
    parsing that keyword costs more than hashing a row. Digests live in one
    process only.
    """
    return blake2b(orjson.dumps(values)).digest()[:20]


# A core's fields in core_key's order, read in one C call.
_core_fields = attrgetter(*CORE_FIELDS)
_own_fields = attrgetter("next_hop", "communities", "policy")  # a RouterPart's


def _hashable(part: tuple) -> tuple:
    """A core's fields with decoded lists made tuples (the JSON path may hand
    segments and communities as lists); equal values, so equal cores."""
    (path, origin, med, large, ext, atomic, aggr) = part
    path = tuple([(kind, tuple(numbers)) for kind, numbers in path])
    return (path, origin, med, tuple(map(tuple, large)), tuple(ext), atomic, aggr)


def core_part(row: Sequence) -> tuple:
    """The shared core's fields of a set given as its row (make_attributes'
    order), hashable, in ``CORE_FIELDS`` order."""
    (path, origin, _, _, med, _, large, ext, _, _, atomic, aggr) = row
    part = (path, origin, med, large, ext, atomic, aggr)
    try:
        hash(part)
    except TypeError:
        return _hashable(part)
    return part


def core_key(row: Sequence) -> int:
    """The ``hash()`` of a set's core part (``core_part``): where its core is
    first looked for (``AttributeInterner``)."""
    return hash(core_part(row))


# Slots of each direct-mapped cache (a power of two). A full table has ~52k
# distinct AS numbers, but most of the sharing is of the frequent ones: 2^14
# slots share ~90% of what 2^16 do, and a small list stays in the CPU caches.
SHARE_SLOTS = 1 << 14
# Whole AS paths and community lists: a table has ~100k distinct paths and
# tens of thousands of community lists, and the sets sharing one come from
# different routers, far apart in the feed.
LARGE_SLOTS = 1 << 16
_EMPTY = -1  # an empty slot: equal to no value, and an int like the values


def core_row(c: PathCore) -> tuple:
    """A core's fields in ``core_key``'s order."""
    return _core_fields(c)


def row_part(row: Sequence) -> tuple:
    """The per-router fields of a row in ``AttributeInterner._make``'s order."""
    return (row[2], row[3], row[5], row[8], row[9])
