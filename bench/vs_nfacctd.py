"""pmacct's side of ``bench.vs_pmacct``: ``nfacctd`` (Debian package ``pmacct``,
1.7.7) with ``bgp_daemon: true`` on a loopback port, polled through its BGP
Looking Glass (``bgp_daemon_lg``, ZeroMQ) until every router's last prefix
answers. pmacct reads each session in order, so that answer means every
earlier UPDATE was applied (nfacctd 1.7.7 logs nothing at End-of-RIB)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from bench import bgpsend
from bench.procs import cpu_of, descendants, rss_of, stop_process, wait_quiet
from bench.vs_load import Load, Result, start_sending
from ribd.speaker import free_port

POLL = 0.02


def nfacctd_path() -> str | None:
    return shutil.which("nfacctd") or (
        "/usr/sbin/nfacctd" if os.path.exists("/usr/sbin/nfacctd") else None
    )


class LookingGlass:
    """pmacct's BGP Looking Glass (ZeroMQ REQ/REP, docs/LOOKING_GLASS_FORMAT)."""

    def __init__(self, port: int) -> None:
        import zmq

        self.zmq = zmq
        self.ctx = zmq.Context()
        self.port = port
        self.sock = None

    def _socket(self):
        if self.sock is None:
            self.sock = self.ctx.socket(self.zmq.REQ)
            self.sock.setsockopt(self.zmq.LINGER, 0)
            self.sock.setsockopt(self.zmq.RCVTIMEO, 2000)
            self.sock.setsockopt(self.zmq.SNDTIMEO, 2000)
            self.sock.connect(f"tcp://127.0.0.1:{self.port}")
        return self.sock

    def query(self, head: dict, data: dict | None = None) -> list[dict]:
        s = self._socket()
        try:
            if data is None:
                s.send(json.dumps(head).encode())
            else:
                s.send(json.dumps(head).encode(), self.zmq.SNDMORE)
                s.send(json.dumps(data).encode())
            reply = json.loads(s.recv())
            return [json.loads(s.recv()) for _ in range(int(reply.get("results", 0)))]
        except self.zmq.ZMQError:
            s.close()
            self.sock = None  # a REQ socket that missed a reply cannot send again
            raise

    def lookup(self, prefix: str, peer: str) -> list[dict]:
        return self.query(
            {"query_type": 1, "queries": 1}, {"ip_prefix": prefix, "peer_ip_src": peer}
        )

    def peers(self) -> list[dict]:
        return self.query({"query_type": 2, "queries": 1})

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.ctx.term()


def run_pmacct(load: Load, workdir: Path, timeout: float) -> Result:
    n = len(load.tables.per_router)
    res = Result("pmacct nfacctd 1.7.7", n)
    bgp_port, lg_port, nf_port = free_port(), free_port(), free_port(kind=socket.SOCK_DGRAM)
    conf = workdir / "nfacctd.conf"
    logfile = workdir / "nfacctd.log"
    conf.write_text(
        "\n".join(
            [
                "daemonize: false",
                f"logfile: {logfile}",
                "nfacctd_ip: 127.0.0.1",
                f"nfacctd_port: {nf_port}",
                "plugins: print",
                f"print_output_file: {workdir / 'flows.txt'}",
                "print_refresh_time: 3600",
                "aggregate: src_as, dst_as, peer_src_as, peer_dst_as",
                "nfacctd_as: bgp",
                "bgp_daemon: true",
                "bgp_daemon_ip: 127.0.0.1",
                f"bgp_daemon_port: {bgp_port}",
                "bgp_daemon_max_peers: 100",
                "bgp_daemon_lg: true",
                "bgp_daemon_lg_ip: 127.0.0.1",
                f"bgp_daemon_lg_port: {lg_port}",
                "",
            ]
        )
    )
    proc = subprocess.Popen(
        [nfacctd_path() or "nfacctd", "-f", str(conf)],
        stdout=open(workdir / "nfacctd.out", "wb"),  # noqa: SIM115 (the child owns it)
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lg = LookingGlass(lg_port)
    sessions: list[bgpsend.Session] = []
    try:
        t = load.tables
        sessions = [
            bgpsend.Session(
                ("127.0.0.1", bgp_port), bgpsend.router_address(k), t.asn, t.families, t.four_octet
            )
            for k in range(1, n + 1)
        ]
        for s in sessions:
            s.connect(timeout=30)
        pids = [proc.pid, *descendants(proc.pid)]
        cpu0 = cpu_of(pids)
        t0, sender = start_sending(sessions, t.per_router)
        pending = {s.local_address for s in sessions}
        deadline = time.monotonic() + timeout
        done = None
        while pending and time.monotonic() < deadline:
            bad = [f"{s.local_address}: {s.error}" for s in sessions if s.error]
            if bad:
                raise RuntimeError(f"session lost: {bad}")
            if proc.poll() is not None:
                raise RuntimeError(f"nfacctd exited ({proc.returncode}); see {logfile}")
            for peer in sorted(pending):
                with contextlib.suppress(Exception):
                    if any(r.get("ip_prefix") == load.probe for r in lg.lookup(load.probe, peer)):
                        pending.discard(peer)
            if pending:
                time.sleep(POLL)
            else:
                done = time.monotonic()
        if done is None:
            res.note = f"not answering for {sorted(pending)} within {timeout:.0f} s"
            return res
        res.seconds = done - t0
        pids = [proc.pid, *descendants(proc.pid)]
        res.cpu = {"nfacctd": cpu_of(pids) - cpu0}
        res.rss = {"nfacctd": rss_of(pids)}
        wait_quiet(lambda: cpu_of([proc.pid, *descendants(proc.pid)]))
        res.cpu_idle = {"nfacctd": cpu_of([proc.pid, *descendants(proc.pid)]) - cpu0}
        res.rss_idle = {"nfacctd": rss_of([proc.pid, *descendants(proc.pid)])}
        sender.join(30)
        # What pmacct made of the table: one well-known address per router.
        checks = []
        for s in sessions:
            with contextlib.suppress(Exception):
                r = lg.lookup("8.8.8.8/32", s.local_address)
                checks.append((r[0].get("as_path", "") if r else "no answer").split()[-1:])
        res.note = f"8.8.8.8 per router, last AS: {checks}; peers {len(lg.peers())}"
        return res
    finally:
        for s in sessions:
            s.close()
        lg.close()
        stop_process(proc)
