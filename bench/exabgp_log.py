"""ExaBGP's CPU for one full table over a real BGP session, by ExaBGP log setting.

A small router of ours (this module) replays the real table's UPDATE messages,
byte for byte as the PCH collector received them (from the MRT file in
``../shared/data``), over a real TCP session on loopback to the supervised
ExaBGP of a ``BgpTestbed`` (Rib + FeedServer + relay, as the service runs
them). For each variant of ExaBGP's log settings (``BgpSettings.extra``
overrides on top of ``render_env``): CPU-seconds of ExaBGP, of the relay and
of this process (the service's side), from the first UPDATE until the RIB
holds every prefix, converged.

``python -m bench.exabgp_log [--variants default,info,warning]``
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import os
import socket
import struct
import threading
import time

from bench.common import SHARED_DATA, cpu_seconds, log

MRT = SHARED_DATA / "bgp" / "pch-as3856-fulltable-2015.mrt.gz"
PEER_AS = 3856
PREFIXES = 577_703
ROUTER = "127.0.0.2"
VARIANTS = {
    # what render_env sets now
    "default": {},
    # the settings before the change: INFO with the per-UPDATE statistics lines
    "info": {"exabgp.log.level": "INFO", "exabgp.log.statistics": "true"},
    "warning": {"exabgp.log.level": "WARNING"},
    "info-no-statistics": {"exabgp.log.level": "INFO", "exabgp.log.statistics": "false"},
}


def updates(path=MRT) -> list[bytes]:
    """The BGP UPDATE messages (whole, marker included) of an MRT BGP4MP file."""
    data = gzip.decompress(path.read_bytes())
    out = []
    at = 0
    while at + 12 <= len(data):
        _, kind, subtype, length = struct.unpack_from("!IHHI", data, at)
        body = data[at + 12 : at + 12 + length]
        at += 12 + length
        if kind == 17:  # BGP4MP_ET: microseconds first
            body = body[4:]
        elif kind != 16:
            continue
        if subtype not in (1, 4):  # BGP4MP_MESSAGE(_AS4)
            continue
        as_bytes = 4 if subtype == 4 else 2
        afi = struct.unpack_from("!H", body, 2 * as_bytes + 2)[0]
        ip = 4 if afi == 1 else 16
        msg = body[2 * as_bytes + 4 + 2 * ip :]
        if len(msg) >= 19 and msg[18] == 2:
            out.append(bytes(msg))
    return out


def _message(kind: int, payload: bytes) -> bytes:
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(payload), kind) + payload


def open_message(asn: int, router_id: str, hold: int = 180) -> bytes:
    caps = bytes((1, 4, 0, 1, 0, 1))  # multiprotocol IPv4 unicast
    caps += bytes((65, 4)) + struct.pack("!I", asn)  # 4-octet AS
    caps += bytes((2, 0))  # route refresh
    params = bytes((2, len(caps))) + caps
    body = struct.pack(
        "!BHH4sB", 4, min(asn, 23456), hold, socket.inet_aton(router_id), len(params)
    )
    return _message(1, body + params)


END_OF_RIB = _message(2, b"\x00\x00\x00\x00")
KEEPALIVE = _message(4, b"")


def _children(pid: int) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def established_session(tb) -> socket.socket:  # tb: ribd.speaker.BgpTestbed
    """Our side of one BGP session to the testbed's ExaBGP, from ROUTER, up.

    Connects (retrying while ExaBGP starts listening, up to 60 s), sends the
    OPEN and a KEEPALIVE, drains what ExaBGP sends back in a thread, and
    returns once the RIB shows the session up.
    """
    from ribd.speaker import wait_until

    sock = None
    deadline = time.monotonic() + 60
    while sock is None:
        s = socket.socket()
        try:
            s.bind((ROUTER, 0))
            s.connect(("127.0.0.1", tb.port))
            sock = s
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    sock.sendall(open_message(PEER_AS, ROUTER))

    def drain() -> None:  # ExaBGP's OPEN and keepalives
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass

    threading.Thread(target=drain, daemon=True).start()
    sock.sendall(KEEPALIVE)
    wait_until(lambda: (r := tb.rib.routers.get(ROUTER)) is not None and r.session == "up", 60)
    return sock


def one_run(name: str, extra: dict[str, str], messages: list[bytes]) -> dict:
    from ribd.settings import NeighborSettings
    from ribd.speaker import BgpTestbed, wait_until

    tb = BgpTestbed(
        local_as=PEER_AS, neighbors=[NeighborSettings("r1", ROUTER, PEER_AS, add_path=False)]
    )
    from ribd.exabgp import ExabgpSupervisor

    tb.settings = dataclasses.replace(tb.settings, extra=dict(extra))
    tb.supervisor = ExabgpSupervisor(tb.settings, tb.rib)
    tb.start()
    try:
        wait_until(lambda: tb.supervisor.pid is not None, 30)
        exabgp = tb.supervisor.pid
        sock = established_session(tb)
        relays = _children(exabgp)
        cpu0 = {"exabgp": cpu_seconds(exabgp), "service": time.process_time()}
        cpu0["relay"] = sum(cpu_seconds(p) for p in relays)
        t0 = time.monotonic()
        sock.sendall(b"".join(messages) + END_OF_RIB)
        fs = None

        def loaded() -> bool:
            nonlocal fs
            r = tb.rib.routers.get(ROUTER)
            fs = r.families.get("ipv4 unicast") if r else None
            return bool(fs and fs.converged)

        wait_until(loaded, 900, interval=0.05)
        wall = time.monotonic() - t0
        out = {
            "variant": name,
            "exabgp_cpu": cpu_seconds(exabgp) - cpu0["exabgp"],
            "relay_cpu": sum(cpu_seconds(p) for p in relays) - cpu0["relay"],
            "service_cpu": time.process_time() - cpu0["service"],
            "wall": wall,
            "prefixes": fs.prefixes if fs else 0,
        }
        log_path = os.path.join(tb.work_dir, "exabgp.log")
        out["exabgp_log_bytes"] = os.path.getsize(log_path) if os.path.exists(log_path) else 0
        sock.close()
        return out
    finally:
        tb.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--variants", default="info,default,warning")
    args = p.parse_args(argv)
    if not MRT.exists():
        print(f"skipped: {MRT} is absent")
        return 0
    messages = updates()
    log(f"exabgp-log: {len(messages)} UPDATEs")
    for name in args.variants.split(","):
        log(f"exabgp-log: variant {name}")
        res = one_run(name, VARIANTS[name], messages)
        ok = "" if res["prefixes"] == PREFIXES else " (RIB INCOMPLETE!)"
        print(res, ok, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
