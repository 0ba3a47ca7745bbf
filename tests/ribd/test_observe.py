"""RIB events for the operator: notes, NOTIFICATION names, inferred convergence."""

from __future__ import annotations

import logging

from ribd.events import EndOfRib, OpenReceived, RouteRefreshMarker, SessionState
from ribd.observe import (
    SessionDown,
    SessionUp,
    StaleExpired,
    TableLoaded,
    describe_reason,
    drain,
    notification_name,
)
from ribd.rib import QUIET_PREFIXES_PER_SECOND, Rib
from ribd.table import END_OF_RIB_WAIT_QUIET_TIMES
from tests.ribd.test_rib import V4, V6, Clock, announce, path

R1 = "192.0.2.1"


def rib_with(clock: Clock, quiet: float = 60.0, **kw) -> Rib:
    rib = Rib(clock=clock, router_names={R1: "edge1"}, **kw)
    rib.converge_quiet_time = quiet
    return rib


def test_notification_codes_and_subcodes_are_named_per_rfc():
    assert notification_name(6, 2) == "Cease / Administrative Shutdown"
    assert notification_name(6, 1) == "Cease / Maximum Number of Prefixes Reached"
    assert notification_name(4, 0) == "Hold Timer Expired"
    assert notification_name(2, 2) == "OPEN Message Error / Bad Peer AS"
    assert notification_name(6, 99) == "Cease / subcode 99"
    assert notification_name(42, 1) == "code 42 / subcode 1"


def test_exabgp_down_reasons_get_the_notification_decoded():
    assert describe_reason("notification received (6,2)") == (
        "NOTIFICATION received from the peer: Cease / Administrative Shutdown (6/2)"
    )
    assert describe_reason("notification sent (4,0)") == (
        "NOTIFICATION sent to the peer: Hold Timer Expired (4/0)"
    )
    assert describe_reason("closing connection") == "closing connection"
    assert describe_reason("") == "no reason given"


def test_session_up_down_and_end_of_rib_leave_one_note_each():
    clock = Clock()
    rib = rib_with(clock, quiet=0.0)
    rib.apply(SessionState(R1, "up", peer_as=64500))
    announce(rib, R1, ["10.0.0.0/8", "10.1.0.0/16"], path(1, 2))
    clock.now += 2.5
    rib.apply(EndOfRib(R1, V4))
    rib.apply(EndOfRib(R1, V4))  # a repeated End-of-RIB is not news
    rib.apply(SessionState(R1, "down", reason="notification received (6,4)"))
    notes = list(rib.notes)
    assert notes == [
        SessionUp(R1, "edge1", 64500),
        TableLoaded(R1, "edge1", V4, 2, 2, 2.5, False, 0.0),
        SessionDown(R1, "edge1", "notification received (6,4)", "purged"),
    ]


def test_quiet_peer_without_end_of_rib_converges_inferred_after_the_quiet_time():
    clock = Clock()
    rib = rib_with(clock, quiet=60.0)
    rib.apply(SessionState(R1, "up"))
    rib.maintenance()  # the service's maintenance runs every 0.1 s
    announce(rib, R1, ["10.0.0.0/8"], path(1, 2))
    clock.now += 59
    rib.maintenance()
    assert not rib.routers[R1].families[V4].converged
    clock.now += 2
    rib.maintenance()
    fs = rib.routers[R1].families[V4]
    assert fs.converged and fs.inferred
    assert rib.routers[R1].families[V6].converged  # quiet too: nothing at all
    loaded = [n for n in rib.notes if type(n) is TableLoaded]
    assert [(n.family, n.prefixes, n.inferred, n.quiet) for n in loaded] == [
        (V4, 1, True, 60.0),
        (V6, 0, True, 60.0),
    ]
    rib.apply(EndOfRib(R1, V4))  # a late End-of-RIB makes it a real one
    assert fs.converged and not fs.inferred


def test_a_family_still_loading_is_not_quiet_and_churn_is():
    clock = Clock()
    rib = rib_with(clock, quiet=10.0)
    rib.apply(SessionState(R1, "up"))
    rib.maintenance()
    # A table streaming in: more than QUIET_PREFIXES_PER_SECOND over the window.
    n = QUIET_PREFIXES_PER_SECOND * 10 + 1
    prefixes = [f"10.{i // 256}.{i % 256}.0/24" for i in range(n)]
    for i in range(0, n, 100):
        announce(rib, R1, prefixes[i : i + 100], path(1, 2))
    clock.now += 10
    rib.maintenance()
    v4, v6 = rib.routers[R1].families[V4], rib.routers[R1].families[V6]
    assert not v4.converged
    assert v6.converged and v6.inferred  # per family: IPv6 was silent meanwhile
    # Then churn only: a prefix a second is quiet.
    for _ in range(10):
        clock.now += 1
        announce(rib, R1, ["10.0.0.0/24"], path(1, 3))
        rib.maintenance()
    assert v4.converged and v4.inferred


