"""Snapshots: hostile files are refused with a SnapshotError naming the fault; every RIB the
parser can build is written in a form the loader takes back."""

from __future__ import annotations

import contextlib
import random
import zlib
from hashlib import blake2b
from pathlib import Path

import orjson
import pytest

from ribd.parser import ExabgpParser, FeedError
from ribd.rib import Rib
from ribd.snapshot import MAGIC, SnapshotError, _pack, _unpack, load_snapshot, write_snapshot
from tests.ribd.test_snapshot import Clock, assert_empty, routes, sample_rib

V4 = "ipv4 unicast"
V6 = "ipv6 unicast"


DEEP = "DEEP"  # stands for a nested list in a document; see pack_deep
NESTED = b"[" * 1000 + b"]" * 1000  # orjson decodes up to 1024 levels (and encodes 254)


def pack_deep(doc: dict, header: dict) -> bytes:
    """``_pack`` with every "DEEP" string in ``doc`` replaced by a list 1000 deep
    (``header``: the original one, its checksum and lengths redone)."""
    raw = orjson.dumps(doc).replace(b'"DEEP"', NESTED)
    body = zlib.compress(raw)
    header = header | {
        "raw_bytes": len(raw),
        "body_bytes": len(body),
        "blake2b": blake2b(body, digest_size=32).hexdigest(),
    }
    return MAGIC + orjson.dumps(header) + b"\n" + body


def positions(doc: dict) -> dict[str, tuple]:
    """Named places in a snapshot body: (container, key) pairs a hostile file may fill."""
    a0 = doc["attributes"][0]
    r0 = doc["routers"][0]
    out: dict[str, tuple] = {
        "attribute_fields": (doc, "attribute_fields"),
        "a field name": (doc["attribute_fields"], 0),
        "attribute row": (doc["attributes"], 0),
        "router": (doc["routers"], 0),
        "entry": (doc["entries"], 0),
        "entry value": (doc["entries"][0], 0),
        "families": (doc, "families"),
        "v4 family": (doc["families"], V4),
        "v4 prefix": (doc["families"][V4]["prefixes"], 0),
        "v4 entry index": (doc["families"][V4]["entries"], 0),
        "as_path segment": (a0[0], 0),
    }
    for i in range(len(a0)):
        out[f"attribute column {i}"] = (a0, i)
    for key in ROUTER_KEYS:
        out[f"router {key}"] = (r0, key)
    return out


def written(tmp_path: Path) -> Path:
    """A format 1 snapshot (a JSON body these cases edit)."""
    path = tmp_path / "rib.snapshot"
    write_snapshot(sample_rib(), path, version=1)
    return path


ROUTER_KEYS = ("neighbor", "name", "peer_as", "router_id", "last_update", "session", "stale")
PLACES = [
    *("attribute_fields", "a field name", "attribute row", "router", "entry", "entry value"),
    *("families", "v4 family", "v4 prefix", "v4 entry index", "as_path segment"),
    *(f"attribute column {i}" for i in range(12)),
    *(f"router {key}" for key in ROUTER_KEYS),
]


@pytest.mark.parametrize("place", PLACES)
def test_deep_nesting_anywhere_in_the_body_is_a_snapshot_error(tmp_path: Path, place: str) -> None:
    path = written(tmp_path)
    header, doc = _unpack(path.read_bytes())
    container, key = positions(doc)[place]
    container[key] = DEEP
    path.write_bytes(pack_deep(doc, header))  # re-checksummed
    rib = Rib(clock=Clock())
    with pytest.raises(SnapshotError) as err:
        load_snapshot(rib, path, hold_time=60)
    assert str(path) in str(err.value) and len(str(err.value)) < 600
    assert_empty(rib)


@pytest.mark.parametrize("field", ["created", "paths", "prefixes", "routers", "blake2b"])
def test_deep_nesting_in_the_header_is_a_snapshot_error(tmp_path: Path, field: str) -> None:
    path = written(tmp_path)
    data = path.read_bytes()
    end = data.index(b"\n")
    header = orjson.loads(data[len(MAGIC) : end]) | {field: DEEP}
    path.write_bytes(MAGIC + orjson.dumps(header).replace(b'"DEEP"', NESTED) + data[end:])
    rib = Rib(clock=Clock())
    with pytest.raises(SnapshotError):
        load_snapshot(rib, path, hold_time=60)
    assert_empty(rib)


ODD_VALUES = {
    "router peer_as -1": ("routers", "peer_as", -1, "peer_as"),
    "router last_update -1": ("routers", "last_update", -1.0, "last_update"),
    "router last_update past year 9999": ("routers", "last_update", 1e300, "last_update"),
    "router id of 300 chars": ("routers", "router_id", "1" * 300, "router_id"),
    "router id not an address": ("routers", "router_id", "r1", "router_id"),
    "neighbor not an address": ("routers", "neighbor", "edge-1", "neighbor"),
    "next hop not an address": ("attributes", 2, "hop", "next_hop"),
    "originator id not an address": ("attributes", 8, "orig", "originator_id"),
    "cluster id not an address": ("attributes", 9, ["c1"], "cluster_list"),
}


