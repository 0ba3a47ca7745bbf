"""Many routers back from a snapshot (``python -m bench.restart --routers 16``, issue 11).

Routers 1..n of ``bench.realistic`` (own next hops, ~30% of prefixes through
another path) derived from the real table are loaded in-process (parser ->
``Rib.apply_many``, the feed's path) and written with ``write_snapshot``, as
the service writes it; the file is kept in ``--workdir`` so a rerun (before/
after a loader change) skips the load. A fresh ``attribution serve``
configured with those routers starts on a copy of it and is timed from its
spawn to: the snapshot loaded (its log line), the first flow answered over
gRPC (Resolve of 8.8.8.8 from an exporter of router n), and the gRPC health
service answering; with ``--refresh``, every router's table is then fed again
through the feed socket and timed until all have converged with no stale
route; SIGTERM's snapshot write is timed from the service's log.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import (
    FULL_TABLE,
    Row,
    at_most,
    cpu_seconds,
    data_available,
    log,
    rss_bytes,
)
from bench.procs import tree_env
from ribd.speaker import free_port

TARGET = 10.0  # seconds, process start -> answering from the snapshot
# The client's reconnect backoff kept short: by default a gRPC channel whose
# connection failed (the service still loading) waits 1 s, then 1.6x more each
# time (with jitter), before it tries again, so "first answer" timed the
# client's backoff, up to ~4 s after the service was listening.
FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 20),
    ("grpc.min_reconnect_backoff_ms", 20),
    ("grpc.max_reconnect_backoff_ms", 100),
]


def build_snapshot(n: int, workdir: Path) -> tuple[Path, float, int]:
    """Routers 1..n of the realistic real-table model, loaded in-process, written as the
    service writes its snapshot. Returns (path, load CPU-s, (router, prefix) pairs); an
    existing file in ``workdir`` is reused (CPU 0)."""
    from attribution.service import tune_gc
    from bench.realistic import cached_model, router_lines
    from ribd.parser import ExabgpParser
    from ribd.rib import Rib
    from ribd.snapshot import write_snapshot

    path = workdir / f"realistic-{n}.snapshot"
    model = cached_model("real", workdir)
    pairs = n * model.prefixes
    if path.exists():
        return path, 0.0, pairs
    tune_gc()
    rib = Rib()
    parse, apply_many = ExabgpParser(rib.interner).parse, rib.apply_many
    cpu = 0.0
    for k in range(1, n + 1):
        lines, _ = router_lines(model, k)
        t0 = time.process_time()
        for line in lines:
            apply_many(parse(line))
        while rib.maintenance():
            pass
        cpu += time.process_time() - t0
        del lines
        log(f"restart: router {k}/{n} loaded ({cpu:.0f} CPU-s, RSS {rss_bytes() / 2**30:.1f} GiB)")
    info = write_snapshot(rib, workdir / "tmp.snapshot")
    os.replace(info.path, path)
    log(f"restart: snapshot of {n} routers written ({info.file_bytes / 2**20:.0f} MiB)")
    return path, cpu, pairs


def many_config(
    workdir: Path, port: int, n: int, snapshot: Path, bgp_port: int = 0, workers: int = 1
) -> Path:
    """n routers 127.1.0.k (bench.realistic.neighbor), exporter 127.2.0.k each, and the
    feeder's marker router; with ``bgp_port``, a supervised ExaBGP (raw mode) listening
    there instead of the feeder (``bench.restart_bgp``), and no marker."""
    from bench.feeder import MARKER_NEIGHBOR
    from bench.realistic import neighbor
    from bench.restart_bgp import bgp_section, router_keys

    routers = "".join(
        f'\n[[routers]]\nname = "r{k}"\nneighbor = "{neighbor(k)}"\n'
        f'exporters = ["127.2.{k >> 8}.{k & 255}"]\n'
        + (router_keys(k, workers) if bgp_port else "")
        for k in range(1, n + 1)
    )
    if bgp_port:
        bgp, marker = bgp_section(workdir, bgp_port, workers), ""
    else:
        bgp = f"""
[bgp]
exabgp = "external"
feed_socket = "{workdir / "feed.sock"}"
work_dir = "{workdir}"
"""
        marker = f'\n[[routers]]\nname = "marker"\nneighbor = "{MARKER_NEIGHBOR}"\n'
    text = f"""
