"""The per-prefix loops of a table load's writes (``Rib._announce``), one call each.

While a table streams in before its first merge, nearly every UPDATE takes
one of two short paths: its prefixes are all new to the store's delta (the
first router), or all hold the one entry another router's UPDATE left
(every router after it). Written as Python builtins chained (``map``,
``zip``, ``repeat``, ``set``) each costs ~50k instructions an UPDATE of six
prefixes, more than decoding it: iterator objects, a tuple per pair, a set
per check. ``ribd._ribload`` does the same loops in C; these are the
reference and the fallback where it was not built (tests/ribd/test_ribload.py
compares them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # (ribd.store imports this module's users)
    from ribd.intdelta import PyIntDelta
    from ribd.textdelta import Delta


def probe(delta: PyIntDelta | Delta, prefixes: Sequence[str]) -> tuple[list, int]:
    """Each prefix's entry in ``delta`` (a store's: ``IntDelta`` or ``Delta``;
    None: absent), and how many are absent."""
    got = list(map(delta.get, prefixes))
    return got, got.count(None)


def insert_new(
    delta: PyIntDelta | Delta, prefixes: Sequence[str], entry: object, changes: list
) -> int:
    """``entry`` for every prefix, each logged in ``changes``; how many keys
    ``delta`` gained (for prefixes it lacked: the distinct ones, a prefix
    twice in an UPDATE once)."""
    before = len(delta)
    insert, log = delta.insert, changes.append
    for prefix in prefixes:
        insert(prefix, entry)
        log(prefix)
    return len(delta) - before


def one_entry(held: list, prefixes: Sequence[str]) -> bool:
    """Whether ``held`` (the prefixes' entries) is one object throughout and no
    prefix is there twice."""
    return len(set(map(id, held))) == 1 and len(set(prefixes)) == len(prefixes)


def entry_of(slot: int, attrs: object) -> tuple:
    """The entry holding ``attrs`` at ``slot`` alone (None in the slots before).

    Compiled, a new entry of PathAttributes (``gc=False``: no cycle can pass
    through them) is also untracked by the cyclic GC: a table load leaves ~90k
    of them per router, each walked by every GC pass it lives through."""
    return (*((None,) * slot), attrs)


PY_PROBE, PY_INSERT_NEW, PY_ONE_ENTRY, PY_ENTRY_OF = probe, insert_new, one_entry, entry_of

with contextlib.suppress(ImportError):  # the compiled twins, where setup.py built them
    from ribd._ribload import entry_of, insert_new, one_entry, probe  # type: ignore[no-redef]
COMPILED = probe is not PY_PROBE


def first_repeat(keys: Sequence, start: int = 0) -> int:
    """The index of the first of ``keys`` (from ``start``) equal to an earlier one
    from ``start``, else ``len(keys)``. The reference; compiled
    (``ribd._repeats``) it hashes under keys a peer cannot aim at, where a set
    of IPv6 int keys was quadratic in crafted ones (see there)."""
    seen: set = set()
    for i in range(start, len(keys)):
        if keys[i] in seen:
            return i
        seen.add(keys[i])
    return len(keys)


def runs_without_repeats(
    prefixes: Sequence, path_ids: Sequence | None
) -> list[tuple[list, list | None]]:
    """An UPDATE's prefixes (and path ids, None or one each) cut into runs in
    which no prefix comes twice, in order. A wide table's writes read every
    prefix's entry before writing any (``ribd.entries.announce_wide``), and the
    prefix limit counts new prefixes once (``ribd.prefix_limit``), so a prefix
    twice is applied in a later run, over what the first wrote."""
    runs: list[tuple[list, list | None]] = []
    start, n = 0, len(prefixes)
    while start < n:
        stop = first_repeat(prefixes, start)
        ids = None if path_ids is None else list(path_ids[start:stop])
        runs.append((list(prefixes[start:stop]), ids))
        start = stop
    return runs


PY_FIRST_REPEAT = first_repeat
with contextlib.suppress(ImportError):  # compiled: hashed under keys a peer cannot aim at
    from ribd._repeats import first_repeat_in as first_repeat  # type: ignore[assignment]
