"""What a BGP session negotiated, from its two raw OPEN messages. No I/O.

Decoding an UPDATE's bytes needs two facts of its session: whether AS
numbers are 4 octets (RFC 6793: both OPENs carry capability 65) and for
which families every NLRI starts with a path id (RFC 7911: we offered
ADD-PATH receive and the router offered send, per family). ExaBGP reports
both OPENs with the ``packets`` API (``send`` and ``receive``); this module
reads their capabilities (RFC 5492 optional parameters, and RFC 9072's
extended parameter length) the way ExaBGP's own negotiation does.
"""

from __future__ import annotations

from dataclasses import dataclass

from ribd.events import IPV4_UNICAST, IPV6_UNICAST

CAP_MULTIPROTOCOL = 1
CAP_GRACEFUL_RESTART = 64
CAP_FOUR_OCTET_AS = 65
CAP_ADD_PATH = 69
_FAMILIES = {(1, 1): IPV4_UNICAST, (2, 1): IPV6_UNICAST}
ADD_PATH_RECEIVE, ADD_PATH_SEND = 1, 2


class OpenError(ValueError):
    """An OPEN message whose parameters cannot be read; the message says why."""


@dataclass(frozen=True, slots=True)
class SessionCaps:
    asn4: bool = True
    add_path: frozenset[str] = frozenset()  # families whose NLRI carry path ids towards us


@dataclass(frozen=True, slots=True)
class OpenInfo:
    """The capabilities of one OPEN that matter for decoding UPDATEs."""

    asn4: bool
    add_path: dict[str, int]  # family -> 1 receive, 2 send, 3 both
    graceful_restart: bool = False  # RFC 4724: the speaker sends End-of-RIB
    families: tuple[str, ...] = (IPV4_UNICAST,)  # RFC 4760 capabilities (none: IPv4 unicast)


def parse_open(body: bytes) -> OpenInfo:
    """An OPEN body (after the 19-octet header) -> its 4-octet AS and ADD-PATH capabilities."""
    if len(body) < 10:
        raise OpenError(f"OPEN of {len(body)} octets is shorter than its fixed fields")
    if body[0] != 4:
        raise OpenError(f"OPEN of BGP version {body[0]}, not 4")
    params_len, at = body[9], 10
    if params_len == 255 and len(body) >= 13 and body[10] == 255:  # RFC 9072
        params_len, at = int.from_bytes(body[11:13], "big"), 13
        wide = True
    else:
        wide = False
    end = at + params_len
    if end != len(body):
        raise OpenError(
            f"OPEN parameters length {params_len} does not match its {len(body)} octets"
        )
    asn4 = graceful_restart = False
    add_path: dict[str, int] = {}
    families: list[str] = []
    while at < end:
        head = 3 if wide else 2
        if at + head > end:
            raise OpenError(f"OPEN parameter header at octet {at} is cut short")
        kind = body[at]
        length = int.from_bytes(body[at + 1 : at + head], "big")
        value = body[at + head : at + head + length]
        if len(value) != length:
            raise OpenError(f"OPEN parameter of {length} octets runs past the message")
        at += head + length
        if kind != 2:  # only capabilities (RFC 5492) matter
            continue
        cap_at = 0
        while cap_at < len(value):
            if cap_at + 2 > len(value):
                raise OpenError("capability header cut short")
            code, clen = value[cap_at], value[cap_at + 1]
            cap = value[cap_at + 2 : cap_at + 2 + clen]
            if len(cap) != clen:
                raise OpenError(f"capability {code} of {clen} octets runs past its parameter")
            cap_at += 2 + clen
            if code == CAP_MULTIPROTOCOL and clen == 4:
                family = _FAMILIES.get((int.from_bytes(cap[0:2], "big"), cap[3]))
                if family is not None and family not in families:
                    families.append(family)
            elif code == CAP_GRACEFUL_RESTART:
                graceful_restart = True
            elif code == CAP_FOUR_OCTET_AS:
                asn4 = asn4 or clen == 4
            elif code == CAP_ADD_PATH:
                for i in range(0, clen - clen % 4, 4):
                    family = _FAMILIES.get((int.from_bytes(cap[i : i + 2], "big"), cap[i + 2]))
                    if family is not None:
                        add_path[family] = add_path.get(family, 0) | (cap[i + 3] & 3)
    return OpenInfo(asn4, add_path, graceful_restart, tuple(families) or (IPV4_UNICAST,))


def negotiate(sent: OpenInfo, received: OpenInfo) -> SessionCaps:
    """Our OPEN and the router's -> what UPDATEs from the router look like."""
    families = frozenset(
        f
        for f, mode in sent.add_path.items()
        if mode & ADD_PATH_RECEIVE and received.add_path.get(f, 0) & ADD_PATH_SEND
    )
    return SessionCaps(asn4=sent.asn4 and received.asn4, add_path=families)
