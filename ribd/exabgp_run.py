"""``python -m ribd.exabgp_run ARGS``: ExaBGP 5.0.15 as ``exabgp ARGS``, lighter in raw mode.

With ``[bgp] api_mode = "raw"`` the service decodes every received UPDATE
itself (``ribd.rawupdate``, RFC 7606 included), yet ExaBGP 5.0.15 still
decodes each one into Python objects (``Protocol.read_message`` does so
whenever an update API is on: no setting turns it off) and writes it with
``hexstring``, which formats the bytes one at a time. Profiled on the real
table (BENCHMARKS.md), decoding is about half of ExaBGP's CPU and the hex
encoding about a tenth. So the supervised ExaBGP runs through this module:

* always: ``hexstring`` is replaced by ``bytes.hex`` (the same text,
  ``0x`` and upper-case digits);
* with ``RIBD_EXABGP_RAW=1`` (set by ``ribd.exabgp`` for raw mode only):
  received UPDATEs other than End-of-RIB are not decoded;
  ``Update.unpack_message`` hands ExaBGP an UPDATE without routes or
  attributes, which it then only counts (the packets API line with the
  bytes was written before). ExaBGP then no longer resets a session over
  an UPDATE it could not parse: our decoder refuses that UPDATE (counted)
  and keeps the session's other routes (RFC 7606's aim).

* with ``RIBD_EXABGP_IDLE_TURNS=1`` (set by ``ribd.exabgp`` for the service's
  ExaBGP, not for the test speakers, ``ribd.speaker``): an idle session gets
  a turn of ExaBGP's loop when its socket has data, when it is on its way
  out, or ``IDLE_TURN_SECONDS`` after its last turn (``patch_idle_turns``),
  instead of on every pass of the loop. (A speaker patched so would gather
  API commands given within one idle interval into one UPDATE; tests that
  count one UPDATE a command rely on it not doing so.) With the same setting
  the listener calls ``accept()`` only when one of its sockets has a
  connection waiting (``patch_idle_accepts``).

These changes apply only to the ExaBGP release they were written against
(``PATCHED_RELEASE``); any other runs unchanged. Runs in ExaBGP's process only.
"""

from __future__ import annotations

import os
import select
import sys
from time import monotonic

PATCHED_RELEASE = "5.0.15"
RAW_ENV = "RIBD_EXABGP_RAW"
IDLE_TURNS_ENV = "RIBD_EXABGP_IDLE_TURNS"
_EOR_LENGTHS = (4, 11)  # IPv4 End-of-RIB, MP_UNREACH_NLRI End-of-RIB (exabgp's own test)


# An idle session's turn at most this often (keepalives and hold timers count
# in seconds; API commands for it, e.g. route-refresh, wait at most this long).
IDLE_TURN_SECONDS = 0.05


def fast_hexstring(value: bytes) -> str:
    return "0x" + bytes(value).hex().upper()


def patch(raw: bool, idle_turns: bool = False) -> bool:
    """Apply the changes to the imported ExaBGP; False (nothing changed) on another release."""
    from exabgp.version import release

    if release != PATCHED_RELEASE:
        return False
    import exabgp.reactor.api.response.json as api_json
    import exabgp.util
    from exabgp.bgp.message.direction import Direction
    from exabgp.bgp.message.update import Update
    from exabgp.bgp.message.update.attribute import Attributes

    exabgp.util.hexstring = fast_hexstring
    api_json.hexstring = fast_hexstring
    if idle_turns:
        patch_idle_turns()
        patch_idle_accepts()
    if raw:
        original = Update.unpack_message.__func__  # type: ignore[attr-defined]

        def unpack_message(cls, data, direction, negotiated):  # type: ignore[no-untyped-def]
            if direction == Direction.IN and len(data) not in _EOR_LENGTHS:
                return cls([], Attributes())
            return original(cls, data, direction, negotiated)

        Update.unpack_message = classmethod(unpack_message)  # type: ignore[method-assign]
    return True


