"""Latency on loopback: one-flow Resolve, and ResolveBatch of 1,000 flows in both shapes.

A real ``attribution serve`` with the full table (``bench.server``); one
client in this process making sequential calls through the generated stub
(answers parsed, as a real client would). Addresses are Zipf-drawn
(``bench.flows``).

The two ResolveBatch shapes measure the proto's design choice: ``flows``
(one Flow message in, one FlowAttribution message out per flow, each with its
Route messages) against ``columns`` (FlowColumns in, AttributionColumns with a
route dictionary out).
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.common import (
    FULL_TABLE,
    FULL_TABLE_PREFIXES,
    Row,
    at_most,
    bench_main,
    data_available,
    log,
)
from bench.flows import ZipfSampler, mapped16
from bench.server import EXPORTER, Server

BATCH = 1000


def _texts(addrs: np.ndarray) -> list[str]:
    return [socket.inet_ntop(socket.AF_INET, int(a).to_bytes(4, "big")) for a in addrs]


def _timed_calls(call, requests: list, n: int, warm: int) -> np.ndarray:
    """Sequential calls; seconds per call (after ``warm`` untimed ones)."""
    for i in range(warm):
        call(requests[i % len(requests)])
    out = np.empty(n)
    perf = time.perf_counter
    for i in range(n):
        req = requests[i % len(requests)]
        t0 = perf()
        call(req)
        out[i] = perf() - t0
    return out


def _pct(samples: np.ndarray, q: float) -> float:
    return float(np.percentile(samples, q)) * 1e3  # ms


def run(args: argparse.Namespace) -> list[Row]:
    skip = data_available(FULL_TABLE)
    if skip:
        return [Row("latency", "Resolve", None, "ms", note=skip)]
    from attribution.v1 import attribution_pb2 as pb

    rng = np.random.default_rng(11)
    zipf = ZipfSampler(rng)
    singles = 1000 if args.quick else 8000
    batch_calls = 100 if args.quick else 400
    src, dst = _texts(zipf(rng, 4000)), _texts(zipf(rng, 4000))
    flows = [
        pb.Flow(exporter=EXPORTER, src_addr=s, dst_addr=d) for s, d in zip(src, dst, strict=True)
    ]
    row_batches, col_batches = [], []
    for k in range(4):
        chunk = flows[k * BATCH : (k + 1) * BATCH]
        row_batches.append(pb.FlowBatch(batch_id=k, flows=pb.FlowRows(flows=chunk)))
        s16 = mapped16(zipf(rng, BATCH))
        d16 = mapped16(zipf(rng, BATCH))
        col_batches.append(
            pb.FlowBatch(
                batch_id=k,
                columns=pb.FlowColumns(
                    exporters=[EXPORTER], exporter=[0] * BATCH, src_addr=s16, dst_addr=d16
                ),
            )
        )
    with tempfile.TemporaryDirectory(prefix="bench-lat-") as d, Server(Path(d)) as server:
        server.load_full_table(FULL_TABLE_PREFIXES)
        server.settle()  # the lookup views are compiled
        stub = server._stub
        log(f"latency: {singles} health checks (the gRPC floor), {singles} one-flow Resolve calls")
        health = health_pb2_grpc.HealthStub(server._channel)
        floor = _timed_calls(
            lambda r: health.Check(r, timeout=10), [health_pb2.HealthCheckRequest()], singles, 300
        )
        one = _timed_calls(lambda r: stub.Resolve(r, timeout=10), flows, singles, 300)
        log(f"latency: {batch_calls} ResolveBatch calls of {BATCH} flows, rows and columns")
        rows_t = _timed_calls(
            lambda r: stub.ResolveBatch(r, timeout=10), row_batches, batch_calls, 20
        )
        cols_t = _timed_calls(
            lambda r: stub.ResolveBatch(r, timeout=10), col_batches, batch_calls, 20
        )
    p99 = _pct(one, 99)
    floor_label = "gRPC floor: Health.Check, same server"
    return [
        Row(
            "latency",
            "Resolve (1 flow), p50",
            _pct(one, 50),
            "ms",
            _pct(floor, 50),
            floor_label,
            note=f"{singles} sequential calls, Zipf addresses, loopback, one client thread; "
            "the floor is a trivial unary RPC (health check) to the same server",
        ),
        Row(
            "latency",
            "Resolve (1 flow), p99",
            p99,
            "ms",
            _pct(floor, 99),
            floor_label,
            "< 1 ms",
            at_most(p99, 1.0),
        ),
        Row(
            "latency",
            "Resolve (1 flow), p99.9",
            _pct(one, 99.9),
            "ms",
            _pct(floor, 99.9),
            floor_label,
        ),
        *_batch_rows("rows (Flow messages)", rows_t),
        *_batch_rows("columns (FlowColumns)", cols_t),
    ]


def _batch_rows(shape: str, t: np.ndarray) -> list[Row]:
    return [
        Row(
            "latency",
            f"ResolveBatch {BATCH} flows, {shape}, p50",
            _pct(t, 50),
            "ms",
            note=f"{BATCH / np.median(t):,.0f} flows/s at p50, one client, sequential",
        ),
        Row("latency", f"ResolveBatch {BATCH} flows, {shape}, p99", _pct(t, 99), "ms"),
    ]


if __name__ == "__main__":
    raise SystemExit(bench_main("latency", run))
