"""Fuzz targets for what collectors send the service: gRPC flow batches and enrich's records.

Two targets beside ``bench.fuzz``'s (feed lines, snapshots, flow JSON), on the
semantics tests' routing world (``tests.attribution.helpers.build_world``: three
routers, fallbacks, two overrides), the one the enrich samples were written for:

* ``grpc``: FlowBatch wire bytes, built column by column with odd lengths and
  values or mutated from valid requests of every shape (rows, columns, packed
  records, omitted and streamed routes), through ``pb.FlowBatch.FromString``
  (a DecodeError is grpcio's own refusal) and the servicer's batch path, as
  ResolveBatch and as ResolveStream call it. Besides "only ValueError
  escapes" (INVALID_ARGUMENT), every answer is checked against another way of
  asking: a rows batch's answers are each flow's ``Resolve`` answer, and a
  columns batch answers the same whatever answer shape it asks for (plain,
  packed records, streamed routes decoded by the client's route dictionary).
* ``enrich``: whole ``attribution enrich`` runs over a real gRPC server, on
  collector files (goflow2, pmacct, nfdump, our own JSON) with damaged lines
  mixed in. Besides "no exception", every run's counters add up (read =
  written + bad, one output line a written record) and the good lines' records
  come out unchanged and in order around the bad ones: each undamaged sample
  line's output, as it reads alone, is found in the run's output in sequence.

    python -m bench.fuzz --targets grpc,enrich --seconds 120 --seed 3

tests/test_fuzz.py runs both for a few seconds in CI.
"""

from __future__ import annotations

import csv as csv_module
import io
import ipaddress
import json
import os
import random
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from google.protobuf.message import DecodeError

from bench.fuzz import Report, _budget
from bench.fuzz_mutate import mutate_bytes
from tests.attribution.helpers import build_world

ENRICH_SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "attribution" / "data" / "enrich"
# Flows the valid requests are made of: a match, an override, a fallback, IPv6, a miss.
WORLD_FLOWS = [
    {"exporter": "127.0.1.1", "src_addr": "10.1.2.3", "dst_addr": "10.9.9.9", "in_if": 20,
     "src_mac": "02:00:00:00:00:0a", "next_hop": "127.0.0.99", "bytes": 1500, "packets": 1},
    {"exporter": "127.0.1.2", "src_addr": "172.16.0.1", "dst_addr": "10.1.0.1", "in_if": 30},
    {"exporter": "::1", "src_addr": "2001:db8:1::5", "dst_addr": "2001:db8::1"},
    {"exporter": "127.0.1.9", "src_addr": "192.168.3.3", "dst_addr": "8.8.8.8"},
    {"exporter": "127.0.1.1", "src_addr": "10.0.0.1", "dst_addr": "2001:db8::1"},
]  # fmt: skip
# Column values: addresses the world has routes for (IPv4 as ::ffff:a.b.c.d), and odd ones.
_ROUTED = ("10.1.2.3", "10.9.9.9", "172.16.0.1", "192.168.0.1", "2001:db8::1", "2001:db8:1::5")
_ODD = ("0.0.0.0", "255.255.255.255", "::", "::1", "::ffff:0:0", "ff02::1")
ADDRESSES = (
    *(ipaddress.IPv6Address(f"::ffff:{a}" if "." in a else a).packed for a in _ROUTED + _ODD),
    b"\xff" * 16,
    bytes(range(16)),
)
MACS = (bytes(6), bytes.fromhex("02000000000a"), b"\xff" * 6, bytes.fromhex("0c0000000001"))
ODD_EXPORTERS = ("127.0.1.1", "::1", "", "x", "127.0.1.1\x00", "10.0.0.0/8", "::ffff:127.0.1.1")


# -- gRPC flow batches -----------------------------------------------------------------------


def valid_batches() -> list[bytes]:
    """FlowBatch wire bytes of every shape the clients send."""
    from attribution.client import columns_request
    from attribution.v1 import attribution_pb2 as pb

    out = []
    for shape in ({}, {"omit_routes": True}, {"packed_records": True}, {"stream_routes": True}):
        request = columns_request(WORLD_FLOWS * 2)[0]
        for name, value in shape.items():
            setattr(request, name, value)
        out.append(request.SerializeToString())
    rows = pb.FlowRows(flows=[pb.Flow(**f) for f in WORLD_FLOWS])
    out.append(pb.FlowBatch(batch_id=7, flows=rows).SerializeToString())
    return out


