"""Routers derived as ``bench.realistic`` does, written as ExaBGP ``packets`` lines
interleaved: the lines file of the in-process drivers (``bench.ingest_instr
--lines-file``, ``bench.refresh_feed --lines-file``).

Routers that come up together send their tables at the same time, so the service's
feed sees their UPDATEs mixed; this writes each router's session lines (OPENs) first,
then the routers' UPDATEs round-robin (one of router 1, one of router 2, ...), then
each router's End-of-RIB per family. Each router's UPDATEs are its realistic table
(own next hops, ~30% of prefixes through another path, local-pref and communities
varying) packed as ``bench.bgpsend.realistic_tables`` packs them for real sessions.

Why a file: the in-process drivers and callgrind must read the same lines run after
run, and packing 16 tables costs a minute.

Run: ``python -m bench.realistic_packets --routers 16 --out /tmp/v16.lines``
(``--base synth`` for the today-sized synthetic table, IPv4 + IPv6).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from itertools import zip_longest
from pathlib import Path

# End-of-RIB as UPDATE bodies (RFC 4724): IPv4 unicast an empty UPDATE, any other
# family an MP_UNREACH_NLRI with its AFI/SAFI and nothing withdrawn.
END_OF_RIB = {
    "ipv4 unicast": b"\0\0\0\0",
    "ipv6 unicast": b"\0\0\0\x06\x80\x0f\x03\x00\x02\x01",
}


def interleaved_lines(per_router: list[list[bytes]], families: tuple[str, ...]) -> list[bytes]:
    """The ``packets`` lines of routers 1..n (``per_router``: each one's UPDATE
    messages, headers included) coming up together."""
    from bench.fuzz_raw import packets_line, session_lines
    from bench.realistic import neighbor

    peers = [neighbor(k) for k in range(1, len(per_router) + 1)]
    lines = [line for peer in peers for line in session_lines(peer)]
    for group in zip_longest(*per_router):
        for peer, msg in zip(peers, group, strict=True):
            if msg is not None:
                lines.append(packets_line(msg[19:], peer=peer, time_=1.0))
    for peer in peers:
        lines.extend(packets_line(END_OF_RIB[f], peer=peer) for f in families)
    return lines


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.realistic_packets", description=__doc__)
    p.add_argument("--base", choices=("real", "synth"), default="real")
    p.add_argument("--routers", type=int, default=16)
    p.add_argument("--out", required=True)
    p.add_argument("--workdir", default=tempfile.gettempdir(), help="the base model's cache")
    args = p.parse_args()
    from bench import bgpsend, realistic

    if args.base == "real" and not realistic.FULL_TABLE.exists():
        print(f"data absent: {realistic.FULL_TABLE}", file=sys.stderr)
        return 2
    t0 = time.process_time()
    if args.base == "real":
        tables = bgpsend.realistic_tables(
            realistic.cached_model("real", Path(args.workdir)), args.routers
        )
    else:
        tables = bgpsend.synth_tables(args.routers)
    unknown = set(tables.families) - set(END_OF_RIB)
    if unknown:
        print(f"no End-of-RIB known for {sorted(unknown)}", file=sys.stderr)
        return 2
    lines = interleaved_lines(tables.per_router, tables.families)
    out = Path(args.out)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_bytes(b"\n".join(lines) + b"\n")
    tmp.rename(out)
    updates = sum(len(t) for t in tables.per_router)
    print(
        f"{args.routers} routers, {updates:,} UPDATEs, {len(lines):,} lines -> {out} "
        f"({time.process_time() - t0:.1f} CPU-s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
