"""Raw BGP UPDATE messages -> the typed events the JSON parser makes. No I/O.

The JSON path has ExaBGP decode every UPDATE into Python objects, encode
them as JSON, and the service decode the JSON again. With ExaBGP's
``packets`` API the UPDATE's bytes reach us as they came off the wire, and
this module decodes them straight into ``RoutesAnnounced`` /
``RoutesWithdrawn`` / ``EndOfRib``, interning attribute sets with the same
``AttributeInterner`` rows the JSON parser builds, so the RIB cannot tell
which path an event took (tests/ribd/test_rawupdate.py compares them).

What it decodes:

* RFC 4271: withdrawn routes, ORIGIN, AS_PATH, NEXT_HOP, MULTI_EXIT_DISC,
  LOCAL_PREF, ATOMIC_AGGREGATE, AGGREGATOR, NLRI; RFC 1997 COMMUNITIES,
  RFC 4360 extended and RFC 8092 large communities, RFC 4456
  ORIGINATOR_ID / CLUSTER_LIST, RFC 5065 confederation segments.
* RFC 4760 MP_REACH_NLRI / MP_UNREACH_NLRI for IPv4 and IPv6 unicast (other
  families are skipped, as the JSON path skips them); End-of-RIB (RFC 4724).
* RFC 6793: AS numbers of 2 or 4 octets as the session negotiated; on a
  2-octet session AS4_PATH and AS4_AGGREGATOR are merged as its 4.2.3 says
  (and ExaBGP does); on a 4-octet session they are ignored.
* RFC 7911: path identifiers for the families with ADD-PATH receive.
* RFC 7606 error handling: a malformed attribute makes the UPDATE's routes
  a withdrawal (treat-as-withdraw, with the reason) or is dropped
  (attribute discard: ATOMIC_AGGREGATE, AGGREGATOR, AS4_PATH,
  AS4_AGGREGATOR); only an UPDATE whose framing or NLRI cannot be parsed at
  all is refused whole (``UpdateError``). One bad UPDATE never touches
  another's routes.

Differences from ExaBGP's JSON, on purpose: trailing bits of a prefix are
masked (RFC 4271 calls them irrelevant; the JSON parser refuses the line);
a missing AS_PATH withdraws the routes (RFC 7606 3.d; the JSON path reads
an empty path); extended communities other than route target / origin are
shown as ``0x`` and their 8 octets in hex.
"""

from __future__ import annotations

import socket
import sys

from ribd.attributes import AttributeInterner
from ribd.events import (
    IPV4_UNICAST,
    IPV6_UNICAST,
    EndOfRib,
    Event,
    RoutesAnnounced,
    RoutesWithdrawn,
)
from ribd.interner import share_numbers
from ribd.rawattrs import (
    _CLUSTERS,
    _COMMUNITIES,
    _HOPS,
    _ORIGINS,
    _PATHS2,
    _PATHS4,
    AGGREGATOR,
    AS4_AGGREGATOR,
    AS4_PATH,
    AS_PATH,
    AS_TRANS,
    ATOMIC_AGGREGATE,
    CLUSTER_LIST,
    COMMUNITIES,
    EXTENDED_COMMUNITIES,
    LARGE_COMMUNITIES,
    LOCAL_PREF,
    MAX_UPDATE_BYTES,
    MED,
    MEMO_SIZE,
    MP_REACH,
    MP_UNREACH,
    NEXT_HOP,
    ORIGIN,
    ORIGINATOR_ID,
    UpdateError,
    _asns,
    _extended,
    _Malformed,
    _split_attributes,
    as_path_segments,
    merge_as4_path,
)
from ribd.rawnlri import NlriError, ipv4_prefixes, ipv6_prefixes
from ribd.rawopen import SessionCaps

_ntoa = socket.inet_ntoa
_ntop = socket.inet_ntop
_AF_INET6 = socket.AF_INET6
_from_bytes = int.from_bytes
_intern = sys.intern

_FAMILIES = {(1, 1): IPV4_UNICAST, (2, 1): IPV6_UNICAST}
_EOR_V4 = b"\0\0\0\0"
_NO_NLRI: tuple[list[str], None] = ([], None)  # never mutated