def patch_idle_turns() -> None:
    """Idle sessions skip the passes of ExaBGP's loop that have nothing for them.

    Why: ExaBGP 5.0.15's ``Reactor.run`` recomputes ``active_peers()`` on every
    pass and gives each established session a turn (``Peer.run``: a read poll,
    keepalive timer checks, the statistics), and a pass handles one message of
    a busy session. A session that answered ``ACTION.LATER`` (nothing to do) is
    registered with the poller, but the next pass asks it again anyway. So one
    router's table cost ExaBGP more the more routers it held: profiled, the
    growth was exactly those idle turns (BENCHMARKS.md, "Stop 31, lead").

    Here a session that answered LATER is left out of the passes until its
    socket is readable (the fds ``_wait_for_io`` returned), it is stopping, or
    ``IDLE_TURN_SECONDS`` have passed. ``_pending_adjribout`` keeps asking
    every active session, as before.
    """
    from exabgp.reactor.loop import Reactor
    from exabgp.reactor.peer import ACTION, Peer

    peer_run = Peer.run
    every_active = Reactor.active_peers
    wait_for_io = Reactor._wait_for_io

    def run(self):  # type: ignore[no-untyped-def]
        action = peer_run(self)
        self._ribd_idle_at = monotonic() if action == ACTION.LATER else None
        return action

    def _wait_for_io(self, sleeptime):  # type: ignore[no-untyped-def]
        ready = self.__dict__.setdefault("_ribd_ready", set())
        for fd in wait_for_io(self, sleeptime):
            ready.add(fd)
            yield fd

    def active_peers(self):  # type: ignore[no-untyped-def]
        ready = self.__dict__.setdefault("_ribd_ready", set())
        now = monotonic()
        turns = set()
        for key in every_active(self):
            peer = self._peers[key]
            idle_at = getattr(peer, "_ribd_idle_at", None)
            if (
                idle_at is None
                or now - idle_at >= IDLE_TURN_SECONDS
                or peer.socket() in ready
                or peer.stopping()
            ):
                turns.add(key)
        ready.clear()
        return turns

    def _pending_adjribout(self):  # type: ignore[no-untyped-def]
        return any(self._peers[key].neighbor.rib.outgoing.pending() for key in every_active(self))

    Peer.run = run  # type: ignore[method-assign]
    Reactor._wait_for_io = _wait_for_io  # type: ignore[method-assign]
    Reactor.active_peers = active_peers  # type: ignore[method-assign]
    Reactor._pending_adjribout = _pending_adjribout  # type: ignore[method-assign]


def patch_idle_accepts() -> None:
    """The listener accepts only when one of its sockets has a connection waiting.

    Why: ExaBGP 5.0.15 does not poll its listening sockets. ``Listener.incoming``
    calls ``accept()`` on each of them on every pass of the loop, and Linux
    allocates (then frees) a socket for every accept that finds nothing. With
    one listening address per router, as ``[bgp] workers`` shards them, that
    was 29% of a loading worker's CPU, half of it in the kernel, and a third
    more ExaBGP CPU for the same table than one process holding the same
    routers (BENCHMARKS.md, "Stop 32, lead"). Here one ``poll(0)`` of the
    listening sockets comes first; the original ``incoming`` (which accepts and
    reports errors as before) runs only when it returns an event (a connection
    waiting, an error, a descriptor closed since it was registered).
    """
    from exabgp.reactor.listener import Listener

    incoming = Listener.incoming

    def incoming_when_waiting(self):  # type: ignore[no-untyped-def]
        if not self.serving:
            return False
        socks = [sock for sock in self._sockets if sock not in self._accepted]
        if not socks:
            return False
        polled = self.__dict__.get("_ribd_polled")
        if polled is None or polled[0] != socks:  # sockets opened or closed since
            poller = select.poll()
            for sock in socks:
                fd = sock.fileno()
                if fd >= 0:
                    poller.register(fd, select.POLLIN)
            polled = self._ribd_polled = (socks, poller)
        if not polled[1].poll(0):
            return False
        return incoming(self)

    Listener.incoming = incoming_when_waiting  # type: ignore[method-assign]


def main() -> None:
    patch(os.environ.get(RAW_ENV) == "1", os.environ.get(IDLE_TURNS_ENV) == "1")
    from exabgp.application.main import main as exabgp_main

    sys.argv[0] = "exabgp"
    exabgp_main()


if __name__ == "__main__":
    main()
