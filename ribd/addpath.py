"""ADD-PATH (RFC 7911): one router's paths for one prefix, best first, at most a bound.

A router that sends several paths for a prefix gets a ``PathSet`` in its slot:
``((path_id, attrs), ...)`` sorted by ``preference_key`` (best first, the one
answers use), interned so that routers and prefixes with the same paths share
one tuple. Each UPDATE that announces a path over a set builds the next set from
the previous one.

Why bounded, and why by insertion: until stop 59 each announce re-sorted the
whole set (``preference_key`` for every path), so k paths for one prefix cost
O(k^2 log k) key calls: a peer announcing 4,000 path ids for one prefix held
the feed for 9 CPU-s, 16,000 would take ~150 (the raw fuzz target's slowest
inputs, 117-153 ms, were such UPDATEs). Now the new path is inserted where it
sorts (a binary search, log k keys) and a set keeps at most ``max_paths`` paths
([bgp] max_paths_per_prefix, 64 unless configured): past it the worst path is
not kept, and counted. Routers send a few paths a prefix (add-path send
limits such as Junos' path-count go to the tens); a route server sends one a
member announcing the prefix.

A snapshot's sets are loaded as written (sorted by the same key, their paths
counted); one longer than the bound, written under a larger one, is cut at its
next announce. What the bound gives up: a path not kept is not there to take over when a kept
one is withdrawn (the router does not send it again), so that prefix's answer
can be a worse path, or none, until the router re-sends its table.
"""

from __future__ import annotations

import logging
from bisect import insort

from ribd.attributes import PathAttributes
from ribd.settings import MAX_PATHS_PER_PREFIX as MAX_PATHS_PER_PREFIX  # (its default)
from ribd.table import PathSet, preference_key

MAX_PATHS_LIMIT = 1024  # its largest value: a set's rebuild stays O(this) a path
OVER_LIMIT_LOGGED = 10  # paths not kept logged one by one, then one in every 10,000

log = logging.getLogger("ribd.rib")


def with_path(
    pathsets: dict[PathSet, PathSet],
    old: object,
    path_id: int,
    attrs: PathAttributes,
    max_paths: int = MAX_PATHS_PER_PREFIX,
) -> tuple[object, int, int]:
    """The value a router's slot takes when an UPDATE announces ``attrs`` with
    ``path_id`` over ``old`` (None, one set, or a sorted ``PathSet``); how many
    paths that adds (1, 0, or fewer once sets longer than ``max_paths`` are cut);
    how many paths were not kept (``max_paths`` exceeded). ``pathsets``: the
    RIB's interned sets, where a new one is put."""
    if path_id == 0 and (old is None or type(old) is PathAttributes):
        return attrs, (0 if old is not None else 1), 0
    if old is None:
        paths: list[tuple[int, PathAttributes]] = []
    elif type(old) is PathAttributes:
        paths = [(0, old)]
    else:
        paths = list(old)  # type: ignore[call-overload]
    before = len(paths)
    replaced = False
    for i, (held_id, _) in enumerate(paths):
        if held_id == path_id:
            del paths[i]
            replaced = True
            break
    new = (path_id, attrs)
    insort(paths, new, key=preference_key)  # (keys are unique: path ids are)
    dropped = len(paths) - max_paths
    if dropped > 0:
        if dropped == 1 and not replaced and paths[-1] is new:
            return old, 0, 1  # the new path is the worst: nothing changes
        del paths[max_paths:]
    else:
        dropped = 0
    return path_value(pathsets, paths), len(paths) - before, dropped


def path_value(pathsets: dict[PathSet, PathSet], paths: list[tuple[int, PathAttributes]]) -> object:
    """The value a router's slot holds for ``paths`` (sorted best first): a lone
    path of id 0 as its attribute set itself, else the ``PathSet`` interned in
    ``pathsets``. One form for announces, withdraws and snapshot loads, so that
    equal paths are one object whichever way they came."""
    if len(paths) == 1 and paths[0][0] == 0:
        return paths[0][1]
    ps = PathSet(paths)
    return pathsets.setdefault(ps, ps)


def logs_over_limit(total: int) -> bool:
    """Whether the path not kept that made ``total`` is logged: the first
    ``OVER_LIMIT_LOGGED``, then one in every 10,000, so a peer sending thousands
    of paths a prefix cannot flood the log (the counts: ``Rib.stats()``, the
    metrics' attribution_rib_paths_over_limit_total)."""
    return total <= OVER_LIMIT_LOGGED or total % 10_000 == 0


def log_over_limit(total: int, max_paths: int, routers: dict, fs: object) -> None:
    """Log the path not kept that made ``total``, if ``logs_over_limit`` says so,
    naming the router whose family state is ``fs`` (found by a walk over
    ``routers``, a RIB's: only for the lines logged)."""
    if not logs_over_limit(total):
        return
    router = "a router"
    for r in routers.values():
        if any(f is fs for f in r.families.values()):
            router = r.label
            break
    log.warning(
        "ADD-PATH: a prefix of %s already held %d better paths; a path was not kept "
        "([bgp] max_paths_per_prefix; %d so far, all routers)",
        router,
        max_paths,
        total,
    )
