"""Neighbor tables, SNMP rows and PeeringDB files are hostile input: counted, never a crash."""

from __future__ import annotations

import random

import orjson

from attribution.ix_inputs import (
    IP_NET_TO_PHYSICAL_PHYS_ADDRESS,
    MAX_INPUT_BYTES,
    parse_ip_neigh_json,
    parse_neighbor_csv,
    parse_peeringdb,
    parse_snmp_rows,
)

MAC = b"\x02\x00\x00\x00\x01\x01"


def test_ip_neigh_json_keeps_good_entries_around_bad_ones():
    doc = [
        {"dst": "10.99.0.11", "lladdr": "02:00:00:00:01:01", "state": ["REACHABLE"]},
        {"dst": "10.99.0.12", "lladdr": "zz:00:00:00:01:01"},
        {"dst": "not an address", "lladdr": "02:00:00:00:01:02"},
        {"dst": "10.99.0.13", "lladdr": "ff:ff:ff:ff:ff:ff"},
        {"dst": "10.99.0.14", "state": ["FAILED"]},
        {"dst": "fe80::1%ix0", "lladdr": "02:00:00:00:01:03", "state": ["STALE"]},
        "a string",
        {"dst": 12, "lladdr": None},
    ]
    read = parse_ip_neigh_json(orjson.dumps(doc))
    assert read.macs == {"10.99.0.11": MAC, "fe80::1": b"\x02\x00\x00\x00\x01\x03"}
    assert read.bad == {"mac": 2, "address": 2, "shape": 1}
    assert len(read.errors) == 5 and any("10.99.0.13" in e for e in read.errors)


def test_unreadable_documents_are_refused_whole_with_the_reason():
    assert parse_ip_neigh_json(b"[{").bad == {"json": 1}
    assert parse_ip_neigh_json(b'{"dst": "10.0.0.1"}').bad == {"shape": 1}
    assert parse_ip_neigh_json(b" " * (MAX_INPUT_BYTES + 1)).bad == {"too_large": 1}
    assert parse_ip_neigh_json(b"[" * 100_000).bad == {"json": 1}
    assert parse_neighbor_csv(b"\xff\xfe10.0.0.1").bad == {"encoding": 1}
    assert parse_peeringdb(b'{"data": 3}').bad == {"shape": 1}


def test_csv_skips_header_comments_and_counts_short_lines():
    text = b"address,mac\n# a comment\n\n10.99.0.11, 02:00:00:00:01:01 ,ix0\n10.99.0.12\n"
    read = parse_neighbor_csv(text)
    assert read.macs == {"10.99.0.11": MAC}
    assert read.bad == {"shape": 1}


def test_one_address_with_two_macs_keeps_the_first_and_says_so():
    read = parse_neighbor_csv(b"10.99.0.11,02:00:00:00:01:01\n10.99.0.11,02:00:00:00:01:02\n")
    assert read.macs == {"10.99.0.11": MAC}
    assert read.bad == {"duplicate": 1}


def test_snmp_rows_decode_the_table_index_and_refuse_what_is_not_it():
    base = IP_NET_TO_PHYSICAL_PHYS_ADDRESS
    v6 = bytes.fromhex("20010db8009900000000000000000011")
    rows = [
        ((*base, 7, 1, 4, 10, 99, 0, 11), MAC),
        ((*base, 7, 2, 16, *v6), b"\x02\x00\x00\x00\x01\x02"),
        ((*base, 7, 1, 4, 10, 99, 0), MAC),  # length says 4, 3 bytes follow
        ((*base, 7, 1, 4, 10, 99, 0, 300), MAC),  # not a byte
        ((*base, 7, 3, 4, 10, 99, 0, 12), MAC),  # unknown address type
        ((1, 3, 6, 1, 2, 1, 1, 1, 0), b"sysDescr"),
        ((*base, 7, 1, 4, 10, 99, 0, 13), b"\x02\x00"),  # a MAC of 2 bytes
        ((*base, 7, 1, 4, 10, 99, 0, 14), 42),  # not an octet string
    ]
    read = parse_snmp_rows(rows)
    assert read.macs == {"10.99.0.11": MAC, "2001:db8:99::11": b"\x02\x00\x00\x00\x01\x02"}
    assert read.bad == {"index": 3, "oid": 1, "mac": 2}


def test_peeringdb_drops_addresses_claimed_by_two_ases():
    doc = {
        "data": [
            {"asn": 65101, "ipaddr4": "10.99.0.11", "ipaddr6": "2001:db8:99::11"},
            {"asn": 65102, "ipaddr4": "10.99.0.11", "ipaddr6": None},
            {"asn": "65103", "ipaddr4": "10.99.0.13"},
            {"asn": 0, "ipaddr4": "10.99.0.14"},
            {"asn": 65105, "ipaddr4": "999.1.1.1"},
            {"asn": True, "ipaddr4": "10.99.0.16"},
        ]
    }
    read = parse_peeringdb(orjson.dumps(doc))
    assert read.ases == {"2001:db8:99::11": 65101}
    assert read.bad == {"duplicate": 1, "asn": 3, "address": 1}


def test_random_damage_never_raises():
    rng = random.Random(14)
    good = orjson.dumps(
        [{"dst": f"10.99.0.{i}", "lladdr": f"02:00:00:00:01:{i:02x}"} for i in range(50)]
    )
    for _ in range(300):
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        for parse in (parse_ip_neigh_json, parse_neighbor_csv, parse_peeringdb):
            read = parse(bytes(data))
            assert all(len(m) == 6 for m in read.macs.values())
    base = IP_NET_TO_PHYSICAL_PHYS_ADDRESS
    for _ in range(300):
        oid = (*base, *(rng.randrange(-5, 400) for _ in range(rng.randint(0, 20))))
        value = rng.choice([b"", MAC, b"\x00" * 6, "text", None, 7, bytes(rng.randbytes(6))])
        parse_snmp_rows([(oid, value)])
