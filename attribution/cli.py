"""`attribution`: serve, resolve, lookup, routers, explain, overrides, reload, demo, report."""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import count

import grpc
import orjson

from attribution import logs
from attribution.client import (
    DEFAULT_BATCH,
    DEFAULT_TARGET,
    ClientSettingsError,
    Connection,
    channel,
    connection_from,
    resolve_dicts,
)
from attribution.config import ConfigError
from attribution.convert import error_answer, route_to_json
from attribution.pmacct import to_pmacct
from attribution.v1 import attribution_pb2 as pb
from attribution.v1 import attribution_pb2_grpc as pb_grpc
from ribd.checks import MAX_DEPTH, too_deep

log = logging.getLogger("attribution.serve")

MAX_INPUT_LINE = 1024 * 1024  # a flow record line longer than this is refused


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(text: str) -> str:
    level = text.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a log level: use one of {', '.join(LOG_LEVELS)}"
        )
    return level


def _version() -> str:
    try:
        return importlib.metadata.version("bgp-attribution")
    except importlib.metadata.PackageNotFoundError:
        from attribution import __version__

        return __version__


def _common(top: bool) -> argparse.ArgumentParser:
    """Options every command takes, before or after the command's name.

    The subcommands' copy defaults to SUPPRESS so that it does not overwrite
    a value given before the command.
    """
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--log-level",
        type=_log_level,
        default=None if top else argparse.SUPPRESS,
        metavar="LEVEL",
        help="DEBUG, INFO, WARNING, ERROR (default: INFO for serve, WARNING otherwise)",
    )
    p.add_argument(
        "--log-format",
        choices=logs.FORMATS,
        default=None if top else argparse.SUPPRESS,
        help="text, or json: one object per line (default: [service] log_format, else text)",
    )
    return p


