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
"""

from __future__ import annotations

import socket
import sys
from hashlib import blake2b as _blake2b
from typing import Any

import orjson

from ribd.attributes import (
    AS_CONFED_SEQUENCE,
    AS_CONFED_SET,
    AS_SEQUENCE,
    AS_SET,
    AttributeInterner,
    PathAttributes,
    Segment,
    make_attributes,
)
from ribd.events import (
    FAMILIES,
    EndOfRib,
    Event,
    ExabgpShutdown,
    Notification,
    RoutesAnnounced,
    RoutesWithdrawn,
    SessionState,
    UpdateTime,
)
from ribd.prefixes import _LENGTHS, _V4_HOST_MASK, BadPrefix, normalise_prefix

_pton = socket.inet_pton
_AF_INET = socket.AF_INET
_V4_MASK = _V4_HOST_MASK

MAX_LINE_BYTES = 16 * 1024 * 1024  # ExaBGP's largest UPDATE (64 KiB wire) fits easily

_FAMILY_VERSION = {"ipv4 unicast": 4, "ipv6 unicast": 6}
_ORIGINS = {"igp": "igp", "egp": "egp", "incomplete": "incomplete"}
_SEGMENT_KINDS = {
    "as-sequence": AS_SEQUENCE,
    "as-set": AS_SET,
    "as-confed-sequence": AS_CONFED_SEQUENCE,
    "as-confed-set": AS_CONFED_SET,
}
# Message types that carry nothing for the RIB; accepted and ignored.
_IGNORED_TYPES = frozenset(
    {"fsm", "open", "keepalive", "negotiated", "signal", "refresh", "operational", "packets"}
)
_U32 = 0xFFFFFFFF


class FeedError(ValueError):
    """A line that cannot be used at all. The message says why."""


class BadAttributes(ValueError):
    pass


def _u32(value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value <= _U32:
        raise BadAttributes(f"{what} is not a 32-bit unsigned integer: {value!r:.40}")
    return value


def _u32_list(values: Any, what: str) -> tuple[int, ...]:
    if type(values) is not list:
        raise BadAttributes(f"{what} is not a list")
    for v in values:
        if type(v) is not int or not 0 <= v <= _U32:
            raise BadAttributes(f"{what} has a bad AS number: {v!r:.40}")
    return tuple(values)


def _as_path_v5(raw: Any) -> tuple[Segment, ...]:
    if type(raw) is not dict:
        raise BadAttributes("as-path is neither a segment dict (5.0) nor a list (4.2)")
    segments = []
    try:
        order = sorted(raw, key=int)
    except ValueError:
        raise BadAttributes("as-path segment keys are not numbers") from None
    for key in order:
        seg = raw[key]
        if type(seg) is not dict:
            raise BadAttributes(f"as-path segment {key} is not an object")
        kind = _SEGMENT_KINDS.get(seg.get("element"))
        if kind is None:
            element = seg.get("element")
            raise BadAttributes(f"as-path segment {key} has unknown type {element!r:.40}")
        asns = _u32_list(seg.get("value"), f"as-path segment {key}")
        if not asns:
            raise BadAttributes(f"as-path segment {key} is empty")
        segments.append((kind, asns))
    return tuple(segments)


def _as_path_v4(attrs: dict) -> tuple[Segment, ...]:
    segments: list[Segment] = []
    for key, kind in (
        ("confederation-path", AS_CONFED_SEQUENCE),
        ("confederation-set", AS_CONFED_SET),
        ("as-path", AS_SEQUENCE),
        ("as-set", AS_SET),
    ):
        if key in attrs:
            asns = _u32_list(attrs[key], key)
            if asns:
                segments.append((kind, asns))
    return tuple(segments)


def _communities(raw: Any) -> tuple[int, ...]:
    if type(raw) is not list:
        raise BadAttributes("community is not a list")
    out = []
    for c in raw:
        if (
            type(c) is not list
            or len(c) != 2
            or type(c[0]) is not int
            or type(c[1]) is not int
            or not (0 <= c[0] <= 0xFFFF and 0 <= c[1] <= 0xFFFF)
        ):
            raise BadAttributes(f"bad community {c!r:.40}")
        out.append((c[0] << 16) | c[1])
    return tuple(out)


def _large_communities(raw: Any) -> tuple[tuple[int, int, int], ...]:
    if type(raw) is not list:
        raise BadAttributes("large-community is not a list")
    out = []
    for c in raw:
        if type(c) is not list or len(c) != 3:
            raise BadAttributes(f"bad large community {c!r:.40}")
        out.append(
            (
                _u32(c[0], "large community"),
                _u32(c[1], "large community"),
                _u32(c[2], "large community"),
            )
        )
    return tuple(out)


def _extended_communities(raw: Any) -> tuple[str, ...]:
    if type(raw) is not list:
        raise BadAttributes("extended-community is not a list")
    out = []
    for c in raw:
        if type(c) is dict and type(c.get("string")) is str:
            out.append(c["string"])
        elif type(c) is dict and type(c.get("value")) is int:
            out.append(hex(c["value"]))
        else:
            raise BadAttributes(f"bad extended community {c!r:.40}")
    return tuple(out)


def _text(raw: Any, what: str) -> str:
    if type(raw) is not str or len(raw) > 256:
        raise BadAttributes(f"{what} is not a string")
    return raw


def build_attributes(attrs: dict, next_hop: str) -> PathAttributes:
    """Validate ExaBGP's attribute object; raise BadAttributes naming the fault."""
    if type(attrs) is not dict:
        raise BadAttributes("attribute is not an object")
    origin = _ORIGINS.get(attrs.get("origin"))  # type: ignore[arg-type]
    if origin is None:
        raise BadAttributes(f"missing or bad origin {attrs.get('origin')!r:.40}")
    raw_path = attrs.get("as-path")
    if type(raw_path) is dict:
        as_path = _as_path_v5(raw_path)
    elif raw_path is None or type(raw_path) is list:
        # 4.2 layout; a missing AS_PATH is an empty path (originated inside
        # our AS), possibly with confederation segments of its own.
        as_path = _as_path_v4(attrs)
    else:
        raise BadAttributes("as-path is neither a segment dict (5.0) nor a list (4.2)")
    local_pref = attrs.get("local-preference")
    med = attrs.get("med")
    cluster = attrs.get("cluster-list", ())
    if type(cluster) not in (list, tuple) or any(type(c) is not str for c in cluster):
        raise BadAttributes("cluster-list is not a list of addresses")
    atomic = attrs.get("atomic-aggregate", False)
    if type(atomic) is not bool:
        raise BadAttributes("atomic-aggregate is not a boolean")
    return make_attributes(
        as_path=as_path,
        origin=origin,
        next_hop=next_hop,
        local_pref=None if local_pref is None else _u32(local_pref, "local-preference"),
        med=None if med is None else _u32(med, "med"),
        communities=_communities(attrs["community"]) if "community" in attrs else (),
        large_communities=(
            _large_communities(attrs["large-community"]) if "large-community" in attrs else ()
        ),
        extended_communities=(
            _extended_communities(attrs["extended-community"])
            if "extended-community" in attrs
            else ()
        ),
        originator_id=_text(attrs.get("originator-id", ""), "originator-id"),
        cluster_list=tuple(cluster),
        atomic_aggregate=atomic,
        aggregator=_text(attrs.get("aggregator", ""), "aggregator"),
    )


