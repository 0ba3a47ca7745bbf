"""ExaBGP JSON API lines -> typed events. No I/O.

Both API formats are understood:

* 5.0 (``"exabgp": "5.0.0"``): ``as-path`` is a dict of ordered segments
  ``{"0": {"element": "as-sequence", "value": [...]}, ...}``; newer releases
  label confederation segments ``as-confed-sequence`` / ``as-confed-set``.
* 4.2 (``"exabgp": "4.0.1"``): ``as-path`` list, ``as-set`` list when present,
  ``confederation-path`` / ``confederation-set``. 4.2 groups segments by type,
  so we rebuild them in RFC 5065 order: confederation first, then the path.

A missing ``as-path`` is an empty path (route originated inside our AS).
An UPDATE whose attributes fail validation becomes a withdraw of its prefixes
(RFC 7606 treat-as-withdraw), never a silent keep of the old route.

Two paths, one behaviour. Well-formed UPDATEs (nearly every line) take the
typed path (``ribd.json_typed``): msgspec decodes the line straight into
structs, checking types and AS-number ranges in C, and prefixes are checked a
whole NLRI list at a time. Everything the typed path is not sure about (any
other message type, an unknown field, a value out of range, a bad prefix)
goes to the generic path, orjson plus the checks in Python
(``ribd.json_fields``), which alone decides what is wrong with a line. The
typed path only ever accepts what the generic one would accept, and builds
the same events from it
(tests/ribd/test_parser.py compares the two on hostile input).
"""

from __future__ import annotations

from typing import Any

import orjson
from msgspec import UNSET

from ribd.attributes import AttributeInterner
from ribd.checks import (
    MAX_DEPTH,
    MAX_TIME,
    BadValue,
    canonical_address,
    ipv4,
    show,
    text,
    timestamp,
    too_deep,
    u8,
    u32,
)
from ribd.events import (
    FAMILIES,
    EndOfRib,
    Event,
    ExabgpShutdown,
    Notification,
    RouteRefreshMarker,
    RoutesAnnounced,
    RoutesWithdrawn,
    SessionState,
    UpdateTime,
)
from ribd.json_fields import (
    FAMILY_VERSION,
    BadAttributes,
    Fields,
    attribute_fields,
    is_link_local,
    nlri_list,
    opt_tuple,
    with_next_hop,
)
from ribd.json_typed import (
    NOT_TYPED,
    UpdateLine,
    decode_update,
    known_address,
    typed_fields,
    typed_nlri,
)
from ribd.prefixes import BadPrefix
from ribd.rawlines import RawLineError, RawMessages, SessionNotSeen, is_raw_line, raw_scanner
from ribd.rawupdate import UpdateDecoder

MAX_LINE_BYTES = 16 * 1024 * 1024  # ExaBGP's largest UPDATE (64 KiB wire) fits easily
MAX_KEPT_TEXT = 512  # characters of a session-down reason or notification message kept

# Message types that carry nothing for the RIB; accepted and ignored.
_IGNORED_TYPES = frozenset(
    {"fsm", "open", "keepalive", "negotiated", "signal", "refresh", "operational", "packets"}
)


class FeedError(ValueError):
    """A line that cannot be used at all. The message says why."""


class UnseenSession(FeedError):
    """A raw message of a session whose OPENs were never seen: the feed resets it."""

    def __init__(self, message: str, neighbor: str) -> None:
        super().__init__(message)
        self.neighbor = neighbor


