"""Fuzzing the entry points that take untrusted input: feed lines, snapshots, flow records.

Mutations of valid inputs (the real ExaBGP captures in ../shared/data when
present, built-in lines otherwise) go through the real code: the feed's
parser and a FeedServer on a Unix socket, raw UPDATEs in ExaBGP's ``packets``
lines (``bench.fuzz_raw``), ``load_snapshot`` on re-checksummed
files, and flow JSON lines through ``attribution resolve``'s reader and the
resolver's record checks; gRPC flow batches and whole ``attribution enrich``
runs over collector files are ``bench.fuzz_service``'s. An input *crashes* if
anything but the documented refusal escapes (FeedError, SnapshotError, a
per-flow error, INVALID_ARGUMENT) or an answer fails its cross-check, and
*hangs* if it takes longer than ``--hang`` seconds (an enrich run: 5x, a
whole run with its gRPC channel).

    python -m bench.fuzz --seconds 600 --seed 1 [--save DIR]

tests/test_fuzz.py runs the same generators for a few seconds in CI.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import socket
import tempfile
import time
import traceback
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from hashlib import blake2b
from pathlib import Path

import orjson

from bench.fuzz_mutate import dump, mutate_bytes, mutate_json, mutate_line
from bench.fuzz_seeds import FLOW_CONFIG, PEERS, SAMPLES, SEED_FLOWS, SEED_LINES, seed_lines
from ribd.feed import CONTROL_PREFIX
from ribd.parser import ExabgpParser, FeedError
from ribd.prefix_limit import PrefixLimits
from ribd.rib import Rib
from ribd.snapshot import SnapshotError, _pack, _unpack, load_snapshot, write_snapshot

# Prefix limits of the fuzzed RIBs: low enough that hostile streams reach them, so
# the limit's path (ribd.prefix_limit) gets hostile input too.
FUZZ_LIMITS = PrefixLimits(default={"ipv4 unicast": 200, "ipv6 unicast": 100})

# -- outcomes --------------------------------------------------------------------------------


@dataclass
class Report:
    target: str
    inputs: int = 0
    refused: int = 0  # documented refusals: bad lines, SnapshotErrors, per-flow errors
    crashes: list[tuple[bytes, str]] = field(default_factory=list)
    hangs: list[tuple[bytes, float]] = field(default_factory=list)
    slowest: float = 0.0
    seconds: float = 0.0

    def run(self, data: bytes, call: Callable[[], bool], hang: float) -> None:
        """``call`` returns True when the input was refused; any exception is a crash."""
        self.inputs += 1
        started = time.perf_counter()
        try:
            if call():
                self.refused += 1
        except Exception:
            self.crashes.append((data, traceback.format_exc(limit=8)))
        took = time.perf_counter() - started
        self.slowest = max(self.slowest, took)
        if took > hang:
            self.hangs.append((data, took))

    def line(self) -> str:
        return (
            f"{self.target:<10} {self.inputs:>9,} inputs  {self.refused:>9,} refused  "
            f"{len(self.crashes)} crashes  {len(self.hangs)} hangs  "
            + (f"slowest {self.slowest * 1000:.1f} ms  " if self.slowest else "one stream  ")
            + f"{self.inputs / max(self.seconds, 1e-9):,.0f}/s"
        )


def _budget(count: int | None, seconds: float | None) -> Iterator[int]:
    deadline = time.monotonic() + seconds if seconds else None
    i = 0
    while (count is None or i < count) and (deadline is None or time.monotonic() < deadline):
        yield i
        i += 1


# -- feed lines ------------------------------------------------------------------------------


def feed_lines(rng: random.Random, n: int, seeds: list[bytes]) -> list[bytes]:
    """``n`` mutated lines, split on the newlines mutations put in, relay control lines left out."""
    out: list[bytes] = []
    while len(out) < n:
        for piece in mutate_line(rng, rng.choice(seeds)).split(b"\n"):
            if piece and not piece.startswith(CONTROL_PREFIX):
                out.append(piece)
    return out[:n]


def fuzz_parser(
    seed: int, count: int | None = None, seconds: float | None = None, hang: float = 1.0
) -> Report:
    """Hostile lines through ``ExabgpParser.parse`` and into a RIB: only FeedError may
    escape. Then the snapshot of whatever RIB they built must load again (the writer
    never stores what the loader refuses)."""
    rng = random.Random(seed)
    seeds = seed_lines()
    rib = Rib()  # no neighbor list: whatever peers the mutations make get a RIB
    rib.set_prefix_limits(FUZZ_LIMITS)  # (the limit's path gets hostile input too)
    parser = ExabgpParser(rib.interner)
    report = Report("parser")
    started = time.perf_counter()
    for _ in _budget(count, seconds):
        line = feed_lines(rng, 1, seeds)[0]

        def call(line: bytes = line) -> bool:
            try:
                events = parser.parse(line)
            except FeedError:
                return True
            rib.apply_many(events)
            return False

        report.run(line, call, hang)
        if report.inputs % 1000 == 0:
            rib.maintenance()
    report.seconds = time.perf_counter() - started
    check_snapshot_round_trip(rib, report)
    return report


def check_snapshot_round_trip(rib: Rib, report: Report) -> None:
    """Whatever the fuzzed input left in the RIB must write a snapshot that loads."""
    with tempfile.TemporaryDirectory(prefix="ribd-fuzz-") as directory:
        path = os.path.join(directory, "rib.snapshot")
        write_snapshot(rib, path)
        try:
            load_snapshot(Rib(), path, hold_time=60)
        except SnapshotError as exc:
            report.crashes.append((b"", f"the fuzzed RIB's snapshot does not load: {exc}"))


def expected_bad(lines: list[bytes], neighbors: frozenset[str]) -> int:
    """Bad lines the feed must count: refused by the parser, or from another neighbor."""
    parser = ExabgpParser()
    bad = 0
    for line in lines:
        try:
            events = parser.parse(line)
        except FeedError:
            bad += 1
            continue
        first = events[0] if events else None
        if first is not None and getattr(first, "neighbor", None) not in (None, *neighbors):
            bad += 1
    return bad


def fuzz_feed(seed: int, count: int, timeout: float = 120.0) -> Report:
    """Hostile lines through a FeedServer on a Unix socket, one connection: the
    connection survives, every line is read, and every bad one is counted."""
    from ribd.feed import FeedServer
    from ribd.speaker import wait_until

    rng = random.Random(seed)
    lines = feed_lines(rng, count, seed_lines())
    sentinel = SEED_LINES[2]  # a good UPDATE, last: proves the lines before did not stop us
    report = Report("feed", inputs=len(lines))
    with tempfile.TemporaryDirectory(prefix="ribd-fuzz-") as directory:
        rib = Rib()
        rib.neighbors = frozenset(PEERS)
        feed = FeedServer(os.path.join(directory, "feed.sock"), rib, resync_on_loss=False)
        feed.start()
        started = time.perf_counter()
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(feed.socket_path)
                s.sendall(b"\n".join([*lines, sentinel]) + b"\n")
                wait_until(
                    lambda: feed.stats()["lines"] >= len(lines) + 1, timeout, what="every line"
                )
                stats = feed.stats()
        finally:
            feed.stop()
        report.seconds = time.perf_counter() - started
    report.refused = stats["bad_lines"]
    want = expected_bad(lines, rib.neighbors)
    problems = []
    if stats["relay_connections"] != 1:
        problems.append(f"{stats['relay_connections']} connections: one was dropped")
    if stats["lines"] != len(lines) + 1:
        problems.append(f"{stats['lines']} lines read of {len(lines) + 1}")
    if stats["bad_lines"] != want:
        problems.append(f"{stats['bad_lines']} bad lines counted, {want} expected")
    if "internal" in stats["bad_lines_by_category"]:
        problems.append(f"parser failures: {stats['bad_lines_by_category']['internal']}")
    if not rib.exact("127.0.0.1", "ipv4 unicast", "192.0.2.0/24"):
        problems.append("the last line (a good UPDATE) was not applied")
    for p in problems:
        report.crashes.append((b"", p))
    return report


# -- snapshots -------------------------------------------------------------------------------


def base_snapshot(directory: str, version: int = 1) -> bytes:
    """A small snapshot of a RIB built from the seed lines (both families, ADD-PATH)."""
    rib = Rib()
    parser = ExabgpParser(rib.interner)
    for line in seed_lines():
        with contextlib.suppress(FeedError):
            rib.apply_many(parser.parse(line))
    path = os.path.join(directory, "base.snapshot")
    write_snapshot(rib, path, version=version)
    return Path(path).read_bytes()


def _rechecksummed(head: bytes, raw: bytes) -> bytes:
    body = zlib.compress(raw, 1)
    fields = orjson.loads(head[len(b"ribd-snapshot ") :]) | {
        "raw_bytes": len(raw),
        "body_bytes": len(body),
        "blake2b": blake2b(body, digest_size=32).hexdigest(),
    }
    return b"ribd-snapshot " + orjson.dumps(fields) + b"\n" + body


def mutate_snapshot_v2(rng: random.Random, base: bytes) -> bytes:
    """Format 2: its meta line as JSON, or its arrays' bytes, re-checksummed; or the
    header or file as for format 1."""
    head, body = base.split(b"\n", 1)
    meta, arrays = zlib.decompress(body).split(b"\n", 1)
    action = rng.random()
    if action < 0.35:
        return _rechecksummed(
            head, dump(mutate_json(rng, orjson.loads(meta)), rng) + b"\n" + arrays
        )
    if action < 0.7:
        data = bytearray(arrays)
        for _ in range(rng.randint(1, 8)):
            if data:
                data[rng.randrange(len(data))] = rng.choice([0, 1, 0x7F, 0x80, 0xFF])
        return _rechecksummed(head, meta + b"\n" + bytes(data))
    if action < 0.85:
        fields = mutate_json(rng, orjson.loads(head[len(b"ribd-snapshot ") :]))
        return b"ribd-snapshot " + dump(fields, rng) + b"\n" + body
    return mutate_bytes(rng, base)


def mutate_snapshot(rng: random.Random, base: bytes) -> bytes:
    if b'"version":2' in base.split(b"\n", 1)[0]:
        return mutate_snapshot_v2(rng, base)
    header, doc = _unpack(base)
    action = rng.random()
    if action < 0.6:  # the body, re-checksummed: only the content checks can object
        data = _pack(doc, created=header["created"], paths=header["paths"])
        head, _ = data.split(b"\n", 1)
        return _rechecksummed(head, dump(mutate_json(rng, doc), rng))
    if action < 0.8:  # the header
        head, body = base.split(b"\n", 1)
        fields = mutate_json(rng, orjson.loads(head[len(b"ribd-snapshot ") :]))
        return b"ribd-snapshot " + dump(fields, rng) + b"\n" + body
    return mutate_bytes(rng, base)


def fuzz_snapshots(
    seed: int, count: int | None = None, seconds: float | None = None, hang: float = 1.0
) -> Report:
    """Hostile snapshot files through ``load_snapshot``: only SnapshotError may escape,
    and a refused file leaves the RIB empty."""
    rng = random.Random(seed)
    report = Report("snapshots")
    with tempfile.TemporaryDirectory(prefix="ribd-fuzz-") as directory:
        bases = [base_snapshot(directory, 1), base_snapshot(directory, 2)]
        path = os.path.join(directory, "rib.snapshot")
        started = time.perf_counter()
        for i in _budget(count, seconds):
            data = mutate_snapshot(rng, bases[i % 2])
            Path(path).write_bytes(data)

            def call() -> bool:
                rib = Rib()
                try:
                    load_snapshot(rib, path, hold_time=60)
                except SnapshotError:
                    if rib.routers or len(rib.interner):
                        raise AssertionError("a refused snapshot left routes behind") from None
                    return True
                return False

            report.run(data, call, hang)
        report.seconds = time.perf_counter() - started
    return report


# -- flow records ----------------------------------------------------------------------------


def flow_lines(rng: random.Random, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        line = orjson.dumps(rng.choice(SEED_FLOWS))
        out.append(mutate_line(rng, line).replace(b"\n", b" "))
    return out


def fuzz_flows(
    seed: int, count: int | None = None, seconds: float | None = None, hang: float = 1.0
) -> Report:
    """Hostile flow JSON lines through ``attribution resolve``'s reader, the resolver's
    record checks (one flow and batches) and the answer's JSON output."""
    from attribution.cli import read_flow_lines
    from attribution.config import parse_config
    from attribution.resolver import Resolver

    rng = random.Random(seed)
    config = parse_config(FLOW_CONFIG, "fuzz.toml")
    rib = Rib(router_names={r.neighbor: r.name for r in config.routers})
    resolver = Resolver(rib, config)
    report = Report("flows")
    started = time.perf_counter()
    for _ in _budget(count, seconds):
        data = flow_lines(rng, 1)[0]

        def call(data: bytes = data) -> bool:
            stats = {"bad": 0}
            stream = io.TextIOWrapper(io.BytesIO(data + b"\n"))
            records = list(read_flow_lines(stream, stats))
            if not data.strip() and not records:
                return True  # a blank line: skipped, as documented
            if len(records) != 1:
                raise AssertionError(f"{len(records)} records from one line")
            record = records[0]
            if "__error__" in record:
                return True
            one = resolver.resolve_one(record)
            batch = resolver.resolve_dicts([record, SEED_FLOWS[0]])
            codes = [code for i, code, _ in batch.errors if i == 0]
            if codes != ([one.error[0]] if one.error else []):
                raise AssertionError(f"one flow says {one.error}, a batch says {codes}")
            orjson.dumps(record)  # `resolve` echoes the record in its answer
            return one.error is not None

        report.run(data, call, hang)
    report.seconds = time.perf_counter() - started
    return report