def _path_id(raw: Any) -> int:
    if type(raw) is int and 0 <= raw <= _U32:
        return raw
    if type(raw) is str:
        parts = raw.split(".")
        if len(parts) == 4 and all(p.isdigit() and int(p) <= 255 for p in parts):
            a, b, c, d = (int(p) for p in parts)
            return (a << 24) | (b << 16) | (c << 8) | d
    raise BadPrefix(f"bad path-information {raw!r:.40}")


def _nlri_list(entries: Any, version: int) -> tuple[list[str], list[int] | None]:
    """Validate one NLRI list; returns prefixes and (ADD-PATH only) path ids.

    This is the per-prefix hot loop of ingest, hence the inlined IPv4 check.
    """
    if type(entries) is not list:
        raise BadPrefix("NLRI list is not a list")
    prefixes: list[str] = []
    path_ids: list[int] | None = None
    append = prefixes.append
    for entry in entries:
        text = entry.get("nlri") if type(entry) is dict else None
        if type(text) is not str:
            raise BadPrefix(f"bad NLRI entry {entry!r:.60}")
        if version == 4:
            addr, _, length_text = text.partition("/")
            length = _LENGTHS.get(length_text, 99)
            try:
                bad = length > 32 or int.from_bytes(_pton(_AF_INET, addr), "big") & _V4_MASK[length]
            except OSError:
                bad = True
            if bad:
                normalise_prefix(text, 4)  # raises with the precise reason
            append(text)
        else:
            append(normalise_prefix(text, 6))
        if "path-information" in entry:
            if path_ids is None:
                path_ids = [0] * (len(prefixes) - 1)
            path_ids.append(_path_id(entry["path-information"]))
        elif path_ids is not None:
            path_ids.append(0)
    return prefixes, path_ids


def _is_link_local(next_hop: str) -> bool:
    return next_hop[:3].lower() in ("fe8", "fe9", "fea", "feb")  # fe80::/10


