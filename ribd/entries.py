"""Wide per-prefix entries as a shared row plus a prefix's own values. No I/O.

An entry holds one value per router slot (``ribd.table``). With many routers
almost no two prefixes have equal entries: each router sends ~5% of single
prefixes another way, so at 64 routers ~96% of prefixes have some slot of
their own, and each held a private tuple as wide as the routers (568 bytes
at 64, ~9 bytes per (router, prefix)). Yet the prefixes of one base
attribute set agree in all but those few slots.

So a wide entry is an ``Overlay``: the ``row`` the prefix shares with the
other prefixes of its set (an interned tuple, as entries were), plus
``over``, the few slots where this prefix differs, as (slot, value, ...)
pairs. A write by an UPDATE that carries most of the prefixes on a row
moves the row (one new tuple for all of them); a write to a minority of a
row's prefixes becomes their own value. (The compiled writer sets the row's
slot in place instead where its reference count shows that nothing but the
UPDATE's own prefixes holds it, ``ribd/_wide_in_place.pxi``: so code that
keeps a row, or keys anything by its id, across a release of the RIB's lock
must hold a reference to it, as every such cache here does.) A prefix whose row no other prefix
holds any more is put back onto the UPDATE's main row when it differs from
it in at most ``OVERLAY_MAX`` slots.

Readers see one logical entry either way: ``slot_value`` (``ribd.reads``)
reads both kinds, and an Overlay answers ``len``, ``[i]`` and iteration as
the tuple it stands for (without trailing None) would, so code that walks
entries generically (sweeps, stale moves, snapshot capture) stays right and
writes plain tuples where it rebuilds one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice
from operator import itemgetter
from sys import getrefcount

import msgspec

# Tables with at least this many router slots keep wide entries as overlays;
# below, an entry tuple is small and often shared whole.
OVERLAY_SLOTS = 16
# Slots of its own an overlay holds before its values are folded into a row
# of its own (then it is a plain entry again).
OVERLAY_MAX = 8
_REJOINED: tuple = (None,)  # announce_wide: the prefix went onto the main row


class Overlay(msgspec.Struct, gc=False, eq=False):
    """A wide entry: ``row`` (an interned entry tuple) with this prefix's own values.

    ``over``: (slot, value, slot, value, ...), a value where it differs from
    ``row`` (None: no route in that slot here). ``gc=False``: it refers to a
    tuple of attribute sets and path sets only, so it cannot be in a cycle,
    and it is 32 bytes. Identity is equality (never interned: two prefixes
    with equal overrides on one row are rare).
    """

    row: tuple
    over: tuple

    def get(self, slot: int) -> object:
        """The value in ``slot`` (None: none)."""
        over = self.over
        # Values are attribute sets, path sets or None, never ints: a slot
        # number found in ``over`` is at a slot's place.
        if slot in over:
            return over[over.index(slot) + 1]
        row = self.row
        return row[slot] if slot < len(row) else None

    def values(self) -> list:
        """The entry as a list, one value per slot, without trailing None."""
        out = list(self.row)
        over = self.over
        for j in range(0, len(over), 2):
            s = over[j]
            if s >= len(out):
                out.extend((None,) * (s + 1 - len(out)))
            out[s] = over[j + 1]
        while out and out[-1] is None:
            out.pop()
        return out

    def __len__(self) -> int:
        return len(self.values())

    def __getitem__(self, i):
        return tuple(self.values())[i]

    def __iter__(self):
        return iter(self.values())


def intern_rows(interned: dict, values: object, start: int, stop: int) -> int:
    """Intern the rows of the entries ``values[start:stop]`` (a store's values
    array) in ``interned``: an entry whose row equals one interned before is put
    onto that one (its values are the same, so nothing is logged). Returns how
    many entries moved onto an earlier row. Rows an UPDATE moved are not interned
    when made (``moved_row``); this is where the prefixes that two UPDATEs
    brought to equal rows share one again, and where ``distinct_entries`` counts
    them. Call under the RIB lock."""
    places = enumerate(values[start:stop].tolist(), start)  # type: ignore[index]
    return _intern_entries_rows(interned, places, values.__setitem__)  # type: ignore[attr-defined]


def intern_delta_rows(interned: dict, delta: object) -> int:
    """``intern_rows`` for the entries of a store's delta (the prefixes its arrays
    lack until the next merge)."""
    return _intern_entries_rows(interned, delta.items(), delta.insert)  # type: ignore[attr-defined]


def _intern_entries_rows(
    interned: dict, places: Iterable[tuple[object, object]], put: Callable[[object, object], object]
) -> int:
    """``intern_rows``' loop over (place, entry) pairs; ``put(place, entry)``
    stores an entry that is put onto an earlier row (an Overlay is changed in
    place instead).

    Each row is hashed once per call: a row is shared by a set's prefixes, and
    a wide one is 16-64 slots to hash. ``seen`` holds each row it keys, so no id
    in it can be reused meanwhile."""
    setdefault = interned.setdefault
    seen: dict[int, tuple] = {}  # id(row) -> (row, its interned equal)
    get = seen.get
    shared = 0
    for place, entry in places:
        kind = type(entry)
        if kind is Overlay:
            row = entry.row  # type: ignore[union-attr]
        elif kind is tuple:
            row = entry
        else:
            continue
        hit = get(id(row))
        if hit is None:
            hit = seen[id(row)] = (row, setdefault(row, row))
        if hit[1] is not row:
            if kind is tuple:
                put(place, hit[1])
            else:
                entry.row = hit[1]  # type: ignore[union-attr]
            shared += 1
    return shared


def row_of(entry: object) -> tuple:
    return entry.row if type(entry) is Overlay else entry  # type: ignore[union-attr,return-value]


def canonical(values: list, intern: Callable[[tuple], tuple]) -> tuple | None:
    """The interned entry for per-slot ``values``: no trailing None, None if empty.

    Equal contents must intern together, hence the trimming.
    """
    end = len(values)
    while end and values[end - 1] is None:
        end -= 1
    if end == 0:
        return None
    return intern(tuple(values[:end]))


def overlaid(row: tuple, over: dict, intern: Callable[[tuple], tuple]) -> object:
    """The entry ``row`` with the values of ``over`` (slot -> value) in place of its own:
    ``row`` itself when none differs, an Overlay while few do, else an
    interned tuple of its own (None when empty)."""
    n = len(row)
    own = {s: v for s, v in over.items() if (row[s] if s < n else None) is not v}
    if not own:
        return row
    if len(own) > OVERLAY_MAX or n < OVERLAY_SLOTS:
        return _rewritten(row, own, intern)
    if all(v is None for v in own.values()) and all(row[i] is None or i in own for i in range(n)):
        return None
    return Overlay(row, tuple(x for s in sorted(own) for x in (s, own[s])))


def with_values(entry: object, changes: dict, intern: Callable[[tuple], tuple]) -> object:
    """``entry`` (a tuple, an Overlay or None) with ``changes`` (slot -> value) applied:
    the new canonical entry. A wide tuple gets an Overlay (the row stays
    shared with the prefixes that hold it too); a narrow one is rewritten
    whole, as before."""
    if type(entry) is Overlay:
        over = dict(zip(entry.over[0::2], entry.over[1::2], strict=True))
        over.update(changes)
        return overlaid(entry.row, over, intern)
    row: tuple = entry or ()  # type: ignore[assignment]
    if len(row) >= OVERLAY_SLOTS:
        return overlaid(row, changes, intern)
    return _rewritten(row, changes, intern)


def _rewritten(row: tuple, changes: dict, intern: Callable[[tuple], tuple]) -> tuple | None:
    """``row`` rewritten whole with ``changes`` (slot -> value): the canonical entry."""
    values = list(row)
    for s, v in changes.items():
        if s >= len(values):
            values.extend((None,) * (s + 1 - len(values)))
        values[s] = v
    return canonical(values, intern)


def differs(values: list, row: tuple, most: int) -> dict | None:
    """Slot -> value of ``values`` where it differs from ``row``; None past ``most`` such."""
    out: dict = {}
    nv, nr = len(values), len(row)
    for i in range(max(nv, nr)):
        a = values[i] if i < nv else None
        if a is not (row[i] if i < nr else None):
            out[i] = a
            if len(out) > most:
                return None
    return out


def moved_row(row: tuple, slot: int, value: object, clear: int | None = None) -> tuple:
    """``row`` with ``value`` (not None) in ``slot``, canonical as ``row`` is, and not
    interned: the prefixes of the UPDATE that held ``row`` share it, and an equal
    row made by another UPDATE is rare, so a probe of the intern dict per move
    cost more than it shared (BENCHMARKS.md, stop 53). The maintenance's
    collection interns the rows that stay (``ribd.maintenance.Collection``).
    ``clear``: a slot emptied too (a returning route's stale copy)."""
    n = len(row)
    if clear is not None and clear < n and row[clear] is not None:
        return _rewritten(row, {slot: value, clear: None}, _as_is)  # type: ignore[return-value]  (never empty)
    if slot < n:
        return (*row[:slot], value, *row[slot + 1 :])
    return (*row, *((None,) * (slot - n)), value)


def _as_is(row: tuple) -> tuple:
    return row


def cleared(
    entry: object, slots: list[int], cache: dict, intern: Callable[[tuple], tuple]
) -> object:
    """``entry`` with ``slots`` emptied (a sweep of released slots); ``cache`` maps
    id(row) -> (row, its cleared row) for the rows of one sweep step, so the
    prefixes that shared a row share its cleared one."""
    row = row_of(entry)
    hit = cache.get(id(row))
    if hit is None:
        values = list(row)
        for s in slots:
            if s < len(values):
                values[s] = None
        hit = cache[id(row)] = (row, canonical(values, intern))
    new_row = hit[1]
    if type(entry) is not Overlay:
        return new_row
    over = {s: v for s, v in zip(entry.over[0::2], entry.over[1::2], strict=True) if s not in slots}
    return overlaid(new_row or (), over, intern)


def value_at(entry: object, slot: int) -> object:
    """The value in ``slot`` of ``entry`` (a tuple or an Overlay; None: none)."""
    if type(entry) is Overlay:
        return entry.get(slot)
    return entry[slot] if slot < len(entry) else None  # type: ignore[arg-type,index]


def slots_moved(
    entry: object, moves: dict[int, int], cache: dict, intern: Callable[[tuple], tuple]
) -> object:
    """``entry`` with the value of each slot of ``moves`` (slot -> stale slot) moved
    into that stale slot where the slot holds one (a stale generation folded
    into the older one, ``ribd.sessions``), the new canonical entry. Rows move
    once (``cache``: id(row) -> (row, its moved row), as ``cleared``), so the
    prefixes that shared a row share the moved one and an Overlay stays an
    Overlay: rebuilt whole, every prefix's entry was a tuple as wide as the
    routers of its own."""
    row = row_of(entry)
    hit = cache.get(id(row))
    if hit is None:
        values = list(row)
        for slot, stale in moves.items():
            if slot < len(values) and values[slot] is not None:
                if stale >= len(values):
                    values.extend((None,) * (stale + 1 - len(values)))
                values[stale], values[slot] = values[slot], None
        hit = cache[id(row)] = (row, canonical(values, intern))
    new_row = hit[1]
    if type(entry) is not Overlay:
        return new_row
    over = entry.over
    logical = dict(zip(over[0::2], over[1::2], strict=True))
    get = entry.get
    for slot, stale in moves.items():
        value = get(slot)
        logical[stale] = value if value is not None else get(stale)
        logical[slot] = None
    return overlaid(new_row or (), logical, intern)


def drop_dead_rows(cache: dict, entries: dict) -> None:
    """The replaced rows of a ``cleared`` or ``slots_moved`` pass that no prefix
    holds any more leave the intern dict now, not at the next collection (a
    sweep of one router's slot replaces every row: a table's worth of 0.5 KB
    tuples at 64 routers)."""
    for hit in cache.values():
        row = hit[0]
        # References: the dict's key and value, ``hit``, ``row``, getrefcount's argument.
        if getrefcount(row) <= 5 and entries.get(row) is row:
            del entries[row]
    cache.clear()


def announce_wide(rib, table, fs, prefixes, ids, found, attrs) -> tuple[list, list, list]:
    """``Rib._announce``'s per-prefix loop for a table of OVERLAY_SLOTS slots or more
    (same counters, same change log) over the prefixes the store holds; returns
    the others (prefixes, path ids, places found), which ``Rib._announce``'s
    own loop inserts as it does for any table.

    Two passes: the first reads every prefix's entry and counts, per row,
    how many of its prefixes this UPDATE carries; the second writes. A row
    moves: one new row with ``attrs`` in the slot for all its prefixes here
    (an UPDATE carries a set's prefixes together; not interned, see
    ``moved_row``), the router's stale copy emptied in the same row where it
    was there (a restarted session's table coming back: the
    new values go into the rows, not into every prefix's own values). A
    prefix this router sends elsewhere alone gets a row of its own that way,
    until the next router's UPDATE of its set: a row other than the UPDATE's
    main row (the one most of its prefixes are on) is put onto the main row
    when it differs from it in at most OVERLAY_MAX slots, its differences as
    the prefix's own values.
    """
    store = table.store
    values = store.values
    delta = store.delta
    get = delta.get
    entries = table._entries
    intern = table.intern
    log_change = table.changes.append
    slot, stale = fs.slot, fs.stale_slot
    if type(found) is not list:  # an iterator (repeat, map): one value per prefix
        found = list(islice(found, len(prefixes)))
    if type(ids) is not list:
        ids = list(islice(ids, len(prefixes)))
    ents: list = []  # each prefix's entry
    new_prefixes: list = []  # (the store lacks them: Rib._announce inserts them)
    new_ids: list = []
    new_found: list = []
    # id(row) -> [row, prefixes here on it, the slots where it differs from the
    # main row (None: not compared yet; False: too many)]
    counts: dict[int, list] = {}
    for prefix, path_id, at in zip(prefixes, ids, found, strict=True):
        entry = values[at] if at >= 0 else get(prefix)  # at >= 0: index in the arrays
        if entry is None:
            new_prefixes.append(prefix)
            new_ids.append(path_id)
            new_found.append(at)
            continue
        ents.append((prefix, path_id, at, entry))
        row = entry.row if type(entry) is Overlay else entry
        c = counts.get(id(row))
        if c is None:
            counts[id(row)] = [row, 1, None]
        else:
            c[1] += 1
    entry = row = c = None
    main = max(counts.values(), key=itemgetter(1)) if counts else [None, 0, None]
    main_row = main[0]
    # The main row's prefixes mostly hold the router's stale copy or mostly not.
    main_clear = stale is not None and main_row is not None and stale < len(main_row)
    main_clear = main_clear and main_row[stale] is not None
    main_moved: tuple | None = None
    moves: dict[tuple, tuple] = {}  # (id(row), clear) -> the row with ``attrs`` in ``slot``
    for prefix, path_id, at, entry in ents:
        overlay = type(entry) is Overlay
        if overlay:
            row = entry.row
            over = entry.over
            if slot in over:  # (see Overlay.get)
                old = over[over.index(slot) + 1]
            else:
                old = row[slot] if slot < len(row) else None
        else:
            row = entry
            old = entry[slot] if slot < len(entry) else None
        new, added_paths = rib._with_path(old, path_id, attrs, fs)
        if old is None:
            fs.prefixes += 1
        fs.paths += added_paths
        clear = False
        if stale is not None and value_at(entry, stale) is not None:
            # The route is back: its stale copy is no longer needed.
            fs.stale_prefixes -= 1
            clear = True
        if old is new and not clear:
            continue
        if new is not attrs:  # ADD-PATH
            changes = {slot: new, stale: None} if clear else {slot: new}
            new_entry = with_values(entry, changes, intern)
        else:
            if row is main_row and clear is main_clear:  # most prefixes: the main row moves
                if main_moved is None:
                    main_moved = _moved(row, slot, attrs, stale, clear, moves)
                moved = main_moved
            else:
                moved = None
                c = counts[id(row)]
                if main[1] > 1 and c[2] is not False:
                    if main_moved is None:
                        main_moved = _moved(main_row, slot, attrs, stale, main_clear, moves)
                    new_entry = _rejoin(entry, slot, attrs, stale if clear else None, c, main_moved)
                    if new_entry is not None:
                        moved = _REJOINED
                if moved is None:  # the row moves
                    moved = _moved(row, slot, attrs, stale, clear, moves)
            if moved is _REJOINED:
                pass  # new_entry: on the main row
            elif overlay:
                # The moved row differs from the old one in ``slot`` (and the
                # emptied stale slot) only: the other values of the prefix's own
                # still differ (the same tuple).
                if slot in over:
                    j = over.index(slot)
                    over = over[:j] + over[j + 2 :]
                if clear and stale in over:
                    j = over.index(stale)
                    over = over[:j] + over[j + 2 :]
                new_entry = Overlay(moved, over) if over else moved
            else:
                new_entry = moved
        if at >= 0:
            values[at] = new_entry  # entry was not None: no hole filled
        else:
            delta.insert(prefix, new_entry)
        log_change(prefix)
    # Rows no prefix holds any more leave the intern dict now (see Rib._announce).
    del ents
    entry = row = new_entry = c = main = main_row = None
    for c in counts.values():
        row = c[0]
        c[0] = None
        # References: the dict's key and value, ``row``, getrefcount's argument.
        if getrefcount(row) <= 4 and entries.get(row) is row:
            del entries[row]
    return new_prefixes, new_ids, new_found


def _moved(row, slot, attrs, stale, clear, moves) -> tuple:
    """``row`` moved: ``attrs`` in ``slot`` (and, ``clear``, the stale slot
    emptied), once per row and UPDATE (``moves``)."""
    key = (id(row), clear)
    moved = moves.get(key)
    if moved is None:
        moved = moves[key] = moved_row(row, slot, attrs, stale if clear else None)
    return moved


def _rejoin(entry, slot, attrs, clear, c, base):
    """``entry`` with ``attrs`` in ``slot`` (and slot ``clear`` emptied, if not
    None) as ``base``, the UPDATE's main row moved, plus at most OVERLAY_MAX
    values of its own; None if it differs more. ``c``: the entry's row's count
    list, which keeps the slots where the row differs from the main one
    (compared once per row and UPDATE)."""
    row = c[0]
    nb, nr = len(base), len(row)
    if c[2] is None:
        if nb < OVERLAY_SLOTS:
            c[2] = False
            return None
        n = max(nb, nr)
        padded_row = row + (None,) * (n - nr) if nr < n else row
        padded_base = base + (None,) * (n - nb) if nb < n else base
        d = [i for i, a, b in zip(range(n), padded_row, padded_base, strict=True) if a is not b]
        c[2] = d if len(d) <= 2 * OVERLAY_MAX else False
        if c[2] is False:
            return None
    if type(entry) is Overlay:
        over = entry.over
        mine = dict(zip(over[0::2], over[1::2], strict=True))
    else:
        mine = {}
    own = {i: row[i] if i < nr else None for i in c[2] if i not in mine}
    for s, v in mine.items():
        if v is not (base[s] if s < nb else None):
            own[s] = v
    for s, v in ((slot, attrs), (clear, None)):
        if s is None:
            continue
        own.pop(s, None)
        if (base[s] if s < nb else None) is not v:
            own[s] = v
    if len(own) > OVERLAY_MAX:
        return None
    if not own:
        return base
    return Overlay(base, tuple(x for s in sorted(own) for x in (s, own[s])))
