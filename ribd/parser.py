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
typed path: msgspec decodes the line straight into the structs below, checking
types and AS-number ranges in C, and prefixes are checked a whole NLRI list at
a time (``_checked_prefixes``). Everything the typed path is not sure about
(any other message type, an unknown field, a value out of range, a bad
prefix) goes to the generic path, orjson plus the checks in Python, which
alone decides what is wrong with a line. The typed path only ever accepts
what the generic one would accept, and builds the same events from it
(tests/ribd/test_parser.py compares the two on hostile input).
"""

from __future__ import annotations

import socket
import sys
from itertools import repeat
from operator import attrgetter, contains
from typing import Annotated, Any, Literal

import msgspec
import orjson
from msgspec import UNSET, Meta, Struct, UnsetType

from ribd.attributes import (
    AS_CONFED_SEQUENCE,
    AS_CONFED_SET,
    AS_SEQUENCE,
    AS_SET,
    AttributeInterner,
    Segment,
)
from ribd.checks import (
    KNOWN_ADDRESSES,
    MAX_DEPTH,
    MAX_TIME,
    BadValue,
    canonical_address,
    ipv4,
    ipv4_list,
    is_ipv4,
    show,
    text,
    timestamp,
    too_deep,
    u8,
    u32,
    u32_list,
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
from ribd.prefixes import _LENGTHS, _V4_HOST_MASK, _V6_HOST_MASK, BadPrefix, normalise_prefix
from ribd.rawlines import RawLineError, RawMessages, SessionNotSeen, is_raw_line
from ribd.rawupdate import UpdateDecoder

_pton = socket.inet_pton
_ntop = socket.inet_ntop
_AF_INET = socket.AF_INET
_AF_INET6 = socket.AF_INET6
_V4_MASK = _V4_HOST_MASK

MAX_LINE_BYTES = 16 * 1024 * 1024  # ExaBGP's largest UPDATE (64 KiB wire) fits easily
MAX_KEPT_TEXT = 512  # characters of a session-down reason or notification message kept

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


class UnseenSession(FeedError):
    """A raw message of a session whose OPENs were never seen: the feed resets it."""

    def __init__(self, message: str, neighbor: str) -> None:
        super().__init__(message)
        self.neighbor = neighbor


class BadAttributes(BadValue):
    """An attribute that fails its check: the UPDATE's routes are treated as withdrawn.

    The checks of ``ribd.checks`` raise its base class, BadValue; inside
    ``attribute_fields`` either means the same.
    """


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
            raise BadAttributes(f"as-path segment {key} has unknown type {show(element)}")
        asns = u32_list(seg.get("value"), f"as-path segment {key}")
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
            asns = u32_list(attrs[key], key)
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
            raise BadAttributes(f"bad community {show(c)}")
        out.append((c[0] << 16) | c[1])
    return tuple(out)


def _large_communities(raw: Any) -> tuple[tuple[int, int, int], ...]:
    if type(raw) is not list:
        raise BadAttributes("large-community is not a list")
    out = []
    for c in raw:
        if type(c) is not list or len(c) != 3:
            raise BadAttributes(f"bad large community {show(c)}")
        out.append(
            (
                u32(c[0], "large community"),
                u32(c[1], "large community"),
                u32(c[2], "large community"),
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
            raise BadAttributes(f"bad extended community {show(c)}")
    return tuple(out)


# An attribute set without its next hop, in make_attributes' (and the snapshot
# row's) order: as_path, origin, | next_hop goes here |, local_pref, med,
# communities, large_communities, extended_communities, originator_id,
# cluster_list, atomic_aggregate, aggregator.
Fields = tuple


def attribute_fields(attrs: Any) -> Fields:
    """Validate ExaBGP's attribute object; raise BadValue (BadAttributes) naming the fault."""
    if type(attrs) is not dict:
        raise BadAttributes("attribute is not an object")
    origin = _ORIGINS.get(attrs.get("origin"))  # type: ignore[arg-type]
    if origin is None:
        raise BadAttributes(f"missing or bad origin {show(attrs.get('origin'))}")
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
    cluster = ipv4_list(attrs.get("cluster-list", ()), "cluster-list")
    originator_id = ipv4(attrs.get("originator-id", ""), "originator-id", empty=True)
    atomic = attrs.get("atomic-aggregate", False)
    if type(atomic) is not bool:
        raise BadAttributes("atomic-aggregate is not a boolean")
    return (
        as_path,
        origin,
        None if local_pref is None else u32(local_pref, "local-preference"),
        None if med is None else u32(med, "med"),
        _communities(attrs["community"]) if "community" in attrs else (),
        _large_communities(attrs["large-community"]) if "large-community" in attrs else (),
        (
            _extended_communities(attrs["extended-community"])
            if "extended-community" in attrs
            else ()
        ),
        originator_id,
        cluster,
        atomic,
        text(attrs.get("aggregator", ""), "aggregator"),
    )


