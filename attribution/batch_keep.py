"""The flat path's plan kept across batches while nothing it read changed.

``batch_flat._plan`` picks, per (exporter, family) code of a batch, the
router (routing chain, ``routing.pick``) and checks its view
(``fastpath.as_is``), then per family finds where keys are read (the packed
pools and each exporter's offsets in them). Spread over 64 exporters that
was 0.23-0.40 ms of a ~2.6 ms full-table batch (issue 11, views5), paid
again for every batch although a collector's batches name the same
exporters and, between two batches, the routers' state rarely moves.

A plan is kept for the next batch with the same routing, the same
exporters (their canonical texts) and the same present codes, and reused
only if a fresh plan would read exactly what this one read. What the plan
reads, and how the test sees each of its changes:

* the routing (a config reload replaces it whole) and the exporters: the key;
* the RIB's routers mapping (a router added; none is ever removed): its
  identity and size;
* each family's table (a snapshot load swaps them) and its change number
  (announcements, withdrawals, sweeps: every entry change is logged):
  identity and ``change_seq``;
* the held views (built, patched, advanced, packed onto one axis, dropped):
  the mapping's identity and its change number (``fastpath.HeldViews``
  counts every write);
* each router the picks consulted, whose state has writers all over
  ``ribd`` (sessions up and down, stale generations rotated and retired,
  purges, re-reads after a feed gap, the stale hold expiring): not a
  counter that each of them would have to bump, but the very fields the
  pick and the view check read, read again (its slots, whether it has
  routes, whether its current routes are stale, the table's last change
  number of its slots): ~0.3 us a router, and no writer can forget it.

The reuse is exact: a kept plan is used only when all of that compares
equal, and then a fresh plan would have made the same choices from the
same inputs (``tests/attribution/test_batch_keep.py`` plants each kind of
change and checks that the kept plan is refused).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from attribution.resolver import Resolver
    from attribution.routing import Routing

ENABLED = True  # tests turn it off to compare with a plan made per batch


class Kept:
    """One plan (``batch_flat._plan``'s answer and the per-exporter router
    columns made from it) and what it was made from."""

    __slots__ = (
        "canon",
        "falls",
        "held",
        "index",
        "key",
        "names",
        "picked",
        "routers",
        "sources",
        "state",
        "tables",
        "viewed",
        "watch",
    )


def _state(watch: list) -> list[tuple]:
    """What the picks and the view checks read of each consulted router
    (``watch``: (router, family state, its table's slot change numbers)):
    the family state's slots and prefix count, the router's stale deadline
    and session (``RouterRib.current_stale``), and the table's last change
    number of each slot. Exact values where the pick reads a truth value:
    a prefix count or a stale deadline does not move without the table's
    change number or a session event, so comparing them whole refuses a
    little more, never less. (A comprehension: ~15 us for 64 routers,
    ``attrgetter`` maps were slower.)"""
    return [
        (
            fs.slot,
            fs.stale_slot,
            fs.prefixes,
            r.stale_until,
            r.session,
            seqs.get(fs.slot),
            seqs.get(fs.stale_slot),
        )
        for r, fs, seqs in watch
    ]


def _tables(rib, families) -> tuple:
    tables = rib.tables
    return tuple((f, tables[f], tables[f].change_seq) for f in families)


def still(resolver: Resolver, kept: Kept, canon: list, present: list, routing: Routing) -> bool:
    """Whether ``kept`` is what a plan made now would be; call under rib.lock."""
    rib, held = resolver.rib, resolver.views._views
    return (
        kept.key[0] is routing
        and kept.key[1] == present
        and kept.canon == canon
        and kept.routers == (id(rib.routers), len(rib.routers))
        and kept.held == (id(held), held.generation)
        and all(rib.tables[f] is t and t.change_seq == s for f, t, s in kept.tables)
        and _state(kept.watch) == kept.state
    )


def make(
    resolver: Resolver,
    canon: list,
    present: list,
    routing: Routing,
    plan: tuple,
    watch: list,
    families: set,
) -> Kept:
    """A ``Kept`` of ``plan`` (``batch_flat._plan``'s answer, made under
    rib.lock with the routers it consulted, ``watch``); call under rib.lock."""
    sources, picked, fallback, viewed = plan
    rib, held = resolver.rib, resolver.views._views
    kept = Kept()
    kept.key = (routing, list(present))
    kept.canon = list(canon)
    kept.routers = (id(rib.routers), len(rib.routers))
    kept.held = (id(held), held.generation)
    kept.tables = _tables(rib, sorted(families))
    kept.watch = watch
    kept.state = _state(watch)
    kept.sources, kept.picked, kept.viewed = sources, picked, viewed
    # The router column and flags, per family (an exporter's IPv6 flows may
    # go to a fallback router): routers numbered in code order, as the
    # grouped path numbers its groups (``Batch.router_index``).
    size = len(canon)
    names = routing.names
    routers: dict[str, int] = {}
    index = {v4: np.zeros(size, dtype=np.int32) for v4 in sources}
    falls = {v4: np.zeros(size, dtype=bool) for v4 in sources}
    for c, neighbor, is_fallback in zip(present, picked, fallback, strict=True):
        name = names.get(neighbor, neighbor)
        index[not c & 1][c >> 1] = routers.setdefault(name, len(routers))
        falls[not c & 1][c >> 1] = is_fallback
    kept.index, kept.falls = index, {v4: f if f.any() else None for v4, f in falls.items()}
    kept.names = routers
    return kept
