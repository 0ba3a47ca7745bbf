"""Many routers back from a snapshot, then refreshed over real BGP sessions (issue 11, item 4).

``bench.restart --routers 16 --refresh bgp``: the service starts on the
snapshot with its own supervised ExaBGP in raw mode (the default ingest
path), and once it answers, every router opens a real session on loopback
(``bench.bgpsend``, from the router's own address 127.1.0.k) and sends its
whole table (``bench.realistic``'s router k, packed into UPDATEs as a router
packs them), all routers at once. Timed from the first UPDATE until every
router's session is up, its family converged (End-of-RIB) and no stale route
is left: the routes kept from the snapshot were all replaced or swept. CPU is
reported per process role (ExaBGP, relay, service), as ``bench.vs_pmacct`` does.

The UPDATEs are packed once per router and cached in ``--workdir`` (packing a
real-table router costs ~10 CPU-s of Python; never timed).
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path

from bench import bgpsend, vs_service
from bench.common import log
from bench.ingest_session_profile import thread_cpu, threads_since
from bench.procs import cpu_of, process_roles, rss_of
from bench.vs_load import start_sending
from bench.vs_service import our_address

ASN = 64500  # bench.realistic's routers are iBGP peers in AS 64500
SPOOL_BYTES = 4 << 30


def bgp_section(workdir: Path, bgp_port: int, workers: int) -> str:
    """``bench.vs_pmacct``'s ``[bgp]`` table (raw mode), with a spool for every table."""
    return (
        vs_service.bgp_section(workdir, bgp_port, workers, "raw")
        # All routers send their whole tables at once and the service is the slower
        # end: the relay holds what it has not taken yet (~50 MB of lines a real
        # table). The default 256 MiB overflowed at 16 routers on one worker, and the
        # re-read after the gap reset every session (bgpsend does not answer
        # ROUTE-REFRESH).
        + f"relay_spool_bytes = {SPOOL_BYTES}\n"
    )


def router_keys(k: int, workers: int) -> str:
    """Extra ``[[routers]]`` keys for router k's real session."""
    extra = "add_path = false\n"
    if workers > 1:
        extra += f'local_address = "{our_address(k, workers)}"\n'
    return extra


def router_updates(workdir: Path, k: int) -> tuple[list[bytes], tuple[str, ...]]:
    """Router k's table as UPDATE messages, packed once and cached."""
    from bench.realistic import cached_model, router_lines

    path = workdir / f"realistic-{k}.updates.pickle"
    if path.exists():
        with open(path, "rb") as f:
            return pickle.load(f)  # our own cache file, written below
    lines, _ = router_lines(cached_model("real", workdir), k)
    packed = bgpsend.json_updates(lines)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(packed, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    return packed


def prepare_updates(workdir: Path, n: int) -> tuple[list[list[bytes]], tuple[str, ...]]:
    """Routers 1..n's UPDATEs, and the families they announce (before the service starts)."""
    tables: list[list[bytes]] = []
    families: tuple[str, ...] = ()
    for k in range(1, n + 1):
        msgs, families = router_updates(workdir, k)
        tables.append(msgs)
    log(f"restart: {n} routers' UPDATEs ready ({sum(map(len, tables)):,} messages)")
    return tables, families


def refresh_over_bgp(
    prepared: tuple[list[list[bytes]], tuple[str, ...]],
    pid: int,
    stub,
    bgp_port: int,
    workers: int,
    timeout: float = 3600,
) -> dict:
    """Every router's session comes up and sends its table at once; timed until all
    are converged with no stale route."""
    from attribution.v1 import attribution_pb2 as pb
    from bench.realistic import neighbor

    tables, families = prepared
    n = len(tables)
    sessions = [
        bgpsend.Session(
            (our_address(k, workers), bgp_port), neighbor(k), ASN, families, four_octet=True
        )
        for k in range(1, n + 1)
    ]
    try:
        for s in sessions:
            s.connect(timeout=120)
        roles = process_roles(pid)
        if not roles["exabgp"] or not roles["relay"]:
            raise RuntimeError(f"no ExaBGP/relay under the service: {roles}")
        cpu0 = {role: cpu_of(pids) for role, pids in roles.items()}
        threads0 = thread_cpu(pid)
        peak = {role: rss_of(pids) for role, pids in roles.items()}
        wanted = {neighbor(k) for k in range(1, n + 1)}
        t0, sender = start_sending(sessions, tables)
        next_log = time.monotonic() + 30
        while True:
            for role, pids in roles.items():
                peak[role] = max(peak[role], rss_of(pids))
            bad = [f"{s.local_address}: {s.error}" for s in sessions if s.error]
            if bad:
                raise RuntimeError(f"session lost: {bad}")
            reply = stub.ListRouters(pb.ListRoutersRequest(), timeout=30)
            # (A family with stale routes only counts: just after the session's
            # return its current routes are none, and the refresh was "done".)
            done = {
                r.neighbor
                for r in reply.routers
                if r.neighbor in wanted
                and r.session == "up"
                and any(f.prefixes for f in r.families)
                and all(
                    f.converged and not f.stale_prefixes
                    for f in r.families
                    if f.prefixes or f.stale_prefixes
                )
            }
            if done == wanted:
                break
            now = time.monotonic()
            if now - t0 > timeout:
                raise TimeoutError(f"{len(done)} of {n} routers refreshed after {timeout:.0f} s")
            if now > next_log:
                next_log = now + 30
                log(
                    f"restart: refresh over BGP, {now - t0:.0f} s, {len(done)}/{n} done, CPU "
                    + ", ".join(f"{r} {cpu_of(p) - cpu0[r]:.0f}" for r, p in roles.items())
                )
            time.sleep(0.5)
        seconds = time.monotonic() - t0
        cpu = {role: cpu_of(pids) - cpu0[role] for role, pids in roles.items()}
        threads = threads_since(pid, threads0)
        sender.join(30)
    except BaseException:
        close_sessions(sessions)
        raise
    pairs = sum(f.prefixes for r in reply.routers if r.neighbor in wanted for f in r.families)
    return {
        "refresh_s": seconds,
        "refresh_cpu": cpu["service"],
        "refresh_cpu_roles": cpu,
        "refresh_peak": peak["service"],
        "refresh_peak_roles": peak,
        "refresh_prefixes": pairs,
        "refresh_how": "bgp",
        "refresh_threads": threads,
        "refresh_workers": workers,
        # Closed by the caller after the service has stopped: routers that went
        # away first would be purged, and the snapshot written at SIGTERM empty.
        "sessions": sessions,
    }


def close_sessions(sessions: list[bgpsend.Session]) -> None:
    for s in sessions:
        s.close()
