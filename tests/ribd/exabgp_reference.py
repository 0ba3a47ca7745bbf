"""ExaBGP's own UPDATE decoder, in process: the reference the raw decoder is checked against.

``reference_line`` hands one UPDATE body to ExaBGP 5.0.15's ``Update.unpack_message``
under a session with the given capabilities and encodes the result with its JSON
API encoder, as the supervised ExaBGP would write it for the service: what the
JSON path's parser then reads. Independent of ``ribd.rawupdate`` by construction.
"""

from __future__ import annotations

from exabgp.bgp.message import Update
from exabgp.bgp.message.action import Action
from exabgp.bgp.message.direction import Direction
from exabgp.bgp.message.open.capability.negotiated import Negotiated
from exabgp.bgp.message.update.attribute import Attribute
from exabgp.bgp.neighbor import Neighbor
from exabgp.logger import log
from exabgp.protocol.family import AFI, SAFI
from exabgp.reactor.api.response.json import JSON

from ribd.events import IPV4_UNICAST, IPV6_UNICAST

log.silence()
_ENCODER = JSON("5.0.0")
_AFI_SAFI = {IPV4_UNICAST: (AFI.ipv4, SAFI.unicast), IPV6_UNICAST: (AFI.ipv6, SAFI.unicast)}


def negotiated(asn4: bool = True, add_path: frozenset[str] = frozenset()) -> Negotiated:
    neighbor = Neighbor()
    neighbor["capability"] = {"aigp": False}
    neg = Negotiated(neighbor)
    neg.asn4 = asn4
    neg.families = list(_AFI_SAFI.values())
    for family in add_path:
        neg.addpath._receive[_AFI_SAFI[family]] = True
    return neg


def reference_line(body: bytes, neg: Negotiated, peer: str = "127.0.0.2") -> bytes:
    """ExaBGP's JSON line for one UPDATE body (raises what ExaBGP raises)."""
    neg.cached_attributes, neg.cached_wire = None, b""
    update = Update.unpack_message(body, Direction.IN, neg)
    if Attribute.CODE.INTERNAL_TREAT_AS_WITHDRAW in update.attributes:  # as read_message does
        for nlri in update.nlris:
            nlri.action = Action.WITHDRAW
    message = _ENCODER._update(update)["message"]
    return (
        '{ "exabgp": "5.0.0", "type": "update", "neighbor": { "address": '
        f'{{ "local": "127.0.0.1", "peer": "{peer}" }}, '
        '"asn": { "local": 64500, "peer": 64500 }, '
        f'"direction": "receive", "message": {message} }} }}'
    ).encode()
