"""Session flaps: after every teardown and re-establishment, is each RIB exact?

``N`` routers, each a Speaker (its own ExaBGP) on its own loopback address,
hold sessions with the service side (``BgpTestbed``: supervised ExaBGP, relay,
FeedServer, Rib). Each round tears sessions down with a NOTIFICATION (Cease)
and lets the speakers reconnect (ExaBGP does by itself), then checks, for
every router, that the RIB equals the table the speaker announces —
prefix, path id, AS path, next hop, communities, staleness — and that each
family has converged (End-of-RIB). A round flaps every session at once or,
every third round, one session while the others stay up; every fourth round
flaps *during* the table load (right after the session comes up again,
before End-of-RIB), the case the issue saw go wrong.

A router that is not exact within ``--settle`` seconds counts as an
incomplete session: the report says which, how many prefixes it had and
whether it converged, and the run goes on (the next flap usually heals it).

    python -m bench.flap --sessions 10 --routes 5000 --flaps 1000

prints one JSON object (also written to ``--out``): flaps, exact checks,
incomplete sessions with details, timings.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ribd.rib import Rib
from ribd.settings import NeighborSettings
from ribd.speaker import BgpTestbed, Route, Speaker, wait_until

log = logging.getLogger("bench.flap")
V4, V6 = "ipv4 unicast", "ipv6 unicast"
LOCAL_AS = 65000


def router_address(i: int) -> str:
    return f"127.0.0.{10 + i}"


def router_table(i: int, routes: int) -> list[Route]:
    """A distinct table per router: mostly IPv4, one in eight IPv6, some ADD-PATH."""
    table = []
    hop4, hop6 = router_address(i), "2001:db8::1"
    for n in range(routes):
        asn = 64600 + (n * 7 + i) % 900
        if n % 8 == 7:
            table.append(
                Route(f"2001:db8:{n // 65536:x}:{n % 65536:x}::/64", hop6, as_path=[65001, asn])
            )
        elif n % 16 == 3:  # two paths for this prefix (ADD-PATH)
            prefix = f"10.{n // 65536}.{n // 256 % 256}.{n % 256}/32"
            table.append(Route(prefix, hop4, as_path=[65001, asn], path_id=1))
            table.append(Route(prefix, hop4, as_path=[65002, 65003, asn], path_id=2))
        else:
            prefix = f"10.{n // 65536}.{n // 256 % 256}.{n % 256}/32"
            table.append(
                Route(prefix, hop4, as_path=[65001, asn], communities=[f"65000:{n % 100}"])
            )
    return table


def view(rib: Rib, neighbor: str) -> dict:
    """(family, prefix, path id) -> what the RIB holds for it."""
    out = {}
    with rib.lock:
        r = rib.routers.get(neighbor)
        if r is None:
            return out
    for family in (V4, V6):
        for best in rib.routes(neighbor, family):
            for m in rib.exact(neighbor, family, best.prefix):
                a = m.attributes
                out[(family, m.prefix, m.path_id)] = (
                    tuple(a.flat_path()),
                    a.next_hop,
                    tuple(a.community_strings()),
                    m.stale,
                )
    return out


def expected(routes: list[Route]) -> dict:
    return {
        (r.family, r.prefix, r.path_id or 0): (
            tuple(r.flat_path()),
            r.next_hop,
            tuple(r.communities),
            False,
        )
        for r in routes
    }


def converged(rib: Rib, neighbor: str) -> bool:
    r = rib.routers.get(neighbor)
    return bool(r and r.session == "up" and all(fs.converged for fs in r.families.values()))


@dataclass
class FlapReport:
    sessions: int
    routes_per_session: int
    stale_hold_time: float = 0.0
    flaps: int = 0
    rounds: int = 0
    checks: int = 0  # router tables compared after a flap
    exact: int = 0  # of which exact and converged within the settle time
    incomplete: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    settle_seconds_max: float = 0.0
    relay_gaps: int = 0
    bad_lines: int = 0
    exabgp_restarts: int = 0

    def as_dict(self) -> dict:
        return {
            "sessions": self.sessions,
            "routes_per_session": self.routes_per_session,
            "stale_hold_time": self.stale_hold_time,
            "flaps": self.flaps,
            "rounds": self.rounds,
            "checks": self.checks,
            "exact_after_each": self.exact,
            "incomplete_sessions": len(self.incomplete),
            "incomplete": self.incomplete[:50],
            "seconds": round(self.seconds, 1),
            "settle_seconds_max": round(self.settle_seconds_max, 2),
            "relay_gaps": self.relay_gaps,
            "bad_lines": self.bad_lines,
            "exabgp_restarts": self.exabgp_restarts,
        }


def _diagnose(rib: Rib, neighbor: str, want: dict) -> dict:
    have = view(rib, neighbor)
    r = rib.routers.get(neighbor)
    return {
        "router": neighbor,
        "session": r.session if r else "absent",
        "converged": {f: fs.converged for f, fs in r.families.items()} if r else {},
        "prefixes": {f: fs.prefixes for f, fs in r.families.items()} if r else {},
        "expected_routes": len(want),
        "routes": len(have),
        "missing": len(want.keys() - have.keys()),
        "extra": len(have.keys() - want.keys()),
        "different": sum(1 for k in want.keys() & have.keys() if want[k] != have[k]),
    }


def run(
    sessions: int = 3,
    routes: int = 200,
    flaps: int = 20,
    settle: float = 60.0,
    time_budget: float = 900.0,
    progress: Callable[[FlapReport], None] | None = None,
    stale_hold_time: float = 0.0,
) -> FlapReport:
    """Flap until ``flaps`` session flaps are done (or ``time_budget`` runs out)."""
    report = FlapReport(sessions, routes, stale_hold_time)
    tables = [router_table(i, routes) for i in range(sessions)]
    wants = [expected(t) for t in tables]
    neighbors = [NeighborSettings(f"r{i}", router_address(i), LOCAL_AS) for i in range(sessions)]
    started = time.monotonic()
    with BgpTestbed(neighbors=neighbors, stale_hold_time=stale_hold_time) as bed:
        speakers: list[Speaker] = [
            bed.speaker(local_address=router_address(i), routes=tables[i], hold_time=30)
            for i in range(sessions)
        ]

        def settled(indexes: list[int]) -> list[int]:
            """Wait for the routers to be exact; return those that are not."""
            t0 = time.monotonic()
            pending = list(indexes)
            deadline = t0 + settle
            while pending and time.monotonic() < deadline:
                pending = [
                    i
                    for i in pending
                    if not (
                        converged(bed.rib, router_address(i))
                        and view(bed.rib, router_address(i)) == wants[i]
                    )
                ]
                if pending:
                    time.sleep(0.05)
            report.settle_seconds_max = max(report.settle_seconds_max, time.monotonic() - t0)
            return pending

        for s in speakers:
            s.wait_established(60)
        bad = settled(list(range(sessions)))
        if bad:
            raise RuntimeError(f"initial tables never exact: {bad}")

        while report.flaps < flaps and time.monotonic() - started < time_budget:
            rnd = report.rounds
            # Every third round one session alone, the others staying up.
            group = [rnd % sessions] if rnd % 3 == 2 else list(range(sessions))
            group = group[: flaps - report.flaps]
            ups = {i: speakers[i].sessions_established for i in group}
            for i in group:
                with contextlib.suppress(Exception):  # already down: it reconnects anyway
                    speakers[i].teardown()
            for i in group:
                speakers[i].wait_established(60, after=ups[i])
            if rnd % 4 == 3:
                # Flap again mid-load: right after the session is back,
                # before its End-of-RIB (the table takes a while to send).
                ups = {i: speakers[i].sessions_established for i in group}
                for i in group:
                    with contextlib.suppress(Exception):
                        speakers[i].teardown()
                for i in group:
                    speakers[i].wait_established(60, after=ups[i])
                report.flaps += len(group)
            report.flaps += len(group)
            report.rounds += 1
            failed = settled(group)
            report.checks += len(group)
            report.exact += len(group) - len(failed)
            for i in failed:
                details = _diagnose(bed.rib, router_address(i), wants[i])
                details["round"] = rnd
                report.incomplete.append(details)
                log.warning("round %d: router %s not exact: %s", rnd, router_address(i), details)
            if progress is not None:
                progress(report)
        stats = bed.feed.stats()
        report.relay_gaps = stats["relay_gaps"]
        report.bad_lines = stats["bad_lines"]
        report.exabgp_restarts = bed.supervisor.state().restarts
        # Every router exact at the end, too.
        wait_until(lambda: not settled(list(range(sessions))), settle, what="final state")
    report.seconds = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flap", description=__doc__)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--routes", type=int, default=5000, help="prefixes per session")
    parser.add_argument("--flaps", type=int, default=1000, help="session flaps in total")
    parser.add_argument("--settle", type=float, default=60.0, help="seconds to become exact")
    parser.add_argument("--budget", type=float, default=900.0, help="stop after this many s")
    parser.add_argument(
        "--stale-hold", type=float, default=0.0, help="[bgp] stale_hold_time (0: purge)"
    )
    parser.add_argument("--out", help="write the JSON report here too")
    args = parser.parse_args(argv)
    if not 1 <= args.sessions <= 200:
        parser.error("--sessions must be between 1 and 200 (127.0.0.10-209)")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    def progress(r: FlapReport) -> None:
        if r.rounds % 10 == 0:
            print(
                f"flaps {r.flaps}, exact {r.exact}/{r.checks}, incomplete "
                f"{len(r.incomplete)}, {time.strftime('%H:%M:%S')}",
                file=sys.stderr,
                flush=True,
            )

    report = run(
        args.sessions, args.routes, args.flaps, args.settle, args.budget, progress, args.stale_hold
    )
    text = json.dumps(report.as_dict(), indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0 if not report.incomplete else 1


if __name__ == "__main__":
    sys.exit(main())