def _path_id(raw: Any) -> int:
    if type(raw) is int and 0 <= raw <= _U32:
        return raw
    if type(raw) is str:
        parts = raw.split(".")
        if len(parts) == 4 and all(p.isdigit() and int(p) <= 255 for p in parts):
            a, b, c, d = (int(p) for p in parts)
            return (a << 24) | (b << 16) | (c << 8) | d
    raise BadPrefix(f"bad path-information {show(raw)}")


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
            raise BadPrefix(f"bad NLRI entry {show(entry)}")
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


# -- the typed path ------------------------------------------------------------
#
# The structs mirror ExaBGP's update lines field by field, with every field
# typed and unknown fields refused (``forbid_unknown_fields``): a skipped field
# would not get the checks orjson makes on the generic path (valid UTF-8,
# finite numbers). Constraints are those of the checks above; where those
# accept more (a 4.2 ``as-path`` of ``null``, a JSON float AS number ...), the
# struct refuses and the generic path decides. Defaults stand for "absent" only
# where the generic path treats absent and that default the same.

_U32T = Annotated[int, Meta(ge=0, le=_U32)]
_U16T = Annotated[int, Meta(ge=0, le=0xFFFF)]
# Any other integer: orjson reads 64-bit ones exactly, larger ones as floats
# (and refuses 310 digits and more), an unconstrained msgspec int as ints.
_I64 = Annotated[int, Meta(ge=-(1 << 63), le=(1 << 63) - 1)]
_TEXT = Annotated[str, Meta(max_length=256)]
_ASNS = tuple[_U32T, ...]
_STRICT = {"forbid_unknown_fields": True, "gc": False}


class _Segment(Struct, **_STRICT):
    element: Literal["as-sequence", "as-set", "as-confed-sequence", "as-confed-set"]
    value: Annotated[_ASNS, Meta(min_length=1)]


class _ExtendedCommunity(Struct, **_STRICT):
    value: _I64 | UnsetType = UNSET
    string: str | UnsetType = UNSET


class _Attributes(Struct, rename="kebab", **_STRICT):
    origin: Literal["igp", "egp", "incomplete"]
    as_path: dict[str, _Segment] | _ASNS | UnsetType = UNSET
    as_set: _ASNS | UnsetType = UNSET  # 4.2 layout
    confederation_path: _ASNS | UnsetType = UNSET  # 4.2 layout
    confederation_set: _ASNS | UnsetType = UNSET  # 4.2 layout
    local_preference: _U32T | None = None
    med: _U32T | None = None
    community: tuple[tuple[_U16T, _U16T], ...] = ()
    large_community: tuple[tuple[_U32T, _U32T, _U32T], ...] = ()
    extended_community: tuple[_ExtendedCommunity, ...] = ()
    originator_id: _TEXT = ""
    cluster_list: tuple[str, ...] = ()
    atomic_aggregate: bool = False
    aggregator: _TEXT = ""


