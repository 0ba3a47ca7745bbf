"""A real IX LAN for tests: network namespaces joined by a Linux bridge.

``IxLan`` makes a "router" namespace holding the bridge (with the router's
IX LAN addresses) and one namespace per peer, each joined to the bridge by a
veth pair whose peer end carries the peer's own MAC and addresses. Pinging a
peer from the router makes the router namespace's kernel learn its ARP / ND
entry, which ``ip -j neigh`` and an SNMP agent running in that namespace then
show. Every address lives inside the test's namespaces only (10.99.0.0/24,
2001:db8:99::/64); the namespaces, and so the bridge and the veths, are
removed by ``close()``.

``in_netns`` runs a function in a thread that entered a namespace (setns
applies to the calling thread only), so the service's own SNMP client can
reach an agent inside the router namespace without any address outside it.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
LAN4, LAN6 = "10.99.0.0/24", "2001:db8:99::/64"
ROUTER4, ROUTER6 = "10.99.0.1", "2001:db8:99::1"


def netns_available() -> str:
    """ "" when namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed"
    name = f"ixprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return ""


def run(*args: str) -> str:
    out = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {out.stderr.strip() or out.stdout.strip()}")
    return out.stdout


@dataclass
class Peer:
    name: str  # short, e.g. "p1"
    ns: str
    mac: str
    v4: str
    v6: str


class IxLan:
    def __init__(self, tag: str = "") -> None:
        self.tag = tag or f"{os.getpid() % 100000}"
        self.router = f"ixr{self.tag}"
        self.peers: dict[str, Peer] = {}
        self.namespaces: list[str] = []
        self._ns(self.router)
        self.exec(self.router, "ip", "link", "set", "lo", "up")
        self.exec(self.router, "ip", "link", "add", "br0", "type", "bridge")
        self.exec(self.router, "ip", "link", "set", "br0", "address", "02:99:00:00:00:01")
        self.exec(self.router, "ip", "addr", "add", f"{ROUTER4}/24", "dev", "br0")
        self.exec(self.router, "ip", "addr", "add", f"{ROUTER6}/64", "dev", "br0", "nodad")
        self.exec(self.router, "ip", "link", "set", "br0", "up")

    def _ns(self, name: str) -> None:
        run("ip", "netns", "add", name)
        self.namespaces.append(name)

    def exec(self, ns: str, *args: str) -> str:
        return run("ip", "netns", "exec", ns, *args)

    def add_peer(self, name: str, mac: str, host: int) -> Peer:
        ns = f"ix{name}{self.tag}"
        self._ns(ns)
        outer = f"v{name}"
        run(
            "ip",
            "link",
            "add",
            outer,
            "netns",
            self.router,
            "type",
            "veth",
            "peer",
            "eth0",
            "netns",
            ns,
        )
        self.exec(self.router, "ip", "link", "set", outer, "master", "br0")
        self.exec(self.router, "ip", "link", "set", outer, "up")
        peer = Peer(name, ns, mac, f"10.99.0.{host}", f"2001:db8:99::{host}")
        self.exec(ns, "ip", "link", "set", "lo", "up")
        self.exec(ns, "ip", "link", "set", "eth0", "address", mac)
        self.exec(ns, "ip", "addr", "add", f"{peer.v4}/24", "dev", "eth0")
        self.exec(ns, "ip", "addr", "add", f"{peer.v6}/64", "dev", "eth0", "nodad")
        self.exec(ns, "ip", "link", "set", "eth0", "up")
        self.peers[name] = peer
        return peer

    def reach_from_router(self, peer: Peer) -> None:
        """The router sends to the peer: its kernel resolves (learns) the peer's
        ARP and ND entries; returns once both hold the peer's MAC."""
        for addr in (peer.v4, peer.v6):
            in_netns(self.router, _send_udp, addr)
        self._wait_entries(peer)

    def reach_router_from(self, peer: Peer) -> None:
        """The peer speaks first: its ARP request / NS updates the router's entries."""
        for addr in (ROUTER4, ROUTER6):
            in_netns(peer.ns, _send_udp, addr)
        self._wait_entries(peer)

    def _wait_entries(self, peer: Peer, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            entries = {
                e.get("dst"): e.get("lladdr") for e in json.loads(self.neighbors_json() or b"[]")
            }
            if entries.get(peer.v4) == peer.mac and entries.get(peer.v6) == peer.mac:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the router never learned {peer.name}'s {peer.mac}: {entries}")
            for addr in (peer.v4, peer.v6):
                in_netns(self.router, _send_udp, addr)
            time.sleep(0.2)

    def change_mac(self, peer: Peer, mac: str) -> None:
        self.exec(peer.ns, "ip", "link", "set", "eth0", "address", mac)  # veth: while up
        peer.mac = mac

    def forget(self, peer: Peer) -> None:
        """The router drops the peer's entries (as their expiry would)."""
        for addr in (peer.v4, peer.v6):
            self.exec(self.router, "ip", "neigh", "flush", "dev", "br0", "to", addr)

    def neighbors_json(self) -> bytes:
        return self.exec(self.router, "ip", "-j", "neigh", "show", "dev", "br0").encode()

    def close(self) -> None:
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.namespaces.clear()


def _send_udp(addr: str) -> None:
    """One datagram to a closed port: enough for the kernel to resolve ``addr``."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.sendto(b"ix", (addr, 9))


def in_netns(ns: str, fn: Callable, *args: object) -> object:
    """``fn(*args)`` in a thread that entered network namespace ``ns``."""
    libc = ctypes.CDLL(None, use_errno=True)
    result: dict[str, object] = {}

    def body() -> None:
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {ns}")
            finally:
                os.close(fd)
            result["value"] = fn(*args)
        except BaseException as exc:  # handed to the caller
            result["error"] = exc

    t = threading.Thread(target=body, name=f"netns-{ns}")
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]
