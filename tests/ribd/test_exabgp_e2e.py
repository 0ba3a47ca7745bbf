"""End to end on loopback: Speaker (ExaBGP) -> supervised ExaBGP -> relay -> FeedServer -> Rib.

Real processes and real BGP over TCP on 127.0.0.1/127.0.0.2; nothing mocked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ribd.exabgp import child_environment, default_exabgp_command, render_config, render_env
from ribd.rib import Rib
from ribd.settings import BgpSettings, NeighborSettings
from ribd.speaker import BgpTestbed, Route, Speaker, wait_until

R1 = "127.0.0.2"
V4 = "ipv4 unicast"
V6 = "ipv6 unicast"

TABLE = [
    Route(
        "10.1.0.0/16",
        "127.0.0.2",
        as_path=[65001, 65002, [64512, 64513]],
        communities=["65000:100", (65000, 200)],
        large_communities=["65000:1:2"],
        local_pref=200,
        med=50,
        origin="egp",
    ),
    Route("10.2.0.0/24", "127.0.0.2", as_path=[65001, 65010], path_id=1, local_pref=100),
    Route("10.2.0.0/24", "127.0.0.2", as_path=[65003, 65004, 65011], path_id=2, local_pref=100),
    Route("10.3.0.0/22", "127.0.0.2", as_path=[65001], origin="incomplete", path_id=1),
    Route(
        "2001:db8::/32",
        "2001:db8::1",
        as_path=[65001, 65005, [64600, 64601]],
        communities=["65000:300"],
        large_communities=["65000:3:4", "65000:5:6"],
        med=7,
        path_id=1,
    ),
    Route("2001:db8:100::/48", "2001:db8::2", as_path=[65001, 65006], path_id=1),
]


def converged(rib: Rib, neighbor: str = R1) -> bool:
    r = rib.routers.get(neighbor)
    return bool(r and r.session == "up" and all(fs.converged for fs in r.families.values()))


def rib_view(rib: Rib, neighbor: str = R1) -> dict:
    """(family, prefix, path id) -> comparable attributes and staleness."""
    view = {}
    for family in (V4, V6):
        for best in rib.routes(neighbor, family):
            for m in rib.exact(neighbor, family, best.prefix):
                a = m.attributes
                view[(family, m.prefix, m.path_id)] = (
                    a.flat_path(),
                    a.next_hop,
                    a.community_strings(),
                    a.large_community_strings(),
                    a.local_pref,
                    a.med,
                    a.origin,
                    m.stale,
                )
    return view


def expected_view(routes: list[Route], stale: bool = False, ibgp_local_pref: int = 100) -> dict:
    return {
        (r.family, r.prefix, r.path_id or 0): (
            r.flat_path(),
            r.next_hop,
            list(r.communities),
            list(r.large_communities),
            r.local_pref if r.local_pref is not None else ibgp_local_pref,
            r.med,
            r.origin,
            stale,
        )
        for r in routes
    }


@pytest.mark.parametrize("api_mode", ["raw", "json"])
def test_rendered_config_is_accepted_by_exabgp(short_tmp: Path, api_mode: str) -> None:
    settings = BgpSettings(
        api_mode=api_mode,
        local_as=65000,
        router_id="192.0.2.1",
        listen_address="127.0.0.1",
        listen_port=1179,
        neighbors=(
            NeighborSettings("core-1", "127.0.0.2", 65000),
            NeighborSettings("edge-6", "::1", 65001, add_path=False, md5_password="s3cret pw"),
        ),
        feed_socket=str(short_tmp / "feed.sock"),
        work_dir=str(short_tmp),
    )
    config = short_tmp / "exabgp.conf"
    config.write_text(render_config(settings))
    env = child_environment(render_env(settings))
    result = subprocess.run(
        [*default_exabgp_command(), "validate", "-n", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = config.read_text()
    assert "adj-rib-in false;" in text and "add-path receive;" in text
    assert "add-path disable;" in text and "md5-password czNjcmV0IHB3;" in text
    assert render_env(settings)["exabgp.api.ack"] == "false"
    assert ("packets;" in text) == (api_mode == "raw") and ("parsed;" in text) != (
        api_mode == "raw"
    )


def test_speaker_refuses_non_loopback_addresses() -> None:
    with pytest.raises(ValueError):
        Speaker(peer_port=179, peer_as=1, local_as=1, peer_address="192.0.2.1")


@pytest.mark.bgp
@pytest.mark.parametrize("api_mode", ["raw", "json"])
def test_announce_withdraw_and_attributes(testbed, api_mode: str) -> None:
    bed: BgpTestbed = testbed(api_mode=api_mode)
    speaker = bed.speaker(routes=TABLE)
    speaker.wait_established(30)
    wait_until(lambda: converged(bed.rib), 20, what="End-of-RIB")
    assert rib_view(bed.rib) == expected_view(TABLE)
    # ADD-PATH: both paths of 10.2.0.0/24, best (shorter path) first.
    assert [m.path_id for m in bed.rib.exact(R1, V4, "10.2.0.0/24")] == [1, 2]
    attrs = bed.rib.exact(R1, V4, "10.1.0.0/16")[0].attributes
    assert (attrs.origin_as, attrs.peer_as, attrs.origin_from_set) == (65002, 65001, True)
    assert bed.rib.lookup(R1, V6, "2001:db8:100::1").prefix == "2001:db8:100::/48"

    speaker.withdraw("10.2.0.0/24", path_id=1)
    speaker.withdraw("2001:db8::/32", path_id=1)
    extra = Route("10.4.0.0/24", "127.0.0.2", as_path=[65020], med=1, path_id=3)
    speaker.announce(extra)
    remaining = [
        r for r in TABLE if (r.prefix, r.path_id) not in {("10.2.0.0/24", 1), ("2001:db8::/32", 1)}
    ]
    wait_until(
        lambda: rib_view(bed.rib) == expected_view([*remaining, extra]),
        15,
        what="withdrawals and the new route",
    )
    stats = bed.feed.stats()
    assert stats["bad_lines"] == 0 and stats["prefixes_withdrawn"] == 2
    assert bed.supervisor.state().restarts == 0


@pytest.mark.bgp
def test_add_path_keeps_the_best_paths_up_to_the_bound_over_a_real_session(testbed) -> None:
    """Ten path ids for one prefix over a real ADD-PATH session (raw mode), a bound
    of four: the best four kept (shortest AS paths), six counted on the router's
    family; withdrawing the best leaves the next three, not a path never kept."""
    bed: BgpTestbed = testbed(api_mode="raw")
    bed.rib.max_paths = 4
    paths = [
        Route("10.9.0.0/24", "127.0.0.2", as_path=[65001 + i for i in range(i + 1)], path_id=i + 1)
        for i in reversed(range(10))  # the longest (worst) paths first
    ]
    speaker = bed.speaker(routes=[*paths, *TABLE])
    speaker.wait_established(30)
    wait_until(lambda: converged(bed.rib), 20, what="End-of-RIB")
    assert [m.path_id for m in bed.rib.exact(R1, V4, "10.9.0.0/24")] == [1, 2, 3, 4]
    fs = bed.rib.routers[R1].families[V4]
    assert fs.paths_over_limit == 6 and bed.rib.stats()["paths_over_limit"] == 6
    speaker.withdraw("10.9.0.0/24", path_id=1)
    wait_until(
        lambda: [m.path_id for m in bed.rib.exact(R1, V4, "10.9.0.0/24")] == [2, 3, 4],
        15,
        what="the best path withdrawn",
    )
    assert bed.feed.stats()["bad_lines"] == 0


@pytest.mark.bgp
def test_a_router_past_its_prefix_limit_keeps_its_session_and_what_it_holds(testbed) -> None:
    """A real session (raw mode) sending 40 more IPv4 prefixes than its limit: the
    limit's worth installed and the rest refused and counted, the session up; a
    withdrawal makes room for the next new prefix, and the feed saw no bad line."""
    from ribd.prefix_limit import PrefixLimits

    bed: BgpTestbed = testbed(api_mode="raw")
    v4_table = len({r.prefix for r in TABLE if ":" not in r.prefix})
    bed.rib.set_prefix_limits(PrefixLimits(default={V4: v4_table + 10, V6: 0}))
    extra = [Route(f"10.20.{i}.0/24", "127.0.0.2", as_path=[65020, 65100 + i]) for i in range(50)]
    speaker = bed.speaker(routes=[*TABLE, *extra])
    speaker.wait_established(30)
    wait_until(lambda: converged(bed.rib), 20, what="End-of-RIB")
    fs = bed.rib.routers[R1].families[V4]
    assert (fs.prefixes, fs.prefixes_refused) == (v4_table + 10, 40)
    assert bed.rib.routers[R1].session == "up"
    held = [r.prefix for r in extra if bed.rib.exact(R1, V4, r.prefix)]
    assert len(held) == 10
    speaker.withdraw(held[0])
    speaker.announce(Route("10.21.0.0/24", "127.0.0.2", as_path=[65021]))
    wait_until(lambda: bed.rib.exact(R1, V4, "10.21.0.0/24"), 15, what="the new prefix in")
    speaker.announce(Route("10.21.1.0/24", "127.0.0.2", as_path=[65021]))
    wait_until(lambda: fs.prefixes_refused == 41, 15, what="the next one refused")
    assert bed.feed.stats()["bad_lines"] == 0


@pytest.mark.bgp
def test_session_loss_purges_without_stale_hold(testbed) -> None:
    bed: BgpTestbed = testbed(stale_hold_time=0)
    speaker = bed.speaker(routes=TABLE)
    speaker.wait_established(30)
    wait_until(lambda: converged(bed.rib), 20)
    # A teardown (NOTIFICATION Cease) drops the session; the speaker reconnects
    # at once and the table comes back, converged.
    ups = speaker.sessions_established
    speaker.teardown()
    speaker.wait_established(30, after=ups)
    wait_until(lambda: converged(bed.rib) and rib_view(bed.rib) == expected_view(TABLE), 20)
    assert any(e.get("neighbor", {}).get("reason") for e in speaker.events)
    # The speaker going away for good: routes purged at once.
    speaker.stop()
    wait_until(lambda: bed.rib.routers[R1].session == "down", 15)
    wait_until(lambda: rib_view(bed.rib) == {}, 5, what="routes purged")


@pytest.mark.bgp
def test_stale_routes_are_purged_after_the_hold_or_refreshed_by_the_next_session(
    testbed,
) -> None:
    bed: BgpTestbed = testbed(stale_hold_time=1.5)
    speaker = bed.speaker(routes=TABLE)
    speaker.wait_established(30)
    wait_until(lambda: converged(bed.rib), 20)
    speaker.stop()
    wait_until(lambda: bed.rib.routers[R1].session == "down", 15)
    assert rib_view(bed.rib) == expected_view(TABLE, stale=True)
    wait_until(lambda: rib_view(bed.rib) == {}, 10, what="stale routes purged after the hold")

    # Comes back: routes reappear; down again then back within the hold: the
    # stale copies are replaced by the new session's routes and End-of-RIB.
    speaker.start()
    speaker.wait_established(30)
    wait_until(lambda: converged(bed.rib) and rib_view(bed.rib) == expected_view(TABLE), 20)
    bed.rib.stale_hold_time = 30.0
    speaker.stop()
    wait_until(lambda: rib_view(bed.rib) == expected_view(TABLE, stale=True), 15)
    changed = [*TABLE[1:], Route("10.8.0.0/16", "127.0.0.2", as_path=[65030])]
    speaker.set_table(changed)
    speaker.start()
    speaker.wait_established(30)
    wait_until(lambda: converged(bed.rib), 20)
    wait_until(
        lambda: rib_view(bed.rib) == expected_view(changed),
        10,
        what="fresh routes only once End-of-RIB retired the stale ones",
    )


@pytest.mark.bgp
def test_exabgp_killed_is_restarted_and_the_rib_survives(testbed) -> None:
    bed: BgpTestbed = testbed(restart_hold_time=60)
    speaker = bed.speaker(routes=TABLE)
    speaker.wait_established(30)
    wait_until(lambda: converged(bed.rib), 20)
    first_pid = bed.supervisor.pid
    ups = speaker.sessions_established
    os.kill(first_pid, signal.SIGKILL)
    # In between: every route kept, marked stale.
    wait_until(lambda: bed.supervisor.state().last_exit_code == -signal.SIGKILL, 10)
    assert rib_view(bed.rib) == expected_view(TABLE, stale=True)
    wait_until(lambda: bed.supervisor.state().restarts == 1 and bed.supervisor.pid, 15)
    assert bed.supervisor.pid != first_pid
    speaker.wait_established(60, after=ups)
    wait_until(lambda: converged(bed.rib) and rib_view(bed.rib) == expected_view(TABLE), 20)
    assert bed.feed.stats()["exabgp_gone_events"] >= 1


@pytest.mark.bgp
def test_resync_asks_the_router_for_its_table_again(testbed) -> None:
    bed: BgpTestbed = testbed()
    speaker = bed.speaker(routes=TABLE)
    speaker.wait_established(30)
    wait_until(lambda: converged(bed.rib), 20)
    before = bed.feed.stats()["prefixes_announced"]
    assert bed.feed.resync("*") == 1
    wait_until(
        lambda: bed.feed.stats()["prefixes_announced"] >= before + len(TABLE),
        15,
        what="the router's table sent again after ROUTE-REFRESH",
    )
    assert rib_view(bed.rib) == expected_view(TABLE)


@pytest.mark.bgp
def test_supervised_exabgp_dies_with_a_sigkilled_service(short_tmp: Path) -> None:
    """PDEATHSIG: ExaBGP (and through EOF its relay) do not outlive the service."""
    script = f"""
import sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from ribd.speaker import BgpTestbed, wait_until
bed = BgpTestbed(work_dir={str(short_tmp)!r}).start()
wait_until(lambda: bed.supervisor.pid, 10)
wait_until(lambda: bed.feed.stats()["relays_connected"], 20)
print(bed.supervisor.pid, flush=True)
time.sleep(60)
"""
    service = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        exabgp_pid = int(service.stdout.readline())
        relay_pids = [
            int(p)
            for p in subprocess.run(
                ["pgrep", "-P", str(exabgp_pid)], capture_output=True, text=True
            ).stdout.split()
        ]
        assert relay_pids
        service.kill()
        service.wait(10)
        for pid in [exabgp_pid, *relay_pids]:
            wait_until(lambda pid=pid: not _alive(pid), 10, what=f"pid {pid} to exit")
    finally:
        if service.poll() is None:
            service.kill()
            service.wait(10)
        service.stdout.close()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
