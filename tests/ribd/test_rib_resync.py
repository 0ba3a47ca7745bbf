"""Exact re-reads after lost feed lines: stale at the gap, sweep at EoRR (no I/O)."""

from __future__ import annotations

from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.events import (
    EndOfRib,
    RouteRefreshMarker,
    RoutesAnnounced,
    RoutesWithdrawn,
    SessionState,
)
from ribd.rib import Rib

V4, V6 = "ipv4 unicast", "ipv6 unicast"
R1 = "192.0.2.1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def attrs(*asns: int):
    return make_attributes(((AS_SEQUENCE, asns),), next_hop="192.0.2.254")


def announce(rib: Rib, *prefixes: str, family: str = V4, asn: int = 65001) -> None:
    rib.apply(RoutesAnnounced(R1, family, prefixes, None, attrs(asn)))


def table(rib: Rib, family: str = V4) -> dict[str, tuple[int, bool]]:
    return {m.prefix: (m.attributes.origin_as, m.stale) for m in rib.routes(R1, family)}


def loaded_rib(**kw) -> Rib:
    rib = Rib(clock=Clock(), **kw)
    rib.apply(SessionState(R1, "up"))
    announce(rib, "10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16")
    announce(rib, "2001:db8::/32", family=V6)
    rib.apply(EndOfRib(R1, V4))
    rib.apply(EndOfRib(R1, V6))
    return rib


def test_a_gap_marks_routes_stale_and_eorr_sweeps_what_was_not_re_sent() -> None:
    rib = loaded_rib()
    assert rib.mark_gap() == [R1]
    assert table(rib) == {p: (65001, True) for p in ("10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16")}
    assert not any(fs.converged for fs in rib.routers[R1].families.values())
    rib.apply(RouteRefreshMarker(R1, V4, True))
    announce(rib, "10.1.0.0/16", asn=65009)  # 10.2 was withdrawn in the gap
    announce(rib, "10.3.0.0/16")
    rib.apply(RouteRefreshMarker(R1, V4, False))
    assert table(rib) == {"10.1.0.0/16": (65009, False), "10.3.0.0/16": (65001, False)}
    r = rib.routers[R1]
    assert r.families[V4].converged and not r.families[V6].converged
    rib.apply(RouteRefreshMarker(R1, V6, True))
    rib.apply(RouteRefreshMarker(R1, V6, False))
    assert table(rib, V6) == {} and r.families[V6].converged and r.stale_until == 0


def test_an_eorr_without_its_borr_or_an_end_of_rib_during_a_re_read_sweeps_nothing() -> None:
    rib = loaded_rib()
    rib.mark_gap()
    rib.apply(RouteRefreshMarker(R1, V4, False))  # its BoRR came before the gap
    rib.apply(EndOfRib(R1, V4))  # the session's first table ended in the gap
    assert len(table(rib)) == 3 and not rib.routers[R1].families[V4].converged
    rib.apply(RouteRefreshMarker(R1, V4, True))
    announce(rib, "10.2.0.0/16")
    rib.apply(RouteRefreshMarker(R1, V4, False))
    assert table(rib) == {"10.2.0.0/16": (65001, False)}


def test_a_second_gap_during_a_re_read_starts_it_over() -> None:
    rib = loaded_rib()
    rib.mark_gap()
    rib.apply(RouteRefreshMarker(R1, V4, True))
    announce(rib, "10.1.0.0/16")
    rib.mark_gap()  # lines of the re-read lost: its EoRR proves nothing
    rib.apply(RouteRefreshMarker(R1, V4, False))
    assert "10.1.0.0/16" in table(rib) and not rib.routers[R1].families[V4].converged
    rib.apply(RouteRefreshMarker(R1, V4, True))
    announce(rib, "10.3.0.0/16")
    rib.apply(RouteRefreshMarker(R1, V4, False))
    assert table(rib) == {"10.3.0.0/16": (65001, False)}


def test_overdue_re_reads_reset_only_routers_with_stale_routes_and_keep_them() -> None:
    rib = loaded_rib(stale_hold_time=0.0, restart_hold_time=300.0)
    rib.mark_gap()
    rib.apply(RouteRefreshMarker(R1, V4, True))  # IPv4 answers, IPv6 never does
    announce(rib, "10.1.0.0/16")
    assert rib.overdue_refreshes(30.0) == []  # not yet
    rib.clock.now += 31
    assert rib.overdue_refreshes(30.0) == [R1]
    assert rib.routers[R1].resetting
    # The reset drops the session: with stale_hold_time 0 this would purge;
    # a reset we asked for keeps the routes stale until the new End-of-RIB.
    rib.apply(SessionState(R1, "down", reason="administrative reset"))
    assert table(rib, V6) == {"2001:db8::/32": (65001, True)}
    rib.apply(SessionState(R1, "up"))
    announce(rib, "10.2.0.0/16")
    rib.apply(EndOfRib(R1, V4))
    rib.apply(EndOfRib(R1, V6))
    assert table(rib) == {"10.2.0.0/16": (65001, False)} and table(rib, V6) == {}


