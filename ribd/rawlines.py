"""ExaBGP ``packets`` API lines (raw BGP messages in hex) -> typed events. No I/O.

With ``api_mode = "raw"`` the supervised ExaBGP reports each BGP message it
receives as its bytes (``receive { packets; ... }``) rather than as parsed
JSON, and the OPEN it sends too (``send { packets; open; }``):

    {"exabgp": "5.0.0", "time": ..., "type": "update", "neighbor": {"address":
     {"local": ..., "peer": ...}, ..., "direction": "receive",
     "message": {"category": 2, "header": "FFFF...", "body": "..."}}}

``RawMessages`` keeps, per neighbor, what its last two OPENs negotiated
(``ribd.rawopen``) and decodes UPDATEs (``ribd.rawupdate``), NOTIFICATIONs
and ROUTE-REFRESH markers (RFC 7313 BoRR/EoRR) into the same events the
JSON parser makes. Session state changes (``neighbor-changes``) stay JSON
lines and go through the JSON parser. Every fault raises ``FeedError`` with
a message naming it, for the feed to count; nothing here can stop the feed.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
from typing import Any

from ribd.checks import canonical_address, show
from ribd.events import (
    FAMILIES,
    Event,
    Notification,
    OpenReceived,
    RouteRefreshMarker,
    UpdateTime,
)
from ribd.rawopen import OpenError, OpenInfo, SessionCaps, negotiate, parse_open
from ribd.rawupdate import UpdateDecoder, UpdateError

OPEN, UPDATE, NOTIFICATION, KEEPALIVE, ROUTE_REFRESH = 1, 2, 3, 4, 5
MAX_BODY_HEX = 2 + 2 * (65535 - 19)
MAX_NEIGHBORS = 65536  # sessions whose OPENs we remember (one per configured router)
_FAMILIES = {(1, 1): FAMILIES[0], (2, 1): FAMILIES[1]}

MAX_KEPT_TEXT = 512  # as ribd.parser: characters of a notification message kept


class SessionNotSeen(ValueError):
    """A message of a session whose OPENs we never saw (we started after it came up).

    Its UPDATEs cannot be decoded without the negotiated capabilities, and an
    EoRR would sweep the routes those refused UPDATEs carried, so both are
    refused; the feed resets the session (``neighbor``) so that it opens again.
    """

    def __init__(self, message: str, neighbor: str) -> None:
        super().__init__(message)
        self.neighbor = neighbor


class RawLineError(ValueError):
    """A raw message line that cannot be used; the parser raises it as FeedError."""


RAW_MARK = b'"category"'  # only a packets line has it (hex bodies hold no quotes)


def is_raw_line(line: bytes | str) -> bool:
    return (RAW_MARK if type(line) is bytes else '"category"') in line


class RawMessages:
    """Raw message lines -> events, with each session's negotiated capabilities."""

    __slots__ = ("_caps", "_received", "_sent", "decoder")

    def __init__(self, decoder: UpdateDecoder) -> None:
        self.decoder = decoder
        self._sent: dict[str, OpenInfo] = {}
        self._received: dict[str, OpenInfo] = {}
        self._caps: dict[str, SessionCaps] = {}

    def caps(self, neighbor: str) -> SessionCaps | None:
        return self._caps.get(neighbor)

    def events(self, msg: dict) -> list[Event]:
        """The events of one decoded packets line (``msg``: its JSON object)."""
        try:  # the well-formed line, in one go; anything else is checked step by step
            neighbor = msg["neighbor"]
            message = neighbor["message"]
            peer = canonical_address(neighbor["address"]["peer"])
            category, text = message["category"], message["body"]
        except (KeyError, TypeError, IndexError):
            peer = None
        if peer is None or type(category) is not int or type(text) is not str:
            peer, neighbor, category, text = self._checked(msg)
        return self._events(msg, peer, neighbor, category, text)

    @staticmethod
    def _checked(msg: dict) -> tuple[str, dict, int, str]:
        """(peer, neighbor object, category, body) of a line, or RawLineError saying why not."""
        neighbor = msg.get("neighbor")
        if type(neighbor) is not dict:
            raise RawLineError("no neighbor object")
        address = neighbor.get("address")
        raw_peer = address.get("peer") if type(address) is dict else None
        if raw_peer is None or raw_peer == "":
            raise RawLineError("no neighbor peer address")
        peer = canonical_address(raw_peer)
        if peer is None:
            raise RawLineError(
                f"bad value in raw message: neighbor peer {show(raw_peer)} is no address"
            )
        message = neighbor.get("message")
        if type(message) is not dict:
            raise RawLineError("malformed raw message: no message object")
        category, text = message.get("category"), message.get("body", "")
        if type(category) is not int or type(text) is not str:
            raise RawLineError(
                f"malformed raw message: category {show(category)}, body {show(text)}"
            )
        return peer, neighbor, category, text

    def _events(
        self, msg: dict, peer: str, neighbor: dict, category: int, text: str
    ) -> list[Event]:
        if len(text) > MAX_BODY_HEX:
            raise RawLineError(
                f"malformed raw message: body of {len(text)} hex digits exceeds {MAX_BODY_HEX}"
            )
        if text[:2] == "0x":  # ExaBGP's hexstring
            text = text[2:]
        try:
            body = binascii.a2b_hex(text)
        except (binascii.Error, ValueError):
            raise RawLineError(f"malformed raw message: body is not hex ({show(text)})") from None
        direction = neighbor.get("direction")
        if category == UPDATE:
            if direction != "receive":
                return []
            caps = self._caps.get(peer)
            if caps is None:
                raise SessionNotSeen(
                    f"malformed raw UPDATE from {peer}: no OPEN of the session was seen", peer
                )
            try:
                events = self.decoder.decode(peer, body, caps)
            except UpdateError as exc:
                raise RawLineError(f"malformed raw UPDATE from {peer}: {exc}") from None
            stamp = msg.get("time")
            if type(stamp) in (int, float) and 0 <= stamp <= 253402300799.0:
                events.insert(0, UpdateTime(peer, float(stamp)))
            return events
        if category == OPEN:
            return self._open(peer, direction, body)
        if category == NOTIFICATION:
            return [_notification(peer, direction, body)]
        if category == ROUTE_REFRESH:
            if direction == "receive" and peer not in self._caps:
                raise SessionNotSeen(
                    f"malformed raw ROUTE-REFRESH from {peer}: no OPEN of the session was seen",
                    peer,
                )
            return _refresh(peer, body)
        if category == KEEPALIVE or 0 < category < 256:
            return []
        raise RawLineError(f"malformed raw message: category {category}")

    def _open(self, peer: str, direction: Any, body: bytes) -> list[Event]:
        try:
            info = parse_open(body)
        except OpenError as exc:
            raise RawLineError(f"malformed raw OPEN of {peer}: {exc}") from None
        if direction == "send":
            side = self._sent
        elif direction == "receive":
            side = self._received
        else:
            raise RawLineError(f"malformed raw OPEN of {peer}: direction {show(direction)}")
        if peer not in side and len(side) >= MAX_NEIGHBORS:
            side.clear()  # a flood of made-up neighbors cannot grow us without bound
        side[peer] = info
        other = (self._received if side is self._sent else self._sent).get(peer)
        if other is not None:
            sent, received = (info, other) if side is self._sent else (other, info)
            if len(self._caps) >= MAX_NEIGHBORS and peer not in self._caps:
                self._caps.clear()
            self._caps[peer] = negotiate(sent, received)
        if side is self._received:
            return [OpenReceived(peer, info.graceful_restart, info.families)]
        return []

    def forget(self, peer: str) -> None:
        """A session ended: its next one negotiates again."""
        self._sent.pop(peer, None)
        self._received.pop(peer, None)
        self._caps.pop(peer, None)


