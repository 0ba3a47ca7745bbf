"""The raw decoder against ExaBGP's JSON path on the whole real table.

Not run by ``python -m bench``.

Every UPDATE of the real table (the MRT file in ``../shared/data``) is decoded
twice: by ExaBGP 5.0.15's own decoder in process, whose JSON line the project's
parser reads (the JSON path), and by ``ribd.rawupdate`` from the bytes. The
routes each gives (prefix, path id, every attribute) are compared; extended
communities ExaBGP does not name (it writes "" for them) are compared only for
route target and origin. Prints the differences and both CPU times.

``python -m bench.raw_crosscheck [--limit N]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench.exabgp_log import MRT, updates
from ribd.parser import ExabgpParser
from ribd.rawopen import SessionCaps
from ribd.rawupdate import COMPILED, UpdateDecoder

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "ribd"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--limit", type=int, default=0)
    args = p.parse_args(argv)
    if not MRT.exists():
        print(f"skipped: {MRT} is absent")
        return 0
    from exabgp_reference import negotiated, reference_line  # tests/ribd
    from test_rawupdate import routes

    bodies = [m[19:] for m in updates(MRT)]
    if args.limit:
        bodies = bodies[: args.limit]
    neg = negotiated(asn4=True)
    caps = SessionCaps(asn4=True)
    t = time.process_time()
    lines = [reference_line(b, neg) for b in bodies]
    exabgp_cpu = time.process_time() - t
    parser, decoder = ExabgpParser(), UpdateDecoder()
    t = time.process_time()
    json_events = [parser.parse(line) for line in lines]
    json_cpu = time.process_time() - t
    t = time.process_time()
    raw_events = [decoder.decode("127.0.0.2", b, caps) for b in bodies]
    raw_cpu = time.process_time() - t
    differ = 0
    for i, (a, b) in enumerate(zip(json_events, raw_events, strict=True)):
        if routes(a) != routes(b):
            differ += 1
            if differ <= 5:
                print(f"UPDATE {i} differs: {bodies[i].hex()[:120]}...")
    prefixes = sum(len(e.prefixes) for evs in raw_events for e in evs if hasattr(e, "prefixes"))
    print(
        f"{len(bodies)} UPDATEs, {prefixes} prefixes: {differ} differ; CPU-s: ExaBGP decode + "
        f"JSON encode {exabgp_cpu:.1f}, our JSON parser {json_cpu:.2f}, raw decoder "
        f"({'compiled' if COMPILED else 'Python'}) {raw_cpu:.2f}"
    )
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
