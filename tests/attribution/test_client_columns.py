"""client.columns_request against a real server: every column the records carry reaches it."""

from __future__ import annotations

import pytest

from attribution.client import columns_request, resolve_dicts
from attribution.grpc_service import AttributionServicer, ReloadResult, start_server
from attribution.resolver import Resolver
from tests.attribution.helpers import CONFIG, build_world

PORT_ZERO = (
    CONFIG
    + """
[[overrides]]
name = "port-zero"
exporter = "127.0.1.1"
in_if = 0
peer_as = 65030
"""
)


@pytest.fixture
def target():
    rib, config = build_world(PORT_ZERO)
    resolver = Resolver(rib, config, max_batch_flows=1000)
    servicer = AttributionServicer(rib, resolver, lambda: config, lambda: ReloadResult(ok=True))
    server, port = start_server(servicer, "127.0.0.1:0", 4 * 1024 * 1024)
    yield f"127.0.0.1:{port}"
    server.stop(grace=None)


def test_an_all_zero_in_if_column_is_sent():
    flows = [
        {"exporter": "127.0.1.1", "src_addr": "172.16.0.1", "dst_addr": "10.1.2.3", "in_if": 0},
        {"exporter": "127.0.1.1", "src_addr": "172.16.0.2", "dst_addr": "10.1.2.4", "in_if": 0},
    ]
    request, bad, good = columns_request(flows)
    assert (bad, good) == ({}, [0, 1])
    assert list(request.columns.in_if) == [0, 0]


def test_resolve_applies_an_override_on_ifindex_zero(target):
    flows = [
        {"exporter": "127.0.1.1", "src_addr": "172.16.0.1", "dst_addr": "10.1.2.3", "in_if": 0},
        {"exporter": "127.0.1.1", "src_addr": "172.16.0.2", "dst_addr": "10.1.2.4", "in_if": 0},
    ]
    got = list(resolve_dicts(target, flows))
    assert [a["override"] for a in got] == ["port-zero", "port-zero"]
    assert [a["src_peer_as"] for a in got] == [65030, 65030]
    # and a flow on another port is not overridden by it
    other = dict(flows[0], in_if=7)
    (answer,) = resolve_dicts(target, [other])
    assert answer["override"] is None