class _Nlri(Struct, rename="kebab", **_STRICT):
    nlri: str
    path_information: _U32T | str | UnsetType = UNSET


class _Update(Struct, **_STRICT):
    attribute: _Attributes | UnsetType = UNSET
    announce: dict[str, dict[str, list[_Nlri]]] | None = None
    withdraw: dict[str, list[_Nlri]] | None = None


class _Message(Struct, **_STRICT):
    update: _Update


class _Address(Struct, **_STRICT):
    peer: str
    local: str = ""


class _Asn(Struct, **_STRICT):
    local: _I64 = 0
    peer: _I64 = 0


class _AddPath(Struct, **_STRICT):
    send: tuple[str, ...] = ()
    receive: tuple[str, ...] = ()


class _Negotiated(Struct, **_STRICT):
    message_size: _I64 = 0
    hold_time: _I64 = 0
    asn4: bool = False
    multisession: bool = False
    operational: bool = False
    refresh: str = ""
    families: tuple[str, ...] = ()
    nexthop: tuple[str, ...] = ()
    add_path: _AddPath | UnsetType = UNSET


class _Neighbor(Struct, rename="kebab", **_STRICT):
    address: _Address
    message: _Message
    asn: _Asn | UnsetType = UNSET
    router_id: str = ""
    direction: str = ""
    negotiated: _Negotiated | UnsetType = UNSET


class _UpdateLine(Struct, **_STRICT):
    type: Literal["update"]
    neighbor: _Neighbor
    time: float | UnsetType = UNSET
    exabgp: str = ""
    host: str = ""
    pid: _I64 = 0
    ppid: _I64 = 0
    counter: _I64 = 0


_decode_update = msgspec.json.Decoder(_UpdateLine).decode
_known_address = KNOWN_ADDRESSES.get  # the cache canonical_address fills: skips a call
# Decode failures that hand the line over (UnicodeDecodeError is a ValueError).
_NOT_TYPED = (msgspec.MsgspecError, ValueError, RecursionError)
_nlri_of = attrgetter("nlri")
_path_info_of = attrgetter("path_information")
_SEGMENT_KEYS = [str(i) for i in range(256)]  # a 5.0 as-path's keys, in order
# Host-bit masks as bytes, by length text; an absent key is a bad or too long length.
_V4_MASK_BYTES = {str(n): m.to_bytes(4, "big") for n, m in enumerate(_V4_HOST_MASK)}
_V6_MASK_BYTES = {str(n): m.to_bytes(16, "big") for n, m in enumerate(_V6_HOST_MASK)}
_V4_MASK_BY_TEXT = dict(zip(_V4_MASK_BYTES, _V4_HOST_MASK, strict=True))
_from_bytes = int.from_bytes
_SHORT_LIST = 16  # prefixes; measured on the PCH full table


def _checked_prefixes(texts: list[str], version: int) -> tuple[str, ...] | None:
    """The canonical prefixes if every text is a valid prefix, else None.

    The checks of ``normalise_prefix``, done for a whole list with C loops
    (map, join) instead of a Python loop per prefix: every text has exactly
    one "/", every length is a known one for the family, every address
    passes ``inet_pton``, and the AND of all addresses with all host masks,
    as one big integer each, is zero. None sends the line to the generic path,
    which finds the bad prefix and says why.
    """
    n = len(texts)
    parts = "/".join(texts).split("/")
    # n texts hold n + (number of "/") parts: 2n parts with a "/" in every
    # text means exactly one in each.
    if len(parts) != 2 * n or not all(map(contains, texts, repeat("/"))):
        return None
    addresses, lengths = parts[0::2], parts[1::2]
    try:
        if version == 4:
            masks = b"".join(map(_V4_MASK_BYTES.__getitem__, lengths))
            packed = b"".join(map(_pton, repeat(_AF_INET), addresses))
        else:
            masks = b"".join(map(_V6_MASK_BYTES.__getitem__, lengths))
            each = list(map(_pton, repeat(_AF_INET6), addresses))
            packed = b"".join(each)
    except (KeyError, OSError, ValueError):
        return None
    if int.from_bytes(packed, "big") & int.from_bytes(masks, "big"):
        return None
    if version == 4:
        # inet_pton takes only plain dotted quads: the text is already canonical.
        return tuple(texts)
    return tuple(map("{}/{}".format, map(_ntop, repeat(_AF_INET6), each), lengths))