def structured_batch(rng: random.Random) -> bytes:
    """A columns batch built field by field: lengths that agree or not, odd values."""
    from attribution.v1 import attribution_pb2 as pb

    c = pb.FlowColumns()
    n = rng.randint(0, 6)
    odd = rng.random() < 0.4  # columns whose lengths disagree (else only odd values)
    c.exporters.extend(rng.choice(ODD_EXPORTERS) for _ in range(rng.randint(0, 3)))
    c.exporter.extend(rng.choice([0, 1, 2, 3, 2**32 - 1]) for _ in range(n))
    for name, pool in (
        ("src_addr", ADDRESSES),
        ("dst_addr", ADDRESSES),
        ("src_mac", MACS),
        ("next_hop", ADDRESSES),
    ):
        count = rng.choice([n, n, 0, n + 1, max(n - 1, 0)] if odd else [n, n, n, 0])
        if count == 0 and name in ("src_addr", "dst_addr") and not odd:
            count = n
        packed = b"".join(rng.choice(pool) for _ in range(count))
        cut = rng.choice([0, 0, 1, -1]) if odd else 0  # a column one byte short or long
        setattr(c, name, packed[:-1] if cut < 0 else packed + b"\x00" * cut)
    for name in ("in_if", "out_if"):
        count = rng.choice([0, n, n, n + 1, max(n - 1, 0)] if odd else [0, n])
        getattr(c, name).extend(rng.choice([0, 20, 30, 2**32 - 1]) for _ in range(count))
    batch = pb.FlowBatch(
        batch_id=rng.randrange(2**64),
        columns=c,
        omit_routes=rng.random() < 0.3,
        packed_records=rng.random() < 0.5,
        stream_routes=rng.random() < 0.5,
    )
    return batch.SerializeToString()


class BatchChecker:
    """Asks the servicer one decoded FlowBatch in every way and compares the answers."""

    def __init__(self) -> None:
        from attribution.client import StreamRoutes
        from attribution.grpc_service import AttributionServicer, ReloadResult, _StreamState
        from attribution.resolver import Resolver

        self.rib, config = build_world()
        self.resolver = Resolver(self.rib, config, max_batch_flows=64)
        self.servicer = AttributionServicer(
            self.rib, self.resolver, lambda: config, lambda: ReloadResult(ok=True)
        )
        self.stream = _StreamState()  # one ResolveStream's state across batches
        self.stream_routes = StreamRoutes()  # and the client's copy of its dictionary

    def check(self, request) -> bool:
        """True when the batch was refused (ValueError); AssertionError on a wrong answer."""
        if request.WhichOneof("records") == "columns":
            return self._columns(request)
        return self._rows(request)

    def _answer(self, request, stream=None):
        from attribution.v1 import attribution_pb2 as pb

        answer = self.servicer._resolve_batch(request, "ResolveStream", stream)
        return pb.AttributionBatch.FromString(answer) if isinstance(answer, bytes) else answer

    def _rows(self, request) -> bool:
        from attribution.convert import flow_answer_json, flow_attribution_json
        from attribution.grpc_service import _flow_dict

        try:
            reply = self._answer(request)
        except ValueError:
            return True
        flows = request.flows.flows
        assert len(reply.attributions) == len(flows), "a rows batch lost or gained answers"
        errors = {e.index: e.code for e in reply.errors}
        routing = self.resolver.routing
        for i, (flow, got) in enumerate(zip(flows, reply.attributions, strict=True)):
            assert errors.get(i) == (got.error.code or None), f"flow {i}: errors list != row"
            alone = self.resolver.resolve_one(_flow_dict(flow))
            want = flow_answer_json(alone, routing.local_as, routing.highest_as_set)
            have = flow_attribution_json(got)
            assert have == want, f"flow {i}: the batch answers {have}, alone {want}"
        return False

    def _columns(self, request) -> bool:
        from attribution.convert import columns_to_answers

        answers = {}
        for shape in ("plain", "packed", "omitted", "streamed"):
            asked = type(request)()
            asked.CopyFrom(request)
            asked.packed_records = shape == "packed"
            asked.omit_routes = shape == "omitted"
            asked.stream_routes = shape == "streamed"
            stream = self.stream if shape == "streamed" else None
            try:
                reply = self._answer(asked, stream)
            except ValueError as refused:
                answers[shape] = ("refused", str(refused))
                continue
            routes = None
            if shape == "streamed":
                routes = self.stream_routes.update(reply.columns)
            got = list(columns_to_answers(reply.columns, reply.errors, routes))
            assert len(got) == len(request.columns.exporter), "answers != flows"
            if shape == "omitted":  # no routes asked: none answered
                assert not any(a.get("src_prefix") or a.get("dst_prefix") for a in got)
                got = [_without_routes(a) for a in got]
            answers[shape] = got
        plain = answers["plain"]
        refused = plain[0] == "refused" if isinstance(plain, tuple) else False
        for shape, got in answers.items():
            if shape == "omitted" and not refused:
                assert got == [_without_routes(a) for a in plain], "omit_routes changed an answer"
            else:
                assert got == plain, f"{shape} answers differ from plain columns"
        return refused


