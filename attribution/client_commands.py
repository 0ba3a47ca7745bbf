"""The client commands of ``attribution``: resolve, enrich, lookup, routers,
explain, overrides, reload.

Each reaches a running service over gRPC (``connection`` turns the
flags/environment/--config into a ``client.Connection``) and prints what it
answered; ``explain --table`` is the one that can also work offline. Kept
apart from ``cli`` (argument parsing, ``serve``, dispatch) so the commands
that run against a service are read in one place.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import count

import grpc
import orjson

from attribution.balancing import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_READY_TIMEOUT,
    DEFAULT_REBALANCE,
)
from attribution.cli_format import convergence, format_table, since
from attribution.client import Balancing, Connection, channel, connection_from, resolve_dicts
from attribution.convert import error_answer, route_to_json
from attribution.failover import FailoverStats
from attribution.pmacct import to_pmacct
from attribution.v1 import attribution_pb2 as pb
from attribution.v1 import attribution_pb2_grpc as pb_grpc
from ribd.checks import MAX_DEPTH, too_deep

MAX_INPUT_LINE = 1024 * 1024  # a flow record line longer than this is refused


def connection(args: argparse.Namespace) -> Connection:
    return connection_from(
        target=args.target,
        token=args.token,
        ca=args.ca,
        cert=args.cert,
        key=args.key,
        config_path=args.config,
        env=os.environ,
        server_name=getattr(args, "server_name", None),
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: must not be negative")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < 1e6:  # nan and infinity too
        raise argparse.ArgumentTypeError(f"{text}: must be a number of seconds above 0")
    return value


def add_replica_options(p: argparse.ArgumentParser, in_flight: bool = True) -> None:
    """Options of the streaming commands (resolve, enrich) for several replicas."""
    g = p.add_argument_group(
        "replicas",
        "with a --target listing several replicas (H1:P1,H2:P2 or dns:///NAME:PORT), "
        "batches are spread over those whose gRPC health says SERVING; a batch whose "
        "replica is lost is sent again to another",
    )
    g.add_argument(
        "--streams",
        type=_positive,
        default=0,
        metavar="N",
        help="streams at once (default 0: one per replica named, at least 2; one service: 1)",
    )
    if in_flight:
        g.add_argument(
            "--max-in-flight",
            type=_positive,
            default=0,
            metavar="N",
            help="batches sent and not yet answered, over all streams (default: 4 per stream)",
        )
    g.add_argument(
        "--retries",
        type=_positive,
        default=DEFAULT_MAX_ATTEMPTS,
        metavar="N",
        help="times a batch is sent at most before the run fails (default %(default)s)",
    )
    g.add_argument(
        "--ready-timeout",
        type=_seconds,
        default=DEFAULT_READY_TIMEOUT,
        metavar="SECONDS",
        help="after a lost replica, wait this long for one to be ready (default %(default)s)",
    )
    g.add_argument(
        "--rebalance",
        type=_seconds,
        default=DEFAULT_REBALANCE,
        metavar="SECONDS",
        help="reopen streams this often, so a replica back in service gets its share "
        "(default %(default)s)",
    )


def balancing(args: argparse.Namespace, stats: FailoverStats | None = None) -> Balancing:
    return Balancing(
        streams=args.streams,
        max_in_flight=getattr(args, "max_in_flight", 0) or 0,
        max_attempts=max(1, args.retries),
        ready_timeout=args.ready_timeout,
        rebalance=args.rebalance,
        stats=stats if stats is not None else FailoverStats(),
    )


def read_flow_lines(stream, stats: dict) -> Iterator[dict]:
    """Flow records from JSON lines. A bad line becomes a record that the
    resolver reports as an error in its own output line (order is kept)."""
    for n in count(1):
        line = (
            stream.buffer.readline(MAX_INPUT_LINE + 1)
            if hasattr(stream, "buffer")
            else (stream.readline().encode())
        )
        if not line:
            return
        if not line.strip():
            continue
        if len(line) > MAX_INPUT_LINE:
            stats["bad"] += 1
            yield {"__error__": ("bad_json", f"line {n}: longer than {MAX_INPUT_LINE} bytes")}
            # skip the rest of the over-long line
            while line and not line.endswith(b"\n"):
                line = stream.buffer.readline(MAX_INPUT_LINE)
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            stats["bad"] += 1
            yield {"__error__": ("bad_json", f"line {n}: not JSON ({exc})")}
            continue
        if not isinstance(record, dict):
            record = {"__error__": ("bad_record", f"line {n}: not a JSON object")}
        elif too_deep(record):  # the answer echoes the record: keep it writable
            record = {"__error__": ("bad_record", f"line {n}: nested deeper than {MAX_DEPTH}")}
        yield record


def cmd_resolve(args: argparse.Namespace) -> int:
    stats = {"bad": 0}
    flows = read_flow_lines(sys.stdin, stats)
    out = sys.stdout.buffer
    errors = total = 0
    args.connection = connection(args)
    bal = balancing(args)
    for record in _resolve_keeping_parse_errors(args.connection, flows, args.batch_size, bal):
        total += 1
        if record.get("error"):
            errors += 1
        if args.format == "pmacct":
            record = to_pmacct(record)
        out.write(orjson.dumps(record))
        out.write(b"\n")
    out.flush()
    if errors:
        print(f"attribution resolve: {total} flows, {errors} with errors", file=sys.stderr)
    if bal.stats.streams_failed:
        print(f"attribution resolve: failover: {bal.stats.summary()}", file=sys.stderr)
    return 0


def _resolve_keeping_parse_errors(
    target: Connection, flows, batch_size: int, bal: Balancing | None = None
) -> Iterator[dict]:
    """Records that failed to parse keep their place: the client finds them
    invalid (no addresses) and never sends them; the marker then replaces that
    answer with the parse error."""
    for record in resolve_dicts(target, flows, batch_size, balancing=bal):
        marker = record.pop("__error__", None)
        if marker is not None:
            code, message = marker
            yield error_answer(code, message)
        else:
            yield record


def cmd_enrich(args: argparse.Namespace) -> int:
    from attribution import enrich_cli

    args.connection = connection(args)
    return enrich_cli.cmd_enrich(args)


def cmd_lookup(args: argparse.Namespace) -> int:
    request = pb.LookupRouteRequest(router=args.router, all_paths=args.all_paths)
    if "/" in args.what:
        request.prefix = args.what
    else:
        request.address = args.what
    args.connection = connection(args)
    with channel(args.connection) as ch:
        reply = pb_grpc.AttributionStub(ch).LookupRoute(request, timeout=10)
    if not reply.found:
        print(orjson.dumps({"found": False, "router": args.router, "query": args.what}).decode())
        return 1
    for route in reply.routes:
        print(orjson.dumps(route_to_json(route)).decode())
    return 0


def cmd_routers(args: argparse.Namespace) -> int:
    args.connection = connection(args)
    with channel(args.connection) as ch:
        reply = pb_grpc.AttributionStub(ch).ListRouters(pb.ListRoutersRequest(), timeout=10)
    rows = []
    for r in reply.routers:
        fams = {f.family: f for f in r.families}
        v4, v6 = fams.get("ipv4 unicast"), fams.get("ipv6 unicast")
        rows.append(
            {
                "name": r.name,
                "neighbor": r.neighbor,
                "peer_as": r.peer_as,
                "session": r.session,
                "session_since": r.session_since or None,
                "last_reason": r.last_reason or None,
                "last_update": r.last_update or None,
                "convergence": convergence(r),
                "stale": r.stale,
                "stale_until": r.stale_until or None,
                "ipv4_prefixes": v4.prefixes if v4 else 0,
                "ipv4_converged": bool(v4 and v4.converged),
                "ipv6_prefixes": v6.prefixes if v6 else 0,
                "ipv6_converged": bool(v6 and v6.converged),
                "prefixes_refused": sum(f.prefixes_refused for f in r.families),
                "stale_prefixes": sum(f.stale_prefixes for f in r.families),
                "families": {
                    f.family: {
                        "prefixes": f.prefixes,
                        "paths": f.paths,
                        "stale_prefixes": f.stale_prefixes,
                        "converged": f.converged,
                        "inferred": bool(f.inferred),
                        "max_prefixes": f.max_prefixes or None,
                        "prefixes_refused": f.prefixes_refused,
                        "paths_over_limit": f.paths_over_limit,
                    }
                    for f in r.families
                },
                "exporters": list(r.exporters),
                "fallback": list(r.fallback),
                "worker": r.worker or None,
            }
        )
    if args.json:
        document = {
            "routers": rows,
            "unique_attribute_sets": reply.unique_attribute_sets,
            "bad_feed_lines": reply.bad_feed_lines,
        }
        print(orjson.dumps(document).decode())
        return 0
    now = time.time()
    headers = ["name", "neighbor", "session", "ipv4", "ipv6", "stale", "last update", "state"]
    headers.append("exporters")
    workers = any(row["worker"] for row in rows)  # several ExaBGP workers: say which
    if workers:
        headers.insert(2, "worker")
    table = [
        [
            row["name"],
            row["neighbor"],
            row["session"],
            _family_cell(row, "ipv4"),
            _family_cell(row, "ipv6"),
            str(row["stale_prefixes"]) if row["stale"] else "-",
            since(row["last_update"] or 0.0, now),
            row["convergence"],
            ",".join(row["exporters"]) or "-",
        ]
        for row in rows
    ]
    if workers:
        for line, row in zip(table, rows, strict=True):
            line.insert(2, str(row["worker"] or "-"))
    print(format_table(headers, table))
    refused = (
        "  (! prefixes refused at max_prefixes)" if any(r["prefixes_refused"] for r in rows) else ""
    )
    print(
        f"(* family not converged){refused}  attribute sets: {reply.unique_attribute_sets}  "
        f"bad feed lines: {reply.bad_feed_lines}"
    )
    return 0


def _family_cell(row: dict, family: str) -> str:
    """A family's prefixes, " *" while not converged, " !" once any was refused at its limit."""
    full = f"{family} unicast"
    refused = row["families"].get(full, {}).get("prefixes_refused", 0)
    converged = "" if row[f"{family}_converged"] else " *"
    return f"{row[f'{family}_prefixes']}{converged}{' !' if refused else ''}"


