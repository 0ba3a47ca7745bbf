"""Caches of route messages keyed by an attribute set's id() never serve a
set that was freed to another set at the same address.

``convert.RouteMessages`` (the Resolve rows' route messages, one per service
and a module default) keyed its messages by ``id(m.attributes)`` and checked
only the next hop against the cached message: once a set was freed (its
route replaced by churn, or the RIB of a previous batch gone), a new set at
the same address with the same next hop but another local-pref got the old
message. test_bulk_many_exporters' seed 5 failed that way once in a full
suite run (the batch's route showed local-pref 100, the one-flow answer
200); in one process over many seeds it failed about one seed in ten. A
stream's route dictionary (``wire.WireRoutes``) numbered exact-path routes
the same way, so a stream was sent the old route's number for the new one.

pymalloc hands a freed block back to the next allocation of its size
class, so the new set lands at the freed address within a few tries.
"""

from __future__ import annotations

from collections.abc import Callable

from attribution import wire
from attribution.convert import RouteMessages
from attribution.wire import RouteEncoder, WireRoutes
from ribd.attributes import AS_SEQUENCE, PathAttributes, RouterPart, make_attributes
from ribd.rib import RouteMatch

HOP = "127.0.4.1"
PREFIX = "10.0.0.0/8"


def _set(local_pref: int) -> PathAttributes:
    return make_attributes(((AS_SEQUENCE, (65001, 65002)),), next_hop=HOP, local_pref=local_pref)


def _at_freed_address(gone: int, make: Callable[[], PathAttributes]) -> PathAttributes:
    """A set from ``make`` at address ``gone`` if the allocator hands it out
    within many tries (it does unless something still holds the set that
    was there), else the last one made."""
    held = []
    for _ in range(100_000):
        b = make()
        if id(b) == gone:
            return b
        held.append(b)
    return held[-1]


def _other_policy(a: PathAttributes) -> Callable[[], PathAttributes]:
    """Sets like ``a`` (its core, next hop, communities) with local-pref 200:
    one 32-byte allocation each, the size class ``a`` was freed to."""
    own = RouterPart(a.next_hop, a.communities, (200, "", ()))
    core = a.core
    return lambda: PathAttributes(core, own)


def test_route_messages_never_answer_a_new_set_at_a_freed_sets_address():
    messages = RouteMessages()
    a = _set(100)
    assert messages.get("r0", RouteMatch(PREFIX, 8, a, 0, False), 64500, False).local_pref == 100
    make, gone = _other_policy(a), id(a)
    del a  # its route replaced: nothing else holds the set
    b = _at_freed_address(gone, make)
    assert b.local_pref == 200
    m = RouteMatch(PREFIX, 8, b, 0, False)
    assert messages.get("r0", m, 64500, False).local_pref == 200


def test_a_stream_numbers_a_new_set_at_a_freed_sets_address_as_a_new_route(monkeypatch):
    # The shared encoder keeps a set with its entry; once its cache turned
    # over (one entry here), only the stream's dictionary knew the set's id.
    monkeypatch.setattr(wire, "MAX_MATCH_ENTRIES", 1)
    monkeypatch.setattr(wire, "MAX_ATTRIBUTE_PARTS", 1)
    routes = WireRoutes(RouteEncoder(), 64500, False)
    a = _set(100)
    first = routes.from_match("r0", RouteMatch(PREFIX, 8, a, 0, False))
    other = _set(300)
    routes.from_match("r0", RouteMatch("172.16.0.0/12", 12, other, 0, False))  # turns the cache
    make, gone = _other_policy(a), id(a)
    del a
    b = _at_freed_address(gone, make)
    again = routes.from_match("r0", RouteMatch(PREFIX, 8, b, 0, False))
    assert again != first  # a new entry: the route it shows changed
    _, entries = routes.take_new()
    assert len(entries) == 3
