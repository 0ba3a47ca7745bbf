"""The client's channel retries a lost service every ~2 s, not on gRPC's default schedule.

gRPC's default reconnect backoff starts at 1 s and grows by 1.6x up to 120 s:
measured here, an ``attribution enrich`` whose service was down 10 s got its
channel back ~6 s after the service was, and after 30 s down ~16 s after;
after a long outage a followed collector would wait up to two minutes more.
The relays already retry every 0.05-2 s (``ribd.relay``).
"""

from __future__ import annotations

import socket
import threading

from attribution.connection import RECONNECT_MAX_MS, channel, wait_ready


def _refusing_listener() -> tuple[socket.socket, list[int]]:
    """A TCP listener on loopback that accepts each connection and closes it:
    every gRPC connection attempt fails there, and is counted."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    attempts = [0]

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            attempts[0] += 1
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return sock, attempts


def test_a_lost_service_is_retried_at_least_every_few_seconds_not_on_grpcs_growing_schedule():
    sock, attempts = _refusing_listener()
    window = 8.0
    try:
        with channel(f"127.0.0.1:{sock.getsockname()[1]}") as ch:
            assert not wait_ready(ch, window)  # one call waiting for a connection all along
    finally:
        sock.close()
    # gRPC's default schedule tries at ~0, 1, 2.6, 5.2 s (4 attempts, jitter +-20%)
    # in 8 s; capped at RECONNECT_MAX_MS it keeps trying at least every ~2.4 s
    # after a fast start (~9 attempts). 7 leaves room for a slow, busy box.
    assert RECONNECT_MAX_MS <= 2000
    assert attempts[0] >= 7, f"{attempts[0]} connection attempts in {window} s"
