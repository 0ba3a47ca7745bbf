"""The one column list of stored attributed flows, without Arrow.

:mod:`attribution.sinks.table` builds the Arrow schema from it and the
ClickHouse DDL (:mod:`attribution.clickhouse_schema`) the table's columns, so
the two cannot drift apart. It lives apart from the Arrow code so that
commands that only print or apply the DDL, and the CLI's parser, need neither
pyarrow nor the ``parquet``/``clickhouse`` extras installed.
"""

from __future__ import annotations

from attribution.answers import FLAG_NAMES

U32 = 2**32 - 1
U64 = 2**64 - 1

# kind -> ClickHouse type (the Arrow types are in attribution.sinks.table)
CLICKHOUSE_TYPES: dict[str, str] = {
    "time": "DateTime('UTC')",
    "lc": "LowCardinality(String)",
    "str": "String",
    "u32": "UInt32",
    "u64": "UInt64",
    "opt_u32": "Nullable(UInt32)",
    "bool": "Bool",
    "path": "Array(UInt32)",
    "strs": "Array(String)",
}

# (name, kind, what). Order is the Parquet/ClickHouse column order.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    (
        "time",
        "time",
        "flow end (unix seconds, UTC); the time it was written when the record has none",
    ),
    ("input_format", "lc", "goflow2, pmacct, nfdump or native"),
    ("exporter", "lc", "the exporting router's address"),
    ("src_addr", "str", ""),
    ("dst_addr", "str", ""),
    ("in_if", "u32", "input ifIndex"),
    ("out_if", "u32", "output ifIndex"),
    ("src_mac", "str", ""),
    ("next_hop", "str", "BGP next hop as exported"),
    ("bytes", "u64", "as exported (sampled)"),
    ("packets", "u64", "as exported (sampled)"),
    ("sampling_rate", "u32", "1-in-N; 0: not given"),
    ("router", "lc", "the router whose RIB answered"),
    ("src_origin_as", "u32", ""),
    ("src_peer_as", "u32", ""),
    ("src_via_as", "u32", "the AS behind src_peer_as on the src path (prepends skipped)"),
    ("dst_origin_as", "u32", ""),
    ("dst_peer_as", "u32", ""),
    ("dst_via_as", "u32", "the AS behind dst_peer_as on the dst path"),
    ("src_origin_provenance", "lc", "bgp, override, local, default, none"),
    ("src_peer_provenance", "lc", ""),
    ("dst_origin_provenance", "lc", ""),
    ("dst_peer_provenance", "lc", ""),
    ("src_prefix", "str", ""),
    ("dst_prefix", "str", ""),
    ("src_as_path", "path", "AS numbers; an AS_SET's members inline (the *_origin_as_set flags)"),
    ("dst_as_path", "path", ""),
    ("dst_communities", "strs", "A:B"),
    ("dst_large_communities", "strs", "A:B:C"),
    ("dst_local_pref", "opt_u32", ""),
    ("dst_med", "opt_u32", ""),
    ("dst_next_hop", "str", "BGP next hop of the dst route"),
    ("override", "lc", "the override rule that set src_peer_as"),
    *((name, "bool", "") for name in FLAG_NAMES.values()),
    ("error_code", "lc", "set when the record could not be answered"),
    ("error", "str", ""),
)
NAMES = tuple(name for name, _, _ in COLUMNS)


def clickhouse_columns() -> list[tuple[str, str, str]]:
    """(name, ClickHouse type, comment) for the flows table's DDL."""
    return [(name, CLICKHOUSE_TYPES[kind], what) for name, kind, what in COLUMNS]