# What an answer without routes still says (docs/flow-json.md): whose RIB, the AS numbers,
# how each was derived, the override, the error, and the flags.
ANSWER_KEYS = frozenset(
    [
        *("router", "override", "error", "error_code"),
        *(f"{side}_{role}_{what}" for side in ("src", "dst") for role in ("origin", "peer")
          for what in ("as", "provenance")),
    ]
)  # fmt: skip


def _without_routes(answer: dict) -> dict:
    return {k: v for k, v in answer.items() if k in ANSWER_KEYS or isinstance(v, bool)}


def fuzz_grpc(
    seed: int, count: int | None = None, seconds: float | None = None, hang: float = 1.0
) -> Report:
    """Hostile FlowBatch bytes through the servicer's batch path, answers cross-checked."""
    from attribution.v1 import attribution_pb2 as pb

    rng = random.Random(seed)
    checker = BatchChecker()
    bases = valid_batches()
    report = Report("grpc")
    started = time.perf_counter()
    for _ in _budget(count, seconds):
        if rng.random() < 0.5:
            data = structured_batch(rng)
        else:
            data = rng.choice(bases)
            for _ in range(rng.randint(1, 4)):
                data = mutate_bytes(rng, data)

        def call(data: bytes = data) -> bool:
            try:
                request = pb.FlowBatch.FromString(data)
            except DecodeError:
                return True  # grpcio answers INTERNAL before our code runs
            return checker.check(request)

        report.run(data, call, hang)
    report.seconds = time.perf_counter() - started
    return report


# -- enrich runs -----------------------------------------------------------------------------


class EnrichChecker:
    """A real gRPC server over the world, and each sample line's output as it reads alone."""

    def __init__(self, directory: str) -> None:
        from attribution.config import ApiSettings
        from attribution.grpc_service import AttributionServicer, ReloadResult, start_server
        from attribution.resolver import Resolver

        rib, config = build_world()
        config = replace(config, api=ApiSettings())
        resolver = Resolver(rib, config, max_batch_flows=100_000)
        servicer = AttributionServicer(rib, resolver, lambda: config, lambda: ReloadResult(ok=True))
        self.server, port = start_server(servicer, "127.0.0.1:0", 64 << 20, config.api)
        self.target = f"127.0.0.1:{port}"
        self.path = os.path.join(directory, "records")
        self.files = {p.name: p.read_bytes() for p in sorted(ENRICH_SAMPLES.iterdir())}
        self.lines = [
            line
            for name, data in self.files.items()
            if name.endswith(".jsonl")
            for line in data.splitlines()
            if line.strip()
        ]
        self.alone = {line: self.enrich(line + b"\n", "json")[0] for line in self.lines}

    def enrich(self, data: bytes, output: str, fmt: str | None = None, batch: int = 64):
        """(output bytes, counters) of one run over ``data``."""
        from attribution.enrich import Options, run

        Path(self.path).write_bytes(data)
        opts = Options(
            inputs=[self.path],
            input_format=fmt,
            output_format=output,
            batch_size=batch,
            progress=0,
        )
        out = io.BytesIO()
        counters = run(self.target, opts, out, lambda _message: None)
        return out.getvalue(), counters

    def close(self) -> None:
        self.server.stop(grace=None)


