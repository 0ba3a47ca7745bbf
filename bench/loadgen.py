"""A gRPC load client: pipelined ResolveStream of pre-built columnar batches.

Run as its own process (``python -m bench.loadgen``), several at once, so the
client is never what limits the server. It is as cheap as a Python client can
be: the FlowBatch messages are serialized once before the run, and the stream
is opened without (de)serializers, so requests go out as ready bytes and
answers come back as bytes that are not parsed (the first answer is parsed
once and checked). Many requests are in flight on the stream (gRPC's flow
control bounds them), so the server never waits for a round trip.

Handshake on stdin/stdout: we print ``ready`` once the batches are built and
the channel is up, then read ``go <start> <end>`` (monotonic seconds). We
stream from ``start`` until ``end`` (or until a ``stop`` line arrives) and
print one JSON object: the monotonic time of every answer, the flows per
answer, our CPU seconds, and a check of the first answer.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import grpc

from bench.common import cpu_seconds
from bench.flows import ANSWERS, batch_requests

METHOD = "/attribution.v1.Attribution/ResolveStream"


def check_answer(raw: bytes, size: int) -> str:
    """'' when the answer is a full batch of mostly BGP answers, else what is wrong."""
    from attribution.convert import answer_columns
    from attribution.v1 import attribution_pb2 as pb

    reply = pb.AttributionBatch.FromString(raw)
    if reply.batch_error:
        return f"batch error: {reply.batch_error}"
    cols = answer_columns(reply.columns)
    if len(cols.flags) != size:
        return f"answer has {len(cols.flags)} flows, not {size}"
    bgp = sum(1 for i in range(2, 4 * size, 4) if cols.provenance[i] == pb.BGP)
    if bgp < size // 2:
        return f"only {bgp} of {size} dst answers are BGP"
    return ""


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen")
    p.add_argument("--target", required=True)
    p.add_argument("--kind", choices=("zipf", "uniform"), required=True)
    p.add_argument("--batch", type=int, default=8192, help="flows per FlowBatch")
    p.add_argument("--batches", type=int, default=32, help="distinct batches, sent in turn")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--exporter", default="127.0.1.1")
    p.add_argument("--answer", choices=sorted(ANSWERS), default="columns", help="answer shape")
    args = p.parse_args()

    requests = batch_requests(
        args.kind, args.batches, args.batch, args.exporter, args.seed, args.answer
    )
    channel = grpc.insecure_channel(
        args.target,
        options=[
            ("grpc.max_receive_message_length", 256 << 20),
            ("grpc.max_send_message_length", 256 << 20),
        ],
    )
    grpc.channel_ready_future(channel).result(timeout=30)
    rpc = channel.stream_stream(METHOD)  # no (de)serializers: bytes in, bytes out
    print("ready", flush=True)
    line = sys.stdin.readline().split()
    if not line or line[0] != "go":
        return 1
    start = float(line[1])
    end = [float(line[2])]

    def wait_stop() -> None:
        if sys.stdin.readline().strip() == "stop":
            end[0] = time.monotonic()

    threading.Thread(target=wait_stop, daemon=True).start()
    while time.monotonic() < start:
        time.sleep(0.001)

    def stream():
        i = 0
        while time.monotonic() < end[0]:
            yield requests[i % len(requests)]
            i += 1

    cpu0 = cpu_seconds()
    times: list[float] = []
    first = b""
    for answer in rpc(stream()):
        times.append(time.monotonic())
        if not first:
            first = answer
    cpu = cpu_seconds() - cpu0
    channel.close()
    out = {
        "times": times,
        "flows_per_answer": args.batch,
        "cpu_seconds": cpu,
        "check": check_answer(first, args.batch) if first else "no answer",
    }
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