def _typed_nlri(
    entries: list[_Nlri], version: int
) -> tuple[tuple[str, ...], tuple[int, ...] | None] | None:
    """``_nlri_list`` for decoded entries; None if any entry needs the generic path.

    Half the UPDATEs of a full table carry one or two prefixes: for short
    IPv4 lists a plain loop beats the fixed cost of ``_checked_prefixes``.
    """
    if version == 4 and len(entries) <= _SHORT_LIST:
        prefixes = []
        try:
            for e in entries:
                text = e.nlri
                address, _, length = text.partition("/")
                # KeyError: no "/", or a bad or too long length; OSError,
                # ValueError: not a dotted quad (inet_pton's own check).
                if (
                    e.path_information is not UNSET
                    or _from_bytes(_pton(_AF_INET, address), "big") & _V4_MASK_BY_TEXT[length]
                ):
                    break
                prefixes.append(text)
            else:
                return tuple(prefixes), None
        except (KeyError, OSError, ValueError):
            return None
    if not entries:
        return (), None
    checked = _checked_prefixes(list(map(_nlri_of, entries)), version)
    if checked is None:
        return None
    infos = list(map(_path_info_of, entries))
    if infos.count(UNSET) == len(infos):
        return checked, None
    try:
        return checked, tuple(
            0 if i is UNSET else i if type(i) is int else _path_id(i) for i in infos
        )
    except ValueError:  # BadPrefix, or int() of an odd digit
        return None


def _typed_fields(a: _Attributes) -> Fields | None:
    """``attribute_fields`` of a decoded attribute object; None: ask the generic path."""
    raw_path = a.as_path
    if type(raw_path) is dict:
        if len(raw_path) == 1:
            seg = raw_path.get("0")
            if seg is None:
                return None
            as_path: tuple[Segment, ...] = ((_SEGMENT_KINDS[seg.element], seg.value),)
        elif list(raw_path) == _SEGMENT_KEYS[: len(raw_path)]:  # as sorted(key=int) has it
            as_path = tuple([(_SEGMENT_KINDS[s.element], s.value) for s in raw_path.values()])
        else:
            return None
    else:
        segments: list[Segment] = []
        for asns, kind in (
            (a.confederation_path, AS_CONFED_SEQUENCE),
            (a.confederation_set, AS_CONFED_SET),
            (raw_path, AS_SEQUENCE),
            (a.as_set, AS_SET),
        ):
            if asns:  # UNSET is false, like an empty list
                segments.append((kind, asns))  # type: ignore[arg-type]
        as_path = tuple(segments)
    if a.originator_id and not is_ipv4(a.originator_id):
        return None
    if a.cluster_list and not all(map(is_ipv4, a.cluster_list)):
        return None
    extended: tuple[str, ...] = ()
    if a.extended_community:
        out = []
        for c in a.extended_community:
            if c.string is not UNSET:
                out.append(c.string)
            elif c.value is not UNSET:
                out.append(hex(c.value))
            else:
                return None
        extended = tuple(out)
    return (
        as_path,
        a.origin,
        a.local_preference,
        a.med,
        tuple([(x << 16) | y for x, y in a.community]) if a.community else (),
        a.large_community,
        extended,
        a.originator_id,
        a.cluster_list,
        a.atomic_aggregate,
        a.aggregator,
    )