def cmd_explain(args: argparse.Namespace) -> int:
    """Explain flows one by one (the Explain RPC); exit 1 when a record was unusable
    or an explanation disagreed with its answer."""
    stats = {"bad": 0}
    if args.flow is not None:
        try:
            record = orjson.loads(args.flow)
        except orjson.JSONDecodeError as exc:
            record = {"__error__": ("bad_json", f"flow argument: not JSON ({exc})")}
        if not isinstance(record, dict):
            record = {"__error__": ("bad_record", "flow argument: not a JSON object")}
        records: Iterator[dict] = iter([record])
    else:
        records = read_flow_lines(sys.stdin, stats)
    with _explainer(args) as ask:
        return _explain_records(records, ask, args.json)


@contextmanager
def _explainer(args: argparse.Namespace) -> Iterator[Callable[[dict], pb.Explanation]]:
    """The service's Explain RPC, or (--table) the same explanation in process."""
    if args.table:
        from attribution.explain_render import explanation
        from attribution.offline import OfflineResolver

        offline = OfflineResolver.from_exabgp_dump(args.table, args.config)
        yield lambda record: explanation(offline.resolver, offline.config, record)
        return
    args.connection = connection(args)
    with channel(args.connection) as ch:
        stub = pb_grpc.AttributionStub(ch)
        yield lambda record: stub.Explain(_flow_message(record), timeout=30)


