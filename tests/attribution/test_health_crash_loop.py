"""gRPC health of a service whose ExaBGP crash-loops (its BGP port is taken).

Each ExaBGP run lasts a second or more before it gives up, so a rule that only
looked at the process would flap SERVING/NOT_SERVING. ExaBGP counts as up once
its feed relay is connected, which a run that cannot bind never gets to.
"""

from __future__ import annotations

import socket

import pytest

from ribd.speaker import wait_until
from tests.attribution.observed import NOT_SERVING, ServedProcess, metric, router_block

pytestmark = pytest.mark.bgp


def test_exabgp_that_cannot_bind_keeps_health_not_serving_through_its_restarts():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        svc = ServedProcess(
            router_block("edge1", "127.0.0.2", "127.0.1.1"),
            service="ready_timeout = 0\n",  # routers hold nothing back: only ExaBGP counts
            bgp_port=taken.getsockname()[1],
        )
        try:
            wait_until(lambda: svc.health() is not None, 60, 0.1, "gRPC up")
            wait_until(
                lambda: metric(svc.metrics(), "attribution_exabgp_restarts_total") >= 2,
                120,
                0.2,
                "two ExaBGP restarts",
            )
            status = svc.health()
        finally:
            svc.stop()
    assert status == NOT_SERVING
    health = [r for r in svc.log_records() if r.get("event") == "health"]
    assert health and not any(r["serving"] for r in health), health
    exits = [r for r in svc.log_records() if "ExaBGP exited with code 1" in r["message"]]
    assert len(exits) >= 2 and "can not bind" in svc.log_text()
