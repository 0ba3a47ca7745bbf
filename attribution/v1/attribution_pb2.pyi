from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Provenance(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROVENANCE_UNSPECIFIED: _ClassVar[Provenance]
    BGP: _ClassVar[Provenance]
    OVERRIDE: _ClassVar[Provenance]
    LOCAL: _ClassVar[Provenance]
    DEFAULT: _ClassVar[Provenance]
    NONE: _ClassVar[Provenance]
    IX_MAC: _ClassVar[Provenance]

class Flag(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FLAG_NONE: _ClassVar[Flag]
    SRC_UNROUTED: _ClassVar[Flag]
    SRC_ASYMMETRIC: _ClassVar[Flag]
    SRC_ORIGIN_AS_SET: _ClassVar[Flag]
    DST_ORIGIN_AS_SET: _ClassVar[Flag]
    SRC_STALE: _ClassVar[Flag]
    DST_STALE: _ClassVar[Flag]
    FALLBACK: _ClassVar[Flag]
    DST_NEXT_HOP_MISMATCH: _ClassVar[Flag]
    SRC_IX_MAC_UNKNOWN: _ClassVar[Flag]
PROVENANCE_UNSPECIFIED: Provenance
BGP: Provenance
OVERRIDE: Provenance
LOCAL: Provenance
DEFAULT: Provenance
NONE: Provenance
IX_MAC: Provenance
FLAG_NONE: Flag
SRC_UNROUTED: Flag
SRC_ASYMMETRIC: Flag
SRC_ORIGIN_AS_SET: Flag
DST_ORIGIN_AS_SET: Flag
SRC_STALE: Flag
DST_STALE: Flag
FALLBACK: Flag
DST_NEXT_HOP_MISMATCH: Flag
SRC_IX_MAC_UNKNOWN: Flag

class Flow(_message.Message):
    __slots__ = ("exporter", "src_addr", "dst_addr", "in_if", "out_if", "src_mac", "next_hop", "bytes", "packets", "sampling_rate", "time")
    EXPORTER_FIELD_NUMBER: _ClassVar[int]
    SRC_ADDR_FIELD_NUMBER: _ClassVar[int]
    DST_ADDR_FIELD_NUMBER: _ClassVar[int]
    IN_IF_FIELD_NUMBER: _ClassVar[int]
    OUT_IF_FIELD_NUMBER: _ClassVar[int]
    SRC_MAC_FIELD_NUMBER: _ClassVar[int]
    NEXT_HOP_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_RATE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    exporter: str
    src_addr: str
    dst_addr: str
    in_if: int
    out_if: int
    src_mac: str
    next_hop: str
    bytes: int
    packets: int
    sampling_rate: int
    time: float
    def __init__(self, exporter: _Optional[str] = ..., src_addr: _Optional[str] = ..., dst_addr: _Optional[str] = ..., in_if: _Optional[int] = ..., out_if: _Optional[int] = ..., src_mac: _Optional[str] = ..., next_hop: _Optional[str] = ..., bytes: _Optional[int] = ..., packets: _Optional[int] = ..., sampling_rate: _Optional[int] = ..., time: _Optional[float] = ...) -> None: ...

class FlowColumns(_message.Message):
    __slots__ = ("exporters", "exporter", "src_addr", "dst_addr", "in_if", "out_if", "src_mac", "next_hop")
    EXPORTERS_FIELD_NUMBER: _ClassVar[int]
    EXPORTER_FIELD_NUMBER: _ClassVar[int]
    SRC_ADDR_FIELD_NUMBER: _ClassVar[int]
    DST_ADDR_FIELD_NUMBER: _ClassVar[int]
    IN_IF_FIELD_NUMBER: _ClassVar[int]
    OUT_IF_FIELD_NUMBER: _ClassVar[int]
    SRC_MAC_FIELD_NUMBER: _ClassVar[int]
    NEXT_HOP_FIELD_NUMBER: _ClassVar[int]
    exporters: _containers.RepeatedScalarFieldContainer[str]
    exporter: _containers.RepeatedScalarFieldContainer[int]
    src_addr: bytes
    dst_addr: bytes
    in_if: _containers.RepeatedScalarFieldContainer[int]
    out_if: _containers.RepeatedScalarFieldContainer[int]
    src_mac: bytes
    next_hop: bytes
    def __init__(self, exporters: _Optional[_Iterable[str]] = ..., exporter: _Optional[_Iterable[int]] = ..., src_addr: _Optional[bytes] = ..., dst_addr: _Optional[bytes] = ..., in_if: _Optional[_Iterable[int]] = ..., out_if: _Optional[_Iterable[int]] = ..., src_mac: _Optional[bytes] = ..., next_hop: _Optional[bytes] = ...) -> None: ...

class FlowBatch(_message.Message):
    __slots__ = ("batch_id", "flows", "columns", "omit_routes", "packed_records", "stream_routes")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    OMIT_ROUTES_FIELD_NUMBER: _ClassVar[int]
    PACKED_RECORDS_FIELD_NUMBER: _ClassVar[int]
    STREAM_ROUTES_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    flows: FlowRows
    columns: FlowColumns
    omit_routes: bool
    packed_records: bool
    stream_routes: bool
    def __init__(self, batch_id: _Optional[int] = ..., flows: _Optional[_Union[FlowRows, _Mapping]] = ..., columns: _Optional[_Union[FlowColumns, _Mapping]] = ..., omit_routes: _Optional[bool] = ..., packed_records: _Optional[bool] = ..., stream_routes: _Optional[bool] = ...) -> None: ...

class FlowRows(_message.Message):
    __slots__ = ("flows",)
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    flows: _containers.RepeatedCompositeFieldContainer[Flow]
    def __init__(self, flows: _Optional[_Iterable[_Union[Flow, _Mapping]]] = ...) -> None: ...

class AsPathSegment(_message.Message):
    __slots__ = ("type", "asns")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        AS_SEQUENCE: _ClassVar[AsPathSegment.Type]
        AS_SET: _ClassVar[AsPathSegment.Type]
        AS_CONFED_SEQUENCE: _ClassVar[AsPathSegment.Type]
        AS_CONFED_SET: _ClassVar[AsPathSegment.Type]
    AS_SEQUENCE: AsPathSegment.Type
    AS_SET: AsPathSegment.Type
    AS_CONFED_SEQUENCE: AsPathSegment.Type
    AS_CONFED_SET: AsPathSegment.Type
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ASNS_FIELD_NUMBER: _ClassVar[int]
    type: AsPathSegment.Type
    asns: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, type: _Optional[_Union[AsPathSegment.Type, str]] = ..., asns: _Optional[_Iterable[int]] = ...) -> None: ...

class Route(_message.Message):
    __slots__ = ("router", "prefix", "path_id", "as_path", "origin", "next_hop", "local_pref", "has_local_pref", "med", "has_med", "communities", "large_communities", "extended_communities", "originator_id", "cluster_list", "atomic_aggregate", "aggregator", "stale", "origin_as", "peer_as", "origin_provenance", "peer_provenance")
    ROUTER_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    PATH_ID_FIELD_NUMBER: _ClassVar[int]
    AS_PATH_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    NEXT_HOP_FIELD_NUMBER: _ClassVar[int]
    LOCAL_PREF_FIELD_NUMBER: _ClassVar[int]
    HAS_LOCAL_PREF_FIELD_NUMBER: _ClassVar[int]
    MED_FIELD_NUMBER: _ClassVar[int]
    HAS_MED_FIELD_NUMBER: _ClassVar[int]
    COMMUNITIES_FIELD_NUMBER: _ClassVar[int]
    LARGE_COMMUNITIES_FIELD_NUMBER: _ClassVar[int]
    EXTENDED_COMMUNITIES_FIELD_NUMBER: _ClassVar[int]
    ORIGINATOR_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_LIST_FIELD_NUMBER: _ClassVar[int]
    ATOMIC_AGGREGATE_FIELD_NUMBER: _ClassVar[int]
    AGGREGATOR_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_AS_FIELD_NUMBER: _ClassVar[int]
    PEER_AS_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    PEER_PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    router: str
    prefix: str
    path_id: int
    as_path: _containers.RepeatedCompositeFieldContainer[AsPathSegment]
    origin: str
    next_hop: str
    local_pref: int
    has_local_pref: bool
    med: int
    has_med: bool
    communities: _containers.RepeatedScalarFieldContainer[str]
    large_communities: _containers.RepeatedScalarFieldContainer[str]
    extended_communities: _containers.RepeatedScalarFieldContainer[str]
    originator_id: str
    cluster_list: _containers.RepeatedScalarFieldContainer[str]
    atomic_aggregate: bool
    aggregator: str
    stale: bool
    origin_as: int
    peer_as: int
    origin_provenance: Provenance
    peer_provenance: Provenance
    def __init__(self, router: _Optional[str] = ..., prefix: _Optional[str] = ..., path_id: _Optional[int] = ..., as_path: _Optional[_Iterable[_Union[AsPathSegment, _Mapping]]] = ..., origin: _Optional[str] = ..., next_hop: _Optional[str] = ..., local_pref: _Optional[int] = ..., has_local_pref: _Optional[bool] = ..., med: _Optional[int] = ..., has_med: _Optional[bool] = ..., communities: _Optional[_Iterable[str]] = ..., large_communities: _Optional[_Iterable[str]] = ..., extended_communities: _Optional[_Iterable[str]] = ..., originator_id: _Optional[str] = ..., cluster_list: _Optional[_Iterable[str]] = ..., atomic_aggregate: _Optional[bool] = ..., aggregator: _Optional[str] = ..., stale: _Optional[bool] = ..., origin_as: _Optional[int] = ..., peer_as: _Optional[int] = ..., origin_provenance: _Optional[_Union[Provenance, str]] = ..., peer_provenance: _Optional[_Union[Provenance, str]] = ...) -> None: ...

class FlowError(_message.Message):
    __slots__ = ("index", "code", "message")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    index: int
    code: str
    message: str
    def __init__(self, index: _Optional[int] = ..., code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class FlowAttribution(_message.Message):
    __slots__ = ("router", "src_origin_as", "src_peer_as", "dst_origin_as", "dst_peer_as", "src_origin_provenance", "src_peer_provenance", "dst_origin_provenance", "dst_peer_provenance", "flags", "src_route", "dst_route", "override", "error")
    ROUTER_FIELD_NUMBER: _ClassVar[int]
    SRC_ORIGIN_AS_FIELD_NUMBER: _ClassVar[int]
    SRC_PEER_AS_FIELD_NUMBER: _ClassVar[int]
    DST_ORIGIN_AS_FIELD_NUMBER: _ClassVar[int]
    DST_PEER_AS_FIELD_NUMBER: _ClassVar[int]
    SRC_ORIGIN_PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    SRC_PEER_PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    DST_ORIGIN_PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    DST_PEER_PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    SRC_ROUTE_FIELD_NUMBER: _ClassVar[int]
    DST_ROUTE_FIELD_NUMBER: _ClassVar[int]
    OVERRIDE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    router: str
    src_origin_as: int
    src_peer_as: int
    dst_origin_as: int
    dst_peer_as: int
    src_origin_provenance: Provenance
    src_peer_provenance: Provenance
    dst_origin_provenance: Provenance
    dst_peer_provenance: Provenance
    flags: int
    src_route: Route
    dst_route: Route
    override: str
    error: FlowError
    def __init__(self, router: _Optional[str] = ..., src_origin_as: _Optional[int] = ..., src_peer_as: _Optional[int] = ..., dst_origin_as: _Optional[int] = ..., dst_peer_as: _Optional[int] = ..., src_origin_provenance: _Optional[_Union[Provenance, str]] = ..., src_peer_provenance: _Optional[_Union[Provenance, str]] = ..., dst_origin_provenance: _Optional[_Union[Provenance, str]] = ..., dst_peer_provenance: _Optional[_Union[Provenance, str]] = ..., flags: _Optional[int] = ..., src_route: _Optional[_Union[Route, _Mapping]] = ..., dst_route: _Optional[_Union[Route, _Mapping]] = ..., override: _Optional[str] = ..., error: _Optional[_Union[FlowError, _Mapping]] = ...) -> None: ...

class AttributionColumns(_message.Message):
    __slots__ = ("routers", "router", "src_origin_as", "src_peer_as", "dst_origin_as", "dst_peer_as", "provenance", "flags", "routes", "src_route", "dst_route", "overrides", "override", "records", "route_base", "routes_reset")
    ROUTERS_FIELD_NUMBER: _ClassVar[int]
    ROUTER_FIELD_NUMBER: _ClassVar[int]
    SRC_ORIGIN_AS_FIELD_NUMBER: _ClassVar[int]
    SRC_PEER_AS_FIELD_NUMBER: _ClassVar[int]
    DST_ORIGIN_AS_FIELD_NUMBER: _ClassVar[int]
    DST_PEER_AS_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    SRC_ROUTE_FIELD_NUMBER: _ClassVar[int]
    DST_ROUTE_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    OVERRIDE_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    ROUTE_BASE_FIELD_NUMBER: _ClassVar[int]
    ROUTES_RESET_FIELD_NUMBER: _ClassVar[int]
    routers: _containers.RepeatedScalarFieldContainer[str]
    router: _containers.RepeatedScalarFieldContainer[int]
    src_origin_as: _containers.RepeatedScalarFieldContainer[int]
    src_peer_as: _containers.RepeatedScalarFieldContainer[int]
    dst_origin_as: _containers.RepeatedScalarFieldContainer[int]
    dst_peer_as: _containers.RepeatedScalarFieldContainer[int]
    provenance: bytes
    flags: _containers.RepeatedScalarFieldContainer[int]
    routes: _containers.RepeatedCompositeFieldContainer[Route]
    src_route: _containers.RepeatedScalarFieldContainer[int]
    dst_route: _containers.RepeatedScalarFieldContainer[int]
    overrides: _containers.RepeatedScalarFieldContainer[str]
    override: _containers.RepeatedScalarFieldContainer[int]
    records: bytes
    route_base: int
    routes_reset: bool
    def __init__(self, routers: _Optional[_Iterable[str]] = ..., router: _Optional[_Iterable[int]] = ..., src_origin_as: _Optional[_Iterable[int]] = ..., src_peer_as: _Optional[_Iterable[int]] = ..., dst_origin_as: _Optional[_Iterable[int]] = ..., dst_peer_as: _Optional[_Iterable[int]] = ..., provenance: _Optional[bytes] = ..., flags: _Optional[_Iterable[int]] = ..., routes: _Optional[_Iterable[_Union[Route, _Mapping]]] = ..., src_route: _Optional[_Iterable[int]] = ..., dst_route: _Optional[_Iterable[int]] = ..., overrides: _Optional[_Iterable[str]] = ..., override: _Optional[_Iterable[int]] = ..., records: _Optional[bytes] = ..., route_base: _Optional[int] = ..., routes_reset: _Optional[bool] = ...) -> None: ...

class AttributionBatch(_message.Message):
    __slots__ = ("batch_id", "attributions", "columns", "errors", "batch_error")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTIONS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    BATCH_ERROR_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    attributions: _containers.RepeatedCompositeFieldContainer[FlowAttribution]
    columns: AttributionColumns
    errors: _containers.RepeatedCompositeFieldContainer[FlowError]
    batch_error: str
    def __init__(self, batch_id: _Optional[int] = ..., attributions: _Optional[_Iterable[_Union[FlowAttribution, _Mapping]]] = ..., columns: _Optional[_Union[AttributionColumns, _Mapping]] = ..., errors: _Optional[_Iterable[_Union[FlowError, _Mapping]]] = ..., batch_error: _Optional[str] = ...) -> None: ...

class LookupRouteRequest(_message.Message):
    __slots__ = ("router", "address", "prefix", "all_paths")
    ROUTER_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    ALL_PATHS_FIELD_NUMBER: _ClassVar[int]
    router: str
    address: str
    prefix: str
    all_paths: bool
    def __init__(self, router: _Optional[str] = ..., address: _Optional[str] = ..., prefix: _Optional[str] = ..., all_paths: _Optional[bool] = ...) -> None: ...

class LookupRouteResponse(_message.Message):
    __slots__ = ("found", "routes")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    found: bool
    routes: _containers.RepeatedCompositeFieldContainer[Route]
    def __init__(self, found: _Optional[bool] = ..., routes: _Optional[_Iterable[_Union[Route, _Mapping]]] = ...) -> None: ...

class ListRoutersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FamilyState(_message.Message):
    __slots__ = ("family", "prefixes", "paths", "converged", "stale_prefixes", "inferred", "paths_over_limit", "max_prefixes", "prefixes_refused")
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    PREFIXES_FIELD_NUMBER: _ClassVar[int]
    PATHS_FIELD_NUMBER: _ClassVar[int]
    CONVERGED_FIELD_NUMBER: _ClassVar[int]
    STALE_PREFIXES_FIELD_NUMBER: _ClassVar[int]
    INFERRED_FIELD_NUMBER: _ClassVar[int]
    PATHS_OVER_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MAX_PREFIXES_FIELD_NUMBER: _ClassVar[int]
    PREFIXES_REFUSED_FIELD_NUMBER: _ClassVar[int]
    family: str
    prefixes: int
    paths: int
    converged: bool
    stale_prefixes: int
    inferred: bool
    paths_over_limit: int
    max_prefixes: int
    prefixes_refused: int
    def __init__(self, family: _Optional[str] = ..., prefixes: _Optional[int] = ..., paths: _Optional[int] = ..., converged: _Optional[bool] = ..., stale_prefixes: _Optional[int] = ..., inferred: _Optional[bool] = ..., paths_over_limit: _Optional[int] = ..., max_prefixes: _Optional[int] = ..., prefixes_refused: _Optional[int] = ...) -> None: ...

class RouterState(_message.Message):
    __slots__ = ("name", "neighbor", "peer_as", "session", "last_reason", "session_since", "last_update", "families", "exporters", "fallback", "stale", "stale_until", "worker")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOR_FIELD_NUMBER: _ClassVar[int]
    PEER_AS_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    LAST_REASON_FIELD_NUMBER: _ClassVar[int]
    SESSION_SINCE_FIELD_NUMBER: _ClassVar[int]
    LAST_UPDATE_FIELD_NUMBER: _ClassVar[int]
    FAMILIES_FIELD_NUMBER: _ClassVar[int]
    EXPORTERS_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    STALE_UNTIL_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    name: str
    neighbor: str
    peer_as: int
    session: str
    last_reason: str
    session_since: float
    last_update: float
    families: _containers.RepeatedCompositeFieldContainer[FamilyState]
    exporters: _containers.RepeatedScalarFieldContainer[str]
    fallback: _containers.RepeatedScalarFieldContainer[str]
    stale: bool
    stale_until: float
    worker: int
    def __init__(self, name: _Optional[str] = ..., neighbor: _Optional[str] = ..., peer_as: _Optional[int] = ..., session: _Optional[str] = ..., last_reason: _Optional[str] = ..., session_since: _Optional[float] = ..., last_update: _Optional[float] = ..., families: _Optional[_Iterable[_Union[FamilyState, _Mapping]]] = ..., exporters: _Optional[_Iterable[str]] = ..., fallback: _Optional[_Iterable[str]] = ..., stale: _Optional[bool] = ..., stale_until: _Optional[float] = ..., worker: _Optional[int] = ...) -> None: ...

class ListRoutersResponse(_message.Message):
    __slots__ = ("routers", "unique_attribute_sets", "bad_feed_lines")
    ROUTERS_FIELD_NUMBER: _ClassVar[int]
    UNIQUE_ATTRIBUTE_SETS_FIELD_NUMBER: _ClassVar[int]
    BAD_FEED_LINES_FIELD_NUMBER: _ClassVar[int]
    routers: _containers.RepeatedCompositeFieldContainer[RouterState]
    unique_attribute_sets: int
    bad_feed_lines: int
    def __init__(self, routers: _Optional[_Iterable[_Union[RouterState, _Mapping]]] = ..., unique_attribute_sets: _Optional[int] = ..., bad_feed_lines: _Optional[int] = ...) -> None: ...

class ReloadConfigRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadConfigResponse(_message.Message):
    __slots__ = ("ok", "error", "overrides", "warnings")
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    error: str
    overrides: int
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ok: _Optional[bool] = ..., error: _Optional[str] = ..., overrides: _Optional[int] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class ExplainRouterStep(_message.Message):
    __slots__ = ("router", "neighbor", "source", "outcome", "reason")
    ROUTER_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOR_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    router: str
    neighbor: str
    source: str
    outcome: str
    reason: str
    def __init__(self, router: _Optional[str] = ..., neighbor: _Optional[str] = ..., source: _Optional[str] = ..., outcome: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ExplainPrefix(_message.Message):
    __slots__ = ("prefix", "used", "stale", "paths", "decided_by", "decision")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    USED_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    PATHS_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    used: bool
    stale: bool
    paths: _containers.RepeatedCompositeFieldContainer[Route]
    decided_by: str
    decision: str
    def __init__(self, prefix: _Optional[str] = ..., used: _Optional[bool] = ..., stale: _Optional[bool] = ..., paths: _Optional[_Iterable[_Union[Route, _Mapping]]] = ..., decided_by: _Optional[str] = ..., decision: _Optional[str] = ...) -> None: ...

class ExplainSide(_message.Message):
    __slots__ = ("address", "prefixes", "rules", "reasons", "origin_as", "peer_as", "provenance")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PREFIXES_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_AS_FIELD_NUMBER: _ClassVar[int]
    PEER_AS_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    address: str
    prefixes: _containers.RepeatedCompositeFieldContainer[ExplainPrefix]
    rules: _containers.RepeatedScalarFieldContainer[str]
    reasons: _containers.RepeatedScalarFieldContainer[str]
    origin_as: int
    peer_as: int
    provenance: Provenance
    def __init__(self, address: _Optional[str] = ..., prefixes: _Optional[_Iterable[_Union[ExplainPrefix, _Mapping]]] = ..., rules: _Optional[_Iterable[str]] = ..., reasons: _Optional[_Iterable[str]] = ..., origin_as: _Optional[int] = ..., peer_as: _Optional[int] = ..., provenance: _Optional[_Union[Provenance, str]] = ...) -> None: ...

class ExplainOverride(_message.Message):
    __slots__ = ("index", "name", "peer_as", "outcome", "key", "reason", "shadowed_by")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PEER_AS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SHADOWED_BY_FIELD_NUMBER: _ClassVar[int]
    index: int
    name: str
    peer_as: int
    outcome: str
    key: str
    reason: str
    shadowed_by: str
    def __init__(self, index: _Optional[int] = ..., name: _Optional[str] = ..., peer_as: _Optional[int] = ..., outcome: _Optional[str] = ..., key: _Optional[str] = ..., reason: _Optional[str] = ..., shadowed_by: _Optional[str] = ...) -> None: ...

class ExplainFlag(_message.Message):
    __slots__ = ("flag", "reason")
    FLAG_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    flag: str
    reason: str
    def __init__(self, flag: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Explanation(_message.Message):
    __slots__ = ("answer", "exporter", "family", "routers", "router", "dst", "src", "overrides", "flags", "mismatches", "as_set_policy", "local_as", "ix")
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    EXPORTER_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    ROUTERS_FIELD_NUMBER: _ClassVar[int]
    ROUTER_FIELD_NUMBER: _ClassVar[int]
    DST_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    MISMATCHES_FIELD_NUMBER: _ClassVar[int]
    AS_SET_POLICY_FIELD_NUMBER: _ClassVar[int]
    LOCAL_AS_FIELD_NUMBER: _ClassVar[int]
    IX_FIELD_NUMBER: _ClassVar[int]
    answer: FlowAttribution
    exporter: str
    family: str
    routers: _containers.RepeatedCompositeFieldContainer[ExplainRouterStep]
    router: str
    dst: ExplainSide
    src: ExplainSide
    overrides: _containers.RepeatedCompositeFieldContainer[ExplainOverride]
    flags: _containers.RepeatedCompositeFieldContainer[ExplainFlag]
    mismatches: _containers.RepeatedScalarFieldContainer[str]
    as_set_policy: str
    local_as: int
    ix: str
    def __init__(self, answer: _Optional[_Union[FlowAttribution, _Mapping]] = ..., exporter: _Optional[str] = ..., family: _Optional[str] = ..., routers: _Optional[_Iterable[_Union[ExplainRouterStep, _Mapping]]] = ..., router: _Optional[str] = ..., dst: _Optional[_Union[ExplainSide, _Mapping]] = ..., src: _Optional[_Union[ExplainSide, _Mapping]] = ..., overrides: _Optional[_Iterable[_Union[ExplainOverride, _Mapping]]] = ..., flags: _Optional[_Iterable[_Union[ExplainFlag, _Mapping]]] = ..., mismatches: _Optional[_Iterable[str]] = ..., as_set_policy: _Optional[str] = ..., local_as: _Optional[int] = ..., ix: _Optional[str] = ...) -> None: ...

class DiffOverridesRequest(_message.Message):
    __slots__ = ("config_text", "config_name", "flows")
    CONFIG_TEXT_FIELD_NUMBER: _ClassVar[int]
    CONFIG_NAME_FIELD_NUMBER: _ClassVar[int]
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    config_text: str
    config_name: str
    flows: _containers.RepeatedCompositeFieldContainer[Flow]
    def __init__(self, config_text: _Optional[str] = ..., config_name: _Optional[str] = ..., flows: _Optional[_Iterable[_Union[Flow, _Mapping]]] = ...) -> None: ...

class OverrideChange(_message.Message):
    __slots__ = ("old_rule", "new_rule", "old_src_peer_as", "new_src_peer_as", "flows", "bytes", "packets")
    OLD_RULE_FIELD_NUMBER: _ClassVar[int]
    NEW_RULE_FIELD_NUMBER: _ClassVar[int]
    OLD_SRC_PEER_AS_FIELD_NUMBER: _ClassVar[int]
    NEW_SRC_PEER_AS_FIELD_NUMBER: _ClassVar[int]
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    old_rule: str
    new_rule: str
    old_src_peer_as: int
    new_src_peer_as: int
    flows: int
    bytes: int
    packets: int
    def __init__(self, old_rule: _Optional[str] = ..., new_rule: _Optional[str] = ..., old_src_peer_as: _Optional[int] = ..., new_src_peer_as: _Optional[int] = ..., flows: _Optional[int] = ..., bytes: _Optional[int] = ..., packets: _Optional[int] = ...) -> None: ...

class ShadowedRule(_message.Message):
    __slots__ = ("rule", "shadowed_by", "new")
    RULE_FIELD_NUMBER: _ClassVar[int]
    SHADOWED_BY_FIELD_NUMBER: _ClassVar[int]
    NEW_FIELD_NUMBER: _ClassVar[int]
    rule: str
    shadowed_by: str
    new: bool
    def __init__(self, rule: _Optional[str] = ..., shadowed_by: _Optional[str] = ..., new: _Optional[bool] = ...) -> None: ...

class DiffOverridesResponse(_message.Message):
    __slots__ = ("changed", "flows", "bad_flows", "recent", "changes", "unmatched_rules", "shadowed_rules", "other_changed_flows", "warnings")
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    BAD_FLOWS_FIELD_NUMBER: _ClassVar[int]
    RECENT_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    UNMATCHED_RULES_FIELD_NUMBER: _ClassVar[int]
    SHADOWED_RULES_FIELD_NUMBER: _ClassVar[int]
    OTHER_CHANGED_FLOWS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    changed: bool
    flows: int
    bad_flows: int
    recent: bool
    changes: _containers.RepeatedCompositeFieldContainer[OverrideChange]
    unmatched_rules: _containers.RepeatedScalarFieldContainer[str]
    shadowed_rules: _containers.RepeatedCompositeFieldContainer[ShadowedRule]
    other_changed_flows: int
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, changed: _Optional[bool] = ..., flows: _Optional[int] = ..., bad_flows: _Optional[int] = ..., recent: _Optional[bool] = ..., changes: _Optional[_Iterable[_Union[OverrideChange, _Mapping]]] = ..., unmatched_rules: _Optional[_Iterable[str]] = ..., shadowed_rules: _Optional[_Iterable[_Union[ShadowedRule, _Mapping]]] = ..., other_changed_flows: _Optional[int] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class ListIxRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class IxFact(_message.Message):
    __slots__ = ("address", "peer_as", "source", "detail")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PEER_AS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    address: str
    peer_as: int
    source: str
    detail: str
    def __init__(self, address: _Optional[str] = ..., peer_as: _Optional[int] = ..., source: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class IxMac(_message.Message):
    __slots__ = ("mac", "peer_as", "addresses", "facts", "conflict", "reason")
    MAC_FIELD_NUMBER: _ClassVar[int]
    PEER_AS_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    CONFLICT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    mac: str
    peer_as: int
    addresses: _containers.RepeatedScalarFieldContainer[str]
    facts: _containers.RepeatedCompositeFieldContainer[IxFact]
    conflict: bool
    reason: str
    def __init__(self, mac: _Optional[str] = ..., peer_as: _Optional[int] = ..., addresses: _Optional[_Iterable[str]] = ..., facts: _Optional[_Iterable[_Union[IxFact, _Mapping]]] = ..., conflict: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class IxSource(_message.Message):
    __slots__ = ("kind", "where", "read_at", "error", "reads", "failures", "bad", "entries")
    class BadEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    READ_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    READS_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    BAD_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    kind: str
    where: str
    read_at: float
    error: str
    reads: int
    failures: int
    bad: _containers.ScalarMap[str, int]
    entries: int
    def __init__(self, kind: _Optional[str] = ..., where: _Optional[str] = ..., read_at: _Optional[float] = ..., error: _Optional[str] = ..., reads: _Optional[int] = ..., failures: _Optional[int] = ..., bad: _Optional[_Mapping[str, int]] = ..., entries: _Optional[int] = ...) -> None: ...

class IxState(_message.Message):
    __slots__ = ("name", "router", "exporters", "in_if", "prefixes", "neighbors", "peeringdb", "built_at", "macs", "next_hops", "learned", "conflicts")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROUTER_FIELD_NUMBER: _ClassVar[int]
    EXPORTERS_FIELD_NUMBER: _ClassVar[int]
    IN_IF_FIELD_NUMBER: _ClassVar[int]
    PREFIXES_FIELD_NUMBER: _ClassVar[int]
    NEIGHBORS_FIELD_NUMBER: _ClassVar[int]
    PEERINGDB_FIELD_NUMBER: _ClassVar[int]
    BUILT_AT_FIELD_NUMBER: _ClassVar[int]
    MACS_FIELD_NUMBER: _ClassVar[int]
    NEXT_HOPS_FIELD_NUMBER: _ClassVar[int]
    LEARNED_FIELD_NUMBER: _ClassVar[int]
    CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    router: str
    exporters: _containers.RepeatedScalarFieldContainer[str]
    in_if: _containers.RepeatedScalarFieldContainer[int]
    prefixes: _containers.RepeatedScalarFieldContainer[str]
    neighbors: IxSource
    peeringdb: IxSource
    built_at: float
    macs: _containers.RepeatedCompositeFieldContainer[IxMac]
    next_hops: int
    learned: int
    conflicts: int
    def __init__(self, name: _Optional[str] = ..., router: _Optional[str] = ..., exporters: _Optional[_Iterable[str]] = ..., in_if: _Optional[_Iterable[int]] = ..., prefixes: _Optional[_Iterable[str]] = ..., neighbors: _Optional[_Union[IxSource, _Mapping]] = ..., peeringdb: _Optional[_Union[IxSource, _Mapping]] = ..., built_at: _Optional[float] = ..., macs: _Optional[_Iterable[_Union[IxMac, _Mapping]]] = ..., next_hops: _Optional[int] = ..., learned: _Optional[int] = ..., conflicts: _Optional[int] = ...) -> None: ...

class ListIxResponse(_message.Message):
    __slots__ = ("ix",)
    IX_FIELD_NUMBER: _ClassVar[int]
    ix: _containers.RepeatedCompositeFieldContainer[IxState]
    def __init__(self, ix: _Optional[_Iterable[_Union[IxState, _Mapping]]] = ...) -> None: ...