# -- the command -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    import logging

    logging.basicConfig(level=logging.ERROR)  # bad lines are the point: no warning per line
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="per target (default 60)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hang", type=float, default=1.0, help="seconds that make an input a hang")
    ap.add_argument("--save", help="directory to write crashing and hanging inputs to")
    ap.add_argument(
        "--targets",
        default="feed,parser,raw,snapshots,flows,grpc,enrich",
        help="comma-separated (default: all; feed: 100,000 lines through the socket)",
    )
    args = ap.parse_args(argv)
    from bench.fuzz_raw import fuzz_raw
    from bench.fuzz_service import fuzz_enrich, fuzz_grpc

    runs = {
        "parser": fuzz_parser,
        "raw": fuzz_raw,
        "snapshots": fuzz_snapshots,
        "flows": fuzz_flows,
        "grpc": fuzz_grpc,
        "enrich": fuzz_enrich,
    }
    print(f"seed {args.seed}, {args.seconds:.0f} s per target, hang = {args.hang} s")
    print(f"samples: {'real captures + built-in' if SAMPLES.is_dir() else 'built-in only'}")
    failed = 0
    if "feed" in args.targets.split(","):
        report = fuzz_feed(args.seed, count=100_000)
        print(report.line(), flush=True)
        for _, problem in report.crashes:
            print(f"  {problem}")
        failed += len(report.crashes)
    for name in args.targets.split(","):
        if name == "feed":
            continue
        hang = args.hang * (5 if name == "enrich" else 1)
        report = runs[name](args.seed, seconds=args.seconds, hang=hang)
        print(report.line(), flush=True)
        for data, trace in report.crashes[:3]:
            print(f"  crash on {data[:120]!r}:\n{trace}")
        for data, took in report.hangs[:3]:
            print(f"  hang ({took:.1f} s) on {data[:120]!r}")
        if args.save:
            os.makedirs(args.save, exist_ok=True)
            for i, (data, _) in enumerate(report.crashes + report.hangs):  # type: ignore[operator]
                Path(args.save, f"{name}-{i}.bin").write_bytes(data)
        failed += len(report.crashes) + len(report.hangs)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
