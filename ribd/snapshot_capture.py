"""Reading what a snapshot holds out of the RIB, whatever the format it is written in.

Why its own module: the walk is most of a write's cost with many routers (the
prefixes' entries, 16 routers' values each), and it must hold ``rib.lock``
only briefly. The common layout, router i in slot i and no stale generation,
is encoded a chunk at a time with numpy: the ids of a chunk's distinct
entries' values are looked up together among the interner's sets' ids (a
table of them, ``ribd.idcodes``); values found nowhere (ADD-PATH sets, a set
the interner does not hold) take the per-value path, as do other layouts. A
wide entry's shared row is looked up once for all the prefixes on it, its own
values on top (``_picked_rows``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain, compress
from operator import itemgetter

import numpy as np

from ribd.attributes import PathAttributes
from ribd.entries import Overlay
from ribd.idcodes import id_codes, mark_codes, recode
from ribd.rib import Rib

WRITE_CHUNK = 16384  # prefixes read per lock hold while writing
_MAX_TEXT = 256  # names are cut to the parser's text limit on write
_MAX_CODE = (1 << 31) - 1  # entries are stored as i4 (snapshot_v2)


@dataclass(slots=True)
class Capture:
    """What a snapshot holds, read out of the RIB; each format encodes it its way.

    ``entries`` are per-prefix route sets, one code per captured router: a set
    index (``sets``) >= 0, -1 for no route, -2 - k for the ADD-PATH set
    ``pathsets[k]`` ((path id, set index) pairs, best first). ``families``
    maps each family to its kept prefixes (the store's keys, in order) and
    each prefix's entry row.
    """

    created: float
    routers: list[dict]
    sets: list[PathAttributes]
    pathsets: list[tuple[tuple[int, int], ...]]
    entries: np.ndarray  # int32, entries x routers
    families: dict[str, tuple[np.ndarray, np.ndarray]]
    paths: int


class _Codes:
    """Codes of the values entries hold: sets, ADD-PATH sets, None (no route).

    Every set the interner holds gets its code up front (a set met first in an
    entry would cost that entry the per-value path); sets no captured route
    uses are dropped at the end (``_compact``). Objects are pinned (``sets``,
    ``pinned``) so that their ids stay unique while the capture runs.
    """

    def __init__(self, rib: Rib) -> None:
        self.sets: list[PathAttributes] = rib.interner.sets()
        self.pathsets: list[tuple[tuple[int, int], ...]] = []
        self.pinned: list[object] = []
        ids = np.fromiter(map(id, self.sets), dtype=np.int64, count=len(self.sets))
        ids = np.append(ids, id(None))
        codes = np.arange(len(ids), dtype=np.int64)
        codes[-1] = -1  # None: no route
        self.known = id_codes(ids, codes)
        # Codes of values met outside the arrays above only (rare: ADD-PATH sets,
        # a set the interner does not hold). A dict of every set's id cost ~0.3 s
        # with 16 routers for the few values that take the per-value path.
        self.codes: dict[int, int] = {}

    def code(self, i: int) -> int | None:
        """The code of the value whose id is ``i``, None if it has none yet."""
        c = self.codes.get(i)
        if c is None:
            codes, found = self.known.lookup(np.array([i], np.int64))
            if found[0]:
                c = int(codes[0])
        return c

    def set_code(self, a: PathAttributes) -> int:
        c = self.code(id(a))
        if c is None:
            c = self.codes[id(a)] = len(self.sets)
            self.sets.append(a)
        return c

    def row(self, values: tuple | list) -> list[int]:
        """Per value: its code, a new one for a value not seen yet."""
        out = []
        code_of = self.code
        for v in values:
            c = code_of(id(v))
            if c is None:
                if type(v) is PathAttributes:
                    c = self.set_code(v)
                else:  # a PathSet: (path id, attributes), best first
                    items = tuple((pid, self.set_code(a)) for pid, a in v)  # type: ignore[attr-defined]
                    c = self.codes[id(v)] = -2 - len(self.pathsets)
                    self.pathsets.append(items)
                    self.pinned.append(v)
            out.append(c)
        return out

    def rows(self, entries: list[tuple]) -> np.ndarray:
        """Codes of entries of exactly one value per router, one lookup for all."""
        n, width = len(entries), len(entries[0]) if entries else 0
        return self.values(list(chain.from_iterable(entries))).reshape(n, width)

    def values(self, values: list) -> np.ndarray:
        """Each value's code, one lookup for all; a value found nowhere gets its code
        from ``row`` (new ones numbered in ``values``' order)."""
        ids = np.fromiter(map(id, values), np.int64, len(values))
        out, found = self.known.lookup(ids)
        if not found.all():
            for k in np.flatnonzero(~found).tolist():
                out[k] = self.row((values[k],))[0]
        return out

    def paths(self, rows: np.ndarray) -> np.ndarray:
        """Routes per entry row: a set is one, an ADD-PATH set its paths."""
        count = (rows >= 0).sum(axis=1)
        multi = rows < -1
        if multi.any():
            lengths = np.fromiter(map(len, self.pathsets), np.int64, len(self.pathsets))
            count += np.where(multi, lengths[np.where(multi, -2 - rows, 0)], 0).sum(axis=1)
        return count


def capture(rib: Rib, chunk: int = WRITE_CHUNK) -> Capture:
    """Read what a snapshot holds out of ``rib``, ``chunk`` prefixes per lock hold."""
    with rib.lock:
        created = rib.clock()
        routers = list(rib.routers.values())
        router_docs = [
            {
                "neighbor": r.neighbor,
                "name": r.name[:_MAX_TEXT],
                "peer_as": r.peer_as,
                "router_id": r.router_id,
                "last_update": r.last_update,
                "session": r.session,
                "stale": r.current_stale
                or any(
                    fs.stale_slot is not None and fs.stale_prefixes for fs in r.families.values()
                ),
            }
            for r in routers
        ]
    n_routers = len(routers)
    codes = _Codes(rib)
    blocks: list[np.ndarray] = []  # entry rows, in row order
    n_rows = 0
    paths = 0
    plain = tuple((slot, None) for slot in range(n_routers))
    padding = (None,) * n_routers
    families: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for family, table in rib.tables.items():
        with rib.lock:
            table.store.merge()  # every prefix in the arrays
            family_keys = table.store.keys
        kept: list[np.ndarray] = []
        indexes: list[np.ndarray] = []
        caches: dict[tuple, dict[int, tuple[int, int]]] = {}
        # Per layout, id(row) -> a wide row's codes (``_picked_rows``).
        shared_rows: dict[tuple, dict[int, np.ndarray]] = {}
        for start in range(0, len(family_keys), chunk):
            with rib.lock:
                store = table.store
                layout = tuple(
                    (r.families[family].slot, r.families[family].stale_slot) for r in routers
                )
                if store.keys is family_keys:  # values change in place, keys never
                    got = store.values[start : start + chunk].tolist()
                else:  # merged since: look each prefix up again
                    texts = store.texts(family_keys[start : start + chunk])
                    got = [store.get(p) for p in texts]
            cache = caches.setdefault(layout, {})
            # Distinct entries of the chunk not seen before: their value per router.
            eids = np.fromiter(map(id, got), np.int64, len(got))
            uniq, first, inverse = np.unique(eids, return_index=True, return_inverse=True)
            row_of = np.empty(len(uniq), np.int64)
            count_of = np.zeros(len(uniq), np.int64)
            order = np.argsort(first)  # in the chunk's order: files are reproducible
            hits = list(map(cache.get, uniq[order].tolist()))
            seen = np.fromiter(map(_is_not_none, hits), bool, len(hits))
            if seen.any():
                known = np.array(list(compress(hits, seen.tolist())), np.int64)
                row_of[order[seen]], count_of[order[seen]] = known[:, 0], known[:, 1]
            new_at = order[~seen]
            entries = [got[j] for j in first[new_at].tolist()]
            pick = _picker(layout)
            if pick is not None:  # wide entries' shared rows coded once each
                shared = shared_rows.setdefault(layout, {})
                rows = _picked_rows(codes, entries, layout, pick, padding, shared)
            else:
                # Wide entries as a shared row and overrides (ribd.entries): read as the
                # tuples they stand for (``pinned`` keeps the entries themselves).
                flat = [tuple(e.values()) if type(e) is Overlay else e for e in entries]
                values = [_values(e, layout, layout == plain, padding) for e in flat]
                del flat
                rows = codes.rows(values) if values else None
            if rows is not None:
                counts = codes.paths(rows)
                empty = counts == 0  # None, or no captured router has a route
                numbers = np.full(len(rows), -1, np.int64)
                numbers[~empty] = np.arange(n_rows, n_rows + int((~empty).sum()))
                blocks.append(rows[~empty])
                n_rows += int((~empty).sum())
                pairs = zip(numbers.tolist(), counts.tolist(), strict=True)
                cache.update(zip(map(id, entries), pairs, strict=True))
                row_of[new_at], count_of[new_at] = numbers, counts
                codes.pinned.extend(entries)
            rows_here, counts_here = row_of[inverse.reshape(-1)], count_of[inverse.reshape(-1)]
            keep = rows_here >= 0
            kept.append(np.flatnonzero(keep) + start)
            indexes.append(rows_here[keep])
            paths += int(counts_here[keep].sum())
        at = np.concatenate(kept) if kept else np.zeros(0, np.int64)
        families[family] = (
            family_keys[at],
            np.concatenate(indexes) if indexes else np.zeros(0, np.int64),
        )
    matrix = np.concatenate(blocks) if blocks else np.empty((0, n_routers), dtype=np.int64)
    del blocks
    sets, pathsets = _compact(codes.sets, codes.pathsets, matrix)
    if len(sets) > _MAX_CODE or len(pathsets) + 1 > _MAX_CODE:
        raise ValueError(f"{len(sets)} sets, {len(pathsets)} ADD-PATH sets: more than i4 codes")
    # i4, as the file stores them: half the memory the write holds to its end.
    entries = matrix.astype(np.int32)
    del matrix
    return Capture(created, router_docs, sets, pathsets, entries, families, paths)


def _picked_rows(
    codes: _Codes,
    entries: list,
    layout: tuple,
    pick: itemgetter,
    padding: tuple,
    shared: dict[int, np.ndarray],
) -> np.ndarray | None:
    """``codes.rows`` of ``entries``' values per router (``layout`` without a
    stale generation, read by ``pick``), a wide entry's shared row coded once
    for all the prefixes on it (``shared``: id(row) -> its codes, for every
    chunk of the family; the rows are pinned) and its own values on top.

    From 16 routers on, every prefix's entry is its own ``Overlay``, so each
    prefix's values were looked up among the interner's sets one by one: 32
    routers' write was 20.7 CPU-s, 3.6 of them in that ``searchsorted``
    (BENCHMARKS.md, stop 47)."""
    if not entries:
        return None
    top = max(slot for slot, _ in layout) + 1

    def picked(e: tuple | None) -> tuple:
        return pick(e) if e is not None and len(e) >= top else _values(e, layout, False, padding)

    wide: list[int] = []
    narrow: list[int] = []
    for k, e in enumerate(entries):
        (wide if type(e) is Overlay else narrow).append(k)
    out = np.empty((len(entries), len(layout)), np.int64)
    if narrow:
        out[narrow] = codes.rows([picked(entries[k]) for k in narrow])
    if not wide:
        return out
    fresh = {}
    for k in wide:
        row = entries[k].row
        if id(row) not in shared and id(row) not in fresh:
            fresh[id(row)] = row
    if fresh:
        coded = codes.rows([picked(row) for row in fresh.values()])
        shared.update(zip(fresh, coded, strict=True))
        codes.pinned.extend(fresh.values())
    out[wide] = np.stack([shared[id(entries[k].row)] for k in wide])
    # Each wide entry's own values over its row's, all of the chunk's at once:
    # (slot, value, slot, value, ...) flattened, slots mapped to routers by a take.
    overs = [entries[k].over for k in wide]
    flat = list(chain.from_iterable(overs))
    if not flat:
        return out
    slots = np.array(flat[0::2], np.int64)
    router = np.full(max(top, int(slots.max()) + 1), -1, np.int64)
    router[[slot for slot, _ in layout]] = np.arange(len(layout))
    at_router = router[slots]
    lengths = np.fromiter(map(len, overs), np.int64, len(overs)) // 2
    at_entry = np.repeat(np.array(wide, np.int64), lengths)
    mine = at_router >= 0  # a slot no captured router holds: not read
    values = flat[1::2]
    if not mine.all():
        values = list(compress(values, mine.tolist()))
    out[at_entry[mine], at_router[mine]] = codes.values(values)
    return out


def _is_not_none(value: object) -> bool:
    return value is not None


def _picker(layout: tuple) -> itemgetter | None:
    """For a layout without a stale generation (most writes, also after a refresh has
    moved every router to a new slot): what reads an entry's value per router."""
    if len(layout) < 2 or any(stale is not None for _, stale in layout):
        return None
    return itemgetter(*(slot for slot, _ in layout))


def _values(entry: tuple | None, layout: tuple, simple: bool, padding: tuple) -> tuple:
    """An entry's value per captured router: its current one, else its stale one."""
    if entry is None:
        return padding
    n = len(entry)
    if simple:  # router i in slot i, no stale generation: most writes
        return entry[: len(padding)] if n >= len(padding) else entry + padding[n:]
    values = [entry[slot] if slot < n else None for slot, _ in layout]
    for i, (_, stale) in enumerate(layout):
        if values[i] is None and stale is not None and stale < n:
            values[i] = entry[stale]
    return tuple(values)


def _compact(
    sets: list[PathAttributes], pathsets: list[tuple[tuple[int, int], ...]], matrix: np.ndarray
) -> tuple[list[PathAttributes], list[tuple[tuple[int, int], ...]]]:
    """Only the sets some entry or ADD-PATH set uses, renumbered (``matrix`` in place).

    Every code shifted by the ADD-PATH sets' count + 1 is an index (ADD-PATH set k
    at ``shift - 2 - k``, no route at ``shift - 1``, set i at ``shift + i``): one
    pass marks the codes used, one renumbers the matrix (``ribd.idcodes``). Masks
    of the matrix (``matrix >= 0``, then its values gathered and put back) were
    4.4 of a 64-router capture's 13.8 CPU-s."""
    shift = len(pathsets) + 1
    hit = np.zeros(shift + len(sets), dtype=bool)
    mark_codes(matrix, shift, hit)
    used = hit[shift:]  # a view: the ADD-PATH sets' members are marked in ``hit`` too
    used[[i for items in pathsets for _, i in items]] = True
    number = np.cumsum(used, dtype=np.int64) - 1
    recode(matrix, np.concatenate([np.arange(-shift, 0, dtype=np.int64), number]), shift)
    if pathsets:
        renumber = number.tolist()
        pathsets = [tuple((pid, renumber[i]) for pid, i in items) for items in pathsets]
    return list(compress(sets, used.tolist())), pathsets


__all__ = ["WRITE_CHUNK", "Capture", "capture"]