class ExabgpParser:
    """Turns ExaBGP JSON lines into events, interning attribute sets.

    Stateful only through the interner, so that identical attribute sets from
    any router end up as one object.
    """

    __slots__ = ("interner", "raw")

    def __init__(self, interner: AttributeInterner | None = None) -> None:
        self.interner = interner if interner is not None else AttributeInterner()
        # ExaBGP's ``packets`` lines (api_mode "raw"): decoded by ribd.rawlines
        # into the same events, attribute sets in the same interner.
        self.raw = RawMessages(UpdateDecoder(self.interner))

    def parse(self, line: bytes | str) -> list[Event]:
        """Parse one line. Raises FeedError for a line that cannot be used."""
        if len(line) > MAX_LINE_BYTES:
            raise FeedError(f"line of {len(line)} bytes exceeds {MAX_LINE_BYTES}")
        if is_raw_line(line):
            return self._parse_raw(line)
        try:
            msg = _decode_update(line)
        except _NOT_TYPED:
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
        if type(msg) is not dict or too_deep(msg):
            return self._parse_generic(line)  # says what is wrong with it
        try:
            return self.raw.events(msg)
        except SessionNotSeen as exc:
            raise UnseenSession(str(exc), exc.neighbor) from None
        except RawLineError as exc:
            raise FeedError(str(exc)) from None

    def _typed_update(self, msg: _UpdateLine) -> list[Event] | None:
        """The events of a decoded UPDATE, or None to leave the line to the generic path.

        Everything is checked before anything is interned, so a line handed
        over leaves no trace.
        """
        raw_peer = msg.neighbor.address.peer
        peer = _known_address(raw_peer) or canonical_address(raw_peer)
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
                version = _FAMILY_VERSION.get(family)
                if version is None:
                    continue
                nlri = _typed_nlri(entries, version)
                if nlri is None:
                    return None
                if nlri[0]:
                    events.append(RoutesWithdrawn(peer, family, *nlri))
        if update.announce is None:
            return events
        announced = []
        for family, by_next_hop in update.announce.items():
            version = _FAMILY_VERSION.get(family)
            if version is None:
                continue
            groups = list(by_next_hop.items())
            if version == 6 and len(groups) > 1:
                globals_ = [g for g in groups if not _is_link_local(g[0])]
                if globals_:
                    groups = globals_
            for next_hop, entries in groups:
                nlri = _typed_nlri(entries, version)
                if nlri is None:
                    return None
                if nlri[0]:
                    hop = _known_address(next_hop) or canonical_address(next_hop)
                    if hop is None:
                        return None
                    announced.append((family, hop, nlri))
        if not announced:
            return events
        attribute = update.attribute
        fields = None if attribute is UNSET else _typed_fields(attribute)
        if fields is None:
            return None
        intern = self.interner.intern
        for family, next_hop, (prefixes, path_ids) in announced:
            attrs = intern(_with_next_hop(fields, next_hop))
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
        fields: Fields | BadAttributes | None = None  # validated on first use
        for next_hop, entries in groups:
            try:
                prefixes, path_ids = _nlri_list(entries, version)
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
                        _opt_tuple(path_ids),
                        reason=f"bad attributes: {fault}",
                    )
                )
                continue
            attrs = self.interner.intern(_with_next_hop(fields, hop))  # type: ignore[arg-type]
            events.append(
                RoutesAnnounced(peer, family, tuple(prefixes), _opt_tuple(path_ids), attrs)
            )
        return events


def _with_next_hop(fields: Fields, next_hop: str) -> tuple:
    """The full attribute row (make_attributes' argument order) for one next hop."""
    return (fields[0], fields[1], sys.intern(next_hop), *fields[2:])


def _opt_tuple(values: list[int] | None) -> tuple[int, ...] | None:
    return None if values is None else tuple(values)
