"""`attribution`: serve, resolve, lookup, routers, reload, demo, report."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from itertools import count

import grpc
import orjson

from attribution.client import DEFAULT_BATCH, DEFAULT_TARGET, channel, resolve_dicts
from attribution.config import ConfigError
from attribution.convert import error_answer, route_to_json
from attribution.v1 import attribution_pb2 as pb
from attribution.v1 import attribution_pb2_grpc as pb_grpc

MAX_INPUT_LINE = 1024 * 1024  # a flow record line longer than this is refused


def _target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        default=DEFAULT_TARGET,
        metavar="HOST:PORT",
        help=f"the service's gRPC address (default {DEFAULT_TARGET})",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="attribution",
        description="BGP-aware AS attribution for flow records.",
    )
    p.add_argument(
        "--log-level",
        help="DEBUG, INFO, WARNING, ERROR (default: INFO for serve, WARNING otherwise)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("serve", help="run the service: RIB, ExaBGP, gRPC")
    s.add_argument("--config", required=True, metavar="FILE", help="TOML config file")
    s.add_argument("--grpc-listen", metavar="HOST:PORT", help="override [service] grpc_listen")

    s = sub.add_parser(
        "resolve", help="attribute flow records: JSON lines on stdin, JSON lines on stdout"
    )
    _target(s)
    s.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help="flows per request")

    s = sub.add_parser("lookup", help="the route a router uses for an address or prefix")
    _target(s)
    s.add_argument("router", help="router name, neighbor address or exporter address")
    s.add_argument("what", help="an address (longest-prefix match) or a prefix (exact)")
    s.add_argument("--all-paths", action="store_true", help="every ADD-PATH path")

    s = sub.add_parser("routers", help="routers with session state and prefix counts")
    _target(s)
    s.add_argument("--json", action="store_true", help="machine-readable output")

    s = sub.add_parser("reload", help="re-read the config file (overrides, exporter map, ...)")
    _target(s)

    s = sub.add_parser(
        "demo",
        help="run the service against a bundled table over a real BGP session, "
        "then attribute sample flows (no router needed)",
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = args.log_level or ("INFO" if args.command == "serve" else "WARNING")
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"attribution: {exc}", file=sys.stderr)
        return 2
    except grpc.RpcError as exc:
        print(
            f"attribution: {getattr(args, 'target', '')}: {exc.code().name}: {exc.details()}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 130


def cmd_serve(args: argparse.Namespace) -> int:
    from attribution.service import Service

    Service(args.config, grpc_listen=args.grpc_listen).run_forever()
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
        yield (
            record
            if isinstance(record, dict)
            else {"__error__": ("bad_record", f"line {n}: not a JSON object")}
        )


def cmd_resolve(args: argparse.Namespace) -> int:
    stats = {"bad": 0}
    flows = read_flow_lines(sys.stdin, stats)
    out = sys.stdout.buffer
    errors = total = 0
    for record in _resolve_keeping_parse_errors(args.target, flows, args.batch_size):
        total += 1
        if record.get("error"):
            errors += 1
        out.write(orjson.dumps(record))
        out.write(b"\n")
    out.flush()
    if errors:
        print(f"attribution resolve: {total} flows, {errors} with errors", file=sys.stderr)
    return 0


def _resolve_keeping_parse_errors(target: str, flows, batch_size: int) -> Iterator[dict]:
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


def cmd_lookup(args: argparse.Namespace) -> int:
    request = pb.LookupRouteRequest(router=args.router, all_paths=args.all_paths)
    if "/" in args.what:
        request.prefix = args.what
    else:
        request.address = args.what
    with channel(args.target) as ch:
        reply = pb_grpc.AttributionStub(ch).LookupRoute(request, timeout=10)
    if not reply.found:
        print(orjson.dumps({"found": False, "router": args.router, "query": args.what}).decode())
        return 1
    for route in reply.routes:
        print(orjson.dumps(route_to_json(route)).decode())
    return 0


def cmd_routers(args: argparse.Namespace) -> int:
    with channel(args.target) as ch:
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
                "last_reason": r.last_reason or None,
                "stale": r.stale,
                "ipv4_prefixes": v4.prefixes if v4 else 0,
                "ipv4_converged": bool(v4 and v4.converged),
                "ipv6_prefixes": v6.prefixes if v6 else 0,
                "ipv6_converged": bool(v6 and v6.converged),
                "stale_prefixes": sum(f.stale_prefixes for f in r.families),
                "exporters": list(r.exporters),
                "fallback": list(r.fallback),
            }
        )
    if args.json:
        for row in rows:
            print(orjson.dumps(row).decode())
        return 0
    headers = ["name", "neighbor", "session", "ipv4", "ipv6", "stale", "exporters"]
    table = [
        [
            row["name"],
            row["neighbor"],
            row["session"],
            f"{row['ipv4_prefixes']}{'' if row['ipv4_converged'] else ' *'}",
            f"{row['ipv6_prefixes']}{'' if row['ipv6_converged'] else ' *'}",
            str(row["stale_prefixes"]) if row["stale"] else "-",
            ",".join(row["exporters"]) or "-",
        ]
        for row in rows
    ]
    print(format_table(headers, table))
    print(
        f"(* not converged: no End-of-RIB yet)  attribute sets: {reply.unique_attribute_sets}  "
        f"bad feed lines: {reply.bad_feed_lines}"
    )
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    with channel(args.target) as ch:
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
    "lookup": cmd_lookup,
    "routers": cmd_routers,
    "reload": cmd_reload,
    "demo": cmd_demo,
    "report": cmd_report,
}

if __name__ == "__main__":
    sys.exit(main())
