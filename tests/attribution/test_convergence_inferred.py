"""Peers that never send End-of-RIB, and routers that never come up, over real BGP.

The speaker ExaBGP runs with End-of-RIB off (manual-eor, never sent), as a
peer without graceful restart does (gobgpd's default). The service must call
its tables converged, marked inferred, once the peer has been quiet for
``converge_quiet_time``; a second configured router never connects, and
``ready_timeout`` stops it from holding gRPC health at NOT_SERVING.
"""

from __future__ import annotations

import pytest

from attribution.v1 import attribution_pb2 as pb
from attribution.v1 import attribution_pb2_grpc as pb_grpc
from ribd.speaker import Route, Speaker, wait_until
from tests.attribution.observed import SERVING, ServedProcess, metric, router_block

pytestmark = pytest.mark.bgp

ROUTES = [
    Route("198.51.100.0/24", "127.0.0.2", (64496, 15169)),
    Route("203.0.113.0/24", "127.0.0.2", (64497, 13335)),
    Route("2001:db8:1::/48", "::1", (64499, 64501)),
]


@pytest.fixture(scope="module")
def run():
    svc = ServedProcess(
        router_block("quiet", "127.0.0.2", "127.0.1.1")
        + router_block("absent", "127.0.0.3", "127.0.1.2"),
        service="ready_timeout = 5\n",
        bgp="converge_quiet_time = 2\n",
        log_args=("--log-format", "json"),
    )
    speaker = Speaker(
        peer_port=svc.bgp_port, peer_as=64500, local_as=64500, routes=ROUTES, end_of_rib=False
    )
    seen: dict = {}
    try:
        wait_until(lambda: svc.health() is not None, 60, 0.1, "gRPC up")
        speaker.start()
        speaker.wait_established(60)
        stub = pb_grpc.AttributionStub(svc.channel)

        def quiet_router():
            reply = stub.ListRouters(pb.ListRoutersRequest(), timeout=10)
            r = next(r for r in reply.routers if r.name == "quiet")
            fams = {f.family: f for f in r.families}
            done = len(fams) == 2 and all(f.converged for f in fams.values())
            return fams if done else None

        seen["families"] = wait_until(quiet_router, 60, 0.2, "inferred convergence")
        svc.wait_health(SERVING, 60)
        seen["metrics"] = svc.metrics()
        seen["end_of_rib_received"] = metric(seen["metrics"], "attribution_feed_end_of_rib_total")
    finally:
        speaker.close()
        svc.stop()
        seen["log"] = svc.log_records()
    return seen


def test_quiet_peer_without_end_of_rib_is_converged_marked_inferred(run):
    assert run["end_of_rib_received"] == 0  # the speaker really sent none
    fams = run["families"]
    assert fams["ipv4 unicast"].prefixes == 2 and fams["ipv6 unicast"].prefixes == 1
    assert all(f.converged and f.inferred for f in fams.values())
    m = run["metrics"]
    for family in ("ipv4 unicast", "ipv6 unicast"):
        labels = {"router": "quiet", "neighbor": "127.0.0.2", "family": family}
        assert metric(m, "attribution_rib_converged", **labels) == 1
        assert metric(m, "attribution_rib_converged_inferred", **labels) == 1


def test_inferred_convergence_is_logged_as_such(run):
    loaded = [r for r in run["log"] if r.get("event") == "table_loaded"]
    assert {r["family"] for r in loaded} == {"ipv4 unicast", "ipv6 unicast"}
    assert all(r["inferred"] for r in loaded)
    v4 = next(r for r in loaded if r["family"] == "ipv4 unicast")
    assert v4["prefixes"] == 2
    assert "no End-of-RIB, but quiet for 2 s: converged (inferred)" in v4["message"]


def test_ready_timeout_releases_a_router_that_never_came_up(run):
    health = [r for r in run["log"] if r.get("event") == "health"]
    serving = next(r for r in health if r["serving"])
    # (on a slow machine "quiet" may still be loading then, and be named too)
    head, _, waited = serving["reason"].partition("; not waiting any longer for ")
    assert head == "ready_timeout (5 s) passed"
    assert "absent" in waited.split(", ")
    assert not any(r["serving"] for r in health[: health.index(serving)])
    m = run["metrics"]
    absent = {"router": "absent", "neighbor": "127.0.0.3"}
    assert metric(m, "attribution_bgp_session_state", state="idle", **absent) == 1
