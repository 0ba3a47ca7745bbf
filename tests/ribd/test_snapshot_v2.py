"""Snapshot format 2 (shared cores, numpy columns): hostile files refused with the fault
named, the RIB left empty; loaded sets shared and found by the interner as ingest's are."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pytest

from ribd.attributes import AS_SEQUENCE, SCAN_VARIANTS, attribute_row, make_attributes
from ribd.rib import Rib
from ribd.snapshot import MAGIC, SnapshotError, load_snapshot, write_snapshot
from ribd.snapshot_format import pack, unpack
from tests.ribd.test_snapshot import Clock, announce, assert_empty, routes, sample_rib, session

V4 = "ipv4 unicast"
V6 = "ipv6 unicast"


class Parts:
    """A format 2 file taken apart: header, meta line, arrays (writable copies)."""

    def __init__(self, path: Path) -> None:
        self.header, raw = unpack(path.read_bytes())
        meta, blob = raw.split(b"\n", 1)
        self.meta = orjson.loads(meta)
        self.arrays = {
            name: np.frombuffer(blob, dtype=d, count=int(np.prod(shape)), offset=o)
            .reshape(shape)
            .copy()
            for name, (d, shape, o) in self.meta["arrays"].items()
        }

    def write(self, path: Path, specs: Callable[[dict], None] | None = None) -> None:
        """Lay the arrays out again, let ``specs`` edit their descriptions, re-checksum."""
        layout, blobs, offset = {}, [], 0
        for name, arr in self.arrays.items():
            layout[name] = [arr.dtype.str, list(arr.shape), offset]
            blobs.append(arr.tobytes())
            offset += arr.nbytes
        if specs:
            specs(layout)
        raw = orjson.dumps(self.meta | {"arrays": layout}) + b"\n" + b"".join(blobs)
        counts = {k: self.header[k] for k in ("routers", "attribute_sets", "prefixes", "paths")}
        path.write_bytes(pack(raw, version=2, created=self.header["created"], counts=counts))

    def index_of(self, table: str, value: str) -> int:
        return self.meta[table].index(value)


def written(tmp_path: Path, name: str = "rib.snapshot") -> Path:
    path = tmp_path / name
    write_snapshot(sample_rib(), path)
    assert b'"version":2' in path.read_bytes().split(b"\n", 1)[0]
    return path


def _set(name: str, row: int, value: int) -> Callable[[Parts], None]:
    def edit(p: Parts) -> None:
        p.arrays[name][row] = value

    return edit


def _retype(name: str, dtype: str) -> Callable[[Parts], None]:
    def edit(p: Parts) -> None:
        p.arrays[name] = p.arrays[name].astype(dtype)

    return edit


def _drop_last(name: str) -> Callable[[Parts], None]:
    def edit(p: Parts) -> None:
        p.arrays[name] = p.arrays[name][:-1]

    return edit


def _hop(value: str) -> Callable[[Parts], None]:
    def edit(p: Parts) -> None:
        p.meta["addresses"][int(p.arrays["set_next_hop"][0])] = value

    return edit


def _key(row: int, key: bytes | None = None, *, copy_from: int | None = None):
    def edit(p: Parts) -> None:
        keys = p.arrays[f"{V4}/keys"]
        keys[row] = keys[copy_from] if copy_from is not None else np.frombuffer(key, np.uint8)

    return edit


def _swap_keys(p: Parts) -> None:
    keys = p.arrays[f"{V4}/keys"]
    keys[[0, 1]] = keys[[1, 0]]


def _no_route(p: Parts) -> None:
    p.arrays["entries"][0, :] = -1


def _same_path_id(p: Parts) -> None:
    bounds = p.arrays["pathset_paths"]
    k = next(k for k in range(len(bounds) - 1) if bounds[k + 1] - bounds[k] > 1)
    p.arrays["path_ids"][bounds[k] + 1] = p.arrays["path_ids"][bounds[k]]


def _entries_for_two_routers(p: Parts) -> None:
    p.arrays["entries"] = p.arrays["entries"][:, :2].copy()


HOSTILE: dict[str, tuple[Callable[[Parts], None], str]] = {
    "core index out of range": (
        lambda p: _set("set_core", 0, len(p.arrays["core_path"]))(p),
        r"array set_core, row 0: index \d+ is not a row of core_path",
    ),
    "path index out of range": (
        lambda p: _set("core_path", 1, 10**6)(p),
        r"array core_path, row 1: index 1000000 is not a row of path_segments",
    ),
    "set index out of range in an entry": (
        lambda p: _set("entries", 0, len(p.arrays["set_core"]))(p),
        r"entry #0, router #0: \d+ is not a set",
    ),
    "ADD-PATH index out of range in an entry": (
        lambda p: _set("entries", 0, -1000)(p),
        r"entry #0, router #0: -1000 is not a set",
    ),
    "entry index out of range": (
        _set(f"{V6}/entries", 0, 10**6),
        rf"array {V6}/entries, row 0: index 1000000 is not a row of entries",
    ),
    "cluster index out of range": (
        lambda p: _set("address_items", 0, len(p.meta["addresses"]))(p),
        r"array address_items, row 0: index \d+ is not a row of addresses",
    ),
    "wrong dtype": (_retype("asns", "<u8"), r"array asns: dtype '<u8' is not <u4"),
    "entries as i8": (_retype("entries", "<i8"), r"array entries: dtype '<i8' is not <i4"),
    "big-endian columns": (_retype("set_core", ">u4"), r"array set_core: dtype '>u4' is not <u4"),
    "set columns of different lengths": (
        _drop_last("set_next_hop"),
        "columns of one table differ in length",
    ),
    "prefixes and entry indexes of different lengths": (
        _drop_last(f"{V4}/entries"),
        rf"{V4}: \d+ prefixes but \d+ entry indexes",
    ),
    "offsets past the items": (_drop_last("asns"), "segment_asns: offsets do not run from 0"),
    "empty AS path segment": (
        lambda p: _set("segment_asns", 1, p.arrays["segment_asns"][0])(p),
        r"array segment_asns: row 0 is empty",
    ),
    "segment type 5": (_set("segment_types", 0, 5), "segment_types, row 0: 5 is not 1-4"),
    "local_pref below -1": (_set("set_local_pref", 0, -2), "set_local_pref, row 0: -2 is not"),
    "MED above 2**32-1": (_set("core_med", 0, 2**32), "core_med, row 0: 4294967296 is not"),
    "origin 3": (_set("core_origin", 0, 3), "core_origin, row 0: index 3 is not a row of origins"),
    "atomic_aggregate 2": (_set("core_atomic", 0, 2), "index 2 is not a row of booleans"),
    "entry with no route": (_no_route, "entry #0 has no route"),
    "entries for fewer routers": (_entries_for_two_routers, "entries have 2 columns for 3"),
    "path id twice in an ADD-PATH set": (_same_path_id, "a path id appears twice"),
    "next hop not an address": (_hop("hop"), r"\(a next hop\) is not an IP address: 'hop'"),
    "originator id not an IPv4 address": (
        lambda p: p.meta["addresses"].__setitem__(p.index_of("addresses", "10.0.0.1"), "2001::1"),
        r"\(an originator id\) is not an IPv4 address",
    ),
    "cluster id not an IPv4 address": (
        lambda p: p.meta["addresses"].__setitem__(p.index_of("addresses", "10.0.0.3"), "c3"),
        r"\(a cluster id\) is not an IPv4 address: 'c3'",
    ),
    "aggregator too long": (
        lambda p: p.meta["texts"].__setitem__(p.index_of("texts", "64500:10.0.0.9"), "x" * 300),
        r"\(an aggregator\) is longer than 256",
    ),
    "a string that is a number": (
        lambda p: p.meta["addresses"].__setitem__(0, 7),
        "'addresses' is not a list of strings",
    ),
    "prefix with host bits": (_key(0, bytes([10, 0, 0, 1, 9])), "'10.0.0.1/8': host bits set"),
    "prefix length 33": (_key(0, bytes([10, 0, 0, 0, 35])), "bad length byte 35"),
    "prefix twice": (_key(1, copy_from=0), "appears twice"),
    "prefixes out of order": (_swap_keys, "is out of order"),
    "unknown family": (
        lambda p: p.meta["families"].append("ipv4 flow"),
        "are not distinct known families",
    ),
    "an array missing": (lambda p: p.arrays.pop("core_med"), r"missing \['core_med'\]"),
    "meta fields": (lambda p: p.meta.pop("texts"), "meta line fields"),
    "routers not a list": (lambda p: p.meta.__setitem__("routers", "R1"), "'routers' is not"),
    "lying set count": (
        lambda p: p.header.__setitem__("attribute_sets", p.header["attribute_sets"] + 1),
        "header counts",
    ),
}


def _grow(name: str, rows: int) -> Callable[[dict], None]:
    def edit(specs: dict) -> None:
        specs[name][1][0] += rows

    return edit


SPECS: dict[str, tuple[Callable[[dict], None], str]] = {
    "shape past the end": (_grow("set_core", 10**6), r"array set_core: 4\d+ bytes at offset"),
    "shape of 2**40 rows": (_grow("asns", 2**40), r"array asns: shape .* is not 1 sizes"),
    "negative offset": (
        lambda s: s["asns"].__setitem__(2, -8),
        r"array asns: \d+ bytes at offset -8 do not fit",
    ),
    "offset not a number": (
        lambda s: s["asns"].__setitem__(2, "0"),
        r"array asns: \d+ bytes at offset '0' do not fit",
    ),
    "keys of 4 bytes": (
        lambda s: s[f"{V4}/keys"][1].__setitem__(1, 4),
        rf"array {V4}/keys: rows of 4, not 5",
    ),
    "spec not a list": (lambda s: s.__setitem__("asns", "x"), "array asns: 'x' is not"),
}


def _refused(path: Path, message: str) -> None:
    rib = Rib(clock=Clock())
    with pytest.raises(SnapshotError, match=message) as err:
        load_snapshot(rib, path, hold_time=60)
    assert str(path) in str(err.value) and len(str(err.value)) < 600
    assert_empty(rib)
    assert gc.isenabled()


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_format_2_body_is_refused_naming_the_fault(tmp_path: Path, case: str) -> None:
    path = written(tmp_path)
    parts = Parts(path)
    parts.write(path)  # laid out again, untouched: still loads
    load_snapshot(Rib(clock=Clock()), path, hold_time=60)
    edit, message = HOSTILE[case]
    edit(parts)
    parts.write(path)
    _refused(path, message)


@pytest.mark.parametrize("case", sorted(SPECS))
def test_array_descriptions_that_do_not_fit_the_body_are_refused(tmp_path: Path, case: str) -> None:
    path = written(tmp_path)
    edit, message = SPECS[case]
    Parts(path).write(path, specs=edit)
    _refused(path, message)


ENVELOPE = {
    "truncated": (lambda d: d[:-100], "truncated: body has"),
    "truncated to the header": (lambda d: d[: d.index(b"\n") + 1], "truncated: body has 0"),
    "bad magic": (lambda d: b"RIBD" + d[4:], "bad magic"),
    "version 3": (
        lambda d: d.replace(b'"version":2', b'"version":3', 1),
        "format version 3 is not supported",
    ),
    "version 1 with a format 2 body": (
        lambda d: d.replace(b'"version":2', b'"version":1', 1),
        "body is not JSON",
    ),
}


@pytest.mark.parametrize("case", sorted(ENVELOPE))
def test_a_truncated_or_mislabelled_format_2_file_is_refused(tmp_path: Path, case: str) -> None:
    path = written(tmp_path)
    damage, message = ENVELOPE[case]
    path.write_bytes(damage(path.read_bytes()))
    _refused(path, message)


def test_a_format_2_body_cut_short_inside_the_arrays_is_refused(tmp_path: Path) -> None:
    """Consistent header and checksum, but the arrays end early (a writer killed half way
    would leave no such file; a crafted one may)."""
    path = written(tmp_path)
    header, raw = unpack(path.read_bytes())
    counts = {k: header[k] for k in ("routers", "attribute_sets", "prefixes", "paths")}
    path.write_bytes(pack(raw[:-64], version=2, created=header["created"], counts=counts))
    _refused(path, "do not fit in the")


def test_a_core_shared_by_routers_is_one_object_and_ingest_finds_the_loaded_sets(
    tmp_path: Path,
) -> None:
    """The loader holds cores and sets where ``intern`` looks: a set announced again after
    the restart is the loaded object, and routers' sets share one core."""
    rib = Rib(clock=Clock())
    for k in (1, 2, 3):
        session(rib, f"192.0.2.{k}", "up", peer_as=64500)
        attrs = make_attributes(
            ((AS_SEQUENCE, (64500, 3356, 15169)),), next_hop=f"198.51.100.{k}", local_pref=100 + k
        )
        announce(rib, f"192.0.2.{k}", ["8.8.8.0/24", "8.8.4.0/24"], rib.interner.add(attrs))
    path = tmp_path / "rib.snapshot"
    write_snapshot(rib, path)
    loaded = Rib(clock=Clock())
    load_snapshot(loaded, path, hold_time=60)
    sets = [loaded.lookup(f"192.0.2.{k}", V4, "8.8.8.8").attributes for k in (1, 2, 3)]
    assert len({id(a.core) for a in sets}) == 1 and loaded.interner.cores() == 1
    for a in sets:
        assert loaded.interner.intern(attribute_row(a)) is a
        assert loaded.interner.find(attribute_row(a)) is a
    assert len(loaded.interner) == 3


