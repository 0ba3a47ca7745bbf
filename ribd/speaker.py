"""A BGP speaker for tests and demos: a second ExaBGP on loopback announcing routes.

``Speaker`` runs its own ExaBGP that connects to our (supervised) ExaBGP and
announces a given table, IPv4 and IPv6 (IPv6 over the IPv4 session, MP-BGP),
then End-of-RIB. At run time it can announce and withdraw routes and tear the
session down, through a small control process (``python -m ribd.speaker
--control SOCKET``) that ExaBGP runs as its API process: it copies the
Speaker's commands to ExaBGP and ExaBGP's events and acks back.

Only loopback is ever used (127.0.0.0/8, ::1): constructing a Speaker with any
other address raises ValueError.

``Route`` (``ribd.speaker_route``) is what it announces. ``BgpTestbed``
(``ribd.testbed``, still importable from here) wires the service side on a
free loopback port for tests and ``attribution demo``. ``free_port`` and
``wait_until`` are small helpers for both.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import queue
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence

import orjson

from ribd.exabgp import (
    child_environment,
    default_exabgp_command,
    log_output,
    spawn_child,
    terminate_child,
)
from ribd.exabgp_config import current_user
from ribd.relay import recv_lines
from ribd.speaker_route import Route, _breaks_exabgp_config

log = logging.getLogger(__name__)


def _require_loopback(address: str, what: str) -> str:
    ip = ipaddress.ip_address(address)
    if not ip.is_loopback:
        raise ValueError(f"{what} {address} is not a loopback address; Speaker stays on loopback")
    return str(ip)


_HANDED_OUT_KEPT = 4096
_HANDED_OUT_TRIES = 256  # binds before giving up (a narrowed ephemeral range)
_handed_out: dict[int, None] = {}  # insertion-ordered: the oldest is forgotten first
_handed_out_lock = threading.Lock()


def free_port(host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    """A port free on loopback ``host`` right now, for a listener started soon after.

    The kernel may give a port it just released to the very next ``bind(0)``, so two
    calls in a row (a service's BGP and metrics ports, say) can return the same port
    and the second listener then fails to bind. This process remembers the last
    ports it handed out and never hands one out again while it is remembered.
    OSError when the kernel offers none but those (an ephemeral port range
    narrowed below what is remembered), rather than trying for ever.
    """
    family = socket.AF_INET6 if ":" in _require_loopback(host, "free_port host") else socket.AF_INET
    for _ in range(_HANDED_OUT_TRIES):
        with socket.socket(family, kind) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        with _handed_out_lock:
            if port in _handed_out:
                continue
            _handed_out[port] = None
            if len(_handed_out) > _HANDED_OUT_KEPT:
                del _handed_out[next(iter(_handed_out))]
            return port
    raise OSError(
        f"free_port: {_HANDED_OUT_TRIES} ports the kernel offered on {host} were all handed "
        f"out by this process already (it remembers the last {_HANDED_OUT_KEPT}); "
        "is the ephemeral port range (net.ipv4.ip_local_port_range) narrowed?"
    )


def wait_until(
    predicate: Callable[[], object], timeout: float = 15.0, interval: float = 0.02, what: str = ""
) -> object:
    """Poll ``predicate`` until truthy; raise TimeoutError naming ``what`` if it never is."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


class SpeakerError(RuntimeError):
    pass


class Speaker:
    """A loopback BGP speaker (ExaBGP) that connects to ``peer_address:peer_port``.

    Use as a context manager or call ``start()``/``stop()``. ``routes`` are
    announced when the session comes up (and again after each reconnect),
    followed by End-of-RIB.
    """

    def __init__(
        self,
        *,
        peer_port: int,
        peer_as: int,
        local_as: int,
        peer_address: str = "127.0.0.1",
        local_address: str = "127.0.0.2",
        router_id: str | None = None,
        routes: Iterable[Route] = (),
        add_path: bool = True,
        hold_time: int = 30,
        exabgp_command: Sequence[str] | None = None,
        work_dir: str | None = None,
        end_of_rib: bool = True,
    ) -> None:
        self.peer_address = _require_loopback(peer_address, "peer address")
        self.local_address = _require_loopback(local_address, "local address")
        if ":" in self.peer_address or ":" in self.local_address:
            raise ValueError("the speaker session runs over IPv4 loopback (IPv6 routes via MP-BGP)")
        self.peer_port = int(peer_port)
        self.peer_as = int(peer_as)
        self.local_as = int(local_as)
        self.router_id = router_id or self.local_address
        self.routes = list(routes)
        self._initial_routes = list(self.routes)
        self.add_path = add_path
        self.hold_time = hold_time
        # False: never send End-of-RIB, like a peer without graceful restart.
        self.end_of_rib = end_of_rib
        self.command = list(exabgp_command or default_exabgp_command())
        self._own_dir = work_dir is None
        self.work_dir = work_dir or tempfile.mkdtemp(prefix="ribd-speaker-", dir="/tmp")
        self.control_socket = os.path.join(self.work_dir, "control.sock")
        self._proc = None
        self._pump: threading.Thread | None = None
        self._listener: socket.socket | None = None
        self._conn: socket.socket | None = None
        self._conn_lock = threading.Lock()
        self._command_lock = threading.Lock()
        self._acks: queue.Queue[str] = queue.Queue()
        self._cond = threading.Condition()
        self._session = "idle"
        self._ups = 0
        self._downs = 0
        self.events: list[dict] = []  # ExaBGP's state/notification lines, for tests
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    # -- config --

    def render_config(self) -> str:
        control = " ".join([sys.executable, "-m", "ribd.speaker", "--control", self.control_socket])
        routes = "".join(
            f"        {r.exabgp()};\n" for r in self.routes if not _breaks_exabgp_config(r)
        )
        return (
            "process control {\n"
            f"    run {control};\n"
            "    encoder json;\n"
            "}\n"
            f"neighbor {self.peer_address} {{\n"
            f"    router-id {self.router_id};\n"
            f"    local-address {self.local_address};\n"
            f"    local-as {self.local_as};\n"
            f"    peer-as {self.peer_as};\n"
            f"    hold-time {self.hold_time};\n"
            "    passive false;\n"
            f"    connect {self.peer_port};\n"
            "    adj-rib-in false;\n"
            "    adj-rib-out true;\n"
            f"    manual-eor {'true' if self._deferred() or not self.end_of_rib else 'false'};\n"
            "    family {\n        ipv4 unicast;\n        ipv6 unicast;\n    }\n"
            "    capability {\n"
            f"        add-path {'send' if self.add_path else 'disable'};\n"
            "        route-refresh;\n"
            "    }\n"
            "    api {\n        processes [ control ];\n        neighbor-changes;\n"
            "        receive {\n            parsed;\n            notification;\n"
            "            refresh;\n        }\n    }\n"
            f"    static {{\n{routes}    }}\n"
            "}\n"
        )

    def render_env(self) -> dict[str, str]:
        return {
            "exabgp.tcp.bind": "",  # never listen: we only connect out
            "exabgp.api.ack": "true",  # "done"/"error" per command
            "exabgp.api.cli": "false",
            "exabgp.api.encoder": "json",
            "exabgp.daemon.daemonize": "false",
            "exabgp.daemon.user": current_user(),
            "exabgp.log.destination": os.path.join(self.work_dir, "exabgp.log"),
            "exabgp.log.level": "INFO",
            "exabgp.log.short": "false",
        }

    # -- lifetime --

    def start(self) -> Speaker:
        if self._proc is not None:
            raise SpeakerError("speaker already started")
        self._stopping.clear()
        os.makedirs(self.work_dir, exist_ok=True)
        config = os.path.join(self.work_dir, "speaker.conf")
        with open(config, "w") as f:
            f.write(self.render_config())
        if os.path.exists(self.control_socket):
            os.unlink(self.control_socket)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.control_socket)
        listener.listen(4)
        listener.settimeout(0.2)
        self._listener = listener
        self._spawn_thread(self._accept_loop, "speaker-accept")
        self._proc = spawn_child(
            [*self.command, config], child_environment(self.render_env()), self.work_dir
        )
        self._pump = log_output(self._proc, log, "speaker-exabgp")
        log.info(
            "speaker ExaBGP pid %d -> %s:%d", self._proc.pid, self.peer_address, self.peer_port
        )
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop ExaBGP (it closes the session with a Cease) and clean up."""
        self._stopping.set()
        if self._proc is not None:
            terminate_child(self._proc, timeout)
            if self._pump is not None:
                self._pump.join(2.0)
            self._proc = None
        with self._conn_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for t in self._threads:
            t.join(2.0)
        self._threads.clear()
        with self._cond:
            self._session = "idle"
            self._cond.notify_all()

    def close(self) -> None:
        self.stop()
        if self._own_dir and not os.environ.get("RIBD_KEEP_TESTBED"):
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> Speaker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- session --

    @property
    def established(self) -> bool:
        with self._cond:
            return self._session == "up"

    @property
    def sessions_established(self) -> int:
        """How many times the session came up (to wait for a re-establishment)."""
        with self._cond:
            return self._ups

    def wait_established(self, timeout: float = 30.0, after: int = 0) -> None:
        """Wait until the session is up (and has come up more than ``after`` times)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (self._session == "up" and self._ups > after):
                left = deadline - time.monotonic()
                if left <= 0 or self._proc is None:
                    raise TimeoutError(
                        f"BGP session {self.local_address} -> {self.peer_address}:{self.peer_port} "
                        f"not established after {timeout}s (state {self._session})"
                    )
                self._cond.wait(min(left, 0.2))

    def wait_down(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._session == "up":
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("BGP session still up")
                self._cond.wait(min(left, 0.2))

    def set_table(self, routes: Iterable[Route]) -> None:
        """Replace the table announced at the next ``start()`` (while stopped)."""
        if self._proc is not None:
            raise SpeakerError("set_table() needs a stopped speaker; use announce/withdraw")
        self.routes = list(routes)
        self._initial_routes = list(self.routes)

    # -- runtime commands --

    def announce(self, route: Route, timeout: float = 10.0) -> None:
        """Announce (or replace) ``route``; it is also re-sent after a reconnect."""
        self._command(f"neighbor {self.peer_address} announce {route.exabgp()}", timeout)
        self.routes = [
            r for r in self.routes if (r.prefix, r.path_id) != (route.prefix, route.path_id)
        ]
        self.routes.append(route)

    def withdraw(self, prefix: str, path_id: int | None = None, timeout: float = 10.0) -> None:
        """Withdraw a route announced earlier (by prefix and, with ADD-PATH, path id)."""
        prefix = str(ipaddress.ip_network(prefix, strict=True))
        known = [r for r in self.routes if (r.prefix, r.path_id) == (prefix, path_id)]
        next_hop = known[0].next_hop if known else ("::1" if ":" in prefix else "127.0.0.2")
        words = f"route {prefix} next-hop {next_hop}"
        if path_id is not None:
            words += f" path-information {int(path_id)}"
        self._command(f"neighbor {self.peer_address} withdraw {words}", timeout)
        self.routes = [r for r in self.routes if (r.prefix, r.path_id) != (prefix, path_id)]

    def teardown(self, subcode: int = 2, timeout: float = 10.0) -> None:
        """Close the session with a NOTIFICATION (Cease, ``subcode``; 2 = admin shutdown).

        ExaBGP reconnects by itself after its backoff (0 s the first time).
        """
        self._command(f"neighbor {self.peer_address} teardown {int(subcode)}", timeout)

    def _command(self, line: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self._conn_lock:
                conn = self._conn
            if conn is not None:
                break
            if time.monotonic() >= deadline or self._proc is None:
                raise SpeakerError("speaker control process not connected")
            time.sleep(0.02)
        with self._command_lock:
            while not self._acks.empty():
                self._acks.get_nowait()
            conn.sendall(line.encode() + b"\n")
            try:
                answer = self._acks.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise SpeakerError(f"no answer from ExaBGP to {line!r}") from None
        if answer != "done":
            raise SpeakerError(f"ExaBGP answered {answer!r} to {line!r}")

    # -- control connection --

    def _spawn_thread(self, target: Callable[..., None], name: str, *args: object) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(t)
        t.start()

    def _accept_loop(self) -> None:
        listener = self._listener
        while listener is not None and not self._stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            with self._conn_lock:
                old, self._conn = self._conn, conn
            if old is not None:
                old.close()
            self._spawn_thread(self._read_control, "speaker-control", conn)

    def _deferred(self) -> list[Route]:
        return [r for r in self._initial_routes if _breaks_exabgp_config(r)]

    def _announce_deferred(self) -> None:
        """Session up: announce the routes the config could not hold, then End-of-RIB."""
        try:
            for route in self._deferred():
                self._command(f"neighbor {self.peer_address} announce {route.exabgp()}", 10.0)
            for family in ("ipv4", "ipv6") if self.end_of_rib else ():
                self._command(f"neighbor {self.peer_address} announce eor {family} unicast", 10.0)
        except SpeakerError as exc:
            log.error("could not complete the initial table: %s", exc)

    def _read_control(self, conn: socket.socket) -> None:
        for line in recv_lines(conn):
            self._on_line(line.strip())

    def _on_line(self, line: bytes) -> None:
        if line in (b"done", b"error"):
            self._acks.put(line.decode())
            return
        if not line.startswith(b"{"):
            return
        try:
            msg = orjson.loads(line)
        except orjson.JSONDecodeError:
            return
        if msg.get("type") in ("state", "notification"):
            self.events.append(msg)
        if msg.get("type") == "state":
            state = msg.get("neighbor", {}).get("state")
            with self._cond:
                if state == "up":
                    self._ups += 1
                    if self._deferred():
                        self._spawn_thread(self._announce_deferred, "speaker-deferred")
                elif state == "down" and self._session == "up":
                    self._downs += 1
                self._session = state or self._session
                self._cond.notify_all()


def _control_main(socket_path: str) -> int:
    """The speaker ExaBGP's API process: commands from the Speaker in, events out."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + 10
    while True:
        try:
            sock.connect(socket_path)
            break
        except OSError:
            if time.monotonic() > deadline:
                return 1
            time.sleep(0.05)

    def commands() -> None:
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            os.write(1, data)

    threading.Thread(target=commands, daemon=True).start()
    connected = True
    while True:
        data = os.read(0, 65536)
        if not data:
            return 0
        if connected:
            try:
                sock.sendall(data)
            except OSError:
                connected = False  # keep draining stdin so ExaBGP never blocks


def __getattr__(name: str) -> object:
    """``from ribd.speaker import BgpTestbed`` keeps working (it moved to ribd.testbed,
    which imports this module: a lazy import avoids the cycle)."""
    if name == "BgpTestbed":
        from ribd.testbed import BgpTestbed

        return BgpTestbed
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ribd test speaker helpers")
    parser.add_argument("--control", help="run as the speaker ExaBGP's API process")
    args = parser.parse_args(argv)
    if args.control:
        return _control_main(args.control)
    parser.error("nothing to do (use the Speaker class)")
    return 2


if __name__ == "__main__":
    sys.exit(main())