def raw_scanner(raw: RawMessages) -> Callable[[bytes], list[Event] | None] | None:
    """The compiled fast path for received UPDATE lines (``ribd._rawline``), None
    where it was not built. It reads ``raw``'s session table and decoder, and
    returns None for any line it does not take: the caller then runs the
    reference path (orjson and ``RawMessages.events``)."""
    try:
        from ribd._rawline import RawLineScanner
    except ImportError:
        return None
    return RawLineScanner(raw).events


def _notification(peer: str, direction: Any, body: bytes) -> Notification:
    if len(body) < 2:
        raise RawLineError(f"malformed raw NOTIFICATION of {peer}: {len(body)} octets")
    data = body[2:]
    return Notification(
        neighbor=peer,
        direction=direction if direction in ("send", "receive") else "",
        code=body[0],
        subcode=body[1],
        message=data.decode("utf-8", "replace")[:MAX_KEPT_TEXT],
    )


def _refresh(peer: str, body: bytes) -> list[Event]:
    """RFC 7313: subtype 1 begins (BoRR), 2 ends (EoRR) a family's re-send."""
    if len(body) != 4:
        raise RawLineError(f"malformed raw ROUTE-REFRESH of {peer}: {len(body)} octets, not 4")
    family = _FAMILIES.get((int.from_bytes(body[0:2], "big"), body[3]))
    if family is None or body[2] not in (1, 2):
        return []
    return [RouteRefreshMarker(peer, family, body[2] == 1)]
