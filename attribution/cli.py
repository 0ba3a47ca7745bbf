"""`attribution`: serve, resolve, lookup, routers, explain, overrides, ix, reload, demo, report.

The command line's entry point: argument parsing, logging set-up, dispatch,
and how errors become exit codes; ``serve``, ``demo`` and ``report`` start
their own machinery. The commands that talk to a running service are in
``client_commands``, their text formatting in ``cli_format``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import signal
import sys

import grpc

from attribution import client_commands, logs
from attribution.cli_format import convergence, format_table
from attribution.client import DEFAULT_BATCH
from attribution.client_commands import (
    MAX_INPUT_LINE,
    cmd_enrich,
    cmd_explain,
    cmd_lookup,
    cmd_overrides,
    cmd_reload,
    cmd_resolve,
    cmd_routers,
    connection,
    read_flow_lines,
)
from attribution.config_file import ConfigError
from attribution.connection import DEFAULT_TARGET, ClientSettingsError
from attribution.failover import BalancingError

# Names other modules import from here (the demo, the benches).
__all__ = [
    "COMMANDS",
    "MAX_INPUT_LINE",
    "build_parser",
    "connection",
    "convergence",
    "format_table",
    "main",
    "read_flow_lines",
]

log = logging.getLogger("attribution.serve")

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
        help="the service's gRPC address, or several replicas: H1:P1,H2:P2 or "
        f"dns:///NAME:PORT ($ATTRIBUTION_TARGET; default {DEFAULT_TARGET})",
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
        "--server-name",
        metavar="NAME",
        help="name to check the server certificate against when the target's host is not "
        "in it (a list of replicas: default its first host) ($ATTRIBUTION_SERVER_NAME)",
    )
    g.add_argument(
        "--config",
        metavar="FILE",
        help="the service's config: target from grpc_listen, TLS from [api], token from "
        "the token files this user can read",
    )
    return p


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or with ``only`` the one command about to run.

    Each command's options come from its own module (enrich, overrides, ix,
    clickhouse, report), and importing them all cost every invocation ~0.2
    CPU-s before doing anything: ``main`` builds only the command it runs.
    """

    def wanted(name: str) -> bool:
        return only is None or only == name

    p = argparse.ArgumentParser(
        prog="attribution",
        description="BGP-aware AS attribution for flow records.",
        parents=[_common(top=True)],
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common(top=False)
    client = [common, _client_options()]

    if wanted("serve"):
        s = sub.add_parser("serve", help="run the service: RIB, ExaBGP, gRPC", parents=[common])
        s.add_argument("--config", required=True, metavar="FILE", help="TOML config file")
        s.add_argument("--grpc-listen", metavar="HOST:PORT", help="override [service] grpc_listen")

    if wanted("check"):
        from attribution import check_cli

        check_cli.add_parser(sub, [common])

    if wanted("resolve"):
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
        client_commands.add_replica_options(s)

    if wanted("enrich"):
        from attribution import enrich_cli

        enrich_cli.add_parser(sub, client)

    if wanted("lookup"):
        s = sub.add_parser(
            "lookup", help="the route a router uses for an address or prefix", parents=client
        )
        s.add_argument("router", help="router name, neighbor address or exporter address")
        s.add_argument("what", help="an address (longest-prefix match) or a prefix (exact)")
        s.add_argument("--all-paths", action="store_true", help="every ADD-PATH path")

    if wanted("routers"):
        s = sub.add_parser(
            "routers", help="routers with session state and prefix counts", parents=client
        )
        s.add_argument(
            "--json", action="store_true", help="machine-readable output (one JSON document)"
        )

    if wanted("explain"):
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

    if wanted("overrides"):
        from attribution import dryrun_cli

        dryrun_cli.add_parser(sub, client)
    if wanted("ix"):
        from attribution import ix_show

        ix_show.add_parser(sub, client)

    if wanted("reload"):
        sub.add_parser(
            "reload",
            help="re-read the config file (overrides, exporter map, ...); needs an admin token",
            parents=client,
        )

    if wanted("demo"):
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

    if wanted("clickhouse"):
        from attribution import clickhouse_schema

        clickhouse_schema.add_parser(sub, [common])

    if wanted("report"):
        from attribution.reports import cli as report_cli

        report_cli.add_parser(sub)
        common_log_level(sub.choices["report"])
    return p


def common_log_level(parser: argparse.ArgumentParser) -> None:
    """--log-level after a command whose parser is built elsewhere."""
    parser.add_argument(
        "--log-level", type=_log_level, default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )


def _command_in(argv: list[str]) -> str | None:
    """The command an argument list runs, if plain to see (else None: build all)."""
    takes_value = {"--log-level", "--log-format"}
    previous = ""
    for arg in argv:
        if not arg.startswith("-") and previous not in takes_value:
            return arg if arg in COMMANDS else None
        if arg in ("-h", "--help", "--version"):
            return None
        previous = arg
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(_command_in(argv)).parse_args(argv)
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
    except BalancingError as exc:  # batches a lost replica left and no other took
        print(f"attribution: {exc}", file=sys.stderr)
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
    config = load_config(args.config)
    check(config.api, config.metrics)  # unusable TLS or token files: fail before ExaBGP starts
    Service(args.config, grpc_listen=args.grpc_listen).run_forever(signals)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from attribution.demo import run_demo

    return run_demo(flows_path=args.flows, as_json=args.json, keep_running=args.keep_running)


def cmd_ix(args: argparse.Namespace) -> int:
    from attribution import ix_show

    return ix_show.cmd_ix(args, connection)


def cmd_report(args: argparse.Namespace) -> int:
    from attribution.reports import cli as report_cli

    return report_cli.run(args)


def cmd_clickhouse(args: argparse.Namespace) -> int:
    from attribution import clickhouse_schema

    return clickhouse_schema.run(args)


def cmd_check(args: argparse.Namespace) -> int:
    from attribution.check_cli import cmd_check as check

    return check(args)


COMMANDS = {
    "serve": cmd_serve,
    "check": cmd_check,
    "resolve": cmd_resolve,
    "enrich": cmd_enrich,
    "lookup": cmd_lookup,
    "routers": cmd_routers,
    "explain": cmd_explain,
    "overrides": cmd_overrides,
    "ix": cmd_ix,
    "reload": cmd_reload,
    "demo": cmd_demo,
    "report": cmd_report,
    "clickhouse": cmd_clickhouse,
}

if __name__ == "__main__":
    sys.exit(main())
