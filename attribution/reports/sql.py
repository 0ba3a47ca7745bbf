"""All SQL of the report, in one place, written to stay portable.

The text is DuckDB's dialect restricted to what ClickHouse also accepts, so a
ClickHouse backend can reuse it. Where the dialects differ it is noted with
``DIALECT:``; the known differences are:

* LEFT JOIN misses: DuckDB yields NULL; ClickHouse yields column defaults
  unless ``join_use_nulls = 1`` (set it for the session). The only join is
  the small ``links`` table.
* ``CREATE TABLE x AS SELECT``: ClickHouse needs ``ENGINE = MergeTree ORDER BY
  tuple()`` (or Memory) between the name and ``AS``; :func:`create_as` is the
  one place that builds it.
* Window functions (``ROW_NUMBER() OVER``) need ClickHouse >= 21.4.
* Integer bucketing uses ``ts - ts % b`` (both engines; no ``//`` or ``intDiv``).

A staged row stands for ``flows`` flow records (1 from files, more from a
ClickHouse rollup, :mod:`attribution.reports.rollup`): flows are counted with
``SUM(flows)``, never ``COUNT(*)``.

Only identifiers from fixed whitelists and validated numbers are ever
interpolated; strings from config or input go in through tables/parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

# Columns of the ``cube`` table that queries may group by.
CUBE_KEYS = frozenset({"side", "link_id", "link_kind", "peer_as", "origin_as", "via_as", "asn"})
# Sources a percentile/total query may read: the cube or a derived view of it.
SOURCES = {
    "cube": "cube",
    # Transit traffic per AS it could move to peering (see reach()).
    # Each transit row counts for its origin AS and, when different, for the AS
    # right behind our provider.
    "transit_reach": """(
        SELECT bucket, side, link_id, origin_as AS asn, bytes, packets, flows
        FROM cube WHERE link_kind = 'transit'
        UNION ALL
        SELECT bucket, side, link_id, via_as AS asn, bytes, packets, flows
        FROM cube WHERE link_kind = 'transit' AND via_as <> origin_as
    )""",
    "transit_origin": """(
        SELECT bucket, side, link_id, origin_as AS asn, bytes, packets, flows
        FROM cube WHERE link_kind = 'transit'
    )""",
}


def _keys(keys: Sequence[str]) -> list[str]:
    bad = [k for k in keys if k not in CUBE_KEYS]
    if bad:
        raise ValueError(f"not a cube key: {bad}")
    return list(keys)


def _int(value: int | float) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected int, got {value!r}")
    return str(value)


def create_as(name: str, select: str) -> str:
    # DIALECT: ClickHouse: CREATE TABLE name ENGINE = Memory AS select
    return f"CREATE OR REPLACE TABLE {name} AS {select}"


def flows_table(columns: Sequence[tuple[str, str]]) -> str:
    cols = ", ".join(f"{name} {typ}" for name, typ in columns)
    return f"CREATE OR REPLACE TABLE flows ({cols})"


LINKS_TABLE = "CREATE OR REPLACE TABLE links (link_id INTEGER, kind VARCHAR, peer_as BIGINT)"
PERIODS_TABLE = """CREATE OR REPLACE TABLE periods (
    period_id INTEGER, start_ts BIGINT, end_ts BIGINT, n BIGINT, pick BIGINT)"""

TIME_RANGE = "SELECT MIN(ts), MAX(ts), SUM(flows) FROM flows"


# Volumes with sampling applied (the rate was resolved when staging).
BYTES = "CAST(bytes AS DOUBLE) * rate"
PACKETS = "CAST(packets AS DOUBLE) * rate"


# Direction, decided per flow. Interfaces win over addresses:
#   in  = arrives on a configured link, or touches no link and only dst is ours
#   out = leaves on a configured link, or touches no link and only src is ours
# A flow can be both (customer <-> transit: "through"), or neither
# (internal: both ends ours; unknown: neither end ours and no link).
IS_IN = (
    "(CASE WHEN in_link >= 0 THEN TRUE WHEN out_link >= 0 THEN FALSE "
    "ELSE (dst_local AND NOT src_local) END)"
)
IS_OUT = (
    "(CASE WHEN out_link >= 0 THEN TRUE WHEN in_link >= 0 THEN FALSE "
    "ELSE (src_local AND NOT dst_local) END)"
)
DIRECTION = f"""(CASE
    WHEN {IS_IN} AND {IS_OUT} THEN 'through'
    WHEN {IS_IN} THEN 'in'
    WHEN {IS_OUT} THEN 'out'
    WHEN src_local AND dst_local THEN 'internal'
    ELSE 'unknown' END)"""


def cube(bucket_seconds: int) -> str:
    """One row per (bucket, side, link, peer, origin, via): the report's working set.

    The one full pass over the staged rows. ``side`` 'in' describes the remote
    source of traffic we receive, 'out' the remote destination of traffic we
    send; a "through" flow contributes to both. The peer falls back to the
    link's configured neighbor when attribution has none.
    """
    b = _int(bucket_seconds)
    select = f"""
    SELECT c.bucket, c.side, c.link_id, COALESCE(l.kind, '') AS link_kind,
           CASE WHEN c.peer_as = 0 THEN COALESCE(l.peer_as, 0) ELSE c.peer_as END AS peer_as,
           c.origin_as, c.via_as,
           SUM(c.bytes) AS bytes, SUM(c.packets) AS packets, SUM(c.flows) AS flows
    FROM (
        SELECT ts - ts % {b} AS bucket, 'in' AS side, in_link AS link_id, src_peer_as AS peer_as,
               src_origin_as AS origin_as, src_via_as AS via_as,
               SUM({BYTES}) AS bytes, SUM({PACKETS}) AS packets, SUM(flows) AS flows
        FROM flows WHERE {IS_IN}
        GROUP BY ts - ts % {b}, in_link, src_peer_as, src_origin_as, src_via_as
        UNION ALL
        SELECT ts - ts % {b} AS bucket, 'out' AS side, out_link AS link_id, dst_peer_as AS peer_as,
               dst_origin_as AS origin_as, dst_via_as AS via_as,
               SUM({BYTES}) AS bytes, SUM({PACKETS}) AS packets, SUM(flows) AS flows
        FROM flows WHERE {IS_OUT}
        GROUP BY ts - ts % {b}, out_link, dst_peer_as, dst_origin_as, dst_via_as
    ) c
    LEFT JOIN links l ON l.link_id = c.link_id
    GROUP BY c.bucket, c.side, c.link_id, l.kind,
             CASE WHEN c.peer_as = 0 THEN COALESCE(l.peer_as, 0) ELSE c.peer_as END,
             c.origin_as, c.via_as
    """
    return create_as("cube", select)


DIRECTION_SUMMARY = f"""
    SELECT {DIRECTION} AS direction, SUM({BYTES}) AS bytes, SUM({PACKETS}) AS packets,
           SUM(flows) AS flows
    FROM flows GROUP BY 1 ORDER BY 2 DESC"""


def raw_totals(column: str, limit: int) -> str:
    """Totals by one answer field over all flows, whatever their direction."""
    allowed = {"src_peer_as", "dst_peer_as", "src_origin_as", "dst_origin_as"}
    if column not in allowed:
        raise ValueError(column)
    return f"""
    SELECT {column} AS asn, SUM({BYTES}) AS bytes, SUM({PACKETS}) AS packets, SUM(flows) AS flows
    FROM flows GROUP BY {column} ORDER BY bytes DESC, asn LIMIT {_int(limit)}"""


def _period_case(periods: Sequence[tuple[int, int, int]]) -> str:
    """bucket -> period_id as a CASE (portable; avoids a range join)."""
    whens = " ".join(
        f"WHEN bucket >= {_int(start)} AND bucket < {_int(end)} THEN {_int(pid)}"
        for pid, start, end in periods
    )
    return f"(CASE {whens} ELSE -1 END)"


def percentiles(
    source: str,
    keys: Sequence[str],
    periods: Sequence[tuple[int, int, int]],
    bucket_seconds: int,
    where: str = "",
    nonzero: bool = False,
) -> str:
    """Per group and period: volume, the billing percentile, peak and mean in Mbps.

    Percentile rule (nearest rank over *all* buckets of the period, empty
    buckets counting as 0): with n buckets and k = ceil(p/100 * n), the value
    is the k-th smallest, i.e. the (n - k + 1)-th largest. Only non-empty
    buckets exist as rows, so we rank them descending and pick rank
    ``periods.pick`` = n - k + 1; a group with fewer non-empty buckets than
    that has a percentile of 0. ``nonzero`` drops those groups (the long tail of
    ASes seen in a few buckets) from the result.
    """
    ks = _keys(keys)
    src = SOURCES[source]
    b = _int(bucket_seconds)
    key_list = ", ".join(ks)
    part = ", ".join([*ks, "period_id"])
    where_sql = f"WHERE {where}" if where else ""
    return f"""
    WITH per_bucket AS (
        SELECT {key_list}, {_period_case(periods)} AS period_id, bucket,
               SUM(bytes) AS bytes, SUM(packets) AS packets, SUM(flows) AS flows
        FROM {src} src {where_sql}
        GROUP BY {key_list}, bucket
    ), ranked AS (
        SELECT *, ROW_NUMBER() OVER (PARTITION BY {part} ORDER BY bytes DESC) AS rn
        FROM per_bucket WHERE period_id >= 0
    )
    SELECT {", ".join("r." + k for k in ks)}, r.period_id,
           SUM(r.bytes) AS bytes, SUM(r.packets) AS packets, SUM(r.flows) AS flows,
           COALESCE(MAX(CASE WHEN r.rn = p.pick THEN r.bytes END), 0) * 8.0 / {b} / 1e6
               AS pct_mbps,
           MAX(r.bytes) * 8.0 / {b} / 1e6 AS peak_mbps,
           SUM(r.bytes) * 8.0 / (p.n * {b}) / 1e6 AS mean_mbps
    FROM ranked r JOIN periods p ON p.period_id = r.period_id
    GROUP BY {", ".join("r." + k for k in ks)}, r.period_id, p.n
    {"HAVING MAX(CASE WHEN r.rn = p.pick THEN r.bytes END) > 0" if nonzero else ""}
    """


def series(source: str, keys: Sequence[str], where: str = "") -> str:
    """Volume per bucket and group (for charts and the CSV/JSON time series)."""
    ks = _keys(keys)
    where_sql = f"WHERE {where}" if where else ""
    key_list = ", ".join(ks)
    return f"""
    SELECT bucket, {key_list}, SUM(bytes) AS bytes
    FROM {SOURCES[source]} src {where_sql}
    GROUP BY bucket, {key_list} ORDER BY bucket, {key_list}"""


def in_list(column: str, values: Sequence[int], negate: bool = False) -> str:
    """``column [NOT] IN (...)`` for integer values only (safe to interpolate)."""
    if column not in CUBE_KEYS:
        raise ValueError(column)
    if not values:
        return "TRUE" if negate else "FALSE"
    return f"{column} {'NOT IN' if negate else 'IN'} ({', '.join(_int(v) for v in sorted(values))})"


def totals(source: str, keys: Sequence[str], where: str = "", limit: int | None = None) -> str:
    """Volume per group; with ``limit``, only the biggest groups (by bytes)."""
    ks = ", ".join(_keys(keys))
    where_sql = f"WHERE {where}" if where else ""
    tail = f" ORDER BY bytes DESC, {ks} LIMIT {_int(limit)}" if limit is not None else ""
    return f"""
    SELECT {ks}, SUM(bytes) AS bytes, SUM(packets) AS packets, SUM(flows) AS flows
    FROM {SOURCES[source]} src {where_sql} GROUP BY {ks}{tail}"""


def folded_series(source: str, key: str, keep: Sequence[int], where: str = "") -> str:
    """Bytes per (bucket, side, key) with every key outside ``keep`` folded into -1."""
    _keys([key])
    fold = f"CASE WHEN {in_list(key, keep)} THEN {key} ELSE -1 END"
    where_sql = f"WHERE {where}" if where else ""
    return f"""
    SELECT bucket, side, {fold} AS k, SUM(bytes) AS bytes
    FROM {SOURCES[source]} src {where_sql}
    GROUP BY bucket, side, {fold} ORDER BY bucket, side, k"""
