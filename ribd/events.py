"""Typed events parsed from ExaBGP's JSON API, one small object per fact.

Routers are identified by their BGP neighbor (peer) address, as ExaBGP reports it.

Events are frozen ``msgspec.Struct`` classes (they were frozen dataclasses):
the same fields, positional and keyword construction, equality, hash, repr
and immutability, but made in C. A frozen dataclass sets each field through
``object.__setattr__`` (1-4 us an event); a table load makes two or three
events per UPDATE, which cost a sixth of the feed's parse. ``gc=False``:
events hold only strings, numbers, tuples and frozensets of them and the
(untracked) attribute sets, so they cannot be part of a cycle.
"""

from __future__ import annotations

import msgspec

from ribd.attributes import PathAttributes

IPV4_UNICAST = "ipv4 unicast"
IPV6_UNICAST = "ipv6 unicast"
FAMILIES = (IPV4_UNICAST, IPV6_UNICAST)

# Routes of one family are keyed by (normalised prefix, ADD-PATH path id);
# events carry the prefixes and, only with ADD-PATH, a parallel tuple of ids
# (no per-prefix tuple on the ingest path).


class RoutesAnnounced(msgspec.Struct, frozen=True, gc=False):
    neighbor: str
    family: str
    prefixes: tuple[str, ...]
    path_ids: tuple[int, ...] | None  # None: no ADD-PATH, every id is 0
    attributes: PathAttributes


class RoutesWithdrawn(msgspec.Struct, frozen=True, gc=False):
    neighbor: str
    family: str
    prefixes: tuple[str, ...]
    path_ids: tuple[int, ...] | None
    # Set when the UPDATE announced these routes with attributes we could not
    # trust: RFC 7606 "treat-as-withdraw".
    reason: str = ""


class EndOfRib(msgspec.Struct, frozen=True, gc=False):
    neighbor: str
    family: str


class RouteRefreshMarker(msgspec.Struct, frozen=True, gc=False):
    """Enhanced route refresh (RFC 7313): the router starts (BoRR) or ends
    (EoRR) re-sending one family. Routes of that family not re-sent in
    between are gone."""

    neighbor: str
    family: str
    begin: bool  # False: end


class SessionState(msgspec.Struct, frozen=True, gc=False):
    neighbor: str
    state: str  # "connected" | "up" | "down"
    reason: str = ""
    peer_as: int = 0
    router_id: str = ""


class OpenReceived(msgspec.Struct, frozen=True, gc=False):
    """The router's OPEN: what it says about End-of-RIB.

    A router that offers graceful restart (RFC 4724, capability 64) sends
    End-of-RIB after its initial table of each family it negotiated; those
    families' convergence is then not inferred from a quiet spell, which a
    slowly arriving table can look like.
    """

    neighbor: str
    graceful_restart: bool
    # The families its OPEN offers (multiprotocol capabilities; none: IPv4 unicast).
    families: tuple[str, ...] = (IPV4_UNICAST,)


class Notification(msgspec.Struct, frozen=True, gc=False):
    neighbor: str
    direction: str
    code: int
    subcode: int
    message: str


class ExabgpShutdown(msgspec.Struct, frozen=True, gc=False):
    """ExaBGP is stopping: every session it held is going away.

    ``neighbors``: the routers that ExaBGP held, when it is one worker of
    several (the feed sets it from the relay's worker); None: every router.
    """

    neighbors: frozenset[str] | None = None


class UpdateTime(msgspec.Struct, frozen=True, gc=False):
    """Wall-clock time ExaBGP stamped on an UPDATE, for 'last update' per router."""

    neighbor: str
    time: float


Event = (
    RoutesAnnounced
    | RoutesWithdrawn
    | EndOfRib
    | RouteRefreshMarker
    | SessionState
    | OpenReceived
    | Notification
    | ExabgpShutdown
    | UpdateTime
)