def _client_options() -> argparse.ArgumentParser:
    """How client commands reach the service: flag, else env var, else --config."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group(
        "connection",
        "each from its flag, else its environment variable, else the service's config "
        "file (--config), else the default",
    )
    g.add_argument(
        "--target",
        metavar="HOST:PORT",
        help=f"the service's gRPC address ($ATTRIBUTION_TARGET; default {DEFAULT_TARGET})",
    )
    g.add_argument(
        "--token",
        metavar="TOKEN",
        help="bearer token ($ATTRIBUTION_TOKEN; visible to other users in ps: prefer the "
        "variable or --config)",
    )
    g.add_argument(
        "--ca", metavar="FILE", help="CA certificate to trust: turns TLS on ($ATTRIBUTION_CA)"
    )
    g.add_argument(
        "--cert", metavar="FILE", help="client certificate for mutual TLS ($ATTRIBUTION_CERT)"
    )
    g.add_argument("--key", metavar="FILE", help="its private key ($ATTRIBUTION_KEY)")
    g.add_argument(
        "--config",
        metavar="FILE",
        help="the service's config: target from grpc_listen, TLS from [api], token from "
        "the token files this user can read",
    )
    return p


def connection(args: argparse.Namespace) -> Connection:
    return connection_from(
        target=args.target,
        token=args.token,
        ca=args.ca,
        cert=args.cert,
        key=args.key,
        config_path=args.config,
        env=os.environ,
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="attribution",
        description="BGP-aware AS attribution for flow records.",
        parents=[_common(top=True)],
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common(top=False)
    client = [common, _client_options()]

    s = sub.add_parser("serve", help="run the service: RIB, ExaBGP, gRPC", parents=[common])
    s.add_argument("--config", required=True, metavar="FILE", help="TOML config file")
    s.add_argument("--grpc-listen", metavar="HOST:PORT", help="override [service] grpc_listen")

    s = sub.add_parser(
        "resolve",
        help="attribute flow records: JSON lines on stdin, JSON lines on stdout",
        parents=client,
    )
    s.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help="flows per request")
    s.add_argument(
        "--format",
        choices=("native", "pmacct"),
        default="native",
        help="output fields: ours (docs/flow-json.md) or pmacct 1.7.7's JSON names "
        "(docs/pmacct.md)",
    )

    from attribution import enrich_cli

    enrich_cli.add_parser(sub, client)

    s = sub.add_parser(
        "lookup", help="the route a router uses for an address or prefix", parents=client
    )
    s.add_argument("router", help="router name, neighbor address or exporter address")
    s.add_argument("what", help="an address (longest-prefix match) or a prefix (exact)")
    s.add_argument("--all-paths", action="store_true", help="every ADD-PATH path")

    s = sub.add_parser(
        "routers", help="routers with session state and prefix counts", parents=client
    )
    s.add_argument(
        "--json", action="store_true", help="machine-readable output (one JSON document)"
    )

    s = sub.add_parser(
        "explain",
        help="why a flow got its answer: router chain, covering prefixes and paths, "
        "the rule applied, overrides, flags",
        parents=client,
    )
    s.add_argument(
        "flow",
        nargs="?",
        help="one flow record as JSON (as `resolve` reads it); default: JSON lines on stdin, "
        "each explained",
    )
    s.add_argument("--json", action="store_true", help="one JSON document per flow")
    s.add_argument(
        "--table",
        metavar="DUMP",
        help="explain offline against an ExaBGP JSON table dump (plain or .gz) instead of "
        "the service; --config is then the attribution config to apply (default: every "
        "router of the dump, in order, as fallback)",
    )

    from attribution import dryrun_cli

    dryrun_cli.add_parser(sub, client)

    sub.add_parser(
        "reload",
        help="re-read the config file (overrides, exporter map, ...); needs an admin token",
        parents=client,
    )

    s = sub.add_parser(
        "demo",
        help="run the service against a bundled table over a real BGP session, "
        "then attribute sample flows (no router needed)",
        parents=[common],
    )
    s.add_argument("--flows", metavar="FILE", help="flow JSON lines (default: bundled samples)")
    s.add_argument("--json", action="store_true", help="print JSON lines, not a table")
    s.add_argument(
        "--keep-running", action="store_true", help="keep serving after the demo (Ctrl-C stops)"
    )

    try:
        from attribution.reports import cli as report_cli
    except ImportError:  # pragma: no cover - reports are part of the package
        report_cli = None
    if report_cli is not None:
        report_cli.add_parser(sub)
        common_log_level(sub.choices["report"])
    return p


def common_log_level(parser: argparse.ArgumentParser) -> None:
    """--log-level after a command whose parser is built elsewhere."""
    parser.add_argument(
        "--log-level", type=_log_level, default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = args.log_level or ("INFO" if args.command == "serve" else "WARNING")
    logs.setup(level, args.log_format)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"attribution: {exc}", file=sys.stderr)
        return 2
    except grpc.RpcError as exc:
        target = getattr(args, "connection", None)
        where = f"{target.target}: " if target is not None else ""
        hint = {
            grpc.StatusCode.UNAUTHENTICATED: " (give a token: --token, ATTRIBUTION_TOKEN or "
            "--config)",
            grpc.StatusCode.PERMISSION_DENIED: " (this needs an admin token)",
        }.get(exc.code(), "")
        print(f"attribution: {where}{exc.code().name}: {exc.details()}{hint}", file=sys.stderr)
        return 1
    except ClientSettingsError as exc:  # a TLS file or option the client cannot use
        print(f"attribution: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly like other Unix tools.
        # Point stdout at /dev/null so the interpreter's final flush is silent.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt:
        return 130


def cmd_serve(args: argparse.Namespace) -> int:
    from attribution.config import load_config
    from attribution.security import check
    from attribution.service import Service, catch_signals

    signals = catch_signals()  # first: a SIGHUP during a long first parse would kill us
    log.debug("starting: reading %s", args.config)
    check(load_config(args.config).api)  # unusable TLS or token files: fail before ExaBGP starts
    Service(args.config, grpc_listen=args.grpc_listen).run_forever(signals)
    return 0


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
    for record in _resolve_keeping_parse_errors(args.connection, flows, args.batch_size):
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
    return 0


def _resolve_keeping_parse_errors(target: Connection, flows, batch_size: int) -> Iterator[dict]:
    """Records that failed to parse keep their place: the client finds them
    invalid (no addresses) and never sends them; the marker then replaces that
    answer with the parse error."""
    for record in resolve_dicts(target, flows, batch_size):
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


def convergence(r: pb.RouterState) -> str:
    """Why a router counts as converged or not, in words.

    A family converges at End-of-RIB, or (inferred) when a peer that never
    sends one has been quiet for ``[bgp] converge_quiet_time``.
    """
    if r.session != "up":
        state = f"session {r.session or 'idle'}"
        if r.last_reason:
            state += f" ({r.last_reason})"
        return f"{state}; routes served stale" if r.stale else state
    if r.families and all(f.converged for f in r.families):
        inferred = any(f.inferred for f in r.families)
        return "converged (inferred: no End-of-RIB, quiet peer)" if inferred else "converged"
    waiting = [f.family for f in r.families if not f.converged]
    return f"waiting for End-of-RIB ({', '.join(waiting)})" if waiting else "waiting for End-of-RIB"


def _since(t: float, now: float) -> str:
    if not t:
        return "never"
    ago = max(0.0, now - t)
    if ago < 120:
        return f"{ago:.0f} s ago"
    if ago < 7200:
        return f"{ago / 60:.0f} min ago"
    return f"{ago / 3600:.1f} h ago"


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
                "stale_prefixes": sum(f.stale_prefixes for f in r.families),
                "families": {
                    f.family: {
                        "prefixes": f.prefixes,
                        "paths": f.paths,
                        "stale_prefixes": f.stale_prefixes,
                        "converged": f.converged,
                        "inferred": bool(f.inferred),
                    }
                    for f in r.families
                },
                "exporters": list(r.exporters),
                "fallback": list(r.fallback),
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
    table = [
        [
            row["name"],
            row["neighbor"],
            row["session"],
            f"{row['ipv4_prefixes']}{'' if row['ipv4_converged'] else ' *'}",
            f"{row['ipv6_prefixes']}{'' if row['ipv6_converged'] else ' *'}",
            str(row["stale_prefixes"]) if row["stale"] else "-",
            _since(row["last_update"] or 0.0, now),
            row["convergence"],
            ",".join(row["exporters"]) or "-",
        ]
        for row in rows
    ]
    print(format_table(headers, table))
    print(
        f"(* family not converged)  attribute sets: {reply.unique_attribute_sets}  "
        f"bad feed lines: {reply.bad_feed_lines}"
    )
    return 0


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
    args.connection = connection(args)
    with channel(args.connection) as ch:
        reply = pb_grpc.AttributionStub(ch).ReloadConfig(pb.ReloadConfigRequest(), timeout=30)
    for w in reply.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if not reply.ok:
        print(f"reload refused, the running config is kept: {reply.error}", file=sys.stderr)
        return 1
    print(f"reloaded: {reply.overrides} overrides in force")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from attribution.demo import run_demo

    return run_demo(flows_path=args.flows, as_json=args.json, keep_running=args.keep_running)


def cmd_report(args: argparse.Namespace) -> int:
    from attribution.reports import cli as report_cli

    return report_cli.run(args)


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(line.rstrip() for line in lines)


COMMANDS = {
    "serve": cmd_serve,
    "resolve": cmd_resolve,
    "enrich": cmd_enrich,
    "lookup": cmd_lookup,
    "routers": cmd_routers,
    "explain": cmd_explain,
    "overrides": cmd_overrides,
    "reload": cmd_reload,
    "demo": cmd_demo,
    "report": cmd_report,
}

if __name__ == "__main__":
    sys.exit(main())
