from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FlowMessage(_message.Message):
    __slots__ = ("type", "time_received_ns", "sequence_num", "sampling_rate", "sampler_address", "time_flow_start_ns", "time_flow_end_ns", "bytes", "packets", "src_addr", "dst_addr", "etype", "proto", "src_port", "dst_port", "in_if", "out_if", "src_mac", "dst_mac", "src_vlan", "dst_vlan", "vlan_id", "ip_tos", "forwarding_status", "ip_ttl", "tcp_flags", "icmp_type", "icmp_code", "src_as", "dst_as", "next_hop", "next_hop_as", "src_net", "dst_net", "bgp_next_hop", "bgp_communities", "as_path")
    class FlowType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        FLOWUNKNOWN: _ClassVar[FlowMessage.FlowType]
        SFLOW_5: _ClassVar[FlowMessage.FlowType]
        NETFLOW_V5: _ClassVar[FlowMessage.FlowType]
        NETFLOW_V9: _ClassVar[FlowMessage.FlowType]
        IPFIX: _ClassVar[FlowMessage.FlowType]
    FLOWUNKNOWN: FlowMessage.FlowType
    SFLOW_5: FlowMessage.FlowType
    NETFLOW_V5: FlowMessage.FlowType
    NETFLOW_V9: FlowMessage.FlowType
    IPFIX: FlowMessage.FlowType
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TIME_RECEIVED_NS_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_NUM_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_RATE_FIELD_NUMBER: _ClassVar[int]
    SAMPLER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TIME_FLOW_START_NS_FIELD_NUMBER: _ClassVar[int]
    TIME_FLOW_END_NS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    SRC_ADDR_FIELD_NUMBER: _ClassVar[int]
    DST_ADDR_FIELD_NUMBER: _ClassVar[int]
    ETYPE_FIELD_NUMBER: _ClassVar[int]
    PROTO_FIELD_NUMBER: _ClassVar[int]
    SRC_PORT_FIELD_NUMBER: _ClassVar[int]
    DST_PORT_FIELD_NUMBER: _ClassVar[int]
    IN_IF_FIELD_NUMBER: _ClassVar[int]
    OUT_IF_FIELD_NUMBER: _ClassVar[int]
    SRC_MAC_FIELD_NUMBER: _ClassVar[int]
    DST_MAC_FIELD_NUMBER: _ClassVar[int]
    SRC_VLAN_FIELD_NUMBER: _ClassVar[int]
    DST_VLAN_FIELD_NUMBER: _ClassVar[int]
    VLAN_ID_FIELD_NUMBER: _ClassVar[int]
    IP_TOS_FIELD_NUMBER: _ClassVar[int]
    FORWARDING_STATUS_FIELD_NUMBER: _ClassVar[int]
    IP_TTL_FIELD_NUMBER: _ClassVar[int]
    TCP_FLAGS_FIELD_NUMBER: _ClassVar[int]
    ICMP_TYPE_FIELD_NUMBER: _ClassVar[int]
    ICMP_CODE_FIELD_NUMBER: _ClassVar[int]
    SRC_AS_FIELD_NUMBER: _ClassVar[int]
    DST_AS_FIELD_NUMBER: _ClassVar[int]
    NEXT_HOP_FIELD_NUMBER: _ClassVar[int]
    NEXT_HOP_AS_FIELD_NUMBER: _ClassVar[int]
    SRC_NET_FIELD_NUMBER: _ClassVar[int]
    DST_NET_FIELD_NUMBER: _ClassVar[int]
    BGP_NEXT_HOP_FIELD_NUMBER: _ClassVar[int]
    BGP_COMMUNITIES_FIELD_NUMBER: _ClassVar[int]
    AS_PATH_FIELD_NUMBER: _ClassVar[int]
    type: FlowMessage.FlowType
    time_received_ns: int
    sequence_num: int
    sampling_rate: int
    sampler_address: bytes
    time_flow_start_ns: int
    time_flow_end_ns: int
    bytes: int
    packets: int
    src_addr: bytes
    dst_addr: bytes
    etype: int
    proto: int
    src_port: int
    dst_port: int
    in_if: int
    out_if: int
    src_mac: int
    dst_mac: int
    src_vlan: int
    dst_vlan: int
    vlan_id: int
    ip_tos: int
    forwarding_status: int
    ip_ttl: int
    tcp_flags: int
    icmp_type: int
    icmp_code: int
    src_as: int
    dst_as: int
    next_hop: bytes
    next_hop_as: int
    src_net: int
    dst_net: int
    bgp_next_hop: bytes
    bgp_communities: _containers.RepeatedScalarFieldContainer[int]
    as_path: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, type: _Optional[_Union[FlowMessage.FlowType, str]] = ..., time_received_ns: _Optional[int] = ..., sequence_num: _Optional[int] = ..., sampling_rate: _Optional[int] = ..., sampler_address: _Optional[bytes] = ..., time_flow_start_ns: _Optional[int] = ..., time_flow_end_ns: _Optional[int] = ..., bytes: _Optional[int] = ..., packets: _Optional[int] = ..., src_addr: _Optional[bytes] = ..., dst_addr: _Optional[bytes] = ..., etype: _Optional[int] = ..., proto: _Optional[int] = ..., src_port: _Optional[int] = ..., dst_port: _Optional[int] = ..., in_if: _Optional[int] = ..., out_if: _Optional[int] = ..., src_mac: _Optional[int] = ..., dst_mac: _Optional[int] = ..., src_vlan: _Optional[int] = ..., dst_vlan: _Optional[int] = ..., vlan_id: _Optional[int] = ..., ip_tos: _Optional[int] = ..., forwarding_status: _Optional[int] = ..., ip_ttl: _Optional[int] = ..., tcp_flags: _Optional[int] = ..., icmp_type: _Optional[int] = ..., icmp_code: _Optional[int] = ..., src_as: _Optional[int] = ..., dst_as: _Optional[int] = ..., next_hop: _Optional[bytes] = ..., next_hop_as: _Optional[int] = ..., src_net: _Optional[int] = ..., dst_net: _Optional[int] = ..., bgp_next_hop: _Optional[bytes] = ..., bgp_communities: _Optional[_Iterable[int]] = ..., as_path: _Optional[_Iterable[int]] = ...) -> None: ...
