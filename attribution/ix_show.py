"""`attribution ix show`: the learned IX tables, over the ListIx RPC.

Server side: the learner's state as ``ListIxResponse`` (``ix_message``).
Client side: that message as one JSON document (``--json``) or as text, one
block per IX (its ports, sources and their errors, then a table of MACs).
"""

from __future__ import annotations

import argparse
import sys
import time

import grpc
import orjson

from attribution.cli_format import format_table
from attribution.config import format_mac
from attribution.ix import IxState, SourceState
from attribution.v1 import attribution_pb2 as pb
from attribution.v1 import attribution_pb2_grpc as pb_grpc

# -- server side -------------------------------------------------------------------


def ix_message(states: list[IxState], name: str = "") -> pb.ListIxResponse:
    out = []
    for st in states:
        ix = st.config
        if name and ix.name != name:
            continue
        msg = pb.IxState(
            name=ix.name,
            router=ix.router,
            exporters=ix.exporters,
            in_if=ix.in_if,
            prefixes=ix.prefixes,
            built_at=st.built_at,
            next_hops=len({nh for t in st.next_hops.values() for nh, _ in t.counts}),
        )
        if st.neighbors is not None:
            msg.neighbors.CopyFrom(_source(st.neighbors))
        if st.peeringdb is not None:
            msg.peeringdb.CopyFrom(_source(st.peeringdb))
        for e in st.table.values():
            msg.macs.append(
                pb.IxMac(
                    mac=format_mac(e.mac),
                    peer_as=e.peer_as,
                    addresses=e.addresses,
                    facts=[
                        pb.IxFact(
                            address=f.address, peer_as=f.peer_as, source=f.source, detail=f.detail
                        )
                        for f in e.facts
                    ],
                    conflict=e.conflict,
                    reason=e.reason,
                )
            )
            msg.learned += e.usable
            msg.conflicts += e.conflict
        out.append(msg)
    return pb.ListIxResponse(ix=out)


def _source(src: SourceState) -> pb.IxSource:
    last = src.last
    return pb.IxSource(
        kind=src.kind,
        where=src.where,
        read_at=src.read_at,
        error=src.error,
        reads=src.reads,
        failures=src.failures,
        bad=dict(src.bad),
        entries=len(last.macs) + len(last.ases) if last else 0,
    )


# -- client side ---------------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    x = sub.add_parser("ix", help="IX ports: the learned MAC -> peer AS tables")
    xsub = x.add_subparsers(dest="ix_command", required=True, metavar="ACTION")
    s = xsub.add_parser(
        "show",
        help="every [[ix]]: sources, and each MAC's peer AS, addresses and facts",
        parents=parents,
    )
    s.add_argument("name", nargs="?", default="", help="one IX (default: all)")
    s.add_argument("--json", action="store_true", help="one JSON document")


def to_json(reply: pb.ListIxResponse) -> dict:
    def source(s: pb.IxSource, present: bool) -> dict | None:
        if not present:
            return None
        return {
            "kind": s.kind,
            "where": s.where,
            "read_at": s.read_at or None,
            "error": s.error or None,
            "reads": s.reads,
            "failures": s.failures,
            "bad": dict(s.bad),
            "entries": s.entries,
        }

    return {
        "ix": [
            {
                "name": x.name,
                "router": x.router or None,
                "exporters": list(x.exporters),
                "in_if": list(x.in_if),
                "prefixes": list(x.prefixes),
                "neighbors": source(x.neighbors, x.HasField("neighbors")),
                "peeringdb": source(x.peeringdb, x.HasField("peeringdb")),
                "built_at": x.built_at or None,
                "next_hops": x.next_hops,
                "learned": x.learned,
                "conflicts": x.conflicts,
                "macs": [
                    {
                        "mac": m.mac,
                        "peer_as": m.peer_as or None,
                        "addresses": list(m.addresses),
                        "conflict": m.conflict,
                        "reason": m.reason or None,
                        "facts": [
                            {
                                "address": f.address or None,
                                "peer_as": f.peer_as,
                                "source": f.source,
                                "detail": f.detail or None,
                            }
                            for f in m.facts
                        ],
                    }
                    for m in x.macs
                ],
            }
            for x in reply.ix
        ]
    }


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t)) if t else "never"


def render(reply: pb.ListIxResponse) -> str:
    lines: list[str] = []
    for x in reply.ix:
        ports = ", ".join(x.exporters) + f" in_if {', '.join(map(str, x.in_if))}"
        lines.append(f"IX {x.name}: {ports}; LAN {', '.join(x.prefixes)}")
        lines.append(
            f"  {x.learned} MACs learned, {x.conflicts} in conflict, {x.next_hops} IX next hops "
            f"in the RIB{f' of {x.router}' if x.router else ''}; built {_when(x.built_at)}"
        )
        for label, present, s in (
            ("neighbors", x.HasField("neighbors"), x.neighbors),
            ("peeringdb", x.HasField("peeringdb"), x.peeringdb),
        ):
            if not present:
                continue
            text = f"  {label}: {s.kind} {s.where}, {s.entries} entries read {_when(s.read_at)}"
            if s.bad:
                text += "; refused: " + ", ".join(f"{k} {v}" for k, v in sorted(s.bad.items()))
            if s.error:
                text += f"; LAST READ FAILED: {s.error}"
            lines.append(text)
        rows = [
            [
                m.mac,
                "conflict" if m.conflict else str(m.peer_as or "-"),
                " ".join(m.addresses) or "-",
                "; ".join(
                    f"{f.address or 'mac'} AS{f.peer_as} {f.source}"
                    + (f" ({f.detail})" if f.detail else "")
                    for f in m.facts
                )
                or m.reason,
            ]
            for m in x.macs
        ]
        if rows:
            table = format_table(["mac", "peer_as", "addresses", "facts"], rows)
            lines.extend("  " + line for line in table.splitlines())
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n" if lines else "no [[ix]] configured\n"


def cmd_ix(args: argparse.Namespace, connect) -> int:
    conn = connect(args)
    from attribution.client import channel

    try:
        with channel(conn) as ch:
            reply = pb_grpc.AttributionStub(ch).ListIx(pb.ListIxRequest(name=args.name), timeout=10)
    except grpc.RpcError as exc:
        print(f"attribution: ix show: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 2
    if args.name and not reply.ix:
        print(f"attribution: no IX named {args.name!r}", file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.write(orjson.dumps(to_json(reply), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(render(reply))
    return 0