[service]
local_as = 64500
router_id = "127.0.0.1"
grpc_listen = "127.0.0.1:{port}"
snapshot_path = "{snapshot}"
snapshot_interval = 3600
{bgp}{routers}{marker}"""
    path = workdir / f"attribution-{n}.toml"
    path.write_text(text)
    return path


def snapshot_version(path: Path) -> object:
    """The format version a snapshot's header claims (for the report)."""
    import orjson

    with open(path, "rb") as f:
        head = f.readline(4096)
    try:
        return orjson.loads(head.split(b" ", 1)[1]).get("version")
    except (orjson.JSONDecodeError, IndexError, AttributeError):
        return "?"


def many_start(
    workdir: Path,
    n: int,
    snapshot: Path,
    refresh: str = "",
    workers: int = 1,
    code: Path | None = None,
) -> dict:
    """Spawn ``attribution serve`` on a copy of the snapshot; time spawn -> loaded ->
    answered -> health; with ``refresh`` ("feed": every router's table fed again through
    the feed socket; "bgp": sent again over real sessions, ``bench.restart_bgp``) time it
    until all are converged with no stale route; then SIGTERM, timing the snapshot write.
    ``code``: the checkout the service (and the ExaBGP and relay it supervises) runs
    from; None: this one."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from attribution.v1 import attribution_pb2 as pb
    from attribution.v1 import attribution_pb2_grpc as pb_grpc

    run_dir = Path(tempfile.mkdtemp(prefix="serve-", dir=workdir))
    copy = run_dir / "rib.snapshot"  # the service rewrites it on SIGTERM
    shutil.copyfile(snapshot, copy)
    port = free_port()
    bgp_port = free_port() if refresh == "bgp" else 0
    if refresh == "bgp":
        from bench.restart_bgp import prepare_updates, refresh_over_bgp

        prepared = prepare_updates(workdir, n)
    config = many_config(run_dir, port, n, copy, bgp_port, workers)
    log_path = run_dir / "server.log"
    exporter = f"127.2.{n >> 8}.{n & 255}"
    out: dict = {"version": snapshot_version(copy)}
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "attribution.cli", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=open(log_path, "ab"),  # noqa: SIM115 (the child owns it)
        cwd=code,
        env=tree_env(code),
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=FAST_RECONNECT)
    stub, health = pb_grpc.AttributionStub(channel), health_pb2_grpc.HealthStub(channel)
    try:
        while "answered" not in out or "health" not in out:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited with {proc.returncode}; see {log_path}")
            if time.monotonic() - t0 > 600:
                raise TimeoutError(f"not answering after 600 s; see {log_path}")
            if "listening" not in out:
                text = log_path.read_text(errors="replace")
                if "loaded" not in out and "RIB snapshot loaded" in text:
                    out["loaded"] = time.monotonic() - t0
                if "gRPC listening" in text:
                    out["listening"] = time.monotonic() - t0
            if "answered" not in out:
                with contextlib.suppress(grpc.RpcError):
                    a = stub.Resolve(
                        pb.Flow(exporter=exporter, src_addr="1.1.1.1", dst_addr="8.8.8.8"),
                        timeout=2,
                    )
                    if a.dst_origin_as == 15169:
                        out["answered"] = time.monotonic() - t0
                        out["stale"] = bool(a.flags & pb.DST_STALE)
                        out["cpu"] = cpu_seconds(proc.pid)
                        out["rss"] = rss_bytes(proc.pid)
            if "health" not in out:
                with contextlib.suppress(grpc.RpcError):
                    h = health.Check(health_pb2.HealthCheckRequest(), timeout=2)
                    out["health"] = time.monotonic() - t0
                    out["health_status"] = health_pb2.HealthCheckResponse.ServingStatus.Name(
                        h.status
                    )
            time.sleep(0.01)
        out.setdefault("loaded", out["answered"])
        out.setdefault("listening", out["answered"])
        out["load_s"] = _log_number(log_path, r"RIB snapshot loaded from .*? in ([\d.]+) s")
        time.sleep(1.0)
        out["rss_settled"] = rss_bytes(proc.pid)
        if refresh == "bgp":
            out.update(refresh_over_bgp(prepared, proc.pid, stub, bgp_port, workers))
        elif refresh:
            out.update(many_refresh(workdir, run_dir, n, proc.pid, stub))
    finally:
        channel.close()
        t_stop = time.monotonic()
        proc.terminate()
        try:
            proc.wait(300)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out["stop_s"] = time.monotonic() - t_stop
        if "sessions" in out:
            from bench.restart_bgp import close_sessions

            close_sessions(out.pop("sessions"))
    out["write_s"] = _log_number(log_path, r"RIB snapshot written: .*?\(\d+ bytes, ([\d.]+) s\)")
    out["written_bytes"] = copy.stat().st_size if copy.exists() else None
    out["written_version"] = snapshot_version(copy) if copy.exists() else None
    return out


def _log_number(log_path: Path, pattern: str) -> float | None:
    found = re.findall(pattern, log_path.read_text(errors="replace"))
    return float(found[-1]) if found else None


def many_refresh(workdir: Path, run_dir: Path, n: int, pid: int, stub) -> dict:
    """The routers' sessions come back: every router's table fed again through the feed
    socket (``bench.feeder``, ExaBGP JSON lines as the relay hands them over), routers one
    after another; timed from the first line until every router has converged (End-of-RIB)
    with no stale route left."""
    import gzip

    from attribution.v1 import attribution_pb2 as pb
    from bench.feeder import MARKER_NEIGHBOR
    from bench.realistic import cached_model, neighbor, router_lines

    lines_path = workdir / f"realistic-{n}.lines.gz"
    if not lines_path.exists():
        model = cached_model("real", workdir)
        with gzip.open(lines_path.with_suffix(".tmp"), "wb", compresslevel=1) as f:
            for k in range(1, n + 1):
                lines, _ = router_lines(model, k)
                f.write(b"\n".join(lines) + b"\n")
        os.replace(lines_path.with_suffix(".tmp"), lines_path)
    token = 1001.0
    feeder = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.feeder",
            "--socket",
            str(run_dir / "feed.sock"),
            "--file",
            str(lines_path),
            "--token",
            str(token),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert feeder.stdin is not None and feeder.stdout is not None
    if feeder.stdout.readline().strip() != "ready":
        raise RuntimeError("feeder failed to start")
    wanted = {neighbor(k) for k in range(1, n + 1)}
    cpu0, peak = cpu_seconds(pid), rss_bytes(pid)
    t0 = time.monotonic()
    feeder.stdin.write("go\n")
    feeder.stdin.flush()
    while True:
        peak = max(peak, rss_bytes(pid))
        reply = stub.ListRouters(pb.ListRoutersRequest(), timeout=30)
        marker = next((r.last_update for r in reply.routers if r.neighbor == MARKER_NEIGHBOR), 0)
        done = {
            r.neighbor
            for r in reply.routers
            if r.neighbor in wanted
            and all(f.converged and not f.stale_prefixes for f in r.families if f.prefixes)
            and r.session == "up"
        }
        if marker == token and done == wanted:
            break
        if time.monotonic() - t0 > 3600:
            raise TimeoutError(f"{len(done)} of {n} routers refreshed after an hour")
        time.sleep(0.5)
    seconds = time.monotonic() - t0
    feeder.communicate(timeout=60)
    prefixes = sum(f.prefixes for r in reply.routers if r.neighbor in wanted for f in r.families)
    return {
        "refresh_s": seconds,
        "refresh_cpu": cpu_seconds(pid) - cpu0,
        "refresh_peak": peak,
        "refresh_prefixes": prefixes,
        "rss_refreshed": rss_bytes(pid),
    }


def many_routers(
    n: int,
    workdir: Path,
    refresh: str = "",
    workers: int = 1,
    codes: list[Path] | None = None,
    repeat: int = 1,
) -> list[Row]:
    """The issue-11 restart rows: n realistic routers back from a snapshot, once per
    checkout in ``codes`` (None: this one) and round, the checkouts alternated round by
    round so that a slow spell of the box falls on both (the snapshot is built once,
    by this checkout)."""
    skip = data_available(FULL_TABLE)
    if skip:
        return [Row("restart", f"warm start, {n} realistic routers", None, "s", note=skip)]
    snap, load_cpu, pairs = build_snapshot(n, workdir)
    rows: list[Row] = []
    for _ in range(repeat):
        for code in codes or [None]:
            tag = f", code {code.name}" if code is not None else ""
            log(f"restart: serve on the snapshot of {n} routers{tag}")
            m = many_start(workdir, n, snap, refresh, workers, code)
            rows += _start_rows(n, m, refresh, tag, snap, load_cpu, pairs)
    return rows


def _start_rows(
    n: int, m: dict, refresh: str, tag: str, snap: Path, load_cpu: float, pairs: int
) -> list[Row]:
    """One start's rows (``many_start``'s figures), each figure's name ending in ``tag``."""
    size = os.path.getsize(snap)
    built = f"loaded in-process in {load_cpu:.0f} CPU-s, " if load_cpu else ""
    written = m["written_bytes"] or 0
    rows = [
        Row(
            "restart",
            f"warm start, {n} realistic routers (snapshot) -> router {n} answers{tag}",
            m["answered"],
            "s",
            target="<= 10 s",
            met=at_most(m["answered"], TARGET),
            note=f"{pairs:,} (router, prefix) pairs ({built}real table via bench.realistic); "
            f"snapshot format {m['version']}, {size / 2**20:.1f} MiB; spawn -> snapshot loaded "
            f"{m['loaded']:.1f} s (loader's own figure {m['load_s']} s), -> gRPC listening "
            f"{m['listening']:.1f} s, -> first Resolve from "
            f"router {n}'s exporter {m['answered']:.1f} s (stale flag: "
            f"{'yes' if m['stale'] else 'NO'}), -> gRPC health answers {m['health']:.1f} s "
            f"({m['health_status']}: no relay yet); service CPU {m['cpu']:.1f} s at first "
            f"answer, RSS {m['rss'] / 2**20:.0f} MiB then, {m['rss_settled'] / 2**20:.0f} MiB "
            f"1 s later",
        ),
        Row(
            "restart",
            f"  then SIGTERM -> snapshot written{tag}",
            m["write_s"],
            "s",
            note=f"service's own figure; SIGTERM -> exit {m['stop_s']:.1f} s; format "
            f"{m['written_version']}, {written / 2**20:.1f} MiB",
        ),
    ]
    if refresh:
        rows.insert(
            1,
            Row(
                "restart",
                f"  then BGP refresh of all {n} routers -> converged, no stale route{tag}",
                m["refresh_s"],
                "s",
                note=_refresh_note(m, refresh),
            ),
        )
    return rows


