"""Idle sessions skip the passes of ExaBGP's loop that have nothing for them
(``ribd.exabgp_run.patch_idle_turns``).

Two parts: the turn rule itself, on ExaBGP 5.0.15's own ``Reactor`` and
``Peer`` methods as patched, with a real poller and socket pair (in a child
interpreter, so this process's ExaBGP classes stay unpatched); and real
sessions over loopback, where idle routers must keep their sessions while
another router sends, and a router gone silent must still be dropped when
its hold time runs out.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ribd.speaker import Route, wait_until
from tests.ribd.test_exabgp_e2e import V4
from tests.ribd.test_workers import bed_with, table, up_and_converged

TURN_RULE = textwrap.dedent(
    """
    import select, socket, time
    from exabgp.version import release
    from ribd.exabgp_run import IDLE_TURN_SECONDS, PATCHED_RELEASE, patch_idle_turns
    assert release == PATCHED_RELEASE, release
    from exabgp.reactor.loop import Reactor
    from exabgp.reactor.peer import ACTION, Peer

    patch_idle_turns()

    class Processes:
        def broken(self, neighbor):
            return False

    class Outgoing:
        def __init__(self, pending):
            self._pending = pending
        def pending(self):
            return self._pending

    class Rib:
        def __init__(self, pending):
            self.outgoing = Outgoing(pending)

    class Neighbor(dict):
        def __init__(self, pending=False):
            super().__init__(passive=False)
            self.rib = Rib(pending)

    class Stand(Peer):
        # What Peer.run and active_peers read of a peer, nothing more.
        def __init__(self, fd, actions, pending=False):
            self.fd, self.proto, self.leaving = fd, object(), False
            self.reactor = type("R", (), {"processes": Processes()})()
            self._neighbor_ = Neighbor(pending)
            self.generator = iter(actions)
        neighbor = property(lambda self: self._neighbor_)
        def socket(self):
            return self.fd
        def stopping(self):
            return self.leaving

    a, b = socket.socketpair()
    idle = Stand(a.fileno(), [ACTION.LATER] * 10, pending=True)
    busy = Stand(-1, [ACTION.NOW] * 10)
    reactor = Reactor.__new__(Reactor)
    reactor._peers = {"idle": idle, "busy": busy}
    reactor._poller = select.poll()
    reactor._poller.register(a.fileno(), select.POLLIN)

    def turns():
        return sorted(reactor.active_peers())

    out = {"first": turns()}
    for key in out["first"]:
        reactor._peers[key].run()
    out["after_later"] = turns()
    out["adjribout_sees_idle"] = reactor._pending_adjribout()
    b.send(b"x")
    list(reactor._wait_for_io(0))
    out["readable"] = turns()
    out["next_pass"] = turns()
    idle.run()
    idle.leaving = True
    out["stopping"] = turns()
    idle.leaving = False
    time.sleep(IDLE_TURN_SECONDS * 1.5)
    out["interval"] = turns()
    print(repr(out))
    """
)


def test_an_idle_session_gets_turns_only_when_readable_stopping_or_due() -> None:
    got = subprocess.run(
        [sys.executable, "-c", TURN_RULE], capture_output=True, text=True, timeout=60
    )
    assert got.returncode == 0, got.stderr
    out = eval(got.stdout.strip())  # our own child's repr of a dict of lists and a bool
    assert out["first"] == ["busy", "idle"]  # no turn answered yet: both
    assert out["after_later"] == ["busy"]  # idle answered LATER: left out
    assert out["adjribout_sees_idle"] is True  # pending routes still found on every session
    assert out["readable"] == ["busy", "idle"]  # its socket has data
    assert out["next_pass"] == ["busy"]  # readiness is used once, then the poll is asked again
    assert out["stopping"] == ["busy", "idle"]  # on its way out: always a turn
    assert out["interval"] == ["busy", "idle"]  # IDLE_TURN_SECONDS since its last turn


ACCEPT_RULE = textwrap.dedent(
    """
    import json, socket, sys, time
    from exabgp.version import release
    from ribd.exabgp_run import PATCHED_RELEASE, patch_idle_accepts
    assert release == PATCHED_RELEASE, release
    from exabgp.reactor.listener import Listener

    if sys.argv[1] == "patched":
        patch_idle_accepts()

    accepts = []

    class Counting(socket.socket):
        def accept(self):
            accepts.append(self.getsockname()[1])
            return super().accept()

    listener = Listener(None)
    listener.serving = True

    def listening():
        sock = Counting(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        listener._sockets[sock] = ("127.0.0.1", sock.getsockname()[1], None, False)
        return sock

    def until_incoming():
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if listener.incoming():
                return True
        return False

    socks = [listening() for _ in range(3)]
    out = {"idle": [listener.incoming() for _ in range(5)], "idle_accepts": len(accepts)}
    client = socket.create_connection(socks[1].getsockname())
    out["connected"] = until_incoming()
    out["accepted"] = [socks.index(s) for s in listener._accepted]
    accepts.clear()
    out["then_idle"] = [listener.incoming() for _ in range(5)]
    out["then_idle_accepts"] = len(accepts)
    late = listening()  # a neighbor added by a reload: a new listening socket
    other = socket.create_connection(late.getsockname())
    out["late_connected"] = until_incoming()
    out["late_accepted"] = late in listener._accepted
    print(json.dumps(out))
    """
)


def _accepts(mode: str) -> dict:
    got = subprocess.run(
        [sys.executable, "-c", ACCEPT_RULE, mode], capture_output=True, text=True, timeout=60
    )
    assert got.returncode == 0, got.stderr
    return json.loads(got.stdout)


def test_the_listener_accepts_only_when_a_connection_waits() -> None:
    out = _accepts("patched")
    assert out["idle"] == [False] * 5
    assert out["idle_accepts"] == 0  # no accept() on a socket with nothing waiting
    assert out["connected"] is True
    assert out["accepted"] == [1]
    assert out["then_idle"] == [False] * 5
    assert out["then_idle_accepts"] == 0
    assert out["late_connected"] is True  # a socket opened later is polled too
    assert out["late_accepted"] is True


def test_unpatched_exabgp_accepts_on_every_socket_every_pass() -> None:
    """What ``patch_idle_accepts`` removes (and a check that ExaBGP still does
    it: the patch's reason)."""
    out = _accepts("unpatched")
    assert out["idle"] == [False] * 5
    assert out["idle_accepts"] == 15  # 3 sockets x 5 passes
    assert out["connected"] is True
    assert out["accepted"] == [1]


@pytest.mark.bgp
def test_idle_routers_keep_their_sessions_and_a_silent_one_expires(testbed) -> None:
    # Hold time 3 s: keepalives every second from both sides. The service's ExaBGP
    # gives an idle session a turn only when due, so if it missed keepalives or
    # expiries the idle routers' sessions would drop within the wait below.
    bed = bed_with(testbed, 3, workers=1)
    routers = [f"127.0.1.{k}" for k in (1, 2, 3)]
    speakers = [
        bed.speaker(local_address=r, routes=table(k), hold_time=3) for k, r in enumerate(routers, 1)
    ]
    wait_until(lambda: all(up_and_converged(bed.rib, r) for r in routers), 60, what="tables")
    ups = [s.sessions_established for s in speakers]
    deadline = time.monotonic() + 10  # three hold times
    sent = []
    while time.monotonic() < deadline:
        sent.append(f"10.200.{len(sent) % 250}.0/24")
        speakers[0].announce(Route(sent[-1], routers[0], as_path=[65001, 65009]))
    for r, s, up in zip(routers, speakers, ups, strict=True):
        assert s.established and s.sessions_established == up, f"router {r} dropped"
        assert bed.rib.routers[r].session == "up"
    wait_until(lambda: bed.rib.exact(routers[0], V4, sent[-1]), 30, what="the last route")
    # A router gone silent (frozen: no keepalive, no FIN) is only noticed by our
    # side's own hold timer, checked on the session's turns: with no turn when
    # nothing arrives it would stay "up" for ever.
    frozen = speakers[2]._proc.pid
    os.kill(frozen, signal.SIGSTOP)
    try:
        wait_until(lambda: bed.rib.routers[routers[2]].session != "up", 30, what="hold expiry")
    finally:
        os.kill(frozen, signal.SIGCONT)
    assert bed.rib.routers[routers[1]].session == "up"
