"""Each of many addresses' route in its own router's RIB, read at once.

The bulk path answers most flows from compiled views; the rest (prefixes
changed since the router's view was built, every flow of a router still
loading, flows with a BGP next hop, IPv6 prefixes longer than /64) were
looked up one by one (``Rib.lookup``: the covering walk, the prefix's
text, a RouteMatch, then ``lookup.answer_of``'s tuple), ~18 us a flow
against ~1 on a view. During a 64-router load with 20 k flows/s that was
over half of the service's CPU (BENCHMARKS.md, stop 44).

``covering_routes`` returns what a view build reads per prefix (the
router's attribute set, numbered, its path id and stale flag) per address,
each address read in its own router's slot (a batch's groups at once),
plus the matched prefix's length, the value's number of paths and, where
it has several (ADD-PATH), the value itself for a next hop to choose from;
the batch turns it into answers with the views' own rules
(``viewbuild.answers_of_routes``), so exact and view answers are decided in
one place. ``py_covering_routes`` is the reference (``Rib.lookup``'s walk
and ``slot_value``, per address) and the fallback where the compiled walk
was not built; tests compare the two. Callers hold the RIB lock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ribd.attributes import PathAttributes
from ribd.reads import slot_value
from ribd.rib import Rib

try:  # the walk in C (setup.py builds it where a C compiler is): the same routes
    from attribution._viewbuild import covering_routes as _compiled_covering_routes
except ImportError:
    _compiled_covering_routes = None


@dataclass(slots=True)
class CoveringRoutes:
    """Per address: its best route's attribute set number (-1: no route),
    path id, stale flag, prefix length, count of paths (255 at most) and,
    where it has several, the number of its value (ADD-PATH: (path id,
    attributes), ... best first) among ``path_sets`` (else -1); the sets and
    the values numbered by identity in first-seen order (the sets as
    ``viewbuild.SlotRoutes`` numbers them)."""

    set_of: np.ndarray
    path_ids: np.ndarray
    stale: np.ndarray
    lengths: np.ndarray
    paths: np.ndarray
    value_of: np.ndarray
    attribute_sets: list[PathAttributes]
    path_sets: list[tuple]


def router_slots(
    rib: Rib, family: str, neighbors: list[str], counts: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per address, the slot of its router (``neighbors[k]`` for a run of
    ``counts[k]`` addresses; -1: not a router), its stale slot (-1: none) and
    its current-stale flag, as the RIB has them now. Caller holds the RIB lock."""
    slot, stale_slot, current = [], [], []
    for neighbor in neighbors:
        r = rib.routers.get(neighbor)
        fs = None if r is None else r.families.get(family)
        if fs is None:
            slot.append(-1)
            stale_slot.append(-1)
            current.append(False)
        else:
            slot.append(fs.slot)
            stale_slot.append(-1 if fs.stale_slot is None else fs.stale_slot)
            current.append(r.current_stale)  # type: ignore[union-attr]
    return (
        np.repeat(np.array(slot, dtype=np.int32), counts),
        np.repeat(np.array(stale_slot, dtype=np.int32), counts),
        np.repeat(np.array(current, dtype=np.uint8), counts),
    )


def covering_routes(
    rib: Rib, family: str, addresses: bytes, neighbors: list[str], counts: list[int]
) -> CoveringRoutes:
    """The route of each address of ``addresses`` (packed, 4 or 16 octets each
    by ``family``) in its router's RIB: ``neighbors[k]`` for a run of
    ``counts[k]`` addresses, in order. In C when built. Caller holds the RIB lock."""
    if _compiled_covering_routes is None:
        return py_covering_routes(rib, family, addresses, neighbors, counts)
    store = rib.tables[family].store
    slots, stale_slots, current = router_slots(rib, family, neighbors, counts)
    out = _compiled_covering_routes(
        store.keys,
        store.values,
        store.delta,
        addresses,
        slots,
        stale_slots,
        current,
        store.buckets(),
    )
    if out is None:  # a delta the compiled walk does not read
        return py_covering_routes(rib, family, addresses, neighbors, counts)
    set_of, path_ids, stale, lengths, paths, value_of, attribute_sets, path_sets = out
    return CoveringRoutes(
        np.frombuffer(set_of, dtype=np.int32),
        np.frombuffer(path_ids, dtype=np.uint32),
        np.frombuffer(stale, dtype=bool),
        np.frombuffer(lengths, dtype=np.uint8),
        np.frombuffer(paths, dtype=np.uint8),
        np.frombuffer(value_of, dtype=np.int32),
        attribute_sets,
        path_sets,
    )


def py_covering_routes(
    rib: Rib, family: str, addresses: bytes, neighbors: list[str], counts: list[int]
) -> CoveringRoutes:
    """``covering_routes`` in Python: ``Rib.lookup``'s walk per address."""
    size = 4 if rib.tables[family].bits == 32 else 16
    if len(addresses) % size:
        raise ValueError(f"{len(addresses)} octets are not addresses of {size}")
    n = len(addresses) // size
    if sum(counts) != n or len(counts) != len(neighbors):
        raise ValueError(f"routers for {sum(counts)} addresses, not {n}")
    out = CoveringRoutes(
        np.full(n, -1, dtype=np.int32),
        np.zeros(n, dtype=np.uint32),
        np.zeros(n, dtype=bool),
        np.zeros(n, dtype=np.uint8),
        np.zeros(n, dtype=np.uint8),
        np.full(n, -1, dtype=np.int32),
        [],
        [],
    )
    slots, stale_slots, current = router_slots(rib, family, neighbors, counts)
    store = rib.tables[family].store
    numbers: dict[int, int] = {}
    value_numbers: dict[int, int] = {}
    for i in range(n):
        slot = int(slots[i])
        if slot < 0:
            continue
        stale_slot = None if stale_slots[i] < 0 else int(stale_slots[i])
        for _prefix, length, entry in store.covering(addresses[i * size : (i + 1) * size]):
            value, is_stale = slot_value(entry, slot, stale_slot, bool(current[i]))  # type: ignore[arg-type]
            if value is None:
                continue
            if type(value) is PathAttributes:
                attrs, path_id, count = value, 0, 1
            else:
                path_id, attrs = value[0]  # type: ignore[index]  # ADD-PATH: best first
                count = len(value)  # type: ignore[arg-type]
            number = numbers.get(id(attrs))
            if number is None:
                number = numbers[id(attrs)] = len(out.attribute_sets)
                out.attribute_sets.append(attrs)
            out.set_of[i] = number
            out.path_ids[i] = path_id
            out.stale[i] = is_stale
            out.lengths[i] = length
            out.paths[i] = min(count, 255)
            if count > 1:
                k = value_numbers.get(id(value))
                if k is None:
                    k = value_numbers[id(value)] = len(out.path_sets)
                    out.path_sets.append(value)  # type: ignore[arg-type]
                out.value_of[i] = k
            break
    return out
