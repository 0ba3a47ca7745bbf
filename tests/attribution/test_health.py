"""The readiness rule behind gRPC health (attribution.health)."""

from __future__ import annotations

from attribution.health import Readiness
from ribd.events import EndOfRib, SessionState
from ribd.rib import Rib

V4, V6 = "ipv4 unicast", "ipv6 unicast"
ROUTERS = (("edge1", "192.0.2.1"), ("edge2", "192.0.2.2"))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def converge(rib: Rib, neighbor: str) -> None:
    rib.apply(SessionState(neighbor, "up"))
    rib.apply(EndOfRib(neighbor, V4))
    rib.apply(EndOfRib(neighbor, V6))


def test_not_serving_until_every_configured_router_converged_in_every_family():
    rib, clock = Rib(), Clock()
    ready = Readiness(600.0, clock)
    assert ready.check(rib, ROUTERS, "") == (
        False,
        "waiting for routers to converge: edge1, edge2",
    )
    converge(rib, "192.0.2.1")
    rib.apply(SessionState("192.0.2.2", "up"))
    rib.apply(EndOfRib("192.0.2.2", V4))
    assert ready.check(rib, ROUTERS, "") == (False, "waiting for routers to converge: edge2")
    rib.apply(EndOfRib("192.0.2.2", V6))
    assert ready.check(rib, ROUTERS, "") == (True, "every configured router has converged")


def test_once_ready_a_lost_session_does_not_take_the_service_out():
    rib, clock = Rib(), Clock()
    ready = Readiness(600.0, clock)
    converge(rib, "192.0.2.1")
    converge(rib, "192.0.2.2")
    assert ready.check(rib, ROUTERS, "")[0]
    rib.apply(SessionState("192.0.2.2", "down", reason="x"))
    assert ready.check(rib, ROUTERS, "") == (True, "ready")


def test_ready_timeout_releases_routers_that_never_came_up():
    rib, clock = Rib(), Clock()
    ready = Readiness(30.0, clock)
    converge(rib, "192.0.2.1")
    clock.now += 29.9
    assert not ready.check(rib, ROUTERS, "")[0]
    clock.now += 0.1
    serving, why = ready.check(rib, ROUTERS, "")
    assert serving and why.endswith("not waiting any longer for edge2")
    assert ready.released == ("edge2",)


def test_exabgp_down_is_not_serving_whatever_the_routers():
    rib, clock = Rib(), Clock()
    ready = Readiness(0.0, clock)
    assert ready.check(rib, ROUTERS, "ExaBGP is not running") == (False, "ExaBGP is not running")
    assert ready.check(rib, ROUTERS, "")[0]
    assert ready.check(rib, ROUTERS, "no relay") == (False, "no relay")


def test_no_configured_routers_is_ready_at_once():
    assert Readiness(600.0, Clock()).check(Rib(), (), "")[0]