def test_more_sets_on_one_core_than_a_scan_takes_round_trip(tmp_path: Path) -> None:
    """Past SCAN_VARIANTS sets on one core the interner keys them by digest: the loader
    does the same, so each is found again and none is held twice."""
    rib = Rib(clock=Clock())
    session(rib, "192.0.2.1", "up", peer_as=64500)
    n = SCAN_VARIANTS + 20
    for i in range(n):
        attrs = make_attributes(((AS_SEQUENCE, (64500, 1)),), next_hop="192.0.2.9", local_pref=i)
        announce(rib, "192.0.2.1", [f"10.{i >> 8}.{i & 255}.0/24"], rib.interner.add(attrs))
    path = tmp_path / "rib.snapshot"
    write_snapshot(rib, path)
    loaded = Rib(clock=Clock())
    load_snapshot(loaded, path, hold_time=60)
    assert routes(loaded) == routes(rib)
    assert len(loaded.interner) == n and loaded.interner.cores() == 1
    for m in loaded.routes("192.0.2.1", V4):
        assert loaded.interner.intern(attribute_row(m.attributes)) is m.attributes


@pytest.mark.parametrize("where", ["last", "first"])
def test_equal_sets_written_as_two_rows_load_as_one(tmp_path: Path, where: str) -> None:
    want = Rib(clock=Clock())
    distinct = load_snapshot(want, written(tmp_path, "untouched.snapshot"), hold_time=60)
    path = written(tmp_path)
    parts = Parts(path)
    a = parts.arrays
    if where == "last":  # set #last == set #0, the entries of set #0 on it
        for name in [n for n in a if n.startswith("set_")]:
            a[name] = np.concatenate([a[name], a[name][:1]])
        last = len(a["set_core"]) - 1
        a["entries"][a["entries"] == 0] = last
    else:  # a copy of set #0 first, every set one further: the rows the loader keeps
        # are not a prefix of the file's (set #1 dropped, equal to #0)
        for name in [n for n in a if n.startswith("set_")]:
            a[name] = np.concatenate([a[name][:1], a[name]])
        last = len(a["set_core"]) - 1
        a["entries"][a["entries"] >= 0] += 1
        a["path_sets"] = a["path_sets"] + 1
    parts.header["attribute_sets"] += 1
    parts.write(path)
    rib = Rib(clock=Clock())
    info = load_snapshot(rib, path, hold_time=60)
    assert info.attribute_sets == distinct.attribute_sets < last  # distinct sets after loading
    assert routes(rib) == routes(want)


