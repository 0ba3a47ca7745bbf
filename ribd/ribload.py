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


def runs_without_repeats(
    prefixes: Sequence, path_ids: Sequence | None
) -> list[tuple[list, list | None]]:
    """An UPDATE's prefixes (and path ids, None or one each) cut into runs in
    which no prefix comes twice, in order. A wide table's writes read every
    prefix's entry before writing any (``ribd.entries.announce_wide``), so a
    prefix twice must be applied in a later run, over what the first wrote
    (``ribd._wide``'s ``_repeats`` says what went wrong before)."""
    runs: list[tuple[list, list | None]] = []
    seen: set = set()
    start = 0
    for i, key in enumerate(prefixes):
        if key in seen:
            runs.append(
                (list(prefixes[start:i]), None if path_ids is None else list(path_ids[start:i]))
            )
            start, seen = i, set()
        seen.add(key)
    runs.append((list(prefixes[start:]), None if path_ids is None else list(path_ids[start:])))
    return runs
