"""Offline attribution from an ExaBGP dump, the same answers as the service."""

from __future__ import annotations

from attribution.offline import OfflineResolver
from tests.conftest import SAMPLES, need


def test_offline_resolver_answers_from_a_captured_dump(tmp_path):
    # The capture, up to the session going down (after that the RIB is purged).
    lines = need(SAMPLES / "v5.0.15-receiver-addpath.jsonl").read_text().splitlines()
    end = next(i for i, line in enumerate(lines) if '"state": "down"' in line)
    dump = tmp_path / "dump.jsonl"
    dump.write_text("\n".join([*lines[:end], "not json at all"]) + "\n")
    offline = OfflineResolver.from_exabgp_dump(str(dump))
    assert offline.bad_lines == 1
    flows = [
        {"exporter": "127.0.0.1", "src_addr": "198.51.100.9", "dst_addr": "192.0.2.7", "x": 1},
        {"exporter": "127.0.9.9", "src_addr": "2001:db8:1::1", "dst_addr": "2001:db8:1::2"},
        {"exporter": "127.0.0.1", "src_addr": "bogus", "dst_addr": "192.0.2.7"},
    ]
    out = list(offline.resolve_dicts(flows))
    assert out[0]["x"] == 1 and out[0]["router"] == "127.0.0.1"
    assert out[0]["dst_prefix"] == "192.0.2.0/24" and out[0]["dst_origin_provenance"] == "bgp"
    assert out[1]["dst_prefix"] == "2001:db8:1::/48"
    assert out[2]["error_code"] == "bad_address"
