"""The typed fast path for ExaBGP JSON update lines. No I/O.

Split out of ``ribd.parser``. msgspec decodes a well-formed update line
straight into the structs below, checking types and AS-number ranges in C,
and prefixes are checked a whole NLRI list at a time (``checked_prefixes``).
Anything it is not sure about returns None, and the line goes to the generic
checks of ``ribd.json_fields``, which alone decide what is wrong with it.
"""

from __future__ import annotations

import socket
from itertools import repeat
from operator import attrgetter, contains
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from ribd.attributes import AS_CONFED_SEQUENCE, AS_CONFED_SET, AS_SEQUENCE, AS_SET, Segment
from ribd.checks import KNOWN_ADDRESSES, is_ipv4
from ribd.json_fields import SEGMENT_KINDS, Fields, path_id
from ribd.prefixes import _V4_HOST_MASK, _V6_HOST_MASK

_pton = socket.inet_pton
_ntop = socket.inet_ntop
_AF_INET = socket.AF_INET
_AF_INET6 = socket.AF_INET6
_U32 = 0xFFFFFFFF

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


class UpdateLine(Struct, **_STRICT):
    type: Literal["update"]
    neighbor: _Neighbor
    time: float | UnsetType = UNSET
    exabgp: str = ""
    host: str = ""
    pid: _I64 = 0
    ppid: _I64 = 0
    counter: _I64 = 0


decode_update = msgspec.json.Decoder(UpdateLine).decode
known_address = KNOWN_ADDRESSES.get  # the cache canonical_address fills: skips a call
# Decode failures that hand the line over (UnicodeDecodeError is a ValueError).
NOT_TYPED = (msgspec.MsgspecError, ValueError, RecursionError)
_nlri_of = attrgetter("nlri")
_path_info_of = attrgetter("path_information")
_SEGMENT_KEYS = [str(i) for i in range(256)]  # a 5.0 as-path's keys, in order
# Host-bit masks as bytes, by length text; an absent key is a bad or too long length.
_V4_MASK_BYTES = {str(n): m.to_bytes(4, "big") for n, m in enumerate(_V4_HOST_MASK)}
_V6_MASK_BYTES = {str(n): m.to_bytes(16, "big") for n, m in enumerate(_V6_HOST_MASK)}
_V4_MASK_BY_TEXT = dict(zip(_V4_MASK_BYTES, _V4_HOST_MASK, strict=True))
_from_bytes = int.from_bytes
_SHORT_LIST = 16  # prefixes; measured on the PCH full table


def checked_prefixes(texts: list[str], version: int) -> tuple[str, ...] | None:
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


def typed_nlri(
    entries: list[_Nlri], version: int
) -> tuple[tuple[str, ...], tuple[int, ...] | None] | None:
    """``json_fields.nlri_list`` for decoded entries; None if any entry needs the generic path.

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
    checked = checked_prefixes(list(map(_nlri_of, entries)), version)
    if checked is None:
        return None
    infos = list(map(_path_info_of, entries))
    if infos.count(UNSET) == len(infos):
        return checked, None
    try:
        return checked, tuple(
            0 if i is UNSET else i if type(i) is int else path_id(i) for i in infos
        )
    except ValueError:  # BadPrefix, or int() of an odd digit
        return None


def typed_fields(a: _Attributes) -> Fields | None:
    """``json_fields.attribute_fields`` of a decoded attribute object (None: generic path)."""
    raw_path = a.as_path
    if type(raw_path) is dict:
        if len(raw_path) == 1:
            seg = raw_path.get("0")
            if seg is None:
                return None
            as_path: tuple[Segment, ...] = ((SEGMENT_KINDS[seg.element], seg.value),)
        elif list(raw_path) == _SEGMENT_KEYS[: len(raw_path)]:  # as sorted(key=int) has it
            as_path = tuple([(SEGMENT_KINDS[s.element], s.value) for s in raw_path.values()])
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
