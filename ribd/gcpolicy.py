"""The cyclic collector's policy for a RIB's tables: what a load leaves is frozen once it settles.

A table load leaves ~1e5 long-lived GC-tracked objects (the interner's dicts,
lists and index arrays, router state) young. CPython walks them all again at
the next generation-1 collection, which comes once per 50 young ones (about
once per 16 routers' loads with ``attribution.service.tune_gc``'s thresholds):
0.13-0.25 CPU-s, paid by whichever router loads then, in the feed's thread
(router 17 after sixteen: ~9% of its feed). Frozen when the load has settled
(``gc.freeze``: O(1), a list splice), they are never walked again, so a router
loaded after others walks only its own objects, as the first does.

What freezing costs: a cycle among frozen objects is never collected (CPython
collects the permanent generation only after ``gc.unfreeze``). Objects without
cycles are freed by reference counting as before, frozen or not. The RIB's
objects (entries, rows, Overlays, attribute sets, the interner's containers)
hold no cycles; tests/ribd/test_gc_policy.py checks that nothing frozen at a
settled load dies in a cycle through a service's life (views rebuilt, config
reloads, feed connections, gRPC calls, refreshes, snapshots). The service
already froze everything at start-up and after a snapshot load
(``attribution.service``); generation 2 is collected only when it has grown by
a quarter and 1000 generation-1 collections passed, so cyclic garbage that
reached it was, in practice, not collected either.

Off unless ``enable()`` was called (``attribution.service.tune_gc`` does): a
library user's process keeps CPython's defaults.
"""

from __future__ import annotations

import gc

# Route writes (all tables) since the last freeze from which a quiet RIB is
# frozen: a quarter of a today-sized table. Churn alone reaches it too (then
# a freeze every FREEZE_AFTER writes, e.g. ~45 min at 100 writes/s).
FREEZE_AFTER = 262_144

_enabled = False
_freezes = 0  # freezes done, ever (tests, metrics)


def enable(on: bool = True) -> None:
    """Freeze settled loads from now on (``on``) or not."""
    global _enabled
    _enabled = on


def enabled() -> bool:
    return _enabled


def freezes() -> int:
    """How many settled loads were frozen in this process."""
    return _freezes


def load_settled(writes: int, since: int) -> bool:
    """Freeze what the last loads left if ``writes`` (route writes now, all
    tables) are FREEZE_AFTER past ``since`` (at the last freeze) and the policy
    is on; True if it froze (the caller then notes ``writes``). The caller has
    checked that no table streams in."""
    global _freezes
    if not _enabled or writes - since < FREEZE_AFTER:
        return False
    # The youngest generation first (<= the threshold's 100 k objects, a walk
    # they were due anyway): a cycle made and dropped since the last young
    # collection (``ast.literal_eval``'s closures, ``inspect``'s local classes)
    # is freed now, not frozen as garbage for ever.
    gc.collect(0)
    gc.freeze()
    _freezes += 1
    return True
