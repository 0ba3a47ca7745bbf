"""Path attributes of raw BGP UPDATEs: framing, AS paths, shared constants. No I/O.

The parts of ``ribd.rawupdate`` that its compiled twin ``ribd._rawdecode``
shares: attribute type codes, the errors (same class, same message from
either decoder), the RFC 6793 AS4_PATH merge, extended-community texts and
the memos of decoded values. The reference decoder is ``ribd.rawupdate``.
"""

from __future__ import annotations

import socket
import struct

from ribd.attributes import (
    AS_CONFED_SEQUENCE,
    AS_CONFED_SET,
    AS_SEQUENCE,
    AS_SET,
)

_ntoa = socket.inet_ntoa
_from_bytes = int.from_bytes

AS_TRANS = 23456
MAX_UPDATE_BYTES = 65535 - 19  # RFC 8654 extended messages; classic ones are 4096 - 19

ORIGIN, AS_PATH, NEXT_HOP, MED, LOCAL_PREF, ATOMIC_AGGREGATE, AGGREGATOR = 1, 2, 3, 4, 5, 6, 7
COMMUNITIES, ORIGINATOR_ID, CLUSTER_LIST, MP_REACH, MP_UNREACH = 8, 9, 10, 14, 15
EXTENDED_COMMUNITIES, AS4_PATH, AS4_AGGREGATOR, LARGE_COMMUNITIES = 16, 17, 18, 32
_WELL_KNOWN = frozenset((ORIGIN, AS_PATH, NEXT_HOP, LOCAL_PREF, ATOMIC_AGGREGATE))
_OPTIONAL = frozenset((MED, AGGREGATOR, COMMUNITIES, ORIGINATOR_ID, CLUSTER_LIST, MP_REACH))
_OPTIONAL |= {MP_UNREACH, EXTENDED_COMMUNITIES, AS4_PATH, AS4_AGGREGATOR, LARGE_COMMUNITIES}
# RFC 7606 attribute discard; every other malformed attribute we read is treat-as-withdraw.
_DISCARD = frozenset((ATOMIC_AGGREGATE, AGGREGATOR, AS4_PATH, AS4_AGGREGATOR))
_ORIGINS = ("igp", "egp", "incomplete")
_SEGMENT_KINDS = frozenset((AS_SET, AS_SEQUENCE, AS_CONFED_SEQUENCE, AS_CONFED_SET))
_U16 = struct.Struct("!H")


class UpdateError(ValueError):
    """An UPDATE that cannot be used at all (framing, NLRI); the message says why."""


class _Malformed(ValueError):
    """One attribute failed its check (RFC 7606 decides what that costs)."""

    def __init__(self, code: int, why: str) -> None:
        super().__init__(why)
        self.code = code


_UNPACK: dict[tuple[int, int], struct.Struct] = {}
# Decoded values of the attributes that repeat most across UPDATEs (AS paths,
# community and cluster lists), by their bytes: a dict lookup instead of a
# decode. Bounded (emptied when full); the values are immutable tuples.
MEMO_SIZE = 1 << 16
_PATHS4: dict[bytes, tuple] = {}
_PATHS2: dict[bytes, tuple] = {}
_COMMUNITIES: dict[bytes, tuple] = {}
_CLUSTERS: dict[bytes, tuple] = {}
_HOPS: dict[bytes, str] = {}  # NEXT_HOP values (4 octets) as text


def _asns(data: bytes, count: int, size: int) -> tuple[int, ...]:
    fmt = _UNPACK.get((count, size))
    if fmt is None:
        fmt = _UNPACK[(count, size)] = struct.Struct(f"!{count}{'I' if size == 4 else 'H'}")
    return fmt.unpack(data)


def as_path_segments(data: bytes, size: int, code: int = AS_PATH) -> tuple:
    """AS_PATH (or AS4_PATH) value -> ((kind, asns), ...); raises _Malformed."""
    name = "AS_PATH" if code == AS_PATH else "AS4_PATH"
    segments = []
    at, end = 0, len(data)
    while at < end:
        if at + 2 > end:
            raise _Malformed(code, f"{name}: segment header at octet {at} is cut short")
        kind, count = data[at], data[at + 1]
        if kind not in _SEGMENT_KINDS:
            raise _Malformed(code, f"{name}: unknown segment type {kind}")
        if count == 0:
            raise _Malformed(code, f"{name}: empty segment at octet {at}")
        stop = at + 2 + count * size
        if stop > end:
            raise _Malformed(code, f"{name}: segment of {count} ASes runs past the attribute")
        segments.append((kind, _asns(data[at + 2 : stop], count, size)))
        at = stop
    return tuple(segments)


