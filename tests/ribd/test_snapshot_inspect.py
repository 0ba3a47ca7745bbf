"""``snapshot_format.inspect_file`` (what `attribution check` reads) checks a file's
envelope as ``unpack`` does, in chunks: on hostile files the two agree."""

from __future__ import annotations

import random
from functools import partial

import pytest

from ribd.snapshot import write_snapshot
from ribd.snapshot_format import SnapshotError, inspect_file, unpack
from tests.attribution.helpers import build_world


def outcome(call):
    try:
        return "ok", call()
    except SnapshotError as exc:
        return "refused", str(exc)


def test_a_written_snapshot_is_inspected_as_unpack_reads_it(tmp_path):
    path = tmp_path / "rib.snapshot"
    rib, _ = build_world()
    write_snapshot(rib, path)
    header, _ = unpack(path.read_bytes())
    assert inspect_file(str(path), chunk=64) == header


@pytest.mark.parametrize("seed", range(4))
def test_on_mutated_files_inspect_refuses_what_unpack_refuses_for_the_envelope(tmp_path, seed):
    rng = random.Random(seed)
    good = tmp_path / "good.snapshot"
    rib, _ = build_world()
    write_snapshot(rib, good)
    data = good.read_bytes()
    path = tmp_path / "m.snapshot"
    for _ in range(150):
        m = bytearray(data)
        kind = rng.randrange(4)
        if kind == 0:  # flipped bytes anywhere (header included)
            for _ in range(rng.randint(1, 4)):
                m[rng.randrange(len(m))] ^= 1 << rng.randrange(8)
        elif kind == 1:
            del m[rng.randrange(len(m)) :]
        elif kind == 2:
            m += bytes(rng.randrange(256) for _ in range(rng.randint(1, 50)))
        else:
            m[: data.index(b"\n")] = rng.choice([b"", b"ribd-snapshot {}", b"x" * 5000])
        path.write_bytes(bytes(m))
        inspected = outcome(partial(inspect_file, str(path), chunk=rng.choice([7, 4096])))
        unpacked = outcome(partial(unpack, bytes(m)))
        if unpacked[0] == "ok":
            unpacked = ("ok", unpacked[1][0])  # the header
        if inspected[0] == "refused":
            assert unpacked == inspected
        elif unpacked[0] == "ok":
            assert inspected == unpacked
        else:  # the envelope holds; only inflating the body shows it is broken
            assert "decompress" in unpacked[1]
