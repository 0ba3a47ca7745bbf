"""A router's prefix limit per family: BGP max-prefix, kept as "block".

Why: nothing else bounds how many prefixes one peer makes us hold. ADD-PATH
is bounded inside a prefix (ribd.addpath); across prefixes a router leaking
deaggregated routes, or a hostile speaker, grew the store, its views and the
snapshot until the process ran out of memory, and every router's answers
went with it. ExaBGP's neighbor configuration has no max-prefix, so the
limit is ours.

What it does, per (router, family), once ``FamilyState.max_prefixes`` is set
(``[bgp] max_prefixes_ipv4`` / ``_ipv6``, a router's own ``[[routers]]`` keys
over them; 0: no limit):

* an UPDATE's prefixes the router already holds are updated as always, and
  withdrawals are applied as always (they make room);
* new prefixes are installed while the family holds fewer than the limit, in
  the UPDATE's order; the rest are refused: not installed, counted on the
  family (``prefixes_refused``) and on the RIB, and logged (the first refused
  prefix of a family, then one line per ``REFUSED_LOG_EVERY`` more);
* the session stays up and nothing held is dropped. This is BIRD's ``receive
  limit ... action block``, not the teardown routers default to: tearing the
  session down would take the router's whole table out of attribution for
  the excess of a few prefixes.

What "block" gives up: a refused prefix is not asked for again when room is
made; it comes back only when the router sends it again (route refresh, a new
session). A limit lowered below what a family holds removes nothing; new
prefixes are refused until withdrawals bring it under.

The check costs one comparison an UPDATE on the load's paths: the compiled
short paths (ribd._apply.announce_parts) hand an UPDATE that could cross the
limit to ``Rib._announce``, which filters it here before writing anything.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING

from ribd.entries import value_at
from ribd.events import FAMILIES
from ribd.settings import BgpSettings
from ribd.table import FamilyState, FamilyTable, RouterRib

if TYPE_CHECKING:  # (ribd.rib imports this module)
    from ribd.rib import Rib

# The largest limit the config accepts: far above any real table (today's full
# table is ~1.04 M IPv4 + 0.23 M IPv6 prefixes), small enough to stay a bound.
MAX_PREFIXES_LIMIT = 100_000_000
# Config keys by family (``[bgp]`` and ``[[routers]]``).
LIMIT_KEYS = dict(zip(FAMILIES, ("max_prefixes_ipv4", "max_prefixes_ipv6"), strict=True))
REFUSED_LOG_EVERY = 100_000  # after a family's first refused prefix, one line per this many

log = logging.getLogger("ribd.rib")


@dataclass(frozen=True, slots=True)
class PrefixLimits:
    """The limits a RIB applies: one per family, and routers' own (by neighbor
    address, by family) over them. Empty: no limit (tools, tests)."""

    default: Mapping[str, int] = field(default_factory=dict)
    by_neighbor: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def of(self, neighbor: str, family: str) -> int:
        own = self.by_neighbor.get(neighbor)
        if own is not None and family in own:
            return own[family]
        return self.default.get(family, 0)


def prefix_limits(bgp: BgpSettings) -> PrefixLimits:
    """The limits of validated settings: ``[bgp]``'s, and routers' own keys over them."""
    own = {}
    for n in bgp.neighbors:
        limits = {
            family: value
            for family, value in zip(
                FAMILIES, (n.max_prefixes_ipv4, n.max_prefixes_ipv6), strict=True
            )
            if value is not None
        }
        if limits:
            own[n.address] = limits
    default = dict(zip(FAMILIES, (bgp.max_prefixes_ipv4, bgp.max_prefixes_ipv6), strict=True))
    return PrefixLimits(default, own)


def apply_limits(limits: PrefixLimits, routers: Mapping[str, RouterRib]) -> None:
    """Set every router's families' limits (at start, after a snapshot load, at
    each reload). The caller holds the RIB's lock."""
    for neighbor, r in routers.items():
        for family, fs in r.families.items():
            fs.max_prefixes = limits.of(neighbor, family)


def within_limit(
    table: FamilyTable, fs: FamilyState, keys: list | tuple, path_ids: list | tuple | None
) -> tuple[list, list | None, int]:
    """The prefixes (store keys, no key twice: ``Rib._announce`` applies an
    UPDATE with repeats in runs without) that may be written, their path ids
    (None stays None), and how many were refused: the ones ``fs``'s router
    already holds (in its current slot), then new ones, in order, while the
    family stays within its limit."""
    room = fs.max_prefixes - fs.prefixes
    store, slot = table.store, fs.slot
    kept: list = []
    kept_ids: list | None = None if path_ids is None else []
    refused = 0
    for key, path_id in zip(keys, repeat(0) if path_ids is None else path_ids, strict=False):
        entry = store.locate(key)[1]
        if entry is None or value_at(entry, slot) is None:
            if room <= 0:
                refused += 1
                continue
            room -= 1
        kept.append(key)
        if kept_ids is not None:
            kept_ids.append(path_id)
    return kept, kept_ids, refused


def refuse_past_limit(
    rib: Rib, r: RouterRib, family: str, keys: list | tuple, path_ids: list | tuple | None
) -> tuple[list | tuple, list | tuple | None]:
    """``within_limit`` for ``r``'s ``family`` in ``rib``, the refused prefixes
    counted (on the family and the RIB) and logged: what may be written."""
    fs = r.families[family]
    kept, kept_ids, refused = within_limit(rib.tables[family], fs, keys, path_ids)
    if not refused:
        return keys, path_ids
    fs.prefixes_refused += refused
    rib.prefixes_refused += refused
    log_refused(r, family, fs, refused)
    return kept, kept_ids


def log_refused(r: RouterRib, family: str, fs: FamilyState, refused: int) -> None:
    """Log refused prefixes of ``r``'s ``family``: the family's first, then one
    line each time its count passes a multiple of REFUSED_LOG_EVERY.
    ``fs.prefixes_refused`` already includes ``refused``."""
    total = fs.prefixes_refused
    before = total - refused
    if before and before // REFUSED_LOG_EVERY == total // REFUSED_LOG_EVERY:
        return
    log.warning(
        "router %s is at its limit of %d %s prefixes (%s): new prefixes are "
        "refused until it withdraws some; %d refused so far",
        r.label,
        fs.max_prefixes,
        family,
        LIMIT_KEYS.get(family, "max_prefixes"),
        total,
    )
