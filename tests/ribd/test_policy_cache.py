"""The direct-mapped cache of (local_pref, originator id, cluster list)
tuples never hands a set another set's policy.

Sets share their policy tuple through a cache of SHARE_SLOTS slots keyed by
the tuple's hash (``AttributeInterner``); two policies in one slot evict
each other. A cache that returned the slot's tuple without comparing it
would give a set another route's local-pref, and the best-path choice
(``preference_key`` reads ``policy[0]``) would pick by it: one suspect of a
flaky batch/one-flow difference in local-pref (issue 11; the cause was a
route message cache, tests/attribution/test_route_caches_id_reuse.py).
"""

from __future__ import annotations

from ribd.attributes import AS_SEQUENCE, SHARE_SLOTS, AttributeInterner
from ribd.events import EndOfRib, RoutesAnnounced, SessionState
from ribd.rib import Rib


def _slot(local_pref: int) -> int:
    return hash((local_pref, "", ())) % SHARE_SLOTS  # ints, "" and (): the same every run


def _row(local_pref: int | None, hop: str = "192.0.2.1") -> tuple:
    """A row in ``make_attributes``' order."""
    path = ((AS_SEQUENCE, (65001, 64500)),)
    return (path, "igp", hop, local_pref, None, (), (), (), "", (), False, "")


def _colliding() -> tuple[int, int]:
    """Two local-prefs > 256 whose policies take one slot (ints above 256
    are distinct objects, as decoded ones are)."""
    first = 300
    other = next(lp for lp in range(301, 10_000_000) if _slot(lp) == _slot(first))
    return first, other


def test_sets_whose_policies_share_a_slot_keep_their_own():
    interner = AttributeInterner()
    low, high = _colliding()
    sets = [interner.intern(_row(lp, f"192.0.2.{k}")) for k in range(4) for lp in (low, high)]
    assert [s.local_pref for s in sets] == [low, high] * 4
    again = interner.intern(_row(low, "192.0.2.9"))
    assert again.policy == (low, "", ()) and again.policy is not sets[1].policy


def test_the_best_path_follows_each_sets_own_local_pref_under_collisions():
    """ADD-PATH paths of one prefix whose policies collide: the higher
    local-pref is the best path however the cache was filled."""
    low, high = _colliding()
    interner = AttributeInterner()
    rib = Rib()
    rib.apply(SessionState("127.0.3.1", "up"))
    for path_id, lp in ((1, high), (2, low), (3, high), (4, low)):
        attrs = interner.intern(_row(lp, f"192.0.2.{path_id}"))
        rib.apply(RoutesAnnounced("127.0.3.1", "ipv4 unicast", ("10.0.0.0/8",), (path_id,), attrs))
    rib.apply(EndOfRib("127.0.3.1", "ipv4 unicast"))
    best = rib.lookup("127.0.3.1", "ipv4 unicast", "10.1.2.3")
    assert best is not None and (best.path_id, best.attributes.local_pref) == (1, high)
    paths = rib.exact("127.0.3.1", "ipv4 unicast", "10.0.0.0/8")
    assert [p.attributes.local_pref for p in paths] == [high, high, low, low]