class ExabgpParser:
    """Turns ExaBGP JSON lines into events, interning attribute sets.

    Stateful only through the interner, so that identical attribute sets from
    any router end up as one object.
    """

    __slots__ = ("interner",)

    def __init__(self, interner: AttributeInterner | None = None) -> None:
        self.interner = interner if interner is not None else AttributeInterner()

    def parse(self, line: bytes | str) -> list[Event]:
        """Parse one line. Raises FeedError for a line that cannot be used."""
        if len(line) > MAX_LINE_BYTES:
            raise FeedError(f"line of {len(line)} bytes exceeds {MAX_LINE_BYTES}")
        try:
            msg = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise FeedError(f"not JSON ({exc})") from None
        if type(msg) is not dict:
            raise FeedError("not a JSON object")
        kind = msg.get("type")
        try:
            if kind == "update":
                return self._update(msg)
            if kind == "state":
                return self._state(msg)
            if kind == "notification":
                return self._notification(msg)
            if kind in _IGNORED_TYPES:
                return []
        except FeedError:
            raise
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise FeedError(f"malformed {kind} message: {exc!r:.200}") from None
        raise FeedError(f"unknown message type {kind!r:.40}")

    # -- message kinds -------------------------------------------------------

    @staticmethod
    def _neighbor(msg: dict) -> tuple[dict, str]:
        neighbor = msg.get("neighbor")
        if type(neighbor) is not dict:
            raise FeedError("no neighbor object")
        address = neighbor.get("address")
        peer = address.get("peer") if type(address) is dict else None
        if type(peer) is not str or not peer:
            raise FeedError("no neighbor peer address")
        return neighbor, peer

    def _state(self, msg: dict) -> list[Event]:
        neighbor, peer = self._neighbor(msg)
        state = neighbor.get("state")
        if state not in ("connected", "up", "down"):
            raise FeedError(f"unknown session state {state!r:.40}")
        asn = neighbor.get("asn")
        peer_as = asn.get("peer", 0) if type(asn) is dict else 0
        router_id = neighbor.get("router-id", "")
        return [
            SessionState(
                neighbor=peer,
                state=state,
                reason=str(neighbor.get("reason", ""))[:512],
                peer_as=peer_as if type(peer_as) is int else 0,
                router_id=router_id if type(router_id) is str else "",
            )
        ]

    def _notification(self, msg: dict) -> list[Event]:
        if msg.get("notification") == "shutdown":
            return [ExabgpShutdown()]
        neighbor, peer = self._neighbor(msg)
        body = neighbor.get("notification")
        if type(body) is not dict:
            raise FeedError("notification without a body")
        return [
            Notification(
                neighbor=peer,
                direction=str(neighbor.get("direction", "")),
                code=int(body.get("code", 0)),
                subcode=int(body.get("subcode", 0)),
                message=str(body.get("message", body.get("data", "")))[:512],
            )
        ]

    def _update(self, msg: dict) -> list[Event]:
        neighbor, peer = self._neighbor(msg)
        message = neighbor.get("message")
        if type(message) is not dict:
            raise FeedError("update without a message")
        events: list[Event] = []
        stamp = msg.get("time")
        if type(stamp) in (int, float):
            events.append(UpdateTime(peer, float(stamp)))
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
                version = _FAMILY_VERSION.get(family)
                if version is None:
                    continue
                try:
                    prefixes, path_ids = _nlri_list(entries, version)
                except BadPrefix as exc:
                    raise FeedError(f"withdraw {family}: {exc}") from None
                if prefixes:
                    events.append(
                        RoutesWithdrawn(peer, family, tuple(prefixes), _opt_tuple(path_ids))
                    )
        announce = update.get("announce")
        if announce is not None:
            if type(announce) is not dict:
                raise FeedError("announce is not an object")
            raw_attrs = update.get("attribute", {})
            for family, by_next_hop in announce.items():
                version = _FAMILY_VERSION.get(family)
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
            globals_ = [g for g in groups if not _is_link_local(g[0])]
            if globals_:
                groups = globals_
        events: list[Event] = []
        # Interning key: a 128-bit digest of the attribute JSON and next hop.
        # (orjson's output buffer is ~4 KiB; keeping it as the key would cost
        # more than the attributes themselves.)
        attr_json = orjson.dumps(raw_attrs) if type(raw_attrs) is dict else b""
        for next_hop, entries in groups:
            try:
                prefixes, path_ids = _nlri_list(entries, version)
            except BadPrefix as exc:
                raise FeedError(f"announce {family}: {exc}") from None
            if not prefixes:
                continue
            key = _blake2b(attr_json + next_hop.encode(), digest_size=16).digest()
            attrs = self.interner.get(key)
            if attrs is None:
                try:
                    attrs = self.interner.add(
                        key, build_attributes(raw_attrs, sys.intern(next_hop))
                    )
                except BadAttributes as exc:
                    events.append(
                        RoutesWithdrawn(
                            peer,
                            family,
                            tuple(prefixes),
                            _opt_tuple(path_ids),
                            reason=f"bad attributes: {exc}",
                        )
                    )
                    continue
            events.append(
                RoutesAnnounced(peer, family, tuple(prefixes), _opt_tuple(path_ids), attrs)
            )
        return events


def _opt_tuple(values: list[int] | None) -> tuple[int, ...] | None:
    return None if values is None else tuple(values)