@pytest.mark.parametrize("case", sorted(ODD_VALUES))
def test_values_the_parser_refuses_are_refused_on_load(tmp_path: Path, case: str) -> None:
    where, key, value, named = ODD_VALUES[case]
    path = written(tmp_path)
    header, doc = _unpack(path.read_bytes())
    doc[where][0][key] = value
    path.write_bytes(_pack(doc, created=header["created"], paths=header["paths"]))
    with pytest.raises(SnapshotError, match=named):
        load_snapshot(Rib(clock=Clock()), path, hold_time=60)


# -- writer and loader agree -----------------------------------------------------------------


def random_line(rng: random.Random, peers: list[str]) -> bytes:
    """A line a real (if unusual) ExaBGP could send: edge values everywhere."""
    peer = rng.choice(peers)
    u32 = lambda: rng.choice([0, 1, 65535, 2**31, 2**32 - 1, rng.randrange(2**32)])  # noqa: E731
    n = {"address": {"local": "127.0.0.1", "peer": peer}, "asn": {"local": 1, "peer": u32()}}
    kind = rng.random()
    if kind < 0.15:
        state = rng.choice(["connected", "up", "up", "down"])
        n |= {"state": state, "router-id": rng.choice(["0.0.0.0", "255.255.255.255", "10.1.2.3"])}
        if state == "down":
            n["reason"] = "x" * rng.choice([0, 10, 600])
        return orjson.dumps({"type": "state", "time": rng.random() * 2e9, "neighbor": n})
    if kind < 0.2:
        family = rng.choice([("ipv4", "unicast"), ("ipv6", "unicast")])
        n["message"] = {"eor": {"afi": family[0], "safi": family[1]}}
        return orjson.dumps({"type": "update", "neighbor": n})
    v6 = rng.random() < 0.3
    family = V6 if v6 else V4
    if v6:
        prefixes = [f"2001:db8:{rng.randrange(65536):x}::/48" for _ in range(rng.randint(1, 5))]
        prefixes += rng.choice([[], ["::/0"], ["2001:db8::1/128"]])
        hop = rng.choice(["2001:db8::1", "::ffff:10.0.0.1", "2001:DB8::A"])
    else:
        prefixes = [f"10.{rng.randrange(256)}.{rng.randrange(256)}.0/24" for _ in range(3)]
        prefixes += rng.choice([[], ["0.0.0.0/0"], ["192.0.2.255/32"]])
        hop = rng.choice(["192.0.2.1", "0.0.0.0", "255.255.255.255", "2001:db8::1"])
    add_path = rng.random() < 0.3
    nlri = [{"nlri": p, **({"path-information": u32()} if add_path else {})} for p in set(prefixes)]
    attrs: dict = {"origin": rng.choice(["igp", "egp", "incomplete"])}
    if rng.random() < 0.8:
        attrs["as-path"] = {
            str(i): {
                "element": rng.choice(["as-sequence", "as-set", "as-confed-sequence"]),
                "value": [u32() for _ in range(rng.randint(1, 4))],
            }
            for i in range(rng.randint(1, 3))
        }
    for key, make in (
        ("local-preference", u32),
        ("med", u32),
        ("community", lambda: [[rng.randrange(65536), 65535] for _ in range(2)]),
        ("large-community", lambda: [[u32(), u32(), u32()]]),
        ("extended-community", lambda: [{"value": 2**63 - 1, "string": "target:1:1" * 40}]),
        ("originator-id", lambda: rng.choice(["0.0.0.0", "10.0.0.1"])),
        ("cluster-list", lambda: ["10.0.0.2", "255.255.255.255"]),
        ("atomic-aggregate", lambda: True),
        ("aggregator", lambda: "4294967295:255.255.255.255" + "x" * rng.choice([0, 200])),
    ):
        if rng.random() < 0.4:
            attrs[key] = make()
    update: dict = {"attribute": attrs, "announce": {family: {hop: nlri}}}
    if rng.random() < 0.3:
        update["withdraw"] = {family: nlri[:1]}
    n["message"] = {"update": update}
    stamp = rng.choice([0, 1.5, 253402300799])
    return orjson.dumps({"type": "update", "time": stamp, "neighbor": n})


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("seed", range(8))
def test_any_rib_the_parser_builds_is_written_so_that_it_loads(
    tmp_path: Path, seed: int, version: int
) -> None:
    rng = random.Random(seed)
    peers = ["192.0.2.1", "2001:db8::2", "10.255.255.254"]
    rib = Rib(clock=Clock(), router_names={"192.0.2.1": "a name " * 50})
    parser = ExabgpParser(rib.interner)
    for _ in range(300):
        with contextlib.suppress(FeedError):  # refused: nothing reached the RIB
            rib.apply_many(parser.parse(random_line(rng, peers)))
    path = tmp_path / "rib.snapshot"
    write_snapshot(rib, path, version=version)
    restored = Rib(clock=Clock())
    load_snapshot(restored, path, hold_time=60)
    assert set(restored.routers) == set(rib.routers)
    for n, r in rib.routers.items():
        got = restored.routers[n]
        assert (got.peer_as, got.router_id) == (r.peer_as, r.router_id)
        assert got.last_update == r.last_update
    assert routes(restored).keys() == routes(rib).keys()
