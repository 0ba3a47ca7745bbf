"""Flow records as real collectors write them, made in bulk for the enrich benchmark.

goflow2's JSON lines (``-format json``, the fields ``attribution enrich`` reads,
or every field it prints) over a synthetic table of /24s under 10.0.0.0/8, and
the same flows as pmacct's print plugin and nfdump (``-o json`` and
``-o json-log``) write them. Deterministic for a seed, so two trees in one
sitting read the same bytes.
"""

from __future__ import annotations

import json
import time

import numpy as np

EXPORTER = "127.0.1.1"


# goflow2's other fields, as its -format json prints them (tests/attribution/data/enrich)
GOFLOW2_REST = {
    "src_vlan": 0,
    "dst_vlan": 0,
    "vlan_id": 0,
    "ip_tos": 0,
    "forwarding_status": 0,
    "ip_ttl": 64,
    "ip_flags": 0,
    "tcp_flags": 16,
    "icmp_type": 0,
    "icmp_code": 0,
    "ipv6_flow_label": 0,
    "fragment_id": 0,
    "fragment_offset": 0,
    "src_as": 0,
    "dst_as": 0,
    "next_hop_as": 0,
    "src_net": "0.0.0.0/0",
    "dst_net": "0.0.0.0/0",
    "bgp_communities": [],
    "mpls_ttl": [],
    "mpls_label": [],
    "mpls_ip": [],
    "observation_domain_id": 0,
    "observation_point_id": 0,
}


def goflow2_lines(
    n: int, prefixes: int, seed: int = 7, full: bool = False, now: int | None = None
) -> list[bytes]:
    """``now``: the flows end then (unix seconds; default an hour ago), within
    the stores' TTLs: a chdb store drops rows older than ``ttl_days`` (30) as it
    inserts them, so flows of 2023 (the first passes') were never stored."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, prefixes, size=(n, 2))
    host = rng.integers(1, 255, size=(n, 2))
    end_ns = (int(time.time()) - 3600 if now is None else now) * 10**9
    out = []
    for k in range(n):
        s, d = idx[k]
        rec = {
            "type": "IPFIX",
            "time_received_ns": end_ns + k,
            "sequence_num": k,
            "sampling_rate": 1000,
            "sampler_address": EXPORTER,
            "time_flow_start_ns": end_ns - 10**10,
            "time_flow_end_ns": end_ns + k,
            "bytes": 1500,
            "packets": 1,
            "src_addr": f"10.{(s >> 8) & 255}.{s & 255}.{host[k, 0]}",
            "dst_addr": f"10.{(d >> 8) & 255}.{d & 255}.{host[k, 1]}",
            "etype": "IPv4",
            "proto": "TCP",
            "src_port": 443,
            "dst_port": 50000 + k % 1000,
            "in_if": 10 + k % 4,
            "out_if": 20,
            "src_mac": "0c:00:00:00:00:01",
            "dst_mac": "0c:00:00:00:00:02",
            "next_hop": "",
            "bgp_next_hop": "",
            "as_path": [],
        }
        if full:  # every field goflow2 prints (~870 bytes), not the ones read (~470)
            rec.update(GOFLOW2_REST)
        out.append(json.dumps(rec, separators=(",", ":")).encode())
    return out


def as_pmacct(line: bytes) -> bytes:
    r = json.loads(line)
    return json.dumps(
        {
            "event_type": "purge",
            "peer_ip_src": r["sampler_address"],
            "iface_in": r["in_if"],
            "iface_out": r["out_if"],
            "ip_src": r["src_addr"],
            "ip_dst": r["dst_addr"],
            "mac_src": r["src_mac"],
            "timestamp_end": "2023-11-14 22:14:20.000000",
            "packets": r["packets"],
            "bytes": r["bytes"],
        }
    ).encode()


def as_nfdump(line: bytes) -> bytes:
    r = json.loads(line)
    return json.dumps(
        {
            "type": "FLOW",
            "sampled": 0,
            "export_sysid": 1,
            "last": "2023-11-14T22:14:20.456",
            "in_packets": r["packets"],
            "in_bytes": r["bytes"],
            "src4_addr": r["src_addr"],
            "dst4_addr": r["dst_addr"],
            "input_snmp": r["in_if"],
            "output_snmp": r["out_if"],
            "in_src_mac": r["src_mac"],
            "ip4_router": r["sampler_address"],
        }
    ).encode()


def as_nfdump_log(line: bytes) -> bytes:
    """:func:`as_nfdump` as ``nfdump -o json-log`` prints it: ``"key" : value``,
    a comma after the last member (tests/attribution/data/enrich/nfdump-log.jsonl)."""
    r = json.loads(as_nfdump(line))
    members = ",".join(f"{json.dumps(k)} : {json.dumps(v)}" for k, v in r.items())
    return ("{" + members + ",}").encode()
