"""A metrics address that cannot be bound stops the start with a clear error."""

from __future__ import annotations

import socket

from tests.attribution.observed import ServedProcess, router_block


def test_metrics_address_in_use_is_a_clear_error_not_a_traceback():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        svc = ServedProcess(
            router_block("edge1", "127.0.0.2", "127.0.1.1"), log_args=(), metrics_port=port
        )
        try:
            code = svc.proc.wait(60)
        finally:
            svc.stop()
    out = svc.log_text()
    assert code == 2, out
    assert f"metrics.listen: cannot listen on 127.0.0.1:{port}: Address already in use" in out
    assert "Traceback" not in out
    assert "ExaBGP started" not in out  # refused before anything else started
