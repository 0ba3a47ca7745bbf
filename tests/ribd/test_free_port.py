"""``free_port`` hands every caller in a process a port no earlier caller got.

CI once failed because two ``free_port`` calls for one service (its BGP and its
metrics listener) returned the same port: the kernel may give a just-closed port
to the next ``bind(0)``, and the service then could not bind its second listener.
"""

from __future__ import annotations

import socket

import pytest

import ribd.speaker
from ribd.speaker import free_port


def test_a_process_never_gets_the_same_free_port_twice():
    ports = [free_port() for _ in range(2000)]
    assert len(set(ports)) == len(ports)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1"])
def test_a_free_port_is_bindable_on_its_host(host):
    port = free_port(host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host, port))


def test_a_free_udp_port_is_bindable_for_udp():
    port = free_port(kind=socket.SOCK_DGRAM)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", port))


def test_free_port_refuses_a_host_off_loopback():
    with pytest.raises(ValueError, match="loopback"):
        free_port("192.0.2.1")


def test_free_port_gives_up_with_a_clear_error_when_every_port_offered_was_handed_out(
    monkeypatch,
):
    # (as when the ephemeral range is narrower than the ports remembered: no hang)
    monkeypatch.setattr(ribd.speaker, "_handed_out", dict.fromkeys(range(65536)))
    with pytest.raises(OSError, match="ip_local_port_range"):
        free_port()