class ExabgpParser:
    """Turns ExaBGP JSON lines into events, interning attribute sets.

    Stateful only through the interner, so that identical attribute sets from
    any router end up as one object.
    """

    __slots__ = ("fast", "interner", "raw")

    def __init__(self, interner: AttributeInterner | None = None) -> None:
        self.interner = interner if interner is not None else AttributeInterner()
        # ExaBGP's ``packets`` lines (api_mode "raw"): decoded by ribd.rawlines
        # into the same events, attribute sets in the same interner.
        self.raw = RawMessages(UpdateDecoder(self.interner))
        # Received UPDATE lines in one C pass (ribd._rawline) where it was built;
        # None: every raw line takes the reference path (_parse_raw).
        self.fast = raw_scanner(self.raw)

    def parse(self, line: bytes | str) -> list[Event]:
        """Parse one line. Raises FeedError for a line that cannot be used."""
        if len(line) > MAX_LINE_BYTES:
            raise FeedError(f"line of {len(line)} bytes exceeds {MAX_LINE_BYTES}")
        fast = self.fast
        if fast is not None and type(line) is bytes:
            events = fast(line)  # None for a line it does not take (any JSON API line)
            if events is not None:
                return events
        if is_raw_line(line):
            return self._parse_raw(line)
        try:
            msg = decode_update(line)
        except NOT_TYPED:
            pass
        else:
            events = self._typed_update(msg)
            if events is not None:
                return events
        try:
            return self._parse_generic(line)
        except RecursionError:
            # too_deep() should have stopped it; never let a line take the reader down.
            raise FeedError(f"nested deeper than {MAX_DEPTH} levels") from None

    def _parse_raw(self, line: bytes | str) -> list[Event]:
        try:
            msg = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise FeedError(f"not JSON ({exc})") from None
        if type(msg) is not dict:
            return self._parse_generic(line)  # says what is wrong with it
        try:
            # RawMessages reads a few named keys, type-checked, and never recurses:
            # the nesting check (a walk of the whole object) is for failed lines only.
            return self.raw.events(msg)
        except SessionNotSeen as exc:
            raise UnseenSession(str(exc), exc.neighbor) from None
        except RawLineError as exc:
            if too_deep(msg):
                return self._parse_generic(line)  # "nested deeper than ..."
            raise FeedError(str(exc)) from None

    def _typed_update(self, msg: UpdateLine) -> list[Event] | None:
        """The events of a decoded UPDATE, or None to leave the line to the generic path.

        Everything is checked before anything is interned, so a line handed
        over leaves no trace.
        """
        raw_peer = msg.neighbor.address.peer
        peer = known_address(raw_peer) or canonical_address(raw_peer)
        if peer is None:
            return None
        update = msg.neighbor.message.update
        events: list[Event] = []
        if msg.time is not UNSET:
            if not 0.0 <= msg.time <= MAX_TIME:
                return None
            events.append(UpdateTime(peer, msg.time))
        if update.withdraw is not None:
            for family, entries in update.withdraw.items():
                version = FAMILY_VERSION.get(family)
                if version is None:
                    continue
                nlri = typed_nlri(entries, version)
                if nlri is None:
                    return None
                if nlri[0]:
                    events.append(RoutesWithdrawn(peer, family, *nlri))
        if update.announce is None:
            return events
        announced = []
        for family, by_next_hop in update.announce.items():
            version = FAMILY_VERSION.get(family)
            if version is None:
                continue
            groups = list(by_next_hop.items())
            if version == 6 and len(groups) > 1:
                globals_ = [g for g in groups if not is_link_local(g[0])]
                if globals_:
                    groups = globals_
            for next_hop, entries in groups:
                nlri = typed_nlri(entries, version)
                if nlri is None:
                    return None
                if nlri[0]:
                    hop = known_address(next_hop) or canonical_address(next_hop)
                    if hop is None:
                        return None
                    announced.append((family, hop, nlri))
        if not announced:
            return events
        attribute = update.attribute
        fields = None if attribute is UNSET else typed_fields(attribute)
        if fields is None:
            return None
        intern = self.interner.intern
        for family, next_hop, (prefixes, path_ids) in announced:
            attrs = intern(with_next_hop(fields, next_hop))
            events.append(RoutesAnnounced(peer, family, prefixes, path_ids, attrs))
        return events

    def _parse_generic(self, line: bytes | str) -> list[Event]:
        """Any line, every check in Python: the reference the typed path must agree with."""
        try:
            msg = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise FeedError(f"not JSON ({exc})") from None
        if type(msg) is not dict:
            raise FeedError("not a JSON object")
        if too_deep(msg):
            raise FeedError(f"nested deeper than {MAX_DEPTH} levels")
        kind = msg.get("type")
        try:
            if kind == "update":
                return self._update(msg)
            if kind == "state":
                return self._state(msg)
            if kind == "notification":
                return self._notification(msg)
            if kind == "refresh":
                return self._refresh(msg)
            if kind in _IGNORED_TYPES:
                return []
        except FeedError:
            raise
        except BadValue as exc:
            raise FeedError(f"bad value in {kind} message: {exc}") from None
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            label = kind if type(kind) is str else show(kind)  # a str here is a known type
            raise FeedError(f"malformed {label} message: {exc!r:.200}") from None
        raise FeedError(f"unknown message type {show(kind)}")

    # -- message kinds -------------------------------------------------------

    @staticmethod
    def _neighbor(msg: dict) -> tuple[dict, str]:
        neighbor = msg.get("neighbor")
        if type(neighbor) is not dict:
            raise FeedError("no neighbor object")
        address = neighbor.get("address")
        peer = address.get("peer") if type(address) is dict else None
        if peer is None or peer == "":
            raise FeedError("no neighbor peer address")
        canonical = canonical_address(peer)
        if canonical is None:
            raise BadValue(f"neighbor peer is not an IP address: {show(peer)}")
        return neighbor, canonical

    def _refresh(self, msg: dict) -> list[Event]:
        """BoRR/EoRR markers (RFC 7313); a plain refresh request carries nothing."""
        neighbor, peer = self._neighbor(msg)
        body = neighbor.get("route-refresh")
        if type(body) is not dict:
            raise FeedError("refresh message without a route-refresh object")
        subtype, afi, safi = body.get("subtype"), body.get("afi"), body.get("safi")
        if subtype not in ("begin", "end") or type(afi) is not str or type(safi) is not str:
            return []
        family = f"{afi} {safi}"
        if family not in FAMILIES:
            return []
        return [RouteRefreshMarker(peer, family, subtype == "begin")]

    def _state(self, msg: dict) -> list[Event]:
        neighbor, peer = self._neighbor(msg)
        state = neighbor.get("state")
        if type(state) is not str or state not in ("connected", "up", "down"):
            raise FeedError(f"unknown session state {show(state)}")
        asn = neighbor.get("asn", {})
        if type(asn) is not dict:
            raise BadValue(f"asn is not an object: {show(asn)}")
        return [
            SessionState(
                neighbor=peer,
                state=state,
                reason=text(neighbor.get("reason", ""), "reason", MAX_LINE_BYTES)[:MAX_KEPT_TEXT],
                peer_as=u32(asn.get("peer", 0), "peer AS"),
                router_id=ipv4(neighbor.get("router-id", ""), "router-id", empty=True),
            )
        ]

    def _notification(self, msg: dict) -> list[Event]:
        if msg.get("notification") == "shutdown":
            return [ExabgpShutdown()]
        neighbor, peer = self._neighbor(msg)
        body = neighbor.get("notification")
        if type(body) is not dict:
            raise FeedError("notification without a body")
        message = text(body.get("message", body.get("data", "")), "message", MAX_LINE_BYTES)
        return [
            Notification(
                neighbor=peer,
                direction=text(neighbor.get("direction", ""), "direction", 16),
                code=u8(body.get("code", 0), "notification code"),
                subcode=u8(body.get("subcode", 0), "notification subcode"),
                message=message[:MAX_KEPT_TEXT],
            )
        ]

    def _update(self, msg: dict) -> list[Event]:
        neighbor, peer = self._neighbor(msg)
        message = neighbor.get("message")
        if type(message) is not dict:
            raise FeedError("update without a message")
        events: list[Event] = []
        if "time" in msg:
            events.append(UpdateTime(peer, timestamp(msg["time"], "time")))
        if "eor" in message:
            eor = message["eor"]
            family = f"{eor.get('afi')} {eor.get('safi')}" if type(eor) is dict else ""
            if family in FAMILIES:
                events.append(EndOfRib(peer, family))
            return events
        update = message.get("update")
        if type(update) is not dict:
            raise FeedError("update message without an update body")
        withdraw = update.get("withdraw")
        if withdraw is not None:
            if type(withdraw) is not dict:
                raise FeedError("withdraw is not an object")
            for family, entries in withdraw.items():
                version = FAMILY_VERSION.get(family)
                if version is None:
                    continue
                try:
                    prefixes, path_ids = nlri_list(entries, version)
                except BadPrefix as exc:
                    raise FeedError(f"withdraw {family}: {exc}") from None
                if prefixes:
                    events.append(
                        RoutesWithdrawn(peer, family, tuple(prefixes), opt_tuple(path_ids))
                    )
        announce = update.get("announce")
        if announce is not None:
            if type(announce) is not dict:
                raise FeedError("announce is not an object")
            raw_attrs = update.get("attribute", {})
            for family, by_next_hop in announce.items():
                version = FAMILY_VERSION.get(family)
                if version is None:
                    continue
                if type(by_next_hop) is not dict:
                    raise FeedError(f"announce {family} is not an object")
                events.extend(self._announce(peer, family, version, by_next_hop, raw_attrs))
        return events

    def _announce(
        self, peer: str, family: str, version: int, by_next_hop: dict, raw_attrs: Any
    ) -> list[Event]:
        groups = list(by_next_hop.items())
        if version == 6 and len(groups) > 1:
            # A global and a link-local next hop list every prefix twice:
            # keep the global one, count each prefix once.
            globals_ = [g for g in groups if not is_link_local(g[0])]
            if globals_:
                groups = globals_
        events: list[Event] = []
        fields: Fields | BadAttributes | None = None  # validated on first use
        for next_hop, entries in groups:
            try:
                prefixes, path_ids = nlri_list(entries, version)
            except BadPrefix as exc:
                raise FeedError(f"announce {family}: {exc}") from None
            if not prefixes:
                continue
            if fields is None:
                try:
                    fields = attribute_fields(raw_attrs)
                except BadValue as exc:  # BadAttributes, or a shared check's
                    fields = BadAttributes(str(exc))
            hop = canonical_address(next_hop)
            if type(fields) is BadAttributes or hop is None:
                fault = fields if hop is not None else f"next hop {show(next_hop)} is no address"
                events.append(
                    RoutesWithdrawn(
                        peer,
                        family,
                        tuple(prefixes),
                        opt_tuple(path_ids),
                        reason=f"bad attributes: {fault}",
                    )
                )
                continue
            attrs = self.interner.intern(with_next_hop(fields, hop))  # type: ignore[arg-type]
            events.append(
                RoutesAnnounced(peer, family, tuple(prefixes), opt_tuple(path_ids), attrs)
            )
        return events