class PyUpdateDecoder:
    """Decodes one session's UPDATE bodies into events, interning attribute sets.

    The reference decoder, in Python; ``UpdateDecoder`` is its compiled twin
    (``ribd._rawdecode``) when that was built, this class otherwise.

    Stateless apart from the interner (shared with the JSON parser, so both
    paths end on the same objects); the session's negotiated capabilities
    come with each call.
    """

    __slots__ = ("interner",)

    def __init__(self, interner: AttributeInterner | None = None) -> None:
        self.interner = interner if interner is not None else AttributeInterner()

    def decode(self, neighbor: str, body: bytes, caps: SessionCaps) -> list[Event]:
        """The events of one UPDATE body (the message after its 19-octet header)."""
        if body == _EOR_V4:
            return [EndOfRib(neighbor, IPV4_UNICAST)]
        end = len(body)
        if end > MAX_UPDATE_BYTES:
            raise UpdateError(f"UPDATE of {end} octets exceeds {MAX_UPDATE_BYTES}")
        if end < 4:
            raise UpdateError(f"UPDATE of {end} octets is shorter than its two length fields")
        withdrawn_len = (body[0] << 8) | body[1]
        attr_at = 2 + withdrawn_len
        if attr_at + 2 > end:
            raise UpdateError(f"withdrawn routes length {withdrawn_len} runs past the UPDATE")
        attr_len = (body[attr_at] << 8) | body[attr_at + 1]
        nlri_at = attr_at + 2 + attr_len
        if nlri_at > end:
            raise UpdateError(f"path attribute length {attr_len} runs past the UPDATE")
        ids = IPV4_UNICAST in caps.add_path
        try:
            withdrawn = ipv4_prefixes(body[2:attr_at], ids) if withdrawn_len else _NO_NLRI
            nlri = ipv4_prefixes(body[nlri_at:], ids) if nlri_at < end else _NO_NLRI
        except NlriError as exc:
            raise UpdateError(str(exc)) from None
        raw, framing = _split_attributes(body[attr_at + 2 : nlri_at])
        if (
            nlri[0]
            and not withdrawn[0]
            and not framing
            and MP_REACH not in raw
            and MP_UNREACH not in raw
        ):
            # Most of a table: IPv4 NLRI and nothing else to do.
            event = self._announce_ipv4(neighbor, raw, caps, nlri)
            if event is not None:
                return [event]
        events: list[Event] = []
        if withdrawn[0]:
            events.append(
                RoutesWithdrawn(neighbor, IPV4_UNICAST, tuple(withdrawn[0]), _t(withdrawn[1]))
            )
        reach = unreach = None
        try:
            if MP_UNREACH in raw:
                unreach = _mp_unreach(raw[MP_UNREACH], caps)
            if MP_REACH in raw:
                reach = _mp_reach(raw[MP_REACH], caps)
        except NlriError as exc:
            raise UpdateError(str(exc)) from None
        if unreach is not None:
            family, (prefixes, ids) = unreach
            if prefixes:
                events.append(RoutesWithdrawn(neighbor, family, tuple(prefixes), _t(ids)))
            elif family and reach is None and not nlri[0] and not withdrawn[0] and len(raw) == 1:
                return [EndOfRib(neighbor, family)]
        announced = []
        if nlri[0]:
            announced.append((IPV4_UNICAST, None, nlri))
        if reach is not None and reach[0] and reach[2][0]:
            announced.append(reach)
        if not announced:
            return events
        fault = framing
        fields = None
        if not fault:
            try:
                fields = self._fields(raw, caps)
            except _Malformed as exc:
                fault = str(exc)
        for family, next_hop, (prefixes, ids) in announced:
            hop_fault = fault
            if not hop_fault and next_hop is None:  # classic IPv4 NLRI: the NEXT_HOP attribute
                if NEXT_HOP not in raw:
                    hop_fault = "no NEXT_HOP for the IPv4 NLRI"
                else:
                    value = raw[NEXT_HOP]
                    if len(value) != 4:
                        hop_fault = f"NEXT_HOP of {len(value)} octets (4 expected)"
                    else:
                        next_hop = _ntoa(value)
            if hop_fault:
                events.append(
                    RoutesWithdrawn(
                        neighbor,
                        family,
                        tuple(prefixes),
                        _t(ids),
                        reason=f"bad attributes: {hop_fault}",
                    )
                )
                continue
            row = (fields[0], fields[1], _intern(next_hop), *fields[2:])  # type: ignore[index]
            events.append(
                RoutesAnnounced(
                    neighbor, family, tuple(prefixes), _t(ids), self.interner.intern(row)
                )
            )
        return events

    def _announce_ipv4(
        self, neighbor: str, raw: dict, caps: SessionCaps, nlri: tuple[list[str], list[int] | None]
    ) -> RoutesAnnounced | None:
        """The event of an UPDATE with IPv4 NLRI only and sound attributes; None
        when an attribute is at fault (``decode`` then says why)."""
        value = raw.get(NEXT_HOP)
        if value is None:
            return None
        next_hop = _HOPS.get(value)
        if next_hop is None:
            if len(value) != 4:
                return None
            if len(_HOPS) >= MEMO_SIZE:
                _HOPS.clear()
            next_hop = _HOPS[value] = _intern(_ntoa(value))
        try:
            fields = self._fields(raw, caps)
        except _Malformed:
            return None
        prefixes, ids = nlri
        return RoutesAnnounced(
            neighbor,
            IPV4_UNICAST,
            tuple(prefixes),
            None if ids is None else tuple(ids),
            self.interner.intern((fields[0], fields[1], next_hop, *fields[2:])),
        )

    def _fields(self, raw: dict, caps: SessionCaps) -> tuple:
        """The attribute row without its next hop; raises _Malformed (treat-as-withdraw).
        A new AS path's numbers are taken through the interner's cache
        (``share_numbers``): the interner then keeps that path as it is."""
        size = 4 if caps.asn4 else 2
        get = raw.get
        value = get(ORIGIN)
        if value is None:
            raise _Malformed(ORIGIN, "no ORIGIN")
        if len(value) != 1 or value[0] > 2:
            raise _Malformed(ORIGIN, f"ORIGIN {value.hex() or 'empty'} is not 0, 1 or 2")
        origin = _ORIGINS[value[0]]
        value = get(AS_PATH)
        if value is None:
            raise _Malformed(AS_PATH, "no AS_PATH")
        paths = _PATHS4 if size == 4 else _PATHS2
        as_path = paths.get(value)
        if as_path is None:
            as_path = as_path_segments(value, size)
            ints = getattr(self.interner, "_ints", None)
            if type(ints) is list:
                as_path = share_numbers(ints, as_path)
            if len(paths) >= MEMO_SIZE:
                paths.clear()
            paths[value] = as_path
        aggregator = ""
        value = get(AGGREGATOR)
        if value is not None and len(value) == size + 4:
            aggregator = f"{_from_bytes(value[:size], 'big')}:{_ntoa(value[size:])}"
        if not caps.asn4:
            as4 = raw.get(AS4_AGGREGATOR)
            if as4 is not None and aggregator and len(as4) == 8:
                if not aggregator.startswith(f"{AS_TRANS}:"):
                    as4 = None  # a real 2-octet aggregator: both AS4_ attributes are noise
                    raw = {k: v for k, v in raw.items() if k != AS4_PATH}
                else:
                    aggregator = f"{_from_bytes(as4[:4], 'big')}:{_ntoa(as4[4:])}"
            if AS4_PATH in raw:
                try:
                    as4_path = as_path_segments(raw[AS4_PATH], 4, AS4_PATH)
                except _Malformed:
                    as4_path = None  # attribute discard
                if as4_path:
                    as_path = merge_as4_path(as_path, as4_path)
        local_pref = get(LOCAL_PREF)
        if local_pref is not None:
            if len(local_pref) != 4:
                raise _Malformed(LOCAL_PREF, f"LOCAL_PREF of {len(local_pref)} octets (4 expected)")
            local_pref = _from_bytes(local_pref, "big")
        med = get(MED)
        if med is not None:
            if len(med) != 4:
                raise _Malformed(MED, f"MULTI_EXIT_DISC of {len(med)} octets (4 expected)")
            med = _from_bytes(med, "big")
        communities: tuple = ()
        value = get(COMMUNITIES)
        if value is not None:
            if not value or len(value) % 4:
                raise _Malformed(
                    COMMUNITIES, f"COMMUNITIES of {len(value)} octets (a multiple of 4 expected)"
                )
            communities = _COMMUNITIES.get(value)  # type: ignore[assignment]
            if communities is None:
                communities = tuple(sorted(set(_asns(value, len(value) // 4, 4))))
                if len(_COMMUNITIES) >= MEMO_SIZE:
                    _COMMUNITIES.clear()
                _COMMUNITIES[value] = communities
        large: tuple = ()
        value = get(LARGE_COMMUNITIES)
        if value is not None:
            if not value or len(value) % 12:
                raise _Malformed(
                    LARGE_COMMUNITIES,
                    f"LARGE_COMMUNITY of {len(value)} octets (a multiple of 12 expected)",
                )
            flat = _asns(value, len(value) // 4, 4)
            # Sorted, then repeats dropped: not a set, whose tuple hashes a peer
            # can aim (ribd._rawattrs says what that cost).
            large = sorted_unique(sorted(zip(flat[0::3], flat[1::3], flat[2::3], strict=True)))
        extended: tuple = ()
        value = get(EXTENDED_COMMUNITIES)
        if value is not None:
            if not value or len(value) % 8:
                raise _Malformed(
                    EXTENDED_COMMUNITIES,
                    f"EXTENDED_COMMUNITIES of {len(value)} octets (a multiple of 8 expected)",
                )
            extended = tuple(_extended(value[i : i + 8]) for i in range(0, len(value), 8))
        originator = ""
        value = get(ORIGINATOR_ID)
        if value is not None:
            if len(value) != 4:
                raise _Malformed(
                    ORIGINATOR_ID, f"ORIGINATOR_ID of {len(value)} octets (4 expected)"
                )
            originator = _ntoa(value)
        cluster: tuple = ()
        value = get(CLUSTER_LIST)
        if value is not None:
            if not value or len(value) % 4:
                raise _Malformed(
                    CLUSTER_LIST, f"CLUSTER_LIST of {len(value)} octets (a multiple of 4 expected)"
                )
            cluster = _CLUSTERS.get(value)  # type: ignore[assignment]
            if cluster is None:
                cluster = tuple([_ntoa(value[i : i + 4]) for i in range(0, len(value), 4)])
                if len(_CLUSTERS) >= MEMO_SIZE:
                    _CLUSTERS.clear()
                _CLUSTERS[value] = cluster
        atomic = get(ATOMIC_AGGREGATE) == b""
        return (
            as_path,
            origin,
            local_pref,
            med,
            communities,
            large,
            extended,
            originator,
            cluster,
            atomic,
            aggregator,
        )


def sorted_unique(items: list) -> tuple:
    """``items`` (sorted) as a tuple with repeats dropped."""
    return tuple(x for i, x in enumerate(items) if not i or x != items[i - 1])


def _t(ids: list[int] | None) -> tuple[int, ...] | None:
    return None if ids is None else tuple(ids)


def _mp_unreach(value: bytes, caps: SessionCaps) -> tuple[str, tuple[list[str], list[int] | None]]:
    """(family, NLRI) of MP_UNREACH_NLRI; family "" for a family we do not keep."""
    if len(value) < 3:
        raise UpdateError(f"MP_UNREACH_NLRI of {len(value)} octets is shorter than AFI and SAFI")
    family = _FAMILIES.get((_from_bytes(value[0:2], "big"), value[2]), "")
    if not family:
        return "", ([], None)
    decode = ipv4_prefixes if family == IPV4_UNICAST else ipv6_prefixes
    return family, decode(value[3:], family in caps.add_path)


def _mp_reach(
    value: bytes, caps: SessionCaps
) -> tuple[str, str, tuple[list[str], list[int] | None]]:
    """(family, next hop, NLRI) of MP_REACH_NLRI; family "" for one we do not keep."""
    if len(value) < 5:
        raise UpdateError(f"MP_REACH_NLRI of {len(value)} octets is too short")
    family = _FAMILIES.get((_from_bytes(value[0:2], "big"), value[2]), "")
    hop_len = value[3]
    nlri_at = 5 + hop_len
    if nlri_at > len(value):
        raise UpdateError(f"MP_REACH_NLRI next hop of {hop_len} octets runs past the attribute")
    if not family:
        return "", "", ([], None)
    hop = value[4 : 4 + hop_len]
    if hop_len == 4:
        next_hop = _ntoa(hop)
    elif hop_len in (16, 32):  # global, then (32) a link-local one we do not use
        next_hop = _ntop(_AF_INET6, hop[:16])
    else:
        raise UpdateError(f"MP_REACH_NLRI next hop of {hop_len} octets (4, 16 or 32 expected)")
    decode = ipv4_prefixes if family == IPV4_UNICAST else ipv6_prefixes
    return family, next_hop, decode(value[nlri_at:], family in caps.add_path)


try:  # the compiled twin (setup.py builds it where a C compiler is): same events, same errors
    from ribd._rawdecode import UpdateDecoder
except ImportError:  # no compiler at install time: the reference decoder
    UpdateDecoder = PyUpdateDecoder  # type: ignore[misc]
COMPILED = UpdateDecoder is not PyUpdateDecoder
