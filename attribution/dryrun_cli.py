"""`attribution overrides diff --config NEW.toml [FLOWS]`: the DiffOverrides RPC.

Exit status: 0 nothing changes, 1 some flow's answer changes, 2 an error
(a broken candidate, an unreadable flows file, the service refused). The
candidate is validated here first (the same checks as a reload, so a typo is
reported with file:line: key before anything is sent) and again by the service.
"""

from __future__ import annotations

import argparse
import sys

import grpc
import orjson

from attribution.config_file import ConfigError, read_config_text
from attribution.dryrun import candidate_config
from attribution.resolver import rows_to_columns
from attribution.v1 import attribution_pb2 as pb
from attribution.v1 import attribution_pb2_grpc as pb_grpc

NO_CHANGE, CHANGED, ERROR = 0, 1, 2


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    o = sub.add_parser("overrides", help="override rules: try a config change before a reload")
    osub = o.add_subparsers(dest="overrides_command", required=True, metavar="ACTION")
    s = osub.add_parser(
        "diff",
        help="what a candidate config would change on a flow sample (exit 0: nothing, "
        "1: changes, 2: error)",
        parents=parents,
        description="Resolve a flow sample under the running config and under the "
        "candidate (--config, which also gives the connection settings unless --target "
        "etc. are given) and print what changes. Needs a read token.",
    )
    s.add_argument(
        "flows",
        nargs="?",
        metavar="FLOWS",
        help="flow JSON lines (docs/flow-json.md; '-' for stdin); default: the last "
        "flows the service answered ([service] recent_flows)",
    )
    s.add_argument("--json", action="store_true", help="one JSON document")


def cmd_overrides(args: argparse.Namespace, connect) -> int:
    if not args.config:
        print("attribution: overrides diff needs --config NEW.toml", file=sys.stderr)
        return ERROR
    try:
        text = read_config_text(args.config)
        candidate_config(text, args.config)
    except ConfigError as exc:
        print(f"attribution: candidate refused: {exc}", file=sys.stderr)
        return ERROR
    flows: list[pb.Flow] = []
    local_bad = 0
    if args.flows:
        try:
            records = _read_records(args.flows)
        except OSError as exc:
            print(f"attribution: {args.flows}: {exc.strerror or exc}", file=sys.stderr)
            return ERROR
        bad = rows_to_columns(records)[-1]
        local_bad = len(bad)
        flows = [_flow_message(r) for i, r in enumerate(records) if i not in bad]
        if not flows:
            print(f"attribution: {args.flows}: no readable flow record", file=sys.stderr)
            return ERROR
    from attribution.client import channel

    args.connection = connect(args)
    request = pb.DiffOverridesRequest(config_text=text, config_name=args.config, flows=flows)
    try:
        with channel(args.connection) as ch:
            reply = pb_grpc.AttributionStub(ch).DiffOverrides(request, timeout=120)
    except grpc.RpcError as exc:
        print(
            f"attribution: {args.connection.target}: {exc.code().name}: {exc.details()}",
            file=sys.stderr,
        )
        return ERROR
    reply.bad_flows += local_bad
    print(to_text(reply) if not args.json else orjson.dumps(to_json(reply)).decode())
    return CHANGED if reply.changed else NO_CHANGE


def _read_records(path: str) -> list:
    fh = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    try:
        records: list = []
        for line in fh:
            if not line.strip():
                continue
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                records.append(None)  # counted as unreadable
        return records
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()


def _flow_message(r: dict) -> pb.Flow:
    def num(key: str) -> int:
        v = r.get(key)
        return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 64 else 0

    return pb.Flow(
        exporter=r["exporter"],
        src_addr=r["src_addr"],
        dst_addr=r["dst_addr"],
        in_if=r.get("in_if") or 0,
        out_if=r.get("out_if") or 0,
        src_mac=r.get("src_mac") or "",
        next_hop=r.get("next_hop") if isinstance(r.get("next_hop"), str) else "",
        bytes=num("bytes"),
        packets=num("packets"),
    )


def to_json(r: pb.DiffOverridesResponse) -> dict:
    return {
        "changed": r.changed,
        "flows": r.flows,
        "bad_flows": r.bad_flows,
        "sample": "recent" if r.recent else "given",
        "changes": [
            {
                "old_rule": c.old_rule or None,
                "new_rule": c.new_rule or None,
                "old_src_peer_as": c.old_src_peer_as,
                "new_src_peer_as": c.new_src_peer_as,
                "flows": c.flows,
                "bytes": c.bytes,
                "packets": c.packets,
            }
            for c in r.changes
        ],
        "unmatched_rules": list(r.unmatched_rules),
        "shadowed_rules": [
            {"rule": s.rule, "shadowed_by": s.shadowed_by, "new": s.new} for s in r.shadowed_rules
        ],
        "other_changed_flows": r.other_changed_flows,
        "warnings": list(r.warnings),
    }


def to_text(r: pb.DiffOverridesResponse) -> str:
    where = "recent flows of the service" if r.recent else "flows given"
    head = f"sample: {r.flows} {where}"
    lines = [head + (f" ({r.bad_flows} unreadable, left out)" if r.bad_flows else "")]
    if not r.changes:
        lines.append("src peer AS: no flow changes")
    else:
        lines.append(f"src peer AS: {sum(c.flows for c in r.changes)} flows change")
        for c in r.changes:
            rule = f"{c.old_rule or '(no rule)'} -> {c.new_rule or '(no rule)'}"
            lines.append(
                f"  {rule}: AS{c.old_src_peer_as} -> AS{c.new_src_peer_as}: "
                f"{c.flows} flows, {c.bytes} bytes, {c.packets} packets"
            )
    if r.other_changed_flows:
        lines.append(
            "other answer fields (router, origin, dst, provenance, flags): "
            f"{r.other_changed_flows} flows change"
        )
    if r.unmatched_rules:
        lines.append("rules matching no flow of the sample: " + ", ".join(r.unmatched_rules))
    for s in r.shadowed_rules:
        state = "new" if s.new else "already so in the running config"
        lines.append(f"rule {s.rule} is shadowed by {s.shadowed_by} ({state})")
    lines.extend(f"warning: {w}" for w in r.warnings)
    return "\n".join(lines)