def test_an_overdue_family_without_stale_routes_is_simply_converged() -> None:
    rib = Rib(clock=Clock())
    rib.apply(SessionState(R1, "up"))
    announce(rib, "10.1.0.0/16")
    rib.apply(EndOfRib(R1, V4))
    rib.apply(EndOfRib(R1, V6))  # no IPv6 routes at all
    rib.mark_gap()
    rib.apply(RouteRefreshMarker(R1, V4, True))
    announce(rib, "10.1.0.0/16")
    rib.apply(RouteRefreshMarker(R1, V4, False))
    rib.clock.now += 31
    assert rib.overdue_refreshes(30.0) == []
    assert all(fs.converged for fs in rib.routers[R1].families.values())


def test_a_borr_from_a_router_thought_down_means_its_session_is_up() -> None:
    rib = loaded_rib(stale_hold_time=60.0)
    rib.apply(SessionState(R1, "down"))
    rib.apply(RoutesWithdrawn(R1, V4, ("10.9.0.0/16",), None))
    rib.mark_gap()  # the "up" line was lost in the gap
    rib.apply(RouteRefreshMarker(R1, V4, True))
    announce(rib, "10.1.0.0/16")
    rib.apply(RouteRefreshMarker(R1, V4, False))
    assert rib.routers[R1].session == "up"
    assert table(rib) == {"10.1.0.0/16": (65001, False)}


def test_exabgps_refresh_lines_become_borr_and_eorr_markers() -> None:
    from ribd.parser import ExabgpParser

    def line(subtype: str, afi: str = "ipv4") -> bytes:
        return (
            b'{ "exabgp": "5.0.0", "time": 1.0, "type": "refresh", "neighbor": { "address": '
            b'{ "local": "127.0.0.1", "peer": "127.0.0.2" }, "asn": { "local": 65000, "peer": '
            b'65000 }, "direction": "receive", "route-refresh": { "afi": "%s", "safi": '
            b'"unicast", "subtype": "%s" } } }' % (afi.encode(), subtype.encode())
        )

    parse = ExabgpParser().parse
    assert parse(line("begin")) == [RouteRefreshMarker("127.0.0.2", V4, True)]
    assert parse(line("end", "ipv6")) == [RouteRefreshMarker("127.0.0.2", V6, False)]
    assert parse(line("query")) == [] and parse(line("end", "l2vpn")) == []


def test_a_gap_that_hid_a_sessions_up_line_waits_for_the_re_read() -> None:
    rib = loaded_rib(stale_hold_time=60.0)
    rib.apply(SessionState(R1, "down"))
    rib.mark_gap()  # lost: the "up" line and part of the new session's table
    announce(rib, "10.1.0.0/16")
    rib.apply(EndOfRib(R1, V4))  # cannot tell what was withdrawn: nothing swept
    assert "10.2.0.0/16" in table(rib) and not rib.routers[R1].families[V4].converged
    rib.apply(RouteRefreshMarker(R1, V4, True))
    announce(rib, "10.1.0.0/16")
    rib.apply(RouteRefreshMarker(R1, V4, False))
    assert table(rib) == {"10.1.0.0/16": (65001, False)}
    assert rib.routers[R1].session == "up" and rib.routers[R1].families[V4].converged


def test_a_second_gap_before_the_re_read_keeps_the_whole_table_stale_then_sweeps_exactly() -> None:
    """Re-reads go in waves: a router may wait for its turn through another
    gap. Its table stays readable, stale (routes sent since the first gap
    join the stale generation), and the re-read's EoRR sweeps what the
    router no longer has, those routes included."""
    rib = loaded_rib()
    rib.mark_gap(asked=False)
    assert rib.overdue_refreshes(30.0) == [] and rib.routers[R1].refresh_asked == 0
    announce(rib, "10.4.0.0/16", asn=65004)  # sent after the first gap
    announce(rib, "10.1.0.0/16", asn=65009)
    rib.mark_gap(asked=False)  # its withdrawal of 10.4 may be among the lines lost
    assert table(rib) == {
        "10.1.0.0/16": (65009, True),
        "10.2.0.0/16": (65001, True),
        "10.3.0.0/16": (65001, True),
        "10.4.0.0/16": (65004, True),
    }
    fs = rib.routers[R1].families[V4]
    assert (fs.prefixes, fs.stale_prefixes) == (0, 4)
    rib.note_refresh_asked(frozenset({R1}))
    rib.apply(RouteRefreshMarker(R1, V4, True))
    announce(rib, "10.1.0.0/16", asn=65009)
    announce(rib, "10.2.0.0/16")
    rib.apply(RouteRefreshMarker(R1, V4, False))
    assert table(rib) == {"10.1.0.0/16": (65009, False), "10.2.0.0/16": (65001, False)}
    assert rib.routers[R1].families[V4].converged


def test_a_second_gap_during_a_re_read_keeps_what_it_re_sent_so_far() -> None:
    rib = loaded_rib()
    rib.mark_gap()
    rib.apply(RouteRefreshMarker(R1, V4, True))
    announce(rib, "10.1.0.0/16", asn=65009)  # re-sent: no longer in the stale generation
    rib.mark_gap()
    assert table(rib) == {
        "10.1.0.0/16": (65009, True),
        "10.2.0.0/16": (65001, True),
        "10.3.0.0/16": (65001, True),
    }