def _count(segments) -> int:
    """AS numbers in a path as RFC 4271 9.1.2.2 counts them (a set is one, confeds none)."""
    return sum(len(a) if k == AS_SEQUENCE else 1 if k == AS_SET else 0 for k, a in segments)


def merge_as4_path(as_path: tuple, as4_path: tuple) -> tuple:
    """RFC 6793 4.2.3: the leading part of AS_PATH, then AS4_PATH (or AS_PATH alone
    when it holds fewer AS numbers), neighbouring sequences joined."""
    count2, count4 = _count(as_path), _count(as4_path)
    if count2 < count4:
        return as_path
    wanted = count2 - count4
    leading = []
    for kind, asns in as_path:
        if wanted <= 0:
            break
        if kind == AS_SEQUENCE and len(asns) > wanted:
            leading.append((kind, asns[:wanted]))
            break
        leading.append((kind, asns))
        wanted -= _count(((kind, asns),))
    joined: list = []
    for kind, asns in leading + list(as4_path):
        if joined and kind == joined[-1][0] and kind in (AS_SEQUENCE, AS_CONFED_SEQUENCE):
            joined[-1] = (kind, joined[-1][1] + asns)
        else:
            joined.append((kind, asns))
    return tuple(joined)


def _extended(value: bytes) -> str:
    kind, sub = value[0] & 0x0F, value[1]  # ExaBGP also masks the IANA/transitive bits
    if sub in (2, 3):
        name = "target" if sub == 2 else "origin"
        if kind == 0 and sub == 3:  # as ExaBGP shows it: the 4-octet number as an address
            return f"origin:{_U16.unpack_from(value, 2)[0]}:{_ntoa(value[4:8])}"
        if kind == 0:
            return f"target:{_U16.unpack_from(value, 2)[0]}:{_from_bytes(value[4:8], 'big')}"
        if kind == 1:
            return f"{name}:{_ntoa(value[2:6])}:{_U16.unpack_from(value, 6)[0]}"
        if kind == 2:
            return f"{name}:{_from_bytes(value[2:6], 'big')}:{_U16.unpack_from(value, 6)[0]}"
    return "0x" + value.hex().upper()


# Per attribute type code: 0 not read, 1 well-known, 2 optional (the flag's high bit + 1).
_KIND = bytes(1 if c in _WELL_KNOWN else 2 if c in _OPTIONAL else 0 for c in range(256))


def _split_attributes(data: bytes) -> tuple[dict[int, bytes], str]:
    """{type code: value} of the path attributes we read, first of each kept, and the
    framing fault that makes every route of the UPDATE a withdrawal ("" if none).

    Raises UpdateError only where RFC 7606 asks for a session reset: a broken
    or repeated MP_REACH_NLRI / MP_UNREACH_NLRI, whose NLRI cannot be trusted.
    """
    out: dict[int, bytes] = {}
    fault = ""
    at, end = 0, len(data)
    kinds = _KIND
    try:
        while at < end:
            flags, code = data[at], data[at + 1]
            if flags & 0x10:
                start = at + 4
                stop = start + ((data[at + 2] << 8) | data[at + 3])
            else:
                start = at + 3
                stop = start + data[at + 2]
            if stop > end:
                if code in (MP_REACH, MP_UNREACH):
                    raise UpdateError(
                        f"attribute {code} of {stop - start} octets runs past the attributes"
                    )
                fault = f"attribute {code} of {stop - start} octets runs past the attributes"
                break
            at = stop
            kind = kinds[code]
            if not kind:
                continue
            if code in out:
                if code in (MP_REACH, MP_UNREACH):
                    raise UpdateError(f"attribute {code} appears twice")
                continue  # RFC 7606 3.g: all but the first are discarded
            if (flags >> 7) + 1 != kind:
                if code in (MP_REACH, MP_UNREACH):
                    raise UpdateError(f"attribute {code} with flags 0x{flags:02x}: not optional")
                if code not in _DISCARD and not fault:
                    fault = f"attribute {code} with inconsistent flags 0x{flags:02x}"
                continue
            out[code] = data[start:stop]
    except IndexError:
        fault = f"attribute header at octet {at} is cut short"
    return out, fault
