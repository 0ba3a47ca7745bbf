"""goflow2's binary output (``-format=bin``) for `attribution enrich --input-format goflow2-pb`.

goflow2 writes each ``FlowMessage`` (proto/attribution/goflow2/flow.proto)
preceded by its length as a varint (protobuf's "delimited" framing). This
splitter takes the bytes as they are read, cuts the messages, and turns each
into the JSON line goflow2's own ``-format=json`` would print for it
(addresses as text, MACs as ``xx:xx:..``, the type by name, numbers as
numbers), so the rest of enrich reads it as goflow2 JSON and writes those
fields back. It has the interface of :class:`attribution.enrich_sources._Splitter`
(``feed``/``rest``, chunks of lines), so pipes, files and followed files work
alike; a record's "line" is its message number.

Bad input: a message that does not parse is counted (``bad_record``, with
its number) and skipped, the messages around it kept; a message announced
longer than MAX_LINE, or a length that is not a varint, leaves no way to find
the next message: it is counted and the rest of that file is skipped (goflow2
never writes one). A message cut off at the end of a file is counted too.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import orjson
from google.protobuf.message import DecodeError

from attribution.enrich_sources import MAX_LINE, Chunk
from attribution.goflow2 import flow_pb2

Bad = Callable[[str, str], None]  # (where, message): counted as bad_record

_TYPES = dict(flow_pb2.FlowMessage.FlowType.items())
_TYPE_NAMES = {v: k for k, v in _TYPES.items()}
_ADDRESSES = ("sampler_address", "src_addr", "dst_addr", "next_hop", "bgp_next_hop")
_MACS = ("src_mac", "dst_mac")
_NUMBERS = (
    "time_received_ns",
    "sequence_num",
    "sampling_rate",
    "time_flow_start_ns",
    "time_flow_end_ns",
    "bytes",
    "packets",
    "etype",
    "proto",
    "src_port",
    "dst_port",
    "in_if",
    "out_if",
    "src_vlan",
    "dst_vlan",
    "vlan_id",
    "ip_tos",
    "forwarding_status",
    "ip_ttl",
    "tcp_flags",
    "icmp_type",
    "icmp_code",
    "src_as",
    "dst_as",
    "next_hop_as",
    "src_net",
    "dst_net",
)


def _address(raw: bytes) -> str:
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    if len(raw) == 16:
        return socket.inet_ntop(socket.AF_INET6, raw)
    return raw.hex()  # neither: refused downstream as a bad address, with its value


def _mac(value: int) -> str:
    return (value & 0xFFFFFFFFFFFF).to_bytes(6, "big").hex(":")


# Every field as goflow2's JSON prints it when the message leaves it out (proto3
# does not send zeros): the set fields are then converted over this template.
_TEMPLATE: dict = {
    "type": "FLOWUNKNOWN",
    **dict.fromkeys(_NUMBERS, 0),
    **dict.fromkeys(_ADDRESSES, ""),
    **dict.fromkeys(_MACS, _mac(0)),
    "bgp_communities": [],
    "as_path": [],
}
_CONVERT = {
    "type": lambda v: _TYPE_NAMES.get(v, v),
    **dict.fromkeys(_ADDRESSES, _address),
    **dict.fromkeys(_MACS, _mac),
    "bgp_communities": list,
    "as_path": list,
}


def to_json(message: bytes) -> bytes:
    """One FlowMessage -> goflow2's JSON line for it (DecodeError if it is not one)."""
    out = dict(_TEMPLATE)
    convert = _CONVERT.get
    for field, value in flow_pb2.FlowMessage.FromString(message).ListFields():
        name = field.name
        fn = convert(name)
        out[name] = value if fn is None else fn(value)
    return orjson.dumps(out)


def _varint(buf: bytes, pos: int) -> tuple[int, int] | None:
    """(value, position after it), None when the buffer ends inside it; ValueError
    past 10 bytes (not a varint)."""
    value = shift = 0
    for k in range(pos, min(len(buf), pos + 10)):
        byte = buf[k]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, k + 1
        shift += 7
    if len(buf) - pos >= 10:
        raise ValueError("length prefix is not a varint")
    return None


class DelimitedSplitter:
    """Bytes -> chunks of goflow2 JSON lines, one per length-delimited FlowMessage."""

    def __init__(self, name: str, bad: Bad, max_message: int = MAX_LINE) -> None:
        self.name = name
        self.bad = bad
        self.buf = b""
        self.number = 0  # messages cut so far
        self.lost = False  # framing lost: the rest of this file is skipped
        self.max_message = max_message

    def _where(self, number: int) -> str:
        return f"{'stdin' if self.name == '-' else self.name}:{number}"

    def feed(self, data: bytes) -> Chunk | None:
        if self.lost:
            return None
        buf = self.buf + data if self.buf else data
        first = self.number + 1
        lines: list[bytes | None] = []
        pos = 0
        while pos < len(buf):
            try:
                got = _varint(buf, pos)
            except ValueError as exc:
                return self._lose(lines, first, str(exc))
            if got is None:
                break
            size, start = got
            if size > self.max_message:
                return self._lose(lines, first, f"message of {size} bytes over {self.max_message}")
            if len(buf) - start < size:
                break
            self.number += 1
            try:
                lines.append(to_json(buf[start : start + size]))
            except DecodeError:
                self.bad(self._where(self.number), "goflow2-pb: not a FlowMessage")
                lines.append(b"")  # keeps the numbering; an empty line is skipped
            pos = start + size
        self.buf = buf[pos:]
        return Chunk(self.name, first, lines) if lines else None

    def _lose(self, lines: list[bytes | None], first: int, why: str) -> Chunk | None:
        self.lost = True
        self.buf = b""
        self.bad(self._where(self.number + 1), f"goflow2-pb: {why}; the rest of this input skipped")
        return Chunk(self.name, first, lines) if lines else None

    def rest(self) -> Chunk | None:
        """End of a file: a message cut off there is reported."""
        if self.buf and not self.lost:
            self.bad(
                self._where(self.number + 1),
                f"goflow2-pb: message cut off at the end ({len(self.buf)} bytes)",
            )
        self.buf = b""
        return None


__all__ = ["DelimitedSplitter", "to_json"]