def _refresh_note(m: dict, refresh: str) -> str:
    """How the tables came again ("feed" or "bgp") and what it cost, for the row."""
    if refresh == "bgp":
        cpu, peak = m["refresh_cpu_roles"], m["refresh_peak_roles"]
        return (
            f"every router's session up at once over real BGP on loopback (bench.bgpsend, "
            f"UPDATEs packed as routers pack them), supervised ExaBGP in raw mode, "
            f"{m['refresh_workers']} worker(s); CPU-s ExaBGP {cpu['exabgp']:.0f}, relay "
            f"{cpu['relay']:.0f}, service {cpu['service']:.0f} for "
            f"{m['refresh_prefixes']:,} (router, prefix) pairs "
            f"({m['refresh_prefixes'] / max(cpu['service'], 1e-9):,.0f} per service CPU-s); "
            f"RSS peak: service {peak['service'] / 2**20:.0f} MiB, ExaBGP "
            f"{peak['exabgp'] / 2**20:.0f} MiB; the service's threads (CPU-s): "
            + ", ".join(
                f"{t['name'] or t['tid']} {t['cpu']:.1f}" for t in m.get("refresh_threads", [])[:6]
            )
        )
    return (
        f"every router's table fed again through the feed socket (bench.feeder: "
        f"ExaBGP JSON lines, routers one after another); service CPU "
        f"{m['refresh_cpu']:.0f} s for {m['refresh_prefixes']:,} (router, prefix) pairs "
        f"({m['refresh_prefixes'] / max(m['refresh_cpu'], 1e-9):,.0f} per CPU-s); "
        f"RSS peak {m['refresh_peak'] / 2**20:.0f} MiB, {m['rss_refreshed'] / 2**20:.0f} MiB "
        "after"
    )