def _counted(output: bytes, counters, csv: bool) -> None:
    """Every record read is written or dropped as bad, once.

    A record the service answers with an error (bad address, unknown exporter) is
    written with it and counted bad too, so it is subtracted once (JSON output:
    read from the lines). Output lines are read with ``json``, not orjson: a
    record keeps its fields as the collector wrote them, and a number past a
    double's range (``1e999``, valid JSON) is passed on as it came, which orjson
    refuses."""
    bad = sum(counters.bad.values())
    lines = _csv_records(output)[1:] if csv else _lines(output)
    assert len(lines) == counters.written, f"{len(lines)} lines out, {counters.written} written"
    assert counters.written <= counters.read <= counters.written + bad, counters.as_json()
    if not csv:
        answered_bad = sum(json.loads(line)["error_code"] is not None for line in lines)
        dropped = bad - answered_bad
        assert counters.read == counters.written + dropped, counters.as_json()


def fuzz_enrich(
    seed: int, count: int | None = None, seconds: float | None = None, hang: float = 5.0
) -> Report:
    """Whole enrich runs over damaged collector files: counts add up, good records survive."""
    rng = random.Random(seed)
    report = Report("enrich")
    with tempfile.TemporaryDirectory(prefix="fuzz-enrich-") as directory:
        checker = EnrichChecker(directory)
        try:
            started = time.perf_counter()
            for _ in _budget(count, seconds):
                if rng.random() < 0.3:  # a whole sample file, damaged anywhere
                    data = rng.choice(list(checker.files.values()))
                    for _ in range(rng.randint(1, 6)):
                        data = mutate_bytes(rng, data)
                    kept: list[bytes] = []
                else:  # sample lines, some damaged, one record a line
                    picked = [rng.choice(checker.lines) for _ in range(rng.randint(1, 60))]
                    damaged = [rng.random() < 0.3 for _ in picked]
                    lines = [
                        mutate_bytes(rng, line).replace(b"\n", b" ") if hit else line
                        for line, hit in zip(picked, damaged, strict=True)
                    ]
                    data = b"\n".join(lines) + rng.choice([b"\n", b""])
                    kept = [
                        checker.alone[line]
                        for line, hit in zip(picked, damaged, strict=True)
                        if not hit and checker.alone[line]  # (a marker or bad line: no output)
                    ]
                output = rng.choice(["json", "json", "csv"])
                fmt = None if kept else rng.choice([None, "goflow2", "pmacct", "nfdump", "native"])
                batch = rng.choice([1, 7, 64, 4096])

                def call(data=data, output=output, fmt=fmt, batch=batch, kept=kept) -> bool:
                    out, counters = checker.enrich(data, output, fmt, batch)
                    _counted(out, counters, output == "csv")
                    if kept and output == "json":
                        _in_order(kept, _lines(out))
                    return bool(counters.bad)

                report.run(data, call, hang)
            report.seconds = time.perf_counter() - started
        finally:
            checker.close()
    return report


def _csv_records(output: bytes) -> list[list[str]]:
    """CSV records as the csv module reads them (a quoted field may hold a newline)."""
    return list(csv_module.reader(io.StringIO(output.decode("utf-8", "surrogateescape"))))


def _lines(output: bytes) -> list[bytes]:
    """Output lines split at newlines only: a ``\\r`` is JSON whitespace, and a record
    keeps its text as the collector wrote it (``bytes.splitlines`` splits there too)."""
    lines = output.split(b"\n")
    return lines[:-1] if lines[-1] == b"" else lines


def _in_order(kept: list[bytes], lines: list[bytes]) -> None:
    """Each good record's output, as it reads alone, in the run's output in sequence."""
    at = 0
    for want in kept:
        while at < len(lines) and json.loads(lines[at]) != json.loads(want):
            at += 1
        assert at < len(lines), f"a good record's output is missing: {want[:200]!r}"
        at += 1