def test_inferred_convergence_retires_the_stale_generation_like_end_of_rib():
    clock = Clock()
    rib = rib_with(clock, quiet=5.0, stale_hold_time=300.0)
    rib.apply(SessionState(R1, "up"))
    announce(rib, R1, ["10.0.0.0/8", "10.1.0.0/16"], path(1, 2))
    rib.apply(SessionState(R1, "down", reason="closing connection"))
    rib.apply(SessionState(R1, "up"))
    rib.maintenance()
    announce(rib, R1, ["10.0.0.0/8"], path(1, 2))
    assert rib.lookup(R1, V4, "10.1.2.3").stale
    clock.now += 6
    while rib.maintenance():
        pass
    assert rib.exact(R1, V4, "10.1.0.0/16") == []  # not re-announced: gone
    assert rib.routers[R1].families[V4].stale_prefixes == 0
    assert not rib.lookup(R1, V4, "10.0.0.1").stale


def test_without_a_quiet_time_a_peer_without_end_of_rib_never_converges():
    clock = Clock()
    rib = rib_with(clock, quiet=0.0)
    rib.apply(SessionState(R1, "up"))
    clock.now += 86400
    rib.maintenance()
    assert not rib.routers[R1].families[V4].converged


def trickle(rib, clock, seconds: int, start: int = 0) -> None:
    """A table arriving at 100 prefixes a second: slower than the quiet rate."""
    for second in range(start, start + seconds):
        n = second * 100
        announce(
            rib, R1, [f"10.{i // 256 % 256}.{i % 256}.0/24" for i in range(n, n + 100)], path(1, 2)
        )
        clock.now += 1
        rib.maintenance()


def test_a_slow_table_from_a_router_offering_graceful_restart_waits_for_end_of_rib():
    clock = Clock()
    rib = rib_with(clock, quiet=10.0)
    rib.apply(OpenReceived(R1, graceful_restart=True, families=(V4,)))
    rib.apply(SessionState(R1, "up"))
    rib.maintenance()
    trickle(rib, clock, 40)  # four quiet times below QUIET_PREFIXES_PER_SECOND
    v4, v6 = rib.routers[R1].families[V4], rib.routers[R1].families[V6]
    assert QUIET_PREFIXES_PER_SECOND > 100 and not v4.converged
    assert v6.converged and v6.inferred  # not in its OPEN: no End-of-RIB to wait for
    rib.apply(EndOfRib(R1, V4))
    assert v4.converged and not v4.inferred


def test_a_router_that_sent_end_of_rib_before_keeps_its_stale_routes_through_a_slow_reload():
    clock = Clock()
    rib = rib_with(clock, quiet=10.0, stale_hold_time=3600.0)
    rib.apply(SessionState(R1, "up"))
    announce(rib, R1, ["192.0.2.0/24"], path(1, 2))
    rib.apply(EndOfRib(R1, V4))  # it sends End-of-RIB (JSON mode: no OPEN seen)
    rib.apply(SessionState(R1, "down", reason="closing connection"))
    rib.apply(SessionState(R1, "up"))
    rib.maintenance()
    trickle(rib, clock, 30)
    # Not re-sent yet: still served (stale), not dropped as if the table were complete.
    assert rib.lookup(R1, V4, "192.0.2.1").stale
    assert not rib.routers[R1].families[V4].converged
    # Its End-of-RIB never comes: the last resort after the longer wait.
    clock.now += 10.0 * END_OF_RIB_WAIT_QUIET_TIMES
    while rib.maintenance():
        pass
    clock.now += 11
    while rib.maintenance():
        pass
    v4 = rib.routers[R1].families[V4]
    assert v4.converged and v4.inferred
    assert rib.exact(R1, V4, "192.0.2.0/24") == []


def churn(rib, clock, seconds: int) -> None:
    """Churn only: a prefix the table holds re-announced on another path each second."""
    for second in range(seconds):
        announce(rib, R1, ["10.0.0.0/24"], path(1, 2 + second % 2))
        clock.now += 1
        rib.maintenance()


def test_a_slow_table_from_a_router_without_end_of_rib_is_not_converged_while_it_grows():
    # 63 routers through one ExaBGP each sent ~300 prefixes/s, under the quiet
    # rate: every one was inferred converged a third into its table, which
    # built their views mid-load (BENCHMARKS.md, stop 42). A table still
    # growing is still loading, however slowly.
    clock = Clock()
    rib = rib_with(clock, quiet=10.0)
    rib.apply(OpenReceived(R1, graceful_restart=False))
    rib.apply(SessionState(R1, "up"))
    rib.maintenance()
    trickle(rib, clock, 45)  # four quiet times below QUIET_PREFIXES_PER_SECOND
    v4 = rib.routers[R1].families[V4]
    assert QUIET_PREFIXES_PER_SECOND > 100 and not v4.converged
    assert not [n for n in rib.notes if type(n) is TableLoaded and n.family == V4]
    churn(rib, clock, 21)  # it stopped growing: one quiet time, at most two
    assert v4.converged and v4.inferred
    loaded = [n for n in rib.notes if type(n) is TableLoaded and n.family == V4]
    assert [n.prefixes for n in loaded] == [4500]