def test_format_2_is_written_by_default_and_an_unknown_version_not_at_all(
    tmp_path: Path,
) -> None:
    rib = sample_rib()
    path = tmp_path / "rib.snapshot"
    write_snapshot(rib, path)
    assert path.read_bytes().startswith(MAGIC + b'{"version":2,')
    with pytest.raises(ValueError, match="version 7"):
        write_snapshot(rib, tmp_path / "v7", version=7)


def test_a_family_left_out_of_the_file_loads_empty_with_every_routers_slot(
    tmp_path: Path,
) -> None:
    """A new router after the load gets a slot of its own in that family too (the
    table's slots are the loaded routers' even when the file had no prefix there)."""
    path = written(tmp_path)
    parts = Parts(path)
    parts.meta["families"].remove(V6)
    for name in (f"{V6}/keys", f"{V6}/entries"):
        del parts.arrays[name]
    v6_paths = sum(
        fs.paths for r in sample_rib().routers.values() for f, fs in r.families.items() if f == V6
    )
    parts.header["prefixes"][V6] = 0
    parts.header["paths"] -= v6_paths
    parts.write(path)
    rib = Rib(clock=Clock())
    load_snapshot(rib, path, hold_time=60)
    assert not list(rib.routes("192.0.2.1", V6))
    session(rib, "192.0.2.99", "up", peer_as=64999)
    announce(
        rib,
        "192.0.2.99",
        ["2001:db8:99::/48"],
        make_attributes((), next_hop="2001:db8::9"),
        family=V6,
    )
    assert rib.routers["192.0.2.99"].families[V6].slot == 3
    assert not list(rib.routes("192.0.2.1", V6))
    assert len(list(rib.routes("192.0.2.99", V6))) == 1


def test_a_service_refuses_a_hostile_format_2_snapshot_starts_empty_and_takes_routes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.ribd.test_service_neighbors import assert_refused_then_serving, one_route_snapshot

    snapshot = one_route_snapshot(tmp_path)
    parts = Parts(snapshot)
    parts.arrays["set_core"][0] = 10**6
    parts.write(snapshot)
    assert_refused_then_serving(tmp_path, caplog, snapshot, "set_core, row 0")
