"""ExaBGP's own log, as the supervisor configures it: session events, no line per UPDATE."""

from __future__ import annotations

from pathlib import Path

import pytest

from ribd.exabgp import render_env
from ribd.settings import BgpSettings
from ribd.speaker import BgpTestbed, Route, wait_until

V4 = "ipv4 unicast"


def test_rendered_env_keeps_info_but_not_the_per_update_statistics() -> None:
    env = render_env(BgpSettings(local_as=65000, router_id="127.0.0.1"))
    assert env["exabgp.log.level"] == "INFO"
    assert env["exabgp.log.statistics"] == "false"


@pytest.mark.bgp
def test_exabgp_logs_the_session_events_but_not_a_line_per_update(testbed) -> None:
    """Before, ExaBGP wrote a 'statistics for ... receive-update' line per
    UPDATE at INFO: most of its log, and ~17% of its CPU for a table."""
    bed: BgpTestbed = testbed()
    routes = [Route(f"10.{i}.0.0/16", "127.0.0.2", as_path=(65001, 64500 + i)) for i in range(40)]
    speaker = bed.speaker(routes=routes)
    wait_until(
        lambda: (
            (r := bed.rib.routers.get("127.0.0.2")) is not None and r.families[V4].prefixes == 40
        ),
        60,
        what="the routes",
    )
    speaker.teardown()
    log_path = Path(bed.work_dir) / "exabgp.log"
    wait_until(lambda: "closing connection" in log_path.read_text(), 30, what="the session close")
    text = log_path.read_text()
    assert "connected to" in text
    assert "statistics" not in text