def test_a_router_without_end_of_rib_keeps_its_stale_routes_while_it_resends_slowly():
    clock = Clock()
    rib = rib_with(clock, quiet=10.0, stale_hold_time=3600.0)
    rib.apply(SessionState(R1, "up"))
    announce(rib, R1, ["192.0.2.0/24"], path(1, 2))
    rib.apply(SessionState(R1, "down", reason="closing connection"))
    rib.apply(SessionState(R1, "up"))
    rib.maintenance()
    trickle(rib, clock, 30)
    assert rib.lookup(R1, V4, "192.0.2.1").stale  # kept while the table comes back
    assert not rib.routers[R1].families[V4].converged
    churn(rib, clock, 21)
    while rib.maintenance():
        pass
    v4 = rib.routers[R1].families[V4]
    assert v4.converged and v4.inferred
    assert rib.exact(R1, V4, "192.0.2.0/24") == []  # not re-sent: retired with the stale copy


def test_down_sessions_are_never_inferred_converged():
    clock = Clock()
    rib = rib_with(clock, quiet=1.0, stale_hold_time=1000.0)
    rib.apply(SessionState(R1, "up"))
    rib.apply(SessionState(R1, "down", reason="x"))
    clock.now += 10
    rib.maintenance()
    assert not rib.routers[R1].families[V4].converged


def test_stale_expiry_and_exabgp_loss_are_noted():
    clock = Clock()
    rib = rib_with(clock, quiet=0.0, stale_hold_time=30.0)
    rib.apply(SessionState(R1, "up"))
    announce(rib, R1, ["10.0.0.0/8"], path(1, 2))
    rib.exabgp_gone("ExaBGP exited with code 1", hold_time=30.0)
    clock.now += 31
    rib.maintenance()
    notes = list(rib.notes)[1:]
    assert notes == [
        SessionDown(R1, "edge1", "ExaBGP exited with code 1", "kept stale for 30 s"),
        StaleExpired(R1, "edge1", 1),
    ]


def test_drained_notes_become_log_lines_with_structured_fields(caplog):
    clock = Clock()
    rib = rib_with(clock, quiet=0.0)
    rib.apply(SessionState(R1, "up", peer_as=64500))
    rib.apply(SessionState(R1, "down", reason="notification sent (4,0)"))
    with caplog.at_level(logging.INFO, logger="ribd.sessions"):
        assert drain(rib.notes) == 2
    up, down = caplog.records
    assert up.getMessage() == "router edge1 (192.0.2.1): BGP session up (AS 64500)"
    assert down.levelno == logging.WARNING
    assert down.getMessage() == (
        "router edge1 (192.0.2.1): BGP session down: NOTIFICATION sent to the peer: "
        "Hold Timer Expired (4/0); routes purged"
    )
    assert (down.event, down.router, down.routes) == ("session_down", "edge1", "purged")
    assert not rib.notes


def test_a_re_read_after_a_feed_gap_is_noted_with_how_and_its_own_duration(caplog):
    clock = Clock()
    rib = rib_with(clock, quiet=0.0)
    rib.apply(SessionState(R1, "up"))
    announce(rib, R1, ["10.0.0.0/8", "10.1.0.0/16"], path(1, 2))
    rib.apply(EndOfRib(R1, V4))
    rib.apply(EndOfRib(R1, V6))
    rib.notes.clear()
    clock.now += 100
    rib.mark_gap()
    rib.note_refresh_asked()
    clock.now += 3
    rib.apply(RouteRefreshMarker(R1, V4, True))
    announce(rib, R1, ["10.0.0.0/8"], path(1, 2))
    rib.apply(RouteRefreshMarker(R1, V4, False))
    clock.now += 60
    rib.overdue_refreshes(30.0)  # the IPv6 family had nothing stale to re-read
    notes = list(rib.notes)
    assert [(n.family, n.prefixes, n.seconds, n.how) for n in notes] == [
        (V4, 1, 3.0, "route refresh"),
        (V6, 0, 63.0, "nothing to re-read"),
    ]
    with caplog.at_level(logging.INFO, logger="ribd.sessions"):
        drain(rib.notes)
    first = caplog.records[0]
    assert first.getMessage() == (
        "router edge1 (192.0.2.1) ipv4 unicast: table re-read after a feed gap "
        "(route refresh): 1 prefixes in 3.0 s"
    )
    assert (first.event, first.how) == ("table_reread", "route refresh")