def _explain_records(
    records: Iterator[dict], ask: Callable[[dict], pb.Explanation], as_json: bool
) -> int:
    from attribution.explain_render import to_json, to_text
    from attribution.resolver import rows_to_columns

    status = 0
    for n, record in enumerate(records):
        sep = "" if n == 0 else "\n"  # a blank line between flows (text)
        marker = record.get("__error__")
        bad = rows_to_columns([record])[-1] if marker is None else {0: marker}
        if bad:
            code, message = bad[0]
            doc = {"flow": record if marker is None else None, "error_code": code}
            doc["error"] = message
            status = 1
            if as_json:
                print(orjson.dumps(doc).decode())
            else:
                print(f"{sep}flow not explained: {code}: {message}")
            continue
        doc = {"flow": record, **to_json(ask(record))}
        if doc["mismatches"]:
            status = 1
        if as_json:
            print(orjson.dumps(doc).decode())
        else:
            print(sep + to_text(doc), flush=True)
    return status


def _flow_message(record: dict) -> pb.Flow:
    """A valid flow JSON record (rows_to_columns found nothing wrong) as a Flow."""
    return pb.Flow(
        exporter=record["exporter"],
        src_addr=record["src_addr"],
        dst_addr=record["dst_addr"],
        in_if=record.get("in_if") or 0,
        out_if=record.get("out_if") or 0,
        src_mac=record.get("src_mac") or "",
        next_hop=record["next_hop"] if isinstance(record.get("next_hop"), str) else "",
    )


def cmd_overrides(args: argparse.Namespace) -> int:
    from attribution import dryrun_cli

    return dryrun_cli.cmd_overrides(args, connection)


def cmd_reload(args: argparse.Namespace) -> int:
    """Reload one service, or every replica a list or ``dns:///`` name gives, one by one.

    Each replica reads its own config file, so each answers for itself; the
    exit status is 0 only if every one reloaded.
    """
    from attribution.client import replica_connections

    args.connection = connection(args)
    replicas = replica_connections(args.connection)
    if len(replicas) == 1:
        return _reload_one(replicas[0], "")
    failed = 0
    for conn in replicas:
        try:
            failed += _reload_one(conn, f"{conn.target}: ")
        except grpc.RpcError as exc:
            failed += 1
            print(
                f"{conn.target}: not reloaded: {exc.code().name}: {exc.details()}", file=sys.stderr
            )
    if failed:
        print(f"{failed} of {len(replicas)} replicas not reloaded", file=sys.stderr)
    return 1 if failed else 0


def _reload_one(conn: Connection, label: str) -> int:
    with channel(conn) as ch:
        reply = pb_grpc.AttributionStub(ch).ReloadConfig(pb.ReloadConfigRequest(), timeout=30)
    for w in reply.warnings:
        print(f"{label}warning: {w}", file=sys.stderr)
    if not reply.ok:
        print(f"{label}reload refused, the running config is kept: {reply.error}", file=sys.stderr)
        return 1
    print(f"{label}reloaded: {reply.overrides} overrides in force")
    return 0
